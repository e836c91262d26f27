package query

import (
	"strconv"
	"strings"
	"time"

	"github.com/flamestream/flamestream/internal/schema"
)

// Granularity is the time resolution of a table a segment is read from.
type Granularity int

// The granularities of the tables a flame graph can be read from.
const (
	// Raw is the samples table: one row per profile and stack, any timestamp.
	Raw Granularity = iota
	// Hour is samples_1h (filtered) or samples_1h_all (unfiltered): rows at whole hours.
	Hour
	// Day is samples_1d (filtered) or samples_1d_all (unfiltered): rows at whole UTC days.
	Day
	// Minute is samples_1m_all: service-wide rows at whole minutes, for unfiltered selections only.
	Minute
)

func (g Granularity) String() string {
	return [...]string{"raw", "hour", "day", "minute"}[g]
}

// Segment is a half-open time range [From, To) read from one table, whose sums are added to the result
// (Sign +1) or subtracted from it (Sign -1; see Rollups.Settled).
type Segment struct {
	Gran     Granularity
	From, To time.Time
	Sign     int
}

// Table returns the table that holds the segment's rows: the service-wide rollups serve unfiltered
// selections, the per-dimension ones filtered selections.
func (s Segment) Table(filtered bool) string {
	switch s.Gran {
	case Hour:
		if filtered {
			return schema.Hour
		}
		return schema.HourAll
	case Day:
		if filtered {
			return schema.Day
		}
		return schema.DayAll
	case Minute:
		// There is no per-dimension minute rollup; the raw rows of the same range give the same sums.
		if !filtered {
			return schema.MinuteRollup
		}
	}
	return schema.Samples
}

// Rollups says which rollup granularities the planner may use. The rollups bucket with the ClickHouse
// server's time zone (toStartOfHour, toStartOfDay): on a UTC server both are aligned with UTC; on a server
// in another zone the day buckets (and the hour buckets of zones with a fractional offset) are not, and
// using them would not be exact.
//
// MinuteSince is the epoch of the minute rollup (see schema.Epochs): it holds every sample from that
// time on and none or only some before, so only whole minutes at or after it are read from it. Zero means
// no minute rollup; it serves unfiltered selections only (see ForSelection).
//
// RawSince and HourSince are the retention horizons: the raw samples (and the minute rollup) and the hour
// rollups may have been dropped before them (see indexer.Retention); zero means nothing is dropped. See
// Widen for what a range that reaches past them gives.
//
// Settled is when the rollup buckets that may be read past an edge of the range end at the latest: a bucket
// that ends by then gets no new rows (but late ones), so its sums can stand for a whole bucket and the part
// of it outside the range be subtracted, read from finer tables. Zero means no subtraction.
//
// Incomplete, when set, names the hour and day buckets that may not be read: the per-dimension rollups
// that filtered selections read are built by the janitor, and a bucket it has not completed yet (or that a
// late profile reached after it was built) does not hold all its samples (see query/built.go). The planner
// reads such a day as hours and such an hour from finer tables, and never reads one whole past an edge of
// the range. Nil means every bucket may be read (unfiltered selections, whose rollups are view-fed).
type Rollups struct {
	Hour, Day   bool
	MinuteSince time.Time
	RawSince    time.Time
	HourSince   time.Time
	Settled     time.Time
	Incomplete  func(g Granularity, bucket time.Time) bool

	// builtSince are the epochs of the built rollups (Hour, then Day; see schema.BuiltEpoch): buckets
	// before them were written by views and are complete. Zero when none is recorded.
	builtSince [2]time.Time
	// utcDays is Day as the server's time zone allows it (a read may turn Day off for itself): the day
	// buckets are UTC days (see incompleteBuilt).
	utcDays bool
}

// Widen returns the range that a plan of [from, to) can answer exactly. An edge at or after RawSince stays
// where it is. An edge before it has no raw rows to stitch with, so it moves out to the start (from) or end
// (to) of its hour when the hour rollups are kept there, or else of its UTC day: the result then holds all
// the samples of whole hours or days, never a part of one. Without rollups edges do not move.
func (r Rollups) Widen(from, to time.Time) (time.Time, time.Time) {
	if r.RawSince.IsZero() {
		return from, to
	}
	unit := func(t time.Time) time.Duration {
		switch {
		case r.Hour && (r.HourSince.IsZero() || !t.Truncate(time.Hour).Before(r.HourSince)):
			return time.Hour
		case r.Day:
			return 24 * time.Hour
		case r.Hour:
			return time.Hour
		}
		return 0
	}
	from, to = from.UTC(), to.UTC()
	if from.Before(r.RawSince) {
		if u := unit(from); u > 0 {
			from = from.Truncate(u)
		}
	}
	if to.Before(r.RawSince) {
		if u := unit(to); u > 0 {
			to = ceilTo(to, u)
		}
	}
	return from, to
}

// ForSelection returns the rollups usable for a selection: filtered selections have no minute rollup.
func (r Rollups) ForSelection(sel Selection) Rollups {
	if sel.HasFilters() {
		r.MinuteSince = time.Time{}
	}
	return r
}

// Plan splits [from, to) into segments whose signed sum is exactly the range, reading as few rows as
// possible: whole UTC days from the day rollups, whole hours from the hour rollups, whole minutes at or after
// the minute rollup's epoch from the minute rollup, and the rest (sub-minute edges, minutes before the epoch)
// from the raw samples. Rows in a rollup carry the start of their bucket, so a bucket is read whole: one that
// lies inside the range is added; one that holds an edge of the range is either left to finer tables, or,
// when it is settled (see Rollups.Settled) and that reads fewer rows, added whole while the part of it
// outside the range is subtracted, planned the same way one level finer. A range that starts a second after
// midnight thus reads one day and subtracts one second of raw rows instead of reading 23 hours, 59 minutes
// and 59 seconds. An hour or day bucket that Rollups.Incomplete names is planned one level finer, and never
// read whole past an edge. Segments are never empty; without subtraction they are in time order.
func Plan(from, to time.Time, r Rollups) []Segment {
	from, to = from.UTC(), to.UTC()
	if !from.Before(to) {
		return nil
	}
	p := planner{r: r}
	if !r.MinuteSince.IsZero() {
		p.minuteSince = ceilTo(r.MinuteSince.UTC(), time.Minute)
	}
	segs := p.cover(from, to, levelDay, 1).segs
	// Join neighbours read from the same table with the same sign.
	out := segs[:0]
	for _, s := range segs {
		if n := len(out); n > 0 && out[n-1].Gran == s.Gran && out[n-1].Sign == s.Sign && out[n-1].To.Equal(s.From) {
			out[n-1].To = s.To
			continue
		}
		out = append(out, s)
	}
	return out
}

// The levels a planner descends through, coarsest first.
const (
	levelDay = iota
	levelHour
	levelMinute
	levelRaw
)

var levelGran = [...]Granularity{Day, Hour, Minute, Raw}

var levelUnit = [...]time.Duration{24 * time.Hour, time.Hour, time.Minute, 0}

// rawSecondCost is what one second of raw rows costs next to one rollup bucket (which holds about a
// service's distinct stacks once): an agent profile every minute per host makes a raw minute cost about two
// buckets on a fleet of a few hundred hosts.
const rawSecondCost = 1.0 / 30

type planner struct {
	r           Rollups
	minuteSince time.Time // first whole minute of the minute rollup, zero without it
}

// plan is a list of segments and what reading them costs.
type plan struct {
	segs []Segment
	cost float64
}

func (x plan) then(y plan) plan {
	return plan{append(x.segs[:len(x.segs):len(x.segs)], y.segs...), x.cost + y.cost}
}

func (p *planner) usable(level int) bool {
	switch level {
	case levelDay:
		return p.r.Day && p.r.Hour
	case levelHour:
		return p.r.Hour
	case levelMinute:
		return !p.minuteSince.IsZero()
	}
	return true
}

// bucket is the segment of the whole buckets [a, b) of a level.
func (p *planner) bucket(level int, a, b time.Time, sign int) plan {
	return plan{[]Segment{{levelGran[level], a, b, sign}}, float64(b.Sub(a) / levelUnit[level])}
}

// settled reports whether the bucket [a, b) of a level may be read whole past an edge of a range.
func (p *planner) settled(level int, a, b time.Time) bool {
	if p.r.Settled.IsZero() || b.After(p.r.Settled) || !p.complete(level, a) {
		return false
	}
	return level != levelMinute || !a.Before(p.minuteSince)
}

// complete reports whether the bucket of a level that starts at a may be read (see Rollups.Incomplete).
func (p *planner) complete(level int, a time.Time) bool {
	if p.r.Incomplete == nil || (level != levelDay && level != levelHour) {
		return true
	}
	return !p.r.Incomplete(levelGran[level], a)
}

// whole plans the whole buckets [a, b) of a level: runs of complete buckets from the level's table, each
// incomplete bucket from finer tables.
func (p *planner) whole(level int, a, b time.Time, sign int) plan {
	if p.r.Incomplete == nil || (level != levelDay && level != levelHour) {
		return p.bucket(level, a, b, sign)
	}
	u := levelUnit[level]
	var out plan
	run := a // start of the current run of complete buckets
	for t := a; t.Before(b); t = t.Add(u) {
		if p.complete(level, t) {
			continue
		}
		if run.Before(t) {
			out = out.then(p.bucket(level, run, t, sign))
		}
		out = out.then(p.cover(t, t.Add(u), level+1, sign))
		run = t.Add(u)
	}
	if run.Before(b) {
		out = out.then(p.bucket(level, run, b, sign))
	}
	return out
}

// cover plans [a, b) from the given level down, with the given sign.
func (p *planner) cover(a, b time.Time, level, sign int) plan {
	if !a.Before(b) {
		return plan{}
	}
	if level == levelRaw {
		return plan{[]Segment{{Raw, a, b, sign}}, b.Sub(a).Seconds() * rawSecondCost}
	}
	if !p.usable(level) {
		return p.cover(a, b, level+1, sign)
	}
	if level == levelMinute {
		if !b.After(p.minuteSince) {
			return p.cover(a, b, levelRaw, sign)
		}
		if a.Before(p.minuteSince) { // no minute rollup before its epoch
			return p.cover(a, p.minuteSince, levelRaw, sign).then(p.cover(p.minuteSince, b, levelMinute, sign))
		}
	}
	u := levelUnit[level]
	lo, hi := ceilTo(a, u), b.Truncate(u)
	if lo.After(hi) {
		// [a, b) lies inside the bucket [hi, lo): finer tables, or the bucket minus what is outside.
		best := p.cover(a, b, level+1, sign)
		if p.settled(level, hi, lo) {
			alt := p.cover(hi, a, level+1, -sign).then(p.bucket(level, hi, lo, sign)).then(p.cover(b, lo, level+1, -sign))
			if alt.cost < best.cost {
				best = alt
			}
		}
		return best
	}
	head := p.cover(a, lo, level+1, sign)
	if a.Before(lo) && p.settled(level, lo.Add(-u), lo) {
		if alt := p.cover(lo.Add(-u), a, level+1, -sign).then(p.bucket(level, lo.Add(-u), lo, sign)); alt.cost < head.cost {
			head = alt
		}
	}
	tail := p.cover(hi, b, level+1, sign)
	if hi.Before(b) && p.settled(level, hi, hi.Add(u)) {
		if alt := p.bucket(level, hi, hi.Add(u), sign).then(p.cover(b, hi.Add(u), level+1, -sign)); alt.cost < tail.cost {
			tail = alt
		}
	}
	out := head
	if lo.Before(hi) {
		out = out.then(p.whole(level, lo, hi, sign))
	}
	return out.then(tail)
}

// ceilTo rounds t up to a multiple of d since the Unix epoch (UTC days and hours for d = 24h, 1h).
func ceilTo(t time.Time, d time.Duration) time.Time {
	f := t.Truncate(d)
	if f.Equal(t) {
		return t
	}
	return f.Add(d)
}

// segmentFrom is the FROM, PREWHERE and WHERE clauses of one segment of a selection, which name what it
// reads: its table, service, filters and time range.
func (s *Server) segmentFrom(sel Selection, seg Segment) string {
	return " FROM " + s.ch.Table(seg.Table(sel.HasFilters())) + sel.Clauses("ts", seg.From, seg.To)
}

// segmentsSQL is one query returning, for each segment, its index (seg) and per stack the sum of counts
// (c) of its selection.
func (s *Server) segmentsSQL(froms []string) string {
	parts := make([]string, len(froms))
	for i, from := range froms {
		parts[i] = "SELECT toUInt32(" + strconv.Itoa(i) + ") AS seg, stack, toInt64(sum(count)) AS c" + from + " GROUP BY stack"
	}
	return strings.Join(parts, " UNION ALL ")
}

// minuteSegments splits [from, to) into the raw head and tail and the whole minutes in between, which
// totals_1m serves. It returns the raw ranges and the minute range (possibly empty).
func minuteSegments(from, to time.Time) (raw [][2]time.Time, m0, m1 time.Time) {
	m0, m1 = ceilTo(from, time.Minute), to.Truncate(time.Minute)
	if !m0.Before(m1) {
		return [][2]time.Time{{from, to}}, m0, m0
	}
	if from.Before(m0) {
		raw = append(raw, [2]time.Time{from, m0})
	}
	if m1.Before(to) {
		raw = append(raw, [2]time.Time{m1, to})
	}
	return raw, m0, m1
}

// PastRaw splits off the part of [from, to) older than the raw retention, which the minute totals and the
// raw samples no longer hold: it returns the rollup segments that read it, from the hour rollups within the
// hour retention and from the day rollups before, and where the rest of the range starts. The range must
// have been widened (see Widen), so that the split part is made of whole hours and days. Without a raw
// horizon or rollups there is nothing to split off.
func (r Rollups) PastRaw(from, to time.Time) (segs []Segment, rest time.Time) {
	if r.RawSince.IsZero() || !r.Hour || !from.Before(r.RawSince) {
		return nil, from
	}
	split := r.RawSince
	if to.Before(split) {
		split = to
	}
	hourFrom := from
	if r.Day && !r.HourSince.IsZero() && hourFrom.Before(r.HourSince) {
		hourFrom = r.HourSince
		if split.Before(hourFrom) {
			hourFrom = split
		}
		segs = append(segs, Segment{Day, from, hourFrom, 1})
	}
	if hourFrom.Before(split) {
		segs = append(segs, Segment{Hour, hourFrom, split, 1})
	}
	return segs, split
}

// totalsSQL selects cols (which may use ts and the dimension columns) and sum(count) AS c from the
// selection's samples, reading whole minutes from totals_1m, the unaligned edges from samples and the part
// past the raw retention from the per-dimension hour and day rollups (see Rollups.PastRaw), grouped by
// groupBy; the caller re-aggregates rows that come from several parts.
func (s *Server) totalsSQL(sel Selection, r Rollups, cols, groupBy string) string {
	old, rest := r.PastRaw(sel.From, sel.To)
	var parts []string
	q := func(table string, a, b time.Time) string {
		return "SELECT " + cols + ", toUInt64(sum(count)) AS c FROM " + s.ch.Table(table) +
			sel.Clauses("ts", a, b) + " GROUP BY " + groupBy
	}
	for _, seg := range old {
		parts = append(parts, q(seg.Table(true), seg.From, seg.To))
	}
	if rest.Before(sel.To) {
		raw, m0, m1 := minuteSegments(rest, sel.To)
		if m0.Before(m1) {
			parts = append(parts, q(schema.Totals1m, m0, m1))
		}
		for _, r := range raw {
			parts = append(parts, q(schema.Samples, r[0], r[1]))
		}
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return "SELECT " + groupBy + ", toUInt64(sum(c)) AS c FROM (" + strings.Join(parts, " UNION ALL ") + ") GROUP BY " + groupBy
}
