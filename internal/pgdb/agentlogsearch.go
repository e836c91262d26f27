package pgdb

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// AgentLogSearch selects agent log records for the UI: one service, optionally one host, a minimum
// severity, and a text that the message or the logger name contains (case-insensitive, taken literally).
type AgentLogSearch struct {
	Service, Hostname string
	MinSeverity       int
	Text              string
	// BeforeID pages back: only records with a smaller id (0: from the newest).
	BeforeID int64
	Limit    int
}

// likeEscaper makes a user's text a literal LIKE pattern: its %, _ and \ match themselves.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// SearchAgentLogs returns the records matching q, newest first (at most 1,000; 200 when q.Limit is 0). The
// text is a bound parameter, never SQL.
func (d *DB) SearchAgentLogs(ctx context.Context, q AgentLogSearch) ([]AgentLog, error) {
	if q.Limit <= 0 {
		q.Limit = 200
	}
	q.Limit = min(q.Limit, 1000)
	pattern := ""
	if q.Text != "" {
		pattern = "%" + likeEscaper.Replace(q.Text) + "%"
	}
	rows, err := d.pool.Query(ctx, `SELECT id, service, hostname, run_id, agent_version, batch_id, received_at,
		ts, severity, logger, message, extra FROM agent_logs
		WHERE service = $1 AND ($2 = '' OR hostname = $2) AND severity >= $3
		AND ($4 = '' OR message ILIKE $4 ESCAPE '\' OR logger ILIKE $4 ESCAPE '\')
		AND ($5 = 0 OR id < $5)
		ORDER BY id DESC LIMIT $6`, q.Service, q.Hostname, q.MinSeverity, pattern, q.BeforeID, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("search agent logs of %s: %w", q.Service, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (AgentLog, error) {
		var l AgentLog
		var sev int16
		var extra []byte
		err := r.Scan(&l.ID, &l.Service, &l.Hostname, &l.RunID, &l.AgentVersion, &l.BatchID, &l.ReceivedAt,
			&l.Time, &sev, &l.Logger, &l.Message, &extra)
		l.Severity, l.Extra = int(sev), extra
		return l, err
	})
}
