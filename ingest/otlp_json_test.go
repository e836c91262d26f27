package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/klauspost/compress/gzip"
	collpb "go.opentelemetry.io/proto/otlp/collector/profiles/v1development"
	pb "go.opentelemetry.io/proto/otlp/profiles/v1development"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/flamestream/flamestream/internal/profile"
)

// otlpJSONRequest is a request built with the official types: two samples of two stacks, a link with a
// trace and a span id, a profile id, 64-bit values (written as strings by protojson).
func otlpJSONRequest(at time.Time) *collpb.ExportProfilesServiceRequest {
	d := &pb.ProfilesDictionary{MappingTable: []*pb.Mapping{{}}, AttributeTable: []*pb.KeyValueAndUnit{{}},
		LinkTable:     []*pb.Link{{}, {TraceId: bytes.Repeat([]byte{0xab, 0x01}, 8), SpanId: []byte{1, 2, 3, 4, 5, 6, 7, 0xfe}}},
		StringTable:   []string{"", "samples", "count", "main", "work", "svc-json"},
		FunctionTable: []*pb.Function{{}, {NameStrindex: 3}, {NameStrindex: 4}},
		LocationTable: []*pb.Location{{}, {Lines: []*pb.Line{{FunctionIndex: 1}}}, {Lines: []*pb.Line{{FunctionIndex: 2, Line: 12}}}},
		StackTable:    []*pb.Stack{{}, {LocationIndices: []int32{1}}, {LocationIndices: []int32{2, 1}}}}
	return &collpb.ExportProfilesServiceRequest{Dictionary: d, ResourceProfiles: []*pb.ResourceProfiles{{
		ScopeProfiles: []*pb.ScopeProfiles{{Profiles: []*pb.Profile{{SampleType: &pb.ValueType{TypeStrindex: 1, UnitStrindex: 2},
			ProfileId:    []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xff},
			TimeUnixNano: uint64(at.UnixNano()), DurationNano: uint64(10 * time.Second),
			Samples: []*pb.Sample{{StackIndex: 1, Values: []int64{3_000_000_000}}, {StackIndex: 2, Values: []int64{4}, LinkIndex: 1}}}}}}}}}
}

// otlpJSONText is req as the OTLP JSON mapping writes it: protojson, with trace, span and profile ids in
// hex instead of base64.
func otlpJSONText(t *testing.T, req *collpb.ExportProfilesServiceRequest) []byte {
	t.Helper()
	b, err := protojson.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	links := v["dictionary"].(map[string]any)["linkTable"].([]any)
	links[1].(map[string]any)["traceId"] = "ab01ab01ab01ab01ab01ab01ab01ab01"
	links[1].(map[string]any)["spanId"] = "01020304050607FE" // upper case hex is hex too
	prof := v["resourceProfiles"].([]any)[0].(map[string]any)["scopeProfiles"].([]any)[0].(map[string]any)["profiles"].([]any)[0].(map[string]any)
	prof["profileId"] = "000102030405060708090a0b0c0d0eff"
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func otlpServer(c *capture) http.Handler {
	s := New(Config{}, failingMeta{}, c, c.publish, slog.New(slog.DiscardHandler), nil)
	r := chi.NewRouter()
	s.Routes(r)
	return r
}

func postOTLPBody(h http.Handler, contentType string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/v1development/profiles?service=svc-json", bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", "Bearer k")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// storedOTLP inflates a stored object and decodes the request in it.
func storedOTLP(t *testing.T, obj []byte) (*collpb.ExportProfilesServiceRequest, []byte) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(obj))
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(zr)
	_, body, ok := bytes.Cut(text, []byte("\n"))
	if !ok {
		t.Fatalf("object %q has no envelope line", text)
	}
	req, err := profile.DecodeOTLP(body)
	if err != nil {
		t.Fatal(err)
	}
	return req, text
}

// TestOTLPJSONIsStoredAsTheSameRequest posts one request built with the official types in OTLP/JSON (hex
// ids, 64-bit values as strings) and in protobuf: the JSON one is answered in JSON, the protobuf one in
// protobuf; both publish the same event id and object, whose request equals the one built (the hex ids
// read back byte for byte) and parses to the samples sent, 3,000,000,004.
func TestOTLPJSONIsStoredAsTheSameRequest(t *testing.T) {
	c := &capture{objects: map[string][]byte{}}
	h := otlpServer(c)
	req := otlpJSONRequest(time.Now().Add(-time.Minute))
	text := otlpJSONText(t, req)
	if !bytes.Contains(text, []byte(`"3000000000"`)) || !bytes.Contains(text, []byte(`"ab01ab01`)) {
		t.Fatalf("the JSON is not as the OTLP mapping writes it: %s", text)
	}

	w := postOTLPBody(h, "application/json; charset=utf-8", text)
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("JSON: %d %s %q", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	var reply collpb.ExportProfilesServiceResponse
	if err := protojson.Unmarshal(w.Body.Bytes(), &reply); err != nil || reply.GetPartialSuccess().GetErrorMessage() != "" {
		t.Fatalf("JSON reply %q: %v", w.Body, err)
	}
	pbBody, _ := proto.Marshal(req)
	w = postOTLPBody(h, "application/x-protobuf", pbBody)
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/x-protobuf" || proto.Unmarshal(w.Body.Bytes(), &reply) != nil {
		t.Fatalf("protobuf: %d %s %q", w.Code, w.Header().Get("Content-Type"), w.Body)
	}

	if len(c.events) != 2 || c.events[0].ID != c.events[1].ID || c.events[0].Key != c.events[1].Key || len(c.objects) != 1 {
		t.Fatalf("events %+v, %d objects: want the same event twice and one object", c.events, len(c.objects))
	}
	stored, objText := storedOTLP(t, c.objects[c.events[0].Key])
	if !proto.Equal(stored, req) {
		t.Errorf("stored request differs from the one sent:\n%v\nwant\n%v", stored, req)
	}
	var agg profile.Aggregate
	if _, err := profile.ParseAs(objText, profile.Format(c.events[0].Format), agg.Add); err != nil || agg.Samples() != 3_000_000_004 {
		t.Errorf("stored object parses to %d samples (%v), want 3000000004", agg.Samples(), err)
	}
}

// TestOTLPJSONAcceptsTheMappingsVariants: enums by name or number, proto field names, 64-bit numbers as
// JSON numbers, unknown fields: all read, and the request is stored.
func TestOTLPJSONAcceptsTheMappingsVariants(t *testing.T) {
	at := time.Now().Add(-time.Minute).UnixNano()
	body := `{"resource_profiles":[{"scopeProfiles":[{"profiles":[{"sampleType":{"typeStrindex":1,"unitStrindex":2},
		"timeUnixNano":` + itoa(at) + `,"aNewField":{"x":1},"samples":[{"stackIndex":1,"values":[5]}]}]}],
		"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc-json"}}]}}],
		"dictionary":{"stringTable":["","samples","count","main"],"functionTable":[{},{"nameStrindex":3}],
		"locationTable":[{},{"lines":[{"functionIndex":1}]}],"stackTable":[{},{"locationIndices":[1]}],
		"mappingTable":[{}],"attributeTable":[{}],"linkTable":[{}]}}`
	c := &capture{objects: map[string][]byte{}}
	w := postOTLPBody(otlpServer(c), "application/json", []byte(body))
	if w.Code != 200 || len(c.events) != 1 || c.events[0].Service != "svc-json" {
		t.Fatalf("%d %s, events %+v", w.Code, w.Body, c.events)
	}
}

// TestOTLPJSONRefusals: what is wrong with an OTLP/JSON request is a 400 with a JSON message that says
// what, nothing is stored; another content type is a 415 naming both encodings.
func TestOTLPJSONRefusals(t *testing.T) {
	req := otlpJSONRequest(time.Now().Add(-time.Minute))
	good := string(otlpJSONText(t, req))
	for _, c := range []struct {
		name, contentType, body string
		code                    int
		message                 string
	}{
		{"not JSON", "application/json", "{resourceProfiles", 400, "malformed OTLP/JSON: "},
		{"truncated", "application/json", good[:len(good)/2], 400, "malformed OTLP/JSON: "},
		{"wrong type", "application/json", `{"resourceProfiles":"yes"}`, 400, "malformed OTLP/JSON: "},
		{"int64 not a number", "application/json", `{"resourceProfiles":[{"scopeProfiles":[{"profiles":[{"timeUnixNano":"soon"}]}]}]}`, 400, "malformed OTLP/JSON: "},
		{"trace id not hex", "application/json", strings.Replace(good, "ab01ab01ab01ab01ab01ab01ab01ab01", "zz01ab01ab01ab01ab01ab01ab01ab01", 1), 400,
			"malformed OTLP/JSON: dictionary.linkTable[1].traceId is not 16 bytes in hex (32 hex digits)"},
		{"span id too short", "application/json", strings.Replace(good, "01020304050607FE", "01020304", 1), 400,
			"malformed OTLP/JSON: dictionary.linkTable[1].spanId is not 8 bytes in hex (16 hex digits)"},
		{"protobuf sent as JSON", "application/json", string(protoBytes(t, req)), 400, "malformed OTLP/JSON: "},
		{"text", "text/plain", good, 415, "unsupported Content-Type"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cp := &capture{objects: map[string][]byte{}}
			w := postOTLPBody(otlpServer(cp), c.contentType, []byte(c.body))
			var reply struct{ Message, Detail string }
			if err := json.Unmarshal(w.Body.Bytes(), &reply); err != nil || w.Code != c.code || !strings.HasPrefix(reply.Message, c.message) ||
				len(reply.Message) <= len("malformed OTLP/JSON: ") {
				t.Errorf("got %d %s (%v), want %d %q...", w.Code, w.Body, err, c.code, c.message)
			}
			if strings.Contains(reply.Message, "\u00a0") || strings.Contains(reply.Message, "proto:") {
				t.Errorf("message %q reads like protojson's internals", reply.Message)
			}
			if len(cp.objects) != 0 || len(cp.events) != 0 {
				t.Errorf("a refused request was stored")
			}
		})
	}
}

func protoBytes(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzOTLPJSON: any body is converted or refused with a 400 whose message says what; what converts is a
// request in protobuf that decodes, and converts to the same bytes again through protojson (the stored
// form of a request is a function of the request).
func FuzzOTLPJSON(f *testing.F) {
	f.Add([]byte(`{"resourceProfiles":[]}`))
	f.Add([]byte(`{"dictionary":{"linkTable":[{"traceId":"ab01ab01ab01ab01ab01ab01ab01ab01","spanId":"0102030405060708"}]}}`))
	f.Add([]byte(`{"resource_profiles":[{"scopeProfiles":[{"profiles":[{"timeUnixNano":"12","samples":[{"values":["3"]}]}]}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := otlpJSONToProtobuf(body)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.status != 400 || !strings.HasPrefix(ae.message, "malformed OTLP/JSON: ") {
				t.Fatalf("error %v is not a 400 reply", err)
			}
			return
		}
		req, err := profile.DecodeOTLP(out)
		if err != nil {
			t.Fatalf("converted request does not decode: %v", err)
		}
		text, err := protojson.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		var again collpb.ExportProfilesServiceRequest
		if err := protojson.Unmarshal(text, &again); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(req, &again) {
			t.Fatalf("protojson round trip changed the request")
		}
	})
}

// BenchmarkOTLPJSONToProtobuf is the cost of the JSON door over the protobuf one: decoding a request of
// 2,000 samples in OTLP/JSON and encoding it in protobuf.
func BenchmarkOTLPJSONToProtobuf(b *testing.B) {
	req := otlpJSONRequest(time.Now())
	p := req.ResourceProfiles[0].ScopeProfiles[0].Profiles[0]
	for i := range 2000 {
		p.Samples = append(p.Samples, &pb.Sample{StackIndex: int32(1 + i%2), Values: []int64{int64(i)}})
	}
	text, err := protojson.Marshal(req)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := otlpJSONToProtobuf(text); err != nil {
			b.Fatal(err)
		}
	}
}
