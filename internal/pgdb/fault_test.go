package pgdb_test

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flamestream/flamestream/internal/pgdb"
	"github.com/flamestream/flamestream/internal/testenv"
)

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
	proxy := testenv.NewProxy(t, u.Host)
	u.Host = proxy.Addr()
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

	proxy.Hang()
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

	proxy.Heal()
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
