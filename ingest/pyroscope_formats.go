package ingest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Pyroscope's POST /ingest takes more body formats than the indexer reads (folded, lines, pprof). The
// others that can be read exactly without a new dependency are turned into folded text at the door:
// "trie" and "tree" (Pyroscope's varint serializations, sent by its older agents), "speedscope" (JSON)
// and "collapsed" (the Java agent's name for folded, before its 0.13.1). The stored object is then the
// folded text with the query saying format=folded and converted_from=<the format sent>: the indexer reads
// one format, and the same request converts to the same bytes, so a retry keeps its ids. "jfr" (the Java
// agent's default) is refused with a 415 saying how to switch (the agent sends OTLP since its 2.9.0):
// reading JFR exactly needs a JFR parser, which is not a dependency (github.com/grafana/jfr-parser is not
// on the module proxy here).

// pyroscopeFormats names the formats POST /ingest takes, for the refusals.
const pyroscopeFormats = "folded (also groups, collapsed), lines, pprof, trie, tree, speedscope"

// pyroscopeFormatOf picks a request's format as Pyroscope's handler does: format=trie or tree, or their
// Content-Types, first; then format; a multipart body without one is pprof; no format is folded. Unlike
// Pyroscope, which reads any other format as folded, an unknown format is refused (415).
func pyroscopeFormatOf(q url.Values, contentType string) (string, error) {
	f := q.Get("format")
	switch {
	case f == "trie" || contentType == "binary/octet-stream+trie":
		return "trie", nil
	case f == "tree" || contentType == "binary/octet-stream+tree":
		return "tree", nil
	}
	switch f {
	case "", "folded", "groups", "lines", "pprof", "speedscope":
		return f, nil
	case "collapsed":
		return "folded", nil
	case "jfr":
		return "", fail(http.StatusUnsupportedMediaType, "format jfr is not supported",
			errors.New("Flamestream reads "+pyroscopeFormats+" here and OTLP at /v1development/profiles; "+
				"set the Pyroscope Java agent's PYROSCOPE_FORMAT=otlp (agent 2.9.0 and later: it then sends OTLP to "+
				"/v1development/profiles) with PYROSCOPE_HTTP_HEADERS={\"GPROFILER-SERVICE-NAME\":\"<service>\"} "+
				"(its OTLP names no service), or PYROSCOPE_FORMAT=collapsed on agents before 0.13.1"))
	}
	return "", fail(http.StatusUnsupportedMediaType, "format "+strconv.Quote(f)+" is not supported",
		errors.New("Flamestream reads "+pyroscopeFormats))
}

// converts reports whether a request of format (pyroscopeFormatOf's) is converted to folded text.
func converts(format string, q url.Values) bool {
	return format == "trie" || format == "tree" || format == "speedscope" || q.Get("format") == "collapsed"
}

// convertedQuery is the stored query of a converted request: format=folded, converted_from=from, and
// units when the conversion sets them (a speedscope file says its units itself, as Pyroscope reads it).
func convertedQuery(q url.Values, from, units string) string {
	out := url.Values{}
	for k, v := range q {
		out[k] = v
	}
	out.Set("format", "folded")
	out.Set("converted_from", from)
	if units != "" {
		out.Set("units", units)
	}
	return out.Encode()
}

// foldedWriter builds folded text ("stack count" lines) within a size limit: a trie or tree writes every
// stack in full, so a small body of deep nodes can expand quadratically.
type foldedWriter struct {
	buf   bytes.Buffer
	limit int64
	n     int // stacks written
}

func (w *foldedWriter) add(stack []byte, count uint64) error {
	if count == 0 || len(stack) == 0 {
		return nil // no samples, or samples of no stack: Pyroscope drops them too
	}
	w.n++
	if bytes.ContainsAny(stack, "\n\r") {
		return fail(http.StatusBadRequest, fmt.Sprintf("malformed profile: stack %d has a line break in a frame name", w.n), nil)
	}
	if int64(w.buf.Len()+len(stack)+22) > w.limit {
		return fail(http.StatusRequestEntityTooLarge, "profile too large",
			fmt.Errorf("its stacks written out take more than %d bytes", w.limit))
	}
	w.buf.Write(stack)
	w.buf.WriteByte(' ')
	w.buf.WriteString(strconv.FormatUint(count, 10))
	w.buf.WriteByte('\n')
	return nil
}

// varintReader reads Pyroscope's serializations: unsigned LEB128 varints and byte strings.
type varintReader struct {
	b   []byte
	off int
}

func (r *varintReader) uvarint() (uint64, error) {
	v, n := binary.Uvarint(r.b[r.off:])
	switch {
	case n == 0:
		return 0, fmt.Errorf("truncated at byte %d", r.off)
	case n < 0:
		return 0, fmt.Errorf("varint at byte %d overflows 64 bits", r.off)
	}
	r.off += n
	return v, nil
}

func (r *varintReader) bytes(n uint64) ([]byte, error) {
	if n > uint64(len(r.b)-r.off) {
		return nil, fmt.Errorf("name of %d bytes at byte %d runs past the end (%d bytes)", n, r.off, len(r.b))
	}
	s := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return s, nil
}

// node reads one serialized node: name, value, number of children.
func (r *varintReader) node() (name []byte, value, children uint64, err error) {
	start := r.off
	l, err := r.uvarint()
	if err != nil {
		return nil, 0, 0, err
	}
	if name, err = r.bytes(l); err != nil {
		return nil, 0, 0, err
	}
	if value, err = r.uvarint(); err != nil {
		return nil, 0, 0, err
	}
	if children, err = r.uvarint(); err != nil {
		return nil, 0, 0, err
	}
	// Each child takes three bytes at least: more children than that is a lie, and would keep the walk
	// waiting for nodes that never come.
	if children > uint64(len(r.b)-r.off)/3 {
		return nil, 0, 0, fmt.Errorf("node at byte %d claims %d children in the %d bytes left", start, children, len(r.b)-r.off)
	}
	return name, value, children, nil
}

// walkPyroscope walks a serialized trie or tree: nodes in depth-first pre-order, each a varint name
// length, the name, a varint value and a varint number of children, which follow it. A node's key is its
// parent's key joined with its name by sep (nothing for a trie, whose names are fragments of the key;
// ";" for a tree, whose names are frames). emit gets every node's key and value, the root's included.
// topLevel says whether more than one tree may follow the first (a trie: Pyroscope reads to the end).
func walkPyroscope(body []byte, sep string, topLevel bool, emit func(key []byte, value uint64, root bool) error) error {
	r := varintReader{b: body}
	type level struct {
		left   uint64 // children still to read
		keyLen int    // the parent's key length
	}
	var key []byte
	var stack []level
	for r.off < len(body) {
		stack = append(stack[:0], level{left: 1})
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			if top.left == 0 {
				stack = stack[:len(stack)-1]
				continue
			}
			top.left--
			name, value, children, err := r.node()
			if err != nil {
				return err
			}
			root := len(stack) == 1
			key = key[:top.keyLen]
			if !root && len(stack) > 2 {
				key = append(key, sep...)
			}
			if !root || sep == "" {
				key = append(key, name...)
			}
			if err := emit(key, value, root); err != nil {
				return err
			}
			if children > 0 {
				stack = append(stack, level{left: children, keyLen: len(key)})
			}
		}
		if !topLevel && r.off < len(body) {
			return fmt.Errorf("%d bytes after the tree", len(body)-r.off)
		}
	}
	return nil
}

// trieToFolded converts Pyroscope's "trie" (transporttrie): the key of a node is the concatenation of
// the names from the root, a stack "a;b;c"; a node with a value ends a stack with that many samples.
func trieToFolded(body []byte, limit int64) ([]byte, error) {
	w := foldedWriter{limit: limit}
	err := walkPyroscope(body, "", true, func(key []byte, value uint64, _ bool) error { return w.add(key, value) })
	if err != nil {
		return nil, malformed("trie", err)
	}
	return w.buf.Bytes(), nil
}

// treeToFolded converts Pyroscope's "tree" (tree.SerializeNoDict): names are frames, the stack of a node
// the names below the root joined by ";", its value the samples of that stack itself (self). The root's
// name and value are not read, as Pyroscope's server does not read them.
func treeToFolded(body []byte, limit int64) ([]byte, error) {
	w := foldedWriter{limit: limit}
	err := walkPyroscope(body, ";", false, func(key []byte, value uint64, root bool) error {
		if root {
			return nil
		}
		return w.add(key, value)
	})
	if err != nil {
		return nil, malformed("tree", err)
	}
	return w.buf.Bytes(), nil
}

// malformed is the 400 of a body that does not read as its format; errors already replies pass.
func malformed(format string, err error) error {
	var ae *apiError
	if errors.As(err, &ae) {
		return err
	}
	return fail(http.StatusBadRequest, "malformed profile: "+format+": "+err.Error(), nil)
}

// speedscopeFile is the part of a speedscope file (https://www.speedscope.app/file-format-schema.json)
// that is read.
type speedscopeFile struct {
	Schema string `json:"$schema"`
	Shared struct {
		Frames []struct {
			Name string `json:"name"`
		} `json:"frames"`
	} `json:"shared"`
	Profiles []struct {
		Type    string    `json:"type"`
		Unit    string    `json:"unit"`
		Samples [][]int   `json:"samples"`
		Weights []float64 `json:"weights"`
		Events  []ssEvent `json:"events"`
	} `json:"profiles"`
}

type ssEvent struct {
	Type  string  `json:"type"`
	At    float64 `json:"at"`
	Frame int     `json:"frame"`
}

const speedscopeSchema = "https://www.speedscope.app/file-format-schema.json"

// speedscopeSeconds is how many seconds one unit of a speedscope value is; "none" values are samples.
var speedscopeSeconds = map[string]float64{"none": 0, "nanoseconds": 1e-9, "microseconds": 1e-6, "milliseconds": 1e-3, "seconds": 1}

// speedscopeToFolded converts a speedscope file's profiles (sampled: each sample a stack of frame indices
// with a weight; evented: open and close events, the time between two events counting for the stack
// open then) into folded stacks. Values in unit "none" are sample counts; time values become samples at
// sampleRate per second (the request's sampleRate, 100 by default as in Pyroscope). Values are summed per
// stack before rounding, so many short samples are not rounded away one by one. A profile in bytes is not
// CPU and is left out; units is the request's units: "bytes" when every profile was, else "samples".
func speedscopeToFolded(body []byte, sampleRate float64, limit int64) (text []byte, units string, err error) {
	var f speedscopeFile
	if err := json.Unmarshal(body, &f); err != nil {
		return nil, "", fail(http.StatusBadRequest, "malformed profile: speedscope: "+err.Error(), nil)
	}
	if f.Schema != speedscopeSchema {
		return nil, "", fail(http.StatusBadRequest, "malformed profile: speedscope: $schema is "+strconv.Quote(f.Schema)+", want "+speedscopeSchema, nil)
	}
	names := make([]string, len(f.Shared.Frames))
	for i, fr := range f.Shared.Frames {
		names[i] = frameName(fr.Name)
	}
	bad := func(format string, args ...any) error {
		return fail(http.StatusBadRequest, "malformed profile: speedscope: "+fmt.Sprintf(format, args...), nil)
	}
	var order []string
	sums := map[string]float64{} // bounded by the body: one entry per distinct stack in it
	var sb strings.Builder
	stackKey := func(frames []int, p int) (string, error) {
		sb.Reset()
		for i, fi := range frames {
			if fi < 0 || fi >= len(names) {
				return "", bad("profile %d: frame %d is not in shared.frames (%d frames)", p, fi, len(names))
			}
			if i > 0 {
				sb.WriteByte(';')
			}
			sb.WriteString(names[fi])
		}
		return sb.String(), nil
	}
	add := func(key string, v float64) {
		if _, ok := sums[key]; !ok {
			order = append(order, key)
		}
		sums[key] += v
	}
	cpu := 0
	for p, prof := range f.Profiles {
		sec, ok := speedscopeSeconds[prof.Unit]
		switch {
		case prof.Unit == "bytes":
			continue
		case !ok:
			return nil, "", bad("profile %d: unit %q is not one of none, nanoseconds, microseconds, milliseconds, seconds, bytes", p, prof.Unit)
		}
		cpu++
		scale := 1.0 // samples per unit
		if sec > 0 {
			scale = sec * sampleRate
		}
		switch prof.Type {
		case "sampled":
			if len(prof.Samples) != len(prof.Weights) {
				return nil, "", bad("profile %d has %d samples and %d weights", p, len(prof.Samples), len(prof.Weights))
			}
			for i, s := range prof.Samples {
				wt := prof.Weights[i]
				if wt < 0 || math.IsNaN(wt) || math.IsInf(wt, 0) {
					return nil, "", bad("profile %d: sample %d has weight %v", p, i, wt)
				}
				key, err := stackKey(s, p)
				if err != nil {
					return nil, "", err
				}
				add(key, wt*scale)
			}
		case "evented":
			var open []int
			last := math.Inf(-1)
			for i, ev := range prof.Events {
				if ev.At < last || math.IsNaN(ev.At) {
					return nil, "", bad("profile %d: event %d at %v is before the one before it (%v)", p, i, ev.At, last)
				}
				if ev.Frame < 0 || ev.Frame >= len(names) {
					return nil, "", bad("profile %d: event %d: frame %d is not in shared.frames (%d frames)", p, i, ev.Frame, len(names))
				}
				if len(open) > 0 && ev.At > last {
					key, err := stackKey(open, p)
					if err != nil {
						return nil, "", err
					}
					add(key, (ev.At-last)*scale)
				}
				switch ev.Type {
				case "O":
					open = append(open, ev.Frame)
				case "C":
					if len(open) == 0 || open[len(open)-1] != ev.Frame {
						return nil, "", bad("profile %d: event %d closes frame %d, which is not the innermost open frame", p, i, ev.Frame)
					}
					open = open[:len(open)-1]
				default:
					return nil, "", bad("profile %d: event %d has type %q, want O or C", p, i, ev.Type)
				}
				last = ev.At
			}
		default:
			return nil, "", bad("profile %d has type %q, want sampled or evented", p, prof.Type)
		}
	}
	if cpu == 0 && len(f.Profiles) > 0 {
		return nil, "bytes", nil // stored nowhere: describePyroscope skips a profile in bytes
	}
	w := foldedWriter{limit: limit}
	for _, key := range order {
		v := math.Round(sums[key])
		if v > math.MaxUint64/2 {
			return nil, "", bad("stack %q has %v samples", key, v)
		}
		if err := w.add([]byte(key), uint64(v)); err != nil {
			return nil, "", err
		}
	}
	return w.buf.Bytes(), "samples", nil
}

// frameName makes a speedscope frame name fit in a collapsed stack: ";" separates frames, so it becomes
// ":", a line break a space; a frame without a name is "[unknown]".
func frameName(s string) string {
	if strings.ContainsAny(s, ";\n\r") {
		s = strings.NewReplacer(";", ":", "\n", " ", "\r", " ").Replace(s)
	}
	if s = strings.TrimSpace(s); s == "" {
		return "[unknown]"
	}
	return s
}

// convertPyroscope turns the body of a format the indexer does not read into folded text. It returns
// the query and Content-Type to store (unchanged when there was nothing to convert).
func (s *Server) convertPyroscope(format string, q url.Values, rawQuery, contentType string, body []byte) (string, string, []byte, error) {
	if !converts(format, q) {
		return rawQuery, contentType, body, nil
	}
	limit := s.cfg.MaxDecompressedBytes
	var text []byte
	var units string
	var err error
	switch format {
	case "trie":
		text, err = trieToFolded(body, limit)
	case "tree":
		text, err = treeToFolded(body, limit)
	case "speedscope":
		rate := 100.0
		if v := q.Get("sampleRate"); v != "" {
			if rate, err = strconv.ParseFloat(v, 64); err != nil || rate <= 0 || math.IsInf(rate, 0) {
				return "", "", nil, fail(http.StatusBadRequest, "bad query: sampleRate "+strconv.Quote(v)+" is not a positive number", nil)
			}
		}
		text, units, err = speedscopeToFolded(body, rate, limit)
	default: // collapsed: folded by another name
		return convertedQuery(q, "collapsed", ""), "text/plain", body, nil
	}
	if err != nil {
		return "", "", nil, err
	}
	return convertedQuery(q, format, units), "text/plain", text, nil
}
