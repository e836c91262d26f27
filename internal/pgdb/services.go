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
func (d *DB) SetServiceSettings(ctx context.Context, name string, threshold float64, retentionDays *int) error {
	if threshold < 0 || threshold > 1 {
		return fmt.Errorf("sample_threshold %v: must be within 0..1", threshold)
	}
	_, err := d.pool.Exec(ctx, `INSERT INTO services (name, sample_threshold, retention_days) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET sample_threshold = EXCLUDED.sample_threshold,
		retention_days = EXCLUDED.retention_days`, name, threshold, retentionDays)
	if err != nil {
		return fmt.Errorf("set settings of %s: %w", name, err)
	}
	return nil
}
