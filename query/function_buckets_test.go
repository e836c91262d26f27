package query

import (
	"strings"
	"testing"
	"time"

	"github.com/flamestream/flamestream/internal/flame"
)

// TestBucketsOfCoverTheRangeOnRollupEdges: the buckets tile the range exactly, stay within the bound, are
// whole hours (days) where the range is past the raw retention (there only the hour and day rollups are
// left, and a bucket edge inside an hour would have no rows to stitch with), and long filters mean fewer
// buckets so the statement stays far below ClickHouse's max_query_size.
func TestBucketsOfCoverTheRangeOnRollupEdges(t *testing.T) {
	day := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	now := day.Add(40 * 24 * time.Hour)
	past := Rollups{Hour: true, Day: true, RawSince: now.Add(-7 * 24 * time.Hour), HourSince: now.Add(-30 * 24 * time.Hour)}
	longFilter := map[string][]string{"host": {strings.Repeat("h", 30000)}}
	for _, tc := range []struct {
		name      string
		from, to  time.Time
		r         Rollups
		include   map[string][]string
		max       int
		step      int64
		maxPoints int
	}{
		{"an hour in minutes", day.Add(10 * time.Hour), day.Add(11 * time.Hour), Rollups{}, nil, 60, 60, 60},
		{"an unaligned hour: 61 minutes is too many, 5-minute buckets", day.Add(10*time.Hour + 7*time.Second), day.Add(11*time.Hour + 7*time.Second), Rollups{}, nil, 60, 300, 13},
		{"a day for a sparkline", day, day.Add(24 * time.Hour), Rollups{}, nil, 24, 3600, 24},
		{"400 days", day.Add(-400 * 24 * time.Hour), day, Rollups{}, nil, 60, 7 * 86400, 60},
		{"400 days in 3 buckets", day.Add(-400 * 24 * time.Hour), day, Rollups{}, nil, 3, 26 * 7 * 86400, 3},
		{"hours past the raw retention: whole hours", now.Add(-8 * 24 * time.Hour), now.Add(-8*24*time.Hour + 2*time.Hour), past, nil, 60, 3600, 2},
		{"days past the hour retention: whole days", now.Add(-35 * 24 * time.Hour), now.Add(-33 * 24 * time.Hour), past, nil, 60, 86400, 2},
		{"long filters: as many buckets (one query reads them all)", day, day.Add(time.Hour), Rollups{}, longFilter, 60, 60, 60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sel := Selection{Service: "s", From: tc.from, To: tc.to, Include: tc.include}
			step, bs := bucketsOf(sel, tc.r, tc.max)
			if step != tc.step || len(bs) > tc.maxPoints || len(bs) == 0 {
				t.Fatalf("step %d, %d buckets; want step %d, at most %d", step, len(bs), tc.step, tc.maxPoints)
			}
			at := tc.from
			for i, b := range bs {
				if !b.From.Equal(at) || !b.From.Before(b.To) || b.Service != "s" || len(b.Include) != len(tc.include) {
					t.Fatalf("bucket %d %v..%v does not follow %v", i, b.From, b.To, at)
				}
				if i > 0 && b.From.Unix()%step != 0 {
					t.Errorf("bucket %d starts at %v, not a multiple of %d s", i, b.From, step)
				}
				at = b.To
			}
			if !at.Equal(tc.to) {
				t.Errorf("buckets end at %v, want %v", at, tc.to)
			}
		})
	}
}

// TestLeafCountsClassifyStacksLikeAView: the functions table's numbers and a function's history, summed per
// leaf and classified by the leaves' frames, are the top table's of a view of the same counts (self, total
// once per stack whatever the recursion); occurrences count the stacks with samples; a leaf that a
// subtracted segment takes below zero is left out, as a view leaves it out.
func TestLeafCountsClassifyStacksLikeAView(t *testing.T) {
	tr := flame.NewTrie()
	names := []string{"main;rec;rec;rec", "main;rec", "main;other", "java;rec", "main;never"}
	leaves := map[string]uint32{}
	for _, s := range names {
		leaves[s] = tr.Leaf(s)
	}
	v := tr.View()
	defer v.Release()
	segs := []segmentSums{
		{sign: 1, sums: []stackSum{{1, 5}, {2, 2}, {3, 1}, {4, 4}, {5, 0}}},
		{sign: -1, sums: []stackSum{{2, 3}, {4, 1}}},
	}
	lv := [][]uint32{{leaves[names[0]], leaves[names[1]], leaves[names[2]], leaves[names[3]], leaves[names[4]]}, {leaves[names[1]], leaves[names[3]]}}
	counts := &leafCounts{sums: segs, leaves: lv, net: map[uint32]int64{}, v: v}

	// The same counts in a view: its top table is what the leaf sums must give.
	ref := tr.View()
	defer ref.Release()
	for k, x := range segs[0].sums {
		ref.AddLeaf(lv[0][k], uint64(x.sum))
	}
	stats, total := tableStats(counts, []int{0})
	if total != ref.Total() || len(stats) != len(ref.TopFunctions("self", 0)) {
		t.Fatalf("table: %d samples, %d functions; the view has %d, %d", total, len(stats), ref.Total(), len(ref.TopFunctions("self", 0)))
	}
	for _, f := range ref.TopFunctions("self", 0) {
		if st := stats[f.Name]; st == nil || st.self != f.Self || st.total != f.Total {
			t.Errorf("%s: %+v, the view has self %d total %d", f.Name, st, f.Self, f.Total)
		}
	}
	wantOcc := map[string]int64{"main": 3, "rec": 3, "other": 1, "java": 1}
	for name, w := range wantOcc {
		if stats[name].occurrences != w {
			t.Errorf("%s: %d occurrences, want %d", name, stats[name].occurrences, w)
		}
	}

	h := &history{name: "rec", counts: counts, class: map[uint32]leafClass{}}
	if samples, self, total, occ := h.add([]int{0}); samples != 12 || self != 11 || total != 11 || occ != 3 {
		t.Errorf("rec in segment 0: samples %d self %d total %d occurrences %d, want 12 11 11 3", samples, self, total, occ)
	}
	if samples, self, total, occ := h.add([]int{0, 1}); samples != 9 || self != 8 || total != 8 || occ != 2 {
		t.Errorf("rec in both segments: samples %d self %d total %d occurrences %d, want 9 8 8 2 (main;rec below zero)", samples, self, total, occ)
	}
	hm := &history{name: "main", counts: counts, class: map[uint32]leafClass{}}
	if samples, self, total, occ := hm.add([]int{0}); samples != 12 || self != 0 || total != 8 || occ != 3 {
		t.Errorf("main: samples %d self %d total %d occurrences %d, want 12 0 8 3", samples, self, total, occ)
	}
}

// TestBucketSegmentsKeepEachRowInOneBucket: a read in buckets plans the whole range once, on tables no
// coarser than the step (a day row cannot be split into hours), and the signed segments cover the range
// exactly: every second inside it once, every second outside it not at all (subtracted edges included),
// and each segment (rollup bucket or raw span) lies in one bucket of the step.
func TestBucketSegmentsKeepEachRowInOneBucket(t *testing.T) {
	day := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	all := Rollups{Hour: true, Day: true, MinuteSince: day.Add(-30 * 24 * time.Hour), Settled: day.Add(40 * 24 * time.Hour)}
	for _, tc := range []struct {
		name     string
		from, to time.Time
		step     int64
	}{
		{"an hour in minutes, edges inside minutes", day.Add(10*time.Hour + 7*time.Second), day.Add(11*time.Hour + 3*time.Second), 60},
		{"a day in hours, edges inside hours", day.Add(5*time.Minute + 1*time.Second), day.Add(24*time.Hour - 13*time.Second), 3600},
		{"three days in 3-hour buckets", day.Add(-17 * time.Minute), day.Add(3*24*time.Hour + 2*time.Hour), 3 * 3600},
		{"a month in days", day.Add(-30*24*time.Hour + 11*time.Second), day.Add(-time.Second), 86400},
		{"a day in 5-minute buckets", day, day.Add(24 * time.Hour), 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sel := Selection{Service: "s", From: tc.from, To: tc.to}
			segs := bucketSegments(sel, all, tc.step)
			if len(segs) == 0 {
				t.Fatal("no segments")
			}
			units := map[Granularity]int64{Minute: 60, Hour: 3600, Day: 86400}
			for _, sg := range segs {
				if u := units[sg.Gran]; u > 0 && tc.step%u != 0 {
					t.Errorf("segment %v %v..%v: its rows span %d s, more than a bucket of %d s", sg.Gran, sg.From, sg.To, u, tc.step)
				}
				// A segment's rows are at its span's seconds (raw) or its buckets' starts (rollups): all in
				// one bucket of the step per row, so its first and last second give the buckets it meets.
				if sg.Gran == Raw && sg.From.Unix()/tc.step != (sg.To.Unix()-1)/tc.step && sg.Sign < 0 {
					t.Errorf("subtracted raw span %v..%v crosses a bucket edge", sg.From, sg.To)
				}
			}
			for at := tc.from.Add(-2 * time.Hour); at.Before(tc.to.Add(2 * time.Hour)); at = at.Add(time.Duration(tc.step/7+1) * time.Second) {
				n := 0
				for _, sg := range segs {
					if !at.Before(sg.From) && at.Before(sg.To) {
						n += sg.Sign
					}
				}
				want := 0
				if !at.Before(tc.from) && at.Before(tc.to) {
					want = 1
				}
				if n != want {
					t.Fatalf("second %v is counted %d times, want %d (segments %v)", at, n, want, segs)
				}
			}
		})
	}
}
