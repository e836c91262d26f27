package ingest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	collpb "go.opentelemetry.io/proto/otlp/collector/profiles/v1development"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	pb "go.opentelemetry.io/proto/otlp/profiles/v1development"
	"google.golang.org/protobuf/proto"

	"github.com/flamestream/flamestream/internal/profile"
)

// asyncProfilerRequest is a request shaped as async-profiler's OTLP dump (src/otlp.cpp), which the
// Pyroscope Java agent sends with PYROSCOPE_FORMAT=otlp: no service.name on the resource, one profile
// whose sample type and period type are the profiling event in "ns" (itimer by default), values the
// total time of each stack, a thread.name attribute per sample.
func asyncProfilerRequest(event string, at time.Time) *collpb.ExportProfilesServiceRequest {
	d := &pb.ProfilesDictionary{MappingTable: []*pb.Mapping{{}}, LinkTable: []*pb.Link{{}},
		StringTable: []string{"", event, "ns", "thread.name", "Thread.run", "App.work", "App.idle"},
		AttributeTable: []*pb.KeyValueAndUnit{{}, {KeyStrindex: 3, Value: &commonpb.AnyValue{
			Value: &commonpb.AnyValue_StringValue{StringValue: "main"}}}},
		FunctionTable: []*pb.Function{{}, {NameStrindex: 4}, {NameStrindex: 5}, {NameStrindex: 6}},
		LocationTable: []*pb.Location{{}, {Lines: []*pb.Line{{FunctionIndex: 1}}}, {Lines: []*pb.Line{{FunctionIndex: 2}}},
			{Lines: []*pb.Line{{FunctionIndex: 3}}}},
		StackTable: []*pb.Stack{{}, {LocationIndices: []int32{2, 1}}, {LocationIndices: []int32{3, 1}}}}
	vt := &pb.ValueType{TypeStrindex: 1, UnitStrindex: 2}
	return &collpb.ExportProfilesServiceRequest{Dictionary: d, ResourceProfiles: []*pb.ResourceProfiles{{
		ScopeProfiles: []*pb.ScopeProfiles{{Profiles: []*pb.Profile{{SampleType: vt, PeriodType: vt, Period: 10_000_000,
			TimeUnixNano: uint64(at.UnixNano()), DurationNano: uint64(10 * time.Second),
			Samples: []*pb.Sample{{StackIndex: 1, AttributeIndices: []int32{1}, Values: []int64{50_000_000}},
				{StackIndex: 2, AttributeIndices: []int32{1}, Values: []int64{20_000_000}}}}}}}}}}
}

// TestOTLPFromThePyroscopeJavaAgent posts what the Java agent sends with PYROSCOPE_FORMAT=otlp
// (protobuf, gzip, basic auth, the service in PYROSCOPE_HTTP_HEADERS as GPROFILER-SERVICE-NAME): the
// itimer and cpu events are CPU time, stored as time over the period (7 samples); a wall-clock profile is
// answered 200 and not stored.
func TestOTLPFromThePyroscopeJavaAgent(t *testing.T) {
	at := time.Now().Add(-time.Minute)
	for _, c := range []struct {
		event   string
		samples uint64
	}{{"itimer", 7}, {"cpu", 7}, {"wall", 0}} {
		t.Run(c.event, func(t *testing.T) {
			cp := &capture{objects: map[string][]byte{}}
			body, err := proto.Marshal(asyncProfilerRequest(c.event, at))
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodPost, "/v1development/profiles", bytes.NewReader(gzipText(body)))
			req.Header.Set("Content-Type", "application/x-protobuf")
			req.Header.Set("Content-Encoding", "gzip")
			req.Header.Set(HeaderServiceName, "java-shop")
			req.SetBasicAuth("flamestream", "k")
			w := httptest.NewRecorder()
			otlpServer(cp).ServeHTTP(w, req)
			var reply collpb.ExportProfilesServiceResponse
			if w.Code != 200 || proto.Unmarshal(w.Body.Bytes(), &reply) != nil {
				t.Fatalf("%d %q", w.Code, w.Body)
			}
			if c.samples == 0 {
				if len(cp.events) != 0 || reply.GetPartialSuccess().GetErrorMessage() == "" {
					t.Errorf("wall clock: events %+v, reply %v", cp.events, &reply)
				}
				return
			}
			if len(cp.events) != 1 || cp.events[0].Service != "java-shop" || reply.GetPartialSuccess().GetErrorMessage() != "" {
				t.Fatalf("events %+v, reply %v", cp.events, &reply)
			}
			zr, err := gzip.NewReader(bytes.NewReader(cp.objects[cp.events[0].Key]))
			if err != nil {
				t.Fatal(err)
			}
			text, _ := io.ReadAll(zr)
			var agg profile.Aggregate
			if _, err := profile.ParseAs(text, profile.Format(cp.events[0].Format), agg.Add); err != nil || agg.Samples() != c.samples {
				t.Errorf("stored object parses to %d samples (%v), want %d", agg.Samples(), err, c.samples)
			}
		})
	}
}

// TestJFRRefusalNamesWhatWorks: the 415 of a Java agent's default upload tells the operator the setting
// that works, which TestOTLPFromThePyroscopeJavaAgent proves.
func TestJFRRefusalNamesWhatWorks(t *testing.T) {
	w := postPyroscopeBody(otlpServer(&capture{objects: map[string][]byte{}}), map[string][]string{"format": {"jfr"}}, "", []byte("FLR\x00"))
	var reply struct{ Message, Detail string }
	if err := json.Unmarshal(w.Body.Bytes(), &reply); err != nil || w.Code != 415 ||
		!bytes.Contains([]byte(reply.Detail), []byte("PYROSCOPE_FORMAT=otlp")) || !bytes.Contains([]byte(reply.Detail), []byte("GPROFILER-SERVICE-NAME")) {
		t.Errorf("got %d %s", w.Code, w.Body)
	}
}
