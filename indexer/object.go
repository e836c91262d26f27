package indexer

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/flamestream/flamestream/internal/profile"
	"io"
	"sync"
	"unicode/utf8"

	// The same gzip as compress/gzip, about twice as fast to inflate; already a dependency of ch-go.
	"github.com/klauspost/compress/gzip"
)

// objectDecoder turns a stored upload (the agent's gzip JSON body) into the profile text. It keeps its
// buffers from object to object; the returned text is valid until the next decode.
type objectDecoder struct {
	zr    *gzip.Reader
	plain []byte
	text  []byte
	// rw rewrites frames by the rules it was made for (see Config.Rules).
	rw      *profile.Rewriter
	rwRules *profile.Rules
}

// rewriter returns the decoder's Rewriter of rules.
func (d *objectDecoder) rewriter(rules *profile.Rules) *profile.Rewriter {
	if d.rwRules != rules {
		d.rw, d.rwRules = rules.NewRewriter(), rules
	}
	return d.rw
}

var decoderPool = sync.Pool{New: func() any { return new(objectDecoder) }}

// decode inflates body (at most limit bytes) and returns its "profile" field.
func (d *objectDecoder) decode(body []byte, limit int64) ([]byte, error) {
	var err error
	if d.zr == nil {
		d.zr, err = gzip.NewReader(bytes.NewReader(body))
	} else {
		err = d.zr.Reset(bytes.NewReader(body))
	}
	if err != nil {
		return nil, fmt.Errorf("object is not gzip: %w", err)
	}
	// The gzip trailer holds the inflated size (mod 2^32): read in one allocation at most.
	size := int64(0)
	if len(body) >= 4 {
		size = int64(binary.LittleEndian.Uint32(body[len(body)-4:]))
	}
	if d.plain, err = readAll(d.plain[:0], io.LimitReader(d.zr, limit), min(size, limit)+1); err != nil {
		return nil, fmt.Errorf("object gzip: %w", err)
	}
	// A Pyroscope or OTLP object (profile.Envelope) is its own text; an agent upload is JSON, never "#".
	if len(d.plain) > 0 && d.plain[0] == '#' {
		return d.plain, nil
	}
	if text, ok := profileField(d.plain, d.text[:0]); ok {
		d.text = text
		return text, nil
	}
	// Anything unusual takes the standard decoder, which also words the errors.
	var up struct {
		Profile string `json:"profile"`
	}
	if err := json.Unmarshal(d.plain, &up); err != nil {
		return nil, fmt.Errorf("object JSON: %w", err)
	}
	d.text = append(d.text[:0], up.Profile...)
	return d.text, nil
}

func readAll(b []byte, r io.Reader, hint int64) ([]byte, error) {
	if int64(cap(b)) < hint {
		b = make([]byte, 0, hint)
	}
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if errors.Is(err, io.EOF) {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// profileField is a fast path for the one field the indexer reads from a body that ingest has already
// validated with encoding/json: it scans the top-level object once and unquotes "profile" into dst. It
// returns ok=false, and the caller uses encoding/json, whenever the input is anything but plain: a key
// with escapes or in another case (encoding/json matches keys case-insensitively), a surrogate escape,
// invalid UTF-8 or control bytes (which encoding/json would replace), or a syntax error.
func profileField(data, dst []byte) (text []byte, ok bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, false
	}
	i = skipSpace(data, i+1)
	found := false
	if i < len(data) && data[i] == '}' {
		i++
	} else {
		for {
			if i >= len(data) || data[i] != '"' {
				return nil, false
			}
			end, plain := scanString(data, i)
			if end < 0 || !plain {
				return nil, false
			}
			key := data[i+1 : end-1]
			i = skipSpace(data, end)
			if i >= len(data) || data[i] != ':' {
				return nil, false
			}
			i = skipSpace(data, i+1)
			switch {
			case string(key) == "profile" && i < len(data) && data[i] == '"':
				// The text is at most what is left of the body: one allocation when dst is too small (a
				// fresh decoder from the pool), instead of a dozen doublings and their copies.
				if cap(dst) < len(data)-i {
					dst = make([]byte, 0, len(data)-i)
				}
				dst, i = unquote(data, i, dst[:0])
				if i < 0 {
					return nil, false
				}
				found = true
			case bytes.EqualFold(key, []byte("profile")):
				return nil, false
			default:
				if i = skipValue(data, i, 0); i < 0 {
					return nil, false
				}
			}
			i = skipSpace(data, i)
			if i < len(data) && data[i] == ',' {
				i = skipSpace(data, i+1)
				continue
			}
			if i < len(data) && data[i] == '}' {
				i++
				break
			}
			return nil, false
		}
	}
	if skipSpace(data, i) != len(data) || !found {
		return nil, false
	}
	return dst, true
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' || data[i] == '\t') {
		i++
	}
	return i
}

// scanString returns the index after the string starting at data[i] (a quote), or -1, and whether it holds
// only printable ASCII without escapes.
func scanString(data []byte, i int) (end int, plain bool) {
	plain = true
	for j := i + 1; j < len(data); j++ {
		switch c := data[j]; {
		case c == '"':
			return j + 1, plain
		case c == '\\':
			plain = false
			j++
		case c < 0x20:
			return -1, false
		case c >= 0x80:
			plain = false
		}
	}
	return -1, false
}

// skipValue returns the index after the value at data[i], or -1. It checks structure, not the spelling of
// numbers and literals: ingest validated the body.
func skipValue(data []byte, i, depth int) int {
	if i >= len(data) || depth > 64 {
		return -1
	}
	switch data[i] {
	case '"':
		end, _ := scanString(data, i)
		return end
	case '{', '[':
		closer := byte('}')
		if data[i] == '[' {
			closer = ']'
		}
		i = skipSpace(data, i+1)
		if i < len(data) && data[i] == closer {
			return i + 1
		}
		for {
			if closer == '}' {
				if i >= len(data) || data[i] != '"' {
					return -1
				}
				if i, _ = scanString(data, i); i < 0 {
					return -1
				}
				i = skipSpace(data, i)
				if i >= len(data) || data[i] != ':' {
					return -1
				}
				i = skipSpace(data, i+1)
			}
			if i = skipValue(data, i, depth+1); i < 0 {
				return -1
			}
			i = skipSpace(data, i)
			if i < len(data) && data[i] == ',' {
				i = skipSpace(data, i+1)
				continue
			}
			if i < len(data) && data[i] == closer {
				return i + 1
			}
			return -1
		}
	default:
		j := i
		for j < len(data) && (data[j] == '-' || data[j] == '+' || data[j] == '.' ||
			data[j] >= '0' && data[j] <= '9' || data[j] >= 'a' && data[j] <= 'z' || data[j] >= 'A' && data[j] <= 'Z') {
			j++
		}
		if j == i {
			return -1
		}
		return j
	}
}

// unquote appends the string at data[i] to dst and returns the index after it, or -1 when the string is
// not one encoding/json would return byte for byte. It jumps from escape to escape with bytes.IndexByte:
// an agent's profile is one long string with a \n escape per line.
func unquote(data []byte, i int, dst []byte) ([]byte, int) {
	j := i + 1
	q := -1 // index of the next '"' at or after j
	for {
		if q < j {
			n := bytes.IndexByte(data[j:], '"')
			if n < 0 {
				return dst, -1
			}
			q = j + n
		}
		k := bytes.IndexByte(data[j:q], '\\')
		if k < 0 {
			if !profile.CleanJSONSegment(data[j:q]) {
				return dst, -1
			}
			return append(dst, data[j:q]...), q + 1
		}
		k += j
		if !profile.CleanJSONSegment(data[j:k]) {
			return dst, -1
		}
		dst = append(dst, data[j:k]...)
		if k+1 >= len(data) {
			return dst, -1
		}
		switch e := data[k+1]; e {
		case '"', '\\', '/':
			dst = append(dst, e)
		case 'n':
			dst = append(dst, '\n')
		case 't':
			dst = append(dst, '\t')
		case 'r':
			dst = append(dst, '\r')
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'u':
			if k+6 > len(data) {
				return dst, -1
			}
			var r rune
			for _, h := range data[k+2 : k+6] {
				switch {
				case h >= '0' && h <= '9':
					r = r<<4 | rune(h-'0')
				case h >= 'a' && h <= 'f':
					r = r<<4 | rune(h-'a'+10)
				case h >= 'A' && h <= 'F':
					r = r<<4 | rune(h-'A'+10)
				default:
					return dst, -1
				}
			}
			if r >= 0xD800 && r < 0xE000 {
				return dst, -1 // surrogates: leave their pairing rules to encoding/json
			}
			dst = utf8.AppendRune(dst, r)
			k += 4
		default:
			return dst, -1
		}
		j = k + 2
	}
}
