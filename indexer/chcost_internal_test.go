package indexer

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/demo"
	"github.com/flamestream/flamestream/internal/schema"
	"github.com/flamestream/flamestream/stream"
)

// TestClickHouseInsertCost measures what ClickHouse spends per profile on the indexer's INSERT rounds:
// it writes PROFILES profiles of the pipeline bench's SHAPE (60 or 2000 lines) in batches of BATCH through
// writeBatch into a fresh database, then reads the server's own accounting: each INSERT's CPU from
// system.query_log (its materialized views run in the same thread), the parts from system.part_log, and
// the server process's whole CPU from /proc (merges included) until it is idle again. It needs a
// ClickHouse of its own (nothing else running on it) with query_log, part_log and log_queries=1, at
// FLAMESTREAM_CH_COST_ADDR, and PID its process id; without it the test is skipped.
func TestClickHouseInsertCost(t *testing.T) {
	addr := os.Getenv("FLAMESTREAM_CH_COST_ADDR")
	if addr == "" {
		t.Skip("FLAMESTREAM_CH_COST_ADDR (a private ClickHouse logging queries) is not set")
	}
	env := func(name string, def int) int {
		if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
			return n
		}
		return def
	}
	lines, batch, profiles, pid := env("SHAPE", 60), env("BATCH", 64), env("PROFILES", 1024), env("PID", 0)
	stacks := map[int]int{60: 2000, 2000: 5000}[lines]
	ctx := context.Background()
	name := fmt.Sprintf("fs_cost_%d_%d_%d", lines, batch, time.Now().Unix()%1e6)
	db, err := chdb.Open(ctx, chdb.Options{Addr: addr, User: "default", Database: name})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := schema.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	ix := New(Config{}, db, nil, nil, nil, slog.New(slog.DiscardHandler), nil)
	pool := benchBatchOf(t, 32, demo.Shape{Stacks: stacks, Lines: lines, MinDepth: 4, MaxDepth: 16})
	base := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	items := make([]*item, profiles)
	rows := 0
	for i := range items {
		host := fmt.Sprintf("host-%03d", i%500)
		ev := stream.Event{Service: "pipeline", Host: host, InstanceType: "m5.large", Start: base.Add(time.Duration(i/500) * time.Minute)}
		agg, hs, err := ix.parseWithHost(ev, pool[i%len(pool)])
		if err != nil {
			t.Fatal(err)
		}
		items[i] = &item{ev: ev, id: uint64(i + 1), agg: agg, host: hs}
		rows += len(agg.Entries())
	}
	cpu := func() float64 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0
		}
		f := strings.Fields(string(b)[strings.LastIndexByte(string(b), ')')+1:])
		u, _ := strconv.ParseFloat(f[11], 64)
		s, _ := strconv.ParseFloat(f[12], 64)
		return (u + s) * 10
	}
	ln := newLane()
	c0, t0 := cpu(), time.Now()
	for k := 0; k < profiles; k += batch {
		if _, err := ix.writeBatch(ctx, ln, items[k:min(k+batch, profiles)]); err != nil {
			t.Fatal(err)
		}
	}
	took := time.Since(t0)
	c1 := cpu()
	// Merges after the load: until the server uses less than 30 ms/s.
	for last := c1; ; {
		time.Sleep(2 * time.Second)
		now := cpu()
		if (now-last)/2 < 30 || time.Since(t0) > 3*time.Minute {
			break
		}
		last = now
	}
	c2 := cpu()
	if err := db.Exec(ctx, "SYSTEM FLUSH LOGS"); err != nil {
		t.Fatal(err)
	}
	var (
		table, partTable       proto.ColStr
		n, dur, cpuUs          proto.ColUInt64
		parts, merges, mergeMs proto.ColUInt64
	)
	err = db.Do(ctx, ch.Query{Body: "SELECT extract(query, 'INSERT INTO [^ ]+') AS t, count() AS n, sum(query_duration_ms) AS d, " +
		"sum(ProfileEvents.Values[indexOf(ProfileEvents.Names, 'UserTimeMicroseconds')] + ProfileEvents.Values[indexOf(ProfileEvents.Names, 'SystemTimeMicroseconds')]) AS c " +
		"FROM system.query_log WHERE type = 2 AND query LIKE 'INSERT INTO " + name + ".%' GROUP BY t ORDER BY c DESC",
		Result: proto.Results{{Name: "t", Data: &table}, {Name: "n", Data: &n}, {Name: "d", Data: &dur}, {Name: "c", Data: &cpuUs}},
		OnResult: func(ctx context.Context, b proto.Block) error {
			for i := range table.Rows() {
				t.Logf("%-40s %4d inserts  %7.3f ms/profile wall  %7.3f ms/profile CPU", table.Row(i), n.Row(i),
					float64(dur.Row(i))/float64(profiles), float64(cpuUs.Row(i))/1000/float64(profiles))
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Do(ctx, ch.Query{Body: "SELECT table, countIf(event_type = 1) AS p, countIf(event_type = 2) AS m, sumIf(duration_ms, event_type = 2) AS md " +
		"FROM system.part_log WHERE database = '" + name + "' GROUP BY table ORDER BY table",
		Result: proto.Results{{Name: "table", Data: &partTable}, {Name: "p", Data: &parts}, {Name: "m", Data: &merges}, {Name: "md", Data: &mergeMs}},
		OnResult: func(ctx context.Context, b proto.Block) error {
			for i := range partTable.Rows() {
				t.Logf("parts %-22s new %4d  merges %4d (%6d ms)", partTable.Row(i), parts.Row(i), merges.Row(i), mergeMs.Row(i))
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d profiles of %d lines (%d rows) in batches of %d: %s; server CPU %.3f ms/profile during the inserts, %.3f with the merges after (%.1f µs/row)",
		profiles, lines, rows, batch, took.Round(time.Millisecond), (c1-c0)/float64(profiles), (c2-c0)/float64(profiles), (c2-c0)*1000/float64(rows))
	_ = db.Exec(ctx, "DROP DATABASE "+name)
}
