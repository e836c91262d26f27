//go:build !linux

package procprio

// Set is not supported here.
func Set(int) error { return ErrUnsupported }

// Get is not supported here.
func Get() (map[int]int, error) { return nil, ErrUnsupported }

// CanLower is false here: Set does nothing.
func CanLower() bool { return false }
