package ingest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	pprof "github.com/google/pprof/profile"
	"github.com/klauspost/compress/gzip"
	collpb "go.opentelemetry.io/proto/otlp/collector/profiles/v1development"
	pb "go.opentelemetry.io/proto/otlp/profiles/v1development"
	"google.golang.org/protobuf/proto"

	"github.com/flamestream/flamestream/internal/profile"
	"github.com/flamestream/flamestream/stream"
)

// capture keeps what a front door stored and published.
type capture struct {
	mu      sync.Mutex
	objects map[string][]byte
	events  []stream.Event
}

func (c *capture) Put(_ context.Context, key string, body []byte, _ string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.objects[key] = append([]byte(nil), body...)
	return nil
}

func (c *capture) publish(_ context.Context, ev stream.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, ev)
	return nil
}

// sdkUpload is a multipart body as the Pyroscope SDK sends it; each call has a new random boundary.
func sdkUpload(t *testing.T) (contentType string, body []byte) {
	t.Helper()
	fn := &pprof.Function{ID: 1, Name: "main.work"}
	loc := &pprof.Location{ID: 1, Line: []pprof.Line{{Function: fn}}}
	p := &pprof.Profile{SampleType: []*pprof.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType: &pprof.ValueType{Type: "cpu", Unit: "nanoseconds"}, Period: 1e7,
		Sample: []*pprof.Sample{{Location: []*pprof.Location{loc}, Value: []int64{5, 5e7}}}, Location: []*pprof.Location{loc}, Function: []*pprof.Function{fn}}
	var prof, b bytes.Buffer
	if err := p.Write(&prof); err != nil {
		t.Fatal(err)
	}
	mw := multipart.NewWriter(&b)
	fw, _ := mw.CreateFormFile("profile", "profile.pprof")
	fw.Write(prof.Bytes())
	mw.Close()
	return mw.FormDataContentType(), b.Bytes()
}

// TestPyroscopeRetryKeepsItsIDsAndTheObjectIsTheRequest sends one SDK upload twice (new multipart
// boundary, as a retry is built anew): both publish the same event id and object key, so JetStream and
// the indexer drop the second; the stored object inflates to the envelope of the request as received,
// which the indexer's parser reads back to the upload's samples.
func TestPyroscopeRetryKeepsItsIDsAndTheObjectIsTheRequest(t *testing.T) {
	c := &capture{objects: map[string][]byte{}}
	s := New(Config{}, failingMeta{}, c, c.publish, slog.New(slog.DiscardHandler), nil)
	r := chi.NewRouter()
	s.Routes(r)
	from := time.Now().Add(-time.Minute).Unix()
	target := "/ingest?name=app.cpu%7Bhostname%3Dh1%7D&spyName=gospy&from=" + itoa(from) + "&until=" + itoa(from+10)
	for range 2 {
		ct, body := sdkUpload(t)
		req := httptest.NewRequest(http.MethodPost, target, bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		req.SetBasicAuth("flamestream", "k")
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Code != 200 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
	}
	if len(c.events) != 2 || c.events[0].ID != c.events[1].ID || c.events[0].Key != c.events[1].Key || len(c.objects) != 1 {
		t.Fatalf("events %+v, %d objects", c.events, len(c.objects))
	}
	ev := c.events[0]
	if ev.Format != "pyroscope" || ev.Service != "app" || ev.Host != "h1" || ev.Start.Unix() != from || ev.End.Unix() != from+10 ||
		!strings.HasSuffix(ev.Key, ".pyroscope.gz") || !strings.HasPrefix(ev.Key, "profiles/app/") {
		t.Errorf("event %+v", ev)
	}
	zr, err := gzip.NewReader(bytes.NewReader(c.objects[ev.Key]))
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(zr)
	var agg profile.Aggregate
	if _, err := profile.ParseAs(text, profile.Format(ev.Format), agg.Add); err != nil || agg.Samples() != 5 {
		t.Errorf("stored object parses to %d samples, %v", agg.Samples(), err)
	}
	if !bytes.HasPrefix(text, []byte(`#{"envelope":"pyroscope","query":"name=app.cpu%7Bhostname%3Dh1%7D`)) {
		t.Errorf("object starts %q", text[:min(len(text), 80)])
	}
}

// TestFrontDoorsGive503WhenAServerIsDown: the object store, NATS or PostgreSQL failing is a 503 with
// Retry-After and a fixed detail, never the server's error text, on both front doors.
func TestFrontDoorsGive503WhenAServerIsDown(t *testing.T) {
	okPut := putFunc(func(context.Context, string, []byte, string) error { return nil })
	badPut := putFunc(func(context.Context, string, []byte, string) error { return errors.New("S3 " + secretText) })
	okPublish := func(context.Context, stream.Event) error { return nil }
	badPublish := func(context.Context, stream.Event) error { return errors.New("nats " + secretText) }
	from := itoa(time.Now().Add(-time.Minute).Unix())
	for _, c := range []struct {
		name    string
		metaErr error
		put     ObjectPutter
		publish Publisher
	}{
		{"object store down", nil, badPut, okPublish},
		{"NATS down", nil, okPut, badPublish},
		{"PostgreSQL unreachable", errors.New("dial tcp 10.1.2.3:5432: " + secretText), okPut, okPublish},
	} {
		for _, door := range []string{"pyroscope", "otlp"} {
			t.Run(c.name+", "+door, func(t *testing.T) {
				s := New(Config{}, failingMeta{c.metaErr}, c.put, c.publish, slog.New(slog.DiscardHandler), nil)
				r := chi.NewRouter()
				s.Routes(r)
				var req *http.Request
				if door == "pyroscope" {
					req = httptest.NewRequest(http.MethodPost, "/ingest?name=svc&from="+from, strings.NewReader("a;b 1\n"))
				} else {
					req = httptest.NewRequest(http.MethodPost, "/v1development/profiles?service=svc", bytes.NewReader(otlpBody(t)))
					req.Header.Set("Content-Type", "application/x-protobuf")
				}
				req.Header.Set("Authorization", "Bearer k")
				w := httptest.NewRecorder()
				r.ServeHTTP(w, req)
				body := w.Body.String()
				if w.Code != 503 || w.Header().Get("Retry-After") == "" || !strings.Contains(body, `"message"`) {
					t.Fatalf("got %d %s (Retry-After %q), want 503 JSON", w.Code, body, w.Header().Get("Retry-After"))
				}
				if strings.Contains(body, "10.1.2.3") || strings.Contains(body, "SQLSTATE") || strings.Contains(body, "nats") {
					t.Errorf("reply carries the error's text: %s", body)
				}
			})
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// otlpBody is a minimal OTLP request in protobuf: one resource, one CPU sample of one frame.
func otlpBody(t *testing.T) []byte {
	t.Helper()
	d := &pb.ProfilesDictionary{MappingTable: []*pb.Mapping{{}}, LinkTable: []*pb.Link{{}}, AttributeTable: []*pb.KeyValueAndUnit{{}},
		StringTable: []string{"", "samples", "count", "main"}, FunctionTable: []*pb.Function{{}, {NameStrindex: 3}},
		LocationTable: []*pb.Location{{}, {Lines: []*pb.Line{{FunctionIndex: 1}}}}, StackTable: []*pb.Stack{{}, {LocationIndices: []int32{1}}}}
	req := &collpb.ExportProfilesServiceRequest{Dictionary: d, ResourceProfiles: []*pb.ResourceProfiles{{
		ScopeProfiles: []*pb.ScopeProfiles{{Profiles: []*pb.Profile{{SampleType: &pb.ValueType{TypeStrindex: 1, UnitStrindex: 2},
			TimeUnixNano: uint64(time.Now().Add(-time.Minute).UnixNano()), Samples: []*pb.Sample{{StackIndex: 1, Values: []int64{3}}}}}}}}}}
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
