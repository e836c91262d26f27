package indexer

// Built rollups.
//
// samples_1h and samples_1d (per stack and every filter dimension) are no longer fed by views inside each
// INSERT (that sorting cost most of ClickHouse's insert CPU, see schema step 7): the janitor builds them
// from closed buckets, per service, with schema.BuiltRollup.DeltaQuery, the source's sums minus what the
// rollup holds already, per key. That makes a build convergent: running it again after a failed or
// partial insert writes the rest, after late data the late rows, after a double apply the negative
// difference (as a wrapped UInt64, which SummingMergeTree sums back).
//
// After each delta the builder compares, per bucket, the rollup's total with its Check table's (the
// view-fed service-wide rollup of the same bucket, always complete) and records the total in
// schema.Builds when they are equal: readers use a bucket of a built rollup only while its newest record
// equals the Check total, so a late profile makes the bucket read as incomplete until the next build.
//
// Finding the work is one read per rollup: the Check table's totals per service and bucket over the window,
// joined with the newest records; a pair needs work when the record is missing or differs. The hours are
// read only in the days whose hour records do not add up to the day's Check total (see completeDays), so
// an idle run over two weeks of 10 services × 1,000 stacks an hour costs ~95 ms (BenchmarkBuildRollupsIdle).
// The adjacent hours of a service go in one delta (up to MaxSpan): 24 hours of a day and the day build in
// ~0.6 s with 6 hours a delta, ~1.3 s with one each, ~0.5 s all in one (BenchmarkBuildRollupsSpan, 25k
// rows an hour); a day is one delta (24 hours of the hour rollup already).
//
// Two builders must never compute a delta of the same service and rollup at once (both would insert it).
// Three guards:
//   - every delta of a (rollup, service) runs under one fixed query id (buildQueryID): ClickHouse refuses
//     a query whose id is already running, so on one server a second builder (another janitor, or this one's
//     previous attempt that timed out on the client and still runs on the server) cannot start its delta
//     before the first ended; the builder also looks for that id in system.processes first and skips;
//   - the INSERT runs with insert_distributed_sync = 1, so on the cluster layout the rows are on the
//     shards when it returns and the next delta sees them;
//   - when RollupBuilds.Claims is set, a (rollup, service) is claimed in a NATS key-value bucket for the
//     delta, its check and its record, because on a cluster two janitors may talk to different servers
//     (the query id is unique per server only).
// The record is written only after the totals were read equal after the delta; a record a slower builder
// writes later with an older total reads as incomplete, and the next run records the current one.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/schema"
)

const (
	// buildClaimBucket is the NATS key-value bucket of the builders' claims; a claim lapses after
	// buildClaimTTL, longer than any delta may run (RollupBuilds.Timeout is capped below it), so a janitor
	// that died releases its claims.
	buildClaimBucket = "flamestream_rollup_builds"
	buildClaimTTL    = 5 * time.Minute
	// maxBuildTimeout caps RollupBuilds.Timeout a minute below the claim's lifetime.
	maxBuildTimeout = buildClaimTTL - time.Minute
)

// RollupBuilds tunes BuildRollups. The zero value builds with the defaults.
type RollupBuilds struct {
	// Interval is how often Run builds (default 1 minute), apart from the janitor's hourly sweeps:
	// filtered reads of the last hour use the hour rollup once it is built. Negative turns builds off.
	Interval time.Duration
	// Settle is how long after its end a bucket is first built (default 5 minutes): profiles reach
	// samples a little after they end. A profile later still is found by its bucket's record.
	Settle time.Duration
	// MaxPairs bounds the (service, bucket) pairs one run works on (default 500); the next run goes on.
	MaxPairs int
	// MaxSpan bounds the adjacent hours of one service a single delta covers (default 6): the delta's
	// GROUP BY holds every key of its hours in memory, up to one per source row of them. Days go one by
	// one.
	MaxSpan int
	// Timeout bounds one delta with its check and record (default 2 minutes, at most 4), on the server too
	// (max_execution_time).
	Timeout time.Duration
	// Metrics, when set, counts what RunBuilds does (see NewBuildMetrics).
	Metrics *BuildMetrics
	// Claims, when set, is where builders claim a (rollup, service) before its delta (see the top of this
	// file); nil relies on the query id alone, which is enough while every janitor uses one ClickHouse
	// server.
	Claims jetstream.JetStream
}

// BuildMetrics are the rollup builder's Prometheus metrics.
type BuildMetrics struct {
	built, failures prometheus.Counter
	behind          prometheus.Gauge
}

// NewBuildMetrics registers the builder's metrics with reg:
//   - flamestream_janitor_rollup_buckets_built_total: (service, bucket) pairs built and recorded;
//   - flamestream_janitor_rollup_buckets_behind: the pairs the last run found needing work and did not
//     record (at most RollupBuilds.MaxPairs): filtered reads of those buckets read finer tables meanwhile;
//   - flamestream_janitor_rollup_build_failures_total: runs that ended with an error.
func NewBuildMetrics(reg prometheus.Registerer) *BuildMetrics {
	m := &BuildMetrics{
		built: prometheus.NewCounter(prometheus.CounterOpts{Name: "flamestream_janitor_rollup_buckets_built_total",
			Help: "Buckets of the per-dimension rollups built and recorded by the janitor."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "flamestream_janitor_rollup_build_failures_total",
			Help: "Rollup build runs that ended with an error."}),
		behind: prometheus.NewGauge(prometheus.GaugeOpts{Name: "flamestream_janitor_rollup_buckets_behind",
			Help: "Buckets the last rollup build run found needing work and left (at most its bound per run)."}),
	}
	if reg != nil {
		reg.MustRegister(m.built, m.failures, m.behind)
	}
	return m
}

// buildState is what BuildRollups keeps between runs.
type buildState struct {
	loc     *time.Location     // the server's time zone, asked once
	noEpoch map[string]bool    // built rollups whose missing epoch was logged: one key per built rollup
	claims  jetstream.KeyValue // opened on first use
}

// BuildResult says what one BuildRollups run did.
type BuildResult struct {
	// Found is how many (service, bucket) pairs needed work, at most RollupBuilds.MaxPairs.
	Found int
	// Built is how many of them were recorded complete; Left how many were left for a later run (data
	// arrived meanwhile, another builder at work, a failure).
	Built, Left int
	// Deltas is how many INSERTs were issued, RowsRead the rows they read (source and rollup, as the
	// server reported its progress).
	Deltas   int
	RowsRead uint64
}

func (r *BuildResult) add(o BuildResult) {
	r.Found += o.Found
	r.Built += o.Built
	r.Left += o.Left
	r.Deltas += o.Deltas
	r.RowsRead += o.RowsRead
}

// errBuildBusy says that another builder is at work on a (rollup, service): the pairs wait for a later run.
var errBuildBusy = errors.New("another builder is at work on this service's rollup")

func (b RollupBuilds) settle() time.Duration   { return cmp.Or(b.Settle, 5*time.Minute) }
func (b RollupBuilds) maxPairs() int           { return cmp.Or(b.MaxPairs, 500) }
func (b RollupBuilds) maxSpan() int            { return cmp.Or(b.MaxSpan, 6) }
func (b RollupBuilds) interval() time.Duration { return cmp.Or(b.Interval, time.Minute) }
func (b RollupBuilds) timeout() time.Duration {
	return min(cmp.Or(b.Timeout, 2*time.Minute), maxBuildTimeout)
}

// RunBuilds calls BuildRollups at once and then every Builds.Interval until ctx ends (Run starts it).
// Errors are logged: the next run retries.
func (j *Janitor) RunBuilds(ctx context.Context) {
	if j.Builds.Interval < 0 {
		return
	}
	t := time.NewTicker(j.Builds.interval())
	defer t.Stop()
	for {
		start := time.Now()
		res, err := j.BuildRollups(ctx)
		if m := j.Builds.Metrics; m != nil {
			m.built.Add(float64(res.Built))
			m.behind.Set(float64(res.Found - res.Built))
			if err != nil && ctx.Err() == nil {
				m.failures.Inc()
			}
		}
		if err != nil && ctx.Err() == nil {
			j.log.Warn("rollup build incomplete", "built", res.Built, "left", res.Left, "err", err)
		} else if res.Deltas > 0 { // not every minute while another builder holds a service
			j.log.Info("rollups built", "pairs", res.Found, "built", res.Built, "left", res.Left, "deltas", res.Deltas,
				"rows_read", res.RowsRead, "took", time.Since(start).Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// BuildRollups makes the closed buckets of every built rollup (schema.Built, hour then day) that need it
// complete, newest first, at most Builds.MaxPairs pairs, and records them. A bucket is built once it ended
// Builds.Settle ago, if it starts at or after the rollup's epoch (schema.BuiltEpoch; buckets before it
// were written by the views) and, when its source has a retention, no earlier than that retention
// (older source rows may have been dropped). The day rollup is built from the hour one: a day whose hours
// are not all built yet gets a partial delta, no record, and is completed by a later run.
func (j *Janitor) BuildRollups(ctx context.Context) (BuildResult, error) {
	var res BuildResult
	budget := j.Builds.maxPairs()
	var errs []error
	for _, b := range schema.Built {
		if budget <= 0 {
			break
		}
		r, err := j.buildRollup(ctx, b, budget)
		res.add(r)
		budget -= r.Found
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", b.Table, err))
			if ctx.Err() != nil {
				break
			}
		}
	}
	return res, errors.Join(errs...)
}

// BuildEverything builds every bucket of the built rollups now, the open ones too, as the janitor will once
// they are closed, until nothing is left: for the benches and checks that read the rollups right after a
// load. An open bucket gets more rows later, and the janitor completes it then (builds converge).
func BuildEverything(ctx context.Context, db *chdb.DB) error {
	j := NewJanitor(db, Retention{}, slog.New(slog.DiscardHandler))
	j.Now = func() time.Time { return time.Now().Add(48 * time.Hour) }
	for range 10 {
		res, err := j.BuildRollups(ctx)
		if err != nil {
			return err
		}
		if res.Found == 0 {
			return nil
		}
	}
	return errors.New("build the rollups: work left after 10 runs")
}

// buildPair is one (service, bucket) needing work.
type buildPair struct {
	service string
	ts      time.Time
}

// sourceDays is the retention of a built rollup's source.
func (j *Janitor) sourceDays(b schema.BuiltRollup) int {
	for _, t := range retentionTables {
		if t.name == b.Source {
			return t.days(j.retention)
		}
	}
	return 0
}

func (j *Janitor) buildRollup(ctx context.Context, b schema.BuiltRollup, budget int) (BuildResult, error) {
	var res BuildResult
	lo, ok, err := j.builtEpoch(ctx, b)
	if err != nil || !ok {
		return res, err
	}
	now := j.Now()
	loc, err := j.serverLocation(ctx)
	if err != nil {
		return res, err
	}
	if days := j.sourceDays(b); days > 0 {
		// From the next whole day on: the hours of a partial day at the start would be read every run
		// (see completeDays), and the ones left out were built when they were recent.
		bound, err := j.bucketOf(ctx, dayRollup(), now.AddDate(0, 0, -days))
		if err != nil {
			return res, err
		}
		if bound = bucketEnd(dayRollup(), bound, loc); bound.After(lo) {
			lo = bound
		}
	}
	hi, err := j.bucketOf(ctx, b, now.Add(-j.Builds.settle()))
	if err != nil {
		return res, err
	}
	if !lo.Before(hi) {
		return res, nil
	}
	skip, err := j.completeDays(ctx, b, lo, hi, loc)
	if err != nil {
		return res, err
	}
	pairs, err := j.buildPairs(ctx, b, lo, hi, skip, budget)
	if err != nil {
		return res, err
	}
	res.Found = len(pairs)
	if len(pairs) == 0 {
		return res, nil
	}
	var errs []error
	busy := map[string]bool{} // services another builder works on: at most one key per group
	for _, g := range j.groups(b, pairs, loc) {
		if err := ctx.Err(); err != nil {
			res.Left += len(g.buckets)
			errs = append(errs, err)
			continue
		}
		if busy[g.service] {
			res.Left += len(g.buckets)
			continue
		}
		r, err := j.buildGroup(ctx, b, g, loc)
		res.add(r)
		if errors.Is(err, errBuildBusy) {
			busy[g.service] = true
		} else if err != nil {
			if ctx.Err() == nil {
				j.log.Warn("rollup build failed", "rollup", b.Table, "service", g.service,
					"from", g.buckets[len(g.buckets)-1], "to", g.buckets[0], "err", err)
			}
			errs = append(errs, fmt.Errorf("service %q: %w", g.service, err))
		}
	}
	return res, errors.Join(errs...)
}

// builtEpoch is the first bucket of b that needs a record: the smallest since of its epoch. Without one
// (a database migrated before schema step 7 has none only while the step runs) nothing is built, and that
// is logged once.
func (j *Janitor) builtEpoch(ctx context.Context, b schema.BuiltRollup) (time.Time, bool, error) {
	var since proto.ColDateTime
	var n proto.ColUInt64
	err := j.db.Do(ctx, ch.Query{
		Body: "SELECT min(since) AS since, count() AS n FROM " + j.db.Table(schema.Epochs) +
			" WHERE name = " + chdb.String(schema.BuiltEpoch(b.Table)),
		Result: proto.Results{{Name: "since", Data: &since}, {Name: "n", Data: &n}},
	})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("read the epoch of %s: %w", b.Table, err)
	}
	if len(n) != 1 || n[0] == 0 {
		if !j.builds.noEpoch[b.Table] {
			if j.builds.noEpoch == nil {
				j.builds.noEpoch = map[string]bool{}
			}
			j.builds.noEpoch[b.Table] = true // one key per built rollup
			j.log.Warn("built rollup has no epoch: not building it", "rollup", b.Table, "epoch", schema.BuiltEpoch(b.Table))
		}
		return time.Time{}, false, nil
	}
	return since.Row(0), true, nil
}

// bucketOf is the start of the bucket of b that holds t, by the server's own bucket expression (and so
// its time zone): the buckets before it have ended by t.
func (j *Janitor) bucketOf(ctx context.Context, b schema.BuiltRollup, t time.Time) (time.Time, error) {
	var col proto.ColDateTime
	err := j.db.Do(ctx, ch.Query{
		Body:   "SELECT " + b.Bucket + " AS b FROM (SELECT " + chdb.Time(t) + " AS ts)",
		Result: proto.Results{{Name: "b", Data: &col}},
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("bucket of %s: %w", b.Table, err)
	}
	if col.Rows() != 1 {
		return time.Time{}, fmt.Errorf("bucket of %s: %d rows", b.Table, col.Rows())
	}
	return col.Row(0), nil
}

// completeDays returns the condition that leaves out of b's Check read the coarser buckets (days) known
// complete for every service, or "" when b has no coarser built rollup (the day one is built from b) or
// the window holds no whole coarser bucket.
//
// The hour rollup's window is the raw retention, 30 days by default: its Check table, one row per service,
// hour and stack, is far too large to read every minute. But a day whose hour records sum to its day
// Check total (samples_1d_all, 24 times smaller) has every hour recorded with its current total: a record is
// the hour's Check total when it was written and totals only grow (deletions delete the records too), so
// each record is at most its hour's total now, and their sum can equal the day's (the sum of its hours)
// only if each does, with no hour holding samples and no record. So the hours are read only in the days
// of the window where the sums differ for some service, and in a partial day at its start (the window
// starts at a whole day but for an epoch within one). The partial day at its end (today) is checked the
// same way, its open hours taken out (partialDayIncomplete). A day takes a small read of the day Check
// table and of the records.
func (j *Janitor) completeDays(ctx context.Context, b schema.BuiltRollup, lo, hi time.Time, loc *time.Location) (string, error) {
	day := dayRollup()
	if day.Source != b.Table {
		return "", nil
	}
	first, err := j.bucketOf(ctx, day, lo)
	if err != nil {
		return "", err
	}
	if first.Before(lo) {
		first = bucketEnd(day, first, loc)
	}
	end, err := j.bucketOf(ctx, day, hi)
	if err != nil {
		return "", err
	}
	if first.After(end) {
		return "", nil // the window lies in one day, partial at its start: read it whole
	}
	var days []time.Time // the whole days incomplete for some service: at most the window's days
	if first.Before(end) {
		whole := " AND ts >= " + chdb.Time(first) + " AND ts < " + chdb.Time(end)
		incomplete := "SELECT DISTINCT d FROM (" +
			"SELECT service, ts AS d, sum(count) AS total FROM " + j.db.Table(day.Check) +
			" WHERE service != " + chdb.String(schema.MarkerService) + whole + " GROUP BY service, d" +
			") AS checked ANY LEFT JOIN (" +
			"SELECT service, " + day.Bucket + " AS d, sum(rec) AS recorded FROM (" +
			"SELECT service, ts, argMax(total, version) AS rec FROM " + j.db.Table(schema.Builds) +
			" WHERE rollup_table = " + chdb.String(b.Table) + whole + " GROUP BY service, ts" +
			") GROUP BY service, d" +
			") AS records USING (service, d) WHERE recorded != total ORDER BY d"
		var d proto.ColDateTime
		err = j.db.Do(ctx, ch.Query{
			Body:   incomplete,
			Result: proto.Results{{Name: "d", Data: &d}},
			OnResult: func(ctx context.Context, _ proto.Block) error {
				for i := range d.Rows() {
					days = append(days, d.Row(i))
				}
				return nil
			},
		})
		if err != nil {
			return "", fmt.Errorf("find the days to build hours in: %w", err)
		}
	}
	// The days as time ranges, whatever service they are incomplete for: ranges of ts are what prunes the
	// Check table's day partitions (a condition per service and day would not, and would grow with them).
	cond := " AND (ts < " + chdb.Time(first)
	if end.Before(hi) {
		open, err := j.partialDayIncomplete(ctx, b, day, end, hi, bucketEnd(day, end, loc))
		if err != nil {
			return "", err
		}
		if open {
			cond += " OR ts >= " + chdb.Time(end)
		}
	}
	for i := 0; i < len(days); {
		from, to := days[i], bucketEnd(day, days[i], loc)
		for i++; i < len(days) && days[i].Equal(to); i++ {
			to = bucketEnd(day, days[i], loc)
		}
		cond += " OR (ts >= " + chdb.Time(from) + " AND ts < " + chdb.Time(to) + ")"
	}
	return cond + ")", nil
}

// partialDayIncomplete reports whether the closed hours [day, hi) of the day [day, next) that holds hi
// (today's, mostly) are incomplete for some service. The same sums as completeDays, with the hours from
// hi on (the open one, and any ahead of the clock) taken out of the day's Check total: read from the hour
// Check table, they are a few hours at most, where reading the closed ones would be up to 23.
func (j *Janitor) partialDayIncomplete(ctx context.Context, b, day schema.BuiltRollup, start, hi, next time.Time) (bool, error) {
	notMarker := " WHERE service != " + chdb.String(schema.MarkerService)
	var n proto.ColUInt64
	err := j.db.Do(ctx, ch.Query{
		Body: "SELECT count() AS n FROM (" +
			"SELECT service, sum(t) AS total FROM (" +
			"SELECT service, toInt64(sum(count)) AS t FROM " + j.db.Table(day.Check) + notMarker +
			" AND ts >= " + chdb.Time(start) + " AND ts < " + chdb.Time(next) + " GROUP BY service" +
			" UNION ALL " +
			"SELECT service, -toInt64(sum(count)) AS t FROM " + j.db.Table(b.Check) + notMarker +
			" AND ts >= " + chdb.Time(hi) + " AND ts < " + chdb.Time(next) + " GROUP BY service" +
			") GROUP BY service" +
			") AS checked ANY LEFT JOIN (" +
			"SELECT service, toInt64(sum(rec)) AS recorded FROM (" +
			"SELECT service, ts, argMax(total, version) AS rec FROM " + j.db.Table(schema.Builds) +
			" WHERE rollup_table = " + chdb.String(b.Table) + " AND ts >= " + chdb.Time(start) + " AND ts < " + chdb.Time(hi) +
			" GROUP BY service, ts" +
			") GROUP BY service" +
			") AS records USING service WHERE recorded != total",
		Result: proto.Results{{Name: "n", Data: &n}},
	})
	if err != nil {
		return false, fmt.Errorf("check the hours of the day: %w", err)
	}
	return len(n) == 1 && n[0] > 0, nil
}

// dayRollup is the built day rollup, built from the hour one.
func dayRollup() schema.BuiltRollup {
	for _, b := range schema.Built {
		if b.Table == schema.Day {
			return b
		}
	}
	panic("schema.Built has no " + schema.Day)
}

// buildPairs finds, in [lo, hi), the (service, bucket) pairs of b whose Check total differs from their
// newest record or has none, newest first, at most limit, leaving out the buckets skip excludes (see
// completeDays). One read of the Check table's totals (a few rows per service and bucket) and of the
// records over the window; the batch markers' service is left out.
func (j *Janitor) buildPairs(ctx context.Context, b schema.BuiltRollup, lo, hi time.Time, skip string, limit int) ([]buildPair, error) {
	window := " AND ts >= " + chdb.Time(lo) + " AND ts < " + chdb.Time(hi)
	body := "SELECT service, ts FROM (" +
		"SELECT service, ts, total, recorded, has FROM (" +
		"SELECT service, ts, sum(count) AS total FROM " + j.db.Table(b.Check) +
		" WHERE service != " + chdb.String(schema.MarkerService) + window + skip + " GROUP BY service, ts" +
		") AS checked ANY LEFT JOIN (" +
		"SELECT service, ts, argMax(total, version) AS recorded, toUInt8(1) AS has FROM " + j.db.Table(schema.Builds) +
		" WHERE rollup_table = " + chdb.String(b.Table) + window + " GROUP BY service, ts" +
		") AS records USING (service, ts)" +
		") WHERE has = 0 OR recorded != total ORDER BY ts DESC, service LIMIT " + strconv.Itoa(limit)
	var svc proto.ColStr
	var ts proto.ColDateTime
	var out []buildPair
	err := j.db.Do(ctx, ch.Query{
		Body:   body,
		Result: proto.Results{{Name: "service", Data: &svc}, {Name: "ts", Data: &ts}},
		OnResult: func(ctx context.Context, _ proto.Block) error {
			for i := range svc.Rows() {
				out = append(out, buildPair{service: svc.Row(i), ts: ts.Row(i)})
			}
			return nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("find the buckets to build: %w", err)
	}
	return out, nil
}

// buildGroup is the adjacent buckets of one service that one delta covers, newest first.
type buildGroup struct {
	service string
	buckets []time.Time
}

// groups cuts the pairs into deltas: per service, runs of adjacent hours of at most MaxSpan, in the
// order of their newest bucket (the pairs come newest first).
func (j *Janitor) groups(b schema.BuiltRollup, pairs []buildPair, loc *time.Location) []buildGroup {
	var out []buildGroup
	last := map[string]int{} // service → its group being filled; at most MaxPairs keys
	for _, p := range pairs {
		if i, ok := last[p.service]; ok {
			g := &out[i]
			prev := g.buckets[len(g.buckets)-1]
			if b.Table != schema.Day && len(g.buckets) < j.Builds.maxSpan() && bucketEnd(b, p.ts, loc).Equal(prev) {
				g.buckets = append(g.buckets, p.ts)
				continue
			}
		}
		last[p.service] = len(out)
		out = append(out, buildGroup{service: p.service, buckets: []time.Time{p.ts}})
	}
	return out
}

// bucketEnd is the start of the bucket after the one starting at ts (a day may be 23 or 25 hours long
// in the server's time zone).
func bucketEnd(b schema.BuiltRollup, ts time.Time, loc *time.Location) time.Time {
	if b.Table == schema.Day {
		y, m, d := ts.In(loc).Date()
		return time.Date(y, m, d+1, 0, 0, 0, 0, loc)
	}
	return ts.Add(time.Hour)
}

// buildQueryID is the id every delta of one rollup and service runs under: the server runs one query of
// an id at a time. The service is hashed: query ids are shown and logged, and a service name may hold
// any character.
func buildQueryID(table, service string) string {
	h := fnv.New64a()
	h.Write([]byte(service))
	return fmt.Sprintf("%sbuild-%s-%016x", queryIDPrefix, table, h.Sum64())
}

// buildGroup applies one delta to the group's buckets, then records those whose rollup total equals the
// Check total.
func (j *Janitor) buildGroup(ctx context.Context, b schema.BuiltRollup, g buildGroup, loc *time.Location) (res BuildResult, err error) {
	res.Left = len(g.buckets)
	timeout := j.Builds.timeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	qid := buildQueryID(b.Table, g.service)
	release, err := j.claimBuild(ctx, qid)
	if err != nil {
		return res, err
	}
	defer release()
	from, to := g.buckets[len(g.buckets)-1], bucketEnd(b, g.buckets[0], loc)
	insert := "INSERT INTO " + j.db.Table(b.Table) + " (ts, " + b.Keys() + ", count) " + b.DeltaQuery(j.db.Table, g.service, from, to)
	for attempt := 0; ; attempt++ {
		if err := j.waitIdle(ctx, qid); err != nil {
			return res, err
		}
		err = j.db.DoLimited(ctx, chdb.Limits{MaxExecutionTime: timeout, InsertDistributedSync: true}, ch.Query{
			Body:    insert,
			QueryID: qid,
			OnProgress: func(ctx context.Context, p proto.Progress) error {
				res.RowsRead += p.Rows
				return nil
			},
		})
		var e *ch.Exception
		if errors.As(err, &e) && e.IsCode(proto.ErrQueryWithSameIDIsAlreadyRunning) {
			if attempt == 0 {
				continue // the previous query of the id was ending: waitIdle sees it gone, or says busy
			}
			return res, errBuildBusy
		}
		res.Deltas++
		if err != nil {
			return res, fmt.Errorf("insert the delta: %w", err)
		}
		break
	}
	have, err := j.totals(ctx, b.Table, g.service, from, to)
	if err != nil {
		return res, err
	}
	want, err := j.totals(ctx, b.Check, g.service, from, to)
	if err != nil {
		return res, err
	}
	var rollup, service proto.ColStr
	var ts proto.ColDateTime
	var total, version proto.ColUInt64
	for _, bucket := range g.buckets {
		w := want[bucket.Unix()]
		if w == 0 || have[bucket.Unix()] != w {
			continue // data arrived meanwhile (or was deleted): a later run builds it again
		}
		rollup.Append(b.Table)
		service.Append(g.service)
		ts.Append(bucket)
		total.Append(w)
		version.Append(uint64(time.Now().UnixNano()))
	}
	if total.Rows() == 0 {
		return res, nil
	}
	if err := j.db.Insert(ctx, schema.Builds, proto.Input{{Name: "rollup_table", Data: &rollup}, {Name: "service", Data: &service},
		{Name: "ts", Data: &ts}, {Name: "total", Data: &total}, {Name: "version", Data: &version}}); err != nil {
		return res, fmt.Errorf("record the built buckets: %w", err)
	}
	res.Built, res.Left = total.Rows(), res.Left-total.Rows()
	return res, nil
}

// totals sums count per bucket of one service's rows of table in [from, to), keyed by the bucket's Unix
// time. Negative deltas are wrapped UInt64s: sum wraps them back.
func (j *Janitor) totals(ctx context.Context, table, service string, from, to time.Time) (map[int64]uint64, error) {
	var ts proto.ColDateTime
	var n proto.ColUInt64
	out := map[int64]uint64{} // one key per bucket of the group: at most MaxSpan
	err := j.db.Do(ctx, ch.Query{
		Body: "SELECT ts, toUInt64(sum(count)) AS n FROM " + j.db.Table(table) + " WHERE service = " + chdb.String(service) +
			" AND ts >= " + chdb.Time(from) + " AND ts < " + chdb.Time(to) + " GROUP BY ts",
		Result: proto.Results{{Name: "ts", Data: &ts}, {Name: "n", Data: &n}},
		OnResult: func(ctx context.Context, _ proto.Block) error {
			for i := range n.Rows() {
				out[ts.Row(i).Unix()] += n[i]
			}
			return nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("read the totals of %s: %w", table, err)
	}
	return out, nil
}

// busyWait bounds how long a builder waits for a query of its id to end before it leaves the service to a
// later run. A builder's own previous delta of the service stays listed in system.processes, its id
// taken, for a moment after the client saw it end (measured: 2 of 24 back-to-back deltas of one service
// found it there).
const busyWait = time.Second

// waitIdle waits until no query of id runs on the server, at most busyWait, and fails with errBuildBusy
// after that.
func (j *Janitor) waitIdle(ctx context.Context, id string) error {
	deadline := time.Now().Add(busyWait)
	for pause := 20 * time.Millisecond; ; pause *= 2 {
		running, err := j.queryRunning(ctx, id)
		if err != nil || !running {
			return err
		}
		if time.Now().Add(pause).After(deadline) {
			return errBuildBusy
		}
		sleep(ctx, pause)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// queryRunning reports whether a query of id runs on the server.
func (j *Janitor) queryRunning(ctx context.Context, id string) (bool, error) {
	var n proto.ColUInt64
	err := j.db.Do(ctx, ch.Query{
		Body:   "SELECT count() AS n FROM system.processes WHERE query_id = " + chdb.String(id),
		Result: proto.Results{{Name: "n", Data: &n}},
	})
	if err != nil {
		return false, fmt.Errorf("check running builds: %w", err)
	}
	return len(n) == 1 && n[0] > 0, nil
}

// claimBuild claims the builds under query id qid (one rollup and service) in the NATS key-value bucket,
// when Builds.Claims is set, and returns the function that lets the claim go. It fails with errBuildBusy
// when another builder holds it.
func (j *Janitor) claimBuild(ctx context.Context, qid string) (release func(), err error) {
	if j.Builds.Claims == nil {
		return func() {}, nil
	}
	kv := j.builds.claims
	if kv == nil {
		kv, err = j.Builds.Claims.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: buildClaimBucket,
			Description: "flamestream: which janitor builds which service's rollup", TTL: buildClaimTTL, History: 1})
		if err != nil {
			return nil, fmt.Errorf("open build claims: %w", err)
		}
		j.builds.claims = kv
	}
	return claimKey(ctx, kv, qid, errBuildBusy, "claim build")
}

// serverLocation is the ClickHouse server's time zone, whose days the day rollup follows, asked once.
func (j *Janitor) serverLocation(ctx context.Context) (*time.Location, error) {
	if j.builds.loc != nil {
		return j.builds.loc, nil
	}
	var name proto.ColStr
	err := j.db.Do(ctx, ch.Query{Body: "SELECT timezone() AS tz", Result: proto.Results{{Name: "tz", Data: &name}}})
	if err != nil {
		return nil, fmt.Errorf("read the server's time zone: %w", err)
	}
	if name.Rows() != 1 {
		return nil, fmt.Errorf("read the server's time zone: %d rows", name.Rows())
	}
	loc, err := time.LoadLocation(name.Row(0))
	if err != nil {
		j.log.Warn("unknown ClickHouse time zone, day rollups built by UTC days", "tz", name.Row(0), "err", err)
		loc = time.UTC
	}
	j.builds.loc = loc
	return loc, nil
}
