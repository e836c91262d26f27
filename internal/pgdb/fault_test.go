package pgdb_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flamestream/flamestream/internal/pgdb"
	"github.com/flamestream/flamestream/internal/testenv"
)

// stallProxy forwards TCP connections to PostgreSQL. Stall cuts every open connection and holds the new
// ones without an answer (a server that hangs); Resume forwards again.
type stallProxy struct {
	ln      net.Listener
	target  string
	stalled atomic.Bool
	mu      sync.Mutex
	conns   map[net.Conn]bool
	wg      sync.WaitGroup
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { _ = ln.Close(); p.closeAll(); p.wg.Wait() })
	p.wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			p.track(in)
			if p.stalled.Load() {
				continue // held open, never answered, closed by Resume or the test's end
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				_ = in.Close()
				continue
			}
			p.track(out)
			p.wg.Go(func() { _, _ = io.Copy(out, in); _ = out.Close() })
			p.wg.Go(func() { _, _ = io.Copy(in, out); _ = in.Close() })
		}
	})
	return p
}

func (p *stallProxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns[c] = true
	p.mu.Unlock()
}

func (p *stallProxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

// Stall cuts the open connections and holds the next ones unanswered.
func (p *stallProxy) Stall() { p.stalled.Store(true); p.closeAll() }

// Resume forwards new connections again; the held ones stay unanswered.
func (p *stallProxy) Resume() { p.stalled.Store(false) }

// TestNewAgentsUnderAHungPostgreSQLFailByTheirDeadlineThenRecover: while PostgreSQL hangs, first uploads
// waiting for a gpid return with their own deadline (ingest answers 503), none is stuck behind the
// inserter; once it answers again, a new agent gets its gpid within the inserter's own bound, although
// the connections it opened during the hang never get an answer (no connect_timeout in the URL).
func TestNewAgentsUnderAHungPostgreSQLFailByTheirDeadlineThenRecover(t *testing.T) {
	cfg := testenv.Servers(t)
	direct := testenv.NewPostgres(t, cfg.PostgresURL)
	u, err := url.Parse(direct)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newStallProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	db, err := pgdb.Open(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := db.RecordProfile(context.Background(), 0, pgdb.Agent{Service: "s", Hostname: "before"}, t0); err != nil {
		t.Fatal(err)
	}

	proxy.Stall()
	const waiting = 50
	var wg sync.WaitGroup
	var late atomic.Int32
	errs := make(chan error, waiting)
	for i := range waiting {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			start := time.Now()
			_, err := db.RecordProfile(ctx, 0, pgdb.Agent{Service: "s", Hostname: fmt.Sprintf("hung-%d", i)}, t0)
			if time.Since(start) > 3*time.Second {
				late.Add(1)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err == nil {
			t.Fatal("a new agent got a gpid from a PostgreSQL that does not answer")
		}
	}
	if n := late.Load(); n > 0 {
		t.Errorf("%d of %d callers waited past their 1 s deadline by more than 2 s", n, waiting)
	}

	proxy.Resume()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	g, err := db.RecordProfile(ctx, 0, pgdb.Agent{Service: "s", Hostname: "after"}, t0)
	if err != nil {
		t.Fatalf("after PostgreSQL answers again: %v (after %v)", err, time.Since(start))
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("the first gpid after the hang took %v: past the inserter's 10 s bound", took)
	}
	t.Logf("first gpid after the hang in %v", time.Since(start).Round(time.Millisecond))
	agents, err := db.ListAgents(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range agents {
		found = found || (a.GPID == g && a.Hostname == "after")
	}
	if !found {
		t.Errorf("gpid %d is not the row of the agent that got it: %+v", g, agents)
	}
}
