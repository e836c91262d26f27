package query

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/flamestream/flamestream/internal/flame"
)

// The function endpoints read a range as buckets of one step: one plan of the whole range on tables no
// coarser than the step (see bucketRollups), read by one ClickHouse query that groups each segment's rows by
// bucket and stack (see bucketSums), so that a history costs about what a top table of the same range
// costs, not a read per bucket. Then one view of the service's trie learns every stack and names the frames
// of each leaf (see flame.View.Frames). A tree per bucket would cost a pass over the whole trie per bucket;
// instead each bucket adds its counts per leaf (see leafCounts) and each leaf is classified once by its
// frames. The numbers are those of the flame graph and the top table of the same selection, runtime and
// process view included (see stackShape): a function's self is the samples whose leaf frame it is, its
// total those whose stack holds it at least once, its occurrences the distinct stacks with samples that
// hold it (stacks that the view makes equal are one stack).

const (
	// maxHistoryPoints bounds the buckets of a function's history: a read returns up to one row per bucket
	// and stack.
	maxHistoryPoints = 60
	// maxTrendPoints bounds the buckets of the functions table's sparklines.
	maxTrendPoints = 24
	// maxFrameName bounds the frame name a history asks for and the table's name filter.
	maxFrameName = 4096
	// maxRoots bounds the top-level frames (processes) the functions table names.
	maxRoots = 1000
	// maxTableFunctions bounds the rows of the functions table (each carries a sparkline).
	maxTableFunctions = 10000
)

// bucketSteps are the bucket lengths in seconds, finest first; each is whole minutes and divides into the
// UTC hours or days as the rollups need (see bucketsOf).
var bucketSteps = []int64{60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400}

// bucketsOf splits a (widened) selection into at most maxPoints buckets of one step, aligned to multiples of
// the step since the epoch (the first and the last clipped to the range), and returns the step and the
// buckets. Past the raw retention only whole hours or days are kept, so there the step is at least an hour
// or a day, as the timeline's: every bucket edge then falls on a rollup bucket's edge and the buckets add
// up exactly to the range. The buckets are read by one query whatever their number (see bucketSums), so
// the length of the filters does not bound them.
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
	maxPoints = max(1, maxPoints)
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

// bucketRead is a range read as buckets: the sums per bucket and stack, the leaf of each stack, and a view
// of the service's trie (held until release) that names the leaves' frames.
type bucketRead struct {
	step    int64
	buckets []Selection
	v       *flame.View
	release func()
	counts  leafCounts
	bySide  [][]int // the sums of each bucket, by index in counts.sums
	whole   []int   // every sums
}

// readBuckets splits the reading's selection into at most maxPoints buckets (see bucketsOf) and reads them
// with the stack shape sh applied (see stackShape); the caller must call release.
func (s *Server) readBuckets(rd *reading, maxPoints int, sh stackShape) (*bucketRead, error) {
	br := &bucketRead{}
	br.step, br.buckets = bucketsOf(rd.sel, rd.rollups, maxPoints)
	sums, bySide, err := s.bucketSums(rd.ctx, rd.sel, rd.rollups, br.step, len(br.buckets))
	if err != nil {
		return nil, err
	}
	br.bySide = bySide
	br.whole = make([]int, len(sums))
	for j := range sums {
		br.whole[j] = j
	}
	var leaves [][]uint32
	br.v, leaves, br.release, err = s.viewLeaves(rd.ctx, rd.sel.Service, sums)
	if err != nil {
		return nil, err
	}
	br.counts = leafCounts{sums: sums, leaves: leaves, net: map[uint32]int64{}, v: br.v}
	if sh.active() {
		br.counts.shape = &shaped{sh: sh, of: map[uint32]uint32{}, keys: map[string]uint32{}, net: map[uint32]int64{}}
	}
	return br, nil
}

// bucketRollups returns the rollups that a read in buckets of step seconds may use: those whose rows fall
// in one bucket each (a day row cannot be split into hours).
func bucketRollups(r Rollups, step int64) Rollups {
	if step%86400 != 0 {
		r.Day = false
	}
	if step%3600 != 0 {
		r.Hour = false
	}
	return r
}

// bucketSegments plans a selection for a read in buckets of step seconds: one plan of the whole range (see
// Plan) on the tables bucketRollups allows. Every row a segment reads then lies in one bucket, and so does
// the part of a settled rollup bucket that a plan subtracts past an edge (the rollup bucket lies in the
// step's bucket of that edge).
func bucketSegments(sel Selection, ru Rollups, step int64) []Segment {
	return Plan(sel.From, sel.To, bucketRollups(ru.ForSelection(sel), step))
}

// bucketIndex is the SQL of a row's bucket: its step since the epoch.
func bucketIndex(step int64) string {
	return "toUInt32(intDiv(toUInt32(ts), " + strconv.FormatInt(step, 10) + "))"
}

// bucketSums reads a selection in n buckets of step seconds (bucket i starts at the i-th multiple of step
// from the one at or before sel.From) in one ClickHouse query: each segment of the plan (see bucketSegments)
// grouped by bucket and stack. It returns the sums of each segment in each bucket, all on the comparison
// side, and the indexes of each bucket's sums. These are not cached: the segment cache keys whole
// segments.
func (s *Server) bucketSums(ctx context.Context, sel Selection, ru Rollups, step int64, n int) (sums []segmentSums, bySide [][]int, err error) {
	// bucketSegments, complete buckets only (see planChecked)
	err = s.planChecked(ctx, sel, bucketRollups(ru.ForSelection(sel), step), func(segs []Segment) (err error) {
		sums, bySide, err = s.bucketSumsOf(ctx, sel, segs, step, n)
		return err
	})
	return sums, bySide, err
}

// bucketSumsOf is bucketSums of the plan segs.
func (s *Server) bucketSumsOf(ctx context.Context, sel Selection, segs []Segment, step int64, n int) ([]segmentSums, [][]int, error) {
	bySide := make([][]int, n)
	if len(segs) == 0 {
		return nil, bySide, nil
	}
	parts := make([]string, len(segs))
	for i, seg := range segs {
		parts[i] = "SELECT toUInt32(" + strconv.Itoa(i) + ") AS seg, " + bucketIndex(step) + " AS b, stack, toInt64(sum(count)) AS c" +
			s.segmentFrom(sel, seg) + " GROUP BY b, stack"
	}
	first := uint32(sel.From.Unix() / step)
	at := map[[2]uint32]int{} // (segment, bucket) → index in out
	var out []segmentSums
	var seg, b proto.ColUInt32
	var hash proto.ColUInt64
	var count proto.ColInt64
	err := s.ch.DoLimited(ctx, s.limits(), ch.Query{
		Body:   strings.Join(parts, " UNION ALL "),
		Result: proto.Results{{Name: "seg", Data: &seg}, {Name: "b", Data: &b}, {Name: "stack", Data: &hash}, {Name: "c", Data: &count}},
		OnResult: func(ctx context.Context, _ proto.Block) error {
			for i, k := range seg {
				bi := int64(b[i]) - int64(first)
				if int(k) >= len(segs) || bi < 0 || bi >= int64(n) {
					return fmt.Errorf("row of segment %d, bucket %d: out of %d segments, %d buckets", k, bi, len(segs), n)
				}
				key := [2]uint32{k, uint32(bi)}
				j, ok := at[key]
				if !ok {
					j = len(out)
					at[key] = j
					out = append(out, segmentSums{side: comparison, sign: int64(segs[k].Sign)})
					bySide[bi] = append(bySide[bi], j)
				}
				out[j].sums = append(out[j].sums, stackSum{hash[i], count[i]})
			}
			return nil
		},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("stack counts by bucket: %w", err)
	}
	return out, bySide, nil
}

// leafCounts adds sums per trie leaf and, with a stack shape, per stack of the shape (see shaped): its keys
// are leaves or shaped stacks, and frames names them.
type leafCounts struct {
	sums   []segmentSums
	leaves [][]uint32 // leaves[j][k] is the leaf of sums[j].sums[k]
	net    map[uint32]int64
	v      *flame.View
	shape  *shaped // nil: no shape, the keys are leaves
}

// shaped maps the leaves of a view onto the stacks a stack shape makes of them: stacks that the shape
// makes equal are one stack, keyed from 1 in the order met; a dropped stack has no key.
type shaped struct {
	sh     stackShape
	of     map[uint32]uint32 // leaf → key, 0 when the shape drops the stack
	keys   map[string]uint32 // shaped stack text → key
	frames [][]string        // frames[key-1]
	buf    []string
	net    map[uint32]int64
}

// key returns the key of a leaf's shaped stack, 0 when the shape drops it.
func (sp *shaped) key(v *flame.View, leaf uint32) uint32 {
	if k, ok := sp.of[leaf]; ok {
		return k
	}
	sp.buf = v.Frames(leaf, sp.buf[:0])
	fr, keep := sp.sh.apply(sp.buf, nil)
	var k uint32
	if keep {
		text := strings.Join(fr, ";")
		if k = sp.keys[text]; k == 0 {
			sp.frames = append(sp.frames, fr)
			k = uint32(len(sp.frames))
			sp.keys[text] = k
		}
	}
	sp.of[leaf] = k
	return k
}

// frames returns the frames of a key (process first), appended to dst or, with a shape, shared: the
// caller must not change them.
func (lc *leafCounts) frames(key uint32, dst []string) []string {
	if lc.shape != nil {
		return lc.shape.frames[key-1]
	}
	return lc.v.Frames(key, dst)
}

// each sums the segments segs (indexes in sums) per leaf and calls fn with every key (leaf or shaped stack)
// whose sum is above zero, as a view counts them: a leaf below zero is left out (see flame.View.DropNegative),
// and so is the empty stack (leaf 0). Keys are never 0.
func (lc *leafCounts) each(segs []int, fn func(key uint32, n uint64)) {
	clear(lc.net)
	for _, j := range segs {
		sg := lc.sums[j]
		for k, x := range sg.sums {
			lc.net[lc.leaves[j][k]] += sg.sign * x.sum
		}
	}
	sp := lc.shape
	if sp == nil {
		for leaf, n := range lc.net {
			if n > 0 && leaf != 0 {
				fn(leaf, uint64(n))
			}
		}
		return
	}
	clear(sp.net)
	for leaf, n := range lc.net {
		if n > 0 && leaf != 0 {
			if k := sp.key(lc.v, leaf); k != 0 {
				sp.net[k] += n
			}
		}
	}
	for k, n := range sp.net {
		fn(k, uint64(n))
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
	var sh stackShape
	rd, err := s.startReading(w, r, func(*Selection) (err error) {
		if name, err = nameParam(r, "name", true); err != nil {
			return err
		}
		sh, err = parseStackShape(r.URL.Query())
		return err
	})
	if err != nil {
		return err
	}
	defer rd.cancel()
	out, err := s.history(rd, name, sh)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// history reads a function's history in two steps. First the stacks of the whole range, as a top table
// reads them (cached segments included): they give the numbers over the range and sort every stack into
// the function's self and total sets (and the set the shape drops). Then one scan of the range grouped by
// bucket only sums each bucket's samples and those of each set (see bucketTotals): a few rows per bucket,
// where a read by bucket and stack returned every stack of every bucket.
func (s *Server) history(rd *reading, name string, sh stackShape) (*FunctionHistory, error) {
	step, buckets := bucketsOf(rd.sel, rd.rollups, maxHistoryPoints)
	out := &FunctionHistory{Name: name, Step: step, Points: make([]FunctionPoint, len(buckets))}
	for i, b := range buckets {
		out.Points[i].T = b.From.Unix()
	}
	sums, err := s.sums(rd.ctx, rd.sel)
	if err != nil {
		return nil, err
	}
	v, leaves, release, err := s.viewLeaves(rd.ctx, rd.sel.Service, sums)
	if err != nil {
		return nil, err
	}
	defer release()
	counts := &leafCounts{sums: sums, leaves: leaves, net: map[uint32]int64{}, v: v}
	if sh.active() {
		counts.shape = &shaped{sh: sh, of: map[uint32]uint32{}, keys: map[string]uint32{}, net: map[uint32]int64{}}
	}
	h := &history{name: name, counts: counts, class: map[uint32]leafClass{}}
	all := make([]int, len(sums))
	for j := range all {
		all[j] = j
	}
	out.Samples, out.Self, out.Total, out.Occurrences = h.add(all)
	// The sets, each stack once (a stack is in several segments).
	var self, total, drop proto.ColUInt64
	seen := map[uint64]bool{}
	for j, sg := range sums {
		for k, x := range sg.sums {
			if seen[x.stack] {
				continue
			}
			seen[x.stack] = true
			key := leaves[j][k]
			if counts.shape != nil {
				key = counts.shape.key(v, key)
			}
			if key == 0 {
				drop.Append(x.stack)
				continue
			}
			c := h.classify(key)
			if c&hasName != 0 {
				total.Append(x.stack)
			}
			if c&endsInName != 0 {
				self.Append(x.stack)
			}
		}
	}
	release()
	if out.Samples == 0 {
		return out, nil
	}
	per, err := s.bucketTotals(rd.ctx, rd.sel, rd.rollups, step, len(buckets), &drop, &self, &total)
	if err != nil {
		return nil, err
	}
	for i := range out.Points {
		p := &out.Points[i]
		p.Samples, p.Self, p.Total = positive(per[i][0]), positive(per[i][1]), positive(per[i][2])
	}
	return out, nil
}

// positive is n, or 0 below zero (only rows written into a settled bucket while it was read do that).
func positive(n int64) uint64 { return uint64(max(n, 0)) }

// bucketTotals reads a selection in n buckets of step seconds (bucket i starts at the i-th multiple of step
// from the one at or before sel.From) in one ClickHouse query, each segment of the plan (see
// bucketSegments) grouped by bucket: out[i][0] is bucket i's samples of the stacks not in drop, out[i][1+k]
// those of the stacks in sets[k]. The sets go as external tables (see learn), so the statement does not
// grow with them.
func (s *Server) bucketTotals(ctx context.Context, sel Selection, ru Rollups, step int64, n int, drop *proto.ColUInt64, sets ...*proto.ColUInt64) (out [][]int64, err error) {
	// bucketSegments, complete buckets only (see planChecked)
	err = s.planChecked(ctx, sel, bucketRollups(ru.ForSelection(sel), step), func(segs []Segment) (err error) {
		out, err = s.bucketTotalsOf(ctx, sel, segs, step, n, drop, sets...)
		return err
	})
	return out, err
}

// bucketTotalsOf is bucketTotals of the plan segs.
func (s *Server) bucketTotalsOf(ctx context.Context, sel Selection, segs []Segment, step int64, n int, drop *proto.ColUInt64, sets ...*proto.ColUInt64) ([][]int64, error) {
	out := make([][]int64, n)
	for i := range out {
		out[i] = make([]int64, 1+len(sets))
	}
	if len(segs) == 0 {
		return out, nil
	}
	var ext []ch.ExternalTable
	cols := ", toInt64(sum(count)) AS c0"
	for k, set := range sets {
		if set.Rows() == 0 {
			cols += ", toInt64(0) AS c" + strconv.Itoa(k+1)
			continue
		}
		t := "_set" + strconv.Itoa(k+1)
		ext = append(ext, ch.ExternalTable{Name: t, Data: proto.Input{{Name: "hash", Data: set}}})
		// GLOBAL: on a cluster the shards need the set too.
		cols += ", toInt64(sumIf(count, stack GLOBAL IN (SELECT hash FROM " + t + "))) AS c" + strconv.Itoa(k+1)
	}
	where := ""
	if drop != nil && drop.Rows() > 0 {
		ext = append(ext, ch.ExternalTable{Name: "_drop", Data: proto.Input{{Name: "hash", Data: drop}}})
		where = " AND stack GLOBAL NOT IN (SELECT hash FROM _drop)"
	}
	parts := make([]string, len(segs))
	for i, seg := range segs {
		parts[i] = "SELECT toUInt32(" + strconv.Itoa(i) + ") AS seg, " + bucketIndex(step) + " AS b" + cols +
			s.segmentFrom(sel, seg) + where + " GROUP BY b"
	}
	first := uint32(sel.From.Unix() / step)
	var seg, b proto.ColUInt32
	cs := make([]proto.ColInt64, 1+len(sets))
	res := proto.Results{{Name: "seg", Data: &seg}, {Name: "b", Data: &b}}
	for k := range cs {
		res = append(res, proto.ResultColumn{Name: "c" + strconv.Itoa(k), Data: &cs[k]})
	}
	err := s.ch.DoLimited(ctx, s.limits(), ch.Query{
		Body:           strings.Join(parts, " UNION ALL "),
		ExternalTables: ext,
		Result:         res,
		OnResult: func(ctx context.Context, _ proto.Block) error {
			for i, k := range seg {
				bi := int64(b[i]) - int64(first)
				if int(k) >= len(segs) || bi < 0 || bi >= int64(n) {
					return fmt.Errorf("row of segment %d, bucket %d: out of %d segments, %d buckets", k, bi, len(segs), n)
				}
				for c := range cs {
					out[bi][c] += int64(segs[k].Sign) * cs[c][i]
				}
			}
			return nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("bucket totals: %w", err)
	}
	return out, nil
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
	h.frames = h.counts.frames(leaf, h.frames[:0])
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
	// Roots are the top-level frames (the processes) with samples in the selection, whatever the name
	// filter, the maxRoots with the most samples, sorted by name: what a flame graph of the same selection
	// has under its root, for a process picker when no graph is drawn.
	Roots []string `json:"roots"`
}

// tableSorts are the orders of the functions table: by self, total or occurrences (largest first), or by
// name.
var tableSorts = []string{"self", "total", "occurrences", "name"}

// functions serves GET /api/v1/functions: the functions table with occurrences and sparklines.
func (s *Server) functions(w http.ResponseWriter, r *http.Request) error {
	var limit int
	var sortBy, match string
	var sh stackShape
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
		if match, err = nameParam(r, "match", false); err != nil {
			return err
		}
		sh, err = parseStackShape(r.URL.Query())
		return err
	})
	if err != nil {
		return err
	}
	defer rd.cancel()
	br, err := s.readBuckets(rd, maxTrendPoints, sh)
	if err != nil {
		return err
	}
	defer br.release()
	out := FunctionTable{Step: br.step, From: rd.sel.From.Unix(), Samples: make([]uint64, len(br.buckets)), Functions: []TableFunction{}}
	stats, total := tableStats(&br.counts, br.whole)
	out.Total = total
	out.Roots = tableRoots(stats)
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
	// The sparklines: the rows listed on each stack (once each), found once per leaf or shaped stack. Each
	// bucket adds its rows' signed counts straight into the rows, rather than summing per leaf first as
	// leafCounts.each does: the per-leaf map of every bucket cost more than the rest of the table. A
	// bucket's net per leaf is never below zero (a plan subtracts only rows it also adds) but for rows
	// written into a settled bucket while it was read; a total below zero is then shown as 0.
	row := make(map[string]int32, len(out.Functions))
	for i := range out.Functions {
		out.Functions[i].Trend = make([]uint64, len(br.buckets))
		row[out.Functions[i].Name] = int32(i)
	}
	rowsOf := map[uint32][]int32{}
	last := make([]uint32, len(out.Functions)) // the last key that listed each row, against recursion (keys are never 0)
	net := make([]int64, len(out.Functions))
	var frames []string
	for i, segs := range br.bySide {
		clear(net)
		var samples int64
		for _, j := range segs {
			sg := br.counts.sums[j]
			for k, x := range sg.sums {
				key := br.counts.leaves[j][k]
				if key == 0 {
					continue // the empty stack
				}
				if sp := br.counts.shape; sp != nil {
					if key = sp.key(br.v, key); key == 0 {
						continue // dropped by the view
					}
				}
				c := sg.sign * x.sum
				samples += c
				rows, ok := rowsOf[key]
				if !ok {
					frames = br.counts.frames(key, frames[:0])
					for _, f := range frames {
						if r, listed := row[f]; listed && last[r] != key {
							last[r] = key
							rows = append(rows, r)
						}
					}
					rowsOf[key] = rows
				}
				for _, r := range rows {
					net[r] += c
				}
			}
		}
		out.Samples[i] = positive(samples)
		for r, n := range net {
			out.Functions[r].Trend[i] = positive(n)
		}
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
	root        uint64 // the samples of the stacks it is the first frame of
}

// tableRoots returns the first frames of the stacks (see FunctionTable.Roots).
func tableRoots(stats map[string]*fnStat) []string {
	roots := []string{}
	for name, st := range stats {
		if st.root > 0 {
			roots = append(roots, name)
		}
	}
	if len(roots) > maxRoots {
		slices.SortFunc(roots, func(a, b string) int {
			if c := cmp.Compare(stats[b].root, stats[a].root); c != 0 {
				return c
			}
			return strings.Compare(a, b)
		})
		roots = roots[:maxRoots]
	}
	slices.Sort(roots)
	return roots
}

// tableStats returns every function with samples in the segments segs, and all their samples.
func tableStats(counts *leafCounts, segs []int) (map[string]*fnStat, uint64) {
	stats := map[string]*fnStat{}
	var total uint64
	var frames []string
	counts.each(segs, func(leaf uint32, n uint64) {
		total += n
		frames = counts.frames(leaf, frames[:0])
		for i, f := range frames {
			st := stats[f]
			if st == nil {
				st = &fnStat{}
				stats[f] = st
			}
			if i == len(frames)-1 {
				st.self += n
			}
			if i == 0 {
				st.root += n
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
