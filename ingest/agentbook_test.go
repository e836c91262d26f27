package ingest

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/flamestream/flamestream/internal/pgdb"
	"github.com/flamestream/flamestream/internal/testenv"
)

func openPG(t *testing.T) *pgdb.DB {
	t.Helper()
	cfg := testenv.Servers(t)
	db, err := pgdb.Open(context.Background(), testenv.NewPostgres(t, cfg.PostgresURL))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db
}

func agentRow(t *testing.T, db *pgdb.DB, service string, gpid int64) pgdb.Agent {
	t.Helper()
	agents, err := db.ListAgents(context.Background(), service)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range agents {
		if a.GPID == gpid {
			return a
		}
	}
	t.Fatalf("agent %d of %s not listed: %+v", gpid, service, agents)
	return pgdb.Agent{}
}

// startBook runs b until the returned stop is called; stop returns once the last flush is done.
func startBook(t *testing.T, b *agentBook) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.run(ctx, time.Hour); close(done) }()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		b.mu.Lock()
		running := b.running
		b.mu.Unlock()
		if running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the book did not start")
		}
	}
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// TestAgentBookCountsExactlyAfterFlush (real PostgreSQL): a new agent gets its gpid synchronously, the
// uploads of a known unchanged agent are not written one by one but their count is exact after a flush
// and after the stop, a changed hostname is written at once, an unknown gpid gets a new one, and after the
// stop uploads are written synchronously again.
func TestAgentBookCountsExactlyAfterFlush(t *testing.T) {
	db := openPG(t)
	b := newAgentBook(db, slog.New(slog.DiscardHandler))
	stop := startBook(t, b)
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Second)
	a := pgdb.Agent{Service: "s", Hostname: "h", AgentVersion: "1.35.0", Containers: []string{"c"}}

	g, err := b.record(ctx, 0, a, t0)
	if err != nil || g < 1 {
		t.Fatalf("new agent: gpid %d, %v", g, err)
	}
	if row := agentRow(t, db, "s", g); row.Profiles != 1 {
		t.Fatalf("new agent not written at once: %+v", row)
	}

	const n = 50
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if got, err := b.record(ctx, g, a, t0.Add(time.Duration(i)*time.Second)); err != nil || got != g {
				t.Errorf("known agent: gpid %d (want %d), %v", got, g, err)
			}
		})
	}
	wg.Wait()
	if row := agentRow(t, db, "s", g); row.Profiles != 1 {
		t.Errorf("uploads of a known agent written one by one: %+v", row)
	}
	b.flush(ctx)
	row := agentRow(t, db, "s", g)
	if row.Profiles != 1+n || !row.LastSeen.Equal(t0.Add((n-1)*time.Second)) {
		t.Errorf("after a flush: profiles %d (want %d), last seen %v (want %v)", row.Profiles, 1+n, row.LastSeen, t0.Add((n-1)*time.Second))
	}

	// A changed record is written before the agent is answered (and counts its upload).
	a2 := a
	a2.Hostname, a2.AgentVersion = "h2", "1.36.0"
	if got, err := b.record(ctx, g, a2, t0.Add(time.Hour)); err != nil || got != g {
		t.Fatalf("changed agent: gpid %d, %v", got, err)
	}
	if row := agentRow(t, db, "s", g); row.Hostname != "h2" || row.AgentVersion != "1.36.0" || row.Profiles != 2+n {
		t.Errorf("changed agent not written at once: %+v", row)
	}
	// An unknown gpid gets a new one.
	if got, err := b.record(ctx, g+1000, a, t0); err != nil || got == g || got == g+1000 {
		t.Errorf("unknown gpid: got %d, %v", got, err)
	}

	// Counted since the flush, then written by the stop.
	for range 7 {
		if _, err := b.record(ctx, g, a2, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	if row := agentRow(t, db, "s", g); row.Profiles != 9+n {
		t.Errorf("after the stop: profiles %d, want %d", row.Profiles, 9+n)
	}
	// Stopped: written at once.
	if _, err := b.record(ctx, g, a2, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if row := agentRow(t, db, "s", g); row.Profiles != 10+n {
		t.Errorf("after the stop an upload is written at once: profiles %d, want %d", row.Profiles, 10+n)
	}
}

// fakeCounter records what the book writes, and fails its batched writes while fail is set.
type fakeCounter struct {
	Metadata
	mu      sync.Mutex
	fail    bool
	missing map[int64]bool
	counts  map[int64]int64
	syncs   int
}

func (f *fakeCounter) RecordProfile(_ context.Context, gpid int64, a pgdb.Agent, _ time.Time) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.syncs++
	if gpid == 0 || f.missing[gpid] {
		gpid = int64(100 + f.syncs)
	}
	f.counts[gpid]++
	return gpid, nil
}

func (f *fakeCounter) AddAgentProfiles(_ context.Context, batch []pgdb.AgentProfiles) ([]pgdb.AgentProfiles, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return nil, errors.New("postgres down")
	}
	var missing []pgdb.AgentProfiles
	for _, p := range batch {
		if f.missing[p.GPID] {
			missing = append(missing, p)
			continue
		}
		f.counts[p.GPID] += p.Count
	}
	return missing, nil
}

// TestAgentBookKeepsTheCountsOfAFailedFlush: a failed flush loses nothing (the next one writes it), and an
// agent whose row is gone is forgotten, so that its next upload is written synchronously (and gets a new
// gpid).
func TestAgentBookKeepsTheCountsOfAFailedFlush(t *testing.T) {
	f := &fakeCounter{counts: map[int64]int64{}, missing: map[int64]bool{}}
	b := newAgentBook(f, slog.New(slog.DiscardHandler))
	startBook(t, b)
	ctx := context.Background()
	a := pgdb.Agent{Service: "s", Hostname: "h"}
	g, _ := b.record(ctx, 0, a, time.Now())
	for range 5 {
		b.record(ctx, g, a, time.Now())
	}
	f.fail = true
	b.flush(ctx)
	for range 3 {
		b.record(ctx, g, a, time.Now())
	}
	f.fail = false
	b.flush(ctx)
	if f.counts[g] != 9 || f.syncs != 1 {
		t.Errorf("count %d (want 9), %d synchronous writes (want 1)", f.counts[g], f.syncs)
	}

	f.missing[g] = true
	b.record(ctx, g, a, time.Now())
	b.flush(ctx)
	got, _ := b.record(ctx, g, a, time.Now())
	if got == g || f.syncs != 2 {
		t.Errorf("agent whose row is gone: gpid %d (old %d), %d synchronous writes (want 2)", got, g, f.syncs)
	}
}

// TestAgentBookIsBounded: agents beyond the bound are written synchronously, each upload.
func TestAgentBookIsBounded(t *testing.T) {
	f := &fakeCounter{counts: map[int64]int64{}, missing: map[int64]bool{}}
	b := newAgentBook(f, slog.New(slog.DiscardHandler))
	b.max = 2
	startBook(t, b)
	ctx := context.Background()
	var gpids []int64
	for i := range 3 {
		g, _ := b.record(ctx, 0, pgdb.Agent{Service: "s", Hostname: string(rune('a' + i))}, time.Now())
		gpids = append(gpids, g)
	}
	for i, g := range gpids {
		b.record(ctx, g, pgdb.Agent{Service: "s", Hostname: string(rune('a' + i))}, time.Now())
	}
	if len(b.agents) != 2 || f.syncs != 4 {
		t.Errorf("%d agents remembered (want 2), %d synchronous writes (want 3 new + 1 beyond the bound)", len(b.agents), f.syncs)
	}
}
