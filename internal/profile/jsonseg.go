package profile

import (
	"encoding/binary"
	"unicode/utf8"
)

// CleanJSONSegment reports whether an unescaped stretch of a JSON string (the bytes between two escapes)
// is valid UTF-8 without control bytes, which encoding/json rejects or replaces. Ingest's decode of an
// upload and the indexer's read of the stored body both run it over every byte of every profile (a
// segment is usually one profile line, a few hundred plain ASCII bytes): it checks 32 ASCII bytes at a
// time, then eight, and leaves the rest to a byte loop, and utf8.Valid only from the first non-ASCII byte.
func CleanJSONSegment(seg []byte) bool {
	const lows, highs = 0x2020202020202020, 0x8080808080808080
	i := 0
	for ; i+32 <= len(seg); i += 32 {
		w0 := binary.LittleEndian.Uint64(seg[i:])
		w1 := binary.LittleEndian.Uint64(seg[i+8:])
		w2 := binary.LittleEndian.Uint64(seg[i+16:])
		w3 := binary.LittleEndian.Uint64(seg[i+24:])
		// A byte below 0x20 borrows in w-lows and keeps its high bit clear in w: flagged. A byte with the
		// high bit set is flagged by w alone. Borrows only flag bytes above a flagged one.
		if (w0|w1|w2|w3|(w0-lows)&^w0|(w1-lows)&^w1|(w2-lows)&^w2|(w3-lows)&^w3)&highs != 0 {
			break // a non-ASCII or control byte in these words: check the rest eight bytes at a time
		}
	}
	for ; i+8 <= len(seg); i += 8 {
		w := binary.LittleEndian.Uint64(seg[i:])
		if (w|(w-lows)&^w)&highs != 0 {
			break
		}
	}
	for ; i < len(seg); i++ {
		c := seg[i]
		if c < 0x20 {
			return false
		}
		if c >= utf8.RuneSelf {
			break
		}
	}
	if i == len(seg) {
		return true
	}
	for _, c := range seg[i:] {
		if c < 0x20 {
			return false
		}
	}
	return utf8.Valid(seg[i:])
}
