package query

import (
	"cmp"
	"errors"
	"math"
	"net/http"
	"slices"
	"strings"
)

// CompareRow is one function of the side-by-side table of a diff (GET /api/v1/diff?format=table): its self
// and total samples in the comparison (A) and the baseline (B), the absolute deltas A − B, and the
// normalized deltas: A's count as a fraction of A's total minus B's as a fraction of B's total, the change
// that stays meaningful when the two sides sampled different amounts (another range, service or host set).
// Total counts a stack once however often the function recurs in it.
type CompareRow struct {
	Name        string  `json:"name"`
	Self        uint64  `json:"self"`
	Total       uint64  `json:"total"`
	BaseSelf    uint64  `json:"base_self"`
	BaseTotal   uint64  `json:"base_total"`
	DeltaSelf   int64   `json:"delta_self"`
	DeltaTotal  int64   `json:"delta_total"`
	NDeltaSelf  float64 `json:"ndelta_self"`
	NDeltaTotal float64 `json:"ndelta_total"`
}

// compareSorts are the sort keys of the table: a row's field, or "change", the size of the normalized
// change of total (|ndelta_total|) whichever its sign, the default.
var compareSorts = map[string]func(r *CompareRow) float64{
	"self":         func(r *CompareRow) float64 { return float64(r.Self) },
	"total":        func(r *CompareRow) float64 { return float64(r.Total) },
	"base_self":    func(r *CompareRow) float64 { return float64(r.BaseSelf) },
	"base_total":   func(r *CompareRow) float64 { return float64(r.BaseTotal) },
	"delta_self":   func(r *CompareRow) float64 { return float64(r.DeltaSelf) },
	"delta_total":  func(r *CompareRow) float64 { return float64(r.DeltaTotal) },
	"ndelta_self":  func(r *CompareRow) float64 { return r.NDeltaSelf },
	"ndelta_total": func(r *CompareRow) float64 { return r.NDeltaTotal },
	"change":       func(r *CompareRow) float64 { return math.Abs(r.NDeltaTotal) },
}

// diffTable reads a diff's format: the tree (tree, the default) or the side-by-side table (table).
func diffTable(r *http.Request) (bool, error) {
	switch r.URL.Query().Get("format") {
	case "", "tree":
		return false, nil
	case "table":
		return true, nil
	}
	return false, badRequest("bad format", errors.New("tree or table"))
}

// compareParams are the table's own parameters of a diff.
type compareParams struct {
	sort  string
	asc   bool
	limit int
}

func parseCompareParams(r *http.Request) (compareParams, error) {
	p := compareParams{sort: r.URL.Query().Get("sort")}
	if p.sort == "" {
		p.sort = "change"
	}
	if p.sort != "name" && compareSorts[p.sort] == nil {
		return p, badRequest("bad sort", errors.New("name, self, total, base_self, base_total, delta_self, delta_total, ndelta_self, ndelta_total or change"))
	}
	switch r.URL.Query().Get("order") {
	case "":
		p.asc = p.sort == "name" // names read A to Z, counts largest first
	case "desc":
	case "asc":
		p.asc = true
	default:
		return p, badRequest("bad order", errors.New("asc or desc"))
	}
	var err error
	p.limit, err = intParam(r, "limit", 1000, 1, 100000)
	return p, err
}

// compareTable answers a diff with format=table: per function of either side, self and total in each and
// their deltas, sorted and cut to the limit. The stacks are read through stackCounts (both services'
// tries when the baseline is of another service) with the request's runtime and process shape applied.
func (s *Server) compareTable(w http.ResponseWriter, r *http.Request, rd *reading, base Selection) error {
	p, err := parseCompareParams(r)
	if err != nil {
		return err
	}
	sh, err := parseStackShape(r.URL.Query())
	if err != nil {
		return err
	}
	stacks, err := s.stackCounts(rd.ctx, rd.sel, &base)
	if err != nil {
		return err
	}
	rows, total, baseTotal := compareRows(stacks, sh)
	sortCompare(rows, p)
	n := len(rows)
	if len(rows) > p.limit {
		rows = rows[:p.limit]
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"total": total, "base_total": baseTotal, "functions": rows, "count": n,
		"service": rd.sel.Service, "base_service": base.Service,
	})
	return nil
}

// compareRows sums the stacks, shaped by sh, per function on both sides.
func compareRows(stacks []stackCount, sh stackShape) (rows []*CompareRow, total, baseTotal uint64) {
	byName := map[string]*CompareRow{}
	row := func(name string) *CompareRow {
		r := byName[name]
		if r == nil {
			r = &CompareRow{Name: name}
			byName[name] = r
		}
		return r
	}
	var buf []string
	seen := map[string]bool{}
	for _, st := range stacks {
		fr, ok := sh.apply(st.frames, buf)
		buf = fr
		if !ok {
			continue
		}
		total += st.cmp
		baseTotal += st.base
		leaf := row(fr[len(fr)-1])
		leaf.Self += st.cmp
		leaf.BaseSelf += st.base
		clear(seen)
		for _, f := range fr {
			if seen[f] {
				continue // a recursive function counts its stack once
			}
			seen[f] = true
			r := row(f)
			r.Total += st.cmp
			r.BaseTotal += st.base
		}
	}
	share := func(x, of uint64) float64 {
		if of == 0 {
			return 0
		}
		return float64(x) / float64(of)
	}
	rows = make([]*CompareRow, 0, len(byName))
	for _, r := range byName {
		r.DeltaSelf = int64(r.Self) - int64(r.BaseSelf)
		r.DeltaTotal = int64(r.Total) - int64(r.BaseTotal)
		r.NDeltaSelf = sixDigits(share(r.Self, total) - share(r.BaseSelf, baseTotal))
		r.NDeltaTotal = sixDigits(share(r.Total, total) - share(r.BaseTotal, baseTotal))
		rows = append(rows, r)
	}
	return rows, total, baseTotal
}

// sixDigits rounds to six significant digits, as the diff tree's shares are.
func sixDigits(x float64) float64 {
	if x == 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	e := math.Pow(10, 5-math.Floor(math.Log10(math.Abs(x))))
	return math.Round(x*e) / e
}

// sortCompare orders rows by p.sort (descending unless p.asc), ties by name.
func sortCompare(rows []*CompareRow, p compareParams) {
	key := compareSorts[p.sort]
	slices.SortFunc(rows, func(a, b *CompareRow) int {
		c := 0
		if key == nil {
			c = strings.Compare(a.Name, b.Name)
			if !p.asc {
				c = -c
			}
		} else {
			c = cmp.Compare(key(b), key(a))
			if p.asc {
				c = -c
			}
		}
		if c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
}
