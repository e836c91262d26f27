package indexer_test

import (
	"context"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/schema"
)

// rollupOf is how each rollup buckets and groups samples, written out here independently of the
// indexer's own description: the test compares every rollup row with its samples.
var rollupOf = map[string]struct{ bucket, keys string }{
	"samples_1h":        {"toStartOfHour(ts)", "host, container, instance_type, k8s_object, stack"},
	"samples_1h_all":    {"toStartOfHour(ts)", "stack"},
	"samples_1d":        {"toStartOfDay(ts)", "host, container, instance_type, k8s_object, stack"},
	"samples_1d_all":    {"toStartOfDay(ts)", "stack"},
	"totals_1m":         {"toStartOfMinute(ts)", "host, container, instance_type, k8s_object"},
	schema.MinuteRollup: {"toStartOfMinute(ts)", "stack"},
}

// rollupsMatchSamples fails unless every row of every rollup of service holds the sum of its samples:
// it counts the rows (bucket, keys, sum) that differ between the rollup and samples, both ways.
func rollupsMatchSamples(t *testing.T, db *chdb.DB, service string) {
	t.Helper()
	for table, r := range rollupOf {
		agg := func(src string) string {
			return "SELECT toUInt32(" + r.bucket + ") AS b, " + r.keys + ", toUInt64(sum(count)) AS c FROM " + db.Table(src) +
				" WHERE service = " + chdb.String(service) + " GROUP BY b, " + r.keys
		}
		var diff proto.ColUInt64
		err := db.Do(context.Background(), ch.Query{
			Body: "SELECT toUInt64(count()) AS n FROM (SELECT * FROM (" + agg("samples") + ") UNION ALL SELECT * FROM (" + agg(table) +
				")) GROUP BY b, " + r.keys + ", c HAVING count() != 2",
			Result: proto.Results{{Name: "n", Data: &diff}},
		})
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		for _, v := range diff {
			n += v
		}
		if n != 0 {
			t.Errorf("%s: %d rows differ from the samples they sum", table, n)
		}
	}
}

// A materialized view that fails after the samples part was written (in the soak: ClickHouse killed
// mid-INSERT) leaves the profiles in samples and missing from some rollups; the retry's guard sees them in
// samples and skips them, and before batch markers those rollups stayed short for good. Here a view that
// always throws sits between the others: 18.16 pushes views in name order, so samples_1d, samples_1d_all
// and samples_1h_all get their part and samples_1h, samples_1m_all and totals_1m do not (the soak's
// pattern). The guard must find the batch's marker missing there and complete those rollups from samples.
func TestRollupAViewMissedIsCompletedOnRetry(t *testing.T) {
	r := newRig(t)
	db := r.st.CH
	ctx := context.Background()
	start := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	r.upload(t, "svc-views", 24, 3, start)
	err := db.Exec(ctx, "CREATE MATERIALIZED VIEW "+db.Table("samples_1h_fail")+
		" ENGINE = Null AS SELECT throwIf(count > 0) AS failed FROM "+db.Table("samples"))
	if err != nil {
		t.Fatal(err)
	}
	cons := r.consumer(t, "views", 5*time.Second)
	reg := r.run(t, db, cons)
	drained(t, cons, time.Minute)
	if got := samplesIn(t, db, "svc-views"); got != r.sent["svc-views"] {
		t.Fatalf("samples hold %d, want %d", got, r.sent["svc-views"])
	}
	if got := metric(t, reg, "flamestream_indexer_rollup_repairs_total"); got == 0 {
		t.Error("no rollup was completed")
	}
	checkTotals(t, fingerprintOf(t, db, "svc-views"), r.sent["svc-views"])
	rollupsMatchSamples(t, db, "svc-views")

	// With the view gone, batches go in whole and nothing needs completing.
	if err := db.Exec(ctx, "DROP TABLE "+db.Table("samples_1h_fail")); err != nil {
		t.Fatal(err)
	}
	repaired := metric(t, reg, "flamestream_indexer_rollup_repairs_total")
	r.upload(t, "svc-views", 12, 3, start.Add(time.Hour))
	drained(t, cons, time.Minute)
	if got := metric(t, reg, "flamestream_indexer_rollup_repairs_total"); got != repaired {
		t.Errorf("%v rollups completed without a failure", got-repaired)
	}
	checkTotals(t, fingerprintOf(t, db, "svc-views"), r.sent["svc-views"])
	rollupsMatchSamples(t, db, "svc-views")

	// A second indexer replaying everything from the start finds every profile in samples and every
	// marker in place, and writes nothing.
	replay := r.consumer(t, "views-replay", 5*time.Second)
	reg2 := r.run(t, db, replay)
	drained(t, replay, time.Minute)
	if got := metric(t, reg2, "flamestream_indexer_rollup_repairs_total"); got != 0 {
		t.Errorf("the replay completed %v rollups, want 0", got)
	}
	checkTotals(t, fingerprintOf(t, db, "svc-views"), r.sent["svc-views"])
}

// samplesIn is the total count of service in samples.
func samplesIn(t *testing.T, db *chdb.DB, service string) uint64 {
	t.Helper()
	var n proto.ColUInt64
	err := db.Do(context.Background(), ch.Query{
		Body:   "SELECT toUInt64(sum(count)) AS n FROM " + db.Table("samples") + " WHERE service = " + chdb.String(service),
		Result: proto.Results{{Name: "n", Data: &n}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return n[0]
}
