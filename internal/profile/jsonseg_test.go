package profile

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

// TestCleanJSONSegmentMatchesAByteLoop puts a control byte, a non-ASCII character and an invalid UTF-8 byte at
// every offset of segments up to 80 bytes long, so that each lands in the 32-byte, the eight-byte and the
// byte loop of CleanJSONSegment, and compares with the plain definition.
func TestCleanJSONSegmentMatchesAByteLoop(t *testing.T) {
	ref := func(seg []byte) bool {
		for _, c := range seg {
			if c < 0x20 {
				return false
			}
		}
		return utf8.Valid(seg)
	}
	for n := 0; n <= 80; n++ {
		base := bytes.Repeat([]byte("abcdefghij;klmnop~ 0123456789"), 3)[:n]
		check := func(seg []byte) {
			if got, want := CleanJSONSegment(seg), ref(seg); got != want {
				t.Fatalf("CleanJSONSegment(%q) = %v, want %v", seg, got, want)
			}
		}
		check(base)
		for i := range n {
			for _, ins := range [][]byte{{0x00}, {0x1f}, {0x7f}, []byte("é"), []byte("€"), {0xff}, {0xc3}, {0x80}} {
				seg := append(append(append([]byte(nil), base[:i]...), ins...), base[i:]...)
				check(seg)
				check(append(append([]byte(nil), seg...), 0x01)) // and a control byte at the end
			}
		}
	}
}
