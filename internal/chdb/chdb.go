// Package chdb connects to ClickHouse through ch-go's native protocol, on current servers and on the
// 18.16 servers Debian ships, and formats every value that goes into SQL.
package chdb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/ch-go"
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
	// MaxConns bounds the connections of each of the two pools (plain, and under query limits): 8 if 0.
	MaxConns int
	// IdleTimeout closes a connection idle that long (5 min if 0).
	IdleTimeout time.Duration
	// Observe, when set, is called with the body of every statement before it is sent, from the
	// goroutine that sends it (see observe.go). Tests record with it; production leaves it nil.
	Observe func(query string)
}

// DB is a pool of native connections plus what the server told us about itself. Every connection that
// sees an error is closed (see pool).
type DB struct {
	opts     ch.Options
	plain    *pool // statements, inserts and queries without limits
	limited  *pool // queries under Limits, keyed by the SET statements their session carries
	Database string
	// Revision is the server's protocol revision; Legacy is true when we talk the old protocol to it.
	Revision uint64
	Legacy   bool
	// ServerMajor and ServerMinor are the server's version (18 and 16 for 18.16), as it said when the
	// connection opened; schema.StorageFor chooses the column types by them.
	ServerMajor, ServerMinor int
	observer                 func(query string)
}

// maxLifetime retires a connection after an hour even if it never failed, so that a long-lived process
// follows a server moved behind the same address.
const maxLifetime = time.Hour

// Open dials ClickHouse once to learn its revision, then opens the pools in the protocol it understands.
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
	info := probe.ServerInfo()
	rev := info.Revision
	_ = probe.Close()
	db := &DB{Database: o.Database, Revision: uint64(rev), ServerMajor: info.Major, ServerMinor: info.Minor, observer: o.Observe}
	if rev < legacyRevision {
		opts.ProtocolVersion = legacyProtocol
		db.Legacy = true
	} else {
		// Tables created on current servers may have LowCardinality(String) columns (schema.StorageCompact).
		// This setting makes the server send them as String (TCPHandler drops LowCardinality from the
		// blocks it sends), and a String column sent for one is converted by the server anyway, so every
		// reader and writer uses proto.ColStr on every server. In the legacy protocol the server does that by
		// itself (the client is older than LowCardinality), and ignores per-query settings anyway.
		opts.Settings = append(opts.Settings, ch.Setting{Key: "low_cardinality_allow_in_native_format", Value: "0"})
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 8
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 5 * time.Minute
	}
	db.opts = opts
	db.plain = newPool(o.MaxConns, o.IdleTimeout, maxLifetime, db.dial)
	db.limited = newPool(o.MaxConns, o.IdleTimeout, maxLifetime, db.dial)
	return db, nil
}

// dial opens one connection and applies the session settings setup to it.
func (d *DB) dial(ctx context.Context, setup []string) (*ch.Client, error) {
	c, err := ch.Dial(ctx, d.opts)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	for _, s := range setup {
		if err := c.Do(ctx, ch.Query{Body: s}); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("%s: %w", s, err)
		}
	}
	return c, nil
}

// Close closes every idle connection; the ones in use are closed when their work ends.
func (d *DB) Close() {
	d.plain.close()
	d.limited.close()
}

// Stats counts the connections of the plain pool and of the pool under limits.
func (d *DB) Stats() (plain, limited PoolStats) { return d.plain.stats(), d.limited.stats() }

// Do runs one query on a pooled connection. A read that fails on a reused connection before it
// returned any row, with an error that is not the server's (the server restarted since), runs once more
// on a fresh connection.
func (d *DB) Do(ctx context.Context, q ch.Query) error {
	return d.run(ctx, d.plain, "", nil, q)
}

func (d *DB) run(ctx context.Context, p *pool, key string, setup []string, q ch.Query) error {
	d.observe(q.Body)
	var blocks int
	if q.OnResult != nil {
		onResult := q.OnResult
		q.OnResult = func(ctx context.Context, b proto.Block) error {
			blocks++
			return onResult(ctx, b)
		}
	}
	for attempt := 0; ; attempt++ {
		blocks = 0
		reused, err := p.do(ctx, key, setup, func(ctx context.Context, c *ch.Client) error { return c.Do(ctx, q) })
		if err == nil {
			return nil
		}
		var e *ch.Exception
		if attempt == 0 && reused && q.Input == nil && blocks == 0 && ctx.Err() == nil && !errors.As(err, &e) {
			continue
		}
		return fmt.Errorf("clickhouse: %w", err)
	}
}

// Exec runs a statement that returns no rows.
func (d *DB) Exec(ctx context.Context, sql string) error {
	return d.Do(ctx, ch.Query{Body: sql})
}

// Ping checks that the server answers. A dead connection left from before a server restart is
// retried once on a fresh one, so that readiness follows the server, not the pool's history.
func (d *DB) Ping(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		reused, err := d.plain.do(ctx, "", nil, func(ctx context.Context, c *ch.Client) error { return c.Ping(ctx) })
		if err == nil {
			return nil
		}
		if attempt == 0 && reused && ctx.Err() == nil {
			continue
		}
		return fmt.Errorf("clickhouse: %w", err)
	}
}

// Table returns the qualified name of one of Flamestream's tables.
func (d *DB) Table(name string) string { return d.Database + "." + name }

// Insert writes one native columnar block into one of Flamestream's tables. It is never retried here: a
// failed insert may or may not have reached the server, and only the caller knows how to check.
func (d *DB) Insert(ctx context.Context, table string, in proto.Input) error {
	return d.InsertAs(ctx, "", table, in)
}

// InsertAs is Insert under a query id of the caller's choosing (empty: the server picks one), so that a
// later check can ask system.processes whether this insert is still running on the server after the
// client lost its connection.
func (d *DB) InsertAs(ctx context.Context, queryID, table string, in proto.Input) error {
	if err := CheckIdent(table); err != nil {
		return err
	}
	cols := make([]string, len(in))
	for i, c := range in {
		cols[i] = c.Name
	}
	body := "INSERT INTO " + d.Table(table) + " (" + strings.Join(cols, ", ") + ") VALUES"
	d.observe(body)
	if _, err := d.plain.do(ctx, "", nil, func(ctx context.Context, c *ch.Client) error {
		return c.Do(ctx, ch.Query{Body: body, Input: in, QueryID: queryID})
	}); err != nil {
		return fmt.Errorf("insert into %s: %w", table, err)
	}
	return nil
}
