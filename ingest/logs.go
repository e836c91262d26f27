package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/flamestream/flamestream/internal/pgdb"
)

// The agent's own logs. An agent started with --glogger-server HOST posts batches of its log records to
// POST HOST/api/v1/logs (the path of the gLogger client it embeds), gzip JSON:
//
//	{"batch_id": "…", "metadata": {"run_id", "gprofiler_version", "service_name", "hostname"},
//	 "lost": N,   // "lost_logs_count" in older clients
//	 "logs": [{"severity": 2, "timestamp": 1700000000123.4, "text": {"message": "…", "logger_name": "…", …}}]}
//
// gLogger authenticates with X-Token (the agent token) and X-Application-Name; the original logs service
// also read GPROFILER-API-KEY / GPROFILER-SERVICE-NAME, so both are accepted, and so is a plain (not gzip)
// JSON body. The service is the GPROFILER-SERVICE-NAME header, else metadata.service_name, else the
// token's own service. Records go to PostgreSQL (table agent_logs, bounded per service) and are read back
// with GET /api/v1/logs?service=S[&hostname=H&from=T&to=T&min_severity=N&limit=N]. The reply to a post is
// 201 {"message": "ok", "status": "ok", "records": N} like the original's {"status": "ok"}.

const maxLogRecords = 50_000

type logBatch struct {
	BatchID  string `json:"batch_id"`
	Metadata struct {
		RunID        string `json:"run_id"`
		AgentVersion string `json:"gprofiler_version"`
		ServiceName  string `json:"service_name"`
		Hostname     string `json:"hostname"`
	} `json:"metadata"`
	Lost     int64             `json:"lost"`
	LostOld  int64             `json:"lost_logs_count"`
	Logs     []json.RawMessage `json:"logs"`
	Hostname string            `json:"hostname"`
}

type logRecord struct {
	Severity  float64         `json:"severity"`
	Timestamp float64         `json:"timestamp"`
	Text      json.RawMessage `json:"text"`
	Message   string          `json:"message"`
}

// logKey returns the token of a logs request: gLogger's X-Token, the agent header, a bearer token, or the
// key query parameter.
func logKey(r *http.Request) string {
	for _, k := range []string{r.Header.Get("X-Token"), r.Header.Get(HeaderAPIKey)} {
		if k != "" {
			return k
		}
	}
	if a, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(a)
	}
	return r.URL.Query().Get("key")
}

// parseLogRecord turns one gLogger record into a row: text.message and text.logger_name become columns,
// the other text fields (cycle_id, serial_no, extras) stay as JSON. Text is cleaned for PostgreSQL (see
// input.go); a severity outside its smallint column is an error.
func parseLogRecord(raw json.RawMessage, now time.Time) (pgdb.AgentLog, error) {
	var rec logRecord
	var l pgdb.AgentLog
	if err := json.Unmarshal(raw, &rec); err != nil {
		return l, err
	}
	if rec.Severity < math.MinInt16 || rec.Severity > math.MaxInt16 {
		return l, fmt.Errorf("severity %v is out of range (%d to %d)", rec.Severity, math.MinInt16, math.MaxInt16)
	}
	l.Severity = int(rec.Severity)
	l.Message = rec.Message
	l.Time = now
	if rec.Timestamp > 0 && rec.Timestamp < math.MaxInt64/1e6 {
		l.Time = time.UnixMicro(int64(rec.Timestamp * 1000)).UTC()
	}
	if len(rec.Text) > 0 {
		switch rec.Text[0] {
		case '"':
			_ = json.Unmarshal(rec.Text, &l.Message)
		case '{':
			var fields map[string]json.RawMessage
			if err := json.Unmarshal(rec.Text, &fields); err != nil {
				return l, err
			}
			if m, ok := fields["message"]; ok {
				_ = json.Unmarshal(m, &l.Message)
				delete(fields, "message")
			}
			if m, ok := fields["logger_name"]; ok {
				_ = json.Unmarshal(m, &l.Logger)
				delete(fields, "logger_name")
			}
			if len(fields) > 0 {
				l.Extra, _ = json.Marshal(fields)
			}
		}
	}
	l.Message, l.Logger, l.Extra = cleanText(l.Message), cleanText(l.Logger), cleanJSON(l.Extra)
	return l, nil
}

func (s *Server) postLogs(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	tok, err := s.checkToken(ctx, logKey(r))
	if err != nil {
		return err
	}
	if tok.Kind != pgdb.KindAgent {
		return fail(http.StatusForbidden, "this API key may not send agent logs", errors.New("it is a read token"))
	}
	_, plain, err := s.readBody(w, r, false)
	if err != nil {
		return err
	}
	var b logBatch
	if err := json.Unmarshal(plain, &b); err != nil {
		return fail(http.StatusBadRequest, "body is not valid JSON", err)
	}
	if b.Logs == nil {
		return fail(http.StatusBadRequest, "missing field", errors.New("logs is required"))
	}
	if len(b.Logs) > maxLogRecords {
		return fail(http.StatusRequestEntityTooLarge, "too many log records", fmt.Errorf("%d records, at most %d a batch", len(b.Logs), maxLogRecords))
	}
	service := r.Header.Get(HeaderServiceName)
	if service == "" {
		service = b.Metadata.ServiceName
	}
	if service == "" {
		service = r.URL.Query().Get("service")
	}
	if service == "" {
		service = tok.Service
	}
	if service == "" {
		return fail(http.StatusBadRequest, "missing service name", errors.New("send metadata.service_name or the GPROFILER-SERVICE-NAME header"))
	}
	if err := checkService(service); err != nil {
		return err
	}
	if !tok.AllowsService(service) {
		return fail(http.StatusForbidden, "API key is not valid for this service", fmt.Errorf("service %q", service))
	}
	host := b.Metadata.Hostname
	if host == "" {
		host = b.Hostname
	}
	if host == "" {
		host = r.URL.Query().Get("hostname")
	}
	if err := checkName("hostname", host); err != nil {
		return err
	}
	now := time.Now().UTC()
	batch := pgdb.AgentLogBatch{Service: service, Hostname: host, RunID: cleanText(b.Metadata.RunID),
		AgentVersion: cleanText(b.Metadata.AgentVersion), BatchID: cleanText(b.BatchID), Lost: max(b.Lost, b.LostOld)}
	for i, raw := range b.Logs {
		rec, err := parseLogRecord(raw, now)
		if err != nil {
			return fail(http.StatusBadRequest, "malformed log record", fmt.Errorf("logs[%d]: %w", i, err))
		}
		batch.Records = append(batch.Records, rec)
	}
	sctx, cancel := contextStore(ctx, s.cfg.StoreTimeout)
	defer cancel()
	fresh, err := s.meta.InsertAgentLogs(sctx, batch, now)
	if err != nil {
		return metadataFailed(err)
	}
	if fresh {
		s.metrics.logRecords.Add(float64(len(batch.Records)))
		s.mu.Lock()
		s.logBatches[service]++
		prune := s.logBatches[service]%20 == 1
		s.mu.Unlock()
		if prune {
			if n, err := s.meta.PruneAgentLogs(sctx, service, s.cfg.AgentLogsMaxRows); err != nil {
				s.log.Warn("prune agent logs failed", "service", service, "err", err)
			} else if n > 0 {
				s.log.Info("agent logs pruned", "service", service, "deleted", n)
			}
		}
	}
	writeJSON(w, http.StatusCreated, map[string]any{"message": "ok", "status": "ok", "records": len(batch.Records)})
	return nil
}

// parseQueryTime accepts RFC 3339 or unix seconds, of the years 1 to 9999 (PostgreSQL's timestamptz holds
// them all; unix seconds can name times it cannot).
func parseQueryTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := parseTime(s)
	if n, nerr := strconv.ParseInt(s, 10, 64); nerr == nil {
		t, err = time.Unix(n, 0).UTC(), nil
	}
	if err == nil && (t.Year() < 1 || t.Year() > 9999) {
		err = fmt.Errorf("%s is outside the years 1 to 9999", s)
	}
	return t, err
}

func (s *Server) getLogs(w http.ResponseWriter, r *http.Request) error {
	tok, err := s.checkToken(r.Context(), logKey(r))
	if err != nil {
		return err
	}
	q := r.URL.Query()
	service := q.Get("service")
	if service == "" {
		service = tok.Service
	}
	if service == "" {
		return fail(http.StatusBadRequest, "missing parameter", errors.New("service is required"))
	}
	if !tok.AllowsService(service) {
		return fail(http.StatusForbidden, "API key is not valid for this service", fmt.Errorf("service %q", service))
	}
	if err := checkService(service); err != nil {
		return err
	}
	lq := pgdb.AgentLogQuery{Service: service, Hostname: q.Get("hostname")}
	if err := checkName("hostname", lq.Hostname); err != nil {
		return err
	}
	if lq.From, err = parseQueryTime(q.Get("from")); err != nil {
		return fail(http.StatusBadRequest, "bad from", err)
	}
	if lq.To, err = parseQueryTime(q.Get("to")); err != nil {
		return fail(http.StatusBadRequest, "bad to", err)
	}
	for name, p := range map[string]*int{"min_severity": &lq.MinSeverity, "limit": &lq.Limit} {
		if v := q.Get(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 32)
			if err == nil && name == "min_severity" && (n < math.MinInt16 || n > math.MaxInt16) {
				// It is compared with a smallint column, which PostgreSQL would refuse to compare it with.
				err = fmt.Errorf("%d is out of range (%d to %d)", n, math.MinInt16, math.MaxInt16)
			}
			if err != nil {
				return fail(http.StatusBadRequest, "bad "+name, err)
			}
			*p = int(n)
		}
	}
	logs, err := s.meta.ListAgentLogs(r.Context(), lq)
	if err != nil {
		return metadataFailed(err)
	}
	if logs == nil {
		logs = []pgdb.AgentLog{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"service": service, "logs": logs})
	return nil
}
