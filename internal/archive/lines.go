package archive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Profiles are collapsed-stack text: a header line, then one "frame;frame;… COUNT" line per stack. Many
// stacks share long runs of frames, so zstd's match finder, which looks at a bounded number of earlier
// places with the same few bytes, rarely finds the one earlier line that is the same whole stack: measured,
// zstd alone kept ≈ 22 bytes a line of random draws from 2,000 stacks. A bundle therefore keeps each
// distinct stack once, in a table next to the dictionary, and an upload as its stacks' numbers and counts
// (≈ 3 bytes a line once compressed). The transformation is exact: an upload that does not parse as
// expected, in whole or in a line, is kept as it is, and the CRC of every entry is of the upload's bytes.

// lineEncoded is the flag on an entry's kind for uploads kept as encoded lines.
const lineEncoded = 0x10

// Line tags in an encoded upload.
const (
	tagLiteral = 0 // a line kept as it is: uvarint length, bytes
	tagStack   = 1 // a stack outside the table, then its count: uvarint length, bytes, uvarint count
	tagFirstID = 2 // tagFirstID+id: the table's stack id, then its count as a uvarint
)

// Line separators: an agent upload holds the profile JSON-escaped ("\n" as two bytes); an envelope or a
// bare profile holds it as plain text.
const (
	sepEscaped = 1
	sepNewline = 2
)

// stackTable numbers the distinct stacks of a bundle, up to max bytes of them.
type stackTable struct {
	ids   map[string]uint32
	list  [][]byte
	bytes int
	max   int
}

func (t *stackTable) id(stack []byte) (uint32, bool) {
	if id, ok := t.ids[string(stack)]; ok {
		return id, true
	}
	if t.bytes+len(stack) > t.max {
		return 0, false
	}
	if t.ids == nil {
		t.ids = map[string]uint32{}
	}
	id := uint32(len(t.list))
	s := string(stack)
	t.ids[s] = id
	t.list = append(t.list, []byte(s))
	t.bytes += len(stack)
	return id, true
}

// profileSpan finds the profile text in an upload: the JSON string of the "profile" field of an agent
// upload (escaped), or the whole content when it is itself a profile ("#" header line first).
func profileSpan(content []byte) (start, end int, sep byte, ok bool) {
	if len(content) > 0 && content[0] == '#' {
		return 0, len(content), sepNewline, true
	}
	k := bytes.Index(content, []byte(`"profile"`))
	if k < 0 {
		return 0, 0, 0, false
	}
	i := k + len(`"profile"`)
	for i < len(content) && (content[i] == ' ' || content[i] == ':') {
		i++
	}
	if i >= len(content) || content[i] != '"' {
		return 0, 0, 0, false
	}
	i++
	start = i
	// Jump from quote to quote: a quote ends the string unless an odd run of backslashes precedes it.
	for {
		q := bytes.IndexByte(content[i:], '"')
		if q < 0 {
			return 0, 0, 0, false
		}
		i += q
		bs := 0
		for k := i - 1; k >= start && content[k] == '\\'; k-- {
			bs++
		}
		if bs%2 == 0 {
			return start, i, sepEscaped, true
		}
		i++
	}
}

// encodeLines appends the encoded form of content to dst; ok is false when content is no profile.
func encodeLines(dst, content []byte, t *stackTable) ([]byte, bool) {
	start, end, sep, ok := profileSpan(content)
	if !ok {
		return dst, false
	}
	dst = binary.AppendUvarint(dst, uint64(start))
	dst = append(dst, content[:start]...)
	dst = append(dst, sep)
	body := content[start:end]
	var lines [][]byte
	if sep == sepNewline {
		lines = bytes.Split(body, []byte("\n"))
	} else {
		lines = splitEscaped(body)
	}
	dst = binary.AppendUvarint(dst, uint64(len(lines)))
	for i, l := range lines {
		stack, count, ok := splitCount(l)
		if i == 0 || !ok {
			dst = append(dst, tagLiteral)
			dst = binary.AppendUvarint(dst, uint64(len(l)))
			dst = append(dst, l...)
			continue
		}
		if id, ok := t.id(stack); ok {
			dst = binary.AppendUvarint(dst, uint64(tagFirstID)+uint64(id))
		} else {
			dst = append(dst, tagStack)
			dst = binary.AppendUvarint(dst, uint64(len(stack)))
			dst = append(dst, stack...)
		}
		dst = binary.AppendUvarint(dst, count)
	}
	dst = binary.AppendUvarint(dst, uint64(len(content)-end))
	return append(dst, content[end:]...), true
}

// splitEscaped splits a JSON string's bytes at its "\n" escapes (not at an escaped backslash before an n).
func splitEscaped(b []byte) [][]byte {
	var out [][]byte
	last := 0
	for i := 0; i < len(b); {
		k := bytes.IndexByte(b[i:], '\\') // escapes are rare but for the line breaks: jump between them
		if k < 0 || i+k+1 >= len(b) {
			break
		}
		i += k
		if b[i+1] == 'n' {
			out = append(out, b[last:i])
			last = i + 2
		}
		i += 2
	}
	return append(out, b[last:])
}

// splitCount splits "STACK COUNT" where COUNT is written as strconv would write it; ok is false otherwise
// (the line is then kept as it is).
func splitCount(l []byte) (stack []byte, count uint64, ok bool) {
	sp := bytes.LastIndexByte(l, ' ')
	if sp <= 0 || sp == len(l)-1 || len(l)-sp-1 > 18 || (l[sp+1] == '0' && sp+2 < len(l)) {
		return nil, 0, false
	}
	for _, c := range l[sp+1:] {
		if c < '0' || c > '9' {
			return nil, 0, false
		}
		count = count*10 + uint64(c-'0')
	}
	return l[:sp], count, true
}

var errLines = errors.New("encoded lines")

// decodeLines rebuilds an upload from its encoded form and the bundle's stacks.
func decodeLines(b []byte, stacks [][]byte, hint int) ([]byte, error) {
	out := make([]byte, 0, min(hint, 64<<20))
	uv := func() (uint64, error) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, errLines
		}
		b = b[n:]
		return v, nil
	}
	take := func(n uint64) ([]byte, error) {
		if n > uint64(len(b)) {
			return nil, errLines
		}
		s := b[:n]
		b = b[n:]
		return s, nil
	}
	n, err := uv()
	if err != nil {
		return nil, err
	}
	prefix, err := take(n)
	if err != nil {
		return nil, err
	}
	out = append(out, prefix...)
	if len(b) < 1 {
		return nil, errLines
	}
	sep := []byte(`\n`)
	if b[0] == sepNewline {
		sep = []byte("\n")
	} else if b[0] != sepEscaped {
		return nil, errLines
	}
	b = b[1:]
	nl, err := uv()
	if err != nil || nl > uint64(len(b)) {
		return nil, errLines
	}
	for i := range nl {
		if i > 0 {
			out = append(out, sep...)
		}
		tag, err := uv()
		if err != nil {
			return nil, err
		}
		switch {
		case tag == tagLiteral:
			n, err := uv()
			if err != nil {
				return nil, err
			}
			l, err := take(n)
			if err != nil {
				return nil, err
			}
			out = append(out, l...)
			continue
		case tag == tagStack:
			n, err := uv()
			if err != nil {
				return nil, err
			}
			s, err := take(n)
			if err != nil {
				return nil, err
			}
			out = append(out, s...)
		default:
			id := tag - tagFirstID
			if id >= uint64(len(stacks)) {
				return nil, fmt.Errorf("%w: stack %d of %d", errLines, id, len(stacks))
			}
			out = append(out, stacks[id]...)
		}
		c, err := uv()
		if err != nil {
			return nil, err
		}
		out = append(out, ' ')
		out = appendUint(out, c)
	}
	n, err = uv()
	if err != nil {
		return nil, err
	}
	suffix, err := take(n)
	if err != nil || len(b) != 0 {
		return nil, errLines
	}
	return append(out, suffix...), nil
}

func appendUint(b []byte, v uint64) []byte {
	var buf [20]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(b, buf[i:]...)
}

// encodeStacks is the table as stored: uvarint count, then each stack length-prefixed.
func encodeStacks(dst []byte, list [][]byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(list)))
	for _, s := range list {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	return dst
}

func decodeStacks(b []byte) ([][]byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, errLines
	}
	b = b[k:]
	list := make([][]byte, 0, n)
	for range n {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return nil, errLines
		}
		list = append(list, b[k:k+int(l)])
		b = b[k+int(l):]
	}
	if len(b) != 0 {
		return nil, errLines
	}
	return list, nil
}
