// Package procprio sets the CPU scheduling priority (the nice value) of this whole process, every thread of
// it: on Linux a nice value belongs to a thread, and a Go process runs on several.
package procprio

import "errors"

// ErrUnsupported is Set's and Get's error where the package cannot work (not Linux).
var ErrUnsupported = errors.New("process priority: not supported on this system")
