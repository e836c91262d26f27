package pgdb_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/flamestream/flamestream/internal/pgdb"
	"github.com/flamestream/flamestream/internal/testenv"
)

func openDB(t *testing.T) *pgdb.DB {
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

// TestRecordProfileAllocatesAndReusesGPIDs: a first upload gets a new gpid, a known gpid of the same
// service is reused with first_seen kept, an unknown or foreign gpid gets a fresh one.
func TestRecordProfileAllocatesAndReusesGPIDs(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := pgdb.Agent{Service: "s", Hostname: "h", AgentVersion: "1.35.0", Containers: []string{"c"}}
	g1, err := db.RecordProfile(ctx, 0, a, t0)
	if err != nil || g1 < 1 {
		t.Fatalf("first: %d %v", g1, err)
	}
	a.AgentVersion = "1.36.0"
	steps := []struct {
		name    string
		gpid    int64
		agent   pgdb.Agent
		reuse   bool
		service string
	}{
		{"known gpid", g1, a, true, "s"},
		{"unknown gpid", g1 + 1000, a, false, "s"},
		{"gpid of another service", g1, pgdb.Agent{Service: "other", Hostname: "h"}, false, "other"},
	}
	for i, s := range steps {
		got, err := db.RecordProfile(ctx, s.gpid, s.agent, t0.Add(time.Duration(i+1)*time.Minute))
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if (got == g1) != s.reuse {
			t.Errorf("%s: gpid %d (first %d), reuse %v", s.name, got, g1, s.reuse)
		}
	}
	agents, err := db.ListAgents(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	for _, ag := range agents {
		if ag.GPID != g1 {
			continue
		}
		if ag.Profiles != 2 || ag.AgentVersion != "1.36.0" || !ag.FirstSeen.Equal(t0) || !ag.LastSeen.Equal(t0.Add(time.Minute)) {
			t.Errorf("agent %+v", ag)
		}
		return
	}
	t.Errorf("agent %d not listed in %+v", g1, agents)
}

// TestNewAgentsOfABurstGetGPIDsOfTheirOwnRows: first uploads arriving together are committed many to a
// transaction; each agent still gets a gpid of its own whose row holds its own values, whether the burst
// came through RecordProfile from many goroutines or was queued whole (more than one transaction's worth).
func TestNewAgentsOfABurstGetGPIDsOfTheirOwnRows(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const n = 300
	gpids := make([]int64, 2*n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			a := pgdb.Agent{Service: "burst", Hostname: fmt.Sprintf("h%03d", i), AgentVersion: "1.35.0",
				Containers: []string{fmt.Sprintf("c%03d", i)}}
			g, err := db.RecordProfile(ctx, 0, a, t0)
			if err != nil {
				errs <- err
			}
			gpids[i] = g
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	queued := make([]pgdb.Agent, n)
	for i := range queued {
		queued[i] = pgdb.Agent{Service: "burst", Hostname: fmt.Sprintf("h%03d", n+i), AgentVersion: "1.35.0",
			Containers: []string{fmt.Sprintf("c%03d", n+i)}}
	}
	got, gotErrs := db.RecordNewAgentsTogether(queued, t0)
	for i, err := range gotErrs {
		if err != nil {
			t.Fatalf("queued agent %d: %v", i, err)
		}
	}
	copy(gpids[n:], got)

	agents, err := db.ListAgents(ctx, "burst")
	if err != nil {
		t.Fatal(err)
	}
	byGPID := map[int64]pgdb.Agent{}
	for _, a := range agents {
		byGPID[a.GPID] = a
	}
	if len(agents) != 2*n || len(byGPID) != 2*n {
		t.Fatalf("%d agent rows, %d distinct gpids; want %d", len(agents), len(byGPID), 2*n)
	}
	for i, g := range gpids {
		a, ok := byGPID[g]
		want := fmt.Sprintf("h%03d", i)
		if !ok || a.Hostname != want || len(a.Containers) != 1 || a.Containers[0] != fmt.Sprintf("c%03d", i) ||
			a.Profiles != 1 || !a.FirstSeen.Equal(t0) {
			t.Errorf("agent %s got gpid %d, whose row is %+v", want, g, a)
		}
	}
}

// TestANewAgentPostgreSQLRefusesFailsAlone: a value PostgreSQL cannot store (a NUL escape in jsonb) fails
// its own agent with PostgreSQL's data exception (ingest's 400), not the others committed with it.
func TestANewAgentPostgreSQLRefusesFailsAlone(t *testing.T) {
	db := openDB(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	agents := []pgdb.Agent{
		{Service: "s", Hostname: "good1"},
		{Service: "s", Hostname: "bad", RunArguments: []byte(`{"x":"\u0000"}`)},
		{Service: "s", Hostname: "good2"},
	}
	gpids, errs := db.RecordNewAgentsTogether(agents, t0)
	var pe *pgconn.PgError
	if !errors.As(errs[1], &pe) || pe.Code[:2] != "22" || gpids[1] != 0 {
		t.Errorf("bad agent: gpid %d, err %v; want a data exception (class 22)", gpids[1], errs[1])
	}
	listed, err := db.ListAgents(context.Background(), "s")
	if err != nil {
		t.Fatal(err)
	}
	hosts := map[int64]string{}
	for _, a := range listed {
		hosts[a.GPID] = a.Hostname
	}
	for _, i := range []int{0, 2} {
		if errs[i] != nil || hosts[gpids[i]] != agents[i].Hostname {
			t.Errorf("%s: gpid %d (row of %q), err %v", agents[i].Hostname, gpids[i], hosts[gpids[i]], errs[i])
		}
	}
	if len(listed) != 2 {
		t.Errorf("%d rows, want the 2 good agents", len(listed))
	}
}

// TestAgentLogsArePrunedToTheBound keeps the newest records of a service only.
func TestAgentLogsArePrunedToTheBound(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	now := time.Now().UTC()
	for i := range 3 {
		b := pgdb.AgentLogBatch{Service: "s", Hostname: "h", BatchID: string(rune('a' + i))}
		for j := range 4 {
			b.Records = append(b.Records, pgdb.AgentLog{Time: now.Add(time.Duration(i*4+j) * time.Second), Message: "m"})
		}
		if fresh, err := db.InsertAgentLogs(ctx, b, now); err != nil || !fresh {
			t.Fatalf("batch %d: %v %v", i, fresh, err)
		}
	}
	if fresh, err := db.InsertAgentLogs(ctx, pgdb.AgentLogBatch{Service: "s", BatchID: "a", Records: []pgdb.AgentLog{{Time: now}}}, now); err != nil || fresh {
		t.Errorf("a repeated batch id: fresh %v %v", fresh, err)
	}
	if n, err := db.PruneAgentLogs(ctx, "s", 5); err != nil || n != 7 {
		t.Errorf("pruned %d %v, want 7", n, err)
	}
	logs, err := db.ListAgentLogs(ctx, pgdb.AgentLogQuery{Service: "s"})
	if err != nil || len(logs) != 5 || !logs[0].Time.Equal(now.Add(11*time.Second).Truncate(time.Microsecond)) {
		t.Errorf("left %d records (newest %v), %v", len(logs), logs, err)
	}
}

// TestAddAgentProfilesAddsCountsAndKeepsTheLatestTime: counts add up exactly (entries of one agent
// summed), last_seen never moves back, the other columns are left alone, and an agent without a row (an
// unknown gpid, or a gpid of another service) is returned as missing and creates nothing.
func TestAddAgentProfilesAddsCountsAndKeepsTheLatestTime(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := pgdb.Agent{Service: "s", Hostname: "h", AgentVersion: "1.35.0", Containers: []string{"c"}}
	g1, err := db.RecordProfile(ctx, 0, a, t0)
	if err != nil {
		t.Fatal(err)
	}
	g2, err := db.RecordProfile(ctx, 0, pgdb.Agent{Service: "s", Hostname: "h2"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	missing, err := db.AddAgentProfiles(ctx, []pgdb.AgentProfiles{
		{GPID: g1, Service: "s", Last: t0.Add(3 * time.Minute), Count: 5},
		{GPID: g2, Service: "s", Last: t0.Add(-time.Hour), Count: 2}, // older than last_seen: kept
		{GPID: g1, Service: "s", Last: t0.Add(2 * time.Minute), Count: 4},
		{GPID: g1, Service: "other", Last: t0, Count: 1},
		{GPID: g2 + 1000, Service: "s", Last: t0, Count: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) != 2 {
		t.Errorf("missing %+v, want the foreign and the unknown gpid", missing)
	}
	agents, err := db.ListAgents(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(agents) != 2 {
		t.Fatalf("%d agents: %+v", len(agents), agents)
	}
	for _, ag := range agents {
		switch ag.GPID {
		case g1:
			if ag.Profiles != 10 || !ag.LastSeen.Equal(t0.Add(3*time.Minute)) || ag.LastProfileAt == nil ||
				!ag.LastProfileAt.Equal(t0.Add(3*time.Minute)) || ag.AgentVersion != "1.35.0" || ag.Hostname != "h" {
				t.Errorf("agent 1: %+v", ag)
			}
		case g2:
			if ag.Profiles != 3 || !ag.LastSeen.Equal(t0) {
				t.Errorf("agent 2: %+v", ag)
			}
		}
	}
}
