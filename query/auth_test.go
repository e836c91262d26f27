package query_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/flamestream/flamestream/cmd/flamestream/testenv"
	"github.com/flamestream/flamestream/internal/pgdb"
	"github.com/flamestream/flamestream/query"
)

type authEnv struct {
	url   string
	st    *testenv.Stack
	route chi.Router
}

func newAuthEnv(t *testing.T) *authEnv {
	t.Helper()
	st := testenv.Start(t, testenv.Options{})
	if err := st.PG.SetUser(context.Background(), "alice", "correct horse"); err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	query.New(query.Config{}, st.CH, st.PG, slog.New(slog.NewTextHandler(io.Discard, nil))).Routes(r)
	ts := httptest.NewServer(r)
	t.Cleanup(ts.Close)
	return &authEnv{url: ts.URL, st: st, route: r}
}

func (e *authEnv) do(t *testing.T, method, path, body string, hdr map[string]string, cookies ...*http.Cookie) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestEveryRouteButLoginRequiresAuthentication(t *testing.T) {
	e := newAuthEnv(t)
	n := 0
	err := chi.Walk(e.route, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if route == "/api/v1/login" {
			return nil
		}
		n++
		path := strings.NewReplacer("{id}", "1", "{service}", "svc").Replace(route)
		for _, hdr := range []map[string]string{
			nil,
			{"Authorization": "Bearer not-a-token"},
			{"Authorization": "Basic YWxpY2U6eA=="},
		} {
			resp, body := e.do(t, method, path+"?service=svc", "{}", hdr, &http.Cookie{Name: "fs_other", Value: "x"})
			var msg struct{ Message string }
			if resp.StatusCode != http.StatusUnauthorized || json.Unmarshal([]byte(body), &msg) != nil || msg.Message == "" {
				t.Errorf("%s %s with %v: %d %s, want 401 JSON", method, route, hdr, resp.StatusCode, body)
			}
		}
		// A forged session cookie is no better.
		resp, _ := e.do(t, method, path, "{}", nil, &http.Cookie{Name: query.SessionCookie, Value: "forged"})
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s with a forged session: %d, want 401", method, route, resp.StatusCode)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 14 {
		t.Fatalf("walked only %d routes", n)
	}
}

func TestLoginSetsSafeCookiesAndSessionNeedsCSRFToMutate(t *testing.T) {
	e := newAuthEnv(t)
	if resp, _ := e.do(t, "POST", "/api/v1/login", `{"username":"alice","password":"wrong"}`, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d, want 401", resp.StatusCode)
	}
	if resp, _ := e.do(t, "POST", "/api/v1/login", `not json`, nil); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad body: %d, want 400", resp.StatusCode)
	}
	resp, body := e.do(t, "POST", "/api/v1/login", `{"username":"alice","password":"correct horse"}`, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
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
		t.Fatalf("login cookies: %v", resp.Cookies())
	}
	if !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/" || session.MaxAge <= 0 {
		t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/, MaxAge", session)
	}
	if csrf.HttpOnly || csrf.SameSite != http.SameSiteStrictMode || csrf.Value == "" || csrf.Value == session.Value {
		t.Errorf("csrf cookie %+v: want readable by the page, SameSite=Strict, distinct value", csrf)
	}

	if resp, body := e.do(t, "GET", "/api/v1/me", "", nil, session); resp.StatusCode != http.StatusOK || !strings.Contains(body, "alice") {
		t.Errorf("me with session: %d %s", resp.StatusCode, body)
	}
	create := `{"name":"ci","kind":"read"}`
	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   string
		hdr    map[string]string
		status int
	}{
		{"POST without CSRF header", "POST", "/api/v1/tokens", create, nil, http.StatusForbidden},
		{"POST with a wrong CSRF header", "POST", "/api/v1/tokens", create, map[string]string{query.CSRFHeader: "nope"}, http.StatusForbidden},
		{"PUT without CSRF header", "PUT", "/api/v1/settings/svc", `{"sample_threshold":0.5}`, nil, http.StatusForbidden},
		{"DELETE without CSRF header", "DELETE", "/api/v1/tokens/1", "", nil, http.StatusForbidden},
		{"POST logout without CSRF header", "POST", "/api/v1/logout", "", nil, http.StatusForbidden},
		{"POST with the CSRF header", "POST", "/api/v1/tokens", create, map[string]string{query.CSRFHeader: csrf.Value}, http.StatusCreated},
		{"GET needs no CSRF header", "GET", "/api/v1/tokens", "", nil, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if resp, body := e.do(t, tc.method, tc.path, tc.body, tc.hdr, session); resp.StatusCode != tc.status {
				t.Errorf("%d %s, want %d", resp.StatusCode, body, tc.status)
			}
		})
	}
	// Logout ends the session.
	if resp, _ := e.do(t, "POST", "/api/v1/logout", "", map[string]string{query.CSRFHeader: csrf.Value}, session); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if resp, _ := e.do(t, "GET", "/api/v1/me", "", nil, session); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("me after logout: %d, want 401", resp.StatusCode)
	}
}

func TestBearerTokensReadOnlyTheirService(t *testing.T) {
	e := newAuthEnv(t)
	read := e.st.Token(t, pgdb.KindRead, "")
	readSvc := e.st.Token(t, pgdb.KindRead, "svc")
	agent := e.st.Token(t, pgdb.KindAgent, "svc")
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
	for _, tc := range []struct {
		name, method, path string
		hdr                map[string]string
		status             int
	}{
		{"read token reads a flame graph", "GET", "/api/v1/flamegraph?service=svc", bearer(read), http.StatusOK},
		{"service read token reads its service", "GET", "/api/v1/top?service=svc", bearer(readSvc), http.StatusOK},
		{"service read token cannot read another service", "GET", "/api/v1/flamegraph?service=other", bearer(readSvc), http.StatusForbidden},
		{"agent token cannot read", "GET", "/api/v1/flamegraph?service=svc", bearer(agent), http.StatusForbidden},
		{"read token cannot list tokens", "GET", "/api/v1/tokens", bearer(read), http.StatusForbidden},
		{"read token cannot create tokens", "POST", "/api/v1/tokens", bearer(read), http.StatusForbidden},
		{"read token cannot change settings", "PUT", "/api/v1/settings/svc", bearer(read), http.StatusForbidden},
		{"unknown token", "GET", "/api/v1/flamegraph?service=svc", bearer("fs_nope"), http.StatusUnauthorized},
		{"missing service is a bad request", "GET", "/api/v1/flamegraph", bearer(read), http.StatusBadRequest},
		{"reversed range is a bad request", "GET", "/api/v1/flamegraph?service=svc&from=2000&to=1000", bearer(read), http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if resp, body := e.do(t, tc.method, tc.path, `{"name":"x"}`, tc.hdr); resp.StatusCode != tc.status {
				t.Errorf("%d %s, want %d", resp.StatusCode, body, tc.status)
			}
		})
	}
}
