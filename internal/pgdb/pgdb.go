// Package pgdb holds Flamestream's metadata in PostgreSQL: services and their settings, API tokens, agents,
// UI users and sessions. Schema changes are embedded, numbered SQL files applied by Migrate.
package pgdb

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is the metadata store.
type DB struct {
	pool *pgxpool.Pool
	// async commits without waiting for the WAL flush. It serves the per-upload bookkeeping (agent and
	// service last seen, heartbeats), which a crash may lose the last fraction of a second of without harm:
	// the profile itself is durable in the bucket and the stream. Everything else uses pool.
	async *pgxpool.Pool
	// newAgents allocates the gpids of new agents, many to a commit.
	newAgents *agentInserter
}

// defaultMaxConns replaces pgx's default pool size (4 on a 2-core machine), which queues an ingest serving
// hundreds of concurrent uploads; pool_max_conns in the URL still wins.
const defaultMaxConns = 16

// Open connects to PostgreSQL.
func Open(ctx context.Context, url string) (*DB, error) {
	open := func(asyncCommit bool) (*pgxpool.Pool, error) {
		cfg, err := pgxpool.ParseConfig(url)
		if err != nil {
			return nil, fmt.Errorf("postgres url: %w", err)
		}
		if !strings.Contains(url, "pool_max_conns") {
			cfg.MaxConns = defaultMaxConns
		}
		if asyncCommit {
			cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
		}
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		return pool, nil
	}
	pool, err := open(false)
	if err != nil {
		return nil, err
	}
	async, err := open(true)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return &DB{pool: pool, async: async, newAgents: &agentInserter{}}, nil
}

// Close closes the pools.
func (d *DB) Close() {
	d.pool.Close()
	d.async.Close()
}

// Ping checks that the server answers.
func (d *DB) Ping(ctx context.Context) error { return d.pool.Ping(ctx) }

// Migrate applies every embedded migration not applied yet, each in its own transaction, under an advisory
// lock so that several processes starting at once do not race.
func (d *DB) Migrate(ctx context.Context) (applied []string, err error) {
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(7365201)`); err != nil {
		return nil, fmt.Errorf("migrate lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(7365201)`)
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		version, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return applied, fmt.Errorf("migration %s: bad version: %w", base, err)
		}
		var done bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`, version).Scan(&done); err != nil {
			return applied, fmt.Errorf("migration %s: %w", base, err)
		}
		if done {
			continue
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return applied, err
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			return applied, err
		}
		if _, err := tx.Exec(ctx, string(body)); err != nil {
			_ = tx.Rollback(ctx)
			return applied, fmt.Errorf("migration %s: %w", base, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, version, base); err != nil {
			_ = tx.Rollback(ctx)
			return applied, fmt.Errorf("migration %s: %w", base, err)
		}
		if err := tx.Commit(ctx); err != nil {
			return applied, fmt.Errorf("migration %s: %w", base, err)
		}
		applied = append(applied, base)
	}
	return applied, nil
}
