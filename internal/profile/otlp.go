package profile

import (
	"fmt"
	"path"
	"strconv"
	"time"

	collpb "go.opentelemetry.io/proto/otlp/collector/profiles/v1development"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	pb "go.opentelemetry.io/proto/otlp/profiles/v1development"
	"google.golang.org/protobuf/proto"
)

// maxOTLPGroups bounds the (service, host, instance type) groups of one OTLP
// request: each becomes an event that reads the whole object again.
const maxOTLPGroups = 64

// Attribute names of OpenTelemetry's semantic conventions read here (the
// dimensions' names are in dims.go).
const (
	attrServiceName = "service.name"
	attrExecutable  = "process.executable.name"
	attrFrameType   = "profile.frame.type"
)

// frameTypeRuntime maps profile.frame.type onto the runtime suffix the
// gProfiler agent writes ("_[k]" kernel, "_[j]" Java, "_[p]" Python, ...):
// the web UI colours frames by it. Native code (native, go, rust, and a frame
// without a type) has none; another type keeps its own name as the suffix.
var frameTypeRuntime = map[string]string{
	"native": "", "go": "", "rust": "", "": "",
	"kernel": "k", "jvm": "j", "cpython": "p", "php": "php", "ruby": "rb", "dotnet": "net",
	"perl": "pl", "v8js": "js", "beam": "beam",
}

// DecodeOTLP decodes an ExportProfilesServiceRequest in protobuf.
func DecodeOTLP(body []byte) (*collpb.ExportProfilesServiceRequest, error) {
	var req collpb.ExportProfilesServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("not an OTLP ExportProfilesServiceRequest in protobuf: %v", err)
	}
	return &req, nil
}

// otlpReader resolves the dictionary of one request, caching the text of each
// location and stack: requests share them between samples and profiles.
type otlpReader struct {
	d      *pb.ProfilesDictionary
	frames map[int32][]string // location index → frames, caller first
	stacks map[int32][]byte   // stack index → ";frame;...;leaf"
}

func (r *otlpReader) str(i int32) (string, error) {
	if i < 0 || int(i) >= len(r.d.GetStringTable()) {
		return "", fmt.Errorf("string index %d out of range (table of %d)", i, len(r.d.GetStringTable()))
	}
	return r.d.StringTable[i], nil
}

// attr returns the string value of attribute key among indices, "" if absent.
func (r *otlpReader) attr(indices []int32, key string) string {
	for _, i := range indices {
		if i <= 0 || int(i) >= len(r.d.GetAttributeTable()) {
			continue // checked by checkAttrs
		}
		kv := r.d.AttributeTable[i]
		if k, err := r.str(kv.GetKeyStrindex()); err == nil && k == key {
			return anyString(kv.GetValue())
		}
	}
	return ""
}

func (r *otlpReader) checkAttrs(what string, indices []int32) error {
	for _, i := range indices {
		if i < 0 || int(i) >= len(r.d.GetAttributeTable()) {
			return fmt.Errorf("%s: attribute index %d out of range (table of %d)", what, i, len(r.d.GetAttributeTable()))
		}
		if _, err := r.str(r.d.AttributeTable[i].GetKeyStrindex()); err != nil {
			return fmt.Errorf("%s: attribute %d: %v", what, i, err)
		}
	}
	return nil
}

// anyString is an attribute value as text (strings as they are, numbers and
// booleans written out).
func anyString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	case *commonpb.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
	}
	return ""
}

// locationFrames names the frames of a location, caller first:
// "function (file:line)" for each line (inlined callees after their caller),
// "function (file)" without a line number, the function alone without a
// file, and "file+0xoffset" for an unsymbolized address; each with the
// runtime suffix of the location's profile.frame.type.
func (r *otlpReader) locationFrames(li int32) ([]string, error) {
	if f, ok := r.frames[li]; ok {
		return f, nil
	}
	if li < 0 || int(li) >= len(r.d.GetLocationTable()) {
		return nil, fmt.Errorf("location index %d out of range (table of %d)", li, len(r.d.GetLocationTable()))
	}
	loc := r.d.LocationTable[li]
	if err := r.checkAttrs("location", loc.GetAttributeIndices()); err != nil {
		return nil, err
	}
	typ := r.attr(loc.GetAttributeIndices(), attrFrameType)
	suffix, known := frameTypeRuntime[typ]
	if !known && isRuntimeName(typ) {
		suffix = typ
	}
	if suffix != "" {
		suffix = "_[" + suffix + "]"
	}
	var out []string
	lines := loc.GetLines()
	for i := len(lines) - 1; i >= 0; i-- {
		ln := lines[i]
		fi := ln.GetFunctionIndex()
		if fi < 0 || int(fi) >= len(r.d.GetFunctionTable()) {
			return nil, fmt.Errorf("function index %d out of range (table of %d)", fi, len(r.d.GetFunctionTable()))
		}
		fn := r.d.FunctionTable[fi]
		name, err := r.str(fn.GetNameStrindex())
		if err != nil {
			return nil, err
		}
		if name == "" {
			if name, err = r.str(fn.GetSystemNameStrindex()); err != nil {
				return nil, err
			}
		}
		file, err := r.str(fn.GetFilenameStrindex())
		if err != nil {
			return nil, err
		}
		if name = frameText(name); name == "" {
			continue
		}
		switch file = frameText(file); {
		case file != "" && ln.GetLine() > 0:
			name += " (" + file + ":" + strconv.FormatInt(ln.GetLine(), 10) + ")"
		case file != "":
			name += " (" + file + ")"
		}
		out = append(out, name+suffix)
	}
	if len(out) == 0 {
		name := "0x" + strconv.FormatUint(loc.GetAddress(), 16)
		if mi := loc.GetMappingIndex(); mi > 0 && int(mi) < len(r.d.GetMappingTable()) {
			m := r.d.MappingTable[mi]
			if file, err := r.str(m.GetFilenameStrindex()); err == nil && file != "" {
				name = frameText(path.Base(file)) + "+0x" + strconv.FormatUint(loc.GetAddress()-m.GetMemoryStart()+m.GetFileOffset(), 16)
			}
		}
		out = append(out, name+suffix)
	}
	r.frames[li] = out
	return out, nil
}

// isRuntimeName reports whether s can be a runtime suffix (see Runtime).
func isRuntimeName(s string) bool {
	if s == "" || len(s) > maxRuntimeLen {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// stackText returns ";frame;...;leaf" of a stack of the dictionary, root
// first (OTLP lists the leaf first).
func (r *otlpReader) stackText(si int32) ([]byte, error) {
	if s, ok := r.stacks[si]; ok {
		return s, nil
	}
	if si < 0 || int(si) >= len(r.d.GetStackTable()) {
		return nil, fmt.Errorf("stack index %d out of range (table of %d)", si, len(r.d.GetStackTable()))
	}
	locs := r.d.StackTable[si].GetLocationIndices()
	var out []byte
	for i := len(locs) - 1; i >= 0; i-- {
		names, err := r.locationFrames(locs[i])
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			out = append(append(out, ';'), n...)
		}
	}
	r.stacks[si] = out
	return out, nil
}

// cpuProfiles picks the profiles of a scope to read: those counting CPU
// samples ("samples", "cpu" or "itimer" in count), else those of CPU time in
// nanoseconds ("nanoseconds" or "ns") with a period to divide by. The others (off-CPU, memory,
// another view of the same samples) are skipped. div is 1 for counts.
func (r *otlpReader) cpuProfiles(ps []*pb.Profile) (picked []*pb.Profile, div []int64, err error) {
	var nanos []*pb.Profile
	for _, p := range ps {
		typ, err := r.str(p.GetSampleType().GetTypeStrindex())
		if err != nil {
			return nil, nil, err
		}
		unit, err := r.str(p.GetSampleType().GetUnitStrindex())
		if err != nil {
			return nil, nil, err
		}
		// itimer (ITIMER_PROF) is CPU time too: async-profiler's default event, as the Pyroscope Java
		// agent's OTLP export sends it, in "ns".
		if typ != "samples" && typ != "cpu" && typ != "itimer" {
			continue
		}
		switch unit {
		case "count", "samples", "":
			picked = append(picked, p)
			div = append(div, 1)
		case "nanoseconds", "ns":
			pu, _ := r.str(p.GetPeriodType().GetUnitStrindex())
			if p.GetPeriod() > 0 && (pu == "nanoseconds" || pu == "ns") {
				nanos = append(nanos, p)
			}
		}
	}
	if len(picked) > 0 {
		return picked, div, nil
	}
	for _, p := range nanos {
		div = append(div, p.GetPeriod())
	}
	return nanos, div, nil
}

// sampleCount is the number of samples a Sample stands for: the sum of its
// values (divided by div for CPU time), or one per timestamp without values.
func sampleCount(s *pb.Sample, div int64) (uint64, error) {
	if len(s.GetValues()) == 0 {
		return uint64(len(s.GetTimestampsUnixNano())), nil
	}
	var sum uint64
	for _, v := range s.GetValues() {
		if v < 0 {
			return 0, fmt.Errorf("negative value %d", v)
		}
		// Each value is below 2^63: stopping past 2^62 keeps the sum from wrapping; the caller
		// refuses a count above MaxCount.
		if sum += uint64(v); sum > 1<<62 {
			return 0, fmt.Errorf("values sum past %d", uint64(1)<<62)
		}
	}
	if div > 1 {
		sum = (sum + uint64(div)/2) / uint64(div)
	}
	return sum, nil
}

// otlpGroupKey identifies a unit of an OTLP request.
type otlpGroupKey struct{ service, host, instanceType string }

// describeOTLP parses an OTLP object and returns its units, one per (service,
// host, instance type) in order of first appearance. With want >= 0 it calls
// fn for the samples of that group only; with fn nil it checks every group.
func describeOTLP(text []byte, want int, fn func(*Line) error) ([]Unit, error) {
	env, body, err := decodeEnvelope(text, envelopeOTLP)
	if err != nil {
		return nil, err
	}
	req, err := DecodeOTLP(body)
	if err != nil {
		return nil, err
	}
	r := &otlpReader{d: req.GetDictionary(), frames: map[int32][]string{}, stacks: map[int32][]byte{}}
	if r.d == nil {
		r.d = &pb.ProfilesDictionary{}
	}
	groups := map[otlpGroupKey]int{}
	var units []Unit
	var checks []*checkedUnit
	var stack []byte
	ordinal := 0
	for ri, rp := range req.GetResourceProfiles() {
		res := map[string]string{}
		for _, kv := range rp.GetResource().GetAttributes() {
			res[kv.GetKey()] = anyString(kv.GetValue())
		}
		service := res[attrServiceName]
		if service == "" {
			service = env.Service
		}
		if service == "" {
			return nil, fmt.Errorf("resource %d has no service.name (set it, or send the request with ?service=NAME)", ri)
		}
		for _, sp := range rp.GetScopeProfiles() {
			profiles, divs, err := r.cpuProfiles(sp.GetProfiles())
			if err != nil {
				return nil, err
			}
			for pi, p := range profiles {
				if err := r.checkAttrs("profile", p.GetAttributeIndices()); err != nil {
					return nil, err
				}
				start := env.Received
				if t := p.GetTimeUnixNano(); t != 0 {
					if t > 1<<63-1 {
						return nil, fmt.Errorf("profile time_unix_nano %d is out of range", t)
					}
					start = time.Unix(0, int64(t)).UTC()
				}
				end := start.Add(time.Duration(min(p.GetDurationNano(), 1<<62)))
				for _, s := range p.GetSamples() {
					ordinal++
					if err := r.checkAttrs(fmt.Sprintf("sample %d", ordinal), s.GetAttributeIndices()); err != nil {
						return nil, err
					}
					get := func(k string) string {
						if v := r.attr(s.GetAttributeIndices(), k); v != "" {
							return v
						}
						if v := r.attr(p.GetAttributeIndices(), k); v != "" {
							return v
						}
						return res[k]
					}
					key := otlpGroupKey{service, hostOf(get), instanceTypeOf(get)}
					g, ok := groups[key]
					if !ok {
						if len(units) == maxOTLPGroups {
							return nil, fmt.Errorf("more than %d (service, host, instance type) groups in one request", maxOTLPGroups)
						}
						g = len(units)
						groups[key] = g
						units = append(units, Unit{Format: OTLPGroupFormat(g), Service: key.service, Host: key.host,
							InstanceType: key.instanceType, Start: start, End: end, Content: body})
						checks = append(checks, &checkedUnit{})
					}
					u := &units[g]
					if start.Before(u.Start) {
						u.Start = start
					}
					if end.After(u.End) {
						u.End = end
					}
					if want >= 0 && g != want {
						continue
					}
					count, err := sampleCount(s, divs[pi])
					if err != nil {
						return nil, fmt.Errorf("sample %d: %v", ordinal, err)
					}
					frames, err := r.stackText(s.GetStackIndex())
					if err != nil {
						return nil, fmt.Errorf("sample %d: %v", ordinal, err)
					}
					if count == 0 {
						continue
					}
					if count > MaxCount {
						return nil, &LineError{Line: ordinal, Reason: fmt.Sprintf("sample count %d is over the limit of %d", count, uint64(MaxCount))}
					}
					comm := frameText(get(attrExecutable))
					if comm == "" {
						comm = frameText(service)
					}
					if comm == "" {
						comm = "unknown"
					}
					stack = append(append(stack[:0], comm...), frames...)
					l := Line{Container: []byte(containerOf(get)), Stack: stack, Count: count, Number: ordinal}
					if err := checks[g].add(&l); err != nil {
						return nil, err
					}
					if fn != nil && g == want {
						if err := fn(&l); err != nil {
							return nil, err
						}
					}
				}
			}
		}
	}
	for i := range units {
		checks[i].fill(&units[i])
	}
	if len(units) == 0 {
		units = append(units, Unit{Format: OTLPGroupFormat(0), Service: env.Service, Start: env.Received, End: env.Received,
			Skipped: "no CPU samples (sample type samples or cpu) in the request"})
	}
	return units, nil
}
