package profile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"

	pprof "github.com/google/pprof/profile"
)

// MaxInflatedPprof bounds what a gzip pprof inside a request may inflate to:
// a bomb costs this much memory at most.
const MaxInflatedPprof = 128 << 20

// maxPyroscopeParts bounds the parts of a multipart request read.
const maxPyroscopeParts = 8

// PyroscopeRequest is the query of a Pyroscope POST /ingest, as Pyroscope's
// server reads it.
type PyroscopeRequest struct {
	// App is the application name: the name parameter up to "{", without a
	// profile-type suffix (".cpu", ".itimer", ".alloc_objects", ...).
	App string
	// Type is that suffix without its dot, "" when there was none.
	Type string
	// Labels are the name's {k=v,...} pairs.
	Labels map[string]string
	// Service is the service_name label when set, else App.
	Service string
	// From and Until are the period (from, until: Unix seconds,
	// milliseconds, microseconds or nanoseconds by their digit count, as
	// Pyroscope reads them); the received time when absent.
	From, Until time.Time
	// Format is "folded" (the default, also "groups"), "lines" or "pprof".
	Format string
	// Units is the units parameter ("samples" when absent).
	Units string
	// SpyName is the spyName parameter.
	SpyName string
}

// pyroscopeTypes are the profile-type suffixes Pyroscope SDKs put after the
// application name, and whether the type is a CPU profile.
var pyroscopeTypes = map[string]bool{
	"cpu": true, "itimer": true,
	"wall": false, "alloc_objects": false, "alloc_space": false, "inuse_objects": false, "inuse_space": false,
	"goroutines": false, "mutex_count": false, "mutex_duration": false, "block_count": false,
	"block_duration": false, "lock_count": false, "lock_duration": false, "alloc_in_new_tlab_objects": false,
	"alloc_in_new_tlab_bytes": false, "alloc_outside_tlab_objects": false, "alloc_outside_tlab_bytes": false,
	"live": false, "exceptions": false,
}

// ParsePyroscopeName parses Pyroscope's name parameter "app.cpu{k=v,...}"
// like Pyroscope's labelset parser: the application name is the text before
// "{", trimmed; pairs are separated by ",", keys and values trimmed; "}" ends
// them. A known profile-type suffix is cut from the application name.
func ParsePyroscopeName(name string) (app, typ string, labels map[string]string, err error) {
	head, rest, hasLabels := strings.Cut(name, "{")
	app = strings.TrimSpace(head)
	if app == "" {
		return "", "", nil, errors.New("name has no application name (want app.cpu{key=value,...})")
	}
	if i := strings.LastIndexByte(app, '.'); i > 0 {
		if _, ok := pyroscopeTypes[app[i+1:]]; ok {
			app, typ = app[:i], app[i+1:]
		}
	}
	labels = map[string]string{}
	if hasLabels {
		body, _, _ := strings.Cut(rest, "}")
		for _, pair := range strings.Split(body, ",") {
			if strings.TrimSpace(pair) == "" {
				continue
			}
			k, v, ok := strings.Cut(pair, "=")
			k = strings.TrimSpace(k)
			if !ok || k == "" {
				return "", "", nil, fmt.Errorf("name label %q is not key=value", pair)
			}
			labels[k] = strings.TrimSpace(v)
		}
	}
	return app, typ, labels, nil
}

// pyroscopeTime reads from or until as Pyroscope does: digits are Unix time
// whose unit follows their count (19 nanoseconds, 16 microseconds, 13
// milliseconds, otherwise seconds; 8 digits that make a date are that day).
func pyroscopeTime(field, s string, def time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return time.Time{}, fmt.Errorf("%s %q is not a Unix time", field, s)
	}
	switch len(s) {
	case 8:
		if t, err := time.Parse("20060102", s); err == nil {
			return t, nil
		}
		return time.Unix(v, 0).UTC(), nil
	case 13:
		return time.UnixMilli(v).UTC(), nil
	case 16:
		return time.UnixMicro(v).UTC(), nil
	case 19:
		return time.Unix(0, v).UTC(), nil
	}
	return time.Unix(v, 0).UTC(), nil
}

// ParsePyroscopeQuery reads the query of a Pyroscope POST /ingest; received
// stands for an absent from or until.
func ParsePyroscopeQuery(rawQuery, contentType string, received time.Time) (PyroscopeRequest, error) {
	var r PyroscopeRequest
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return r, fmt.Errorf("query: %v", err)
	}
	if r.App, r.Type, r.Labels, err = ParsePyroscopeName(q.Get("name")); err != nil {
		return r, err
	}
	r.Service = r.App
	if s := r.Labels["service_name"]; s != "" {
		r.Service = s
	}
	if r.From, err = pyroscopeTime("from", q.Get("from"), received); err != nil {
		return r, err
	}
	if r.Until, err = pyroscopeTime("until", q.Get("until"), received); err != nil {
		return r, err
	}
	r.Units, r.SpyName = q.Get("units"), q.Get("spyName")
	if r.Units == "" {
		r.Units = "samples"
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	switch f := q.Get("format"); {
	case f == "pprof" || (f == "" && mt == "multipart/form-data"):
		r.Format = "pprof"
	case f == "" || f == "folded" || f == "groups":
		r.Format = "folded"
	case f == "lines":
		r.Format = "lines"
	default:
		return r, fmt.Errorf("format %q is not supported (folded, lines or pprof)", f)
	}
	return r, nil
}

// describePyroscope parses a Pyroscope object, calling fn (when not nil) for
// every sample, and returns its unit.
func describePyroscope(text []byte, fn func(*Line) error) ([]Unit, error) {
	env, body, err := decodeEnvelope(text, envelopePyroscope)
	if err != nil {
		return nil, err
	}
	req, err := ParsePyroscopeQuery(env.Query, env.ContentType, env.Received)
	if err != nil {
		return nil, err
	}
	get := func(k string) string { return req.Labels[k] }
	u := Unit{Format: FormatPyroscope, Service: req.Service, Host: hostOf(get), InstanceType: instanceTypeOf(get),
		Start: req.From, End: req.Until}
	container := containerOf(get)
	comm := frameText(req.App)
	u.Content = append([]byte(env.Query), 0)
	var c checkedUnit
	emit := func(l *Line) error {
		if err := c.add(l); err != nil {
			return err
		}
		if fn != nil {
			return fn(l)
		}
		return nil
	}
	switch {
	case req.Type != "" && !pyroscopeTypes[req.Type]:
		u.Skipped = "a " + req.Type + " profile: Flamestream keeps CPU profiles only"
	case req.Format == "pprof":
		var prof []byte
		var stc map[string]sampleTypeConfig
		if prof, stc, err = pprofOfRequest(env.ContentType, body); err != nil {
			return nil, err
		}
		u.Content = append(u.Content, prof...)
		if u.Skipped, err = pprofLines(prof, stc, comm, container, emit); err != nil {
			return nil, err
		}
	case req.Units != "samples":
		u.Skipped = "units " + req.Units + ": Flamestream keeps CPU samples only"
	default:
		u.Content = append(u.Content, body...)
		if err := foldedLines(body, req.Format == "lines", comm, []byte(container), emit); err != nil {
			return nil, err
		}
	}
	c.fill(&u)
	return []Unit{u}, nil
}

// foldedLines reads Pyroscope's folded ("stack count" per line) or lines
// (one stack per line, each counting 1) body; every stack gets comm first.
func foldedLines(body []byte, eachOnce bool, comm string, container []byte, emit func(*Line) error) error {
	p := parser{}
	var stack []byte
	n := 0
	for len(body) > 0 {
		n++
		var line []byte
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			line, body = body, nil
		}
		line = trimSpace(line)
		if len(line) == 0 {
			continue
		}
		count := uint64(1)
		fields := line
		if !eachOnce {
			sp := bytes.LastIndexByte(line, ' ')
			if sp < 0 {
				return &LineError{Line: n, Reason: reasonNoCount}
			}
			c, reason := parseCount(line[sp+1:])
			if reason != "" {
				return &LineError{Line: n, Reason: reason}
			}
			count, fields = c, line[:sp]
		}
		norm, reason := p.normalize(fields)
		if reason != "" {
			return &LineError{Line: n, Reason: reason}
		}
		if count == 0 {
			continue
		}
		stack = append(append(append(stack[:0], comm...), ';'), norm...)
		l := Line{Container: container, Stack: stack, Count: count, Number: n}
		if err := emit(&l); err != nil {
			return err
		}
	}
	return nil
}

// sampleTypeConfig is an entry of a Pyroscope request's sample_type_config.
type sampleTypeConfig struct {
	Units       string `json:"units"`
	DisplayName string `json:"display-name"`
	Cumulative  bool   `json:"cumulative"`
}

// pprofOfRequest returns the pprof of a request body: the body itself, or the
// "profile" part of a multipart form (with its sample_type_config), as
// Pyroscope's server reads it. A prev_profile part (cumulative profiles of
// old SDKs) is refused, as Pyroscope refuses it.
func pprofOfRequest(contentType string, body []byte) ([]byte, map[string]sampleTypeConfig, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/form-data" {
		return body, nil, nil
	}
	boundary := params["boundary"]
	if boundary == "" {
		return nil, nil, errors.New("multipart body without a boundary")
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	var prof []byte
	var stc map[string]sampleTypeConfig
	for i := 0; ; i++ {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("multipart body: %v", err)
		}
		if i >= maxPyroscopeParts {
			return nil, nil, fmt.Errorf("multipart body has more than %d parts", maxPyroscopeParts)
		}
		data, err := io.ReadAll(part) // bounded: the body is in memory already
		if err != nil {
			return nil, nil, fmt.Errorf("multipart body: %v", err)
		}
		switch part.FormName() {
		case "profile":
			prof = data
		case "prev_profile":
			if len(data) > 0 {
				return nil, nil, errors.New("prev_profile is not supported: update the Pyroscope SDK (cumulative profiles)")
			}
		case "sample_type_config":
			if err := json.Unmarshal(data, &stc); err != nil {
				return nil, nil, fmt.Errorf("sample_type_config: %v", err)
			}
		}
	}
	if prof == nil {
		return nil, nil, errors.New("multipart body has no profile part")
	}
	return prof, stc, nil
}

// inflatePprof undoes the gzip most pprof files are in, within MaxInflatedPprof.
func inflatePprof(b []byte) ([]byte, error) {
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		return b, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("pprof: %v", err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, MaxInflatedPprof+1))
	if err != nil {
		return nil, fmt.Errorf("pprof: %v", err)
	}
	if len(out) > MaxInflatedPprof {
		return nil, fmt.Errorf("pprof inflates past %d bytes", MaxInflatedPprof)
	}
	return out, nil
}

// cpuSampleType picks the CPU sample type of a pprof: a count of samples
// ("samples"/count in Go's CPU profile) when there is one, else CPU time with
// a period to divide it by. div is 1 for counts. ok is false for a profile
// without CPU samples (heap, mutex, wall clock, ...).
func cpuSampleType(p *pprof.Profile, stc map[string]sampleTypeConfig) (idx int, div int64, ok bool) {
	isCPU := func(st *pprof.ValueType) bool {
		name := st.Type
		if c, ok := stc[name]; ok && c.DisplayName != "" {
			name = c.DisplayName
		} else if name == "samples" {
			name = "cpu" // Pyroscope's default sample type mapping
		}
		return !strings.Contains(name, "wall") && (strings.Contains(name, "cpu") || name == "itimer")
	}
	ns := -1
	for i, st := range p.SampleType {
		if !isCPU(st) {
			continue
		}
		switch st.Unit {
		case "count", "samples", "":
			return i, 1, true
		case "nanoseconds":
			if ns < 0 {
				ns = i
			}
		}
	}
	if ns >= 0 && p.Period > 0 && p.PeriodType != nil && p.PeriodType.Unit == "nanoseconds" {
		return ns, p.Period, true
	}
	return 0, 0, false
}

// pprofLines reads a pprof's CPU samples, one Line per sample, frames root
// first after comm. A sample's string labels that name a container (pprof
// labels set with the SDK's tag wrapper) override the request's.
func pprofLines(data []byte, stc map[string]sampleTypeConfig, comm, container string, emit func(*Line) error) (skipped string, err error) {
	raw, err := inflatePprof(data)
	if err != nil {
		return "", err
	}
	p, err := pprof.ParseData(raw)
	if err != nil {
		return "", fmt.Errorf("pprof: %v", err)
	}
	idx, div, ok := cpuSampleType(p, stc)
	if !ok {
		types := make([]string, len(p.SampleType))
		for i, st := range p.SampleType {
			types[i] = st.Type + "/" + st.Unit
		}
		return "sample types " + strings.Join(types, ", ") + ": Flamestream keeps CPU profiles only", nil
	}
	frames := map[*pprof.Location][]string{}
	var stack []byte
	for n, s := range p.Sample {
		if idx >= len(s.Value) {
			return "", fmt.Errorf("pprof sample %d has %d values, want %d", n+1, len(s.Value), len(p.SampleType))
		}
		v := s.Value[idx]
		if v < 0 {
			return "", fmt.Errorf("pprof sample %d: negative value %d", n+1, v)
		}
		count := uint64(v)
		if div > 1 {
			count = uint64((v + div/2) / div)
		}
		if count == 0 {
			continue
		}
		if count > MaxCount {
			return "", &LineError{Line: n + 1, Reason: fmt.Sprintf("sample count %d is over the limit of %d", count, uint64(MaxCount))}
		}
		stack = append(stack[:0], comm...)
		for i := len(s.Location) - 1; i >= 0; i-- {
			loc := s.Location[i]
			names, ok := frames[loc]
			if !ok {
				names = pprofFrames(loc)
				frames[loc] = names
			}
			for _, f := range names {
				stack = append(append(stack, ';'), f...)
			}
		}
		c := container
		if len(s.Label) > 0 {
			get := func(k string) string {
				if v := s.Label[k]; len(v) > 0 {
					return v[0]
				}
				return ""
			}
			if lc := containerOf(get); lc != "" {
				c = lc
			}
		}
		l := Line{Container: []byte(c), Stack: stack, Count: count, Number: n + 1}
		if err := emit(&l); err != nil {
			return "", err
		}
	}
	return "", nil
}

// pprofFrames names the frames of one location, caller first: its function
// names (inlined callees after their caller), or the mapped file and offset
// of an unsymbolized address.
func pprofFrames(loc *pprof.Location) []string {
	var out []string
	for i := len(loc.Line) - 1; i >= 0; i-- {
		fn := loc.Line[i].Function
		if fn == nil {
			continue
		}
		name := fn.Name
		if name == "" {
			name = fn.SystemName
		}
		if name = frameText(name); name != "" {
			out = append(out, name)
		}
	}
	if len(out) == 0 {
		out = append(out, addressFrame(loc.Mapping, loc.Address))
	}
	return out
}

// addressFrame names an unsymbolized frame "file+0xoffset" (or "0xaddress").
func addressFrame(m *pprof.Mapping, addr uint64) string {
	if m != nil && m.File != "" {
		return frameText(path.Base(m.File)) + "+0x" + strconv.FormatUint(addr-m.Start+m.Offset, 16)
	}
	return "0x" + strconv.FormatUint(addr, 16)
}

// frameText makes a name fit in a collapsed stack: ";" separates frames and a
// newline ends a stack, so they become ":" and " ", and the name is trimmed.
func frameText(s string) string {
	if strings.ContainsAny(s, ";\n\r") {
		s = strings.NewReplacer(";", ":", "\n", " ", "\r", " ").Replace(s)
	}
	return strings.TrimSpace(s)
}
