package indexer_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/flamestream/flamestream/indexer"
	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/schema"
	"github.com/flamestream/flamestream/internal/testenv"
)

// partitions lists the active partitions of a table.
func partitions(t *testing.T, db *chdb.DB, table string) []string {
	t.Helper()
	var out []string
	var col proto.ColStr
	err := db.Do(context.Background(), ch.Query{
		Body: "SELECT DISTINCT partition FROM system.parts WHERE active AND database = " + chdb.String(db.Database) +
			" AND table = " + chdb.String(table) + " ORDER BY partition",
		Result: proto.Results{{Name: "partition", Data: &col}},
		OnResult: func(ctx context.Context, b proto.Block) error {
			for i := 0; i < col.Rows(); i++ {
				out = append(out, col.Row(i))
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// janitorDB opens a fresh ClickHouse database with the schema, dropped after the test.
func janitorDB(t *testing.T) *chdb.DB {
	t.Helper()
	cfg := testenv.Servers(t)
	db, err := chdb.Open(context.Background(), chdb.Options{Addr: cfg.ClickHouseAddr, User: cfg.ClickHouseUser,
		Password: cfg.ClickHousePassword, Database: testenv.Name("fs_test_janitor")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = db.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db.Database)
		db.Close()
	})
	if _, err := schema.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	return db
}

func TestJanitorDropsPartitionsPastEachTablesRetention(t *testing.T) {
	db := janitorDB(t)
	now := time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)
	ago := func(days int) time.Time { return now.AddDate(0, 0, -days).Add(-time.Hour) }
	// One sample at each age; the materialized views put them in every rollup.
	insertSamples(t, db, "svc", 1, []time.Time{ago(400), ago(300), ago(40), ago(31), ago(29), ago(10), ago(0)}, 1)

	j := indexer.NewJanitor(db, indexer.Retention{RawDays: 30, HourDays: 20, DayDays: 365}, testLogger(t))
	j.Now = func() time.Time { return now }
	if _, err := j.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		table string
		want  []string
	}{
		// Raw: 30 days (cutoff 2026-05-16 12:00), by day: 2026-05-15 (31 days ago) is gone, 2026-05-17 (29 days ago) stays.
		{"samples", []string{"20260517", "20260605", "20260615"}},
		{"totals_1m", []string{"20260517", "20260605", "20260615"}},
		// Hour: 20 days, by day.
		{"samples_1h", []string{"20260605", "20260615"}},
		{"samples_1h_all", []string{"20260605", "20260615"}},
		// Day: 365 days, by month: May 2025 (400 days ago) is gone, August 2025 (300 days ago) stays.
		{"samples_1d", []string{"202508", "202605", "202606"}},
		{"samples_1d_all", []string{"202508", "202605", "202606"}},
	}
	for _, tt := range tests {
		t.Run(tt.table, func(t *testing.T) {
			if got := partitions(t, db, tt.table); !slices.Equal(got, tt.want) {
				t.Errorf("partitions %v, want %v", got, tt.want)
			}
		})
	}
	// A second sweep finds nothing to do.
	if dropped, err := j.Sweep(context.Background()); err != nil || len(dropped) != 0 {
		t.Errorf("second sweep dropped %v (err %v)", dropped, err)
	}
}

// A raw partition past its retention stays while the hour rollup built from it is not complete there:
// nothing could build those hours once it is gone. Built, it is dropped.
func TestJanitorKeepsRawDaysUntilTheirHoursAreBuilt(t *testing.T) {
	db := janitorDB(t)
	now := time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)
	insertRawSamples(t, db, "svc", 1, []time.Time{now.AddDate(0, 0, -40), now.AddDate(0, 0, -1)}, 3)
	j := indexer.NewJanitor(db, indexer.Retention{RawDays: 30, HourDays: 60, DayDays: 365}, testLogger(t))
	j.Now = func() time.Time { return now }
	if _, err := j.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := partitions(t, db, "samples"); !slices.Equal(got, []string{"20260506", "20260614"}) {
		t.Fatalf("samples partitions %v before the build, want both days kept", got)
	}
	buildRollupsNow(t, db)
	if _, err := j.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := partitions(t, db, "samples"); !slices.Equal(got, []string{"20260614"}) {
		t.Errorf("samples partitions %v after the build, want the old day dropped", got)
	}
	if got := partitions(t, db, "samples_1h"); !slices.Equal(got, []string{"20260506", "20260614"}) {
		t.Errorf("samples_1h partitions %v, want both days built and kept", got)
	}
}
