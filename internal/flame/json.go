package flame

import (
	"io"
	"math"
	"strconv"
	"unicode/utf8"
)

// AppendJSON appends the JSON encoding of the tree under n to dst: the same bytes as encoding/json's
// Marshal of n (HTML-safe string escaping, invalid UTF-8 as U+FFFD, the same number formats), written
// without reflection, several times faster for the trees of thousands of nodes the query API sends. With
// totals, the root always carries "total" and "base_total", zero or not, as the root of a diff must.
func (n *Node) AppendJSON(dst []byte, totals bool) []byte {
	return n.appendJSON(dst, totals, nil)
}

// WriteJSON writes the JSON encoding of the tree under n (see AppendJSON) to w, a piece at a time through
// a buffer of its own, so that a large tree is never held in memory as a whole.
func (n *Node) WriteJSON(w io.Writer, totals bool) error {
	bw := &jsonWriter{w: w, buf: make([]byte, 0, 2*jsonChunk)}
	bw.buf = n.appendJSON(bw.buf, totals, bw)
	bw.flush(0)
	return bw.err
}

// jsonChunk is how much JSON WriteJSON gathers before it writes.
const jsonChunk = 32 << 10

type jsonWriter struct {
	w   io.Writer
	buf []byte
	err error
}

// flush writes the buffer once it holds at least min bytes.
func (jw *jsonWriter) flush(min int) {
	if len(jw.buf) < min || len(jw.buf) == 0 {
		return
	}
	if jw.err == nil {
		_, jw.err = jw.w.Write(jw.buf)
	}
	jw.buf = jw.buf[:0]
}

func (n *Node) appendJSON(dst []byte, totals bool, jw *jsonWriter) []byte {
	dst = append(dst, `{"name":`...)
	dst = appendString(dst, n.Name)
	dst = append(dst, `,"value":`...)
	dst = strconv.AppendUint(dst, n.Value, 10)
	dst = append(dst, `,"self":`...)
	dst = strconv.AppendUint(dst, n.Self, 10)
	dst = appendUint(dst, `,"base":`, n.Base, false)
	dst = appendUint(dst, `,"base_self":`, n.BaseSelf, false)
	if n.Other {
		dst = append(dst, `,"other":true`...)
	}
	dst = appendUint(dst, `,"total":`, n.Total, totals)
	dst = appendUint(dst, `,"base_total":`, n.BaseTotal, totals)
	dst = appendFloat(dst, `,"share":`, n.Share)
	dst = appendFloat(dst, `,"base_share":`, n.BaseShare)
	dst = appendFloat(dst, `,"delta":`, n.Delta)
	if len(n.Children) > 0 {
		dst = append(dst, `,"children":[`...)
		for i, c := range n.Children {
			if i > 0 {
				dst = append(dst, ',')
			}
			if c == nil {
				dst = append(dst, "null"...)
				continue
			}
			dst = c.appendJSON(dst, false, jw)
			if jw != nil && len(dst) >= jsonChunk {
				jw.buf = dst
				jw.flush(jsonChunk)
				dst = jw.buf
			}
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

// appendUint appends an omitempty integer field.
func appendUint(dst []byte, key string, v uint64, always bool) []byte {
	if v == 0 && !always {
		return dst
	}
	return strconv.AppendUint(append(dst, key...), v, 10)
}

// appendFloat appends an omitempty float64 field the way encoding/json formats it: the shortest
// representation, in exponent form below 1e-6 and from 1e21 on, with a one-digit negative exponent
// written without its leading zero.
func appendFloat(dst []byte, key string, f float64) []byte {
	if f == 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return dst // NaN and infinities have no JSON form; they cannot come out of the counts
	}
	dst = append(dst, key...)
	if out, ok := appendSixDigits(dst, f); ok {
		return out
	}
	format := byte('f')
	if abs := math.Abs(f); abs < 1e-6 || abs >= 1e21 {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string escaped as encoding/json does by default.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendSixDigits appends f in encoding/json's format when f is, exactly, the float nearest to a decimal
// of at most six significant digits between 1e-6 and 1e15 (what sixDigits makes): then those digits are
// its shortest representation, written here without strconv's general algorithm. It reports false for
// any other f.
func appendSixDigits(dst []byte, f float64) ([]byte, bool) {
	a := math.Abs(f)
	if !(a >= 1e-6 && a < 1e15) {
		return dst, false
	}
	e := 0 // 10^e <= a < 10^(e+1)
	for a >= pow10[e+1] {
		e++
	}
	for e <= 0 && e > -7 && a < 1/pow10[-e] {
		e--
	}
	var m float64
	if k := 5 - e; k >= 0 {
		m = math.Round(a * pow10[k])
		if m/pow10[k] != a {
			return dst, false
		}
	} else {
		m = math.Round(a / pow10[-k])
		if m*pow10[-k] != a {
			return dst, false
		}
	}
	if m < 100000 || m > 999999 {
		return dst, false
	}
	var digits [6]byte
	n := int(m)
	for i := 5; i >= 0; i-- {
		digits[i] = byte('0' + n%10)
		n /= 10
	}
	d := digits[:]
	for len(d) > 1 && d[len(d)-1] == '0' {
		d = d[:len(d)-1]
	}
	if f < 0 {
		dst = append(dst, '-')
	}
	switch point := e + 1; {
	case point <= 0:
		dst = append(dst, '0', '.')
		for range -point {
			dst = append(dst, '0')
		}
		dst = append(dst, d...)
	case point < len(d):
		dst = append(dst, d[:point]...)
		dst = append(dst, '.')
		dst = append(dst, d[point:]...)
	default:
		dst = append(dst, d...)
		for range point - len(d) {
			dst = append(dst, '0')
		}
	}
	return dst, true
}
