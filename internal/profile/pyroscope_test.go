package profile

import (
	"bytes"
	"maps"
	"mime/multipart"
	"net/url"
	"strings"
	"testing"
	"time"

	pprof "github.com/google/pprof/profile"
)

// entries aggregates an object of format f as the indexer does and returns its entries as
// "container|stack" → count, and the header.
func entries(t *testing.T, text []byte, f Format) (map[string]uint64, Header) {
	t.Helper()
	var a Aggregate
	h, err := ParseAs(text, f, a.Add)
	if err != nil {
		t.Fatalf("ParseAs %s: %v", f, err)
	}
	out := map[string]uint64{}
	for _, e := range a.Entries() {
		s, _ := a.Stack(e.Hash)
		out[e.Container+"|"+string(s)] += e.Count
	}
	return out, h
}

func pyroscopeObject(query url.Values, contentType string, body []byte) []byte {
	return Envelope{Kind: "pyroscope", Query: query.Encode(), ContentType: contentType,
		Received: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)}.Encode(body)
}

func TestParsePyroscopeName(t *testing.T) {
	for _, c := range []struct {
		name, app, typ string
		labels         map[string]string
	}{
		{"app.cpu{hostname=h1, pod = p-1 ,env=prod}", "app", "cpu", map[string]string{"hostname": "h1", "pod": "p-1", "env": "prod"}},
		{"simple.golang.app{}", "simple.golang.app", "", map[string]string{}},
		{"my.svc.alloc_objects", "my.svc", "alloc_objects", map[string]string{}},
		{" spaced.itimer {a=b}", "spaced", "itimer", map[string]string{"a": "b"}},
	} {
		app, typ, labels, err := ParsePyroscopeName(c.name)
		if err != nil || app != c.app || typ != c.typ || !maps.Equal(labels, c.labels) {
			t.Errorf("%q: got %q %q %v %v, want %q %q %v", c.name, app, typ, labels, err, c.app, c.typ, c.labels)
		}
	}
	for _, bad := range []string{"", "{a=b}", "app{novalue}", "app{=v}"} {
		if _, _, _, err := ParsePyroscopeName(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestPyroscopeTimesFollowTheirDigitCount(t *testing.T) {
	want := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	for _, s := range []string{"1796292000", "1796292000000", "1796292000000000", "1796292000000000000"} {
		got, err := pyroscopeTime("from", s, time.Time{})
		if err != nil || !got.Equal(want) {
			t.Errorf("%s: %v %v, want %v", s, got, err, want)
		}
	}
	if _, err := pyroscopeTime("from", "now-1h", time.Time{}); err == nil {
		t.Error("relative time accepted")
	}
}

func TestPyroscopeFoldedAndLinesMapLabelsOntoDimensions(t *testing.T) {
	q := url.Values{"name": {"shop.cpu{hostname=web-1,container=api,pod=api-7d9f8b6c5-x2x4z,namespace=prod,instance_type=m5.large,team=a}"},
		"from": {"1796292000"}, "until": {"1796292010"}, "spyName": {"pyspy"}, "sampleRate": {"100"}}
	got, h := entries(t, pyroscopeObject(q, "", []byte("main;work 3\nmain;work 2\n main ; idle 1\n\n")), FormatPyroscope)
	c := "k8s_api_api-7d9f8b6c5-x2x4z_prod_0_0"
	want := map[string]uint64{c + "|shop;main;work": 5, c + "|shop;main;idle": 1}
	if !maps.Equal(got, want) {
		t.Errorf("folded: %v, want %v", got, want)
	}
	if h.Hostname != "web-1" || h.InstanceType != "m5.large" {
		t.Errorf("header %+v", h)
	}
	if name, obj := ContainerInfo(c); name != "api_api" || obj != "api_prod" {
		t.Errorf("container info %q %q", name, obj)
	}
	units, err := Describe(pyroscopeObject(q, "", []byte("main;work 3\nmain;work 2\n")), FormatPyroscope)
	if err != nil || len(units) != 1 {
		t.Fatal(units, err)
	}
	u := units[0]
	if u.Service != "shop" || u.Host != "web-1" || u.Samples != 5 || u.Stacks != 1 ||
		!u.Start.Equal(time.Unix(1796292000, 0)) || !u.End.Equal(time.Unix(1796292010, 0)) {
		t.Errorf("unit %+v", u)
	}

	q.Set("format", "lines")
	q.Set("name", "shop{service_name=billing,host=h2}")
	got, _ = entries(t, pyroscopeObject(q, "", []byte("a;b\na;b\na;c\n")), FormatPyroscope)
	if want := map[string]uint64{"|shop;a;b": 2, "|shop;a;c": 1}; !maps.Equal(got, want) {
		t.Errorf("lines: %v, want %v", got, want)
	}
	units, _ = Describe(pyroscopeObject(q, "", []byte("a;b\n")), FormatPyroscope)
	if units[0].Service != "billing" || units[0].Host != "h2" {
		t.Errorf("service_name label: %+v", units[0])
	}
}

func TestPyroscopeRefusesWhatCannotBeStored(t *testing.T) {
	q := url.Values{"name": {"app.cpu"}}
	for body, want := range map[string]string{
		"a;b 4294967296\n":        "line 1: sample count 4294967296 is over the limit",
		"a;b 4294967295\na;b 1\n": "line 2: the stack's total count",
		"a;b\n":                   "line 1: missing sample count",
		"a;b x\n":                 "line 1: sample count is not a number",
		"a;b 1\n ; 2\n":           "line 2: no frames",
	} {
		_, err := Describe(pyroscopeObject(q, "", []byte(body)), FormatPyroscope)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", body, err, want)
		}
	}
	for _, q := range []url.Values{{"name": {"{a=b}"}}, {"name": {"a"}, "from": {"yesterday"}}, {"name": {"a"}, "format": {"jfr"}}} {
		if _, err := Describe(pyroscopeObject(q, "", []byte("a 1\n")), FormatPyroscope); err == nil {
			t.Errorf("%v accepted", q)
		}
	}
	// Not CPU: described as skipped, nothing to index.
	units, err := Describe(pyroscopeObject(url.Values{"name": {"app.alloc_objects"}}, "", []byte("a 1\n")), FormatPyroscope)
	if err != nil || units[0].Skipped == "" || units[0].Samples != 0 {
		t.Errorf("heap profile: %+v %v", units, err)
	}
}

// goCPUProfile is a pprof shaped like runtime/pprof's CPU profile (samples/count and cpu/nanoseconds),
// with an inlined call and a sample label.
func goCPUProfile() *pprof.Profile {
	fMain := &pprof.Function{ID: 1, Name: "main.main", Filename: "/src/main.go"}
	fWork := &pprof.Function{ID: 2, Name: "main.work", Filename: "/src/main.go"}
	fHash := &pprof.Function{ID: 3, Name: "main.hash", Filename: "/src/hash.go"}
	m := &pprof.Mapping{ID: 1, Start: 0x400000, Limit: 0x800000, File: "/usr/bin/app"}
	lMain := &pprof.Location{ID: 1, Mapping: m, Address: 0x401000, Line: []pprof.Line{{Function: fMain, Line: 10}}}
	// main.hash inlined into main.work: the callee first.
	lWork := &pprof.Location{ID: 2, Mapping: m, Address: 0x402000, Line: []pprof.Line{{Function: fHash, Line: 3}, {Function: fWork, Line: 20}}}
	lRaw := &pprof.Location{ID: 3, Mapping: m, Address: 0x403abc}
	return &pprof.Profile{
		SampleType: []*pprof.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType: &pprof.ValueType{Type: "cpu", Unit: "nanoseconds"}, Period: 10_000_000,
		Sample: []*pprof.Sample{
			{Location: []*pprof.Location{lWork, lMain}, Value: []int64{7, 70_000_000}},
			{Location: []*pprof.Location{lRaw, lMain}, Value: []int64{2, 20_000_000}},
			{Location: []*pprof.Location{lWork, lMain}, Value: []int64{1, 10_000_000}, Label: map[string][]string{"container": {"worker"}}},
		},
		Location: []*pprof.Location{lMain, lWork, lRaw}, Function: []*pprof.Function{fMain, fWork, fHash},
		Mapping: []*pprof.Mapping{m}, TimeNanos: 1796292000_000000000, DurationNanos: 10e9,
	}
}

func multipartPprof(t *testing.T, p *pprof.Profile, stc string) (string, []byte) {
	t.Helper()
	var prof, body bytes.Buffer
	if err := p.Write(&prof); err != nil { // gzip, as runtime/pprof writes it
		t.Fatal(err)
	}
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("profile", "profile.pprof")
	fw.Write(prof.Bytes())
	if stc != "" {
		fw, _ = mw.CreateFormFile("sample_type_config", "sample_type_config.json")
		fw.Write([]byte(stc))
	}
	mw.Close()
	return mw.FormDataContentType(), body.Bytes()
}

func TestPyroscopePprofReadsTheCPUSampleCount(t *testing.T) {
	q := url.Values{"name": {"app{hostname=h,container=api}"}, "from": {"1796292000000000000"}, "until": {"1796292010000000000"}, "spyName": {"gospy"}}
	ct, body := multipartPprof(t, goCPUProfile(), "")
	got, _ := entries(t, pyroscopeObject(q, ct, body), FormatPyroscope)
	want := map[string]uint64{
		"api|app;main.main;main.work;main.hash":    7,
		"api|app;main.main;app+0x3abc":             2,
		"worker|app;main.main;main.work;main.hash": 1,
	}
	if !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	// The same pprof as a raw body with format=pprof, and gzip-free.
	var raw bytes.Buffer
	p := goCPUProfile()
	if err := p.WriteUncompressed(&raw); err != nil {
		t.Fatal(err)
	}
	q.Set("format", "pprof")
	if got2, _ := entries(t, pyroscopeObject(q, "binary/octet-stream", raw.Bytes()), FormatPyroscope); !maps.Equal(got2, want) {
		t.Errorf("raw pprof: %v, want %v", got2, want)
	}
	// Only CPU time: divided by the period.
	p.SampleType = p.SampleType[1:]
	for _, s := range p.Sample {
		s.Value = s.Value[1:]
	}
	ct, body = multipartPprof(t, p, "")
	if got3, _ := entries(t, pyroscopeObject(url.Values{"name": {"app{hostname=h,container=api}"}}, ct, body), FormatPyroscope); !maps.Equal(got3, want) {
		t.Errorf("cpu nanoseconds: %v, want %v", got3, want)
	}
	// A heap profile is skipped.
	p.SampleType = []*pprof.ValueType{{Type: "alloc_objects", Unit: "count"}}
	p.PeriodType = &pprof.ValueType{Type: "space", Unit: "bytes"}
	ct, body = multipartPprof(t, p, `{"alloc_objects":{"units":"objects"}}`)
	units, err := Describe(pyroscopeObject(url.Values{"name": {"app"}}, ct, body), FormatPyroscope)
	if err != nil || units[0].Skipped == "" {
		t.Errorf("heap: %+v %v", units, err)
	}
	if _, err := Describe(pyroscopeObject(url.Values{"name": {"app"}}, ct, body[:len(body)/2]), FormatPyroscope); err == nil {
		t.Error("truncated multipart accepted")
	}
}
