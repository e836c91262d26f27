package webui

import (
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// The fixture's functions table (GET /api/v1/functions) and function history (GET /api/v1/function), from
// the demo tree's stacks with the runtime and process view applied as query/stackshape.go documents it
// (runtimes_off by frame suffix, process and process_not by the first frame). The history's buckets are
// the whole selection scaled by a weight per bucket (1 to 5), so that every share is the same in each
// bucket and a test can compute each number from the reply's rules alone.

// fixtureSuffixes are the frame suffixes of the runtimes the fixture knows.
var fixtureSuffixes = map[string][]string{"kernel": {"k"}, "python": {"p"}, "java": {"j", "i"}, "python_ext": {"pe", "pn"}}

// shapedStacks returns the demo tree's stacks (frames joined by ';', process first) with the view of q.
func (f *fixtureAPI) shapedStacks(q url.Values) map[string]int64 {
	drop := map[string]bool{}
	for _, v := range q["runtimes_off"] {
		for _, name := range strings.Split(v, ",") {
			for _, sfx := range fixtureSuffixes[strings.TrimSpace(name)] {
				drop[sfx] = true
			}
		}
	}
	only, not := q["process"], q["process_not"]
	out := map[string]int64{}
	var walk func(n *fnode, path []string)
	walk = func(n *fnode, path []string) {
		path = append(path, n.Name)
		if n.Self > 0 {
			proc := path[0]
			keep := (len(only) == 0 || hasString(only, proc)) && !hasString(not, proc)
			if keep {
				kept := []string{proc}
				for _, fr := range path[1:] {
					if i := strings.LastIndex(fr, "_["); i >= 0 && strings.HasSuffix(fr, "]") && drop[fr[i+2:len(fr)-1]] {
						continue
					}
					kept = append(kept, fr)
				}
				out[strings.Join(kept, ";")] += n.Self
			}
		}
		for _, c := range n.Children {
			walk(c, path)
		}
	}
	for _, c := range f.demo.Children {
		walk(c, nil)
	}
	return out
}

func hasString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// fixtureFn is one function's numbers in the fixture's stacks.
type fixtureFn struct {
	Name        string  `json:"name"`
	Self        int64   `json:"self"`
	Total       int64   `json:"total"`
	Occurrences int64   `json:"occurrences"`
	Trend       []int64 `json:"trend"`
}

// fixtureStats returns every function of stacks with its self, total (once per stack) and occurrences, and
// all samples.
func fixtureStats(stacks map[string]int64) (map[string]*fixtureFn, int64) {
	out := map[string]*fixtureFn{}
	var all int64
	for s, c := range stacks {
		all += c
		frames := strings.Split(s, ";")
		seen := map[string]bool{}
		for i, fr := range frames {
			st := out[fr]
			if st == nil {
				st = &fixtureFn{Name: fr}
				out[fr] = st
			}
			if i == len(frames)-1 {
				st.Self += c
			}
			if !seen[fr] {
				seen[fr] = true
				st.Total += c
				st.Occurrences++
			}
		}
	}
	return out, all
}

// fixtureWeight is the weight of bucket i of a history or a sparkline.
func fixtureWeight(i int) int64 { return int64(i%5 + 1) }

// fixtureBuckets returns the step and the bucket starts of a range: 12 buckets.
func fixtureBuckets(q url.Values) (int64, []int64) {
	from, _ := strconv.ParseInt(q.Get("from"), 10, 64)
	to, _ := strconv.ParseInt(q.Get("to"), 10, 64)
	step := max((to-from)/12, 60)
	var ts []int64
	for t := from; t < to; t += step {
		ts = append(ts, t)
	}
	return step, ts
}

func (f *fixtureAPI) functions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	stats, all := fixtureStats(f.shapedStacks(q))
	step, ts := fixtureBuckets(q)
	from, _ := strconv.ParseInt(q.Get("from"), 10, 64)
	var wsum int64
	for i := range ts {
		wsum += fixtureWeight(i)
	}
	samples := make([]int64, len(ts))
	for i := range ts {
		samples[i] = all * fixtureWeight(i)
	}
	match := strings.ToLower(q.Get("match"))
	rows := []*fixtureFn{}
	for _, st := range stats {
		if match == "" || strings.Contains(strings.ToLower(st.Name), match) {
			row := *st
			row.Self, row.Total = st.Self*wsum, st.Total*wsum
			row.Trend = make([]int64, len(ts))
			for i := range ts {
				row.Trend[i] = st.Total * fixtureWeight(i)
			}
			rows = append(rows, &row)
		}
	}
	key := func(x *fixtureFn) int64 {
		switch q.Get("sort") {
		case "self":
			return x.Self
		case "occurrences":
			return x.Occurrences
		}
		return x.Total
	}
	sort.Slice(rows, func(i, j int) bool {
		if q.Get("sort") != "name" && key(rows[i]) != key(rows[j]) {
			return key(rows[i]) > key(rows[j])
		}
		return rows[i].Name < rows[j].Name
	})
	matched := len(rows)
	if limit, _ := strconv.Atoi(q.Get("limit")); limit > 0 && len(rows) > limit {
		rows = rows[:limit]
	}
	// The roots: the first frames of the shaped stacks, whatever the name filter, sorted.
	roots := []string{}
	for st, c := range f.shapedStacks(q) {
		if root, _, _ := strings.Cut(st, ";"); c > 0 && !slices.Contains(roots, root) {
			roots = append(roots, root)
		}
	}
	sort.Strings(roots)
	writeJSON(w, 200, map[string]any{"total": all * wsum, "step": step, "from": from, "samples": samples, "matched": matched, "functions": rows, "roots": roots})
}

// fixtureHistory is the fixture's reply of GET /api/v1/function for q.
func (f *fixtureAPI) fixtureHistory(q url.Values) map[string]any {
	name := q.Get("name")
	stats, all := fixtureStats(f.shapedStacks(q))
	st := stats[name]
	if st == nil {
		st = &fixtureFn{Name: name}
	}
	step, ts := fixtureBuckets(q)
	var wsum int64
	points := []map[string]int64{}
	for i, t := range ts {
		k := fixtureWeight(i)
		wsum += k
		points = append(points, map[string]int64{"t": t, "samples": all * k, "self": st.Self * k, "total": st.Total * k})
	}
	return map[string]any{"name": name, "step": step, "samples": all * wsum, "self": st.Self * wsum, "total": st.Total * wsum,
		"occurrences": st.Occurrences, "points": points}
}

func (f *fixtureAPI) function(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("name") == "" {
		apiError(w, http.StatusBadRequest, "missing parameter")
		return
	}
	writeJSON(w, 200, f.fixtureHistory(r.URL.Query()))
}
