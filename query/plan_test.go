package query

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func ts(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05", s)
	if err != nil {
		panic(err)
	}
	return t
}

func segs(s []Segment) string {
	var parts []string
	for _, x := range s {
		sign := ""
		if x.Sign < 0 {
			sign = "-"
		}
		parts = append(parts, sign+fmt.Sprintf("%s[%s,%s)", x.Gran, x.From.Format("01-02 15:04:05"), x.To.Format("01-02 15:04:05")))
	}
	return strings.Join(parts, " ")
}

func TestPlanSplitsRangeIntoRawHeadTailAndAlignedRollups(t *testing.T) {
	all := Rollups{Hour: true, Day: true}
	withMinutes := func(since string) Rollups { return Rollups{Hour: true, Day: true, MinuteSince: ts(since)} }
	old := withMinutes("2025-01-01 00:00:00")
	for _, tc := range []struct {
		name     string
		from, to string
		r        Rollups
		want     string
	}{
		{"under an hour inside one hour is raw", "2026-01-05 10:10:00", "2026-01-05 10:50:00", all,
			"raw[01-05 10:10:00,01-05 10:50:00)"},
		{"under an hour across an hour boundary is raw", "2026-01-05 10:30:00", "2026-01-05 11:20:00", all,
			"raw[01-05 10:30:00,01-05 11:20:00)"},
		{"exactly one aligned hour", "2026-01-05 10:00:00", "2026-01-05 11:00:00", all,
			"hour[01-05 10:00:00,01-05 11:00:00)"},
		{"unaligned head and tail around whole hours", "2026-01-05 10:00:01", "2026-01-05 13:59:59", all,
			"raw[01-05 10:00:01,01-05 11:00:00) hour[01-05 11:00:00,01-05 13:00:00) raw[01-05 13:00:00,01-05 13:59:59)"},
		{"exactly one aligned day", "2026-01-05 00:00:00", "2026-01-06 00:00:00", all,
			"day[01-05 00:00:00,01-06 00:00:00)"},
		{"24 hours not on a day boundary use hours", "2026-01-05 12:00:00", "2026-01-06 12:00:00", all,
			"hour[01-05 12:00:00,01-06 12:00:00)"},
		{"spanning days with unaligned edges", "2026-01-05 22:30:00", "2026-01-08 01:15:00", all,
			"raw[01-05 22:30:00,01-05 23:00:00) hour[01-05 23:00:00,01-06 00:00:00) day[01-06 00:00:00,01-08 00:00:00) hour[01-08 00:00:00,01-08 01:00:00) raw[01-08 01:00:00,01-08 01:15:00)"},
		{"day-aligned start, unaligned end", "2026-01-05 00:00:00", "2026-01-07 00:30:00", all,
			"day[01-05 00:00:00,01-07 00:00:00) raw[01-07 00:00:00,01-07 00:30:00)"},
		{"a whole day across a DST change is 24 hours (UTC)", "2026-03-29 00:00:00", "2026-03-30 00:00:00", all,
			"day[03-29 00:00:00,03-30 00:00:00)"},
		{"without day rollups whole days come from hours", "2026-01-05 22:30:00", "2026-01-07 00:00:00", Rollups{Hour: true},
			"raw[01-05 22:30:00,01-05 23:00:00) hour[01-05 23:00:00,01-07 00:00:00)"},
		{"without rollups everything is raw", "2026-01-05 00:00:00", "2026-01-09 00:00:00", Rollups{},
			"raw[01-05 00:00:00,01-09 00:00:00)"},
		{"one second", "2026-01-05 10:00:00", "2026-01-05 10:00:01", all, "raw[01-05 10:00:00,01-05 10:00:01)"},
		{"empty range", "2026-01-05 10:00:00", "2026-01-05 10:00:00", all, ""},
		{"reversed range", "2026-01-05 11:00:00", "2026-01-05 10:00:00", all, ""},
		{"minutes: under an hour is whole minutes and sub-minute edges", "2026-01-05 10:10:30", "2026-01-05 10:50:15", old,
			"raw[01-05 10:10:30,01-05 10:11:00) minute[01-05 10:11:00,01-05 10:50:00) raw[01-05 10:50:00,01-05 10:50:15)"},
		{"minutes: aligned minutes need no raw", "2026-01-05 10:10:00", "2026-01-05 10:50:00", old,
			"minute[01-05 10:10:00,01-05 10:50:00)"},
		{"minutes: under a minute is raw", "2026-01-05 10:10:10", "2026-01-05 10:10:50", old,
			"raw[01-05 10:10:10,01-05 10:10:50)"},
		{"minutes: across a minute boundary without a whole minute is raw", "2026-01-05 10:10:30", "2026-01-05 10:11:20", old,
			"raw[01-05 10:10:30,01-05 10:11:20)"},
		{"minutes: day, hour, minute, raw on both sides", "2026-01-05 22:30:10", "2026-01-08 01:15:20", old,
			"raw[01-05 22:30:10,01-05 22:31:00) minute[01-05 22:31:00,01-05 23:00:00) hour[01-05 23:00:00,01-06 00:00:00) day[01-06 00:00:00,01-08 00:00:00) hour[01-08 00:00:00,01-08 01:00:00) minute[01-08 01:00:00,01-08 01:15:00) raw[01-08 01:15:00,01-08 01:15:20)"},
		{"minutes: whole hours are still read from hours", "2026-01-05 10:00:00", "2026-01-05 12:00:00", old,
			"hour[01-05 10:00:00,01-05 12:00:00)"},
		{"epoch inside the head: raw before it", "2026-01-05 10:10:30", "2026-01-05 12:20:00", withMinutes("2026-01-05 10:40:00"),
			"raw[01-05 10:10:30,01-05 10:40:00) minute[01-05 10:40:00,01-05 11:00:00) hour[01-05 11:00:00,01-05 12:00:00) minute[01-05 12:00:00,01-05 12:20:00)"},
		{"epoch after the head: head raw, tail minutes", "2026-01-05 10:10:30", "2026-01-05 12:20:00", withMinutes("2026-01-05 11:30:00"),
			"raw[01-05 10:10:30,01-05 11:00:00) hour[01-05 11:00:00,01-05 12:00:00) minute[01-05 12:00:00,01-05 12:20:00)"},
		{"epoch inside the tail", "2026-01-05 10:10:30", "2026-01-05 12:20:00", withMinutes("2026-01-05 12:05:00"),
			"raw[01-05 10:10:30,01-05 11:00:00) hour[01-05 11:00:00,01-05 12:00:00) raw[01-05 12:00:00,01-05 12:05:00) minute[01-05 12:05:00,01-05 12:20:00)"},
		{"epoch after the range: no minutes", "2026-01-05 10:10:30", "2026-01-05 12:20:00", withMinutes("2026-01-06 00:00:00"),
			"raw[01-05 10:10:30,01-05 11:00:00) hour[01-05 11:00:00,01-05 12:00:00) raw[01-05 12:00:00,01-05 12:20:00)"},
		{"epoch exactly at the range end: no minutes", "2026-01-05 10:10:00", "2026-01-05 10:50:00", withMinutes("2026-01-05 10:50:00"),
			"raw[01-05 10:10:00,01-05 10:50:00)"},
		{"epoch not on a minute starts at the next minute", "2026-01-05 10:10:00", "2026-01-05 10:50:00", withMinutes("2026-01-05 10:20:01"),
			"raw[01-05 10:10:00,01-05 10:21:00) minute[01-05 10:21:00,01-05 10:50:00)"},
		{"minutes without hour rollups", "2026-01-05 10:10:30", "2026-01-05 12:20:00", Rollups{MinuteSince: ts("2025-01-01 00:00:00")},
			"raw[01-05 10:10:30,01-05 10:11:00) minute[01-05 10:11:00,01-05 12:20:00)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from, to := ts(tc.from), ts(tc.to)
			got := Plan(from, to, tc.r)
			if s := segs(got); s != tc.want {
				t.Fatalf("Plan(%s, %s)\n got %s\nwant %s", tc.from, tc.to, s, tc.want)
			}
			// The segments tile the range exactly, and each rollup segment is aligned to its bucket.
			cur := from
			for _, s := range got {
				if !s.From.Equal(cur) || !s.From.Before(s.To) {
					t.Fatalf("segment %v does not continue at %v", s, cur)
				}
				switch s.Gran {
				case Hour:
					if s.From.Truncate(time.Hour) != s.From || s.To.Truncate(time.Hour) != s.To {
						t.Fatalf("hour segment %v not aligned", s)
					}
				case Day:
					if s.From.Truncate(24*time.Hour) != s.From || s.To.Truncate(24*time.Hour) != s.To {
						t.Fatalf("day segment %v not aligned", s)
					}
				case Minute:
					if s.From.Truncate(time.Minute) != s.From || s.To.Truncate(time.Minute) != s.To || s.From.Before(tc.r.MinuteSince) {
						t.Fatalf("minute segment %v not aligned or before the epoch %v", s, tc.r.MinuteSince)
					}
				}
				cur = s.To
			}
			if len(got) > 0 && !cur.Equal(to) {
				t.Fatalf("segments end at %v, not %v", cur, to)
			}
		})
	}
}

func TestPlanTilesRandomRangesExactly(t *testing.T) {
	base := ts("2026-01-01 00:00:00")
	for i := 0; i < 2000; i++ {
		// A deterministic spread of starts and lengths from seconds to weeks.
		from := base.Add(time.Duration(i*7919%(40*86400)) * time.Second)
		to := from.Add(time.Duration(1 + (i*104729)%(20*86400)))
		to = to.Add(time.Duration(i%3) * 86400 * time.Second).Truncate(time.Second).Add(time.Second)
		cur := from
		plan := Plan(from, to, Rollups{Hour: true, Day: true})
		for _, s := range plan {
			if !s.From.Equal(cur) {
				t.Fatalf("Plan(%v, %v): gap or overlap at %v", from, to, cur)
			}
			// Raw reads are only the edges: under an hour each, or under two hours when the range holds
			// no whole hour at all.
			if s.Gran == Raw && (len(plan) > 1 && s.To.Sub(s.From) >= time.Hour || s.To.Sub(s.From) >= 2*time.Hour) {
				t.Fatalf("Plan(%v, %v): raw segment %v longer than needed", from, to, s)
			}
			cur = s.To
		}
		if !cur.Equal(to) {
			t.Fatalf("Plan(%v, %v) ends at %v", from, to, cur)
		}
	}
}

func TestPlanWithMinuteRollupTilesRandomRangesWithSubMinuteRawEdges(t *testing.T) {
	base := ts("2026-01-01 00:00:00")
	for i := 0; i < 2000; i++ {
		from := base.Add(time.Duration(i*7919%(40*86400)) * time.Second)
		to := from.Add(time.Duration(1+(i*104729)%(3*86400)) * time.Second)
		since := base.Add(time.Duration(i*6007%(40*86400)) * time.Second)
		r := Rollups{Hour: true, Day: true, MinuteSince: since}
		cur := from
		for _, s := range Plan(from, to, r) {
			if !s.From.Equal(cur) {
				t.Fatalf("Plan(%v, %v, since %v): gap or overlap at %v", from, to, since, cur)
			}
			switch {
			case s.Gran == Minute && (s.From.Before(since) || s.From.Truncate(time.Minute) != s.From || s.To.Truncate(time.Minute) != s.To):
				t.Fatalf("Plan(%v, %v, since %v): minute segment %v before the epoch or unaligned", from, to, since, s)
			case s.Gran == Raw && !s.To.Before(since.Add(time.Minute)) && s.To.Sub(s.From) >= 2*time.Minute:
				// Raw after the epoch only for the sub-minute edges (under two minutes when no whole minute fits).
				t.Fatalf("Plan(%v, %v, since %v): raw segment %v after the epoch longer than needed", from, to, since, s)
			}
			cur = s.To
		}
		if !cur.Equal(to) {
			t.Fatalf("Plan(%v, %v) ends at %v", from, to, cur)
		}
	}
}

func TestFilteredSelectionsNeverUseTheMinuteRollup(t *testing.T) {
	r := Rollups{Hour: true, Day: true, MinuteSince: ts("2025-01-01 00:00:00")}
	for _, tc := range []struct {
		name string
		sel  Selection
		want bool
	}{
		{"unfiltered", Selection{}, true},
		{"one host", Selection{Include: map[string][]string{"host": {"a"}}}, false},
		{"excluded host", Selection{Exclude: map[string][]string{"host": {"a"}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := !r.ForSelection(tc.sel).MinuteSince.IsZero(); got != tc.want {
				t.Errorf("minute rollup used = %v, want %v", got, tc.want)
			}
		})
	}
	if got := (Segment{Gran: Minute}).Table(true); got != "samples" {
		t.Errorf("filtered minute segment reads %s, want samples", got)
	}
}

func TestMinuteSegmentsReadWholeMinutesFromTotals(t *testing.T) {
	for _, tc := range []struct {
		from, to string
		raw      int
		m0, m1   string
	}{
		{"2026-01-05 10:00:00", "2026-01-05 11:00:00", 0, "10:00:00", "11:00:00"},
		{"2026-01-05 10:00:30", "2026-01-05 11:00:00", 1, "10:01:00", "11:00:00"},
		{"2026-01-05 10:00:30", "2026-01-05 10:05:10", 2, "10:01:00", "10:05:00"},
		{"2026-01-05 10:00:30", "2026-01-05 10:00:50", 1, "10:01:00", "10:01:00"},
	} {
		raw, m0, m1 := minuteSegments(ts(tc.from), ts(tc.to))
		if len(raw) != tc.raw || m0.Format("15:04:05") != tc.m0 || m1.Format("15:04:05") != tc.m1 {
			t.Errorf("minuteSegments(%s, %s) = %v raw, [%v, %v)", tc.from, tc.to, raw, m0, m1)
		}
	}
}

func TestWidenPastRetention(t *testing.T) {
	r := Rollups{Hour: true, Day: true, RawSince: ts("2026-03-01 00:00:00"), HourSince: ts("2026-02-20 00:00:00")}
	for _, tc := range []struct {
		name             string
		r                Rollups
		from, to         string
		wantFrom, wantTo string
	}{
		{"inside raw retention nothing moves", r, "2026-03-02 10:11:12", "2026-03-05 01:02:03", "2026-03-02 10:11:12", "2026-03-05 01:02:03"},
		{"head before raw, within hours", r, "2026-02-25 10:11:12", "2026-03-05 01:02:03", "2026-02-25 10:00:00", "2026-03-05 01:02:03"},
		{"head before hours", r, "2026-02-10 10:11:12", "2026-03-05 01:02:03", "2026-02-10 00:00:00", "2026-03-05 01:02:03"},
		{"both edges within hours", r, "2026-02-25 10:11:12", "2026-02-26 03:00:01", "2026-02-25 10:00:00", "2026-02-26 04:00:00"},
		{"both edges before hours", r, "2026-02-10 10:11:12", "2026-02-12 03:00:01", "2026-02-10 00:00:00", "2026-02-13 00:00:00"},
		{"tail before hours, head aligned", r, "2026-02-10 00:00:00", "2026-02-12 00:00:00", "2026-02-10 00:00:00", "2026-02-12 00:00:00"},
		{"no retention", Rollups{Hour: true, Day: true}, "2020-02-10 10:11:12", "2020-02-12 03:00:01", "2020-02-10 10:11:12", "2020-02-12 03:00:01"},
		{"no day rollup: hours", Rollups{Hour: true, RawSince: r.RawSince, HourSince: r.HourSince}, "2026-02-10 10:11:12", "2026-02-12 03:00:01", "2026-02-10 10:00:00", "2026-02-12 04:00:00"},
		{"no rollups: nothing to do", Rollups{RawSince: r.RawSince}, "2026-02-10 10:11:12", "2026-02-12 03:00:01", "2026-02-10 10:11:12", "2026-02-12 03:00:01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from, to := tc.r.Widen(ts(tc.from), ts(tc.to))
			if !from.Equal(ts(tc.wantFrom)) || !to.Equal(ts(tc.wantTo)) {
				t.Fatalf("Widen = %v, %v; want %s, %s", from, to, tc.wantFrom, tc.wantTo)
			}
		})
	}
}

// TestWidenedPlansReadOnlyKeptRows plans many ranges reaching past the retention horizons and checks that
// no raw or minute segment starts before RawSince and no hour segment before HourSince.
func TestWidenedPlansReadOnlyKeptRows(t *testing.T) {
	r := Rollups{Hour: true, Day: true, RawSince: ts("2026-03-01 00:00:00"), HourSince: ts("2026-02-20 00:00:00"),
		MinuteSince: ts("2026-01-01 00:00:00")}
	base := ts("2026-02-01 00:00:00")
	for i := range 3000 {
		from := base.Add(time.Duration(i*7919%(40*86400)) * time.Second)
		to := from.Add(time.Duration(1+(i*104729)%(20*86400)) * time.Second)
		wf, wt := r.Widen(from, to)
		if wf.After(from) || wt.Before(to) {
			t.Fatalf("Widen(%v, %v) = %v, %v narrows the range", from, to, wf, wt)
		}
		for _, s := range Plan(wf, wt, r) {
			if (s.Gran == Raw || s.Gran == Minute) && s.From.Before(r.RawSince) {
				t.Fatalf("range %v..%v (widened %v..%v): %v segment %v..%v before the raw horizon", from, to, wf, wt, s.Gran, s.From, s.To)
			}
			if s.Gran == Hour && s.From.Before(r.HourSince) {
				t.Fatalf("range %v..%v (widened %v..%v): hour segment %v..%v before the hour horizon", from, to, wf, wt, s.From, s.To)
			}
		}
	}
}

func TestPlanSubtractsWhenAWholeSettledBucketIsCheaper(t *testing.T) {
	settled := Rollups{Hour: true, Day: true, MinuteSince: ts("2025-01-01 00:00:00"), Settled: ts("2026-02-01 00:00:00")}
	noMinutes := settled
	noMinutes.MinuteSince = time.Time{}
	for _, tc := range []struct {
		name     string
		from, to string
		r        Rollups
		want     string
	}{
		{"a day but a second", "2026-01-05 00:00:01", "2026-01-06 00:00:00", settled,
			"-raw[01-05 00:00:00,01-05 00:00:01) day[01-05 00:00:00,01-06 00:00:00)"},
		{"24 hours from a second past midnight", "2026-01-05 00:00:01", "2026-01-06 00:00:01", settled,
			"-raw[01-05 00:00:00,01-05 00:00:01) day[01-05 00:00:00,01-06 00:00:00) raw[01-06 00:00:00,01-06 00:00:01)"},
		{"days but seconds at both ends", "2026-01-05 00:00:05", "2026-01-07 23:59:50", settled,
			"-raw[01-05 00:00:00,01-05 00:00:05) day[01-05 00:00:00,01-08 00:00:00) -raw[01-07 23:59:50,01-08 00:00:00)"},
		{"an hour but seconds at both ends", "2026-01-05 10:00:03", "2026-01-05 10:59:58", settled,
			"-raw[01-05 10:00:00,01-05 10:00:03) hour[01-05 10:00:00,01-05 11:00:00) -raw[01-05 10:59:58,01-05 11:00:00)"},
		{"hours but minutes: the hour minus minutes", "2026-01-05 10:05:00", "2026-01-05 12:00:00", settled,
			"-minute[01-05 10:00:00,01-05 10:05:00) hour[01-05 10:00:00,01-05 12:00:00)"},
		{"hours and most of an hour: minutes", "2026-01-05 10:35:00", "2026-01-05 12:00:00", settled,
			"minute[01-05 10:35:00,01-05 11:00:00) hour[01-05 11:00:00,01-05 12:00:00)"},
		{"hours but minutes, filtered: the hour minus raw minutes", "2026-01-05 10:05:00", "2026-01-05 12:00:00", noMinutes,
			"-raw[01-05 10:00:00,01-05 10:05:00) hour[01-05 10:00:00,01-05 12:00:00)"},
		{"a minute but seconds after the epoch", "2026-01-05 10:05:02", "2026-01-05 10:09:00", settled,
			"-raw[01-05 10:05:00,01-05 10:05:02) minute[01-05 10:05:00,01-05 10:09:00)"},
		{"nothing past the settled time is read whole", "2026-01-31 22:00:01", "2026-02-01 00:30:00", settled,
			"-raw[01-31 22:00:00,01-31 22:00:01) hour[01-31 22:00:00,02-01 00:00:00) minute[02-01 00:00:00,02-01 00:30:00)"},
		{"the day of the settled time is not read whole", "2026-01-31 00:00:01", "2026-02-01 06:00:00", settled,
			"-raw[01-31 00:00:00,01-31 00:00:01) day[01-31 00:00:00,02-01 00:00:00) hour[02-01 00:00:00,02-01 06:00:00)"},
		{"no minute bucket before the epoch", "2026-01-05 10:05:02", "2026-01-05 10:09:00",
			Rollups{Hour: true, Day: true, MinuteSince: ts("2026-01-05 10:06:00"), Settled: settled.Settled},
			"raw[01-05 10:05:02,01-05 10:06:00) minute[01-05 10:06:00,01-05 10:09:00)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Plan(ts(tc.from), ts(tc.to), tc.r)
			if s := segs(got); s != tc.want {
				t.Fatalf("Plan(%s, %s)\n got %s\nwant %s", tc.from, tc.to, s, tc.want)
			}
		})
	}
}

// TestSignedPlansCoverRandomRangesExactly checks, for many ranges, epochs and settled times, that the signed
// segments add up to exactly the range at every instant, that each segment is aligned to its table's
// bucket, that no minute is read before the epoch, that what is read outside the range lies in settled
// buckets of the range's first and last day, and that subtracting never makes a plan dearer.
func TestSignedPlansCoverRandomRangesExactly(t *testing.T) {
	base := ts("2026-01-01 00:00:00")
	subtracted := 0
	for i := range 5000 {
		from := base.Add(time.Duration(i*7919%(40*86400)) * time.Second)
		to := from.Add(time.Duration(1+(i*104729)%(4*86400)) * time.Second)
		r := Rollups{Hour: true, Day: true, Settled: base.Add(time.Duration(i*3571%(46*86400)) * time.Second)}
		if i%3 != 0 {
			r.MinuteSince = base.Add(time.Duration(i*6007%(40*86400)) * time.Second)
		}
		plan := Plan(from, to, r)
		what := fmt.Sprintf("Plan(%v, %v, since %v, settled %v) = %s", from, to, r.MinuteSince, r.Settled, segs(plan))
		points := []time.Time{from, to}
		for _, s := range plan {
			points = append(points, s.From, s.To)
			unit := map[Granularity]time.Duration{Day: 24 * time.Hour, Hour: time.Hour, Minute: time.Minute, Raw: time.Second}[s.Gran]
			if !s.From.Before(s.To) || s.From.Truncate(unit) != s.From || s.To.Truncate(unit) != s.To {
				t.Fatalf("%s: segment %v empty or not aligned", what, s)
			}
			if s.Gran == Minute && s.From.Before(ceilTo(r.MinuteSince, time.Minute)) {
				t.Fatalf("%s: minute segment %v before the epoch", what, s)
			}
			if s.From.Before(from) || s.To.After(to) {
				if s.Sign > 0 && s.Gran != Raw && (s.From.Before(from) && ceilTo(from, unit).After(r.Settled) || s.To.After(to) && s.To.After(r.Settled)) {
					t.Fatalf("%s: %v read past the range but not settled", what, s)
				}
				if s.From.Before(from.Truncate(24*time.Hour)) || s.To.After(ceilTo(to, 24*time.Hour)) {
					t.Fatalf("%s: %v outside the range's days", what, s)
				}
			}
			if s.Sign < 0 {
				subtracted++
			}
		}
		for _, p := range points {
			sum := 0
			for _, s := range plan {
				if !p.Before(s.From) && p.Before(s.To) {
					sum += s.Sign
				}
			}
			want := 0
			if !p.Before(from) && p.Before(to) {
				want = 1
			}
			if sum != want {
				t.Fatalf("%s: instant %v counted %d times, want %d", what, p, sum, want)
			}
		}
		unsettled := r
		unsettled.Settled = time.Time{}
		p := planner{r: r}
		if !r.MinuteSince.IsZero() {
			p.minuteSince = ceilTo(r.MinuteSince, time.Minute)
		}
		pu := planner{r: unsettled, minuteSince: p.minuteSince}
		if c, cu := p.cover(from, to, levelDay, 1).cost, pu.cover(from, to, levelDay, 1).cost; c > cu+1e-9 {
			t.Fatalf("%s: cost %v with subtraction, %v without", what, c, cu)
		}
	}
	if subtracted < 1000 {
		t.Errorf("only %d subtracted segments in 5000 plans: the test does not exercise subtraction", subtracted)
	}
}

// incomplete returns an Incomplete func naming the given hour and day buckets ("2006-01-02 15:04:05").
func incomplete(hours, days []string) func(Granularity, time.Time) bool {
	set := map[Granularity]map[time.Time]bool{Hour: {}, Day: {}}
	for _, h := range hours {
		set[Hour][ts(h)] = true
	}
	for _, d := range days {
		set[Day][ts(d)] = true
	}
	return func(g Granularity, b time.Time) bool { return set[g][b] }
}

func TestPlanReadsIncompleteBucketsFromFinerTables(t *testing.T) {
	// Filtered selections: no minute rollup.
	r := Rollups{Hour: true, Day: true}
	settled := Rollups{Hour: true, Day: true, Settled: ts("2026-02-01 00:00:00")}
	with := func(r Rollups, hours, days []string) Rollups {
		r.Incomplete = incomplete(hours, days)
		return r
	}
	for _, tc := range []struct {
		name     string
		from, to string
		r        Rollups
		want     string
	}{
		{"nothing incomplete: as without the check", "2026-01-05 00:00:00", "2026-01-08 00:00:00", with(r, nil, nil),
			"day[01-05 00:00:00,01-08 00:00:00)"},
		{"an incomplete day is read as hours", "2026-01-05 00:00:00", "2026-01-08 00:00:00", with(r, nil, []string{"2026-01-06 00:00:00"}),
			"day[01-05 00:00:00,01-06 00:00:00) hour[01-06 00:00:00,01-07 00:00:00) day[01-07 00:00:00,01-08 00:00:00)"},
		{"an incomplete hour of an incomplete day is read raw", "2026-01-05 00:00:00", "2026-01-08 00:00:00",
			with(r, []string{"2026-01-06 10:00:00"}, []string{"2026-01-06 00:00:00"}),
			"day[01-05 00:00:00,01-06 00:00:00) hour[01-06 00:00:00,01-06 10:00:00) raw[01-06 10:00:00,01-06 11:00:00) hour[01-06 11:00:00,01-07 00:00:00) day[01-07 00:00:00,01-08 00:00:00)"},
		{"an incomplete hour of a complete day does not matter", "2026-01-05 00:00:00", "2026-01-08 00:00:00",
			with(r, []string{"2026-01-06 10:00:00"}, nil), "day[01-05 00:00:00,01-08 00:00:00)"},
		{"incomplete hours at the edges are read raw", "2026-01-05 22:00:00", "2026-01-06 02:00:00",
			with(r, []string{"2026-01-05 22:00:00", "2026-01-06 01:00:00"}, nil),
			"raw[01-05 22:00:00,01-05 23:00:00) hour[01-05 23:00:00,01-06 01:00:00) raw[01-06 01:00:00,01-06 02:00:00)"},
		{"every bucket incomplete: all raw", "2026-01-05 22:00:00", "2026-01-07 02:00:00",
			Rollups{Hour: true, Day: true, Incomplete: func(Granularity, time.Time) bool { return true }},
			"raw[01-05 22:00:00,01-07 02:00:00)"},
		{"an incomplete day is not read whole past the edge", "2026-01-05 00:00:01", "2026-01-06 00:00:00",
			with(settled, nil, []string{"2026-01-05 00:00:00"}),
			"-raw[01-05 00:00:00,01-05 00:00:01) hour[01-05 00:00:00,01-06 00:00:00)"},
		{"nor an incomplete hour: its raw rows are read", "2026-01-05 00:00:01", "2026-01-06 00:00:00",
			with(settled, []string{"2026-01-05 00:00:00"}, []string{"2026-01-05 00:00:00"}),
			"raw[01-05 00:00:01,01-05 01:00:00) hour[01-05 01:00:00,01-06 00:00:00)"},
		{"an hour but seconds at both ends, incomplete: its complete day minus the rest", "2026-01-05 10:00:03", "2026-01-05 10:59:58",
			with(settled, []string{"2026-01-05 10:00:00"}, nil),
			"-hour[01-05 00:00:00,01-05 10:00:00) -raw[01-05 10:00:00,01-05 10:00:03) day[01-05 00:00:00,01-06 00:00:00) -raw[01-05 10:59:58,01-05 11:00:00) -hour[01-05 11:00:00,01-06 00:00:00)"},
		{"an hour but seconds at both ends, incomplete with its day: raw", "2026-01-05 10:00:03", "2026-01-05 10:59:58",
			with(settled, []string{"2026-01-05 10:00:00"}, []string{"2026-01-05 00:00:00"}), "raw[01-05 10:00:03,01-05 10:59:58)"},
		{"a complete day minus its incomplete hours is still read whole", "2026-01-05 00:00:01", "2026-01-06 00:00:00",
			with(settled, []string{"2026-01-05 00:00:00"}, nil),
			"-raw[01-05 00:00:00,01-05 00:00:01) day[01-05 00:00:00,01-06 00:00:00)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Plan(ts(tc.from), ts(tc.to), tc.r)
			if s := segs(got); s != tc.want {
				t.Fatalf("Plan(%s, %s)\n got %s\nwant %s", tc.from, tc.to, s, tc.want)
			}
		})
	}
}

// TestSignedPlansSkipRandomIncompleteBucketsExactly plans many ranges with random sets of incomplete hours
// and days (and settled times, and the minute rollup of unfiltered selections) and checks that the signed
// segments still add up to exactly the range at every instant, that no hour or day segment holds an
// incomplete bucket (added or subtracted), and that a plan whose check finds nothing incomplete is the
// plan without the check.
func TestSignedPlansSkipRandomIncompleteBucketsExactly(t *testing.T) {
	base := ts("2026-01-01 00:00:00")
	skipped := 0
	for i := range 5000 {
		from := base.Add(time.Duration(i*7919%(40*86400)) * time.Second)
		to := from.Add(time.Duration(1+(i*104729)%(4*86400)) * time.Second)
		r := Rollups{Hour: true, Day: true}
		if i%2 == 0 {
			r.Settled = base.Add(time.Duration(i*3571%(46*86400)) * time.Second)
		}
		if i%5 == 0 {
			r.MinuteSince = base.Add(time.Duration(i*6007%(40*86400)) * time.Second)
		}
		// A random set of hours and days around the range, about one bucket in three.
		seed := uint64(i)*0x9e3779b97f4a7c15 + 1
		bad := map[Granularity]map[time.Time]bool{Hour: {}, Day: {}}
		for d := from.Truncate(24 * time.Hour).Add(-24 * time.Hour); d.Before(to.Add(48 * time.Hour)); d = d.Add(time.Hour) {
			seed ^= seed << 13
			seed ^= seed >> 7
			seed ^= seed << 17
			if seed%3 == 0 {
				bad[Hour][d] = true
			}
			if d.Hour() == 0 && seed%7 < 3 {
				bad[Day][d] = true
			}
		}
		whole := Plan(from, to, r)
		none := r
		none.Incomplete = func(Granularity, time.Time) bool { return false }
		if a, b := segs(whole), segs(Plan(from, to, none)); a != b {
			t.Fatalf("Plan(%v, %v): %s without the check, %s with nothing incomplete", from, to, a, b)
		}
		r.Incomplete = func(g Granularity, b time.Time) bool { return bad[g][b] }
		plan := Plan(from, to, r)
		what := fmt.Sprintf("Plan(%v, %v, settled %v) = %s", from, to, r.Settled, segs(plan))
		points := []time.Time{from, to}
		for _, s := range plan {
			points = append(points, s.From, s.To)
			unit := map[Granularity]time.Duration{Day: 24 * time.Hour, Hour: time.Hour, Minute: time.Minute, Raw: time.Second}[s.Gran]
			if !s.From.Before(s.To) || s.From.Truncate(unit) != s.From || s.To.Truncate(unit) != s.To {
				t.Fatalf("%s: segment %v empty or not aligned", what, s)
			}
			if s.Gran == Hour || s.Gran == Day {
				for b := s.From; b.Before(s.To); b = b.Add(unit) {
					if bad[s.Gran][b] {
						t.Fatalf("%s: %v reads the incomplete %s bucket %v", what, s, s.Gran, b)
					}
				}
			}
		}
		for _, p := range points {
			sum := 0
			for _, s := range plan {
				if !p.Before(s.From) && p.Before(s.To) {
					sum += s.Sign
				}
			}
			want := 0
			if !p.Before(from) && p.Before(to) {
				want = 1
			}
			if sum != want {
				t.Fatalf("%s: instant %v counted %d times, want %d", what, p, sum, want)
			}
		}
		if segs(plan) != segs(whole) {
			skipped++
		}
	}
	if skipped < 1000 {
		t.Errorf("only %d of 5000 plans changed by incomplete buckets: the test does not exercise them", skipped)
	}
}
