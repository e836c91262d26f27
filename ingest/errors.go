package ingest

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// apiError is an error with the HTTP status and the message the agent shows its user.
//
// A 4xx reply says what is wrong with the request in message and detail. A 5xx reply never carries the
// text of the error behind it (a database's or the object store's words, addresses, SQL): that goes to
// cause, which the server logs, and the reply gets a fixed detail.
type apiError struct {
	status     int
	message    string
	detail     string
	cause      error
	retryAfter time.Duration
}

// Details of 5xx replies: fixed texts, so that no server-side error text reaches a client.
const (
	detailUnavailable = "the server could not store the request now; retry later"
	detailInternal    = "the server failed; the error is in its log"
)

func (e *apiError) Error() string {
	s := e.message
	if e.detail != "" {
		s += ": " + e.detail
	}
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

func (e *apiError) Unwrap() error { return e.cause }

// fail returns an error reply. For a 4xx, detail (optional) is sent as the reply's detail; for a 5xx it is
// only logged.
func fail(status int, message string, detail error) *apiError {
	e := &apiError{status: status, message: message}
	switch {
	case status >= 500:
		e.cause, e.detail = detail, detailInternal
	case detail != nil:
		e.detail = detail.Error()
	}
	return e
}

// unavailable is a 503 with Retry-After: a server the request needs is down or too slow. The agent
// retries a 503 on its next cycle, forever, so it is only for failures of the server, never of the input.
func unavailable(message string, err error) *apiError {
	e := fail(http.StatusServiceUnavailable, message, err)
	e.detail = detailUnavailable
	e.retryAfter = retryAfter
	return e
}

// metadataFailed maps an error of a PostgreSQL write or read to its reply. Ingest checks every text it
// stores (see input.go), so PostgreSQL refusing a value is not expected; if it happens anyway (SQLSTATE
// class 22, data exception: a byte sequence, a number or a time it cannot store), it is the request's
// fault and retrying it can never succeed: 400, not 503. Every other error (connection, timeout, server
// shutting down) is 503.
func metadataFailed(err error) *apiError {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && len(pe.Code) == 5 && pe.Code[:2] == "22" {
		e := fail(http.StatusBadRequest, "the metadata store cannot hold a value of this request",
			errors.New("a text, number or time field is outside what PostgreSQL stores"))
		e.cause = err
		return e
	}
	return unavailable("metadata store unavailable", err)
}

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError maps err to its reply; every error reply is JSON with a "message" key, which the agent reads.
// An error that is not an *apiError is a 500 whose text stays in the log.
func writeError(w http.ResponseWriter, err error) {
	var e *apiError
	if !errors.As(err, &e) {
		e = fail(http.StatusInternalServerError, "internal error", err)
	}
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(e.retryAfter.Seconds())))
	}
	body := map[string]string{"message": e.message}
	if e.detail != "" {
		body["detail"] = e.detail
	}
	writeJSON(w, e.status, body)
}
