package pgdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// AgentLog is one log record an agent sent with --glogger-server.
type AgentLog struct {
	ID           int64           `json:"id"`
	Service      string          `json:"service"`
	Hostname     string          `json:"hostname"`
	RunID        string          `json:"run_id,omitempty"`
	AgentVersion string          `json:"agent_version,omitempty"`
	BatchID      string          `json:"batch_id,omitempty"`
	ReceivedAt   time.Time       `json:"received_at"`
	Time         time.Time       `json:"time"`
	Severity     int             `json:"severity"`
	Logger       string          `json:"logger,omitempty"`
	Message      string          `json:"message"`
	Extra        json.RawMessage `json:"extra,omitempty"`
}

// AgentLogBatch is one batch of records from one agent process.
type AgentLogBatch struct {
	Service, Hostname, RunID, AgentVersion, BatchID string
	// Lost is how many records the agent dropped before this batch (its buffer overflowed).
	Lost    int64
	Records []AgentLog
}

// InsertAgentLogs stores a batch in one transaction. A batch id already stored for the service is skipped
// (the agent retries a batch whose reply it did not see); it reports whether the batch was new.
func (d *DB) InsertAgentLogs(ctx context.Context, b AgentLogBatch, at time.Time) (bool, error) {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("store agent logs: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if b.BatchID != "" {
		tag, err := tx.Exec(ctx, `INSERT INTO agent_log_batches (service, batch_id, received_at, lost)
			VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, b.Service, b.BatchID, at, b.Lost)
		if err != nil {
			return false, fmt.Errorf("store agent log batch %s: %w", b.BatchID, err)
		}
		if tag.RowsAffected() == 0 {
			return false, nil
		}
	}
	rows := make([][]any, 0, len(b.Records))
	for _, r := range b.Records {
		rows = append(rows, []any{b.Service, b.Hostname, b.RunID, b.AgentVersion, b.BatchID, at, r.Time.UTC(),
			int16(r.Severity), r.Logger, r.Message, nullJSON(r.Extra)})
	}
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"agent_logs"}, []string{"service", "hostname", "run_id",
		"agent_version", "batch_id", "received_at", "ts", "severity", "logger", "message", "extra"},
		pgx.CopyFromRows(rows))
	if err != nil {
		return false, fmt.Errorf("store %d agent log records: %w", len(rows), err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("store agent logs: %w", err)
	}
	return true, nil
}

// PruneAgentLogs keeps the newest keep records of service and deletes the rest (and batch ids older than
// a day); it returns how many records it deleted.
func (d *DB) PruneAgentLogs(ctx context.Context, service string, keep int) (int64, error) {
	if keep <= 0 {
		return 0, nil
	}
	var cut int64
	err := d.pool.QueryRow(ctx, `SELECT id FROM agent_logs WHERE service = $1 ORDER BY id DESC OFFSET $2 LIMIT 1`,
		service, keep).Scan(&cut)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("prune agent logs of %s: %w", service, err)
	}
	tag, err := d.pool.Exec(ctx, `DELETE FROM agent_logs WHERE service = $1 AND id <= $2`, service, cut)
	if err != nil {
		return 0, fmt.Errorf("prune agent logs of %s: %w", service, err)
	}
	if _, err := d.pool.Exec(ctx, `DELETE FROM agent_log_batches WHERE service = $1 AND received_at < now() - interval '1 day'`, service); err != nil {
		return tag.RowsAffected(), fmt.Errorf("prune agent log batches of %s: %w", service, err)
	}
	return tag.RowsAffected(), nil
}

// AgentLogQuery selects agent log records; empty fields do not filter.
type AgentLogQuery struct {
	Service, Hostname string
	From, To          time.Time
	MinSeverity       int
	Limit             int
}

// ListAgentLogs returns the records matching q, newest first (at most 10,000).
func (d *DB) ListAgentLogs(ctx context.Context, q AgentLogQuery) ([]AgentLog, error) {
	if q.Limit <= 0 || q.Limit > 10000 {
		q.Limit = 1000
	}
	var from, to *time.Time
	if !q.From.IsZero() {
		from = &q.From
	}
	if !q.To.IsZero() {
		to = &q.To
	}
	rows, err := d.pool.Query(ctx, `SELECT id, service, hostname, run_id, agent_version, batch_id, received_at,
		ts, severity, logger, message, extra FROM agent_logs
		WHERE service = $1 AND ($2 = '' OR hostname = $2) AND ($3::timestamptz IS NULL OR ts >= $3)
		AND ($4::timestamptz IS NULL OR ts < $4) AND severity >= $5
		ORDER BY ts DESC, id DESC LIMIT $6`, q.Service, q.Hostname, from, to, q.MinSeverity, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("list agent logs of %s: %w", q.Service, err)
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

// Heartbeat is the last heartbeat of one host of a service.
type Heartbeat struct {
	Service       string    `json:"service"`
	Hostname      string    `json:"hostname"`
	IPAddress     string    `json:"ip_address"`
	Status        string    `json:"status"`
	LastCommandID string    `json:"last_command_id"`
	FirstSeen     time.Time `json:"first_seen"`
	LastSeen      time.Time `json:"last_seen"`
}

// RecordHeartbeat remembers that a host is alive.
func (d *DB) RecordHeartbeat(ctx context.Context, h Heartbeat, at time.Time) error {
	_, err := d.async.Exec(ctx, `INSERT INTO agent_heartbeats (service, hostname, ip_address, status,
		last_command_id, first_seen, last_seen) VALUES ($1, $2, $3, $4, $5, $6, $6)
		ON CONFLICT (service, hostname) DO UPDATE SET status = EXCLUDED.status,
		ip_address = CASE WHEN EXCLUDED.ip_address = '' THEN agent_heartbeats.ip_address ELSE EXCLUDED.ip_address END,
		last_command_id = CASE WHEN EXCLUDED.last_command_id = '' THEN agent_heartbeats.last_command_id
			ELSE EXCLUDED.last_command_id END,
		last_seen = greatest(agent_heartbeats.last_seen, EXCLUDED.last_seen)`,
		h.Service, h.Hostname, h.IPAddress, h.Status, h.LastCommandID, at)
	if err != nil {
		return fmt.Errorf("record heartbeat of %s/%s: %w", h.Service, h.Hostname, err)
	}
	return nil
}

// ListHeartbeats returns the hosts of a service (every service when empty), most recent first.
func (d *DB) ListHeartbeats(ctx context.Context, service string) ([]Heartbeat, error) {
	rows, err := d.pool.Query(ctx, `SELECT service, hostname, ip_address, status, last_command_id, first_seen,
		last_seen FROM agent_heartbeats WHERE $1 = '' OR service = $1 ORDER BY last_seen DESC LIMIT 10000`, service)
	if err != nil {
		return nil, fmt.Errorf("list heartbeats: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Heartbeat, error) {
		var h Heartbeat
		err := r.Scan(&h.Service, &h.Hostname, &h.IPAddress, &h.Status, &h.LastCommandID, &h.FirstSeen, &h.LastSeen)
		return h, err
	})
}
