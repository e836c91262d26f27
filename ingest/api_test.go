package ingest_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flamestream/flamestream/cmd/flamestream/testenv"
	"github.com/flamestream/flamestream/internal/config"
	"github.com/flamestream/flamestream/internal/demo"
	"github.com/flamestream/flamestream/internal/pgdb"
)

// gzipBomb returns about 1 MiB of gzip that inflates to 1 GiB of zeros: 16 gzip members of 64 MiB each
// (a gzip reader concatenates members).
func gzipBomb(t *testing.T) []byte {
	t.Helper()
	var member bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&member, gzip.BestCompression)
	zeros := make([]byte, 1<<20)
	for range 64 {
		_, _ = zw.Write(zeros)
	}
	_ = zw.Close()
	return bytes.Repeat(member.Bytes(), 16)
}

// TestAgentAPI runs every agent-facing endpoint and every error code against one stack on the real servers.
func TestAgentAPI(t *testing.T) {
	st := testenv.Start(t, testenv.Options{Edit: func(c *config.Config) {
		c.MaxBodyBytes = 4 << 20
		c.MaxDecompressedBytes = 8 << 20
		c.AuthCacheTTL = 0 // a revoke takes effect at once
		c.AgentLogsMaxRows = 5
	}})
	ctx := context.Background()
	const service = "checkout"
	token := st.Token(t, pgdb.KindAgent, service)
	anyService := st.Token(t, pgdb.KindAgent, "")
	readToken := st.Token(t, pgdb.KindRead, service)
	fleet := smallFleet(1, service)
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Now().UTC().Truncate(time.Minute).Add(-2 * time.Hour)

	t.Run("health checks", func(t *testing.T) {
		for _, c := range []struct {
			name, path, key, service string
			code                     int
			message                  string
		}{
			{"v1 without headers", "/api/v1/health_check", "", "", 200, "ok"},
			{"v2 without headers", "/api/v2/health_check", "", "", 200, "ok"},
			{"valid key for the service", "/api/v1/health_check", token, service, 200, "ok"},
			{"all-services key", "/api/v1/health_check", anyService, "whatever", 200, "ok"},
			{"unknown key", "/api/v1/health_check", "fs_nope", service, 400, "Invalid API key"},
			{"key of another service", "/api/v2/health_check", token, "other", 400, "Invalid API key"},
			{"key without service is not checked", "/api/v1/health_check", "fs_nope", "", 200, "ok"},
		} {
			t.Run(c.name, func(t *testing.T) {
				r := do(t, http.MethodGet, st.URL+c.path, map[string]string{"gprofiler-api-key": c.key, "gprofiler-service-name": c.service}, nil)
				if r.code != c.code || r.message() != c.message {
					t.Errorf("got %d %s, want %d %q", r.code, r.raw, c.code, c.message)
				}
			})
		}
	})

	t.Run("upload assigns a gpid, reuses it and records the agent", func(t *testing.T) {
		body, _ := profileBody(t, fleet, rng, "host-a", base, "")
		r := upload(t, st.URL, token, service, body)
		if r.code != 200 || r.message() != "ok" {
			t.Fatalf("first upload: %d %s", r.code, r.raw)
		}
		gpid, ok := r.body["gpid"].(float64)
		if !ok || gpid < 1 {
			t.Fatalf("gpid %v: want a positive integer", r.body["gpid"])
		}
		agents, err := st.PG.ListAgents(ctx, service)
		if err != nil || len(agents) != 1 {
			t.Fatalf("agents %v %v", agents, err)
		}
		first := agents[0]

		time.Sleep(20 * time.Millisecond)
		gp := strconv.Itoa(int(gpid))
		for i, g := range []string{gp, gp} {
			body, _ = profileBody(t, fleet, rng, "host-a", fmtMinutes(base, i+1), g)
			r = upload(t, st.URL, token, service, body)
			if r.code != 200 || r.body["gpid"] != gpid {
				t.Fatalf("upload with gpid %s: %d %s", g, r.code, r.raw)
			}
		}
		// A gpid the server never gave, or one of another service, gets a new gpid.
		body, _ = profileBody(t, fleet, rng, "host-b", base, "987654")
		if r = upload(t, st.URL, token, service, body); r.code != 200 || r.body["gpid"] == gpid || r.body["gpid"] == 987654.0 {
			t.Fatalf("unknown gpid: %d %s", r.code, r.raw)
		}
		body, _ = profileBody(t, smallFleet(1, "other"), rng, "host-a", base, gp)
		if r = upload(t, st.URL, anyService, "other", body); r.code != 200 || r.body["gpid"] == gpid {
			t.Fatalf("gpid of another service: %d %s", r.code, r.raw)
		}

		// The uploads of a known agent are counted in memory and written every flush interval (2 s).
		var a pgdb.Agent
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			agents, _ = st.PG.ListAgents(ctx, service)
			for _, x := range agents {
				if x.GPID == int64(gpid) {
					a = x
				}
			}
			if a.Profiles >= 3 || time.Now().After(deadline) {
				break
			}
		}
		if a.Profiles != 3 || a.Hostname != "host-a" || a.AgentVersion != "1.35.0" || a.InstanceType != "m5.xlarge" || a.CloudProvider != "aws" {
			t.Errorf("agent record %+v", a)
		}
		if !a.FirstSeen.Equal(first.FirstSeen) || !a.LastSeen.After(first.LastSeen) {
			t.Errorf("first/last seen %v/%v, want first %v kept and last after %v", a.FirstSeen, a.LastSeen, first.FirstSeen, first.LastSeen)
		}
		if len(a.Containers) != 2 || !strings.HasPrefix(a.Containers[0], "api_") || len(a.K8sObjects) != 2 || !strings.HasSuffix(a.K8sObjects[0], "_prod") {
			t.Errorf("containers %q, k8s objects %q", a.Containers, a.K8sObjects)
		}
		if !strings.Contains(string(a.RunArguments), `"service_name"`) {
			t.Errorf("run arguments %s", a.RunArguments)
		}
		svc, err := st.PG.GetService(ctx, service)
		if err != nil || svc.LastSeen == nil {
			t.Errorf("service %+v %v: want it created with last_seen", svc, err)
		}
	})

	t.Run("retry of the same upload is indexed once", func(t *testing.T) {
		const svc = "checkout-retry"
		f := smallFleet(2, svc)
		body, total := profileBody(t, f, rng, "host-r", base, "")
		plain, _ := io.ReadAll(must(gzip.NewReader(bytes.NewReader(body))))
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed) // the same JSON, other gzip bytes
		zw.Write(plain)
		zw.Close()
		for i, b := range [][]byte{body, body, buf.Bytes()} {
			if r := upload(t, st.URL, anyService, svc, b); r.code != 200 {
				t.Fatalf("upload %d: %d %s", i, r.code, r.raw)
			}
		}
		if got := waitIndexed(t, st.CH, svc, 1, 30*time.Second); got != total {
			t.Errorf("indexed %d samples, want %d (the profile once)", got, total)
		}
		if n := bucketObjects(t, st, "profiles/"+svc+"/"); n != 1 {
			t.Errorf("%d objects stored, want 1", n)
		}
	})

	good, _ := profileBody(t, fleet, rng, "host-e", base, "")
	bomb := gzipBomb(t)
	if len(bomb) > 2<<20 {
		t.Fatalf("bomb is %d bytes", len(bomb))
	}
	t.Run("errors", func(t *testing.T) {
		old, revokedSecret, err := st.PG.CreateToken(ctx, "old", pgdb.KindAgent, service)
		if err != nil {
			t.Fatal(err)
		}
		if r := upload(t, st.URL, revokedSecret, service, good); r.code != 200 {
			t.Fatalf("upload before the revoke: %d %s", r.code, r.raw)
		}
		if ok, err := st.PG.RevokeToken(ctx, old.ID); !ok || err != nil {
			t.Fatalf("revoke: %v %v", ok, err)
		}
		big := make([]byte, 5<<20)
		for i := range big {
			big[i] = byte(i*7919 + i>>3)
		}
		big[0], big[1] = 0x1f, 0x8b
		for _, c := range []struct {
			name, token, service string
			body                 []byte
			code                 int
			message              string
		}{
			{"no token", "", service, good, 401, "missing API key"},
			{"unknown token", "fs_nope", service, good, 401, "Invalid API key"},
			{"revoked token", revokedSecret, service, good, 401, "Invalid API key"},
			{"token of another service", token, "other", good, 403, "API key is not valid for this service"},
			{"read token", readToken, service, good, 403, "this API key may not upload profiles"},
			{"no service", token, "", good, 400, "missing service name"},
			{"not gzip", token, service, []byte(`{"profile": "", "start_time": "2023-12-03T16:41:00"}`), 400, "body is not gzip"},
			{"truncated gzip", token, service, good[:len(good)/2], 400, "malformed gzip body"},
			{"not JSON", token, service, gz([]byte("profile=1")), 400, "body is not valid JSON"},
			{"no profile", token, service, gz([]byte(`{"start_time": "2023-12-03T16:41:00", "gpid": ""}`)), 400, "missing field"},
			{"no start_time", token, service, gz([]byte(`{"profile": "", "gpid": ""}`)), 400, "missing field"},
			{"bad start_time", token, service, gz([]byte(`{"start_time": "yesterday", "gpid": "", "profile": ""}`)), 400, "bad start_time"},
			{"no gpid", token, service, gz([]byte(`{"start_time": "2023-12-03T16:41:00", "profile": "#{}\n"}`)), 400, "bad gpid"},
			{"bad gpid", token, service, gz([]byte(`{"start_time": "2023-12-03T16:41:00", "gpid": "x1", "profile": "#{}\n"}`)), 400, "bad gpid"},
			{"no metadata", token, service, gz([]byte(`{"start_time": "2023-12-03T16:41:00", "gpid": "", "profile": "# {}\n"}`)), 400, "Agent metadata is missing, probably you are using and old agent"},
			{"bad metadata line", token, service, gz([]byte(`{"start_time": "2023-12-03T16:41:00", "gpid": "", "profile": "# {nope\n"}`)), 400, "Failed to parse v2 metadata"},
			{"stack line without count", token, service, gz([]byte(`{"start_time": "2023-12-03T16:41:00", "gpid": "", "profile": "#{\"metadata\": {\"hostname\": \"h\"}}\n;python;main\n"}`)), 400, "malformed profile: line 2: missing sample count"},
			{"compressed body over the cap", token, service, big, 413, "profile too large"},
			{"gzip bomb", token, service, bomb, 413, "profile too large"},
		} {
			t.Run(c.name, func(t *testing.T) {
				r := upload(t, st.URL, c.token, c.service, c.body)
				if r.code != c.code || r.message() != c.message {
					t.Errorf("got %d %s, want %d %q", r.code, r.raw, c.code, c.message)
				}
				if r.header.Get("Content-Type") != "application/json" {
					t.Errorf("Content-Type %q", r.header.Get("Content-Type"))
				}
			})
		}
	})

	t.Run("chunked upload without Content-Length gets 411", func(t *testing.T) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(st.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /api/v2/profiles HTTP/1.1\r\nHost: x\r\nGPROFILER-API-KEY: %s\r\nGPROFILER-SERVICE-NAME: %s\r\n"+
			"Content-Encoding: gzip\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n%x\r\n",
			token, service, len(good))
		conn.Write(good)
		io.WriteString(conn, "\r\n0\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 411 || body["message"] != "Content-Length required" {
			t.Errorf("got %d %v (%v), want 411 Content-Length required", resp.StatusCode, body, err)
		}
	})

	t.Run("agent logs are stored, deduplicated, bounded and queryable per host", func(t *testing.T) {
		batch := func(id, host string, n int) []byte {
			var logs []string
			for i := range n {
				logs = append(logs, fmt.Sprintf(`{"severity":%d,"timestamp":%d,"text":{"message":"line %d","serial_no":%d,"logger_name":"gprofiler.main","cycle_id":"c1"}}`,
					2+i%3, time.Now().Add(time.Duration(i)*time.Second).UnixMilli(), i, i))
			}
			return []byte(fmt.Sprintf(`{"batch_id":%q,"metadata":{"run_id":"r1","gprofiler_version":"1.35.0","service_name":%q,"hostname":%q},"lost":0,"logs":[%s]}`,
				id, service, host, strings.Join(logs, ",")))
		}
		glogger := map[string]string{"X-Token": token, "X-Application-Name": "gprofiler", "Content-Encoding": "gzip", "Content-Type": "application/json"}
		if r := do(t, http.MethodPost, st.URL+"/api/v1/logs", glogger, gz(batch("b1", "host-a", 3))); r.code != 201 || r.body["status"] != "ok" || r.body["records"] != 3.0 {
			t.Fatalf("post logs: %d %s", r.code, r.raw)
		}
		// The same batch again (a retry) is not stored twice; a plain JSON body with the studio's headers works too.
		if r := do(t, http.MethodPost, st.URL+"/api/v1/logs", glogger, gz(batch("b1", "host-a", 3))); r.code != 201 {
			t.Fatalf("post logs again: %d %s", r.code, r.raw)
		}
		studio := map[string]string{"GPROFILER-API-KEY": token, "GPROFILER-SERVICE-NAME": service, "Content-Type": "application/json"}
		if r := do(t, http.MethodPost, st.URL+"/api/v1/logs", studio, batch("b2", "host-b", 2)); r.code != 201 {
			t.Fatalf("post plain logs: %d %s", r.code, r.raw)
		}
		var got struct {
			Logs []pgdb.AgentLog `json:"logs"`
		}
		r := do(t, http.MethodGet, st.URL+"/api/v1/logs?service="+service+"&hostname=host-a", map[string]string{"Authorization": "Bearer " + readToken}, nil)
		if err := json.Unmarshal(r.raw, &got); r.code != 200 || err != nil || len(got.Logs) != 3 {
			t.Fatalf("get logs of host-a: %d %s", r.code, r.raw)
		}
		l := got.Logs[0]
		if l.Message != "line 2" || l.Logger != "gprofiler.main" || l.RunID != "r1" || l.AgentVersion != "1.35.0" || !strings.Contains(string(l.Extra), `"cycle_id"`) {
			t.Errorf("newest record %+v", l)
		}
		r = do(t, http.MethodGet, st.URL+"/api/v1/logs?service="+service, map[string]string{"Authorization": "Bearer " + readToken}, nil)
		if json.Unmarshal(r.raw, &got); len(got.Logs) != 5 {
			t.Errorf("all hosts: %d records, want 5", len(got.Logs))
		}
		// Past the per-service bound (5 here) the oldest records go.
		if r := do(t, http.MethodPost, st.URL+"/api/v1/logs", glogger, gz(batch("b3", "host-c", 4))); r.code != 201 {
			t.Fatalf("post logs: %d %s", r.code, r.raw)
		}
		if _, err := st.PG.PruneAgentLogs(ctx, service, 5); err != nil {
			t.Fatal(err)
		}
		r = do(t, http.MethodGet, st.URL+"/api/v1/logs?service="+service, map[string]string{"Authorization": "Bearer " + readToken}, nil)
		if json.Unmarshal(r.raw, &got); len(got.Logs) != 5 {
			t.Errorf("after pruning: %d records, want 5", len(got.Logs))
		}
		for _, c := range []struct {
			name    string
			method  string
			path    string
			headers map[string]string
			body    []byte
			code    int
		}{
			{"post without token", http.MethodPost, "/api/v1/logs", map[string]string{}, batch("x", "h", 1), 401},
			{"post with a token of another service", http.MethodPost, "/api/v1/logs", map[string]string{"X-Token": token, "GPROFILER-SERVICE-NAME": "other"}, batch("x", "h", 1), 403},
			{"post not JSON", http.MethodPost, "/api/v1/logs", map[string]string{"X-Token": token}, []byte("nope"), 400},
			{"get with a token of another service", http.MethodGet, "/api/v1/logs?service=other", map[string]string{"Authorization": "Bearer " + readToken}, nil, 403},
			{"get without token", http.MethodGet, "/api/v1/logs?service=" + service, map[string]string{}, nil, 401},
		} {
			t.Run(c.name, func(t *testing.T) {
				if r := do(t, c.method, st.URL+c.path, c.headers, c.body); r.code != c.code || r.message() == "" {
					t.Errorf("got %d %s, want %d with a message", r.code, r.raw, c.code)
				}
			})
		}
	})

	t.Run("heartbeat records the host and sends no command", func(t *testing.T) {
		hb := []byte(`{"ip_address":"10.0.0.7","hostname":"host-h","service_name":"checkout","last_command_id":null,"status":"active","timestamp":"2026-01-01T00:00:00"}`)
		auth := map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/json"}
		r := do(t, http.MethodPost, st.URL+"/api/metrics/heartbeat", auth, hb)
		if r.code != 200 || r.body["success"] != true || r.body["profiling_command"] != nil {
			t.Fatalf("heartbeat: %d %s", r.code, r.raw)
		}
		r = do(t, http.MethodPost, st.URL+"/api/metrics/command_completion", auth, []byte(`{"command_id":"c-1","hostname":"host-h","status":"completed"}`))
		if r.code != 200 || r.body["success"] != true {
			t.Fatalf("command completion: %d %s", r.code, r.raw)
		}
		hbs, err := st.PG.ListHeartbeats(ctx, service)
		if err != nil || len(hbs) != 1 || hbs[0].IPAddress != "10.0.0.7" || hbs[0].LastCommandID != "c-1" {
			t.Errorf("heartbeats %+v %v", hbs, err)
		}
		if r := do(t, http.MethodPost, st.URL+"/api/metrics/heartbeat", map[string]string{"Authorization": "Bearer fs_nope"}, hb); r.code != 401 {
			t.Errorf("heartbeat with a bad token: %d %s", r.code, r.raw)
		}
	})

	t.Run("metrics count requests by route and code", func(t *testing.T) {
		resp, err := http.Get(st.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{
			`flamestream_ingest_requests_total{code="200",route="profiles"}`,
			`flamestream_ingest_requests_total{code="413",route="profiles"}`,
			`flamestream_ingest_requests_total{code="201",route="logs"}`,
			"flamestream_ingest_bytes_total", "flamestream_ingest_publish_ack_seconds_bucket",
			"flamestream_ingest_store_seconds_bucket", "flamestream_ingest_store_errors_total",
			"flamestream_ingest_publish_errors_total", "flamestream_ingest_decompressed_bytes_total",
		} {
			if !bytes.Contains(b, []byte(want)) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestUploadsOverTheRateLimitGet429 checks the per-token limit: the burst passes, then 429 with Retry-After.
func TestUploadsOverTheRateLimitGet429(t *testing.T) {
	st := testenv.Start(t, testenv.Options{Edit: func(c *config.Config) { c.RateLimit = 2 }}) // burst 11
	token := st.Token(t, pgdb.KindAgent, "limited")
	other := st.Token(t, pgdb.KindAgent, "limited")
	fleet := smallFleet(3, "limited")
	rng := rand.New(rand.NewPCG(3, 3))
	base := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	var codes []int
	var limited reply
	for i := range 16 {
		body, _ := profileBody(t, fleet, rng, "host", fmtMinutes(base, i), "")
		r := upload(t, st.URL, token, "limited", body)
		codes = append(codes, r.code)
		if r.code == 429 && limited.code == 0 {
			limited = r
		}
	}
	for i, c := range codes[:11] {
		if c != 200 {
			t.Errorf("upload %d within the burst: %d", i, c)
		}
	}
	if limited.code != 429 || limited.message() != "too many uploads for this API key" {
		t.Fatalf("codes %v: want a 429 with a message after the burst", codes)
	}
	if s, err := strconv.Atoi(limited.header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q", limited.header.Get("Retry-After"))
	}
	// The limit is per token: another token still passes.
	body, _ := profileBody(t, fleet, rng, "host2", base, "")
	if r := upload(t, st.URL, other, "limited", body); r.code != 200 {
		t.Errorf("other token: %d %s", r.code, r.raw)
	}
}

// TestDownsamplingIndexesTheThresholdFraction: with sample_threshold 0.5 about half of the uploads are
// indexed (within 4 binomial standard deviations), and every upload is still archived.
func TestDownsamplingIndexesTheThresholdFraction(t *testing.T) {
	st := testenv.Start(t, testenv.Options{Edit: func(c *config.Config) { c.AuthCacheTTL = 0 }})
	const service, n, threshold = "sampled", 400, 0.5
	if err := st.PG.SetServiceSettings(context.Background(), service, threshold, nil); err != nil {
		t.Fatal(err)
	}
	token := st.Token(t, pgdb.KindAgent, service)
	fleet := demo.NewFleet(4, service, demo.Shape{Stacks: 100, Lines: 3, MinDepth: 20, MaxDepth: 30})
	rng := rand.New(rand.NewPCG(4, 4))
	base := time.Now().UTC().Truncate(time.Minute).Add(-10 * time.Hour)
	for i := range n {
		body, _ := profileBody(t, fleet, rng, fmt.Sprintf("host-%d", i%20), fmtMinutes(base, i/20), "")
		if r := upload(t, st.URL, token, service, body); r.code != 200 {
			t.Fatalf("upload %d: %d %s", i, r.code, r.raw)
		}
	}
	if got := bucketObjects(t, st, "profiles/"+service+"/"); got != n {
		t.Errorf("%d objects archived, want all %d", got, n)
	}
	// Wait for the indexer to settle, then check the fraction.
	var got uint64
	for prev, stable := uint64(0), 0; stable < 4; {
		time.Sleep(500 * time.Millisecond)
		got, _ = indexed(t, st.CH, service)
		if got == prev && got > 0 {
			stable++
		} else {
			stable = 0
		}
		prev = got
	}
	mean := float64(n) * (1 - threshold)
	sd := math.Sqrt(float64(n) * threshold * (1 - threshold))
	if d := math.Abs(float64(got) - mean); d > 4*sd {
		t.Errorf("%d of %d indexed, want %.0f ± %.0f (4 sd)", got, n, mean, 4*sd)
	}
	t.Logf("%d of %d indexed (expected %.0f ± %.1f sd)", got, n, mean, sd)
}
