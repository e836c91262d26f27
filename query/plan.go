package query

import (
	"strings"
	"time"
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

// Segment is a half-open time range [From, To) read from one table.
type Segment struct {
	Gran     Granularity
	From, To time.Time
}

// Table returns the table that holds the segment's rows: the service-wide rollups serve unfiltered
// selections, the per-dimension ones filtered selections.
func (s Segment) Table(filtered bool) string {
	switch s.Gran {
	case Hour:
		if filtered {
			return "samples_1h"
		}
		return "samples_1h_all"
	case Day:
		if filtered {
			return "samples_1d"
		}
		return "samples_1d_all"
	case Minute:
		// There is no per-dimension minute rollup; the raw rows of the same range give the same sums.
		if !filtered {
			return "samples_1m_all"
		}
	}
	return "samples"
}

// Rollups says which rollup granularities the planner may use. The rollups bucket with the ClickHouse
// server's time zone (toStartOfHour, toStartOfDay): on a UTC server both are aligned with UTC; on a server
// in another zone the day buckets (and the hour buckets of zones with a fractional offset) are not, and
// using them would not be exact.
//
// MinuteSince is the epoch of the minute rollup (see indexer.EpochsTable): it holds every sample from that
// time on and none or only some before, so only whole minutes at or after it are read from it. Zero means
// no minute rollup; it serves unfiltered selections only (see ForSelection).
//
// RawSince and HourSince are the retention horizons: the raw samples (and the minute rollup) and the hour
// rollups may have been dropped before them (see indexer.Retention); zero means nothing is dropped. See
// Widen for what a range that reaches past them gives.
type Rollups struct {
	Hour, Day   bool
	MinuteSince time.Time
	RawSince    time.Time
	HourSince   time.Time
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

// Plan splits [from, to) into segments whose union is exactly the range, reading as few rows as possible:
// whole UTC days from the day rollups, whole hours from the hour rollups, whole minutes at or after the
// minute rollup's epoch from the minute rollup, and the rest (sub-minute edges, minutes before the epoch)
// from the raw samples. Segments are in time order and never empty. Rows in a rollup carry the start of
// their bucket, so a bucket is read only when it lies entirely inside the range: that is what makes the
// stitched result equal to the raw one.
func Plan(from, to time.Time, r Rollups) []Segment {
	from, to = from.UTC(), to.UTC()
	if !from.Before(to) {
		return nil
	}
	var out []Segment
	add := func(g Granularity, a, b time.Time) {
		if !a.Before(b) {
			return
		}
		if g == Raw && !r.MinuteSince.IsZero() {
			// Whole minutes inside [a, b) at or after the epoch; raw before and after them.
			m0 := ceilTo(a, time.Minute)
			if since := ceilTo(r.MinuteSince.UTC(), time.Minute); m0.Before(since) {
				m0 = since
			}
			if m1 := b.Truncate(time.Minute); m0.Before(m1) {
				if a.Before(m0) {
					out = append(out, Segment{Raw, a, m0})
				}
				out = append(out, Segment{Minute, m0, m1})
				if m1.Before(b) {
					out = append(out, Segment{Raw, m1, b})
				}
				return
			}
		}
		out = append(out, Segment{g, a, b})
	}
	if !r.Hour {
		add(Raw, from, to)
		return out
	}
	h0, h1 := ceilTo(from, time.Hour), to.Truncate(time.Hour)
	if !h0.Before(h1) {
		add(Raw, from, to)
		return out
	}
	add(Raw, from, h0)
	d0, d1 := ceilTo(h0, 24*time.Hour), h1.Truncate(24*time.Hour)
	if r.Day && d0.Before(d1) {
		add(Hour, h0, d0)
		add(Day, d0, d1)
		add(Hour, d1, h1)
	} else {
		add(Hour, h0, h1)
	}
	add(Raw, h1, to)
	return out
}

// ceilTo rounds t up to a multiple of d since the Unix epoch (UTC days and hours for d = 24h, 1h).
func ceilTo(t time.Time, d time.Duration) time.Time {
	f := t.Truncate(d)
	if f.Equal(t) {
		return t
	}
	return f.Add(d)
}

// segmentSQL is the SELECT of one segment: per stack, the sum of counts of the selection in the segment.
// side is the list of extra constant columns (for a diff) and the count column's name.
func (s *Server) segmentSQL(sel Selection, seg Segment, cols string) string {
	return "SELECT stack, " + cols + " FROM " + s.ch.Table(seg.Table(sel.HasFilters())) +
		sel.Clauses("ts", seg.From, seg.To) + " GROUP BY stack"
}

// stackCountsSQL is one query summing per stack over every segment of the selection.
func (s *Server) stackCountsSQL(sel Selection, r Rollups) string {
	segs := Plan(sel.From, sel.To, r.ForSelection(sel))
	parts := make([]string, len(segs))
	for i, seg := range segs {
		parts[i] = s.segmentSQL(sel, seg, "toUInt64(sum(count)) AS c")
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return "SELECT stack, toUInt64(sum(c)) AS c FROM (" + strings.Join(parts, " UNION ALL ") + ") GROUP BY stack"
}

// diffSQL is one query returning, per stack, the comparison count c and the baseline count b.
func (s *Server) diffSQL(sel, base Selection, r Rollups) string {
	var parts []string
	for _, seg := range Plan(sel.From, sel.To, r.ForSelection(sel)) {
		parts = append(parts, s.segmentSQL(sel, seg, "toUInt64(sum(count)) AS c, toUInt64(0) AS b"))
	}
	for _, seg := range Plan(base.From, base.To, r.ForSelection(base)) {
		parts = append(parts, s.segmentSQL(base, seg, "toUInt64(0) AS c, toUInt64(sum(count)) AS b"))
	}
	return "SELECT stack, toUInt64(sum(c)) AS c, toUInt64(sum(b)) AS b FROM (" + strings.Join(parts, " UNION ALL ") + ") GROUP BY stack"
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

// totalsSQL selects cols (which may use ts and the dimension columns) and sum(count) AS c from the
// selection's samples, reading whole minutes from totals_1m and the unaligned edges from samples, grouped
// by groupBy; the caller re-aggregates rows that come from both parts.
func (s *Server) totalsSQL(sel Selection, cols, groupBy string) string {
	raw, m0, m1 := minuteSegments(sel.From, sel.To)
	var parts []string
	q := func(table string, a, b time.Time) string {
		return "SELECT " + cols + ", toUInt64(sum(count)) AS c FROM " + s.ch.Table(table) +
			sel.Clauses("ts", a, b) + " GROUP BY " + groupBy
	}
	if m0.Before(m1) {
		parts = append(parts, q("totals_1m", m0, m1))
	}
	for _, r := range raw {
		parts = append(parts, q("samples", r[0], r[1]))
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return "SELECT " + groupBy + ", toUInt64(sum(c)) AS c FROM (" + strings.Join(parts, " UNION ALL ") + ") GROUP BY " + groupBy
}
