package profile

import (
	"strings"

	"github.com/cespare/xxhash/v2"
)

// StackHash returns the 64-bit xxHash (XXH64, seed 0) of a normalized stack
// "comm;frame1;...;frameN" as found in Line.Stack.
func StackHash(stack []byte) uint64 {
	return xxhash.Sum64(stack)
}

// SplitStack splits a normalized stack into its frames, the process name
// first. It returns nil for an empty stack.
func SplitStack(stack string) []string {
	if stack == "" {
		return nil
	}
	return strings.Split(stack, ";")
}

// maxRuntimeLen bounds the length of an annotation between "_[" and "]".
const maxRuntimeLen = 16

// Runtime returns the runtime annotation of a frame without its brackets:
// "k" for "do_syscall_64_[k]", "p" for a Python frame ending in "_[p]", and
// likewise "pe", "pn", "j", "i", "rb", "php", "net", "s" or any other suffix
// "_[x]" where x is 1 to 16 ASCII letters or digits. It returns "" when the
// frame has no such suffix.
func Runtime(frame string) string {
	n := len(frame)
	if n < 4 || frame[n-1] != ']' {
		return ""
	}
	for i := n - 2; i >= 1 && n-2-i <= maxRuntimeLen; i-- {
		c := frame[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			continue
		case c == '[' && i < n-2 && frame[i-1] == '_':
			return frame[i+1 : n-1]
		}
		return ""
	}
	return ""
}
