package query

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ClickHouse/ch-go"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestErrorMappingKeepsDatabaseTextInTheLog: whatever a handler returns, bare or wrapped in badRequest, an
// error of PostgreSQL, ClickHouse or the network to them reaches the log and never the reply; PostgreSQL's
// refusal of a text value is a 400; the handlers' own reasons stay in the reply.
func TestErrorMappingKeepsDatabaseTextInTheLog(t *testing.T) {
	const secret = "SECRET-DB-TEXT"
	pgErr := func(code string) error {
		return fmt.Errorf("create token: %w", &pgconn.PgError{Code: code, Message: secret})
	}
	chErr := fmt.Errorf("flame graph: %w", &ch.Exception{Code: 62, Name: "DB::Exception", Message: secret})
	netErr := fmt.Errorf("query: %w", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New(secret)})
	for _, tc := range []struct {
		name    string
		err     error
		status  int
		message string
		detail  string // "" to check only that the secret is absent
	}{
		{"PostgreSQL error", pgErr("08006"), 500, "internal error", ""},
		{"ClickHouse exception", chErr, 500, "internal error", ""},
		{"network error", netErr, 500, "internal error", ""},
		{"joined errors", errors.Join(errors.New("host"), chErr), 500, "internal error", ""},
		{"PostgreSQL error in a bad request", badRequest("cannot create token", pgErr("23505")), 400, "cannot create token", "the server log has the cause"},
		{"text refused, bare", pgErr("22021"), 400, errBadText.Message, errBadText.Detail},
		{"text refused, in a bad request", badRequest("bad settings", pgErr("22P05")), 400, errBadText.Message, errBadText.Detail},
		{"handler's own reason", badRequest("bad sort", errors.New("self or total")), 400, "bad sort", "self or total"},
		{"body over the limit is the client's", badRequest("body is not the expected JSON", &http.MaxBytesError{Limit: 10}), 400,
			"body is not the expected JSON", "http: request body too large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			s := &Server{log: slog.New(slog.NewTextHandler(&logs, nil))}
			w := httptest.NewRecorder()
			s.handle(func(http.ResponseWriter, *http.Request) error { return tc.err })(w, httptest.NewRequest("GET", "/api/v1/x", nil))
			var got struct{ Message, Detail string }
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatalf("reply %q: %v", w.Body, err)
			}
			if w.Code != tc.status || got.Message != tc.message || (tc.detail != "" && got.Detail != tc.detail) {
				t.Errorf("reply %d %+v, want %d %q %q", w.Code, got, tc.status, tc.message, tc.detail)
			}
			if strings.Contains(w.Body.String(), secret) {
				t.Errorf("reply %s carries the database's text", w.Body)
			}
			if fromDatabase(tc.err) && !strings.Contains(logs.String(), secret) {
				t.Errorf("the cause is not logged: %q", logs.String())
			}
		})
	}
}

func TestFromDatabaseTellsDriverErrorsFromTheClients(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "22021"}, true},
		{fmt.Errorf("a: %w", fmt.Errorf("b: %w", &ch.Exception{Code: 1})), true},
		{&net.OpError{Op: "read", Err: errors.New("reset")}, true},
		{errors.New("plain"), false},
		{&http.MaxBytesError{Limit: 1}, false},
		{badRequest("x", errors.New("y")), false},
	} {
		if got := fromDatabase(tc.err); got != tc.want {
			t.Errorf("fromDatabase(%T %v) = %v, want %v", tc.err, tc.err, got, tc.want)
		}
	}
}
