package profile

import (
	"bytes"
	"fmt"
	"unicode/utf8"
)

// Line is one stack sample line of a profile, as passed to the callback of
// Parse.
//
// Parse reuses a single Line (and the memory its slices point to) for every
// call of the callback: the slices are valid only during the call and must be
// copied if kept.
type Line struct {
	// AppIndex is the application-metadata index field, verbatim; nil
	// unless the header has application_metadata_enabled.
	AppIndex []byte
	// Container is the raw container name field, verbatim (often empty);
	// nil for profile API version "v1".
	Container []byte
	// Stack is the normalized stack "comm;frame1;...;frameN": the prefix
	// fields are removed, every frame is trimmed of surrounding white space
	// and empty frames are dropped. It is never empty.
	Stack []byte
	// Count is the sample count, never 0 and never above MaxCount.
	Count uint64
	// Number is the 1-based line number in the profile text (the header is
	// line 1), for error messages.
	Number int
}

// MaxCount is the largest sample count a profile may hold for one line, and
// for one stack of one container summed over the profile (see Aggregate): the
// samples.count column of ClickHouse is a UInt32. Larger counts are refused,
// never clamped or wrapped.
const MaxCount = 1<<32 - 1

// Format is the layout of a profile's stack lines. Only the endpoint the agent
// posted to tells it: an agent started with --profile-api-version v1 posts to
// /api/v1/profiles lines without prefix fields, yet its header may still say
// application_metadata_enabled: true.
type Format string

// Formats of ParseAs. The zero value "" means FormatV2 (events written before
// the format was recorded).
const (
	// FormatV2 is POST /api/v2/profiles: the header decides how many prefix
	// fields precede the process name (see Header.PrefixFields).
	FormatV2 Format = "v2"
	// FormatV1 is POST /api/v1/profiles: the lines have no prefix fields,
	// whatever the header says.
	FormatV1 Format = "v1"
)

// prefixFields returns the prefix field count of the lines of a profile in
// format f with header h.
func prefixFields(h *Header, f Format) (int, error) {
	switch f {
	case "", FormatV2:
		return h.PrefixFields(), nil
	case FormatV1:
		return 0, nil
	}
	return 0, fmt.Errorf("unknown profile format %q", string(f))
}

// LineError reports a malformed stack line.
type LineError struct {
	// Line is the 1-based line number in the profile text (the header is
	// line 1).
	Line int
	// Reason says what is wrong with the line.
	Reason string
}

// Error returns the error as "line N: reason".
func (e *LineError) Error() string {
	return fmt.Sprintf("line %d: %s", e.Line, e.Reason)
}

// Reasons of LineError.
const (
	reasonNoCount  = "missing sample count"
	reasonCountNaN = "sample count is not a number"
	reasonNoFrames = "no frames"
)

// countRangeReason words the error of a count above MaxCount; count is the
// digits as written (shortened when very long).
func countRangeReason(count []byte) string {
	const keep = 40
	shown := string(count)
	if len(count) > keep {
		shown = string(count[:keep]) + "…"
	}
	return fmt.Sprintf("sample count %s is over the limit of %d", shown, uint64(MaxCount))
}

// Parse is ParseAs with FormatV2.
func Parse(text []byte, fn func(*Line) error) (Header, error) {
	return ParseAs(text, FormatV2, fn)
}

// ParseAs parses a whole profile text of format f and calls fn once for every
// stack sample line, in order, then returns the header.
//
// The first line must be the header (see ParseHeader; its errors are
// returned as they are). Every further line that is not blank is
// "STACK COUNT": the count is the decimal unsigned integer after the last
// space and STACK is ";"-separated fields whose leading prefix fields depend
// on the format and the header (none for FormatV1; see Header.PrefixFields for
// FormatV2). Lines end with "\n" or "\r\n" and
// are trimmed of surrounding white space. Like the original indexer, Parse
// skips lines whose count is 0 and stacks whose first frame (the process
// name) starts with "swapper", without calling fn.
//
// A malformed line (no count, a count that is not a number or is above
// MaxCount, no frames) stops the parse with a *LineError; so does a count
// above MaxCount on a line that would be skipped. An unknown format is an
// error. An error returned by
// fn stops the parse and is returned unchanged. In both cases the header
// parsed so far is returned with the error. A profile holding only a header
// is valid and yields no lines.
//
// fn receives the same *Line on every call; see Line for the lifetime of its
// contents. Parse does not allocate per line.
func ParseAs(text []byte, f Format, fn func(*Line) error) (Header, error) {
	return parseAs(text, f, fn, false)
}

// parseAs is ParseAs. With checkOnly, a stack line whose frames plainly are not all empty is not
// normalized: fn gets its count without its stack (Check needs only that), and its line is not skipped
// when its stack starts with "swapper".
func parseAs(text []byte, f Format, fn func(*Line) error, checkOnly bool) (Header, error) {
	// Pyroscope and OTLP objects: see envelope.go.
	if kind, group, ok, err := envelopeFormat(f); ok || err != nil {
		if err != nil {
			return Header{}, err
		}
		return parseEnvelope(text, kind, group, fn)
	}
	first, rest, _ := bytes.Cut(text, []byte{'\n'})
	h, err := ParseHeader(first)
	if err != nil {
		return Header{}, err
	}
	prefix, err := prefixFields(&h, f)
	if err != nil {
		return h, err
	}
	p := parser{prefix: prefix, checkOnly: checkOnly}
	lineNo := 1
	for len(rest) > 0 {
		lineNo++
		var line []byte
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			line, rest = rest, nil
		}
		ok, reason := p.parseLine(line)
		if reason != "" {
			return h, &LineError{Line: lineNo, Reason: reason}
		}
		if !ok {
			continue
		}
		p.line.Number = lineNo
		if err := fn(&p.line); err != nil {
			return h, err
		}
	}
	return h, nil
}

// parser holds the state reused between lines.
type parser struct {
	prefix int
	line   Line
	buf    []byte // normalized stack when it is not a sub-slice of the line
	// checkOnly: see parseAs.
	checkOnly bool
}

// parseLine fills p.line from one line of text. It returns ok=false for lines
// to skip and a non-empty reason for malformed lines.
func (p *parser) parseLine(line []byte) (ok bool, reason string) {
	line = trimSpace(line)
	if len(line) == 0 {
		return false, ""
	}
	sp := bytes.LastIndexByte(line, ' ')
	if sp < 0 {
		return false, reasonNoCount
	}
	count, reason := parseCount(line[sp+1:])
	if reason != "" {
		return false, reason
	}
	fields := line[:sp]

	l := &p.line
	l.AppIndex, l.Container = nil, nil
	for n := 0; n < p.prefix; n++ {
		i := bytes.IndexByte(fields, ';')
		if i < 0 {
			return false, reasonNoFrames
		}
		if p.prefix == 2 && n == 0 {
			l.AppIndex = fields[:i]
		} else {
			l.Container = fields[:i]
		}
		fields = fields[i+1:]
	}

	var stack []byte
	if !p.checkOnly || !hasFrame(fields) {
		if stack, reason = p.normalize(fields); reason != "" {
			return false, reason
		}
	}
	if count == 0 || bytes.HasPrefix(stack, []byte("swapper")) {
		return false, ""
	}
	l.Stack, l.Count = stack, count
	return true, ""
}

// normalize returns the frames of fields joined by ";" with surrounding white
// space trimmed from each frame and empty frames dropped. When fields is
// already normalized it is returned as is, without copying.
func (p *parser) normalize(fields []byte) ([]byte, string) {
	if isNormalized(fields) {
		return fields, ""
	}
	buf := p.buf[:0]
	for len(fields) > 0 {
		var f []byte
		if i := bytes.IndexByte(fields, ';'); i >= 0 {
			f, fields = fields[:i], fields[i+1:]
		} else {
			f, fields = fields, nil
		}
		f = bytes.TrimSpace(f)
		if len(f) == 0 {
			continue
		}
		if len(buf) > 0 {
			buf = append(buf, ';')
		}
		buf = append(buf, f...)
	}
	p.buf = buf
	if len(buf) == 0 {
		return nil, reasonNoFrames
	}
	return buf, ""
}

// hasFrame reports whether fields plainly holds a frame that white space trimming leaves non-empty: its
// first byte that is neither a separator nor ASCII white space is an ASCII byte. Usually that is the first
// byte, where isNormalized reads the whole line. false means "not plainly": normalize decides (a
// non-ASCII byte may be Unicode white space).
func hasFrame(fields []byte) bool {
	for _, b := range fields {
		switch b {
		case ';', ' ', '\t', '\n', '\v', '\f', '\r':
			continue
		}
		return b < utf8.RuneSelf
	}
	return false
}

// isNormalized reports whether fields is a non-empty list of non-empty frames
// with no surrounding white space.
func isNormalized(fields []byte) bool {
	for {
		if len(fields) == 0 {
			return false // empty frame
		}
		i := bytes.IndexByte(fields, ';')
		f := fields
		if i >= 0 {
			f = fields[:i]
		}
		if len(f) == 0 || maySpace(f[0]) || maySpace(f[len(f)-1]) {
			if len(f) == 0 || len(bytes.TrimSpace(f)) != len(f) {
				return false
			}
		}
		if i < 0 {
			return true
		}
		fields = fields[i+1:]
	}
}

// maySpace reports whether b may be (part of) a white-space character as
// understood by bytes.TrimSpace.
func maySpace(b byte) bool {
	return b <= ' ' || b >= utf8.RuneSelf
}

// trimSpace trims white space like bytes.TrimSpace, with a fast path for the
// usual line without any.
func trimSpace(b []byte) []byte {
	if len(b) == 0 || (!maySpace(b[0]) && !maySpace(b[len(b)-1])) {
		return b
	}
	return bytes.TrimSpace(b)
}

// parseCount parses a decimal unsigned sample count of at most MaxCount.
func parseCount(s []byte) (uint64, string) {
	if len(s) == 0 {
		return 0, reasonCountNaN
	}
	var n uint64
	over := false
	for _, c := range s {
		d := uint64(c) - '0'
		if d > 9 {
			return 0, reasonCountNaN
		}
		if !over {
			// n <= MaxCount here, so n*10+d cannot overflow 64 bits.
			n = n*10 + d
			over = n > MaxCount
		}
	}
	if over {
		return 0, countRangeReason(s)
	}
	return n, ""
}
