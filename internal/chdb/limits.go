package chdb

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"
)

// Limits bound what one query may cost the server. Zero fields are not limited.
type Limits struct {
	// MaxMemory is max_memory_usage in bytes.
	MaxMemory uint64
	// MaxResultRows is max_result_rows (result_overflow_mode = 'throw').
	MaxResultRows uint64
	// MaxRowsToRead is max_rows_to_read: rows scanned in tables.
	MaxRowsToRead uint64
	// MaxExecutionTime is max_execution_time, rounded up to whole seconds.
	MaxExecutionTime time.Duration
}

// statements returns the SET statements that apply l. Per-query settings are ignored in the legacy
// protocol, but SET changes the connection's session on every server version.
func (l Limits) statements() []string {
	var set []string
	add := func(name string, v uint64) {
		if v > 0 {
			set = append(set, "SET "+name+" = "+strconv.FormatUint(v, 10))
		}
	}
	add("max_memory_usage", l.MaxMemory)
	add("max_result_rows", l.MaxResultRows)
	add("max_rows_to_read", l.MaxRowsToRead)
	if l.MaxExecutionTime > 0 {
		add("max_execution_time", uint64((l.MaxExecutionTime+time.Second-1)/time.Second))
	}
	if l.MaxResultRows > 0 || l.MaxRowsToRead > 0 {
		set = append(set, "SET result_overflow_mode = 'throw'", "SET read_overflow_mode = 'throw'")
	}
	return set
}

// DoLimited runs one query under limits on a connection of its own: the limits are SET on the connection
// before the query, and the connection is closed afterwards instead of going back to the pool, so the
// limits never leak into other queries (the indexer's inserts may share the pool). The price is one
// handshake per query, well under a millisecond on a local network.
func (d *DB) DoLimited(ctx context.Context, l Limits, q ch.Query) error {
	set := l.statements()
	if len(set) == 0 {
		return d.Do(ctx, q)
	}
	c, err := d.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("clickhouse: acquire connection: %w", err)
	}
	defer func() { _ = c.Close() }()
	for _, s := range set {
		if err := c.Do(ctx, ch.Query{Body: s}); err != nil {
			return fmt.Errorf("clickhouse: %s: %w", s, err)
		}
	}
	if err := c.Do(ctx, q); err != nil {
		return fmt.Errorf("clickhouse: %w", err)
	}
	return nil
}

// Limit is which limit a query hit.
type Limit int

// The limits LimitOf recognises.
const (
	NoLimit Limit = iota
	LimitMemory
	LimitRows
	LimitTime
)

// LimitOf tells whether err is ClickHouse refusing a query because it hit one of Limits.
func LimitOf(err error) Limit {
	var e *ch.Exception
	if !errors.As(err, &e) {
		return NoLimit
	}
	switch {
	case e.IsCode(proto.ErrMemoryLimitExceeded):
		return LimitMemory
	case e.IsCode(proto.ErrTooManyRows, proto.ErrTooManyRowsOrBytes, proto.ErrTooManyBytes):
		return LimitRows
	case e.IsCode(proto.ErrTimeoutExceeded, proto.ErrTooSlow):
		return LimitTime
	}
	return NoLimit
}
