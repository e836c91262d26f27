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
	"github.com/flamestream/flamestream/query"
)

// TestSettingsRejectARetentionLongerThanTheRawOne: a service's retention can only shorten the global raw
// retention (the janitor drops a day's partition for every service at once), so PUT /api/v1/settings
// answers 400 with a message saying the maximum, and keeps what was saved.
func TestSettingsRejectARetentionLongerThanTheRawOne(t *testing.T) {
	st := testenv.Start(t, testenv.Options{})
	if err := st.PG.SetUser(context.Background(), "alice", "correct horse"); err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	query.New(query.Config{RawDays: 30, HourDays: 30}, st.CH, st.PG, slog.New(slog.NewTextHandler(io.Discard, nil))).Routes(r)
	ts := httptest.NewServer(r)
	t.Cleanup(ts.Close)
	e := &authEnv{url: ts.URL, st: st, route: r}

	resp, body := e.do(t, "POST", "/api/v1/login", `{"username":"alice","password":"correct horse"}`, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	cookies := resp.Cookies()
	hdr := map[string]string{}
	for _, c := range cookies {
		if c.Name == query.CSRFCookie {
			hdr[query.CSRFHeader] = c.Value
		}
	}
	for _, tc := range []struct {
		body    string
		status  int
		message string // in the reply's message
		saved   any    // retention_days read back afterwards (nil: the global default)
	}{
		{`{"sample_threshold":0.1,"retention_days":30}`, http.StatusOK, "", float64(30)},
		{`{"sample_threshold":0.1,"retention_days":31}`, http.StatusBadRequest, "at most 30", float64(30)},
		{`{"sample_threshold":0.1,"retention_days":0}`, http.StatusBadRequest, "at least 1", float64(30)},
		{`{"sample_threshold":0.1,"retention_days":-3}`, http.StatusBadRequest, "at least 1", float64(30)},
		{`{"sample_threshold":0.1,"retention_days":3}`, http.StatusOK, "", float64(3)},
		{`{"sample_threshold":0.1,"retention_days":null}`, http.StatusOK, "", nil},
	} {
		resp, body := e.do(t, "PUT", "/api/v1/settings/svc", tc.body, hdr, cookies...)
		if resp.StatusCode != tc.status {
			t.Errorf("PUT %s: %d %s, want %d", tc.body, resp.StatusCode, body, tc.status)
		}
		if tc.message != "" {
			var reply struct{ Message, Detail string }
			if err := json.Unmarshal([]byte(body), &reply); err != nil || !strings.Contains(reply.Message, tc.message) {
				t.Errorf("PUT %s: reply %s, want a message with %q", tc.body, body, tc.message)
			}
		}
		_, got := e.do(t, "GET", "/api/v1/settings/svc", "", nil, cookies...)
		var s map[string]any
		if err := json.Unmarshal([]byte(got), &s); err != nil {
			t.Fatalf("GET settings: %s", got)
		}
		if s["retention_days"] != tc.saved {
			t.Errorf("after PUT %s: retention_days %v, want %v", tc.body, s["retention_days"], tc.saved)
		}
	}
}
