package query_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/flamestream/flamestream/cmd/flamestream/testenv"
	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/demo"
	"github.com/flamestream/flamestream/internal/pgdb"
	"github.com/flamestream/flamestream/query"
)

// rawGet sends path with its query exactly as given (no re-encoding: a `;` stays a `;`).
func rawGet(t *testing.T, base, pathAndQuery, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+pathAndQuery, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

type tree struct {
	Name     string  `json:"name"`
	Value    uint64  `json:"value"`
	Children []*tree `json:"children"`
}

func (n *tree) children() map[string]uint64 {
	out := map[string]uint64{}
	for _, c := range n.Children {
		out[c.Name] = c.Value
	}
	return out
}

// TestSemicolonsInTheRawQueryAreValueText uploads a profile through ingest to a real stack and reads it
// back with the documented focus=a;b;c form and a host filter holding a `;`, both unescaped: Go's query
// parser drops such pairs, which made the focus silently ignored and the filter silently off.
func TestSemicolonsInTheRawQueryAreValueText(t *testing.T) {
	st := testenv.Start(t, testenv.Options{})
	agent, read := st.Token(t, pgdb.KindAgent, "shop"), st.Token(t, pgdb.KindRead, "")
	start := time.Now().UTC().Truncate(time.Minute).Add(-10 * time.Minute)
	upload := func(host, lines string) {
		t.Helper()
		text := append(demo.NewFleet(1, "shop", demo.Shape{Stacks: 10, Lines: 1, MinDepth: 2, MaxDepth: 3}).HeaderLine(host, "m5.large"), lines...)
		req, _ := http.NewRequest(http.MethodPost, st.URL+"/api/v2/profiles", bytes.NewReader(demo.NewUpload(text, host, start, "").Gzip()))
		for k, v := range map[string]string{"GPROFILER-API-KEY": agent, "GPROFILER-SERVICE-NAME": "shop",
			"Content-Encoding": "gzip", "Content-Type": "application/json"} {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("upload from %s: %d %s", host, resp.StatusCode, b)
		}
	}
	upload("web;1", ";python3;main_[p];loop_[p];handle_[p];parse_[p] 30\n"+
		";python3;main_[p];loop_[p];handle_[p];write_[k] 20\n"+
		";python3;main_[p];loop_[p];gc_[j] 7\n"+
		";python3;main_[p];idle_[p] 5\n"+
		";java;main_[j];loop_[j] 11\n")
	upload("web-2", ";python3;main_[p];loop_[p];handle_[p];parse_[p] 1000\n")

	rng := fmt.Sprintf("service=shop&from=%d&to=%d", start.Add(-time.Hour).Unix(), start.Add(time.Hour).Unix())
	get := func(q string) *tree {
		t.Helper()
		code, body := rawGet(t, st.URL, "/api/v1/flamegraph?"+rng+q, read)
		if code != http.StatusOK {
			t.Fatalf("flamegraph?%s: %d %s", q, code, body)
		}
		var n tree
		if err := json.Unmarshal(body, &n); err != nil {
			t.Fatal(err)
		}
		return &n
	}
	deadline := time.Now().Add(60 * time.Second)
	for get("").Value != 1073 {
		if time.Now().After(deadline) {
			t.Fatalf("both profiles not indexed within 60 s: total %d", get("").Value)
		}
		time.Sleep(300 * time.Millisecond)
	}

	for _, tc := range []struct {
		name, q  string
		node     string
		value    uint64
		children map[string]uint64
	}{
		{"focus a;b;c", "&focus=python3;main_[p];loop_[p];handle_[p]", "handle_[p]", 1050,
			map[string]uint64{"parse_[p]": 1030, "write_[k]": 20}},
		{"host with a ;", "&host=web;1", "root", 73, map[string]uint64{"python3": 62, "java": 11}},
		{"both", "&host=web;1&focus=python3;main_[p];loop_[p]", "loop_[p]", 57,
			map[string]uint64{"handle_[p]": 50, "gc_[j]": 7}},
		{"excluded host with a ;", "&host_not=web;1&focus=python3;main_[p]", "main_[p]", 1000,
			map[string]uint64{"loop_[p]": 1000}},
		{"escaped form still works", "&focus=" + url.QueryEscape("python3;main_[p];idle_[p]"), "idle_[p]", 5, map[string]uint64{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := get(tc.q)
			if got := n.children(); n.Name != tc.node || n.Value != tc.value || fmt.Sprint(got) != fmt.Sprint(tc.children) {
				t.Fatalf("got %s=%d %v, want %s=%d %v", n.Name, n.Value, got, tc.node, tc.value, tc.children)
			}
		})
	}
}

// TestBadTextInAnyParameterIsA400NamingIt: a NUL byte or invalid UTF-8 in any string the query API passes
// to PostgreSQL or ClickHouse (query parameters, path parameters, JSON fields, the login name) is a 400
// whose message names the parameter, never a 5xx or PostgreSQL's text.
func TestBadTextInAnyParameterIsA400NamingIt(t *testing.T) {
	e := newAuthEnv(t)
	read := e.st.Token(t, pgdb.KindRead, "")
	resp, _ := e.do(t, "POST", "/api/v1/login", `{"username":"alice","password":"correct horse"}`, nil)
	var session, csrf *http.Cookie
	for _, c := range resp.Cookies() {
		switch c.Name {
		case query.SessionCookie:
			session = c
		case query.CSRFCookie:
			csrf = c
		}
	}
	if session == nil || csrf == nil {
		t.Fatalf("login: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	bearer := map[string]string{"Authorization": "Bearer " + read}
	user := map[string]string{query.CSRFHeader: csrf.Value}
	var cases []struct {
		method, path, body string
		hdr                map[string]string
		message            string
	}
	add := func(method, path, body string, hdr map[string]string, message string) {
		cases = append(cases, struct {
			method, path, body string
			hdr                map[string]string
			message            string
		}{method, path, body, hdr, message})
	}
	for _, bad := range []string{"%00", "%FF", "a%00b", "%C3%28"} {
		for _, route := range []string{"flamegraph", "timeline", "top", "filters", "diff", "export", "agents"} {
			add("GET", "/api/v1/"+route+"?service="+bad, "", bearer, "bad service")
		}
		for _, p := range []string{"host", "container_not", "instance_type", "k8s_object", "base_host", "focus", "format", "sort"} {
			add("GET", "/api/v1/flamegraph?service=s&"+p+"="+bad, "", bearer, "bad "+p)
		}
		add("GET", "/api/v1/settings/"+bad, "", nil, "bad service")
		add("PUT", "/api/v1/settings/"+bad, `{"sample_threshold":0.5}`, user, "bad service")
	}
	add("GET", "/api/v1/flamegraph?service=s&host=%zz", "", bearer, "bad query string")
	add("GET", "/api/v1/flamegraph?service=s&ho%00st=x", "", bearer, `bad parameter name "ho\x00st"`)
	add("POST", "/api/v1/tokens", `{"name":"a\u0000b","kind":"read"}`, user, "bad name")
	add("POST", "/api/v1/tokens", `{"name":"n","kind":"read","service":"\u0000"}`, user, "bad service")
	add("POST", "/api/v1/login", `{"username":"ali\u0000ce","password":"correct horse"}`, nil, "bad username")
	for _, tc := range cases {
		resp, body := e.do(t, tc.method, tc.path, tc.body, tc.hdr, session)
		var msg struct{ Message, Detail string }
		if resp.StatusCode != http.StatusBadRequest || json.Unmarshal([]byte(body), &msg) != nil || msg.Message != tc.message {
			t.Errorf("%s %s %s: %d %s, want 400 %q", tc.method, tc.path, tc.body, resp.StatusCode, body, tc.message)
		}
		for _, leak := range []string{"UTF8", "SQLSTATE", "byte sequence", "ClickHouse", "DB::"} {
			if strings.Contains(body, leak) {
				t.Errorf("%s %s: reply %s carries a database's text", tc.method, tc.path, body)
			}
		}
	}
	t.Logf("%d bad requests checked", len(cases))
}

// TestDatabaseFailuresNeverReachTheReply: with ClickHouse gone under the query server, and then
// PostgreSQL, replies are JSON errors that carry neither driver's text.
func TestDatabaseFailuresNeverReachTheReply(t *testing.T) {
	st := testenv.Start(t, testenv.Options{})
	ctx := context.Background()
	chConn, err := chdb.Open(ctx, chdb.Options{Addr: st.Config.ClickHouseAddr, User: st.Config.ClickHouseUser,
		Password: st.Config.ClickHousePassword, Database: st.Config.ClickHouseDatabase})
	if err != nil {
		t.Fatal(err)
	}
	pg, err := pgdb.Open(ctx, st.Config.PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	r := chi.NewRouter()
	query.New(query.Config{}, chConn, pg, slog.New(slog.NewTextHandler(&logs, nil))).Routes(r)
	ts := httptest.NewServer(r)
	defer ts.Close()
	read := st.Token(t, pgdb.KindRead, "")
	check := func(path string, status int) {
		t.Helper()
		code, body := rawGet(t, ts.URL, path, read)
		var msg struct{ Message, Detail string }
		if code != status || json.Unmarshal(body, &msg) != nil || msg.Message == "" {
			t.Errorf("GET %s: %d %s, want %d JSON", path, code, body, status)
		}
		for _, leak := range []string{"closed", "pool", "connect", "dial", "tcp", "127.0.0.1", "clickhouse", "postgres", "SQLSTATE"} {
			if strings.Contains(strings.ToLower(string(body)), leak) {
				t.Errorf("GET %s: reply %s carries a database's text (%q)", path, body, leak)
			}
		}
	}
	chConn.Close()
	check("/api/v1/flamegraph?service=s", http.StatusInternalServerError)
	check("/api/v1/services", http.StatusInternalServerError)
	pg.Close()
	check("/api/v1/agents?service=s", http.StatusServiceUnavailable)
	if !strings.Contains(logs.String(), "request failed") || !strings.Contains(logs.String(), "authentication failed") {
		t.Errorf("the causes are not in the log:\n%s", logs.String())
	}
}
