package ingest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"
	pprof "github.com/google/pprof/profile"
	"github.com/grafana/pyroscope-go"
	collpb "go.opentelemetry.io/proto/otlp/collector/profiles/v1development"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	pb "go.opentelemetry.io/proto/otlp/profiles/v1development"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/encoding/protojson"
	gproto "google.golang.org/protobuf/proto"

	"github.com/flamestream/flamestream/cmd/flamestream/testenv"
	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/pgdb"
)

// recordingClient is the Pyroscope SDK's HTTP client: it forwards every upload and keeps the sum of the
// CPU sample counts ("samples"/count) of each pprof it sent, with the reply's status.
type recordingClient struct {
	t        *testing.T
	mu       sync.Mutex
	uploads  int
	nonEmpty int
	samples  int64
	statuses []int
	names    []string
}

func (c *recordingClient) Do(req *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	var sum int64
	_, params, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for {
		part, err := mr.NextPart()
		if err != nil {
			break
		}
		if part.FormName() != "profile" {
			continue
		}
		p, err := pprof.Parse(part)
		if err != nil {
			c.t.Errorf("the SDK sent a pprof that does not parse: %v", err)
			continue
		}
		for i, st := range p.SampleType {
			if st.Type == "samples" && st.Unit == "count" {
				for _, s := range p.Sample {
					sum += s.Value[i]
				}
			}
		}
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.uploads++
	c.names = append(c.names, req.URL.Query().Get("name"))
	if err != nil {
		c.statuses = append(c.statuses, 0)
		return nil, err
	}
	c.statuses = append(c.statuses, resp.StatusCode)
	if resp.StatusCode == http.StatusOK && sum > 0 {
		c.nonEmpty++
		c.samples += sum
	}
	return resp, nil
}

// burnCPU keeps a core busy until stop: the frames the SDK's CPU profile must show.
func burnCPU(stop <-chan struct{}) {
	h := sha256.Sum256(nil)
	for {
		select {
		case <-stop:
			return
		default:
		}
		for range 1000 {
			h = sha256.Sum256(h[:])
		}
	}
}

// hosts returns the distinct (host, instance type) of service's sample rows.
func hosts(t *testing.T, db *chdb.DB, service string) []string {
	t.Helper()
	var host, it proto.ColStr
	var out []string
	err := db.Do(context.Background(), ch.Query{
		Body:   "SELECT DISTINCT host, instance_type FROM " + db.Table("samples") + " WHERE service = " + chdb.String(service),
		Result: proto.Results{{Name: "host", Data: &host}, {Name: "instance_type", Data: &it}},
		OnResult: func(context.Context, proto.Block) error {
			for i := range host.Rows() {
				out = append(out, host.Row(i)+"/"+it.Row(i))
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// TestPyroscopeGoSDKProfilesAreStoredExactly runs the real Pyroscope Go SDK against a Flamestream stack:
// its CPU profiles of this test program (a busy loop) are accepted with the agent token as the basic
// auth password, indexed under the application's name with its tags as dimensions, and the stored sample
// total equals the sum of the "samples" values of every pprof the SDK sent.
func TestPyroscopeGoSDKProfilesAreStoredExactly(t *testing.T) {
	st := testenv.Start(t, testenv.Options{})
	const service = "pyro-sdk"
	token := st.Token(t, pgdb.KindAgent, service)
	rec := &recordingClient{t: t}
	p, err := pyroscope.Start(pyroscope.Config{
		ApplicationName: service + ".cpu", Tags: map[string]string{"hostname": "sdk-host", "container": "api", "instance_type": "c6i.large"},
		ServerAddress: st.URL, BasicAuthUser: "flamestream", BasicAuthPassword: token, UploadRate: time.Second,
		ProfileTypes: []pyroscope.ProfileType{pyroscope.ProfileCPU}, HTTPClient: rec,
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() { burnCPU(stop) })
	}
	time.Sleep(4 * time.Second)
	close(stop)
	wg.Wait()
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	uploads, nonEmpty, samples, statuses := rec.uploads, rec.nonEmpty, rec.samples, rec.statuses
	rec.mu.Unlock()
	t.Logf("SDK uploads %d (%d with samples), %d CPU samples, names %q", uploads, nonEmpty, samples, rec.names[:1])
	if uploads < 2 || nonEmpty == 0 {
		t.Fatalf("the SDK uploaded %d profiles, %d with samples", uploads, nonEmpty)
	}
	for _, code := range statuses {
		if code != http.StatusOK {
			t.Fatalf("upload answered %d (all: %v)", code, statuses)
		}
	}
	if got := waitIndexed(t, st.CH, service, uint64(nonEmpty), 60*time.Second); got != uint64(samples) {
		t.Errorf("stored %d samples, the SDK sent %d", got, samples)
	}
	if h := hosts(t, st.CH, service); !slices.Equal(h, []string{"sdk-host/c6i.large"}) {
		t.Errorf("hosts %v", h)
	}
	busy := false
	for _, r := range storedRows(t, st.CH, service) {
		if r.Container != "api" || !strings.HasPrefix(r.Frames, service+";") {
			t.Errorf("row %+v: want container api and the application as the first frame", r)
			break
		}
		busy = busy || strings.Contains(r.Frames, "ingest_test.burnCPU;")
	}
	if !busy {
		t.Error("no stored stack goes through burnCPU")
	}
}

// postFront sends a request to a front door with the token as a bearer token.
func postFront(t *testing.T, url, token string, headers map[string]string, body []byte) reply {
	t.Helper()
	h := map[string]string{"Authorization": "Bearer " + token}
	for k, v := range headers {
		h[k] = v
	}
	return do(t, http.MethodPost, url, h, body)
}

// TestPyroscopeIngestFoldedLinesAndRefusals posts Pyroscope's folded and lines formats by hand (plain and
// gzip): totals are stored exactly, a retry is stored once, a heap profile is answered 200 and not
// stored, and each bad request gets its 4xx with a JSON message.
func TestPyroscopeIngestFoldedLinesAndRefusals(t *testing.T) {
	st := testenv.Start(t, testenv.Options{})
	const service = "pyro-folded"
	token := st.Token(t, pgdb.KindAgent, service)
	other := st.Token(t, pgdb.KindAgent, "someone-else")
	from := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	q := func(name, format string) string {
		v := url.Values{"name": {name}, "from": {itoa(from.Unix())}, "until": {itoa(from.Unix() + 10)},
			"spyName": {"pyspy"}, "sampleRate": {"100"}}
		if format != "" {
			v.Set("format", format)
		}
		return st.URL + "/ingest?" + v.Encode()
	}
	folded := []byte("main;work 30\nmain;idle 12\nmain;work 3\n")
	r := postFront(t, q(service+".cpu{hostname=py-1,pod=web-0}", ""), token, nil, folded)
	if r.code != 200 {
		t.Fatalf("folded: %d %s", r.code, r.raw)
	}
	// The same upload again (a retry), gzip this time: the same profile.
	if r := postFront(t, q(service+".cpu{hostname=py-1,pod=web-0}", ""), token, map[string]string{"Content-Encoding": "gzip"}, gz(folded)); r.code != 200 {
		t.Fatalf("gzip retry: %d %s", r.code, r.raw)
	}
	if r := postFront(t, q(service+".cpu{hostname=py-2}", "lines"), token, nil, []byte("main;work\nmain;work\nmain;gc\n")); r.code != 200 {
		t.Fatalf("lines: %d %s", r.code, r.raw)
	}
	if r := postFront(t, q(service+".alloc_objects{hostname=py-1}", ""), token, nil, folded); r.code != 200 || !strings.HasPrefix(r.message(), "not stored") {
		t.Errorf("heap profile: %d %s", r.code, r.raw)
	}
	if got := waitIndexed(t, st.CH, service, 2, 30*time.Second); got != 45+3 {
		t.Errorf("stored %d samples, want 48", got)
	}
	want := []row{{service + ";main;gc", "", "", 1}, {service + ";main;idle", "web-0", "", 12},
		{service + ";main;work", "", "", 2}, {service + ";main;work", "web-0", "", 33}}
	slices.SortFunc(want, func(a, b row) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	if got := storedRows(t, st.CH, service); !slices.Equal(got, want) {
		t.Errorf("rows %v, want %v", got, want)
	}
	if h := hosts(t, st.CH, service); !slices.Equal(h, []string{"py-1/", "py-2/"}) {
		t.Errorf("hosts %v", h)
	}

	for _, c := range []struct {
		name, url, auth string
		headers         map[string]string
		body            []byte
		code            int
		message         string
	}{
		{"no token", q(service+".cpu", ""), "", nil, folded, 401, "missing API key"},
		{"wrong token", q(service+".cpu", ""), "Bearer nope", nil, folded, 401, "Invalid API key"},
		{"token of another service", q(service+".cpu", ""), "Bearer " + other, nil, folded, 403, "API key is not valid for this service"},
		{"no name", st.URL + "/ingest?from=1", "Bearer " + token, nil, folded, 400, "bad query: name has no application name (want app.cpu{key=value,...})"},
		{"relative time", st.URL + "/ingest?name=" + service + "&until=now-1h", "Bearer " + token, nil, folded, 400, `bad query: until "now-1h" is not a Unix time`},
		{"jfr", q(service, "jfr"), "Bearer " + token, nil, folded, 415, "format jfr is not supported"},
		{"no count", q(service, ""), "Bearer " + token, nil, []byte("a;b\n"), 400, "malformed profile: line 1: missing sample count"},
		{"count over UInt32", q(service, ""), "Bearer " + token, nil, []byte("a;b 4294967296\n"), 400, "malformed profile: line 1: sample count 4294967296 is over the limit of 4294967295"},
		{"not gzip", q(service, ""), "Bearer " + token, map[string]string{"Content-Encoding": "gzip"}, folded, 400, "body is not gzip"},
		{"brotli", q(service, ""), "Bearer " + token, map[string]string{"Content-Encoding": "br"}, folded, 415, "unsupported Content-Encoding"},
		{"bad pprof", q(service, "pprof"), "Bearer " + token, nil, []byte("not a pprof"), 400, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := map[string]string{"Authorization": c.auth}
			for k, v := range c.headers {
				h[k] = v
			}
			r := do(t, http.MethodPost, c.url, h, c.body)
			noLeak(t, r)
			if r.code != c.code || (c.message != "" && r.message() != c.message) || r.message() == "" {
				t.Errorf("got %d %s, want %d %q", r.code, r.raw, c.code, c.message)
			}
		})
	}
	// A time too old is refused with the agent's rule, naming the field.
	old := st.URL + "/ingest?" + url.Values{"name": {service}, "from": {"946684000"}}.Encode()
	if r := postFront(t, old, token, nil, folded); r.code != 400 || !strings.Contains(r.message(), "bad start_time") {
		t.Errorf("old from: %d %s", r.code, r.raw)
	}
	if got := waitIndexed(t, st.CH, service, 2, 5*time.Second); got != 48 {
		t.Errorf("after the refusals: %d samples", got)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// otlpRequest builds an ExportProfilesServiceRequest with the official types: two services on two hosts
// sharing one dictionary's stacks, and in the first a scope with the same samples as samples/count, as
// cpu/nanoseconds and an alloc_space profile (only the CPU samples count, once).
func otlpRequest(at time.Time) (*collpb.ExportProfilesServiceRequest, map[string]uint64) {
	d := &pb.ProfilesDictionary{MappingTable: []*pb.Mapping{{}}, LocationTable: []*pb.Location{{}}, FunctionTable: []*pb.Function{{}},
		LinkTable: []*pb.Link{{}}, StringTable: []string{""}, AttributeTable: []*pb.KeyValueAndUnit{{}}, StackTable: []*pb.Stack{{}}}
	str := func(s string) int32 {
		if i := slices.Index(d.StringTable, s); i >= 0 {
			return int32(i)
		}
		d.StringTable = append(d.StringTable, s)
		return int32(len(d.StringTable) - 1)
	}
	attr := func(k, v string) int32 {
		d.AttributeTable = append(d.AttributeTable, &pb.KeyValueAndUnit{KeyStrindex: str(k), Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}})
		return int32(len(d.AttributeTable) - 1)
	}
	loc := func(name, file string, line int64, typ string) int32 {
		d.FunctionTable = append(d.FunctionTable, &pb.Function{NameStrindex: str(name), FilenameStrindex: str(file)})
		d.LocationTable = append(d.LocationTable, &pb.Location{Lines: []*pb.Line{{FunctionIndex: int32(len(d.FunctionTable) - 1), Line: line}},
			AttributeIndices: []int32{attr("profile.frame.type", typ)}})
		return int32(len(d.LocationTable) - 1)
	}
	stack := func(locs ...int32) int32 {
		d.StackTable = append(d.StackTable, &pb.Stack{LocationIndices: locs})
		return int32(len(d.StackTable) - 1)
	}
	res := func(kv ...string) *resourcepb.Resource {
		r := &resourcepb.Resource{}
		for i := 0; i < len(kv); i += 2 {
			r.Attributes = append(r.Attributes, &commonpb.KeyValue{Key: kv[i], Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: kv[i+1]}}})
		}
		return r
	}
	sys, run, serve := loc("tcp_sendmsg", "", 0, "kernel"), loc("Server.run", "Server.java", 88, "jvm"), loc("serve", "/srv/app.py", 5, "cpython")
	s1, s2 := stack(sys, run), stack(serve)
	t := uint64(at.UnixNano())
	vt := func(typ, unit string) *pb.ValueType {
		return &pb.ValueType{TypeStrindex: str(typ), UnitStrindex: str(unit)}
	}
	prof := func(typ, unit string, scale int64) *pb.Profile {
		return &pb.Profile{SampleType: vt(typ, unit), TimeUnixNano: t, DurationNano: uint64(5 * time.Second),
			PeriodType: vt("cpu", "nanoseconds"), Period: 20_000_000, Samples: []*pb.Sample{
				{StackIndex: s1, Values: []int64{40 * scale}}, {StackIndex: s2, Values: []int64{2 * scale}}, {StackIndex: s1, Values: []int64{1 * scale}}}}
	}
	pod := attr("k8s.pod.name", "ledger-0")
	req := &collpb.ExportProfilesServiceRequest{Dictionary: d, ResourceProfiles: []*pb.ResourceProfiles{
		{Resource: res("service.name", "otel-shop", "host.name", "node-a"), ScopeProfiles: []*pb.ScopeProfiles{{Profiles: []*pb.Profile{
			prof("cpu", "nanoseconds", 20_000_000), prof("samples", "count", 1), prof("alloc_space", "bytes", 512)}}}},
		{Resource: res("host.name", "node-b", "process.executable.name", "ledger"), ScopeProfiles: []*pb.ScopeProfiles{{Profiles: []*pb.Profile{{
			SampleType: vt("samples", "count"), TimeUnixNano: t, Samples: []*pb.Sample{
				{StackIndex: s2, AttributeIndices: []int32{pod}, TimestampsUnixNano: []uint64{t + 1, t + 2}},
				{StackIndex: s1, Values: []int64{7}}}}}}}},
	}}
	// Expected rows: frames root first, runtime suffixes from profile.frame.type.
	return req, map[string]uint64{
		"otel-shop|otel-shop;Server.run (Server.java:88)_[j];tcp_sendmsg_[k]|": 41,
		"otel-shop|otel-shop;serve (/srv/app.py:5)_[p]|":                       2,
		"otel-ledger|ledger;serve (/srv/app.py:5)_[p]|ledger-0":                2,
		"otel-ledger|ledger;Server.run (Server.java:88)_[j];tcp_sendmsg_[k]|":  7,
	}
}

// TestOTLPProfilesAreStoredPerServiceAndHost posts OTLP requests built with the official types: each
// service's CPU samples are stored exactly under its host, a gzip retry is stored once, and bad requests
// get 4xx with a JSON message.
func TestOTLPProfilesAreStoredPerServiceAndHost(t *testing.T) {
	st := testenv.Start(t, testenv.Options{})
	token := st.Token(t, pgdb.KindAgent, "")
	shopOnly := st.Token(t, pgdb.KindAgent, "otel-shop")
	at := time.Now().UTC().Truncate(time.Second).Add(-10 * time.Minute)
	req, want := otlpRequest(at)
	body, err := gproto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	endpoint := st.URL + "/v1development/profiles?service=otel-ledger"
	send := func(auth string, headers map[string]string, b []byte) (int, []byte) {
		hr, _ := http.NewRequest(http.MethodPost, endpoint, bytes.NewReader(b))
		hr.Header.Set("Content-Type", "application/x-protobuf")
		hr.Header.Set("Authorization", auth)
		for k, v := range headers {
			hr.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out
	}
	code, out := send("Bearer "+token, nil, body)
	var reply collpb.ExportProfilesServiceResponse
	if code != 200 || gproto.Unmarshal(out, &reply) != nil || reply.GetPartialSuccess().GetErrorMessage() != "" {
		t.Fatalf("export: %d %q", code, out)
	}
	if code, out := send("Bearer "+token, map[string]string{"Content-Encoding": "gzip"}, gz(body)); code != 200 {
		t.Fatalf("gzip retry: %d %q", code, out)
	}
	if got := waitIndexed(t, st.CH, "otel-shop", 1, 30*time.Second); got != 43 {
		t.Errorf("otel-shop: %d samples, want 43", got)
	}
	if got := waitIndexed(t, st.CH, "otel-ledger", 1, 30*time.Second); got != 9 {
		t.Errorf("otel-ledger: %d samples, want 9", got)
	}
	got := map[string]uint64{}
	for _, svc := range []string{"otel-shop", "otel-ledger"} {
		for _, r := range storedRows(t, st.CH, svc) {
			got[svc+"|"+r.Frames+"|"+r.Container] += r.Count
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %d, want %d (all %v)", k, got[k], v, got)
		}
	}
	if h := hosts(t, st.CH, "otel-shop"); !slices.Equal(h, []string{"node-a/"}) {
		t.Errorf("otel-shop hosts %v", h)
	}
	if h := hosts(t, st.CH, "otel-ledger"); !slices.Equal(h, []string{"node-b/"}) {
		t.Errorf("otel-ledger hosts %v", h)
	}

	for _, c := range []struct {
		name, auth string
		headers    map[string]string
		body       []byte
		code       int
		message    string
	}{
		{"token scoped to one of the services", "Bearer " + shopOnly, nil, body, 403, "API key is not valid for this service"},
		{"basic auth, wrong password", "Basic " + "Zmw6bm9wZQ==", nil, body, 401, "Invalid API key"},
		{"OTLP/JSON that is not JSON", "Bearer " + token, map[string]string{"Content-Type": "application/json"}, []byte("{"), 400, ""},
		{"text", "Bearer " + token, map[string]string{"Content-Type": "text/plain"}, body, 415, "unsupported Content-Type"},
		{"not protobuf", "Bearer " + token, nil, []byte("\xff\xff\xff"), 400, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := map[string]string{"Authorization": c.auth, "Content-Type": "application/x-protobuf"}
			for k, v := range c.headers {
				h[k] = v
			}
			r := do(t, http.MethodPost, endpoint, h, c.body)
			noLeak(t, r)
			if r.code != c.code || (c.message != "" && r.message() != c.message) || r.message() == "" {
				t.Errorf("got %d %s, want %d %q", r.code, r.raw, c.code, c.message)
			}
		})
	}
	// Nothing more was stored by the refusals or the retry.
	if got := waitIndexed(t, st.CH, "otel-shop", 1, 5*time.Second); got != 43 {
		t.Errorf("otel-shop after the refusals: %d", got)
	}
}

// TestOTLPJSONProfilesAreStoredExactly posts the request of otlpRequest, built with the official types, in
// OTLP/JSON (protojson, gzip): the reply is an ExportProfilesServiceResponse in JSON, each service's CPU
// samples are stored exactly under its host, and the same request in protobuf afterwards is the same
// upload (stored once).
func TestOTLPJSONProfilesAreStoredExactly(t *testing.T) {
	st := testenv.Start(t, testenv.Options{})
	token := st.Token(t, pgdb.KindAgent, "")
	req, want := otlpRequest(time.Now().UTC().Truncate(time.Second).Add(-10 * time.Minute))
	body, err := protojson.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	endpoint := st.URL + "/v1development/profiles?service=otel-ledger"
	r := postFront(t, endpoint, token, map[string]string{"Content-Type": "application/json", "Content-Encoding": "gzip"}, gz(body))
	var reply collpb.ExportProfilesServiceResponse
	if r.code != 200 || r.header.Get("Content-Type") != "application/json" || protojson.Unmarshal(r.raw, &reply) != nil ||
		reply.GetPartialSuccess().GetErrorMessage() != "" {
		t.Fatalf("export: %d %s %q", r.code, r.header.Get("Content-Type"), r.raw)
	}
	pbBody, _ := gproto.Marshal(req)
	hr, _ := http.NewRequest(http.MethodPost, endpoint, bytes.NewReader(pbBody))
	hr.Header.Set("Content-Type", "application/x-protobuf")
	hr.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("protobuf: %d", resp.StatusCode)
	}
	if got := waitIndexed(t, st.CH, "otel-shop", 1, 30*time.Second); got != 43 {
		t.Errorf("otel-shop: %d samples, want 43", got)
	}
	if got := waitIndexed(t, st.CH, "otel-ledger", 1, 30*time.Second); got != 9 {
		t.Errorf("otel-ledger: %d samples, want 9", got)
	}
	got := map[string]uint64{}
	for _, svc := range []string{"otel-shop", "otel-ledger"} {
		for _, r := range storedRows(t, st.CH, svc) {
			got[svc+"|"+r.Frames+"|"+r.Container] += r.Count
		}
	}
	if len(got) != len(want) {
		t.Errorf("rows %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %d, want %d (all %v)", k, got[k], v, got)
		}
	}
	if h := hosts(t, st.CH, "otel-ledger"); !slices.Equal(h, []string{"node-b/"}) {
		t.Errorf("otel-ledger hosts %v", h)
	}
}

// TestPyroscopeTrieTreeAndSpeedscopeAreStoredExactly posts Pyroscope's other formats to a real stack: a
// trie and a tree in the bytes Pyroscope's own serializers write (its tests pin them), and a speedscope
// file of two threads; each is stored as its stacks and totals, under the application's name.
func TestPyroscopeTrieTreeAndSpeedscopeAreStoredExactly(t *testing.T) {
	st := testenv.Start(t, testenv.Options{})
	const service = "pyro-formats"
	token := st.Token(t, pgdb.KindAgent, service)
	from := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	post := func(host, format, contentType string, body []byte) {
		t.Helper()
		v := url.Values{"name": {service + ".cpu{hostname=" + host + "}"}, "from": {itoa(from.Unix())}, "until": {itoa(from.Unix() + 10)}}
		if format != "" {
			v.Set("format", format)
		}
		h := map[string]string{}
		if contentType != "" {
			h["Content-Type"] = contentType
		}
		if r := postFront(t, st.URL+"/ingest?"+v.Encode(), token, h, body); r.code != 200 || r.message() != "ok" {
			t.Fatalf("%s: %d %s", format, r.code, r.raw)
		}
	}
	post("trie-1", "trie", "", []byte("\x00\x00\x01\x02ab\x00\x02\x01c\x01\x00\x01d\x02\x00"))
	post("tree-1", "", "binary/octet-stream+tree", []byte("\x00\x00\x01\x01a\x00\x02\x01b\x01\x00\x01c\x02\x00"))
	post("speedscope-1", "speedscope", "application/json", []byte(`{"$schema":"https://www.speedscope.app/file-format-schema.json",
		"shared":{"frames":[{"name":"main"},{"name":"work"}]},"profiles":[
		{"type":"sampled","name":"thread 1","unit":"none","samples":[[0,1],[0]],"weights":[5,2]},
		{"type":"sampled","name":"thread 2","unit":"seconds","samples":[[0,1]],"weights":[0.25]}]}`))
	if got := waitIndexed(t, st.CH, service, 3, 30*time.Second); got != 3+3+7+25 {
		t.Errorf("stored %d samples, want 38", got)
	}
	want := []row{{service + ";a;b", "", "", 1}, {service + ";a;c", "", "", 2}, {service + ";abc", "", "", 1}, {service + ";abd", "", "", 2},
		{service + ";main", "", "", 2}, {service + ";main;work", "", "", 30}}
	if got := storedRows(t, st.CH, service); !slices.Equal(got, want) {
		t.Errorf("rows %v, want %v", got, want)
	}
	if h := hosts(t, st.CH, service); !slices.Equal(h, []string{"speedscope-1/", "tree-1/", "trie-1/"}) {
		t.Errorf("hosts %v", h)
	}
}
