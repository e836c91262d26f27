package query

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/flamestream/flamestream/internal/flame"
)

// The function endpoints read a range as buckets: one selection per bucket, all read by one ClickHouse query
// (see sums), then a view of the service's trie per bucket and one for the whole range (the sum of the
// buckets). The numbers are those of the flame graph and the top table of the same selection: a function's
// self is the samples whose leaf frame it is, its total those whose stack holds it at least once.

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

// bucketViews reads the buckets' sums in one query and calls whole with a view of the whole range, then
// each with a view of bucket i, in order. Each view is released when its call returns; a call that returns
// an error stops the rest.
func (s *Server) bucketViews(ctx context.Context, service string, buckets []Selection,
	whole func(v *flame.View) error, each func(i int, v *flame.View) error) error {
	sums, err := s.sums(ctx, buckets...)
	if err != nil {
		return err
	}
	// sums puts the segments of bucket i on side i; a view adds the comparison side.
	bySide := make([][]segmentSums, len(buckets))
	all := make([]segmentSums, 0, len(sums))
	for _, sg := range sums {
		i := int(sg.side)
		sg.side = comparison
		bySide[i] = append(bySide[i], sg)
		all = append(all, sg)
	}
	call := func(segs []segmentSums, fn func(v *flame.View) error) error {
		v, release, err := s.view(ctx, service, segs)
		if err != nil {
			return err
		}
		defer release()
		return fn(v)
	}
	// The whole range first: it learns every stack of every bucket in one go.
	if err := call(all, whole); err != nil {
		return err
	}
	for i, segs := range bySide {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := call(segs, func(v *flame.View) error { return each(i, v) }); err != nil {
			return err
		}
	}
	return nil
}

// foldedLines is an io.Writer that takes a view's folded export (see flame.View.WriteFolded: one line per
// distinct stack with samples, "frame;frame;… count") and calls stack with the frames of each line. It holds
// one line at a time, however many stacks there are.
type foldedLines struct {
	buf   []byte
	stack func(frames [][]byte)
	parts [][]byte
}

func (f *foldedLines) Write(p []byte) (int, error) {
	f.buf = append(f.buf, p...)
	start := 0
	for {
		i := bytes.IndexByte(f.buf[start:], '\n')
		if i < 0 {
			break
		}
		line := f.buf[start : start+i]
		start += i + 1
		sp := bytes.LastIndexByte(line, ' ')
		if sp < 0 {
			return 0, fmt.Errorf("folded line without a count: %.80q", line)
		}
		f.parts = f.parts[:0]
		for rest := line[:sp]; ; {
			k := bytes.IndexByte(rest, ';')
			if k < 0 {
				f.parts = append(f.parts, rest)
				break
			}
			f.parts = append(f.parts, rest[:k])
			rest = rest[k+1:]
		}
		f.stack(f.parts)
	}
	f.buf = f.buf[:copy(f.buf, f.buf[start:])]
	return len(p), nil
}

// occurrences returns, for each function of a view, the number of distinct stacks with samples that hold
// it (a recursive function counts once per stack). The map holds the view's function names, which the
// trie holds already.
func occurrences(v *flame.View) (map[string]int64, error) {
	out := map[string]int64{}
	last := map[string]int64{} // the last stack that counted each name, against recursion
	var n int64
	err := v.WriteFolded(&foldedLines{stack: func(frames [][]byte) {
		n++
		for _, fr := range frames {
			if last[string(fr)] == n {
				continue
			}
			name := string(fr)
			last[name] = n
			out[name]++
		}
	}})
	return out, err
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

// function serves GET /api/v1/function: the history of one frame name over the range and filters. A tree
// per bucket would cost a pass over the whole service trie per bucket: instead the stacks' leaves are
// classified once (does the stack hold the name, does it end in it) and each bucket adds its counts per leaf.
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
	step, buckets := bucketsOf(rd.sel, rd.rollups, maxHistoryPoints)
	sums, err := s.sums(rd.ctx, buckets...)
	if err != nil {
		return err
	}
	bySide := make([][]int, len(buckets)) // the segments of each bucket, by index in sums
	for j := range sums {
		bySide[sums[j].side] = append(bySide[sums[j].side], j)
		sums[j].side = comparison
	}
	v, leaves, release, err := s.viewLeaves(rd.ctx, rd.sel.Service, sums)
	if err != nil {
		return err
	}
	defer release()
	h := historyOf(v, name, sums, leaves)
	out := FunctionHistory{Name: name, Step: step, Points: make([]FunctionPoint, len(buckets))}
	whole := make([]int, len(sums))
	for j := range whole {
		whole[j] = j
	}
	var wholeOcc int64
	out.Samples, out.Self, out.Total, wholeOcc = h.add(whole)
	out.Occurrences = wholeOcc
	for i, segs := range bySide {
		p := &out.Points[i]
		p.T = buckets[i].From.Unix()
		p.Samples, p.Self, p.Total, _ = h.add(segs)
	}
	release()
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

// history sums the counts of a function's stacks over sets of segments (see add).
type history struct {
	v      *flame.View
	name   string
	sums   []segmentSums
	leaves [][]uint32
	class  map[uint32]leafClass // memo of classify, by leaf
	net    map[uint32]int64     // scratch of add: the count of each leaf
	frames []string
}

func historyOf(v *flame.View, name string, sums []segmentSums, leaves [][]uint32) *history {
	return &history{v: v, name: name, sums: sums, leaves: leaves, class: map[uint32]leafClass{}, net: map[uint32]int64{}}
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

// add sums the segments segs (indexes in sums) per leaf, as a view would (a leaf whose sum is below zero is
// left out, see flame.View.DropNegative), and returns all samples, the function's self and total, and the
// number of distinct stacks with samples that hold it.
func (h *history) add(segs []int) (samples, self, total uint64, occurrences int64) {
	clear(h.net)
	for _, j := range segs {
		sg := h.sums[j]
		for k, x := range sg.sums {
			h.net[h.leaves[j][k]] += sg.sign * x.sum
		}
	}
	for leaf, n := range h.net {
		if n <= 0 || leaf == 0 {
			continue
		}
		samples += uint64(n)
		c := h.classify(leaf)
		if c&hasName != 0 {
			total += uint64(n)
			occurrences++
		}
		if c&endsInName != 0 {
			self += uint64(n)
		}
	}
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
	step, buckets := bucketsOf(rd.sel, rd.rollups, maxTrendPoints)
	out := FunctionTable{Step: step, From: rd.sel.From.Unix(), Samples: make([]uint64, len(buckets)), Functions: []TableFunction{}}
	index := map[string]int{} // row of each function listed
	lower := strings.ToLower(match)
	err = s.bucketViews(rd.ctx, rd.sel.Service, buckets, func(v *flame.View) error {
		out.Total = v.Total()
		occ, err := occurrences(v)
		if err != nil {
			return err
		}
		for _, f := range v.TopFunctions("self", 0) {
			if lower != "" && !strings.Contains(strings.ToLower(f.Name), lower) {
				continue
			}
			out.Functions = append(out.Functions, TableFunction{Name: f.Name, Self: f.Self, Total: f.Total, Occurrences: occ[f.Name]})
		}
		sortTable(out.Functions, sortBy)
		out.Matched = len(out.Functions)
		if len(out.Functions) > limit {
			out.Functions = out.Functions[:limit]
		}
		for i := range out.Functions {
			out.Functions[i].Trend = make([]uint64, len(buckets))
			index[out.Functions[i].Name] = i
		}
		return nil
	}, func(i int, v *flame.View) error {
		out.Samples[i] = v.Total()
		for _, f := range v.TopFunctions("self", 0) {
			if k, ok := index[f.Name]; ok {
				out.Functions[k].Trend[i] = f.Total
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
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
