// Package chdb connects to ClickHouse through ch-go's native protocol, on current servers and on the
// 18.16 servers Debian ships, and formats every value that goes into SQL.
package chdb

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/chpool"
	"github.com/ClickHouse/ch-go/proto"
)

// legacyRevision is the first server revision whose queries ch-go can send by default: below it ch-go
// omits the ClientInfo block, so we speak a protocol older than 54032, which old servers accept.
const (
	legacyRevision = 54420
	legacyProtocol = 54031
)

// Options says where ClickHouse is.
type Options struct {
	Addr, User, Password string
	// Database is the database Flamestream's tables live in; the connection itself uses "default" so
	// that migrate can create it.
	Database string
	MaxConns int32
}

// DB is a pool of native connections plus what the server told us about itself.
type DB struct {
	pool     *chpool.Pool
	opts     ch.Options
	limited  limitedPool
	Database string
	// Revision is the server's protocol revision; Legacy is true when we talk the old protocol to it.
	Revision uint64
	Legacy   bool
}

// Open dials ClickHouse once to learn its revision, then opens a pool in the protocol it understands.
func Open(ctx context.Context, o Options) (*DB, error) {
	if err := CheckIdent(o.Database); err != nil {
		return nil, fmt.Errorf("clickhouse database: %w", err)
	}
	opts := ch.Options{Address: o.Addr, User: o.User, Password: o.Password, Database: "default",
		ClientName: "flamestream", DialTimeout: 3 * time.Second, ReadTimeout: 60 * time.Second}
	probe, err := ch.Dial(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("dial clickhouse %s: %w", o.Addr, err)
	}
	rev := probe.ServerInfo().Revision
	_ = probe.Close()
	db := &DB{Database: o.Database, Revision: uint64(rev)}
	if rev < legacyRevision {
		opts.ProtocolVersion = legacyProtocol
		db.Legacy = true
	}
	if o.MaxConns == 0 {
		o.MaxConns = 8
	}
	db.opts = opts
	db.pool, err = chpool.Dial(ctx, chpool.Options{ClientOptions: opts, MaxConns: o.MaxConns,
		MaxConnIdleTime: 5 * time.Minute, HealthCheckPeriod: 30 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open clickhouse pool %s: %w", o.Addr, err)
	}
	return db, nil
}

// Close closes every connection.
func (d *DB) Close() {
	d.pool.Close()
	d.limited.close()
}

// Do runs one query on a pooled connection.
func (d *DB) Do(ctx context.Context, q ch.Query) error {
	if err := d.pool.Do(ctx, q); err != nil {
		return fmt.Errorf("clickhouse: %w", err)
	}
	return nil
}

// Exec runs a statement that returns no rows.
func (d *DB) Exec(ctx context.Context, sql string) error {
	return d.Do(ctx, ch.Query{Body: sql})
}

// Ping checks that the server answers a query.
func (d *DB) Ping(ctx context.Context) error {
	return d.pool.Ping(ctx)
}

// Table returns the qualified name of one of Flamestream's tables.
func (d *DB) Table(name string) string { return d.Database + "." + name }

// Insert writes one native columnar block into one of Flamestream's tables.
func (d *DB) Insert(ctx context.Context, table string, in proto.Input) error {
	if err := CheckIdent(table); err != nil {
		return err
	}
	cols := make([]string, len(in))
	for i, c := range in {
		cols[i] = c.Name
	}
	body := "INSERT INTO " + d.Table(table) + " (" + strings.Join(cols, ", ") + ") VALUES"
	if err := d.pool.Do(ctx, ch.Query{Body: body, Input: in}); err != nil {
		return fmt.Errorf("insert into %s: %w", table, err)
	}
	return nil
}
