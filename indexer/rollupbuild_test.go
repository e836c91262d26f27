package indexer_test

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flamestream/flamestream/indexer"
	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/schema"
	"github.com/flamestream/flamestream/internal/testenv"
)

// These tests never call fingerprintOf nor insertSamples: both complete the built rollups by themselves.

var (
	hourBuilt = schema.Built[0]
	dayBuilt  = schema.Built[1]
)

// setBuiltEpochs sets the built rollups' epochs to since, whatever the migration recorded: the smallest
// since of a name counts, so the table is emptied and written again with the other rollups' epochs.
func setBuiltEpochs(t testing.TB, db *chdb.DB, since time.Time) {
	t.Helper()
	ctx := context.Background()
	built := make([]string, len(schema.Built))
	for i, b := range schema.Built {
		built[i] = schema.BuiltEpoch(b.Table)
	}
	name, at := new(proto.ColStr), proto.ColDateTime{}
	var oldName proto.ColStr
	var oldSince proto.ColDateTime
	err := db.Do(ctx, ch.Query{
		Body:   "SELECT name, since FROM " + db.Table(schema.Epochs) + " WHERE name NOT IN " + chdb.Strings(built),
		Result: proto.Results{{Name: "name", Data: &oldName}, {Name: "since", Data: &oldSince}},
		OnResult: func(ctx context.Context, _ proto.Block) error {
			for i := range oldName.Rows() {
				name.Append(oldName.Row(i))
				at.Append(oldSince.Row(i))
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Exec(ctx, "TRUNCATE TABLE "+db.Table(schema.Epochs)); err != nil {
		t.Fatal(err)
	}
	for _, n := range built {
		name.Append(n)
		at.Append(since)
	}
	if err := db.Insert(ctx, schema.Epochs, proto.Input{{Name: "name", Data: name}, {Name: "since", Data: &at}}); err != nil {
		t.Fatal(err)
	}
}

// indexer starts a real indexer on a consumer of its own, to index what the test uploads (one per test:
// indexers on two consumers of the same events would both write a profile they index at the same time).
func (r *rig) indexer(t *testing.T) jetstream.Consumer {
	t.Helper()
	cons := r.consumer(t, "indexer", 5*time.Second)
	r.run(t, r.st.CH, cons)
	return cons
}

// indexed waits until cons has indexed everything uploaded so far, and samples hold it.
func (r *rig) indexed(t *testing.T, cons jetstream.Consumer) {
	t.Helper()
	drained(t, cons, time.Minute)
	for svc, n := range r.sent {
		if got := samplesIn(t, r.st.CH, svc); got != n {
			t.Fatalf("samples of %s hold %d, want %d", svc, got, n)
		}
	}
}

// builtDiff counts the rows (bucket, keys, sum) that differ between b's rollup and what schema.Rollup.Query
// makes of the raw samples, for service's buckets in [from, to), both sides summed per bucket and key
// first (a rollup may hold a key in several unmerged rows, and a negative delta as a wrapped row).
func builtDiff(t testing.TB, db *chdb.DB, b schema.BuiltRollup, service string, from, to time.Time) uint64 {
	t.Helper()
	in := "(SELECT * FROM %s WHERE service = " + chdb.String(service) + " AND ts >= " + chdb.Time(from) + " AND ts < " + chdb.Time(to) + ")"
	agg := func(table string) string {
		return "SELECT toUInt32(ts) AS b, " + b.Keys() + ", count AS c FROM (" + b.Query(fmt.Sprintf(in, db.Table(table))) + ") WHERE count != 0"
	}
	var n proto.ColUInt64
	err := db.Do(context.Background(), ch.Query{
		Body: "SELECT toUInt64(count()) AS n FROM (SELECT b FROM (" + agg(schema.Samples) + " UNION ALL " + agg(b.Table) +
			") GROUP BY b, " + b.Keys() + ", c HAVING count() != 2)",
		Result: proto.Results{{Name: "n", Data: &n}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return n[0]
}

// rowsOf counts service's rows of table matching cond.
func rowsOf(t testing.TB, db *chdb.DB, table, service, cond string) uint64 {
	t.Helper()
	var n proto.ColUInt64
	err := db.Do(context.Background(), ch.Query{
		Body:   "SELECT count() AS n FROM " + db.Table(table) + " WHERE service = " + chdb.String(service) + " AND " + cond,
		Result: proto.Results{{Name: "n", Data: &n}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return n[0]
}

// unrecorded counts service's buckets of b in [from, to) whose Check table holds samples and whose newest
// record is missing or differs from the Check total, the way a reader decides a bucket is incomplete.
func unrecorded(t testing.TB, db *chdb.DB, b schema.BuiltRollup, service string, from, to time.Time) uint64 {
	t.Helper()
	where := " WHERE service = " + chdb.String(service) + " AND ts >= " + chdb.Time(from) + " AND ts < " + chdb.Time(to)
	var n proto.ColUInt64
	err := db.Do(context.Background(), ch.Query{
		Body: "SELECT count() AS n FROM (SELECT ts, sum(count) AS total FROM " + db.Table(b.Check) + where + " GROUP BY ts)" +
			" ANY LEFT JOIN (SELECT ts, argMax(total, version) AS rec, toUInt8(1) AS has FROM " + db.Table(schema.Builds) + where +
			" AND rollup_table = " + chdb.String(b.Table) + " GROUP BY ts) USING ts WHERE has = 0 OR rec != total",
		Result: proto.Results{{Name: "n", Data: &n}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return n[0]
}

// records counts service's records of b.
func records(t testing.TB, db *chdb.DB, b schema.BuiltRollup, service, cond string) uint64 {
	return rowsOf(t, db, schema.Builds, service, "rollup_table = "+chdb.String(b.Table)+" AND "+cond)
}

// exactBuilt fails unless both built rollups of service are exact over [from, to) and every bucket there
// with samples is recorded complete.
func exactBuilt(t *testing.T, db *chdb.DB, service string, from, to time.Time) {
	t.Helper()
	for _, b := range schema.Built {
		if n := builtDiff(t, db, b, service, from, to); n != 0 {
			t.Errorf("%s of %s: %d rows differ from the samples they sum", b.Table, service, n)
		}
		if n := unrecorded(t, db, b, service, from, to); n != 0 {
			t.Errorf("%s of %s: %d buckets not recorded with the Check total", b.Table, service, n)
		}
	}
}

func newBuilder(t *testing.T, db *chdb.DB) *indexer.Janitor {
	j := indexer.NewJanitor(db, indexer.Retention{}, testLogger(t))
	return j
}

func build(t *testing.T, j *indexer.Janitor) indexer.BuildResult {
	t.Helper()
	res, err := j.BuildRollups(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// Profiles of several hosts and containers over three closed hours of one day and two of the next, of two
// services: one run builds exactly those hours and days, as the view used to, and records each; the open
// hour (and day) and the buckets before the epoch stay unbuilt; a second run finds nothing to do.
func TestBuildRollupsMakesClosedBucketsExactAndRecordsThem(t *testing.T) {
	r := newRig(t)
	db := r.st.CH
	today := time.Now().UTC().Truncate(24 * time.Hour)
	d0 := today.AddDate(0, 0, -3)
	setBuiltEpochs(t, db, d0)
	cons := r.indexer(t)
	for _, svc := range []string{"svc-a", "svc-b"} {
		for _, h := range []time.Duration{10, 11, 13, 24 + 2, 24 + 20} {
			r.upload(t, svc, 6, 3, d0.Add(h*time.Hour))
		}
	}
	r.upload(t, "svc-a", 3, 3, d0.Add(-20*time.Hour))                // before the epoch
	r.upload(t, "svc-a", 3, 3, time.Now().UTC().Truncate(time.Hour)) // the open hour
	r.indexed(t, cons)

	j := newBuilder(t, db)
	res := build(t, j)
	if want := 2 * (5 + 2); res.Found != want || res.Built != want || res.Left != 0 {
		t.Errorf("first run: %+v, want %d pairs found and built", res, want)
	}
	if res.RowsRead == 0 {
		t.Error("the deltas reported no rows read")
	}
	for _, svc := range []string{"svc-a", "svc-b"} {
		exactBuilt(t, db, svc, d0, today)
	}
	for _, b := range schema.Built {
		if n := rowsOf(t, db, b.Table, "svc-a", "ts < "+chdb.Time(d0)); n != 0 {
			t.Errorf("%s: %d rows before the epoch", b.Table, n)
		}
		if n := rowsOf(t, db, b.Table, "svc-a", "ts >= "+chdb.Time(today)); n != 0 {
			t.Errorf("%s: %d rows of the open hour or day", b.Table, n)
		}
		if n := records(t, db, b, "svc-a", "(ts < "+chdb.Time(d0)+" OR ts >= "+chdb.Time(today)+")"); n != 0 {
			t.Errorf("%s: %d records outside the closed buckets after the epoch", b.Table, n)
		}
	}
	if n := records(t, db, hourBuilt, "svc-b", "1"); n != 5 {
		t.Errorf("svc-b has %d hour records, want 5", n)
	}
	if res := build(t, j); res.Found != 0 {
		t.Errorf("second run: %+v, want nothing to do", res)
	}
}

// A profile indexed into a built hour raises its Check total: the hour and its day read as incomplete
// until the next run, which adds the late rows and records the new totals.
func TestBuildRollupsCompletesABuiltHourAfterLateData(t *testing.T) {
	r := newRig(t)
	db := r.st.CH
	today := time.Now().UTC().Truncate(24 * time.Hour)
	d0 := today.AddDate(0, 0, -2)
	setBuiltEpochs(t, db, d0)
	cons := r.indexer(t)
	r.upload(t, "late", 6, 3, d0.Add(5*time.Hour))
	r.upload(t, "late", 6, 3, d0.Add(6*time.Hour))
	r.indexed(t, cons)
	j := newBuilder(t, db)
	if res := build(t, j); res.Built != 3 {
		t.Fatalf("first run: %+v, want 2 hours and a day built", res)
	}
	exactBuilt(t, db, "late", d0, today)

	r.upload(t, "late", 2, 2, d0.Add(5*time.Hour+30*time.Minute))
	r.indexed(t, cons)
	for _, b := range schema.Built {
		if n := unrecorded(t, db, b, "late", d0, today); n != 1 {
			t.Errorf("%s: %d buckets read as incomplete after the late profiles, want 1", b.Table, n)
		}
	}
	if res := build(t, j); res.Found != 2 || res.Built != 2 {
		t.Errorf("after late data: %+v, want the hour and the day built again", res)
	}
	exactBuilt(t, db, "late", d0, today)
	if n := records(t, db, hourBuilt, "late", "ts = "+chdb.Time(d0.Add(5*time.Hour))); n < 2 {
		t.Errorf("the late hour has %d records, want the first and a newer one", n)
	}
}

// A delta applied twice (two builders at once) leaves the rollup holding twice the source; one applied in
// part (an insert that failed half way) leaves it short. The next run's delta, negative in the first case
// (a wrapped UInt64 on ClickHouse 18.16), makes both exact.
func TestBuildRollupsConvergesAfterADoubleOrPartialDelta(t *testing.T) {
	r := newRig(t)
	db := r.st.CH
	ctx := context.Background()
	today := time.Now().UTC().Truncate(24 * time.Hour)
	d0 := today.AddDate(0, 0, -2)
	setBuiltEpochs(t, db, d0)
	cons := r.indexer(t)
	h3, h4 := d0.Add(3*time.Hour), d0.Add(4*time.Hour)
	r.upload(t, "conv", 9, 3, h3)
	r.upload(t, "conv", 9, 3, h4)
	r.indexed(t, cons)
	insert := "INSERT INTO " + db.Table(hourBuilt.Table) + " (ts, " + hourBuilt.Keys() + ", count) "
	// Two builders starting together compute the same delta from the same (empty) rollup, and both insert
	// it: that is the hour's samples aggregated, twice.
	source := "(SELECT * FROM " + db.Table(schema.Samples) + " WHERE service = 'conv' AND ts >= " + chdb.Time(h3) + " AND ts < " + chdb.Time(h4) + ")"
	for range 2 {
		if err := db.Exec(ctx, insert+hourBuilt.Query(source)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Exec(ctx, insert+"SELECT * FROM ("+hourBuilt.DeltaQuery(db.Table, "conv", h4, h4.Add(time.Hour))+") WHERE stack % 3 = 0"); err != nil {
		t.Fatal(err)
	}
	hourOf := func(table string, h time.Time) uint64 {
		var n proto.ColUInt64
		err := db.Do(ctx, ch.Query{
			Body: "SELECT toUInt64(sum(count)) AS n FROM " + db.Table(table) + " WHERE service = 'conv' AND ts >= " + chdb.Time(h) +
				" AND ts < " + chdb.Time(h.Add(time.Hour)),
			Result: proto.Results{{Name: "n", Data: &n}},
		})
		if err != nil {
			t.Fatal(err)
		}
		return n[0]
	}
	if got, want := hourOf(hourBuilt.Table, h3), 2*hourOf(schema.Samples, h3); got != want {
		t.Fatalf("after the double apply the hour holds %d, want %d", got, want)
	}
	if got, all := hourOf(hourBuilt.Table, h4), hourOf(schema.Samples, h4); got == 0 || got >= all {
		t.Fatalf("after the partial apply the hour holds %d of %d", got, all)
	}
	// The delta that undoes the double apply is negative: written as UInt64s above 2^63.
	var wrapped proto.ColUInt64
	if err := db.Do(ctx, ch.Query{
		Body:   "SELECT count() AS n FROM (" + hourBuilt.DeltaQuery(db.Table, "conv", h3, h4) + ") WHERE count > 9223372036854775807",
		Result: proto.Results{{Name: "n", Data: &wrapped}},
	}); err != nil {
		t.Fatal(err)
	}
	if wrapped[0] == 0 {
		t.Fatal("the delta after a double apply has no negative (wrapped) row")
	}

	j := newBuilder(t, db)
	if res := build(t, j); res.Built != 3 {
		t.Errorf("%+v, want both hours and the day built", res)
	}
	exactBuilt(t, db, "conv", d0, today)
	// Merged or not, the wrapped rows sum back: OPTIMIZE merges them and the rollup stays exact.
	if err := db.Exec(ctx, "OPTIMIZE TABLE "+db.Table(hourBuilt.Table)+" FINAL"); err != nil {
		t.Fatal(err)
	}
	exactBuilt(t, db, "conv", d0, today)
	if n := rowsOf(t, db, hourBuilt.Table, "conv", "count > 9223372036854775807"); n != 0 {
		t.Errorf("%d wrapped rows left after merging", n)
	}
}

// Reindex deletes whole days of a service from samples, every rollup and the records: the builder finds
// the replayed days unrecorded and builds them again, exactly.
func TestBuildRollupsRebuildsAfterReindex(t *testing.T) {
	r := newRig(t)
	db := r.st.CH
	today := time.Now().UTC().Truncate(24 * time.Hour)
	d0 := today.AddDate(0, 0, -2)
	setBuiltEpochs(t, db, d0)
	cons := r.indexer(t)
	r.upload(t, "reix", 8, 4, d0.Add(5*time.Hour))
	r.upload(t, "reix", 8, 4, d0.Add(7*time.Hour))
	r.indexed(t, cons)
	j := newBuilder(t, db)
	if res := build(t, j); res.Built != 3 {
		t.Fatalf("%+v, want 2 hours and a day built", res)
	}
	exactBuilt(t, db, "reix", d0, today)

	res, err := indexer.Reindex(context.Background(), r.indexerConfig(),
		indexer.Range{Service: "reix", From: d0.Add(5 * time.Hour), To: d0.Add(6 * time.Hour), Slack: 4 * 24 * time.Hour},
		db, r.store, r.js, r.log)
	if err != nil {
		t.Fatal(err)
	}
	if res.Indexed != 16 {
		t.Fatalf("reindex indexed %d profiles, want 16", res.Indexed)
	}
	if n := unrecorded(t, db, hourBuilt, "reix", d0, today); n != 2 {
		t.Errorf("%d hours read as incomplete after the reindex, want 2", n)
	}
	if n := rowsOf(t, db, hourBuilt.Table, "reix", "1"); n != 0 {
		t.Errorf("the reindex left %d rows in %s", n, hourBuilt.Table)
	}
	if got := build(t, j); got.Built != 3 {
		t.Errorf("after the reindex: %+v, want 2 hours and a day built", got)
	}
	exactBuilt(t, db, "reix", d0, today)
}

// MaxPairs bounds a run; the next runs go on, newest buckets first, hours before days.
func TestBuildRollupsRespectsTheBoundPerRun(t *testing.T) {
	r := newRig(t)
	db := r.st.CH
	today := time.Now().UTC().Truncate(24 * time.Hour)
	d0 := today.AddDate(0, 0, -2)
	setBuiltEpochs(t, db, d0)
	cons := r.indexer(t)
	for h := 1; h <= 4; h++ {
		r.upload(t, "bound", 3, 3, d0.Add(time.Duration(h)*time.Hour))
	}
	r.indexed(t, cons)
	j := newBuilder(t, db)
	j.Builds.MaxPairs = 2
	var found []int
	for range 5 {
		found = append(found, build(t, j).Found)
		if len(found) == 1 {
			hour := func(h int) string { return "ts = " + chdb.Time(d0.Add(time.Duration(h)*time.Hour)) }
			if records(t, db, hourBuilt, "bound", hour(4)) != 1 || records(t, db, hourBuilt, "bound", hour(3)) != 1 ||
				records(t, db, hourBuilt, "bound", hour(2)) != 0 {
				t.Error("the first run did not build the two newest hours")
			}
		}
	}
	if fmt.Sprint(found) != "[2 2 1 0 0]" {
		t.Errorf("pairs per run %v, want [2 2 1 0 0]", found)
	}
	exactBuilt(t, db, "bound", d0, today)
}

// The builder leaves a service alone while a query of its builds' id runs on the server (another janitor,
// or its own earlier attempt still running after the client gave up), and while another builder holds
// its claim in NATS; it builds it once they are gone.
func TestBuildRollupsWaitsForAnotherBuilder(t *testing.T) {
	r := newRig(t)
	db := r.st.CH
	ctx := context.Background()
	today := time.Now().UTC().Truncate(24 * time.Hour)
	d0 := today.AddDate(0, 0, -2)
	setBuiltEpochs(t, db, d0)
	cons := r.indexer(t)
	r.upload(t, "busy", 3, 3, d0.Add(2*time.Hour))
	r.indexed(t, cons)
	j := newBuilder(t, db)
	j.Builds.Claims = r.js

	// The builds' query id: flamestream-build-<rollup>-<fnv64a of the service>.
	h := fnv.New64a()
	h.Write([]byte("busy"))
	qid := fmt.Sprintf("flamestream-build-%s-%016x", hourBuilt.Table, h.Sum64())
	done := make(chan error, 1)
	go func() {
		done <- db.Do(ctx, ch.Query{Body: "SELECT sleep(3)", QueryID: qid, Result: proto.Results{{Name: "sleep(3)", Data: new(proto.ColUInt8)}}})
	}()
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var n proto.ColUInt64
		if err := db.Do(ctx, ch.Query{Body: "SELECT count() AS n FROM system.processes WHERE query_id = " + chdb.String(qid),
			Result: proto.Results{{Name: "n", Data: &n}}}); err != nil {
			t.Fatal(err)
		}
		if n[0] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stand-in query never showed in system.processes")
		}
	}
	res := build(t, j)
	if res.Built != 0 || res.Left != 2 || res.Found != 2 || res.Deltas != 1 {
		t.Errorf("while a build query of the service runs: %+v, want its hour left without a delta (and the day left: its hour is not built)", res)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	kv, err := r.js.KeyValue(ctx, "flamestream_rollup_builds")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(ctx, qid, nil); err != nil {
		t.Fatal(err)
	}
	if res := build(t, j); res.Built != 0 || res.Left != 2 || res.Deltas != 1 {
		t.Errorf("while another builder holds the claim: %+v, want the hour left without a delta (and the day)", res)
	}
	if err := kv.Delete(ctx, qid); err != nil {
		t.Fatal(err)
	}
	if res := build(t, j); res.Built != 2 {
		t.Errorf("once free: %+v, want the hour and the day built", res)
	}
	exactBuilt(t, db, "busy", d0, today)
	if _, err := kv.Get(ctx, qid); err != jetstream.ErrKeyNotFound {
		t.Errorf("the claim is still held after the build: %v", err)
	}
}

// Without an epoch (a database migrated before schema step 7 has none while the step runs) nothing is built.
func TestBuildRollupsWithoutEpochBuildsNothing(t *testing.T) {
	cfg := testenv.Servers(t)
	db := builtTestDB(t, cfg.ClickHouseAddr, cfg.ClickHouseUser, cfg.ClickHousePassword)
	if err := db.Exec(context.Background(), "TRUNCATE TABLE "+db.Table(schema.Epochs)); err != nil {
		t.Fatal(err)
	}
	insertRaw(t, db, "noepoch", time.Now().UTC().Truncate(time.Hour).Add(-3*time.Hour), 2, 1, 2)
	if res := build(t, newBuilder(t, db)); res.Found != 0 {
		t.Errorf("%+v, want nothing built without an epoch", res)
	}
	if n := rowsOf(t, db, hourBuilt.Table, "noepoch", "1"); n != 0 {
		t.Errorf("%d rows built without an epoch", n)
	}
}

// builtTestDB is a fresh migrated database.
func builtTestDB(tb testing.TB, addr, user, password string) *chdb.DB {
	tb.Helper()
	db, err := chdb.Open(context.Background(), chdb.Options{Addr: addr, User: user, Password: password, Database: testenv.Name("fs_test_build")})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = db.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db.Database)
		db.Close()
	})
	if _, err := schema.Migrate(context.Background(), db); err != nil {
		tb.Fatal(err)
	}
	return db
}

// insertRaw writes hosts × profiles × stacks sample rows of service in the hour starting at ts (profile p
// of a host at minute p) straight into samples (the views fill the Check tables): the benchmark's volume
// would take minutes through ingest.
func insertRaw(tb testing.TB, db *chdb.DB, service string, ts time.Time, hosts, profiles, stacks int) {
	tb.Helper()
	var tsc proto.ColDateTime
	var svc, host, container, itype, k8s proto.ColStr
	var prof, stack proto.ColUInt64
	var cnt proto.ColUInt32
	flush := func() {
		if cnt.Rows() == 0 {
			return
		}
		err := db.Insert(context.Background(), schema.Samples, proto.Input{
			{Name: "ts", Data: &tsc}, {Name: "service", Data: &svc}, {Name: "host", Data: &host},
			{Name: "container", Data: &container}, {Name: "instance_type", Data: &itype}, {Name: "k8s_object", Data: &k8s},
			{Name: "profile", Data: &prof}, {Name: "stack", Data: &stack}, {Name: "count", Data: &cnt},
		})
		if err != nil {
			tb.Fatal(err)
		}
		for _, c := range []interface{ Reset() }{&tsc, &svc, &host, &container, &itype, &k8s, &prof, &stack, &cnt} {
			c.Reset()
		}
	}
	for h := range hosts {
		for p := range profiles {
			for s := range stacks {
				tsc.Append(ts.Add(time.Duration(p%60) * time.Minute))
				svc.Append(service)
				host.Append(fmt.Sprintf("host-%03d", h))
				container.Append(fmt.Sprintf("c-%d", s%3))
				itype.Append("m5.large")
				k8s.Append("")
				prof.Append(uint64(h*1000 + p + 1))
				stack.Append(uint64(s + 1))
				cnt.Append(uint32(1 + (s+p)%7))
			}
			if cnt.Rows() >= 100_000 {
				flush()
			}
		}
	}
	flush()
}

// BenchmarkBuildRollups builds one closed hour of 400k sample rows and its day from empty rollups per op:
// the cost that replaces the hour and day views' share of every insert. "distinct" is one profile per
// host (200 hosts × 2,000 stacks: every source row is a row of the hour, the worst case); "agent" is 40
// profiles per host in the hour (10 hosts × 1,000 stacks), as agents uploading every minute or so send.
func BenchmarkBuildRollups(b *testing.B) {
	for _, shape := range []struct {
		name                    string
		hosts, profiles, stacks int
	}{{"distinct", 200, 1, 2000}, {"agent", 10, 40, 1000}} {
		b.Run(shape.name, func(b *testing.B) {
			benchmarkBuildRollups(b, shape.hosts, shape.profiles, shape.stacks)
		})
	}
}

func benchmarkBuildRollups(b *testing.B, hosts, profiles, stacks int) {
	cfg := testenv.Servers(b)
	db := builtTestDB(b, cfg.ClickHouseAddr, cfg.ClickHouseUser, cfg.ClickHousePassword)
	ctx := context.Background()
	hour := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1).Add(10 * time.Hour)
	setBuiltEpochs(b, db, hour.Truncate(24*time.Hour))
	insertRaw(b, db, "bench", hour, hosts, profiles, stacks)
	j := indexer.NewJanitor(db, indexer.Retention{}, slog.New(slog.DiscardHandler))
	var rowsRead uint64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		for _, t := range []string{hourBuilt.Table, dayBuilt.Table, schema.Builds} {
			if err := db.Exec(ctx, "TRUNCATE TABLE "+db.Table(t)); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		res, err := j.BuildRollups(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if res.Built != 2 {
			b.Fatalf("%+v, want the hour and the day built", res)
		}
		rowsRead += res.RowsRead
	}
	b.StopTimer()
	b.ReportMetric(float64(hosts*profiles*stacks*b.N)/b.Elapsed().Seconds(), "source_rows/s")
	b.ReportMetric(float64(rowsRead)/float64(b.N), "rows_read/op")
	if n := builtDiff(b, db, hourBuilt, "bench", hour, hour.Add(time.Hour)); n != 0 {
		b.Fatalf("%d rows of the hour differ", n)
	}
	benchServerCPU(b, db, hour)
}

// benchServerCPU builds the hour and the day once more from empty rollups with the same statements as the
// builder, on a connection that logs its queries, and reports ClickHouse's CPU for them from
// system.query_log (user and system time of the query's threads; 18.16 logs them as ProfileEvents).
func benchServerCPU(b *testing.B, db *chdb.DB, hour time.Time) {
	ctx := context.Background()
	cfg := testenv.Servers(b)
	opts := ch.Options{Address: cfg.ClickHouseAddr, User: cfg.ClickHouseUser, Password: cfg.ClickHousePassword, Database: "default"}
	if db.Legacy {
		opts.ProtocolVersion = 54031
	}
	c, err := ch.Dial(ctx, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for _, t := range []string{hourBuilt.Table, dayBuilt.Table} {
		if err := db.Exec(ctx, "TRUNCATE TABLE "+db.Table(t)); err != nil {
			b.Fatal(err)
		}
	}
	if err := c.Do(ctx, ch.Query{Body: "SET log_queries = 1"}); err != nil {
		b.Fatal(err)
	}
	day := hour.Truncate(24 * time.Hour)
	var cpu, read float64
	for i, step := range []struct {
		r        schema.BuiltRollup
		from, to time.Time
	}{{hourBuilt, hour, hour.Add(time.Hour)}, {dayBuilt, day, day.Add(24 * time.Hour)}} {
		qid := fmt.Sprintf("%s-cpu-%d-%d", db.Database, i, time.Now().UnixNano())
		err := c.Do(ctx, ch.Query{QueryID: qid, Body: "INSERT INTO " + db.Table(step.r.Table) + " (ts, " + step.r.Keys() + ", count) " +
			step.r.DeltaQuery(db.Table, "bench", step.from, step.to)})
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Do(ctx, ch.Query{Body: "SYSTEM FLUSH LOGS"}); err != nil {
			b.Fatal(err)
		}
		var us, rows, ms proto.ColUInt64
		err = db.Do(ctx, ch.Query{
			Body: "SELECT toUInt64(ProfileEvents.Values[indexOf(ProfileEvents.Names, 'UserTimeMicroseconds')] + " +
				"ProfileEvents.Values[indexOf(ProfileEvents.Names, 'SystemTimeMicroseconds')]) AS us, toUInt64(read_rows) AS rows, " +
				"toUInt64(query_duration_ms) AS ms FROM system.query_log WHERE query_id = " + chdb.String(qid) + " AND type = 2",
			Result: proto.Results{{Name: "us", Data: &us}, {Name: "rows", Data: &rows}, {Name: "ms", Data: &ms}},
		})
		if err != nil {
			b.Fatal(err)
		}
		if len(us) != 1 {
			b.Logf("%s: no query_log row (%d)", step.r.Table, len(us))
			return
		}
		b.Logf("%s: ClickHouse CPU %.1f ms, %d rows read, %d ms", step.r.Table, float64(us[0])/1000, rows[0], ms[0])
		cpu += float64(us[0]) / 1000
		read += float64(rows[0])
	}
	b.ReportMetric(cpu, "ch_cpu_ms/op")
	b.ReportMetric(read, "ch_rows_read/op")
}

// BenchmarkBuildRollupsIdle is a run with nothing to build over two weeks of 10 services × 1,000 stacks
// an hour (3.4M rows of samples_1h_all, 336 hours and 14 days per service, every one recorded), the last
// day half closed: the price of finding the work, paid every minute.
func BenchmarkBuildRollupsIdle(b *testing.B) {
	cfg := testenv.Servers(b)
	db := builtTestDB(b, cfg.ClickHouseAddr, cfg.ClickHouseUser, cfg.ClickHousePassword)
	ctx := context.Background()
	const days, services, stacks = 14, 10, 1000
	today := time.Now().UTC().Truncate(24 * time.Hour)
	first := today.AddDate(0, 0, -days)
	setBuiltEpochs(b, db, first)
	rows := days * 24 * services * stacks
	// One sample row per service, hour and stack, written by the server (the views fill the Check tables).
	if err := db.Exec(ctx, "INSERT INTO "+db.Table(schema.Samples)+" (ts, service, host, container, instance_type, k8s_object, profile, stack, count)"+
		" SELECT "+chdb.Time(first)+" + intDiv(number, "+fmt.Sprint(services*stacks)+") * 3600 AS ts,"+
		" concat('svc-', toString(intDiv(number, "+fmt.Sprint(stacks)+") % "+fmt.Sprint(services)+")), 'h', '', '', '', 1, number % "+fmt.Sprint(stacks)+", 1"+
		" FROM system.numbers LIMIT "+fmt.Sprint(rows)); err != nil {
		b.Fatal(err)
	}
	// Every hour and day recorded complete, as the builder would have left them.
	for _, r := range schema.Built {
		if err := db.Exec(ctx, "INSERT INTO "+db.Table(schema.Builds)+" (rollup_table, service, ts, total, version) SELECT "+
			chdb.String(r.Table)+", service, ts, sum(count), 1 FROM "+db.Table(r.Check)+" GROUP BY service, ts"); err != nil {
			b.Fatal(err)
		}
	}
	j := indexer.NewJanitor(db, indexer.Retention{}, slog.New(slog.DiscardHandler))
	// The clock at 13:30 of the last day: its 13 closed hours are today's, the rest ahead.
	j.Now = func() time.Time { return today.Add(-10*time.Hour - 30*time.Minute) }
	b.ResetTimer()
	for range b.N {
		res, err := j.BuildRollups(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if res.Found != 0 {
			b.Fatalf("%+v, want nothing to build", res)
		}
	}
}

// BenchmarkBuildRollupsSpan builds the 24 closed hours of one service's day (5 hosts × 10 profiles × 500
// stacks an hour) and the day, with one delta per hour (span=1), per 6 hours (the default) or one for
// the whole day (span=24).
func BenchmarkBuildRollupsSpan(b *testing.B) {
	cfg := testenv.Servers(b)
	db := builtTestDB(b, cfg.ClickHouseAddr, cfg.ClickHouseUser, cfg.ClickHousePassword)
	ctx := context.Background()
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	setBuiltEpochs(b, db, day)
	for h := range 24 {
		insertRaw(b, db, "span", day.Add(time.Duration(h)*time.Hour), 5, 10, 500)
	}
	for _, span := range []int{1, 6, 24} {
		b.Run(fmt.Sprintf("span=%d", span), func(b *testing.B) {
			j := indexer.NewJanitor(db, indexer.Retention{}, slog.New(slog.DiscardHandler))
			j.Builds.MaxSpan = span
			for range b.N {
				b.StopTimer()
				for _, t := range []string{hourBuilt.Table, dayBuilt.Table, schema.Builds} {
					if err := db.Exec(ctx, "TRUNCATE TABLE "+db.Table(t)); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				res, err := j.BuildRollups(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if res.Built != 25 || res.Deltas != 24/span+1 {
					b.Fatalf("%+v, want 24 hours and the day built in %d deltas", res, 24/span+1)
				}
			}
		})
	}
}

// Run builds on a ticker of its own (Builds.Interval), not on the sweeps' hourly one: a profile arriving
// late in a built hour is built within a few of its ticks.
func TestJanitorRunBuildsOnItsOwnTicker(t *testing.T) {
	r := newRig(t)
	db := r.st.CH
	today := time.Now().UTC().Truncate(24 * time.Hour)
	d0 := today.AddDate(0, 0, -2)
	setBuiltEpochs(t, db, d0)
	cons := r.indexer(t)
	r.upload(t, "ticker", 4, 2, d0.Add(8*time.Hour))
	r.indexed(t, cons)

	j := newBuilder(t, db)
	j.Builds.Interval = 100 * time.Millisecond
	reg := prometheus.NewRegistry()
	j.Builds.Metrics = indexer.NewBuildMetrics(reg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- j.Run(ctx, time.Hour) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	waitRecorded := func(what string) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if unrecorded(t, db, hourBuilt, "ticker", d0, today)+unrecorded(t, db, dayBuilt, "ticker", d0, today) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not built 20 s later", what)
			}
		}
	}
	waitRecorded("at start")
	r.upload(t, "ticker", 2, 2, d0.Add(8*time.Hour+30*time.Minute))
	r.indexed(t, cons)
	waitRecorded("the late profiles")
	exactBuilt(t, db, "ticker", d0, today)
	// Its metrics: buckets built (two hours and a day at start, the hour and day again after the late
	// profiles), none behind, no failure.
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			got[f.GetName()] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	if got["flamestream_janitor_rollup_buckets_built_total"] < 4 || got["flamestream_janitor_rollup_buckets_behind"] != 0 ||
		got["flamestream_janitor_rollup_build_failures_total"] != 0 {
		t.Errorf("builder metrics %v, want at least 4 buckets built, none behind, no failure", got)
	}
}

// In the day that is still open (today by the janitor's clock) the closed hours are built, and a profile
// arriving late in one of them is found (the day's Check total, less its open hours, no longer equals the
// hours' records) while one in the open hour is not work yet.
func TestBuildRollupsFindsLateDataInTodaysClosedHours(t *testing.T) {
	r := newRig(t)
	db := r.st.CH
	d0 := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -2)
	setBuiltEpochs(t, db, d0)
	cons := r.indexer(t)
	r.upload(t, "today", 4, 2, d0.Add(3*time.Hour))
	r.upload(t, "today", 4, 2, d0.Add(4*time.Hour))
	r.upload(t, "today", 4, 2, d0.Add(10*time.Hour))
	r.indexed(t, cons)
	j := newBuilder(t, db)
	j.Now = func() time.Time { return d0.Add(10*time.Hour + 30*time.Minute) }
	open := d0.Add(10 * time.Hour)

	if res := build(t, j); res.Found != 2 || res.Built != 2 {
		t.Fatalf("first run: %+v, want the two closed hours built (the day is open)", res)
	}
	if n := builtDiff(t, db, hourBuilt, "today", d0, open); n != 0 {
		t.Errorf("%d rows of the closed hours differ", n)
	}
	if n := rowsOf(t, db, hourBuilt.Table, "today", "ts >= "+chdb.Time(open)); n != 0 {
		t.Errorf("%d rows of the open hour built", n)
	}
	if res := build(t, j); res.Found != 0 {
		t.Errorf("second run: %+v, want nothing to do", res)
	}
	r.upload(t, "today", 2, 2, d0.Add(3*time.Hour+20*time.Minute))
	r.indexed(t, cons)
	if res := build(t, j); res.Found != 1 || res.Built != 1 {
		t.Errorf("after a late profile in a closed hour: %+v, want that hour built again", res)
	}
	if n := builtDiff(t, db, hourBuilt, "today", d0, open); n != 0 {
		t.Errorf("%d rows of the closed hours differ after the late profile", n)
	}
	if n := unrecorded(t, db, hourBuilt, "today", d0, open); n != 0 {
		t.Errorf("%d closed hours not recorded", n)
	}
	r.upload(t, "today", 2, 2, d0.Add(10*time.Hour+10*time.Minute))
	r.indexed(t, cons)
	if res := build(t, j); res.Found != 0 {
		t.Errorf("after a profile in the open hour: %+v, want nothing to do", res)
	}
}

// On the cluster layout (Distributed tables over _local ones; the local server's one-shard test cluster,
// without ZooKeeper, as in TestClusterSchemaRoutesInsertsThroughDistributedTablesIntoShardRollups) the
// builder's reads, its INSERT through the Distributed table (insert_distributed_sync) and its records work
// as on one server.
func TestBuildRollupsOnTheClusterLayout(t *testing.T) {
	cfg := testenv.Servers(t)
	ctx := context.Background()
	db, err := chdb.Open(ctx, chdb.Options{Addr: cfg.ClickHouseAddr, User: cfg.ClickHouseUser,
		Password: cfg.ClickHousePassword, Database: testenv.Name("fs_test_build_cluster")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = db.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db.Database)
		db.Close()
	})
	const cluster = "test_shard_localhost"
	stmts, err := schema.Layout{Database: db.Database, Cluster: cluster}.SQL()
	if err != nil {
		t.Fatal(err)
	}
	replicated := regexp.MustCompile(`ENGINE = Replicated(\w+)\('[^']*', '\{replica\}'(?:, (\w+|\([^)]*\)))?\)`)
	for _, s := range stmts {
		s = strings.ReplaceAll(s, " ON CLUSTER "+cluster, "")
		s = replicated.ReplaceAllString(s, "ENGINE = $1($2)")
		if err := db.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	d0 := today.AddDate(0, 0, -2)
	setBuiltEpochs(t, db, d0)
	insertRaw(t, db, "svc", d0.Add(3*time.Hour), 4, 3, 50)
	insertRaw(t, db, "svc", d0.Add(4*time.Hour), 4, 3, 50)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		// The Distributed tables may send their rows on in the background: wait for the Check tables.
		total := func(table string) uint64 {
			var n proto.ColUInt64
			if err := db.Do(ctx, ch.Query{Body: "SELECT toUInt64(sum(count)) AS n FROM " + db.Table(table),
				Result: proto.Results{{Name: "n", Data: &n}}}); err != nil {
				t.Fatal(err)
			}
			return n[0]
		}
		s, h, d := total(schema.Samples), total(schema.HourAll), total(schema.DayAll)
		if s > 0 && s == h && h == d {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("samples, %s and %s hold %d, %d and %d", schema.HourAll, schema.DayAll, s, h, d)
		}
	}
	j := newBuilder(t, db)
	if res := build(t, j); res.Built != 3 {
		t.Fatalf("%+v, want 2 hours and the day built", res)
	}
	exactBuilt(t, db, "svc", d0, today)
	if res := build(t, j); res.Found != 0 {
		t.Errorf("second run: %+v, want nothing to do", res)
	}
}
