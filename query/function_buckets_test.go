package query

import (
	"fmt"
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
		{"long filters: one bucket", day, day.Add(time.Hour), Rollups{}, longFilter, 60, 3600, 1},
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

// TestFoldedLinesAcrossWritesAndOccurrences: lines split across writes (one byte at a time) read the same as
// whole; occurrences counts each stack once per function, recursion included, only stacks with samples; and
// a history classifies leaves by their frames and sums signed segments per leaf.
func TestFoldedLinesAcrossWritesAndOccurrences(t *testing.T) {
	text := "a;b c;b 3\nx 1\na;b;b;b 12\n"
	var whole, split []string
	collect := func(into *[]string) *foldedLines {
		return &foldedLines{stack: func(frames [][]byte) { *into = append(*into, fmt.Sprintf("%q", frames)) }}
	}
	if _, err := collect(&whole).Write([]byte(text)); err != nil {
		t.Fatal(err)
	}
	fl := collect(&split)
	for i := range len(text) {
		if _, err := fl.Write([]byte{text[i]}); err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(whole) != fmt.Sprint(split) || len(whole) != 3 || whole[0] != `["a" "b c" "b"]` {
		t.Fatalf("whole %v, split %v", whole, split)
	}
	if _, err := collect(&whole).Write([]byte("no-count\n")); err == nil {
		t.Error("a line without a count was read")
	}

	tr := flame.NewTrie()
	stacks := map[string]uint64{"main;rec;rec;rec": 5, "main;rec": 2, "main;other": 1, "main;never": 0, "java;rec": 4}
	leaves := map[string]uint32{}
	for s := range stacks {
		leaves[s] = tr.Leaf(s)
	}
	v := tr.View()
	defer v.Release()
	for s, c := range stacks {
		v.AddLeaf(leaves[s], c)
	}
	occ, err := occurrences(v)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"main": 3, "rec": 3, "other": 1, "java": 1}
	if fmt.Sprint(occ) != fmt.Sprint(want) {
		t.Errorf("occurrences %v, want %v", occ, want)
	}

	// A history adds segments per leaf: rec is in 3 stacks, ends 2 of them; a subtracted segment takes a
	// leaf below zero, which is left out as a view leaves it out.
	names := []string{"main;rec;rec;rec", "main;rec", "main;other", "java;rec"}
	segs := []segmentSums{
		{sign: 1, sums: []stackSum{{1, 5}, {2, 2}, {3, 1}, {4, 4}}},
		{sign: -1, sums: []stackSum{{2, 3}, {4, 1}}},
	}
	lv := [][]uint32{{leaves[names[0]], leaves[names[1]], leaves[names[2]], leaves[names[3]]}, {leaves[names[1]], leaves[names[3]]}}
	h := historyOf(v, "rec", segs, lv)
	if samples, self, total, occ := h.add([]int{0}); samples != 12 || self != 11 || total != 11 || occ != 3 {
		t.Errorf("rec in segment 0: samples %d self %d total %d occurrences %d, want 12 11 11 3", samples, self, total, occ)
	}
	if samples, self, total, occ := h.add([]int{0, 1}); samples != 9 || self != 8 || total != 8 || occ != 2 {
		t.Errorf("rec in both segments: samples %d self %d total %d occurrences %d, want 9 8 8 2 (main;rec below zero)", samples, self, total, occ)
	}
	if samples, self, total, occ := historyOf(v, "main", segs, lv).add([]int{0}); samples != 12 || self != 0 || total != 8 || occ != 3 {
		t.Errorf("main: samples %d self %d total %d occurrences %d, want 12 0 8 3", samples, self, total, occ)
	}
}
