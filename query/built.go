package query

import (
	"context"
	"fmt"
	"slices"
	"strings"
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
// filtered read, planSelection asks ClickHouse which buckets of the plan's days are not, in one small
// query, and plans those one level finer (see Rollups.Incomplete).

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

// planSelection plans sel on the rollups r (already narrowed for the selection and the read, see
// ForSelection and bucketRollups). A filtered selection whose plan reads an hour or day bucket learns
// which buckets of its days are incomplete (see incompleteBuilt) and is planned again without them; other
// plans cost no query.
func (s *Server) planSelection(ctx context.Context, sel Selection, r Rollups) ([]Segment, error) {
	segs := Plan(sel.From, sel.To, r)
	if !sel.HasFilters() || !slices.ContainsFunc(segs, func(s Segment) bool { return s.Gran == Hour || s.Gran == Day }) {
		return segs, nil
	}
	inc, err := s.incompleteBuilt(ctx, sel.Service, r, sel.From, sel.To)
	if err != nil {
		return nil, err
	}
	if len(inc[0]) == 0 && len(inc[1]) == 0 {
		return segs, nil
	}
	r.Incomplete = inc.has
	return Plan(sel.From, sel.To, r), nil
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
// whole past its edges. It reads the Check totals per bucket and the newest record's total per bucket,
// grouped so that only the buckets where they differ come back; the statements do not grow with anything.
// When the day rollup may be read, a complete day is read whole, so hours matter only in the range's
// partial first and last days and in incomplete days: the first query asks about the days and the hours
// of the partial ones, and only when a day in between is incomplete (late data, a build not done yet) a
// second one asks about the hours from the first such day to the last. The hour Check table holds a row
// per stack and hour: its hours of a week cost more than all the rest (see BenchmarkBuiltCheck). Buckets
// before the rollup's epoch are not asked about, nor those older than the retention horizon of the table
// a plan would read instead (hours before the raw one, days before the hour one): there the rollup is all
// that is left, so it is read.
func (s *Server) incompleteBuilt(ctx context.Context, service string, r Rollups, from, to time.Time) (builtBuckets, error) {
	var out builtBuckets
	day := 24 * time.Hour
	from, to = from.UTC(), to.UTC()
	lo, hi := from.Truncate(day), ceilTo(to, day)
	horizon := [2]time.Time{r.RawSince, r.HourSince}
	// parts returns the parts of a query that read rollup i's Check totals and newest records per bucket in
	// [a, b) where cond holds, as rows (k, b, c, r); none when every bucket there counts as complete.
	parts := func(i int, a, b time.Time, cond string) []string {
		if r.builtSince[i].IsZero() {
			return nil // no epoch: every bucket is complete
		}
		for _, t := range []time.Time{r.builtSince[i], horizon[i]} {
			if t.After(a) {
				a = t
			}
		}
		if !a.Before(b) {
			return nil
		}
		br := builtChecks[i]
		where := " WHERE service = " + chdb.String(service) + " AND ts >= " + chdb.Time(a) + " AND ts < " + chdb.Time(b) + cond
		k := "toUInt8(" + chdb.Uint(uint64(i)) + ") AS k, toUInt32(ts) AS b"
		return []string{
			"SELECT " + k + ", toUInt64(sum(count)) AS c, toUInt64(0) AS r FROM " + s.ch.Table(br.Check) + where + " GROUP BY ts",
			"SELECT " + k + ", toUInt64(0) AS c, toUInt64(argMax(total, version)) AS r FROM " + s.ch.Table(schema.Builds) +
				where + " AND rollup_table = " + chdb.String(br.Table) + " GROUP BY ts",
		}
	}
	if !r.Day || !r.Hour {
		// Without days every hour of the range may be read.
		return out, s.mismatched(ctx, append(parts(1, lo, hi, ""), parts(0, lo, hi, "")...), &out)
	}
	headHours, tailHours := from.After(lo), to.Before(hi)
	var edges []string
	if headHours {
		edges = append(edges, "ts < "+chdb.Time(lo.Add(day)))
	}
	if tailHours {
		edges = append(edges, "ts >= "+chdb.Time(hi.Add(-day)))
	}
	q := parts(1, lo, hi, "")
	if len(edges) > 0 {
		q = append(q, parts(0, lo, hi, " AND ("+strings.Join(edges, " OR ")+")")...)
	}
	if err := s.mismatched(ctx, q, &out); err != nil {
		return out, err
	}
	var a, b time.Time // the incomplete days whose hours were not asked about
	for _, d := range out[1] {
		if headHours && d.Equal(lo) || tailHours && d.Equal(hi.Add(-day)) {
			continue
		}
		if a.IsZero() {
			a = d
		}
		b = d.Add(day)
	}
	if a.IsZero() {
		return out, nil
	}
	var more builtBuckets
	if err := s.mismatched(ctx, parts(0, a, b, ""), &more); err != nil {
		return out, err
	}
	out[0] = append(out[0], more[0]...)
	slices.SortFunc(out[0], time.Time.Compare)
	out[0] = slices.Compact(out[0])
	return out, nil
}

// mismatched runs the parts of incompleteBuilt in one query and adds to out the buckets whose Check total
// and record differ (none without parts), sorted.
func (s *Server) mismatched(ctx context.Context, parts []string, out *builtBuckets) error {
	if len(parts) == 0 {
		return nil
	}
	var k proto.ColUInt8
	var b proto.ColUInt32
	err := s.ch.DoLimited(ctx, s.limits(), ch.Query{
		Body:   "SELECT k, b FROM (" + strings.Join(parts, " UNION ALL ") + ") GROUP BY k, b HAVING sum(c) != sum(r) ORDER BY k, b",
		Result: proto.Results{{Name: "k", Data: &k}, {Name: "b", Data: &b}},
		OnResult: func(ctx context.Context, _ proto.Block) error {
			for i := range k {
				if k[i] > 1 {
					return fmt.Errorf("built rollup %d", k[i])
				}
				out[k[i]] = append(out[k[i]], time.Unix(int64(b[i]), 0).UTC())
			}
			return nil
		},
	})
	if err != nil {
		return fmt.Errorf("built rollups' completeness: %w", err)
	}
	return nil
}
