package chdb

import (
	"context"
	"errors"
	"strconv"
	"strings"
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
	// InsertDistributedSync sets insert_distributed_sync = 1: an INSERT into a Distributed table (the
	// cluster layout) returns only once every shard holds its rows, so that what follows it reads them. It
	// limits no cost but rides here, because only a session setting reaches an 18.16 server.
	InsertDistributedSync bool
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
	if l.InsertDistributedSync {
		set = append(set, "SET insert_distributed_sync = 1")
	}
	return set
}

// DoLimited runs one query under limits on a connection kept for those limits only: the limits are SET on
// the connection's session once, when it is dialled, and the connection then serves only queries under the
// same limits, so they never leak into other queries (the indexer's inserts share the plain pool) and a
// query pays no SET round trips. Per-query settings would be simpler, but the legacy protocol ignores them.
// The pool of such connections is bounded like the plain one (see Options.MaxConns).
func (d *DB) DoLimited(ctx context.Context, l Limits, q ch.Query) error {
	set := l.statements()
	if len(set) == 0 {
		return d.Do(ctx, q)
	}
	return d.run(ctx, d.limited, strings.Join(set, ";"), set, q)
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
