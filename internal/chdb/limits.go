package chdb

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
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

// DoLimited runs one query under limits on a connection kept for those limits only: the limits are SET on
// the connection's session once, when it is dialled, and the connection then serves only queries under the
// same limits, so they never leak into other queries (the indexer's inserts may share the main pool) and a
// query pays no SET round trips. A connection that fails is closed; a kept one that turns out to be dead
// (a restarted server) is replaced once.
func (d *DB) DoLimited(ctx context.Context, l Limits, q ch.Query) error {
	set := l.statements()
	if len(set) == 0 {
		return d.Do(ctx, q)
	}
	key := strings.Join(set, ";")
	for attempt := 0; ; attempt++ {
		c := d.limited.take(key)
		kept := c != nil
		if c == nil {
			var err error
			if c, err = d.dialLimited(ctx, set); err != nil {
				return err
			}
		}
		err := c.Do(ctx, q)
		if err == nil {
			d.limited.put(key, c)
			return nil
		}
		_ = c.Close()
		var e *ch.Exception
		if kept && attempt == 0 && !errors.As(err, &e) && ctx.Err() == nil {
			continue
		}
		return fmt.Errorf("clickhouse: %w", err)
	}
}

func (d *DB) dialLimited(ctx context.Context, set []string) (*ch.Client, error) {
	c, err := ch.Dial(ctx, d.opts)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: dial: %w", err)
	}
	for _, s := range set {
		if err := c.Do(ctx, ch.Query{Body: s}); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("clickhouse: %s: %w", s, err)
		}
	}
	return c, nil
}

// maxIdleLimited is how many idle connections are kept per set of limits.
const maxIdleLimited = 8

// limitedPool keeps idle connections by the SET statements applied to them.
type limitedPool struct {
	mu     sync.Mutex
	idle   map[string][]*ch.Client
	closed bool
}

func (p *limitedPool) take(key string) *ch.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	for cs := p.idle[key]; len(cs) > 0; cs = p.idle[key] {
		c := cs[len(cs)-1]
		p.idle[key] = cs[:len(cs)-1]
		if !c.IsClosed() {
			return c
		}
	}
	return nil
}

func (p *limitedPool) put(key string, c *ch.Client) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle[key]) >= maxIdleLimited {
		_ = c.Close()
		return
	}
	if p.idle == nil {
		p.idle = map[string][]*ch.Client{}
	}
	p.idle[key] = append(p.idle[key], c)
}

func (p *limitedPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, cs := range p.idle {
		for _, c := range cs {
			_ = c.Close()
		}
	}
	p.idle = nil
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
