// Package e2e holds the end-to-end tests: a real agent upload travels through ingest, the object store,
// JetStream, the indexer and ClickHouse, and comes back out of the query API, on the real local servers.
package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
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

// expected computes, independently of the parser, the totals the flame graph must show for a profile text:
// the sum of all counts, and the sum per process name (the first frame), skipping swapper and zero counts.
func expected(t *testing.T, text []byte) (total uint64, byComm map[string]uint64) {
	byComm = map[string]uint64{}
	lines := strings.Split(string(text), "\n")
	for _, line := range lines[1:] {
		if line == "" {
			continue
		}
		sp := strings.LastIndex(line, " ")
		n, err := strconv.ParseUint(line[sp+1:], 10, 64)
		if err != nil {
			t.Fatalf("test profile line %q: %v", line, err)
		}
		fields := strings.Split(line[:sp], ";")
		// The real agent profile has application metadata enabled: index;container;comm;frames...
		comm := fields[2]
		if n == 0 || strings.HasPrefix(comm, "swapper") {
			continue
		}
		total += n
		byComm[comm] += n
	}
	return total, byComm
}

type node struct {
	Name     string  `json:"name"`
	Value    uint64  `json:"value"`
	Children []*node `json:"children"`
}

func (n *node) child(name string) *node {
	for _, c := range n.Children {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func post(t *testing.T, url, token, service string, body []byte) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/api/v2/profiles", bytes.NewReader(body))
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("GPROFILER-API-KEY", token)
	}
	req.Header.Set("GPROFILER-SERVICE-NAME", service)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("reply %d is not JSON: %q", resp.StatusCode, b)
	}
	return resp.StatusCode, out
}

func getJSON(t *testing.T, url, bearer string, v any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %v in %q", url, err, b)
		}
	}
	return resp.StatusCode
}

// TestAgentUploadBecomesFlameGraph is the walking skeleton: the real agent's profile, posted exactly as the
// agent posts it, shows up in the flame-graph API with exact totals.
func TestAgentUploadBecomesFlameGraph(t *testing.T) {
	st := testenv.Start(t, testenv.Options{})
	agentToken := st.Token(t, pgdb.KindAgent, "checkout")
	readToken := st.Token(t, pgdb.KindRead, "")

	start := time.Now().UTC().Add(-5 * time.Minute).Truncate(time.Second)
	text := demo.Restamp("ip-10-0-0-1", 1)
	total, byComm := expected(t, text)
	if total == 0 || len(byComm) < 2 {
		t.Fatalf("test profile has no samples: %d %v", total, byComm)
	}
	code, reply := post(t, st.URL, agentToken, "checkout", demo.NewUpload(text, "ip-10-0-0-1", start, "").Gzip())
	if code != http.StatusOK || reply["message"] != "ok" {
		t.Fatalf("upload: %d %v", code, reply)
	}
	gpid, ok := reply["gpid"].(float64)
	if !ok || gpid <= 0 {
		t.Fatalf("upload reply has no positive gpid: %v", reply)
	}

	from, to := start.Add(-time.Minute).Unix(), start.Add(time.Minute).Unix()
	url := fmt.Sprintf("%s/api/v1/flamegraph?service=checkout&from=%d&to=%d", st.URL, from, to)
	var root node
	deadline := time.Now().Add(30 * time.Second)
	for {
		root = node{}
		if code := getJSON(t, url, readToken, &root); code != http.StatusOK {
			t.Fatalf("flamegraph: status %d", code)
		}
		if root.Value > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if root.Name != "root" || root.Value != total {
		t.Fatalf("root = %q %d, want root %d", root.Name, root.Value, total)
	}
	for comm, want := range byComm {
		c := root.child(comm)
		if c == nil || c.Value != want {
			t.Errorf("process %s: got %+v, want value %d", comm, c, want)
		}
	}

	// The agent's retry of the same profile (new gzip header, same content, known gpid) is not counted twice.
	code, reply = post(t, st.URL, agentToken, "checkout", demo.NewUpload(text, "ip-10-0-0-1", start, strconv.Itoa(int(gpid))).Gzip())
	if code != http.StatusOK || reply["gpid"] != gpid {
		t.Fatalf("retry: %d %v, want the same gpid %v", code, reply, gpid)
	}
	// A second, different profile a minute later is counted: waiting for it proves the retry went through
	// the pipeline too, and was not added.
	text2 := demo.Restamp("ip-10-0-0-1", 2)
	total2, _ := expected(t, text2)
	code, _ = post(t, st.URL, agentToken, "checkout", demo.NewUpload(text2, "ip-10-0-0-1", start.Add(30*time.Second), strconv.Itoa(int(gpid))).Gzip())
	if code != http.StatusOK {
		t.Fatalf("second upload: %d", code)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		root = node{}
		getJSON(t, url, readToken, &root)
		if root.Value != total || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if root.Value != total+total2 {
		t.Fatalf("after retry and second profile: root %d, want %d + %d", root.Value, total, total2)
	}

	// The query API is authenticated.
	if code := getJSON(t, url, "", nil); code != http.StatusUnauthorized {
		t.Errorf("flamegraph without credentials: %d, want 401", code)
	}
	if code := getJSON(t, url, agentToken, nil); code != http.StatusForbidden {
		t.Errorf("flamegraph with an agent token: %d, want 403", code)
	}
}

// TestIngestRejectsBadUploads checks the status codes and JSON error bodies of bad uploads.
func TestIngestRejectsBadUploads(t *testing.T) {
	st := testenv.Start(t, testenv.Options{Edit: func(c *config.Config) { c.MaxBodyBytes = 64 << 10 }})
	token := st.Token(t, pgdb.KindAgent, "svc")
	good := demo.NewUpload(demo.Restamp("h", 1), "h", time.Now(), "").Gzip()
	big := make([]byte, 100<<10)
	for i := range big {
		big[i] = byte(i*7919 + i>>3)
	}
	cases := []struct {
		name, token, service string
		body                 []byte
		code                 int
		message              string
	}{
		{"no token", "", "svc", good, 401, "missing API key"},
		{"wrong token", "fs_nope", "svc", good, 401, "Invalid API key"},
		{"token of another service", token, "other", good, 403, "API key is not valid for this service"},
		{"not gzip", token, "svc", []byte(`{"profile": ""}`), 400, "body is not gzip"},
		{"truncated gzip", token, "svc", good[:len(good)/2], 400, "malformed gzip body"},
		{"not JSON", token, "svc", gz([]byte("profile=1")), 400, "body is not valid JSON"},
		{"no profile", token, "svc", gz([]byte(`{"start_time": "2023-12-03T16:41:00", "gpid": ""}`)), 400, "missing field"},
		{"no metadata", token, "svc", gz([]byte(`{"start_time": "2023-12-03T16:41:00", "gpid": "", "profile": "# {}\n"}`)), 400, "Agent metadata is missing, probably you are using and old agent"},
		{"bad metadata line", token, "svc", gz([]byte(`{"start_time": "2023-12-03T16:41:00", "gpid": "", "profile": "# {nope\n"}`)), 400, "Failed to parse v2 metadata"},
		{"too large", token, "svc", big, 413, "profile too large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, reply := post(t, st.URL, c.token, c.service, c.body)
			if code != c.code || reply["message"] != c.message {
				t.Errorf("got %d %v, want %d %q", code, reply, c.code, c.message)
			}
		})
	}
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}
