package query

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/schema"
)

// The per-dimension hour and day rollups that filtered selections read (samples_1h, samples_1d) are built
// by the janitor from closed buckets (see schema.Built), so a bucket of theirs may be short: not built
// yet, built in part by a builder that failed, or reached by a late profile after it was built. A bucket
// may be read only when it is complete: it starts before the rollup's epoch (schema.BuiltEpoch: the views
// wrote it), or the newest record of it in schema.Builds has the total that its Check table, view-fed and
// always complete, holds now (a bucket without samples and without a record is complete too). Before a
// filtered read, checkedReads and planChecked ask ClickHouse which buckets of the plan's days are not (one
// small query, two when a day before the last one is incomplete; see incompleteBuilt), beside a read of
// the plan as if they all were, and plan the incomplete ones one level finer (see Rollups.Incomplete),
// reading again what that changes.

// builtEpochs reads the epochs of the built rollups, hour then day: the smallest since recorded for each,
// zero when none is (every bucket of that rollup then counts as complete: a database has none only while
// the schema step that drops the views runs).
func (s *Server) builtEpochs(ctx context.Context) ([2]time.Time, error) {
	var out [2]time.Time
	var name proto.ColStr
	var since proto.ColUInt32
	err := s.ch.Do(ctx, ch.Query{
		Body: "SELECT name, toUInt32(min(since)) AS since FROM " + s.ch.Table(schema.Epochs) +
			" WHERE name IN (" + chdb.Strings([]string{schema.BuiltEpoch(schema.Hour), schema.BuiltEpoch(schema.Day)}) + ") GROUP BY name",
		Result: proto.Results{{Name: "name", Data: &name}, {Name: "since", Data: &since}},
	})
	if err != nil {
		return out, fmt.Errorf("read the built rollups' epochs: %w", err)
	}
	for i := 0; i < name.Rows(); i++ {
		switch name.Row(i) {
		case schema.BuiltEpoch(schema.Hour):
			out[0] = time.Unix(int64(since[i]), 0).UTC()
		case schema.BuiltEpoch(schema.Day):
			out[1] = time.Unix(int64(since[i]), 0).UTC()
		}
	}
	if out[0].IsZero() || out[1].IsZero() {
		s.log.Warn("a built rollup has no epoch: its buckets all count as complete", "hour", out[0], "day", out[1])
	}
	return out, nil
}

// planChecked plans sel on the rollups r (already narrowed for the selection and the read, see
// ForSelection and bucketRollups) and calls read with the plan's segments. When a filtered selection's
// plan reads a built rollup's hour or day bucket, the completeness check (see incompleteBuilt) runs beside
// that read, as in checkedReads, and when it finds incomplete buckets that change the plan, read is called
// again with the new plan: what it reads then replaces what it read first. Other plans cost no query. The
// reads by bucket (bucketSums, bucketTotals) use it; the check and the first read overlap.
func (s *Server) planChecked(ctx context.Context, sel Selection, r Rollups, read func([]Segment) error) error {
	segs := Plan(sel.From, sel.To, r)
	if !readsBuilt(sel, segs) {
		return read(segs)
	}
	var inc builtBuckets
	var cerr error
	var wg sync.WaitGroup
	wg.Go(func() { inc, cerr = s.incompleteBuilt(ctx, sel.Service, r, sel.From, sel.To) })
	err := read(segs)
	wg.Wait()
	if err != nil {
		return err
	}
	if cerr != nil {
		return cerr
	}
	if len(inc[0])+len(inc[1]) == 0 {
		return nil
	}
	r.Incomplete = inc.has
	if again := Plan(sel.From, sel.To, r); !sameSegments(again, segs) {
		return read(again)
	}
	return nil
}

// readsBuilt reports whether a plan of sel reads a built rollup: a filtered selection's hour or day segment.
func readsBuilt(sel Selection, segs []Segment) bool {
	return sel.HasFilters() && slices.ContainsFunc(segs, func(s Segment) bool { return s.Gran == Hour || s.Gran == Day })
}

// checkedReads plans the selections of sums on the rollups as of now and reads their segments (readCached,
// readFresh). A filtered selection whose plan reads a built rollup's bucket needs the completeness check
// (see incompleteBuilt); rather than wait for it, its plan is read meanwhile as if every bucket were
// complete, which they are but for the last hour or so before the janitor's next build, and the check
// runs beside the read. When the check finds an incomplete bucket, the selection is planned again and
// only the segments that the first plan did not read are read. A read of an incomplete bucket may have
// gone into the segment cache: the cache keeps the sums of a segment's query for the parts it read, which
// is what that query returns for them, and a plan reads the bucket only once complete.
func (s *Server) checkedReads(ctx context.Context, sels []Selection) ([]segmentRead, error) {
	r, err := s.rollupsFor(ctx)
	if err != nil {
		return nil, err
	}
	r = s.horizons(r, time.Now())
	type check struct {
		r    Rollups
		segs []Segment
		inc  builtBuckets
		err  error
	}
	checks := make([]*check, len(sels)) // at most two: a comparison and its baseline
	bounds := make([][2]int, len(sels)) // each side's reads
	var reads []segmentRead
	var wg sync.WaitGroup
	for i, sel := range sels {
		ru := r.ForSelection(sel)
		segs := Plan(sel.From, sel.To, ru)
		n := len(reads)
		reads = append(reads, s.segmentReads(side(i), sel, segs, r)...)
		bounds[i] = [2]int{n, len(reads)}
		if readsBuilt(sel, segs) {
			c := &check{r: ru, segs: segs}
			checks[i] = c
			wg.Go(func() { c.inc, c.err = s.incompleteBuilt(ctx, sel.Service, ru, sel.From, sel.To) })
		}
	}
	err = s.readCached(ctx, reads)
	if err == nil {
		err = s.readFresh(ctx, reads)
	}
	wg.Wait()
	if err != nil {
		return nil, err
	}
	replanned := false
	var out []segmentRead
	var todo []int // the reads of out still to read
	for i, sel := range sels {
		mine := reads[bounds[i][0]:bounds[i][1]]
		if c := checks[i]; c != nil {
			if c.err != nil {
				return nil, c.err
			}
			if len(c.inc[0])+len(c.inc[1]) > 0 {
				c.r.Incomplete = c.inc.has
				if segs := Plan(sel.From, sel.To, c.r); !sameSegments(segs, c.segs) {
					// The new plan's segments, those of the first plan kept with what was read.
					replanned = true
					old := mine
					mine = nil
					for _, rd := range s.segmentReads(side(i), sel, segs, r) {
						if k := slices.IndexFunc(old, func(o segmentRead) bool { return o.from == rd.from }); k >= 0 {
							rd = old[k]
						} else {
							todo = append(todo, len(out)+len(mine))
						}
						mine = append(mine, rd)
					}
				}
			}
		}
		out = append(out, mine...)
	}
	if !replanned {
		return reads, nil
	}
	more := make([]segmentRead, len(todo))
	for j, k := range todo {
		more[j] = out[k]
	}
	if err := s.readCached(ctx, more); err != nil {
		return nil, err
	}
	if err := s.readFresh(ctx, more); err != nil {
		return nil, err
	}
	for j, k := range todo {
		out[k] = more[j]
	}
	return out, nil
}

// sameSegments reports whether two plans are the same segments.
func sameSegments(a, b []Segment) bool {
	return slices.EqualFunc(a, b, func(x, y Segment) bool {
		return x.Gran == y.Gran && x.Sign == y.Sign && x.From.Equal(y.From) && x.To.Equal(y.To)
	})
}

// builtBuckets are the starts of buckets of the built rollups, hour then day, each sorted.
type builtBuckets [2][]time.Time

// has reports whether the bucket of g (Hour or Day) that starts at b is in the set.
func (bb builtBuckets) has(g Granularity, b time.Time) bool {
	i := 0
	if g == Day {
		i = 1
	}
	_, ok := slices.BinarySearchFunc(bb[i], b, time.Time.Compare)
	return ok
}

// builtChecks are, per built rollup (hour then day), the Check table whose total per service and bucket a
// complete bucket's record holds.
var builtChecks = func() (out [2]schema.BuiltRollup) {
	for _, b := range schema.Built {
		switch b.Table {
		case schema.Hour:
			out[0] = b
		case schema.Day:
			out[1] = b
		}
	}
	return out
}()

// incompleteBuilt returns the incomplete hour and day buckets of service's built rollups in the UTC days
// that hold [from, to): every bucket that a plan of the range may read lies in them, including those read
// whole past its edges. It compares Check totals with the newest records' totals, per bucket, read by
// ClickHouse as a few rows per day (and per hour where asked); the statements do not grow with anything.
//
// The hour Check table holds a row per stack and hour, so its hours of a week cost more than all the rest:
// hours are asked about only in the days where they may be incomplete, found from the day Check table
// (24 times smaller) as the janitor's builder does: a record is its hour's Check total when it was written
// and totals only grow, so each record is at most its hour's total now, and the records of a day's hours
// sum to the day's Check total only if every hour of the day is complete. The first query reads, per
// bucket, the day Check totals and the records of both rollups, and the hour Check totals of the range's
// last day when that day is not settled (today's, or closed just now: its hours would need asking anyway);
// a second query reads the hour Check totals of the other days whose hours' records fall short, which
// only late data or a build not done yet leaves. Without UTC days every hour of the range is asked about
// in one query.
//
// Buckets before the rollup's epoch are not asked about, nor those older than the retention horizon of the
// table a plan would read instead (hours before the raw one, days before the hour one): there the rollup is
// all that is left, so it is read.
func (s *Server) incompleteBuilt(ctx context.Context, service string, r Rollups, from, to time.Time) (builtBuckets, error) {
	var out builtBuckets
	day := 24 * time.Hour
	from, to = from.UTC(), to.UTC()
	lo, hi := from.Truncate(day), ceilTo(to, day)
	// start is where rollup i's buckets start to need a record in [lo, hi): zero when none does.
	start := func(i int) time.Time {
		if r.builtSince[i].IsZero() {
			return time.Time{} // no epoch: every bucket is complete
		}
		a := lo
		for _, t := range []time.Time{r.builtSince[i], [2]time.Time{r.RawSince, r.HourSince}[i]} {
			if t.After(a) {
				a = t
			}
		}
		a = ceilTo(a, [2]time.Duration{time.Hour, day}[i]) // a bucket that starts before the epoch is complete
		if !a.Before(hi) {
			return time.Time{}
		}
		return a
	}
	hours, days := start(0), start(1)
	if !r.utcDays {
		days = time.Time{} // the planner reads no day
	}
	first := days // of the records and day totals read
	if !hours.IsZero() && (first.IsZero() || hours.Before(first)) {
		first = hours
	}
	if first.IsZero() {
		return out, nil
	}
	first = first.Truncate(day)
	svc := " WHERE service = " + chdb.String(service)
	span := func(a, b time.Time) string { return " AND ts >= " + chdb.Time(a) + " AND ts < " + chdb.Time(b) }
	// The parts of a query, rows (k, b, v) summed per (k, b) by totals.
	checks := func(k uint8, table, where string) string {
		return "SELECT toUInt8(" + chdb.Uint(uint64(k)) + ") AS k, toUInt32(ts) AS b, toUInt64(sum(count)) AS v FROM " +
			s.ch.Table(table) + svc + where + " GROUP BY ts"
	}
	q := []string{"SELECT toUInt8(if(rollup_table = " + chdb.String(schema.Day) + ", " + chdb.Uint(dayRecord) + ", " + chdb.Uint(hourRecord) +
		")) AS k, toUInt32(ts) AS b, toUInt64(argMax(total, version)) AS v FROM " + s.ch.Table(schema.Builds) + svc + span(first, hi) +
		" AND rollup_table IN (" + chdb.Strings([]string{schema.Hour, schema.Day}) + ") GROUP BY rollup_table, ts"}
	var asked [][2]time.Time // the spans of hours whose Check totals are read
	if r.utcDays {
		q = append(q, checks(dayCheck, schema.DayAll, span(first, hi)))
		if last := hi.Add(-day); !hours.IsZero() && (r.Settled.IsZero() || hi.After(r.Settled)) {
			if hours.After(last) {
				last = hours
			}
			asked = append(asked, [2]time.Time{last, hi})
		}
	} else if !hours.IsZero() {
		asked = append(asked, [2]time.Time{hours, hi})
	}
	if len(asked) > 0 {
		q = append(q, checks(hourCheck, schema.HourAll, span(asked[0][0], asked[0][1])))
	}
	t, err := s.totals(ctx, q)
	if err != nil {
		return out, err
	}
	if !days.IsZero() {
		for d := days; d.Before(hi); d = d.Add(day) {
			if b := uint32(d.Unix()); t[dayCheck][b] != t[dayRecord][b] {
				out[1] = append(out[1], d)
			}
		}
	}
	if r.utcDays && !hours.IsZero() {
		// The days before the ones asked about whose hours' records fall short of the day's total, as
		// ranges of ts, which prune the Check table's partitions: at most 8, then one from the first to
		// the last, so that the statement stays small.
		end := hi
		if len(asked) > 0 {
			end = asked[0][0]
		}
		recorded := map[uint32]uint64{} // per day: at most the range's days
		for b, v := range t[hourRecord] {
			recorded[b-b%86400] += v
		}
		var more [][2]time.Time
		for d := hours.Truncate(day); d.Before(end); d = d.Add(day) {
			if b := uint32(d.Unix()); t[dayCheck][b] == recorded[b] {
				continue
			}
			a, e := d, d.Add(day)
			if hours.After(a) {
				a = hours
			}
			if end.Before(e) {
				e = end
			}
			if n := len(more); n > 0 && more[n-1][1].Equal(a) {
				more[n-1][1] = e
			} else {
				more = append(more, [2]time.Time{a, e})
			}
		}
		if len(more) > 8 {
			more = [][2]time.Time{{more[0][0], more[len(more)-1][1]}}
		}
		if len(more) > 0 {
			var or []string
			for _, sp := range more {
				or = append(or, "(ts >= "+chdb.Time(sp[0])+" AND ts < "+chdb.Time(sp[1])+")")
			}
			t2, err := s.totals(ctx, []string{checks(hourCheck, schema.HourAll, " AND ("+strings.Join(or, " OR ")+")")})
			if err != nil {
				return out, err
			}
			for b, v := range t2[hourCheck] {
				if t[hourCheck] == nil {
					t[hourCheck] = map[uint32]uint64{}
				}
				t[hourCheck][b] = v
			}
			asked = append(asked, more...)
		}
	}
	for _, sp := range asked {
		for h := sp[0]; h.Before(sp[1]); h = h.Add(time.Hour) {
			if b := uint32(h.Unix()); t[hourCheck][b] != t[hourRecord][b] {
				out[0] = append(out[0], h)
			}
		}
	}
	slices.SortFunc(out[0], time.Time.Compare)
	return out, nil
}

// The kinds of totals incompleteBuilt reads.
const (
	hourCheck = iota
	hourRecord
	dayCheck
	dayRecord
)

// totals are the sums of incompleteBuilt's rows, by kind and bucket (unix seconds).
type totals map[uint8]map[uint32]uint64

// totals runs the parts of incompleteBuilt (rows k, b, v) in one query and sums v per kind and bucket.
// It returns a few rows per day and asked hour of one range.
func (s *Server) totals(ctx context.Context, parts []string) (totals, error) {
	out := totals{}
	var k proto.ColUInt8
	var b proto.ColUInt32
	var v proto.ColUInt64
	err := s.ch.DoLimited(ctx, s.limits(), ch.Query{
		Body:   "SELECT k, b, sum(v) AS v FROM (" + strings.Join(parts, " UNION ALL ") + ") GROUP BY k, b",
		Result: proto.Results{{Name: "k", Data: &k}, {Name: "b", Data: &b}, {Name: "v", Data: &v}},
		OnResult: func(ctx context.Context, _ proto.Block) error {
			for i := range k {
				if out[k[i]] == nil {
					out[k[i]] = map[uint32]uint64{}
				}
				out[k[i]][b[i]] += v[i]
			}
			return nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("built rollups' completeness: %w", err)
	}
	return out, nil
}
