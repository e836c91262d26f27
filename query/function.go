package query

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/flamestream/flamestream/internal/flame"
)

// The function endpoints read a range as buckets: one selection per bucket, all read by one ClickHouse query
// (see sums), then one view of the service's trie that learns every stack and names the frames of each
// leaf (see flame.View.Frames). A tree per bucket would cost a pass over the whole trie per bucket; instead
// each bucket adds its counts per leaf (see leafCounts) and each leaf is classified once by its frames. The
// numbers are those of the flame graph and the top table of the same selection: a function's self is the
// samples whose leaf frame it is, its total those whose stack holds it at least once, its occurrences the
// distinct stacks with samples that hold it.

const (
	// maxHistoryPoints bounds the buckets of a function's history (a view of the trie each).
	maxHistoryPoints = 60
	// maxTrendPoints bounds the buckets of the functions table's sparklines.
	maxTrendPoints = 24
	// maxFrameName bounds the frame name a history asks for and the table's name filter.
	maxFrameName = 4096
	// maxTableFunctions bounds the rows of the functions table (each carries a sparkline).
	maxTableFunctions = 10000
	// bucketSQLBudget bounds the SQL the segments of all buckets add up to, far below ClickHouse's
	// max_query_size (256 KiB): each segment repeats the selection's filters, so long filters mean fewer
	// buckets.
	bucketSQLBudget = 160 << 10
	// segmentsPerBucket is about how many segments the plan of one bucket has at most (raw head, minutes,
	// hours, days, raw tail; a subtracted edge adds one).
	segmentsPerBucket = 6
)

// bucketSteps are the bucket lengths in seconds, finest first; each is whole minutes and divides into the
// UTC hours or days as the rollups need (see bucketsOf).
var bucketSteps = []int64{60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400}

// bucketsOf splits a (widened) selection into at most maxPoints buckets of one step, aligned to multiples of
// the step since the epoch (the first and the last clipped to the range), and returns the step and the
// buckets. Past the raw retention only whole hours or days are kept, so there the step is at least an hour
// or a day, as the timeline's: every bucket edge then falls on a rollup bucket's edge and the buckets add
// up exactly to the range.
func bucketsOf(sel Selection, ru Rollups, maxPoints int) (int64, []Selection) {
	var minStep int64 = 60
	old, _ := ru.PastRaw(sel.From, sel.To)
	for _, seg := range old {
		switch {
		case seg.Gran == Day:
			minStep = max(minStep, 86400)
		case seg.Gran == Hour:
			minStep = max(minStep, 3600)
		}
	}
	perSegment := len(sel.filterSQL()) + len(sel.Service) + 400
	maxPoints = max(1, min(maxPoints, bucketSQLBudget/(segmentsPerBucket*perSegment)))
	from, to := sel.From.Unix(), sel.To.Unix()
	if sel.To.After(time.Unix(to, 0)) {
		to++ // a sub-second end: the last bucket still reaches it
	}
	count := func(step int64) int64 {
		lo := from - mod(from, step)
		hi := to + mod(step-mod(to, step), step)
		return (hi - lo) / step
	}
	step := int64(0)
	for _, s := range bucketSteps {
		if s >= minStep && count(s) <= int64(maxPoints) {
			step = s
			break
		}
	}
	if step == 0 {
		// Longer than the longest step allows: whole weeks, as many as it takes.
		week := bucketSteps[len(bucketSteps)-1]
		step = week * ((count(week) + int64(maxPoints) - 1) / int64(maxPoints))
		for count(step) > int64(maxPoints) {
			step += week
		}
	}
	var out []Selection
	for t := from - mod(from, step); t < to; t += step {
		b := sel
		b.From, b.To = time.Unix(t, 0).UTC(), time.Unix(t+step, 0).UTC()
		if b.From.Before(sel.From) {
			b.From = sel.From
		}
		if b.To.After(sel.To) {
			b.To = sel.To
		}
		if b.From.Before(b.To) {
			out = append(out, b)
		}
	}
	return step, out
}

// mod is a modulo that is never negative (ranges may start before 1970).
func mod(a, b int64) int64 { return ((a % b) + b) % b }

// bucketRead is a range read as buckets: the sums of their segments, the leaf of each stack, and a view of
// the service's trie (held until release) that names the leaves' frames.
type bucketRead struct {
	step    int64
	buckets []Selection
	v       *flame.View
	release func()
	counts  leafCounts
	bySide  [][]int // the segments of each bucket, by index in counts.sums
	whole   []int   // every segment
}

// readBuckets splits the reading's selection into at most maxPoints buckets (see bucketsOf) and reads them;
// the caller must call release.
func (s *Server) readBuckets(rd *reading, maxPoints int) (*bucketRead, error) {
	br := &bucketRead{}
	br.step, br.buckets = bucketsOf(rd.sel, rd.rollups, maxPoints)
	sums, err := s.sums(rd.ctx, br.buckets...)
	if err != nil {
		return nil, err
	}
	// sums puts the segments of bucket i on side i; the view counts them all on the comparison side.
	br.bySide = make([][]int, len(br.buckets))
	br.whole = make([]int, len(sums))
	for j := range sums {
		br.bySide[sums[j].side] = append(br.bySide[sums[j].side], j)
		br.whole[j] = j
		sums[j].side = comparison
	}
	var leaves [][]uint32
	br.v, leaves, br.release, err = s.viewLeaves(rd.ctx, rd.sel.Service, sums)
	if err != nil {
		return nil, err
	}
	br.counts = leafCounts{sums: sums, leaves: leaves, net: map[uint32]int64{}}
	return br, nil
}

// leafCounts adds segment sums per trie leaf.
type leafCounts struct {
	sums   []segmentSums
	leaves [][]uint32 // leaves[j][k] is the leaf of sums[j].sums[k]
	net    map[uint32]int64
}

// each sums the segments segs (indexes in sums) per leaf and calls fn with every leaf whose sum is above
// zero, as a view counts them: a leaf below zero is left out (see flame.View.DropNegative), and so is the
// empty stack (leaf 0).
func (lc *leafCounts) each(segs []int, fn func(leaf uint32, n uint64)) {
	clear(lc.net)
	for _, j := range segs {
		sg := lc.sums[j]
		for k, x := range sg.sums {
			lc.net[lc.leaves[j][k]] += sg.sign * x.sum
		}
	}
	for leaf, n := range lc.net {
		if n > 0 && leaf != 0 {
			fn(leaf, uint64(n))
		}
	}
}

// FunctionPoint is one bucket of a function's history: the bucket's start (unix seconds; the first bucket
// starts at the range's start), all samples of the selection in it, and the function's self and total.
type FunctionPoint struct {
	T       int64  `json:"t"`
	Samples uint64 `json:"samples"`
	Self    uint64 `json:"self"`
	Total   uint64 `json:"total"`
}

// FunctionHistory is the reply of GET /api/v1/function: a function's self, total and occurrences over the
// range, all samples of the selection, and the same per bucket of Step seconds.
type FunctionHistory struct {
	Name        string          `json:"name"`
	Step        int64           `json:"step"`
	Samples     uint64          `json:"samples"`
	Self        uint64          `json:"self"`
	Total       uint64          `json:"total"`
	Occurrences int64           `json:"occurrences"`
	Points      []FunctionPoint `json:"points"`
}

// nameParam reads a frame name parameter: required or not, without ';' (it joins frames), bounded.
func nameParam(r *http.Request, param string, required bool) (string, error) {
	v := r.URL.Query().Get(param)
	switch {
	case v == "" && required:
		return "", badRequest("missing parameter", errors.New(param+" is required"))
	case len(v) > maxFrameName:
		return "", badRequest("bad "+param, fmt.Errorf("at most %d bytes", maxFrameName))
	case strings.Contains(v, ";") && required:
		return "", badRequest("bad "+param, errors.New("one frame name, without ';'"))
	}
	return v, nil
}

// function serves GET /api/v1/function: the history of one frame name over the range and filters.
func (s *Server) function(w http.ResponseWriter, r *http.Request) error {
	var name string
	rd, err := s.startReading(w, r, func(*Selection) (err error) {
		name, err = nameParam(r, "name", true)
		return err
	})
	if err != nil {
		return err
	}
	defer rd.cancel()
	br, err := s.readBuckets(rd, maxHistoryPoints)
	if err != nil {
		return err
	}
	defer br.release()
	h := &history{v: br.v, name: name, counts: &br.counts, class: map[uint32]leafClass{}}
	out := FunctionHistory{Name: name, Step: br.step, Points: make([]FunctionPoint, len(br.buckets))}
	out.Samples, out.Self, out.Total, out.Occurrences = h.add(br.whole)
	for i, segs := range br.bySide {
		p := &out.Points[i]
		p.T = br.buckets[i].From.Unix()
		p.Samples, p.Self, p.Total, _ = h.add(segs)
	}
	br.release()
	writeJSON(w, http.StatusOK, out)
	return nil
}

// leafClass says what the stack of a leaf holds of one function: hasName (anywhere) and endsInName (its
// leaf frame).
type leafClass uint8

const (
	hasName leafClass = 1 << iota
	endsInName
	classified
)

// history sums the counts of one function's stacks over sets of segments (see add).
type history struct {
	v      *flame.View
	name   string
	counts *leafCounts
	class  map[uint32]leafClass // memo of classify, by leaf
	frames []string
}

func (h *history) classify(leaf uint32) leafClass {
	c := h.class[leaf]
	if c&classified != 0 {
		return c
	}
	c = classified
	h.frames = h.v.Frames(leaf, h.frames[:0])
	for i, f := range h.frames {
		if f == h.name {
			c |= hasName
			if i == len(h.frames)-1 {
				c |= endsInName
			}
		}
	}
	h.class[leaf] = c
	return c
}

// add sums the segments segs per leaf and returns all samples, the function's self and total, and its
// occurrences.
func (h *history) add(segs []int) (samples, self, total uint64, occurrences int64) {
	h.counts.each(segs, func(leaf uint32, n uint64) {
		samples += n
		c := h.classify(leaf)
		if c&hasName != 0 {
			total += n
			occurrences++
		}
		if c&endsInName != 0 {
			self += n
		}
	})
	return samples, self, total, occurrences
}

// TableFunction is one row of the functions table: the function's self and total samples over the range,
// the number of distinct stacks that hold it, and its total per bucket.
type TableFunction struct {
	Name        string   `json:"name"`
	Self        uint64   `json:"self"`
	Total       uint64   `json:"total"`
	Occurrences int64    `json:"occurrences"`
	Trend       []uint64 `json:"trend"`
}

// FunctionTable is the reply of GET /api/v1/functions.
type FunctionTable struct {
	// Total is all samples of the selection; Samples the same per bucket of Step seconds from From.
	Total   uint64   `json:"total"`
	Step    int64    `json:"step"`
	From    int64    `json:"from"`
	Samples []uint64 `json:"samples"`
	// Matched is how many functions match the name filter, of which Functions holds the first limit.
	Matched   int             `json:"matched"`
	Functions []TableFunction `json:"functions"`
}

// tableSorts are the orders of the functions table: by self, total or occurrences (largest first), or by
// name.
var tableSorts = []string{"self", "total", "occurrences", "name"}

// functions serves GET /api/v1/functions: the functions table with occurrences and sparklines.
func (s *Server) functions(w http.ResponseWriter, r *http.Request) error {
	var limit int
	var sortBy, match string
	rd, err := s.startReading(w, r, func(*Selection) (err error) {
		if limit, err = intParam(r, "limit", 100, 1, maxTableFunctions); err != nil {
			return err
		}
		if sortBy = r.URL.Query().Get("sort"); sortBy == "" {
			sortBy = "total"
		}
		if !slices.Contains(tableSorts, sortBy) {
			return badRequest("bad sort", errors.New(strings.Join(tableSorts, ", ")))
		}
		match, err = nameParam(r, "match", false)
		return err
	})
	if err != nil {
		return err
	}
	defer rd.cancel()
	br, err := s.readBuckets(rd, maxTrendPoints)
	if err != nil {
		return err
	}
	defer br.release()
	out := FunctionTable{Step: br.step, From: rd.sel.From.Unix(), Samples: make([]uint64, len(br.buckets)), Functions: []TableFunction{}}
	stats, total := tableStats(br.v, &br.counts, br.whole)
	out.Total = total
	lower := strings.ToLower(match)
	for name, st := range stats {
		if lower == "" || strings.Contains(strings.ToLower(name), lower) {
			out.Functions = append(out.Functions, TableFunction{Name: name, Self: st.self, Total: st.total, Occurrences: st.occurrences})
		}
	}
	sortTable(out.Functions, sortBy)
	out.Matched = len(out.Functions)
	if len(out.Functions) > limit {
		out.Functions = out.Functions[:limit]
	}
	// The sparklines: the rows listed on each leaf's stack (once each), found once per leaf.
	row := make(map[string]int32, len(out.Functions))
	for i := range out.Functions {
		out.Functions[i].Trend = make([]uint64, len(br.buckets))
		row[out.Functions[i].Name] = int32(i)
	}
	rowsOf := map[uint32][]int32{}
	last := make([]uint32, len(out.Functions)) // the last leaf that listed each row, against recursion
	var frames []string
	for i, segs := range br.bySide {
		br.counts.each(segs, func(leaf uint32, n uint64) {
			out.Samples[i] += n
			rows, ok := rowsOf[leaf]
			if !ok {
				frames = br.v.Frames(leaf, frames[:0])
				for _, f := range frames {
					if k, listed := row[f]; listed && last[k] != leaf {
						last[k] = leaf
						rows = append(rows, k)
					}
				}
				rowsOf[leaf] = rows
			}
			for _, k := range rows {
				out.Functions[k].Trend[i] += n
			}
		})
	}
	br.release()
	writeJSON(w, http.StatusOK, out)
	return nil
}

// fnStat is a function's numbers in the functions table.
type fnStat struct {
	self, total uint64
	occurrences int64
	last        uint32 // the last leaf counted, against recursion
}

// tableStats returns every function with samples in the segments segs, and all their samples.
func tableStats(v *flame.View, counts *leafCounts, segs []int) (map[string]*fnStat, uint64) {
	stats := map[string]*fnStat{}
	var total uint64
	var frames []string
	counts.each(segs, func(leaf uint32, n uint64) {
		total += n
		frames = v.Frames(leaf, frames[:0])
		for i, f := range frames {
			st := stats[f]
			if st == nil {
				st = &fnStat{}
				stats[f] = st
			}
			if i == len(frames)-1 {
				st.self += n
			}
			if st.last != leaf {
				st.last = leaf
				st.total += n
				st.occurrences++
			}
		}
	})
	return stats, total
}

// sortTable orders the rows by sortBy (see tableSorts), ties by name.
func sortTable(rows []TableFunction, sortBy string) {
	key := func(f *TableFunction) uint64 {
		switch sortBy {
		case "self":
			return f.Self
		case "occurrences":
			return uint64(f.Occurrences)
		}
		return f.Total
	}
	slices.SortFunc(rows, func(a, b TableFunction) int {
		if sortBy != "name" {
			if c := cmp.Compare(key(&b), key(&a)); c != 0 {
				return c
			}
		}
		return strings.Compare(a.Name, b.Name)
	})
}
