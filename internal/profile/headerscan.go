package profile

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// A fast path for ParseHeader. Every upload's header goes through ParseHeader twice (ingest, then the
// indexer), and encoding/json's reflection was a tenth of the indexer's CPU per profile. scanHeader reads
// the fields ParseHeader keeps with a hand-written scanner and gives up (ok=false) on anything that is
// not plain: then the caller runs encoding/json, which also words every error. So scanHeader only ever
// returns what encoding/json would have: it gives up on
//   - a syntax error anywhere (it checks the grammar of every value it skips, like encoding/json);
//   - a key with an escape or a non-ASCII byte, or one that matches a known key only case-insensitively
//     (encoding/json matches keys that way), or a known key seen twice (encoding/json merges or
//     overwrites: its rules, not ours);
//   - a known field of an unexpected JSON type, a null where ParseHeader fails on it, a string value with
//     an escape or a non-ASCII byte, a number float64 cannot hold;
//   - nesting deeper than maxScanDepth.
// FuzzScanHeaderAgreesWithEncodingJSON holds it to that.

// maxScanDepth bounds the nesting scanHeader follows; deeper headers take encoding/json.
const maxScanDepth = 64

// scanner walks one JSON text.
type scanner struct {
	data []byte
	i    int
	ok   bool
}

func (s *scanner) fail() { s.ok = false }

func (s *scanner) space() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next byte after white space, 0 at the end.
func (s *scanner) peek() byte {
	s.space()
	if s.i >= len(s.data) {
		return 0
	}
	return s.data[s.i]
}

func (s *scanner) expect(c byte) {
	if s.peek() != c {
		s.fail()
		return
	}
	s.i++
}

// plainString reads a string that has no escape and only printable ASCII, and returns its contents (a
// sub-slice of data); any other string fails the scan.
func (s *scanner) plainString() []byte {
	if s.peek() != '"' {
		s.fail()
		return nil
	}
	start := s.i + 1
	for j := start; j < len(s.data); j++ {
		c := s.data[j]
		if c == '"' {
			s.i = j + 1
			return s.data[start:j]
		}
		if c == '\\' || c < 0x20 || c >= 0x80 {
			break
		}
	}
	s.fail()
	return nil
}

// skipString checks a string's grammar (escapes, no control bytes) and steps over it.
func (s *scanner) skipString() {
	if s.peek() != '"' {
		s.fail()
		return
	}
	for j := s.i + 1; j < len(s.data); j++ {
		switch c := s.data[j]; {
		case c == '"':
			s.i = j + 1
			return
		case c < 0x20:
			s.fail()
			return
		case c == '\\':
			if j+1 >= len(s.data) {
				s.fail()
				return
			}
			switch s.data[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j++
			case 'u':
				if j+6 > len(s.data) {
					s.fail()
					return
				}
				for _, h := range s.data[j+2 : j+6] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						s.fail()
						return
					}
				}
				j += 5
			default:
				s.fail()
				return
			}
		}
	}
	s.fail()
}

// number reads a number by JSON's grammar and returns its text.
func (s *scanner) number() []byte {
	s.space()
	d, start := s.data, s.i
	j := start
	if j < len(d) && d[j] == '-' {
		j++
	}
	digits := func() int {
		k := j
		for j < len(d) && d[j] >= '0' && d[j] <= '9' {
			j++
		}
		return j - k
	}
	switch {
	case j < len(d) && d[j] == '0':
		j++
	case digits() == 0:
		s.fail()
		return nil
	}
	if j < len(d) && d[j] == '.' {
		j++
		if digits() == 0 {
			s.fail()
			return nil
		}
	}
	if j < len(d) && (d[j] == 'e' || d[j] == 'E') {
		j++
		if j < len(d) && (d[j] == '+' || d[j] == '-') {
			j++
		}
		if digits() == 0 {
			s.fail()
			return nil
		}
	}
	s.i = j
	return d[start:j]
}

// literal reads true, false or null.
func (s *scanner) literal(word string) {
	s.space()
	if !bytes.HasPrefix(s.data[s.i:], []byte(word)) {
		s.fail()
		return
	}
	s.i += len(word)
}

// skip steps over any value, checking its grammar, and returns its text.
func (s *scanner) skip(depth int) []byte {
	c := s.peek()
	start := s.i
	switch {
	case depth > maxScanDepth:
		s.fail()
	case c == '"':
		s.skipString()
	case c == '{':
		s.object(depth, func(key []byte) bool { s.skip(depth + 1); return true })
	case c == '[':
		s.i++
		if s.peek() == ']' {
			s.i++
			break
		}
		for s.ok {
			s.skip(depth + 1)
			if s.peek() == ',' {
				s.i++
				continue
			}
			s.expect(']')
			break
		}
	case c == 't':
		s.literal("true")
	case c == 'f':
		s.literal("false")
	case c == 'n':
		s.literal("null")
	default:
		s.number()
	}
	if !s.ok {
		return nil
	}
	return s.data[start:s.i]
}

// object reads an object, calling member for each key with the scanner on the value; member reads the
// value (or fails the scan). Keys must be plain (see plainString).
func (s *scanner) object(depth int, member func(key []byte) bool) {
	if depth > maxScanDepth {
		s.fail()
		return
	}
	s.expect('{')
	if !s.ok {
		return
	}
	if s.peek() == '}' {
		s.i++
		return
	}
	for s.ok {
		key := s.plainString()
		s.expect(':')
		if !s.ok || !member(key) {
			s.fail()
			return
		}
		if s.peek() == ',' {
			s.i++
			continue
		}
		s.expect('}')
		return
	}
}

// isNull reports whether the next value is null, and steps over it when it is.
func (s *scanner) isNull() bool {
	if s.peek() == 'n' {
		s.literal("null")
		return true
	}
	return false
}

// str reads a string or null (which leaves *dst alone, as encoding/json does) into dst.
func (s *scanner) str(dst *string) {
	if s.isNull() {
		return
	}
	*dst = string(s.plainString())
}

// boolean reads true, false or null (which leaves *dst alone).
func (s *scanner) boolean(dst *bool) {
	switch s.peek() {
	case 'n':
		s.literal("null")
	case 't':
		s.literal("true")
		*dst = true
	case 'f':
		s.literal("false")
		*dst = false
	default:
		s.fail()
	}
}

// float reads a number or null into dst; set says it was a number.
func (s *scanner) float(dst *float64, set *bool) {
	if s.isNull() {
		return
	}
	n := s.number()
	if !s.ok {
		return
	}
	v, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		s.fail()
		return
	}
	*dst, *set = v, true
}

// once reports whether the known key with bit b is seen for the first time, and marks it.
func once(seen *uint32, b uint32) bool {
	if *seen&b != 0 {
		return false
	}
	*seen |= b
	return true
}

// known returns the index of key in names, -1 when it is none of them, and fails the scan when it matches
// one only case-insensitively.
func (s *scanner) known(key []byte, names ...string) int {
	for i, n := range names {
		if string(key) == n {
			return i
		}
	}
	for _, n := range names {
		if bytes.EqualFold(key, []byte(n)) {
			s.fail()
			return -1
		}
	}
	return -1
}

// scanHeader is ParseHeader's fast path for body (the JSON object of the header line, trimmed); raw is
// the copy of body the Header owns, which RunArguments points into. See the comment at the top of the
// file for when it gives up.
func scanHeader(body, raw []byte) (h Header, ok bool) {
	s := &scanner{data: body, ok: true}
	var seen uint32
	var haveMetadata, haveHostname bool
	var topMode, mdMode string
	var runArgs []byte
	s.object(0, func(key []byte) bool {
		switch s.known(key, "containers", "container_names_enabled", "metadata", "metrics", "application_metadata_enabled", "profiling_mode") {
		case 0:
			if !once(&seen, 1<<0) {
				return false
			}
			if s.isNull() {
				return true
			}
			h.Containers = []string{}
			s.expect('[')
			if s.peek() == ']' {
				s.i++
				return s.ok
			}
			for s.ok {
				h.Containers = append(h.Containers, string(s.plainString()))
				if s.peek() == ',' {
					s.i++
					continue
				}
				s.expect(']')
				break
			}
		case 1:
			if !once(&seen, 1<<1) {
				return false
			}
			s.boolean(&h.ContainerNamesEnabled)
		case 2:
			if !once(&seen, 1<<2) || s.isNull() {
				return false // null metadata is an error: encoding/json words it
			}
			haveMetadata = true
			var mseen uint32
			s.object(1, func(key []byte) bool {
				switch s.known(key, "hostname", "agent_version", "cloud_provider", "cloud_info", "run_arguments", "spawn_time", "profiling_mode", "processors") {
				case 0:
					if !once(&mseen, 1<<0) || s.isNull() {
						return false
					}
					h.Hostname, haveHostname = string(s.plainString()), true
				case 1:
					if !once(&mseen, 1<<1) {
						return false
					}
					s.str(&h.AgentVersion)
				case 2:
					if !once(&mseen, 1<<2) {
						return false
					}
					s.str(&h.CloudProvider)
				case 3:
					if !once(&mseen, 1<<3) {
						return false
					}
					if s.isNull() {
						return true
					}
					var cseen uint32
					s.object(2, func(key []byte) bool {
						if s.known(key, "instance_type") == 0 {
							if !once(&cseen, 1) {
								return false
							}
							s.str(&h.InstanceType)
							return true
						}
						s.skip(3)
						return true
					})
				case 4:
					if !once(&mseen, 1<<4) {
						return false
					}
					if s.peek() != '{' {
						if s.isNull() {
							return true
						}
						return false // not an object: encoding/json's path words the error
					}
					start := s.i
					var rseen uint32
					s.object(2, func(key []byte) bool {
						switch s.known(key, "service_name", "profile_api_version") {
						case 0:
							if !once(&rseen, 1<<0) {
								return false
							}
							s.str(&h.ServiceName)
						case 1:
							if !once(&rseen, 1<<1) {
								return false
							}
							s.str(&h.ProfileAPIVersion)
						default:
							s.skip(3)
						}
						return true
					})
					runArgs = raw[start:s.i:s.i]
				case 5:
					if !once(&mseen, 1<<5) {
						return false
					}
					s.str(&h.SpawnTime)
				case 6:
					if !once(&mseen, 1<<6) {
						return false
					}
					s.str(&mdMode)
				case 7:
					if !once(&mseen, 1<<7) {
						return false
					}
					// The raw value, as encoding/json's RawMessage holds it (without the white space before it).
					s.space()
					start := s.i
					s.skip(2)
					h.Processors = raw[start:s.i:s.i]
				default:
					s.skip(2)
				}
				return true
			})
		case 3:
			if !once(&seen, 1<<3) {
				return false
			}
			if s.isNull() {
				return s.ok
			}
			var mseen uint32
			var cpuSet, memSet bool
			s.object(1, func(key []byte) bool {
				switch s.known(key, "cpu_avg", "mem_avg") {
				case 0:
					if !once(&mseen, 1<<0) {
						return false
					}
					s.float(&h.CPUAvg, &cpuSet)
				case 1:
					if !once(&mseen, 1<<1) {
						return false
					}
					s.float(&h.MemAvg, &memSet)
				default:
					s.skip(2)
				}
				return true
			})
			h.HasMetrics = cpuSet && memSet
		case 4:
			if !once(&seen, 1<<4) {
				return false
			}
			s.boolean(&h.AppMetadataEnabled)
		case 5:
			if !once(&seen, 1<<5) {
				return false
			}
			s.str(&topMode)
		default:
			s.skip(1)
		}
		return s.ok
	})
	s.space()
	if !s.ok || s.i != len(body) || !haveMetadata || !haveHostname {
		return Header{}, false
	}
	h.ProfilingMode = topMode
	if h.ProfilingMode == "" {
		h.ProfilingMode = mdMode
	}
	if runArgs != nil {
		h.RunArguments = json.RawMessage(runArgs)
	}
	h.Raw = json.RawMessage(raw)
	return h, true
}
