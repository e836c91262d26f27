package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/flamestream/flamestream/cmd/flamestream/testenv"
	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/config"
	"github.com/flamestream/flamestream/internal/demo"
	"github.com/flamestream/flamestream/internal/pgdb"
	"github.com/flamestream/flamestream/internal/profile"
	"github.com/flamestream/flamestream/internal/schema"
)

// The input contract of the upload API (see the ingest package doc): what cannot be stored exactly is
// refused with 400 and a message that says why; nothing is changed on the way; no reply is a 5xx.

const plainHeader = `#{"metadata": {"hostname": "h"}}`

// post sends an upload body to path ("/api/v2/profiles" or "/api/v1/profiles") exactly as the agent does.
func post(t *testing.T, base, path, token, service string, body []byte) reply {
	t.Helper()
	return do(t, http.MethodPost, base+path, map[string]string{"GPROFILER-API-KEY": token, "GPROFILER-SERVICE-NAME": service,
		"Content-Encoding": "gzip", "Content-Type": "application/json"}, body)
}

// jsonBody is a gzip upload body with the given fields.
func jsonBody(t *testing.T, fields map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	return gz(b)
}

// noLeak fails when a reply is a 5xx or carries what looks like a database's words.
func noLeak(t *testing.T, r reply) {
	t.Helper()
	if r.code >= 500 {
		t.Errorf("reply %d %s: a bad request must never get a 5xx", r.code, r.raw)
	}
	for _, w := range []string{"SQLSTATE", "invalid byte sequence", "pgx", "ERROR:", "encoding \"UTF8\""} {
		if strings.Contains(string(r.raw), w) {
			t.Errorf("reply %s carries database text %q", r.raw, w)
		}
	}
}

// row is one stored sample row with its stack text.
type row struct {
	Frames, Container, K8s string
	Count                  uint64
}

// storedRows reads back the sample rows of service with their stack text, in a stable order.
func storedRows(t *testing.T, db *chdb.DB, service string) []row {
	t.Helper()
	ctx := context.Background()
	frames := map[uint64]string{}
	var hash proto.ColUInt64
	var text proto.ColStr
	err := db.Do(ctx, ch.Query{
		Body: "SELECT hash, frames FROM " + db.Table(schema.Stacks) + " WHERE service = " + chdb.String(service) + " AND hash IN (SELECT stack FROM " + db.Table("samples") +
			" WHERE service = " + chdb.String(service) + ")",
		Result: proto.Results{{Name: "hash", Data: &hash}, {Name: "frames", Data: &text}},
		OnResult: func(context.Context, proto.Block) error {
			for i := range hash.Rows() {
				frames[hash.Row(i)] = text.Row(i)
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var stack, count proto.ColUInt64
	var cont, k8s proto.ColStr
	var out []row
	err = db.Do(ctx, ch.Query{
		Body: "SELECT stack, container, k8s_object, toUInt64(count) AS count FROM " + db.Table("samples") +
			" WHERE service = " + chdb.String(service),
		Result: proto.Results{{Name: "stack", Data: &stack}, {Name: "container", Data: &cont}, {Name: "k8s_object", Data: &k8s}, {Name: "count", Data: &count}},
		OnResult: func(context.Context, proto.Block) error {
			for i := range stack.Rows() {
				out = append(out, row{Frames: frames[stack.Row(i)], Container: cont.Row(i), K8s: k8s.Row(i), Count: count.Row(i)})
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(out, func(a, b row) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	return out
}

func TestUploadRejectsCountAboveUInt32(t *testing.T) {
	st := testenv.Start(t, testenv.Options{})
	const service = "counts"
	token := st.Token(t, pgdb.KindAgent, service)
	start := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	for _, c := range []struct {
		name, path, lines, message string
	}{
		{"one line above the limit", "/api/v2/profiles", ";comm;u1 5000000000",
			"malformed profile: line 2: sample count 5000000000 is over the limit of 4294967295"},
		{"the largest uint64 and 2 (a sum that used to wrap to 1)", "/api/v2/profiles", ";comm;a 18446744073709551615\n;comm;a 2",
			"malformed profile: line 2: sample count 18446744073709551615 is over the limit of 4294967295"},
		{"a stack whose lines sum past the limit", "/api/v2/profiles", ";comm;a 4294967295\n;comm;b 7\n;comm;a 1",
			"malformed profile: line 4: the stack's total count in this profile, 4294967295 + 1, is over the limit of 4294967295"},
		{"v1 line above the limit", "/api/v1/profiles", "comm;a 4294967296",
			"malformed profile: line 2: sample count 4294967296 is over the limit of 4294967295"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := post(t, st.URL, c.path, token, service, demo.NewUpload([]byte(plainHeader+"\n"+c.lines+"\n"), "h", start, "").Gzip())
			noLeak(t, r)
			if r.code != 400 || r.message() != c.message {
				t.Errorf("got %d %s, want 400 %q", r.code, r.raw, c.message)
			}
		})
	}
	if n := bucketObjects(t, st, "profiles/"+service+"/"); n != 0 {
		t.Errorf("%d refused uploads were stored", n)
	}

	// At the limit, per line and per stack total, counts are stored exactly.
	text := plainHeader + "\n;comm;a 4294967294\n;comm;a 1\nc2;comm;a 4294967295\n;comm;b 3\n"
	if r := post(t, st.URL, "/api/v2/profiles", token, service, demo.NewUpload([]byte(text), "h", start, "").Gzip()); r.code != 200 {
		t.Fatalf("upload at the limit: %d %s", r.code, r.raw)
	}
	if got := waitIndexed(t, st.CH, service, 1, 30*time.Second); got != 2*4294967295+3 {
		t.Errorf("indexed %d samples, want %d", got, uint64(2*4294967295+3))
	}
	want := []row{{"comm;a", "", "", 4294967295}, {"comm;a", "c2", "", 4294967295}, {"comm;b", "", "", 3}}
	slices.SortFunc(want, func(a, b row) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	if got := storedRows(t, st.CH, service); !slices.Equal(got, want) {
		t.Errorf("stored rows %v, want %v", got, want)
	}
}

func TestUploadRejectsTimesOutOfRange(t *testing.T) {
	st := testenv.Start(t, testenv.Options{Edit: func(c *config.Config) { c.JanitorInterval = 0 }})
	const service = "times"
	token := st.Token(t, pgdb.KindAgent, service)
	now := time.Now().UTC()
	iso := func(t time.Time) string { return t.Format("2006-01-02T15:04:05") }
	profileText := plainHeader + "\n;comm;a 1\n"
	for _, c := range []struct {
		name, start, end, message string
	}{
		{"TestUploadRejectsStartBefore1970", "1969-12-31T23:59:59", "1970-01-01T00:00:59",
			"bad start_time: 1969-12-31T23:59:59Z is outside the range of a ClickHouse DateTime (1970-01-01T00:00:00Z to 2106-02-07T06:28:15Z)"},
		{"TestUploadRejectsStartBefore2000", "1999-12-31T23:59:59", "2000-01-01T00:00:59",
			"bad start_time: 1999-12-31T23:59:59Z is before 2000-01-01T00:00:00Z"},
		{"start after 2106", "2200-01-01T00:00:00", "2200-01-01T00:01:00",
			"bad start_time: 2200-01-01T00:00:00Z is outside the range of a ClickHouse DateTime (1970-01-01T00:00:00Z to 2106-02-07T06:28:15Z)"},
		{"start more than a day ahead", iso(now.Add(25 * time.Hour)), iso(now.Add(25*time.Hour + time.Minute)),
			"bad start_time: " + now.Add(25*time.Hour).Format(time.RFC3339) + " is more than 24h0m0s after the server's time"},
		{"end after 2106", iso(now.Add(-time.Hour)), "2200-01-01T00:00:00",
			"bad end_time: 2200-01-01T00:00:00Z is outside the range of a ClickHouse DateTime"},
		{"end before start", iso(now.Add(-time.Hour)), iso(now.Add(-2 * time.Hour)),
			"bad end_time: " + now.Add(-2*time.Hour).Format(time.RFC3339) + " is before start_time " + now.Add(-time.Hour).Format(time.RFC3339)},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := post(t, st.URL, "/api/v2/profiles", token, service,
				jsonBody(t, map[string]any{"start_time": c.start, "end_time": c.end, "gpid": "", "profile": profileText}))
			noLeak(t, r)
			if r.code != 400 || !strings.HasPrefix(r.message(), c.message) {
				t.Errorf("got %d %s, want 400 %q", r.code, r.raw, c.message)
			}
		})
	}
	// The edges are accepted and stored at their own time.
	for i, start := range []time.Time{time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), now.Add(23 * time.Hour).Truncate(time.Second)} {
		body := jsonBody(t, map[string]any{"start_time": iso(start), "end_time": iso(start.Add(time.Minute)), "gpid": "",
			"profile": fmt.Sprintf("%s\n;comm;a %d\n", plainHeader, i+1)})
		if r := post(t, st.URL, "/api/v2/profiles", token, service, body); r.code != 200 {
			t.Fatalf("upload at %s: %d %s", start, r.code, r.raw)
		}
	}
	waitIndexed(t, st.CH, service, 2, 30*time.Second)
	var lo, hi proto.ColDateTime
	err := st.CH.Do(context.Background(), ch.Query{
		Body:     "SELECT min(ts) AS lo, max(ts) AS hi FROM " + st.CH.Table("samples") + " WHERE service = " + chdb.String(service),
		Result:   proto.Results{{Name: "lo", Data: &lo}, {Name: "hi", Data: &hi}},
		OnResult: func(context.Context, proto.Block) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if lo.Rows() != 1 || !lo.Row(0).Equal(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)) || !hi.Row(0).Equal(now.Add(23*time.Hour).Truncate(time.Second)) {
		t.Errorf("stored times %v … %v", lo.Row(0), hi.Row(0))
	}
}

// TestUploadWithNULHostnameIs400 checks every path by which an agent's names reach PostgreSQL: NUL bytes
// and invalid UTF-8 in a service name or a hostname are 400 naming the field, never a database error.
func TestUploadWithNULHostnameIs400(t *testing.T) {
	st := testenv.Start(t, testenv.Options{})
	token := st.Token(t, pgdb.KindAgent, "")
	start := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	good := demo.NewUpload([]byte(plainHeader+"\n;comm;a 1\n"), "h", start, "").Gzip()
	withHost := func(header, body string) []byte {
		text := fmt.Sprintf(`#{"metadata": {"hostname": %s}}`+"\n;comm;a 1\n", header)
		return demo.NewUpload([]byte(text), body, start, "").Gzip()
	}
	agent := func(service string) map[string]string {
		return map[string]string{"GPROFILER-API-KEY": token, "GPROFILER-SERVICE-NAME": service, "Content-Encoding": "gzip"}
	}
	bearer := map[string]string{"Authorization": "Bearer " + token}
	logBatch := func(service, host string) []byte {
		b, _ := json.Marshal(map[string]any{"batch_id": "b", "metadata": map[string]string{"service_name": service, "hostname": host},
			"logs": []any{map[string]any{"severity": 2, "timestamp": 1.7e12, "text": map[string]string{"message": "m"}}}})
		return b
	}
	for _, c := range []struct {
		name, method, path string
		headers            map[string]string
		body               []byte
		message            string
	}{
		{"NUL in the metadata hostname", "POST", "/api/v2/profiles", agent("svc"), withHost(`"a\u0000b"`, "h"), "bad metadata.hostname: contains a NUL byte"},
		{"NUL in the upload's hostname", "POST", "/api/v2/profiles", agent("svc"), withHost(`""`, "a\x00b"), "bad hostname: contains a NUL byte"},
		{"NUL in the service parameter", "POST", "/api/v2/profiles?service=a%00b&key=" + token, map[string]string{"Content-Encoding": "gzip"}, good, "bad service name: contains a NUL byte"},
		{"invalid UTF-8 in the service parameter", "POST", "/api/v1/profiles?service=a%FFb&key=" + token, map[string]string{"Content-Encoding": "gzip"}, good, "bad service name: not valid UTF-8"},
		{"invalid UTF-8 in the service header", "POST", "/api/v2/profiles", agent("a\xc3b"), good, "bad service name: not valid UTF-8"},
		{"service name too long", "POST", "/api/v2/profiles", agent(strings.Repeat("s", 256)), good, "bad service name: longer than 255 bytes once URL-escaped"},
		{"service name too long once escaped", "POST", "/api/v2/profiles", agent(strings.Repeat("é", 50)), good, "bad service name: longer than 255 bytes once URL-escaped"},
		{"NUL in a log batch's hostname", "POST", "/api/v1/logs", map[string]string{"X-Token": token}, logBatch("svc", "a\x00b"), "bad hostname: contains a NUL byte"},
		{"NUL in a log batch's service", "POST", "/api/v1/logs", map[string]string{"X-Token": token}, logBatch("a\x00b", "h"), "bad service name: contains a NUL byte"},
		{"severity past smallint", "POST", "/api/v1/logs", map[string]string{"X-Token": token},
			[]byte(`{"metadata": {"service_name": "svc", "hostname": "h"}, "logs": [{"severity": 1e10, "text": "m"}]}`), "malformed log record"},
		{"NUL in a logs query's service", "GET", "/api/v1/logs?service=a%00b", bearer, nil, "bad service name: contains a NUL byte"},
		{"invalid UTF-8 in a logs query's hostname", "GET", "/api/v1/logs?service=svc&hostname=%FF", bearer, nil, "bad hostname: not valid UTF-8"},
		{"min_severity past smallint", "GET", "/api/v1/logs?service=svc&min_severity=99999", bearer, nil, "bad min_severity"},
		{"from past the year 9999", "GET", "/api/v1/logs?service=svc&from=999999999999", bearer, nil, "bad from"},
		{"NUL in a heartbeat's hostname", "POST", "/api/metrics/heartbeat", bearer, []byte(`{"hostname": "a\u0000b", "service_name": "svc"}`), "bad hostname: contains a NUL byte"},
		{"NUL in a heartbeat's service", "POST", "/api/metrics/heartbeat", bearer, []byte(`{"hostname": "h", "service_name": "a\u0000b"}`), "bad service name: contains a NUL byte"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := do(t, c.method, st.URL+c.path, c.headers, c.body)
			noLeak(t, r)
			if r.code != 400 || r.message() != c.message {
				t.Errorf("got %d %s, want 400 %q", r.code, r.raw, c.message)
			}
		})
	}
	if n := bucketObjects(t, st, "profiles/"); n != 0 {
		t.Errorf("%d refused uploads were stored", n)
	}
	// The longest names are stored (the object key holds them).
	for _, name := range []string{strings.Repeat("s", 255), strings.Repeat("é", 42)} {
		if r := post(t, st.URL, "/api/v2/profiles", token, name, good); r.code != 200 {
			t.Errorf("service of %d bytes: %d %s", len(name), r.code, r.raw)
		}
	}

	// Other metadata text is stored with U+FFFD for each NUL byte or invalid UTF-8 sequence.
	t.Run("other metadata text is stored with U+FFFD", func(t *testing.T) {
		ctx := context.Background()
		text := `#{"containers": ["c\u0000x"], "metadata": {"hostname": "h-clean", "agent_version": "1.\u0000", ` +
			`"cloud_info": {"instance_type": "m\u0000"}, "run_arguments": {"k\u0000": "v\ud800", "n": 12345678901234567890}}}` + "\n;comm;a 1\n"
		if r := post(t, st.URL, "/api/v2/profiles", token, "clean", demo.NewUpload([]byte(text), "h", start, "").Gzip()); r.code != 200 {
			t.Fatalf("upload: %d %s", r.code, r.raw)
		}
		agents, err := st.PG.ListAgents(ctx, "clean")
		if err != nil || len(agents) != 1 {
			t.Fatalf("agents %v %v", agents, err)
		}
		a := agents[0]
		var args map[string]any
		_ = json.Unmarshal(a.RunArguments, &args)
		if a.AgentVersion != "1.\uFFFD" || a.InstanceType != "m\uFFFD" || !slices.Equal(a.Containers, []string{"c\uFFFDx"}) ||
			args["k\uFFFD"] != "v\uFFFD" || !strings.Contains(string(a.RunArguments), "12345678901234567890") {
			t.Errorf("agent %+v, run arguments %s", a, a.RunArguments)
		}
		batch := `{"batch_id": "b\u0000", "metadata": {"service_name": "clean", "hostname": "h", "run_id": "r\u0000"}, ` +
			`"logs": [{"severity": 2, "timestamp": 1.7e12, "text": {"message": "m\u0000", "logger_name": "l\u0000", "x": "\u0000"}}]}`
		if r := do(t, "POST", st.URL+"/api/v1/logs", map[string]string{"X-Token": token}, []byte(batch)); r.code != 201 {
			t.Fatalf("logs: %d %s", r.code, r.raw)
		}
		logs, err := st.PG.ListAgentLogs(ctx, pgdb.AgentLogQuery{Service: "clean"})
		if err != nil || len(logs) != 1 {
			t.Fatalf("logs %v %v", logs, err)
		}
		if l := logs[0]; l.Message != "m\uFFFD" || l.Logger != "l\uFFFD" || l.RunID != "r\uFFFD" || l.BatchID != "b\uFFFD" ||
			!strings.Contains(string(l.Extra), "\uFFFD") {
			t.Errorf("log record %+v (extra %s)", l, l.Extra)
		}
		hb := `{"hostname": "h", "service_name": "clean", "ip_address": "10.0.0.1\u0000", "status": "s\u0000", "last_command_id": "c\u0000"}`
		if r := do(t, "POST", st.URL+"/api/metrics/heartbeat", bearer, []byte(hb)); r.code != 200 {
			t.Fatalf("heartbeat: %d %s", r.code, r.raw)
		}
		hbs, err := st.PG.ListHeartbeats(ctx, "clean")
		if err != nil || len(hbs) != 1 || hbs[0].Status != "s\uFFFD" || hbs[0].IPAddress != "10.0.0.1\uFFFD" || hbs[0].LastCommandID != "c\uFFFD" {
			t.Errorf("heartbeats %+v %v", hbs, err)
		}
	})
}

// TestAgentMergeTextIsStoredAsTheAgentMeans uploads the text of the agent's own merge code, end to end:
// v1 lines posted to /api/v1/profiles keep their process name and get no container, whatever the header
// says; v2 lines (Kubernetes container, plain container, the intel fork's header) give the containers
// and stacks the agent wrote.
func TestAgentMergeTextIsStoredAsTheAgentMeans(t *testing.T) {
	st := testenv.Start(t, testenv.Options{})
	token := st.Token(t, pgdb.KindAgent, "")
	start := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	read := func(name string) []byte {
		b, err := os.ReadFile("../internal/profile/testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	const k8sRaw = "k8s_web_web-7d9f8c6b5-abcde_prod_0c2b7e1a-uid_0"
	k8sName, k8sObj := profile.ContainerInfo(k8sRaw)
	if k8sObj == "" {
		t.Fatalf("ContainerInfo(%q) found no Kubernetes object", k8sRaw)
	}
	const gunicorn = "gunicorn;appid: python: gunicorn (/app/wsgi.py);"
	for _, c := range []struct {
		file, path, service string
		want                []row
	}{
		{"agent-merge-v1.collapsed", "/api/v1/profiles", "merge-v1", []row{
			{"java;appid: java: app.jar;Main.main_[j];Work.run_[j]", "", "", 40},
			{"java;appid: java: app.jar;Main.main_[j]", "", "", 2},
			{"bash;[unknown];read_[k]", "", "", 3},
		}},
		{"agent-merge-v2-k8s.collapsed", "/api/v2/profiles", "merge-v2", []row{
			{gunicorn + "<module> (/app/wsgi.py:10)_[p];handle (/app/views.py:42)_[p];dumps (/usr/lib/python3.11/json/__init__.py:231)_[p]", k8sName, k8sObj, 37},
			{gunicorn + "<module> (/app/wsgi.py:10)_[p];handle (/app/views.py:42)_[p]", k8sName, k8sObj, 11},
			{gunicorn + "_start_[k];entry_SYSCALL_64_[k];do_syscall_64_[k]", k8sName, k8sObj, 5},
			{"redis-server;[unknown];epoll_wait_[k]", "redis-cache", "", 23},
			{"redis-server;main;aeMain;aeProcessEvents", "redis-cache", "", 9},
			{"node;läuft (/app/ü.js:1)_[pn];Builtins_JSONStringify_[pn]", "", "", 7},
		}},
		{"agent-merge-intel.collapsed", "/api/v2/profiles", "merge-intel", []row{
			{"java;appid: java: app.jar;Main.main_[j];Loop.spin_[j]", "svc-java", "", 77},
			{"java;appid: java: app.jar;GC_Thread_[j]", "svc-java", "", 5},
		}},
	} {
		t.Run(c.file, func(t *testing.T) {
			r := post(t, st.URL, c.path+"?"+url.Values{"hostname": {"h"}}.Encode(), token, c.service,
				demo.NewUpload(read(c.file), "h", start, "").Gzip())
			if r.code != 200 {
				t.Fatalf("upload: %d %s", r.code, r.raw)
			}
			var total uint64
			for _, w := range c.want {
				total += w.Count
			}
			if got := waitIndexed(t, st.CH, c.service, 1, 30*time.Second); got != total {
				t.Errorf("indexed %d samples, want %d", got, total)
			}
			slices.SortFunc(c.want, func(a, b row) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
			if got := storedRows(t, st.CH, c.service); !slices.Equal(got, c.want) {
				t.Errorf("stored rows\n got %v\nwant %v", got, c.want)
			}
		})
	}
}
