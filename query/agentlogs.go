package query

import (
	"fmt"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/flamestream/flamestream/internal/pgdb"
)

// GET /api/v1/agents/logs?service=S[&hostname=H&level=L&q=TEXT&before=ID&limit=N] reads the agents' own
// logs (stored by ingest's POST /api/v1/logs) for the Agents page, newest first:
//
//	{"service": S, "logs": [pgdb.AgentLog…], "more": true when older records match}
//
// level is a minimum severity by name; q a text the message or the logger name contains (any case);
// before an id to page back from (the last id of the previous page).

// logLevels are gLogger's severities: the Python logging level divided by ten.
var logLevels = map[string]int{"debug": 1, "info": 2, "warning": 3, "error": 4, "critical": 5}

const (
	defaultLogRows = 200
	maxLogRows     = 500
	maxLogSearch   = 200
)

func (s *Server) agentLogs(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	ls := pgdb.AgentLogSearch{Service: q.Get("service"), Hostname: q.Get("hostname"), Text: q.Get("q"), Limit: defaultLogRows}
	if p := principalOf(r.Context()); ls.Service == "" && p.token != nil {
		ls.Service = p.token.Service
	}
	bad := func(msg, detail string) error {
		return &Error{Status: http.StatusBadRequest, Message: msg, Detail: detail}
	}
	if ls.Service == "" {
		return bad("missing parameter", "service is required")
	}
	if lv := q.Get("level"); lv != "" {
		n, ok := logLevels[lv]
		if !ok {
			return bad("bad level", "one of debug, info, warning, error, critical")
		}
		ls.MinSeverity = n
	}
	if utf8.RuneCountInString(ls.Text) > maxLogSearch {
		return bad("bad q", fmt.Sprintf("at most %d characters", maxLogSearch))
	}
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return bad("bad before", "a record id (a positive integer)")
		}
		ls.BeforeID = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLogRows {
			return bad("bad limit", fmt.Sprintf("an integer from 1 to %d", maxLogRows))
		}
		ls.Limit = n
	}
	// One more row than asked says whether an older page exists.
	want := ls.Limit
	ls.Limit++
	logs, err := s.meta.SearchAgentLogs(r.Context(), ls)
	if err != nil {
		return err
	}
	more := len(logs) > want
	if more {
		logs = logs[:want]
	}
	if logs == nil {
		logs = []pgdb.AgentLog{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"service": ls.Service, "logs": logs, "more": more})
	return nil
}
