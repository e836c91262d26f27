package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/flamestream/flamestream/internal/demo"
	"github.com/flamestream/flamestream/internal/pgdb"
	"github.com/flamestream/flamestream/stream"
)

// secretText stands for what a database puts in its errors: it must never reach a client.
const secretText = `ERROR: invalid byte sequence for encoding "UTF8": 0x00 (SQLSTATE 22021) at 10.1.2.3:5432`

// failingMeta is a metadata store whose writes fail with err; tokens are always valid.
type failingMeta struct{ err error }

func (m failingMeta) CheckToken(context.Context, string) (pgdb.Token, error) {
	return pgdb.Token{ID: 1, Kind: pgdb.KindAgent}, nil
}
func (m failingMeta) TouchService(context.Context, string, time.Time) (pgdb.Service, error) {
	return pgdb.Service{}, m.err
}
func (m failingMeta) RecordProfile(context.Context, int64, pgdb.Agent, time.Time) (int64, error) {
	return 0, m.err
}
func (m failingMeta) InsertAgentLogs(context.Context, pgdb.AgentLogBatch, time.Time) (bool, error) {
	return false, m.err
}
func (m failingMeta) PruneAgentLogs(context.Context, string, int) (int64, error) { return 0, m.err }
func (m failingMeta) ListAgentLogs(context.Context, pgdb.AgentLogQuery) ([]pgdb.AgentLog, error) {
	return nil, m.err
}
func (m failingMeta) RecordHeartbeat(context.Context, pgdb.Heartbeat, time.Time) error { return m.err }

type putFunc func(ctx context.Context, key string, body []byte, contentType string) error

func (f putFunc) Put(ctx context.Context, key string, body []byte, contentType string) error {
	return f(ctx, key, body, contentType)
}

// TestErrorRepliesNeverCarryServerErrorText runs every store failure through the real handlers: a
// PostgreSQL data exception is the request's fault (400), anything else is 503 with Retry-After; neither
// reply carries the error's text, which only the log sees.
func TestErrorRepliesNeverCarryServerErrorText(t *testing.T) {
	dataErr := fmt.Errorf("touch service x: %w", &pgconn.PgError{Code: "22021", Message: secretText})
	connErr := fmt.Errorf("record agent: %w", &pgconn.PgError{Code: "57P01", Message: secretText})
	plainErr := errors.New("dial tcp 10.1.2.3:5432: " + secretText)
	okPut := putFunc(func(context.Context, string, []byte, string) error { return nil })
	badPut := putFunc(func(context.Context, string, []byte, string) error { return errors.New("S3 " + secretText) })
	okPublish := func(context.Context, stream.Event) error { return nil }
	badPublish := func(context.Context, stream.Event) error { return errors.New("nats " + secretText) }
	upload := demo.NewUpload([]byte("#{\"metadata\": {\"hostname\": \"h\"}}\n;comm;a 1\n"), "h", time.Now().Add(-time.Hour), "").Gzip()
	logs := []byte(`{"metadata": {"service_name": "svc", "hostname": "h"}, "logs": [{"severity": 2, "text": "m"}]}`)
	hb := []byte(`{"hostname": "h", "service_name": "svc"}`)
	for _, c := range []struct {
		name         string
		metaErr      error
		put          ObjectPutter
		publish      Publisher
		method, path string
		body         []byte
		code         int
	}{
		{"upload, PostgreSQL refuses a value", dataErr, okPut, okPublish, "POST", "/api/v2/profiles", upload, 400},
		{"upload, PostgreSQL shutting down", connErr, okPut, okPublish, "POST", "/api/v2/profiles", upload, 503},
		{"upload, PostgreSQL unreachable", plainErr, okPut, okPublish, "POST", "/api/v1/profiles", upload, 503},
		{"upload, object store down", nil, badPut, okPublish, "POST", "/api/v2/profiles", upload, 503},
		{"upload, NATS down", nil, okPut, badPublish, "POST", "/api/v2/profiles", upload, 503},
		{"logs, PostgreSQL refuses a value", dataErr, okPut, okPublish, "POST", "/api/v1/logs", logs, 400},
		{"logs, PostgreSQL unreachable", plainErr, okPut, okPublish, "POST", "/api/v1/logs", logs, 503},
		{"logs query, PostgreSQL unreachable", plainErr, okPut, okPublish, "GET", "/api/v1/logs?service=svc", nil, 503},
		{"heartbeat, PostgreSQL refuses a value", dataErr, okPut, okPublish, "POST", "/api/metrics/heartbeat", hb, 400},
		{"heartbeat, PostgreSQL unreachable", plainErr, okPut, okPublish, "POST", "/api/metrics/heartbeat", hb, 503},
	} {
		t.Run(c.name, func(t *testing.T) {
			var logged strings.Builder
			s := New(Config{}, failingMeta{c.metaErr}, c.put, c.publish, slog.New(slog.NewTextHandler(&logged, nil)), nil)
			r := chi.NewRouter()
			s.Routes(r)
			req := httptest.NewRequest(c.method, c.path, strings.NewReader(string(c.body)))
			req.Header.Set(HeaderAPIKey, "k")
			req.Header.Set(HeaderServiceName, "svc")
			req.Header.Set("Authorization", "Bearer k")
			if c.body != nil && c.body[0] == 0x1f {
				req.Header.Set("Content-Encoding", "gzip")
			}
			w := httptest.NewRecorder()
			r.ServeHTTP(w, req)
			body := w.Body.String()
			if w.Code != c.code {
				t.Fatalf("got %d %s, want %d", w.Code, body, c.code)
			}
			if strings.Contains(body, "SQLSTATE") || strings.Contains(body, "10.1.2.3") || strings.Contains(body, "UTF8") {
				t.Errorf("reply carries the error's text: %s", body)
			}
			if !strings.Contains(body, `"message"`) || w.Header().Get("Content-Type") != "application/json" {
				t.Errorf("reply is not a JSON error with a message: %s", body)
			}
			if (c.code == 503) != (w.Header().Get("Retry-After") != "") {
				t.Errorf("Retry-After %q on a %d", w.Header().Get("Retry-After"), c.code)
			}
			if !strings.Contains(logged.String(), "10.1.2.3") {
				t.Errorf("the real error was not logged: %s", logged.String())
			}
		})
	}
}

func TestWriteErrorKeepsFiveHundredDetailsGeneric(t *testing.T) {
	for _, err := range []error{
		errors.New(secretText),
		fail(http.StatusInternalServerError, "internal error", errors.New(secretText)),
		unavailable("metadata store unavailable", errors.New(secretText)),
		fmt.Errorf("wrapped: %w", unavailable("event stream unavailable", errors.New(secretText))),
	} {
		w := httptest.NewRecorder()
		writeError(w, err)
		if w.Code < 500 || strings.Contains(w.Body.String(), "SQLSTATE") || !strings.Contains(w.Body.String(), `"detail"`) {
			t.Errorf("%v: reply %d %s", err, w.Code, w.Body.String())
		}
	}
	// A 4xx keeps its detail: it tells the client what to fix.
	w := httptest.NewRecorder()
	writeError(w, fail(http.StatusBadRequest, "bad gpid", errors.New("gpid x1 is not a non-negative integer")))
	if w.Code != 400 || !strings.Contains(w.Body.String(), "gpid x1 is not") {
		t.Errorf("4xx reply %d %s", w.Code, w.Body.String())
	}
}

func TestCheckPeriod(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	d := func(s string) time.Time { t, _ := time.Parse(time.RFC3339, s); return t }
	for _, c := range []struct {
		start, end string
		message    string // "" when accepted
	}{
		{"2026-12-03T11:00:00Z", "2026-12-03T11:01:00Z", ""},
		{"2000-01-01T00:00:00Z", "2000-01-01T00:00:00Z", ""},
		{"2026-12-04T12:00:00Z", "2026-12-04T12:00:00Z", ""},
		{"1999-12-31T23:59:59Z", "2000-01-01T00:01:00Z", "bad start_time: 1999-12-31T23:59:59Z is before 2000-01-01T00:00:00Z"},
		{"1969-12-31T23:59:59Z", "2000-01-01T00:01:00Z", "bad start_time: 1969-12-31T23:59:59Z is outside the range of a ClickHouse DateTime"},
		{"2026-12-04T12:00:01Z", "2026-12-04T12:00:01Z", "bad start_time: 2026-12-04T12:00:01Z is more than 24h0m0s after the server's time 2026-12-03T12:00:00Z"},
		{"2106-02-07T06:28:16Z", "2106-02-07T06:28:16Z", "bad start_time: 2106-02-07T06:28:16Z is outside the range"},
		{"2026-12-03T11:00:00Z", "2026-12-03T10:59:59Z", "bad end_time: 2026-12-03T10:59:59Z is before start_time 2026-12-03T11:00:00Z"},
		{"2026-12-03T11:00:00Z", "2200-01-01T00:00:00Z", "bad end_time: 2200-01-01T00:00:00Z is outside the range"},
	} {
		err := checkPeriod(d(c.start), d(c.end), now)
		var e *apiError
		switch {
		case c.message == "" && err != nil:
			t.Errorf("%s…%s: %v", c.start, c.end, err)
		case c.message != "" && (!errors.As(err, &e) || e.status != 400 || !strings.HasPrefix(e.message, c.message)):
			t.Errorf("%s…%s: %v, want 400 %q", c.start, c.end, err, c.message)
		}
	}
}

func TestCleanTextReplacesNULAndInvalidUTF8(t *testing.T) {
	for in, want := range map[string]string{
		"":               "",
		"plain":          "plain",
		"läuft":          "läuft",
		"a\x00b":         "a\uFFFDb",
		"a\xffb":         "a\uFFFDb",
		"\x00\x00":       "\uFFFD\uFFFD",
		"\xc3":           "\uFFFD",
		"ok\x00\xe2\x82": "ok\uFFFD\uFFFD",
	} {
		if got := cleanText(in); got != want {
			t.Errorf("cleanText(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCleanJSONMakesValuesJSONBAccepts(t *testing.T) {
	for in, want := range map[string]string{
		`{"a": 1}`:                         `{"a": 1}`, // untouched, not re-encoded
		`{"a\u0000": "\u0000"}`:            `{"a\ufffd":"\ufffd"}`,
		`["\ud800", 12345678901234567890]`: `["\ufffd",12345678901234567890]`,
		"{\"a\": \"\xff\"}":                `{"a":"\ufffd"}`,
		`{"a": "\u00e9"}`:                  `{"a":"é"}`,
		`{"a": "\u0000"`:                   ``, // not JSON: dropped, never sent to jsonb
	} {
		got := string(cleanJSON([]byte(in)))
		want = strings.ReplaceAll(want, `\ufffd`, "\uFFFD")
		if got != want {
			t.Errorf("cleanJSON(%q) = %q, want %q", in, got, want)
		}
	}
}
