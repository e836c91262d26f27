package query

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/flamestream/flamestream/internal/chdb"
)

// dimensions are the filterable columns: the allow-list of identifiers that may appear in SQL, keyed by
// their API parameter name.
var dimensions = []string{"host", "container", "instance_type", "k8s_object"}

// maxRange bounds one query's time range (retention of the day rollups is a year).
const maxRange = 400 * 24 * time.Hour

// Selection is one service, time range and filter set.
type Selection struct {
	Service  string
	From, To time.Time
	// Include and Exclude map a dimension to the values it must (not) have.
	Include, Exclude map[string][]string
}

// parseTime accepts RFC 3339 or unix seconds.
func parseTime(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return t, fmt.Errorf("%q is neither RFC 3339 nor unix seconds", s)
	}
	return t.UTC(), nil
}

// parseSelection reads service, from, to and the filters; prefix selects the baseline side of a diff
// ("base_").
func parseSelection(q url.Values, prefix string, now time.Time) (Selection, error) {
	sel := Selection{Service: q.Get("service"), Include: map[string][]string{}, Exclude: map[string][]string{}}
	if sel.Service == "" {
		return sel, badRequest("missing parameter", errors.New("service is required"))
	}
	sel.To, sel.From = now, now.Add(-time.Hour)
	if v := q.Get(prefix + "to"); v != "" {
		t, err := parseTime(v)
		if err != nil {
			return sel, badRequest("bad "+prefix+"to", err)
		}
		sel.To = t
	}
	if v := q.Get(prefix + "from"); v != "" {
		t, err := parseTime(v)
		if err != nil {
			return sel, badRequest("bad "+prefix+"from", err)
		}
		sel.From = t
	} else if q.Get(prefix+"to") != "" {
		sel.From = sel.To.Add(-time.Hour)
	}
	if !sel.From.Before(sel.To) {
		return sel, badRequest("bad time range", errors.New("from must be before to"))
	}
	if sel.To.Sub(sel.From) > maxRange {
		return sel, badRequest("bad time range", fmt.Errorf("at most %v", maxRange))
	}
	for _, d := range dimensions {
		if vs := q[prefix+d]; len(vs) > 0 {
			if len(vs) > 1000 {
				return sel, badRequest("too many filter values", fmt.Errorf("%s: at most 1000", d))
			}
			sel.Include[d] = vs
		}
		if vs := q[prefix+d+"_not"]; len(vs) > 0 {
			if len(vs) > 1000 {
				return sel, badRequest("too many filter values", fmt.Errorf("%s_not: at most 1000", d))
			}
			sel.Exclude[d] = vs
		}
	}
	return sel, nil
}

func selectionOf(r *http.Request) (Selection, error) {
	return parseSelection(r.URL.Query(), "", time.Now().UTC())
}

// Clauses renders the selection as the PREWHERE and WHERE clauses of a query on a table with a `ts`
// column. The time range goes to PREWHERE so that ClickHouse reads the other
// columns only for the rows in range: samples is ordered by host before time, so without it a minute of raw
// rows cost a read of the service's whole day (measured on 18.16: 20 ms → 5 ms for a 59 s raw edge).
func (s Selection) Clauses(tsCol string, from, to time.Time) string {
	return " PREWHERE " + tsCol + " >= " + chdb.Time(from) + " AND " + tsCol + " < " + chdb.Time(to) +
		" WHERE service = " + chdb.String(s.Service) + s.filterSQL()
}

func (s Selection) filterSQL() string {
	var b strings.Builder
	for _, d := range dimensions {
		if vs := s.Include[d]; len(vs) > 0 {
			b.WriteString(" AND " + d + " IN " + chdb.Strings(vs))
		}
		if vs := s.Exclude[d]; len(vs) > 0 {
			b.WriteString(" AND " + d + " NOT IN " + chdb.Strings(vs))
		}
	}
	return b.String()
}

// HasFilters reports whether any filter is set (all-hosts rollups can serve only unfiltered queries).
func (s Selection) HasFilters() bool { return len(s.Include)+len(s.Exclude) > 0 }
