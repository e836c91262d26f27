package profile

import (
	"maps"
	"strings"
	"testing"
	"time"

	collpb "go.opentelemetry.io/proto/otlp/collector/profiles/v1development"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	pb "go.opentelemetry.io/proto/otlp/profiles/v1development"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"
)

// dict builds an OTLP dictionary with its string and attribute tables interned.
type dict struct {
	d    *pb.ProfilesDictionary
	strs map[string]int32
}

func newDict() *dict {
	return &dict{d: &pb.ProfilesDictionary{
		MappingTable: []*pb.Mapping{{}}, LocationTable: []*pb.Location{{}}, FunctionTable: []*pb.Function{{}},
		LinkTable: []*pb.Link{{}}, StringTable: []string{""}, AttributeTable: []*pb.KeyValueAndUnit{{}}, StackTable: []*pb.Stack{{}},
	}, strs: map[string]int32{"": 0}}
}

func (d *dict) str(s string) int32 {
	if i, ok := d.strs[s]; ok {
		return i
	}
	d.d.StringTable = append(d.d.StringTable, s)
	d.strs[s] = int32(len(d.d.StringTable) - 1)
	return d.strs[s]
}

func (d *dict) attr(k, v string) int32 {
	d.d.AttributeTable = append(d.d.AttributeTable, &pb.KeyValueAndUnit{KeyStrindex: d.str(k),
		Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}})
	return int32(len(d.d.AttributeTable) - 1)
}

// loc adds a location of one function (frame type typ) and returns its index.
func (d *dict) loc(name, file string, line int64, typ string) int32 {
	d.d.FunctionTable = append(d.d.FunctionTable, &pb.Function{NameStrindex: d.str(name), FilenameStrindex: d.str(file)})
	l := &pb.Location{Lines: []*pb.Line{{FunctionIndex: int32(len(d.d.FunctionTable) - 1), Line: line}}}
	if typ != "" {
		l.AttributeIndices = []int32{d.attr("profile.frame.type", typ)}
	}
	d.d.LocationTable = append(d.d.LocationTable, l)
	return int32(len(d.d.LocationTable) - 1)
}

// stack adds a stack, leaf first as OTLP lists it.
func (d *dict) stack(locs ...int32) int32 {
	d.d.StackTable = append(d.d.StackTable, &pb.Stack{LocationIndices: locs})
	return int32(len(d.d.StackTable) - 1)
}

func (d *dict) vt(typ, unit string) *pb.ValueType {
	return &pb.ValueType{TypeStrindex: d.str(typ), UnitStrindex: d.str(unit)}
}

func resource(attrs ...string) *resourcepb.Resource {
	r := &resourcepb.Resource{}
	for i := 0; i+1 < len(attrs); i += 2 {
		r.Attributes = append(r.Attributes, &commonpb.KeyValue{Key: attrs[i], Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: attrs[i+1]}}})
	}
	return r
}

var otlpT0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

// testOTLPRequest is two resources sharing the dictionary's stacks: service "shop" on host h1 (a scope
// with the same samples as samples/count, cpu/nanoseconds and an alloc_space profile) and service
// "billing" on host h2 whose samples carry container attributes.
func testOTLPRequest() *collpb.ExportProfilesServiceRequest {
	d := newDict()
	sys := d.loc("do_syscall_64", "", 0, "kernel")
	handler := d.loc("handler", "/app/app.py", 12, "cpython")
	mainf := d.loc("main", "/app/main.go", 7, "go")
	inl := &pb.Location{Lines: []*pb.Line{
		{FunctionIndex: d.d.LocationTable[handler].Lines[0].FunctionIndex, Line: 40}, // inlined callee
		{FunctionIndex: d.d.LocationTable[mainf].Lines[0].FunctionIndex, Line: 9},
	}}
	d.d.LocationTable = append(d.d.LocationTable, inl)
	inlined := int32(len(d.d.LocationTable) - 1)
	d.d.MappingTable = append(d.d.MappingTable, &pb.Mapping{MemoryStart: 0x1000, FileOffset: 0x200, FilenameStrindex: d.str("/lib/libc.so.6")})
	d.d.LocationTable = append(d.d.LocationTable, &pb.Location{MappingIndex: 1, Address: 0x1234})
	raw := int32(len(d.d.LocationTable) - 1)

	s1 := d.stack(sys, handler, mainf) // leaf first
	s2 := d.stack(raw, mainf)
	s3 := d.stack(inlined)
	t := uint64(otlpT0.UnixNano())
	same := func(typ, unit string, scale int64) *pb.Profile {
		p := &pb.Profile{SampleType: d.vt(typ, unit), TimeUnixNano: t, DurationNano: uint64(10 * time.Second),
			PeriodType: d.vt("cpu", "nanoseconds"), Period: 50_000_000}
		p.Samples = []*pb.Sample{
			{StackIndex: s1, Values: []int64{5 * scale}},
			{StackIndex: s2, Values: []int64{2 * scale, 1 * scale}},
			{StackIndex: s1, Values: []int64{1 * scale}},
		}
		return p
	}
	exe := d.attr("process.executable.name", "python3")
	cont := d.attr("container.id", "c0ffee")
	pod := d.attr("k8s.pod.name", "billing-5f7b9c8d4-abcde")
	return &collpb.ExportProfilesServiceRequest{Dictionary: d.d, ResourceProfiles: []*pb.ResourceProfiles{
		{Resource: resource("service.name", "shop", "host.name", "h1", "host.type", "m5.large"),
			ScopeProfiles: []*pb.ScopeProfiles{{Profiles: []*pb.Profile{
				same("cpu", "nanoseconds", 50_000_000), same("samples", "count", 1), same("alloc_space", "bytes", 4096)}}}},
		{Resource: resource("service.name", "billing", "host.name", "h2"),
			ScopeProfiles: []*pb.ScopeProfiles{{Profiles: []*pb.Profile{{
				SampleType: d.vt("samples", "count"), TimeUnixNano: t + uint64(time.Second), AttributeIndices: []int32{exe},
				Samples: []*pb.Sample{
					{StackIndex: s3, AttributeIndices: []int32{cont}, TimestampsUnixNano: []uint64{t + 1, t + 2, t + 3}},
					{StackIndex: s1, AttributeIndices: []int32{pod}, Values: []int64{4}},
				}}}}}},
	}}
}

func otlpObject(t *testing.T, req *collpb.ExportProfilesServiceRequest, service string) []byte {
	t.Helper()
	body, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return Envelope{Kind: "otlp", Service: service, Received: otlpT0.Add(time.Hour)}.Encode(body)
}

func TestOTLPGroupsByServiceAndHostAndReadsCPUSamples(t *testing.T) {
	text := otlpObject(t, testOTLPRequest(), "")
	units, err := Describe(text, FormatOTLP)
	if err != nil {
		t.Fatal(err)
	}
	if len(units) != 2 {
		t.Fatalf("%d units: %+v", len(units), units)
	}
	u0, u1 := units[0], units[1]
	if u0.Format != "otlp/0" || u0.Service != "shop" || u0.Host != "h1" || u0.InstanceType != "m5.large" || u0.Samples != 9 ||
		!u0.Start.Equal(otlpT0) || !u0.End.Equal(otlpT0.Add(10*time.Second)) {
		t.Errorf("unit 0 %+v", u0)
	}
	if u1.Format != "otlp/1" || u1.Service != "billing" || u1.Host != "h2" || u1.Samples != 7 || !u1.Start.Equal(otlpT0.Add(time.Second)) {
		t.Errorf("unit 1 %+v", u1)
	}
	got, h := entries(t, text, "otlp/0")
	want := map[string]uint64{
		"|shop;main (/app/main.go:7);handler (/app/app.py:12)_[p];do_syscall_64_[k]": 6,
		"|shop;main (/app/main.go:7);libc.so.6+0x434":                                3,
	}
	if !maps.Equal(got, want) || h.Hostname != "h1" || h.InstanceType != "m5.large" {
		t.Errorf("group 0: %v %+v, want %v", got, h, want)
	}
	got, _ = entries(t, text, "otlp/1")
	want = map[string]uint64{
		"c0ffee|python3;main (/app/main.go:9);handler (/app/app.py:40)":                                        3,
		"billing-5f7b9c8d4-abcde|python3;main (/app/main.go:7);handler (/app/app.py:12)_[p];do_syscall_64_[k]": 4,
	}
	if !maps.Equal(got, want) {
		t.Errorf("group 1: %v, want %v", got, want)
	}
	if _, err := ParseAs(text, "otlp/2", func(*Line) error { return nil }); err == nil {
		t.Error("a group the request does not have parsed")
	}

	// Only CPU time in nanoseconds: divided by the period, same counts.
	req := testOTLPRequest()
	sp := req.ResourceProfiles[0].ScopeProfiles[0]
	sp.Profiles = sp.Profiles[:1]
	req.ResourceProfiles = req.ResourceProfiles[:1]
	units, err = Describe(otlpObject(t, req, ""), FormatOTLP)
	if err != nil || len(units) != 1 || units[0].Samples != 9 {
		t.Errorf("cpu nanoseconds: %+v %v", units, err)
	}
}

func TestOTLPServiceFallbackAndRefusals(t *testing.T) {
	req := testOTLPRequest()
	req.ResourceProfiles[1].Resource = resource("host.name", "h2")
	if _, err := Describe(otlpObject(t, req, ""), FormatOTLP); err == nil || !strings.Contains(err.Error(), "resource 1 has no service.name") {
		t.Errorf("no service.name: %v", err)
	}
	units, err := Describe(otlpObject(t, req, "fallback"), FormatOTLP)
	if err != nil || units[1].Service != "fallback" {
		t.Errorf("fallback service: %+v %v", units, err)
	}
	for name, edit := range map[string]func(*collpb.ExportProfilesServiceRequest){
		"stack index 99 out of range": func(r *collpb.ExportProfilesServiceRequest) {
			r.ResourceProfiles[1].ScopeProfiles[0].Profiles[0].Samples[0].StackIndex = 99
		},
		"negative value": func(r *collpb.ExportProfilesServiceRequest) {
			r.ResourceProfiles[1].ScopeProfiles[0].Profiles[0].Samples[1].Values[0] = -1
		},
		"sample count 4294967296 is over the limit": func(r *collpb.ExportProfilesServiceRequest) {
			r.ResourceProfiles[1].ScopeProfiles[0].Profiles[0].Samples[1].Values[0] = 1 << 32
		},
		"the stack's total count": func(r *collpb.ExportProfilesServiceRequest) {
			s := r.ResourceProfiles[1].ScopeProfiles[0].Profiles[0].Samples
			s[1].Values[0] = 1<<32 - 1
			s = append(s, &pb.Sample{StackIndex: s[1].StackIndex, AttributeIndices: s[1].AttributeIndices, Values: []int64{1}})
			r.ResourceProfiles[1].ScopeProfiles[0].Profiles[0].Samples = s
		},
		"string index": func(r *collpb.ExportProfilesServiceRequest) {
			r.Dictionary.FunctionTable[1].NameStrindex = 1000
		},
		"attribute index": func(r *collpb.ExportProfilesServiceRequest) {
			r.ResourceProfiles[1].ScopeProfiles[0].Profiles[0].AttributeIndices = []int32{1000}
		},
	} {
		r := testOTLPRequest()
		edit(r)
		if _, err := Describe(otlpObject(t, r, ""), FormatOTLP); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Describe(Envelope{Kind: "otlp"}.Encode([]byte("not protobuf \xff\xff")), FormatOTLP); err == nil {
		t.Error("garbage accepted")
	}
	// No CPU profile at all: one skipped unit.
	r := testOTLPRequest()
	r.ResourceProfiles = r.ResourceProfiles[:1]
	sp := r.ResourceProfiles[0].ScopeProfiles[0]
	sp.Profiles = sp.Profiles[2:]
	units, err = Describe(otlpObject(t, r, ""), FormatOTLP)
	if err != nil || len(units) != 1 || units[0].Skipped == "" {
		t.Errorf("heap only: %+v %v", units, err)
	}
}
