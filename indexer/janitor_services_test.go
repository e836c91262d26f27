package indexer_test

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/flamestream/flamestream/indexer"
	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/pgdb"
	"github.com/flamestream/flamestream/internal/schema"
	"github.com/flamestream/flamestream/internal/testenv"
)

// retentionTables are samples and every rollup: where a service's retention must apply.
var retentionTables = []string{"samples", "totals_1m", schema.MinuteRollup, "samples_1h", "samples_1h_all", "samples_1d", "samples_1d_all"}

// deletedTables are the tables a service's retention deletes from: retentionTables and the built rollups'
// records (a record of deleted rows would call their bucket complete).
var deletedTables = append(slices.Clone(retentionTables), schema.Builds)

// janitorStores opens a fresh ClickHouse database with the schema and a fresh PostgreSQL database.
func janitorStores(t *testing.T) (*chdb.DB, *pgdb.DB) {
	t.Helper()
	cfg := testenv.Servers(t)
	ctx := context.Background()
	db, err := chdb.Open(ctx, chdb.Options{Addr: cfg.ClickHouseAddr, User: cfg.ClickHouseUser,
		Password: cfg.ClickHousePassword, Database: testenv.Name("fs_test_janitor")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = db.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db.Database)
		db.Close()
	})
	if _, err := schema.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	pg, err := pgdb.Open(ctx, testenv.NewPostgres(t, cfg.PostgresURL))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Close)
	if _, err := pg.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db, pg
}

// dayKey is one service's UTC day (days since 1970).
type dayKey struct {
	service string
	day     uint32
}

// countsByDay reads sum(count) per service and UTC day of a table.
func countsByDay(t *testing.T, db *chdb.DB, table string) map[dayKey]uint64 {
	t.Helper()
	out := map[dayKey]uint64{}
	var svc proto.ColStr
	var day proto.ColUInt32
	var n proto.ColUInt64
	err := db.Do(context.Background(), ch.Query{
		Body: "SELECT service, toUInt32(intDiv(toUInt32(ts), 86400)) AS day, toUInt64(sum(count)) AS n FROM " + db.Table(table) +
			" GROUP BY service, day",
		Result: proto.Results{{Name: "service", Data: &svc}, {Name: "day", Data: &day}, {Name: "n", Data: &n}},
		OnResult: func(ctx context.Context, b proto.Block) error {
			for i := 0; i < svc.Rows(); i++ {
				out[dayKey{svc.Row(i), day[i]}] += n[i]
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// mutations counts the mutations ever issued in db's database.
func mutations(t *testing.T, db *chdb.DB) uint64 {
	t.Helper()
	var n proto.ColUInt64
	if err := db.Do(context.Background(), ch.Query{
		Body:   "SELECT count() AS n FROM system.mutations WHERE database = " + chdb.String(db.Database),
		Result: proto.Results{{Name: "n", Data: &n}},
	}); err != nil {
		t.Fatal(err)
	}
	return n[0]
}

// TestJanitorDeletesAServicesRowsPastItsOwnRetentionOnly: services A (retention 3 days) and B (none) have
// rows on the same days D-10..D-1, so in the same partitions. One sweep deletes A's rows before D-3 from
// samples and every rollup and leaves every other row, to the count; the next sweep issues no mutation.
func TestJanitorDeletesAServicesRowsPastItsOwnRetentionOnly(t *testing.T) {
	db, pg := janitorStores(t)
	ctx := context.Background()
	// Early in a month, so that the ten days span two monthly partitions of the day rollups.
	now := time.Date(2026, 3, 2, 12, 30, 0, 0, time.UTC)
	today := now.Truncate(24 * time.Hour)
	want := map[dayKey]uint64{}
	for ago := 1; ago <= 10; ago++ {
		day := today.AddDate(0, 0, -ago)
		ts := []time.Time{day, day.Add(11*time.Hour + 30*time.Minute), day.Add(24*time.Hour - time.Second)}
		for i, svc := range []string{"a", "b"} {
			count := uint32(100*i + ago)
			insertSamples(t, db, svc, uint64(10*ago+i), ts, count)
			if svc == "b" || ago <= 3 {
				want[dayKey{svc, uint32(day.Unix() / 86400)}] = uint64(len(ts)) * uint64(count)
			}
		}
	}
	if err := pg.SetServiceSettings(ctx, "a", 0, ptr(3)); err != nil {
		t.Fatal(err)
	}
	if err := pg.SetServiceSettings(ctx, "b", 0, nil); err != nil {
		t.Fatal(err)
	}

	j := indexer.NewJanitor(db, indexer.Retention{RawDays: 30, HourDays: 30, DayDays: 365}, testLogger(t))
	j.Now = func() time.Time { return now }
	j.Services = pg
	var hooked []indexer.Deletion
	j.OnDelete = func(d indexer.Deletion) { hooked = append(hooked, d) }
	before := mutations(t, db)
	sweep := func() []indexer.Deletion {
		t.Helper()
		if dropped, err := j.Sweep(ctx); err != nil || len(dropped) != 0 {
			t.Fatalf("partitions dropped %v (err %v): the rows are within the global retention", dropped, err)
		}
		deleted, err := j.SweepServices(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return deleted
	}

	deleted := sweep()
	if len(deleted) != len(deletedTables) || len(hooked) != len(deleted) {
		t.Errorf("deletions %v (hook saw %d), want one per table of %v", deleted, len(hooked), deletedTables)
	}
	cutoff := today.AddDate(0, 0, -3)
	for _, d := range deleted {
		if d.Service != "a" || !d.Before.Equal(cutoff) {
			t.Errorf("deletion %+v, want service a before %v", d, cutoff)
		}
	}
	if got := mutations(t, db) - before; got != uint64(len(deletedTables)) {
		t.Errorf("%d mutations issued, want %d", got, len(deletedTables))
	}
	for _, table := range retentionTables {
		if got := countsByDay(t, db, table); !maps.Equal(got, want) {
			t.Errorf("%s: counts by service and day %v, want %v", table, got, want)
		}
	}

	// Nothing is left to delete: no query issues a mutation.
	issued := mutations(t, db)
	hooked = nil
	if deleted := sweep(); len(deleted) != 0 || len(hooked) != 0 {
		t.Errorf("second sweep deleted %v", deleted)
	}
	if got := mutations(t, db); got != issued {
		t.Errorf("second sweep issued %d mutations", got-issued)
	}
	for _, table := range retentionTables {
		if got := countsByDay(t, db, table); !maps.Equal(got, want) {
			t.Errorf("%s after the second sweep: %v, want %v", table, got, want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestJanitorServiceSweepsAreBoundedAndIsolated: with two services a page, one service that overruns its
// deadline fails alone (the other's retention is applied in the same sweep) and is finished by a later
// sweep; a retention equal to the raw one deletes from the rollups only, the raw days going with their
// partitions.
func TestJanitorServiceSweepsAreBoundedAndIsolated(t *testing.T) {
	db, pg := janitorStores(t)
	ctx := context.Background()
	now := time.Date(2026, 3, 2, 12, 30, 0, 0, time.UTC)
	today := now.Truncate(24 * time.Hour)
	own := map[string]int{"a": 3, "c": 5, "d": 4}
	global := indexer.Retention{RawDays: 5, HourDays: 30, DayDays: 365}
	for ago := 1; ago <= 10; ago++ {
		day := today.AddDate(0, 0, -ago)
		for i, svc := range []string{"a", "b", "c", "d"} {
			insertSamples(t, db, svc, uint64(10*ago+i), []time.Time{day.Add(time.Hour), day.Add(20 * time.Hour)}, uint32(100*i+ago))
		}
	}
	for svc, days := range own {
		if err := pg.SetServiceSettings(ctx, svc, 0, ptr(days)); err != nil {
			t.Fatal(err)
		}
	}
	// want is what each table holds once every retention is applied.
	want := func(table string) map[dayKey]uint64 {
		out := map[dayKey]uint64{}
		keep := 365
		if table == "samples" || table == "totals_1m" || table == schema.MinuteRollup {
			keep = global.RawDays
		}
		for ago := 1; ago <= 10; ago++ {
			for i, svc := range []string{"a", "b", "c", "d"} {
				if d, ok := own[svc]; (ok && ago > d) || ago > keep {
					continue
				}
				out[dayKey{svc, uint32(today.AddDate(0, 0, -ago).Unix() / 86400)}] = 2 * uint64(100*i+ago)
			}
		}
		return out
	}

	j := indexer.NewJanitor(db, global, testLogger(t))
	j.Now = func() time.Time { return now }
	j.Services = pg
	j.MaxServices = 2
	j.ServiceTimeout = 2 * time.Second
	slow := true
	perService := map[string][]string{}
	j.OnDelete = func(d indexer.Deletion) {
		perService[d.Service] = append(perService[d.Service], d.Table)
		if d.Service == "a" && slow {
			slow = false
			time.Sleep(j.ServiceTimeout + 100*time.Millisecond) // a overruns its deadline after its first deletion
		}
	}
	if _, err := j.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	// First page: a and c. a fails, c is applied; d waits for its page.
	_, err := j.SweepServices(ctx)
	if err == nil || !strings.Contains(err.Error(), "service a") || strings.Contains(err.Error(), "service c") {
		t.Fatalf("first sweep: %v, want a failure of service a only", err)
	}
	if got := perService["a"]; len(got) != 1 {
		t.Errorf("a: deletions %v before its deadline, want 1", got)
	}
	// c's retention equals the raw one: the partition drops cover the raw tables.
	if got, rollups := perService["c"], []string{"samples_1h", "samples_1h_all", "samples_1d", "samples_1d_all", schema.Builds}; !slices.Equal(got, rollups) {
		t.Errorf("c: deletions in %v, want %v", got, rollups)
	}
	if len(perService["d"]) != 0 || len(perService["b"]) != 0 {
		t.Errorf("deletions %v past the page of two services", perService)
	}
	for _, table := range retentionTables {
		got, w := countsByDay(t, db, table), want(table)
		for k, n := range got {
			if k.service != "a" && k.service != "d" && w[k] != n {
				t.Errorf("%s: %v holds %d, want %d", table, k, n, w[k])
			}
		}
	}

	// The next sweeps go on with d, then start over with a: then every retention is applied, exactly.
	for range 2 {
		if _, err := j.SweepServices(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if len(perService["d"]) == 0 || len(perService["a"]) < 2 {
		t.Errorf("deletions %v: d and the rest of a missing", perService)
	}
	for _, table := range retentionTables {
		if got := countsByDay(t, db, table); !maps.Equal(got, want(table)) {
			t.Errorf("%s: %v, want %v", table, got, want(table))
		}
	}
	issued := mutations(t, db)
	for range 2 {
		if deleted, err := j.SweepServices(ctx); err != nil || len(deleted) != 0 {
			t.Errorf("sweep after all applied: %v %v", deleted, err)
		}
	}
	if got := mutations(t, db); got != issued {
		t.Errorf("%d mutations issued with nothing to delete", got-issued)
	}
}
