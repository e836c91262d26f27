package ingest

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/flamestream/flamestream/internal/profile"
)

// decodeUpload decodes the agent's upload body. Most of its bytes are one long string (the profile), which
// encoding/json scans three times (validate, scan, unquote) a byte at a time; the agent's body is a flat
// object, so a one-pass decoder handles it and hands everything unusual (nested values, \u escapes,
// invalid UTF-8, keys in other letter cases, any syntax error) to encoding/json, which then decides and
// words the error. Both give the same result on every input: FuzzDecodeUpload checks it.
func decodeUpload(b []byte, up *upload) error { return decodeUploadTo(b, up, nil) }

// decodeUploadTo is decodeUpload that unescapes the profile text into *scratch (grown when too small, and
// left pointing at the grown buffer) instead of a new slice. up.ProfileBytes then aliases *scratch or b.
func decodeUploadTo(b []byte, up *upload, scratch *[]byte) error {
	if fastDecodeUpload(b, up, scratch) {
		return nil
	}
	*up = upload{}
	if err := json.Unmarshal(b, up); err != nil {
		return err
	}
	if up.Profile != nil {
		up.ProfileBytes = []byte(*up.Profile)
	}
	return nil
}

type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// str reads a string at s.i (which is '"') and returns its value; with keep false it only validates.
// ok is false for anything the fast path leaves to encoding/json. A value with escapes is unescaped into
// *scratch when scratch is not nil (see decodeUploadTo), else into a new slice; one without is a slice
// of s.b.
//
// The profile is one long string with an escape ("\n") per line: the scan jumps from escape to escape
// with bytes.IndexByte (the closing quote is found once, not once per line) and checks each stretch
// between them with profile.CleanJSONSegment, 32 bytes at a time. It took twice as long when it looked at every
// eight-byte word for quotes, backslashes, control and non-ASCII bytes at once.
func (s *scanner) str(keep bool, scratch *[]byte) (v []byte, ok bool) {
	b := s.b
	start := s.i + 1 // after the opening quote
	j := start       // the next byte to look at
	q := -1          // the next '"' at or after j, once found
	var out []byte
	for {
		if q < j {
			n := bytes.IndexByte(b[j:], '"')
			if n < 0 {
				return nil, false
			}
			q = j + n
		}
		k := bytes.IndexByte(b[j:q], '\\')
		if k < 0 {
			if !profile.CleanJSONSegment(b[j:q]) {
				return nil, false
			}
			s.i = q + 1
			if out == nil {
				if !keep {
					return nil, true
				}
				return b[start:q], true
			}
			out = append(out, b[j:q]...)
			if scratch != nil {
				*scratch = out
			}
			return out, true
		}
		k += j
		if !profile.CleanJSONSegment(b[j:k]) || k+1 >= len(b) {
			return nil, false
		}
		if out == nil {
			// The unescaped text is shorter than what is left of the body: one allocation at most.
			if n := len(b) - start; scratch != nil && cap(*scratch) >= n {
				out = (*scratch)[:0]
			} else {
				out = make([]byte, 0, n)
			}
		}
		out = append(out, b[j:k]...)
		var r byte
		switch b[k+1] {
		case '"', '\\', '/':
			r = b[k+1]
		case 'n':
			r = '\n'
		case 't':
			r = '\t'
		case 'r':
			r = '\r'
		case 'b':
			r = '\b'
		case 'f':
			r = '\f'
		case 'u':
			// Go's encoder writes <, > and & as \u003c…; surrogate pairs (and their replacement rules)
			// are left to encoding/json.
			if k+6 > len(b) {
				return nil, false
			}
			n, err := strconv.ParseUint(string(b[k+2:k+6]), 16, 16)
			if err != nil || (n >= 0xd800 && n < 0xe000) {
				return nil, false
			}
			out = utf8.AppendRune(out, rune(n))
			j = k + 6
			continue
		default: // invalid escapes
			return nil, false
		}
		out = append(out, r)
		j = k + 2
	}
}

// number reads a JSON number at s.i and returns its text.
func (s *scanner) number() ([]byte, bool) {
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	digits := func() int {
		n := 0
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	intStart := s.i
	if n := digits(); n == 0 || (n > 1 && s.b[intStart] == '0') {
		return nil, false
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if digits() == 0 {
			return nil, false
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if digits() == 0 {
			return nil, false
		}
	}
	return s.b[start:s.i], true
}

func (s *scanner) literal(word string) bool {
	if bytes.HasPrefix(s.b[s.i:], []byte(word)) {
		s.i += len(word)
		return true
	}
	return false
}

var uploadFields = []string{"start_time", "end_time", "hostname", "profile", "gpid", "spawn_time", "cpu_avg", "mem_avg"}

func fastDecodeUpload(b []byte, up *upload, scratch *[]byte) bool {
	*up = upload{}
	s := &scanner{b: b}
	s.ws()
	if s.i >= len(b) || b[s.i] != '{' {
		return false
	}
	s.i++
	s.ws()
	if s.i < len(b) && b[s.i] == '}' {
		s.i++
		s.ws()
		return s.i == len(b)
	}
	for {
		if s.i >= len(b) || b[s.i] != '"' {
			return false
		}
		key, ok := s.str(true, nil)
		if !ok {
			return false
		}
		known := false
		for _, f := range uploadFields {
			if string(key) == f {
				known = true
			} else if bytes.EqualFold(key, []byte(f)) {
				return false // encoding/json would match it case-insensitively
			}
		}
		s.ws()
		if s.i >= len(b) || b[s.i] != ':' {
			return false
		}
		s.i++
		s.ws()
		if s.i >= len(b) {
			return false
		}
		vstart := s.i
		var val []byte
		isString, isNull := false, false
		switch c := b[s.i]; {
		case c == '"':
			isString = true
			var into *[]byte
			if string(key) == "profile" {
				into = scratch
			}
			if val, ok = s.str(known, into); !ok {
				return false
			}
		case c == '-' || (c >= '0' && c <= '9'):
			if val, ok = s.number(); !ok {
				return false
			}
		case s.literal("null"):
			isNull = true
		case s.literal("true"), s.literal("false"):
			if known {
				return false // a type error: encoding/json words it
			}
		default:
			return false // objects, arrays, garbage
		}
		if known && !assignUploadField(up, string(key), val, b[vstart:s.i], isString, isNull) {
			return false
		}
		s.ws()
		if s.i >= len(b) {
			return false
		}
		if b[s.i] == ',' {
			s.i++
			s.ws()
			continue
		}
		if b[s.i] != '}' {
			return false
		}
		s.i++
		s.ws()
		return s.i == len(b)
	}
}

func assignUploadField(up *upload, key string, val, raw []byte, isString, isNull bool) bool {
	if key == "gpid" {
		up.GPID = json.RawMessage(raw)
		return true
	}
	if isNull {
		// encoding/json leaves a field alone on null.
		return true
	}
	switch key {
	case "cpu_avg", "mem_avg":
		if isString {
			return false
		}
		f, err := strconv.ParseFloat(string(val), 64)
		if err != nil {
			return false
		}
		if key == "cpu_avg" {
			up.CPUAvg = f
		} else {
			up.MemAvg = f
		}
		return true
	}
	if !isString {
		return false
	}
	switch key {
	case "start_time":
		up.StartTime = string(val)
	case "end_time":
		up.EndTime = string(val)
	case "hostname":
		up.Hostname = string(val)
	case "spawn_time":
		up.SpawnTime = string(val)
	case "profile":
		// The value aliases the body when it has no escapes; the body lives as long as the request.
		up.ProfileBytes = val
		if up.ProfileBytes == nil {
			up.ProfileBytes = []byte{}
		}
		up.Profile = new(string)
	}
	return true
}
