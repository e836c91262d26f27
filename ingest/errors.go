package ingest

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// apiError is an error with the HTTP status and the message the agent shows its user.
type apiError struct {
	status     int
	message    string
	detail     string
	retryAfter time.Duration
}

func (e *apiError) Error() string {
	if e.detail == "" {
		return e.message
	}
	return e.message + ": " + e.detail
}

func fail(status int, message string, detail error) *apiError {
	e := &apiError{status: status, message: message}
	if detail != nil {
		e.detail = detail.Error()
	}
	return e
}

func unavailable(message string, err error) *apiError {
	e := fail(http.StatusServiceUnavailable, message, err)
	e.retryAfter = retryAfter
	return e
}

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError maps err to its reply; every error reply is JSON with a "message" key, which the agent reads.
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
