package indexer_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/flamestream/flamestream/indexer"
	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/pgdb"
	"github.com/flamestream/flamestream/internal/testenv"
)

// retentionTables are samples and every rollup: where a service's retention must apply.
var retentionTables = []string{"samples", "totals_1m", indexer.MinuteRollup, "samples_1h", "samples_1h_all", "samples_1d", "samples_1d_all"}

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
	if _, err := indexer.Migrate(ctx, db); err != nil {
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
	if len(deleted) != len(retentionTables) || len(hooked) != len(deleted) {
		t.Errorf("deletions %v (hook saw %d), want one per table of %v", deleted, len(hooked), retentionTables)
	}
	cutoff := today.AddDate(0, 0, -3)
	for _, d := range deleted {
		if d.Service != "a" || !d.Before.Equal(cutoff) {
			t.Errorf("deletion %+v, want service a before %v", d, cutoff)
		}
	}
	if got := mutations(t, db) - before; got != uint64(len(retentionTables)) {
		t.Errorf("%d mutations issued, want %d", got, len(retentionTables))
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
