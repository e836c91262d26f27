package pgdb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// SavedView is a UI user's named page state: the page path (/profile or /diff) and its query string.
type SavedView struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	Path      string    `json:"path"`
	Query     string    `json:"query"`
	Service   string    `json:"service"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Errors of SaveView and DeleteView, which the API maps to 409, 409 and 404.
var (
	ErrViewExists   = errors.New("a view with this name exists")
	ErrTooManyViews = errors.New("too many saved views")
	ErrNoView       = errors.New("no such view")
)

// SaveView stores v for username. A view of the same name is an ErrViewExists unless replace is set, when
// it is overwritten (keeping its id); a new view past max views of the user is ErrTooManyViews. It returns
// the stored view.
func (d *DB) SaveView(ctx context.Context, username string, v SavedView, replace bool, max int) (SavedView, error) {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return v, fmt.Errorf("save view: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// The user's row is locked so that two concurrent saves cannot both pass the count below the cap.
	var uid int64
	err = tx.QueryRow(ctx, `SELECT id FROM users WHERE username = $1 FOR UPDATE`, username).Scan(&uid)
	if errors.Is(err, pgx.ErrNoRows) {
		return v, fmt.Errorf("save view of %s: no such user", username)
	}
	if err != nil {
		return v, fmt.Errorf("save view of %s: %w", username, err)
	}
	var n int
	var existing *int64
	err = tx.QueryRow(ctx, `SELECT count(*), max(id) FILTER (WHERE name = $2) FROM saved_views WHERE user_id = $1`,
		uid, v.Name).Scan(&n, &existing)
	if err != nil {
		return v, fmt.Errorf("save view of %s: %w", username, err)
	}
	var out SavedView
	switch {
	case existing != nil && !replace:
		return v, ErrViewExists
	case existing != nil:
		err = tx.QueryRow(ctx, `UPDATE saved_views SET path = $2, query = $3, service = $4, updated_at = now()
			WHERE id = $1 RETURNING id, name, path, query, service, created_at, updated_at`,
			*existing, v.Path, v.Query, v.Service).Scan(&out.ID, &out.Name, &out.Path, &out.Query, &out.Service,
			&out.CreatedAt, &out.UpdatedAt)
	case max > 0 && n >= max:
		return v, ErrTooManyViews
	default:
		err = tx.QueryRow(ctx, `INSERT INTO saved_views (user_id, name, path, query, service) VALUES ($1, $2, $3, $4, $5)
			RETURNING id, name, path, query, service, created_at, updated_at`,
			uid, v.Name, v.Path, v.Query, v.Service).Scan(&out.ID, &out.Name, &out.Path, &out.Query, &out.Service,
			&out.CreatedAt, &out.UpdatedAt)
	}
	if err != nil {
		return v, fmt.Errorf("save view %q of %s: %w", v.Name, username, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return v, fmt.Errorf("save view of %s: %w", username, err)
	}
	return out, nil
}

// ListViews returns the views of username by name (at most limit).
func (d *DB) ListViews(ctx context.Context, username string, limit int) ([]SavedView, error) {
	rows, err := d.pool.Query(ctx, `SELECT v.id, v.name, v.path, v.query, v.service, v.created_at, v.updated_at
		FROM saved_views v JOIN users u ON u.id = v.user_id WHERE u.username = $1 ORDER BY v.name, v.id LIMIT $2`,
		username, limit)
	if err != nil {
		return nil, fmt.Errorf("list views of %s: %w", username, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (SavedView, error) {
		var v SavedView
		err := r.Scan(&v.ID, &v.Name, &v.Path, &v.Query, &v.Service, &v.CreatedAt, &v.UpdatedAt)
		return v, err
	})
}

// DeleteView deletes view id of username; a view of another user is ErrNoView, like a missing one.
func (d *DB) DeleteView(ctx context.Context, username string, id int64) error {
	tag, err := d.pool.Exec(ctx, `DELETE FROM saved_views v USING users u
		WHERE v.id = $2 AND v.user_id = u.id AND u.username = $1`, username, id)
	if err != nil {
		return fmt.Errorf("delete view %d of %s: %w", id, username, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNoView
	}
	return nil
}
