package pgdb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNotFound is returned when a named record does not exist.
var ErrNotFound = errors.New("not found")

// Service is a profiled service and its settings.
type Service struct {
	Name            string     `json:"name"`
	CreatedAt       time.Time  `json:"created_at"`
	LastSeen        *time.Time `json:"last_seen,omitempty"`
	SampleThreshold float64    `json:"sample_threshold"`
	RetentionDays   *int       `json:"retention_days,omitempty"`
}

// TouchService creates the service on its first upload and records when it was last seen; it returns the
// service's settings so that ingest needs one round trip.
func (d *DB) TouchService(ctx context.Context, name string, at time.Time) (Service, error) {
	s := Service{Name: name}
	err := d.async.QueryRow(ctx, `INSERT INTO services (name, last_seen) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET last_seen = greatest(services.last_seen, EXCLUDED.last_seen)
		RETURNING created_at, last_seen, sample_threshold, retention_days`, name, at).
		Scan(&s.CreatedAt, &s.LastSeen, &s.SampleThreshold, &s.RetentionDays)
	if err != nil {
		return s, fmt.Errorf("touch service %s: %w", name, err)
	}
	return s, nil
}

// ListServices returns every service by name.
func (d *DB) ListServices(ctx context.Context) ([]Service, error) {
	rows, err := d.pool.Query(ctx, `SELECT name, created_at, last_seen, sample_threshold, retention_days
		FROM services ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Service, error) {
		var s Service
		err := r.Scan(&s.Name, &s.CreatedAt, &s.LastSeen, &s.SampleThreshold, &s.RetentionDays)
		return s, err
	})
}

// GetService returns one service or ErrNotFound.
func (d *DB) GetService(ctx context.Context, name string) (Service, error) {
	s := Service{Name: name}
	err := d.pool.QueryRow(ctx, `SELECT created_at, last_seen, sample_threshold, retention_days
		FROM services WHERE name = $1`, name).Scan(&s.CreatedAt, &s.LastSeen, &s.SampleThreshold, &s.RetentionDays)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, fmt.Errorf("service %s: %w", name, ErrNotFound)
	}
	return s, err
}

// SetServiceSettings sets a service's downsampling threshold and retention, creating the service if needed.
// A nil retentionDays means the global retention. Callers that know the global raw retention check
// retentionDays against it first with CheckRetentionDays.
func (d *DB) SetServiceSettings(ctx context.Context, name string, threshold float64, retentionDays *int) error {
	if threshold < 0 || threshold > 1 {
		return fmt.Errorf("sample_threshold %v: must be within 0..1", threshold)
	}
	if err := CheckRetentionDays(retentionDays, 0); err != nil {
		return err
	}
	_, err := d.pool.Exec(ctx, `INSERT INTO services (name, sample_threshold, retention_days) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET sample_threshold = EXCLUDED.sample_threshold,
		retention_days = EXCLUDED.retention_days`, name, threshold, retentionDays)
	if err != nil {
		return fmt.Errorf("set settings of %s: %w", name, err)
	}
	return nil
}

// CheckRetentionDays validates a service's own retention: nil (the global retention) or a whole number of
// days from 1 to maxDays, the global raw retention (FLAMESTREAM_RETENTION_RAW_DAYS; 0 means no maximum).
//
// A service's retention can only be shorter than the global one: samples are partitioned by day for all
// services together, so the janitor drops a day's partition with every service's rows in it once the day
// is past the global raw retention, and it cannot keep one service's rows longer. A shorter retention is
// applied by deleting that service's older rows (see indexer.Janitor). The error says the allowed range.
func CheckRetentionDays(days *int, maxDays int) error {
	if days == nil {
		return nil
	}
	switch {
	case *days < 1:
		return fmt.Errorf("retention_days %d: must be at least 1, or null for the global retention", *days)
	case maxDays > 0 && *days > maxDays:
		return fmt.Errorf("retention_days %d: must be at most %d, the global raw retention (FLAMESTREAM_RETENTION_RAW_DAYS): "+
			"a service's retention can only shorten it", *days, maxDays)
	}
	return nil
}

// ServiceRetentions calls each for the services whose own retention is set, in name order, starting after
// the service named after ("" for the first), at most limit of them. It returns the last name seen, or ""
// once the list is exhausted, so that the retention janitor can page through any number of services a
// bounded number at a time.
func (d *DB) ServiceRetentions(ctx context.Context, after string, limit int, each func(service string, days int)) (last string, err error) {
	if limit <= 0 {
		return "", fmt.Errorf("service retentions: limit %d must be positive", limit)
	}
	rows, err := d.pool.Query(ctx, `SELECT name, retention_days FROM services
		WHERE retention_days IS NOT NULL AND name > $1 ORDER BY name LIMIT $2`, after, limit)
	if err != nil {
		return "", fmt.Errorf("list service retentions: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var name string
		var days int
		if err := rows.Scan(&name, &days); err != nil {
			return "", fmt.Errorf("list service retentions: %w", err)
		}
		each(name, days)
		last = name
		n++
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("list service retentions: %w", err)
	}
	if n < limit {
		last = "" // the end of the list: the next page starts over
	}
	return last, nil
}
