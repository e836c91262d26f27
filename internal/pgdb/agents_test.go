package pgdb_test

import (
	"context"
	"testing"
	"time"

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
