package chdb

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/ch-go"
)

// pool is a bounded set of native connections. It differs from ch-go's chpool in what the protocol
// needs:
//   - a connection that saw any error is closed, never handed out again: after a server exception in the
//     middle of sending a query, a cancelled context or a short read or write, the client and the server
//     no longer agree on where the stream is, and the next query on it fails in odd ways ("Unexpected
//     packet Data received from client");
//   - an error that is not a server exception also retires every idle connection dialled before it (a
//     restarted server leaves all of them dead), so one failure, not one per idle connection, shows it;
//   - connections may carry session settings (SET statements run once at dial), and one pool keeps idle
//     connections of several settings apart, all within one bound.
//
// At most max connections are open or being dialled at once; a caller past that waits for one (or for
// its context). Idle connections are closed after idleTimeout, and any connection after maxLifetime.
type pool struct {
	dial        func(ctx context.Context, setup []string) (*ch.Client, error)
	slots       chan struct{} // one token per open or dialling connection
	idleTimeout time.Duration
	maxLifetime time.Duration

	mu     sync.Mutex
	idle   []*conn // most recently used last
	gen    uint64  // connections dialled before the last connection error have an older generation
	closed bool
	reaper *time.Timer

	dials, discards atomic.Int64
}

// conn is one pooled connection.
type conn struct {
	c       *ch.Client
	key     string // the session settings it was dialled with
	gen     uint64
	created time.Time
	used    time.Time
}

func newPool(max int, idleTimeout, maxLifetime time.Duration, dial func(context.Context, []string) (*ch.Client, error)) *pool {
	return &pool{dial: dial, slots: make(chan struct{}, max), idleTimeout: idleTimeout, maxLifetime: maxLifetime}
}

// maxCall bounds a call whose context has no deadline of its own: no unit of work waits forever.
const maxCall = 15 * time.Minute

// ErrUnavailable marks a call that found no ClickHouse to talk to: a new connection could not be opened.
// Callers answer it as a passing outage (503), not as a failure of the request.
var ErrUnavailable = errors.New("clickhouse unavailable")

// errPoolClosed is returned by a pool after Close.
var errPoolClosed = errors.New("connection pool is closed")

// PoolStats counts a pool's connections.
type PoolStats struct {
	// Open is the number of connections open or being dialled; Idle of those, the ones waiting for work.
	Open, Idle int
	// Dials is how many connections were dialled; Discards, how many were closed after an error.
	Dials, Discards int64
}

func (p *pool) stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return PoolStats{Open: len(p.slots), Idle: len(p.idle), Dials: p.dials.Load(), Discards: p.discards.Load()}
}

// do runs f on a connection with the session settings setup (key names them). It reports whether the
// connection was a reused one, so that a caller may retry an idempotent read that met a connection
// dead before it started.
func (p *pool) do(ctx context.Context, key string, setup []string, f func(context.Context, *ch.Client) error) (reused bool, err error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, maxCall)
		defer cancel()
	}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	c, err := p.take(key)
	if err != nil {
		<-p.slots
		return false, err
	}
	if c == nil {
		p.mu.Lock()
		gen := p.gen
		p.mu.Unlock()
		cl, err := p.dial(ctx, setup)
		if err != nil {
			<-p.slots
			switch {
			case ctx.Err() != nil:
			case pastDeadline(ctx):
				// The dial timed out at the call's deadline, a moment before the context says so: the call
				// ran out of time, the server may well be there.
				err = fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
			default:
				err = fmt.Errorf("%w: %w", ErrUnavailable, err)
			}
			return false, err
		}
		p.dials.Add(1)
		now := time.Now()
		c = &conn{c: cl, key: key, gen: gen, created: now}
	} else {
		reused = true
	}
	// ch-go bounds the wait for each packet's first byte, but not the read of the rest of a data block:
	// a server (or network) that stalls in the middle of a block would hold the call forever, whatever
	// the context says. Closing the connection when the context ends unblocks every read and write.
	stop := context.AfterFunc(ctx, func() { _ = c.c.Close() })
	err = f(ctx, c.c)
	if !stop() {
		// The context ended the call: say so first, so callers can tell a timeout (504) from a failure.
		if err == nil {
			err = fmt.Errorf("connection closed at the deadline: %w", context.Cause(ctx))
		} else {
			err = fmt.Errorf("%w: %w", context.Cause(ctx), err)
		}
	}
	if err != nil {
		p.discard(c, err)
		<-p.slots
		return reused, err
	}
	p.put(c)
	<-p.slots
	return reused, nil
}

// take returns an idle connection with the settings key, closing on the way the ones that are stale.
// The caller holds a slot.
func (p *pool) take(key string) (*conn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errPoolClosed
	}
	now := time.Now()
	for i := len(p.idle) - 1; i >= 0; i-- {
		c := p.idle[i]
		if c.key != key {
			continue
		}
		p.idle = append(p.idle[:i], p.idle[i+1:]...)
		if p.usable(c, now) {
			return c, nil
		}
		_ = c.c.Close()
	}
	return nil, nil
}

func (p *pool) usable(c *conn, now time.Time) bool {
	return !c.c.IsClosed() && c.gen == p.gen && now.Sub(c.used) < p.idleTimeout && now.Sub(c.created) < p.maxLifetime
}

// put gives a healthy connection back. Idle connections never outnumber the slots, and the oldest idle
// one of another key makes room when they would.
func (p *pool) put(c *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c.used = time.Now()
	if p.closed || !p.usable(c, c.used) {
		_ = c.c.Close()
		return
	}
	if len(p.idle) >= cap(p.slots) {
		_ = p.idle[0].c.Close()
		p.idle = p.idle[1:]
	}
	p.idle = append(p.idle, c)
	if p.reaper == nil {
		p.reaper = time.AfterFunc(p.idleTimeout, p.reap)
	}
}

// reap closes the connections idle for longer than idleTimeout, and runs again while any stay idle.
func (p *pool) reap() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reaper = nil
	if p.closed {
		return
	}
	now := time.Now()
	kept := p.idle[:0]
	for _, c := range p.idle {
		if p.usable(c, now) {
			kept = append(kept, c)
		} else {
			_ = c.c.Close()
		}
	}
	clear(p.idle[len(kept):])
	p.idle = kept
	if len(p.idle) > 0 {
		p.reaper = time.AfterFunc(p.idleTimeout, p.reap)
	}
}

// discard closes a connection that saw err. An error that is not the server's own answer (a broken or
// stalled connection, a cancel) may mean the server went away: the idle connections dialled before it
// are retired too.
func (p *pool) discard(c *conn, err error) {
	_ = c.c.Close()
	p.discards.Add(1)
	var e *ch.Exception
	if errors.As(err, &e) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c.gen == p.gen {
		p.gen++
	}
	kept := p.idle[:0]
	for _, ic := range p.idle {
		if ic.gen == p.gen {
			kept = append(kept, ic)
		} else {
			_ = ic.c.Close()
		}
	}
	clear(p.idle[len(kept):])
	p.idle = kept
}

// close closes the idle connections; busy ones are closed as they come back.
func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.reaper != nil {
		p.reaper.Stop()
		p.reaper = nil
	}
	for _, c := range p.idle {
		_ = c.c.Close()
	}
	p.idle = nil
}

// pastDeadline reports whether ctx's deadline has come, whether or not its timer has fired yet.
func pastDeadline(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}
