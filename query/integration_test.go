package query_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"
	"github.com/cespare/xxhash/v2"
	"github.com/go-chi/chi/v5"
	"github.com/google/pprof/profile"

	"github.com/flamestream/flamestream/cmd/flamestream/testenv"
	"github.com/flamestream/flamestream/indexer"
	"github.com/flamestream/flamestream/internal/flame"
	"github.com/flamestream/flamestream/internal/pgdb"
	"github.com/flamestream/flamestream/query"
)

// row is one raw sample row as the indexer writes it.
type row struct {
	ts                                 time.Time
	service, host, container, instance string
	k8s                                string
	stack                              string
	count                              uint32
}

// fixture is a stack with rows inserted straight into its ClickHouse database, and a read token.
type fixture struct {
	st    *testenv.Stack
	token string
	base  string // the API's base URL: the stack's, or a test server's
	rows  []row
	day0  time.Time
}

var stackPool = func() []string {
	var out []string
	for _, comm := range []string{"python3", "java", "nginx"} {
		for i := 0; i < 12; i++ {
			s := comm + ";main_[p];loop_[p]"
			switch i % 4 {
			case 1:
				s += ";handle_[p];parse_[p]"
			case 2:
				s += ";handle_[p];write_[k]"
			case 3:
				s += ";gc_[j]"
			}
			s += ";leaf" + strconv.Itoa(i) + "_[k]"
			out = append(out, s)
		}
	}
	return out
}()

// newFixture inserts three and a half days of samples from four hosts, one profile every 7 minutes per
// host at an odd second, so that every interesting range has rows in its raw head and tail, whole hours
// and whole days.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	st := testenv.Start(t, testenv.Options{})
	f := &fixture{st: st, token: st.Token(t, pgdb.KindRead, ""), base: st.URL}
	f.day0 = time.Now().UTC().Truncate(24 * time.Hour).Add(-5 * 24 * time.Hour)
	rng := rand.New(rand.NewPCG(7, 11))
	hosts := []string{"web-1", "web-2", "db-1", "it's \"quoted\"\\"}
	start, end := f.day0.Add(-6*time.Hour), f.day0.Add(3*24*time.Hour+5*time.Hour)
	for i, h := range hosts {
		for ts := start.Add(time.Duration(i*13+1) * time.Second); ts.Before(end); ts = ts.Add(7*time.Minute + time.Duration(rng.IntN(30))*time.Second) {
			n := 3 + rng.IntN(6)
			for j := 0; j < n; j++ {
				f.rows = append(f.rows, row{ts: ts, service: "svc", host: h, container: "c" + strconv.Itoa(j%3),
					instance: "m5.large", k8s: "deploy/app", stack: stackPool[rng.IntN(len(stackPool))], count: uint32(1 + rng.IntN(50))})
			}
		}
	}
	// A noise service in the same tables.
	for ts := start; ts.Before(end); ts = ts.Add(time.Hour) {
		f.rows = append(f.rows, row{ts: ts, service: "noise", host: "web-1", stack: stackPool[0], count: 1000})
	}
	f.setMinuteEpoch(t)
	f.insert(t, f.rows)
	return f
}

// setMinuteEpoch checks the epoch the migration recorded for the minute rollup (the next minute: the
// stack was migrated just now) and moves it back into the fixture's data, to 9:30 on day0, before the
// server reads it. A row at 9:20, before the epoch, is put straight into the minute rollup: it stands for
// the partial rows a rollup holds before its epoch, and shows up in a flame graph if the planner reads
// minutes it must not.
func (f *fixture) setMinuteEpoch(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	var n, since proto.ColUInt64
	if err := f.st.CH.Do(ctx, ch.Query{
		Body:   "SELECT count() AS n, toUInt64(min(toUInt32(since))) AS since FROM " + f.st.CH.Table("rollup_epochs") + " WHERE name = 'samples_1m_all'",
		Result: proto.Results{{Name: "n", Data: &n}, {Name: "since", Data: &since}},
	}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	if len(n) != 1 || n[0] != 1 || since[0]%60 != 0 || int64(since[0]) <= now-60 || int64(since[0]) > now+120 {
		t.Fatalf("migration recorded minute rollup epoch %v (rows %v), want the start of the next minute after %d", since, n, now)
	}
	epoch := f.day0.Add(9*time.Hour + 30*time.Minute)
	var sinceCol proto.ColDateTime
	sinceCol.Append(epoch)
	name := new(proto.ColStr)
	name.Append("samples_1m_all")
	if err := f.st.CH.Insert(ctx, "rollup_epochs", proto.Input{{Name: "name", Data: name}, {Name: "since", Data: &sinceCol}}); err != nil {
		t.Fatal(err)
	}
	var ts proto.ColDateTime
	ts.Append(epoch.Add(-10 * time.Minute))
	svc := new(proto.ColStr)
	svc.Append("svc")
	stack, count := proto.ColUInt64{xxhash.Sum64String(stackPool[0])}, proto.ColUInt64{999999}
	if err := f.st.CH.Insert(ctx, "samples_1m_all", proto.Input{{Name: "ts", Data: &ts}, {Name: "service", Data: svc},
		{Name: "stack", Data: &stack}, {Name: "count", Data: &count}}); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) insert(t *testing.T, rows []row) {
	t.Helper()
	var (
		ts                         proto.ColDateTime
		svc, host, cont, inst, k8s proto.ColStr
		profile, stack             proto.ColUInt64
		count                      proto.ColUInt32
		hash                       proto.ColUInt64
		frames                     proto.ColStr
		seen                       = map[uint64]bool{}
	)
	for i, r := range rows {
		h := xxhash.Sum64String(r.stack)
		ts.Append(r.ts)
		svc.Append(r.service)
		host.Append(r.host)
		cont.Append(r.container)
		inst.Append(r.instance)
		k8s.Append(r.k8s)
		profile.Append(uint64(i))
		stack.Append(h)
		count.Append(r.count)
		if !seen[h] {
			seen[h] = true
			hash.Append(h)
			frames.Append(r.stack)
		}
	}
	ctx := context.Background()
	if err := f.st.CH.Insert(ctx, "stacks", proto.Input{{Name: "hash", Data: &hash}, {Name: "frames", Data: &frames}}); err != nil {
		t.Fatal(err)
	}
	if err := f.st.CH.Insert(ctx, "samples", proto.Input{{Name: "ts", Data: &ts}, {Name: "service", Data: &svc},
		{Name: "host", Data: &host}, {Name: "container", Data: &cont}, {Name: "instance_type", Data: &inst},
		{Name: "k8s_object", Data: &k8s}, {Name: "profile", Data: &profile}, {Name: "stack", Data: &stack},
		{Name: "count", Data: &count}}); err != nil {
		t.Fatal(err)
	}
}

// filter is a raw-rows version of the API filters.
type filter map[string][]string

func (fl filter) match(r row) bool {
	get := map[string]string{"host": r.host, "container": r.container, "instance_type": r.instance, "k8s_object": r.k8s}
	for k, vs := range fl {
		dim, not := strings.CutSuffix(k, "_not")
		in := false
		for _, v := range vs {
			in = in || get[dim] == v
		}
		if in == not {
			return false
		}
	}
	return true
}

// rawStacks computes, from the inserted rows only, the count per stack of a selection.
func (f *fixture) rawStacks(service string, from, to time.Time, fl filter) map[string]uint64 {
	out := map[string]uint64{}
	for _, r := range f.rows {
		if r.service == service && !r.ts.Before(from) && r.ts.Before(to) && fl.match(r) {
			out[r.stack] += uint64(r.count)
		}
	}
	return out
}

func (f *fixture) get(t *testing.T, path string, q url.Values) (int, []byte) {
	t.Helper()
	code, _, body := f.getWithHeader(t, path, q)
	return code, body
}

// getWithHeader is get that also returns the reply's headers.
func (f *fixture) getWithHeader(t *testing.T, path string, q url.Values) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.base+path+"?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+f.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body
}

func (f *fixture) getJSON(t *testing.T, path string, q url.Values, v any) {
	t.Helper()
	f.getJSONHeader(t, path, q, v)
}

// getJSONHeader is getJSON that also returns the reply's headers.
func (f *fixture) getJSONHeader(t *testing.T, path string, q url.Values, v any) http.Header {
	t.Helper()
	code, h, body := f.getWithHeader(t, path, q)
	if code != http.StatusOK {
		t.Fatalf("GET %s?%s: %d %s", path, q.Encode(), code, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
	return h
}

func params(service string, from, to time.Time, fl filter) url.Values {
	q := url.Values{"service": {service}, "from": {from.Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)}}
	for k, vs := range fl {
		q[k] = vs
	}
	return q
}

type node struct {
	Name      string  `json:"name"`
	Value     uint64  `json:"value"`
	Self      uint64  `json:"self"`
	Base      uint64  `json:"base"`
	BaseSelf  uint64  `json:"base_self"`
	Other     bool    `json:"other"`
	Total     *uint64 `json:"total"`
	BaseTotal *uint64 `json:"base_total"`
	Share     float64 `json:"share"`
	BaseShare float64 `json:"base_share"`
	Delta     float64 `json:"delta"`
	Children  []*node `json:"children"`
}

// flat maps every node's frame path to its node.
func flat(n *node) map[string]*node {
	out := map[string]*node{}
	var walk func(prefix string, n *node)
	walk = func(prefix string, n *node) {
		out[prefix] = n
		for _, c := range n.Children {
			p := c.Name
			if prefix != "" {
				p = prefix + ";" + c.Name
			}
			walk(p, c)
		}
	}
	walk("", n)
	return out
}

// expectedTree builds the tree of raw stack counts with the flame package, flattened.
func expectedTree(t *testing.T, stacks map[string]uint64) map[string]*node {
	t.Helper()
	b := new(flame.Builder)
	for s, c := range stacks {
		b.Add(s, c)
	}
	raw, err := json.Marshal(b.Tree(0))
	if err != nil {
		t.Fatal(err)
	}
	var n node
	if err := json.Unmarshal(raw, &n); err != nil {
		t.Fatal(err)
	}
	return flat(&n)
}

func sameTree(t *testing.T, what string, got, want map[string]*node) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d nodes, want %d", what, len(got), len(want))
	}
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		g := got[k]
		if g == nil {
			t.Errorf("%s: node %q missing", what, k)
			continue
		}
		if g.Value != want[k].Value || g.Self != want[k].Self {
			t.Errorf("%s: node %q value/self %d/%d, want %d/%d", what, k, g.Value, g.Self, want[k].Value, want[k].Self)
		}
	}
}

// ranges are the time ranges every exactness test runs over: each touches a different mix of tables.
func (f *fixture) ranges() []struct {
	name     string
	from, to time.Time
} {
	d := f.day0
	return []struct {
		name     string
		from, to time.Time
	}{
		{"20 minutes inside an hour (raw, minute if unfiltered)", d.Add(10*time.Hour + 5*time.Minute + 7*time.Second), d.Add(10*time.Hour + 25*time.Minute)},
		{"one aligned hour (hour rollup)", d.Add(10 * time.Hour), d.Add(11 * time.Hour)},
		{"hours with unaligned edges (raw + hour)", d.Add(9*time.Hour + 17*time.Minute + 3*time.Second), d.Add(15*time.Hour + 41*time.Minute + 59*time.Second)},
		{"one aligned day (day rollup)", d.Add(24 * time.Hour), d.Add(48 * time.Hour)},
		{"days with unaligned edges (raw + hour + day)", d.Add(-4*time.Hour - 31*time.Minute - 1*time.Second), d.Add(72*time.Hour + 2*time.Hour + 13*time.Minute + 5*time.Second)},
		{"whole range", d.Add(-7 * time.Hour), d.Add(80 * time.Hour)},
		{"minutes across the minute rollup's epoch (raw before it)", d.Add(9*time.Hour + 12*time.Minute + 13*time.Second), d.Add(9*time.Hour + 48*time.Minute + 31*time.Second)},
		{"an hour but seconds at both ends (hour minus raw)", d.Add(10*time.Hour + 3*time.Second), d.Add(10*time.Hour + 59*time.Minute + 58*time.Second)},
		{"hours but seconds at the end (hour minus raw in the tail)", d.Add(11 * time.Hour), d.Add(13*time.Hour + 59*time.Minute + 57*time.Second)},
		{"days but seconds at both ends (day minus raw)", d.Add(5 * time.Second), d.Add(2*24*time.Hour + 23*time.Hour + 59*time.Minute + 50*time.Second)},
		{"raw before the epoch, minutes after it but seconds (minute minus raw)", d.Add(9*time.Hour + 10*time.Minute + 3*time.Second), d.Add(9*time.Hour + 31*time.Minute + 58*time.Second)},
		{"a minute but seconds just after the epoch (minute minus raw)", d.Add(9*time.Hour + 30*time.Minute + 2*time.Second), d.Add(9*time.Hour + 58*time.Minute)},
	}
}

var filters = []struct {
	name string
	f    filter
}{
	{"no filter", nil},
	{"one host", filter{"host": {"web-1"}}},
	{"two hosts but not a container", filter{"host": {"web-2", "it's \"quoted\"\\"}, "container_not": {"c1"}}},
	{"exclude a host", filter{"host_not": {"db-1"}}},
}

func TestFlamegraphOverRollupsEqualsRawRowsOnly(t *testing.T) {
	f := newFixture(t)
	for _, pass := range []string{"cold", "cached"} { // the second pass reads settled segments from the cache
		for _, r := range f.ranges() {
			for _, fl := range filters {
				t.Run(pass+"/"+r.name+"/"+fl.name, func(t *testing.T) {
					var got node
					q := params("svc", r.from, r.to, fl.f)
					q.Set("maxNodes", "0")
					f.getJSON(t, "/api/v1/flamegraph", q, &got)
					want := f.rawStacks("svc", r.from, r.to, fl.f)
					if len(want) == 0 {
						t.Fatal("fixture has no rows in this range")
					}
					sameTree(t, "flamegraph", flat(&got), expectedTree(t, want))
				})
			}
		}
	}
}

func TestDiffNodesCarryBothSingleGraphs(t *testing.T) {
	f := newFixture(t)
	rs := f.ranges()
	for _, tc := range []struct {
		name       string
		cmp, base  int
		fl, baseFl filter
	}{
		{"two ranges, same filters", 4, 3, filter{"host": {"web-1"}}, nil},
		{"same range, two filter sets", 2, 2, filter{"host": {"web-1"}}, filter{"host": {"web-2"}}},
		{"raw against rollups, unfiltered vs excluded", 0, 5, nil, filter{"host_not": {"db-1"}}},
		{"minutes across the epoch against minutes and hours, unfiltered", 6, 2, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := params("svc", rs[tc.cmp].from, rs[tc.cmp].to, tc.fl)
			q.Set("base_from", rs[tc.base].from.Format(time.RFC3339))
			q.Set("base_to", rs[tc.base].to.Format(time.RFC3339))
			baseFl := tc.baseFl
			if baseFl == nil {
				baseFl = tc.fl
			} else {
				for k, vs := range baseFl {
					q["base_"+k] = vs
				}
			}
			q.Set("maxNodes", "0")
			var got node
			f.getJSON(t, "/api/v1/diff", q, &got)
			cmp := expectedTree(t, f.rawStacks("svc", rs[tc.cmp].from, rs[tc.cmp].to, tc.fl))
			base := expectedTree(t, f.rawStacks("svc", rs[tc.base].from, rs[tc.base].to, baseFl))
			if got.Total == nil || got.BaseTotal == nil || *got.Total != cmp[""].Value || *got.BaseTotal != base[""].Value {
				t.Fatalf("root total/base_total %v/%v, want %d/%d", got.Total, got.BaseTotal, cmp[""].Value, base[""].Value)
			}
			g := flat(&got)
			for path, n := range g {
				var wv, wb, ws, wbs uint64
				if c := cmp[path]; c != nil {
					wv, ws = c.Value, c.Self
				}
				if b := base[path]; b != nil {
					wb, wbs = b.Value, b.Self
				}
				if n.Value != wv || n.Base != wb || n.Self != ws || n.BaseSelf != wbs {
					t.Errorf("node %q value/base/self/base_self %d/%d/%d/%d, want %d/%d/%d/%d", path, n.Value, n.Base, n.Self, n.BaseSelf, wv, wb, ws, wbs)
				}
				share, baseShare := float64(wv)/float64(cmp[""].Value), float64(wb)/float64(base[""].Value)
				near := func(got, want float64) bool { return math.Abs(got-want) <= 5e-6*math.Abs(want) }
				if !near(n.Share, share) || !near(n.BaseShare, baseShare) || !near(n.Delta, share-baseShare) {
					t.Errorf("node %q share/base_share/delta %g/%g/%g, want %g/%g/%g", path, n.Share, n.BaseShare, n.Delta, share, baseShare, share-baseShare)
				}
			}
			for path := range cmp {
				if g[path] == nil {
					t.Errorf("comparison node %q missing from the diff", path)
				}
			}
			for path := range base {
				if g[path] == nil {
					t.Errorf("baseline node %q missing from the diff", path)
				}
			}
		})
	}
}

func countNodes(n *node) int {
	c := 1
	for _, k := range n.Children {
		c += countNodes(k)
	}
	return c
}

func TestFlamegraphMaxNodesKeepsTotalsAndFocusDrillsIntoOther(t *testing.T) {
	f := newFixture(t)
	r := f.ranges()[4]
	var full node
	q := params("svc", r.from, r.to, nil)
	q.Set("maxNodes", "0")
	f.getJSON(t, "/api/v1/flamegraph", q, &full)
	fullFlat := flat(&full)
	for _, max := range []int{2, 5, 12, 40} {
		var cut node
		q.Set("maxNodes", strconv.Itoa(max))
		f.getJSON(t, "/api/v1/flamegraph", q, &cut)
		if n := countNodes(&cut); n > max {
			t.Errorf("maxNodes=%d: %d nodes", max, n)
		}
		if cut.Value != full.Value {
			t.Errorf("maxNodes=%d: root value %d, want %d", max, cut.Value, full.Value)
		}
		others := 0
		for path, n := range flat(&cut) {
			sum := n.Self
			for _, c := range n.Children {
				sum += c.Value
			}
			if sum != n.Value {
				t.Errorf("maxNodes=%d: node %q value %d != self+children %d", max, path, n.Value, sum)
			}
			if n.Other {
				others++
			} else if fn := fullFlat[path]; fn == nil || fn.Value != n.Value {
				t.Errorf("maxNodes=%d: kept node %q differs from the full tree", max, path)
			}
		}
		if others == 0 {
			t.Errorf("maxNodes=%d: no other node", max)
		}
	}
	// Focus on a frame path returns that subtree, named after its last frame, with exact values.
	focus := "python3;main_[p];loop_[p];handle_[p]"
	q.Set("maxNodes", "0")
	q.Set("focus", focus)
	var sub node
	f.getJSON(t, "/api/v1/flamegraph", q, &sub)
	want := fullFlat[focus]
	if sub.Name != "handle_[p]" || sub.Value != want.Value || len(sub.Children) != len(want.Children) {
		t.Fatalf("focus: %s=%d with %d children, want handle_[p]=%d with %d", sub.Name, sub.Value, len(sub.Children), want.Value, len(want.Children))
	}
	for path, n := range flat(&sub) {
		var full *node
		if path == "" {
			full = want
		} else {
			full = fullFlat[focus+";"+path]
		}
		if full == nil || full.Value != n.Value || full.Self != n.Self {
			t.Errorf("focus node %q differs from the full tree", path)
		}
	}
	// A path no sample has is an empty subtree, not null.
	q.Set("focus", "python3;no_such_frame")
	var empty node
	f.getJSON(t, "/api/v1/flamegraph", q, &empty)
	if empty.Name != "no_such_frame" || empty.Value != 0 || len(empty.Children) != 0 {
		t.Errorf("focus on a missing path: %+v", empty)
	}
}

func TestExportsRoundTrip(t *testing.T) {
	f := newFixture(t)
	r := f.ranges()[4]
	fl := filter{"host_not": {"db-1"}}
	want := f.rawStacks("svc", r.from, r.to, fl)
	var total uint64
	for _, c := range want {
		total += c
	}
	q := params("svc", r.from, r.to, fl)

	q.Set("format", "folded")
	code, body := f.get(t, "/api/v1/export", q)
	if code != http.StatusOK {
		t.Fatalf("folded: %d %s", code, body)
	}
	b, err := flame.ParseFolded(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if b.Total() != total {
		t.Errorf("folded re-import total %d, want %d", b.Total(), total)
	}
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	if len(lines) != len(want) {
		t.Errorf("folded: %d lines, want %d stacks", len(lines), len(want))
	}
	for _, l := range lines {
		i := strings.LastIndexByte(l, ' ')
		c, _ := strconv.ParseUint(l[i+1:], 10, 64)
		if want[l[:i]] != c {
			t.Errorf("folded line %q: want count %d", l, want[l[:i]])
		}
	}

	q.Set("format", "pprof")
	code, body = f.get(t, "/api/v1/export", q)
	if code != http.StatusOK {
		t.Fatalf("pprof: %d %s", code, body)
	}
	if err := checkPprof(body, total); err != nil {
		t.Error(err)
	}

	q.Set("format", "speedscope")
	code, body = f.get(t, "/api/v1/export", q)
	if code != http.StatusOK {
		t.Fatalf("speedscope: %d %s", code, body)
	}
	var ss struct {
		Profiles []struct {
			Weights []uint64 `json:"weights"`
		} `json:"profiles"`
	}
	if err := json.Unmarshal(body, &ss); err != nil {
		t.Fatal(err)
	}
	var sum uint64
	for _, w := range ss.Profiles[0].Weights {
		sum += w
	}
	if sum != total {
		t.Errorf("speedscope weights sum %d, want %d", sum, total)
	}

	q.Set("format", "svg")
	if code, _ := f.get(t, "/api/v1/export", q); code != http.StatusBadRequest {
		t.Errorf("unknown format: %d, want 400", code)
	}
}

func TestTimelineFiltersAndServicesAgreeWithRawRows(t *testing.T) {
	f := newFixture(t)
	for _, r := range f.ranges() {
		t.Run(r.name, func(t *testing.T) { f.checkTimelineAndFilters(t, r.from, r.to, filter{"host_not": {"web-2"}}) })
	}

	// Services: the 24 hourly buckets up to the next hour come from totals_1m.
	ctx := context.Background()
	hour := time.Now().UTC().Truncate(time.Hour)
	if _, err := f.st.PG.TouchService(ctx, "svc", hour); err != nil {
		t.Fatal(err)
	}
	recent := []row{
		{ts: hour.Add(-90*time.Minute + 5*time.Second), service: "svc", host: "h1", stack: stackPool[1], count: 5}, // trend[21]
		{ts: hour.Add(time.Second), service: "svc", host: "h2", stack: stackPool[2], count: 7},                     // trend[23]
		{ts: hour.Add(-30 * time.Hour), service: "svc", host: "h3", stack: stackPool[2], count: 100},               // before the window
	}
	f.rows = append(f.rows, recent...)
	f.insert(t, recent)
	var svcs struct {
		Services []struct {
			Name    string   `json:"name"`
			Samples uint64   `json:"samples"`
			Hosts   uint64   `json:"hosts"`
			Trend   []uint64 `json:"trend"`
		} `json:"services"`
	}
	f.getJSON(t, "/api/v1/services", nil, &svcs)
	if !time.Now().UTC().Truncate(time.Hour).Equal(hour) {
		t.Skip("the hour changed during the services check; its buckets moved")
	}
	if len(svcs.Services) != 1 || svcs.Services[0].Name != "svc" {
		t.Fatalf("services: %+v", svcs.Services)
	}
	s := svcs.Services[0]
	if s.Samples != 12 || len(s.Trend) != 24 || s.Trend[23] != 7 || s.Trend[21] != 5 || s.Hosts != 1 {
		t.Errorf("services: samples %d hosts %d trend %v, want 12 samples: 5 in trend[21], 7 in trend[23]", s.Samples, s.Hosts, s.Trend)
	}
}

func TestQueryLimitsAreClearErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		edit    func(*query.Config)
		status  int
		message string
	}{
		{"memory", func(c *query.Config) { c.MaxQueryMemory = 1000 }, http.StatusUnprocessableEntity, "query needs too much memory"},
		{"rows", func(c *query.Config) { c.MaxQueryRows = 2 }, http.StatusUnprocessableEntity, "query returns too many rows"},
		{"time", func(c *query.Config) { c.Timeout = time.Microsecond }, http.StatusGatewayTimeout, "query took too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			var cfg query.Config
			tc.edit(&cfg)
			f.base = serve(t, query.New(cfg, f.st.CH, f.st.PG, slog.New(slog.NewTextHandler(io.Discard, nil))))
			q := params("svc", f.day0, f.day0.Add(30*time.Hour), nil)
			q.Set("base_from", f.day0.Add(-time.Hour).Format(time.RFC3339)) // a small baseline: the comparison hits the limit
			q.Set("base_to", f.day0.Format(time.RFC3339))
			for _, path := range []string{"/api/v1/flamegraph", "/api/v1/diff"} {
				code, body := f.get(t, path, q)
				var e struct{ Message, Detail string }
				_ = json.Unmarshal(body, &e)
				if code != tc.status || e.Message != tc.message || e.Detail == "" {
					t.Fatalf("%s: got %d %s, want %d %q", path, code, body, tc.status, tc.message)
				}
			}
			// The limits stay on the query's own connection: other queries on the pool are not limited.
			var n proto.ColUInt64
			if err := f.st.CH.Do(context.Background(), chQuery("SELECT count() AS n FROM "+f.st.CH.Table("samples"), &n)); err != nil || len(n) != 1 || n[0] == 0 {
				t.Fatalf("unlimited query after a limited one: %v %v", n, err)
			}
		})
	}
}

// serve runs a query server of its own (with a test's configuration) over the stack's databases.
func serve(t *testing.T, s *query.Server) string {
	t.Helper()
	r := chi.NewRouter()
	s.Routes(r)
	ts := httptest.NewServer(r)
	t.Cleanup(ts.Close)
	return ts.URL
}

func chQuery(body string, n *proto.ColUInt64) ch.Query {
	return ch.Query{Body: body, Result: proto.Results{{Name: "n", Data: n}}}
}

// checkPprof parses a gzipped pprof export with the pprof package and checks its sample total.
func checkPprof(body []byte, total uint64) error {
	p, err := profile.Parse(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("pprof export does not parse: %w", err)
	}
	if err := p.CheckValid(); err != nil {
		return fmt.Errorf("pprof export is not valid: %w", err)
	}
	var sum int64
	for _, s := range p.Sample {
		sum += s.Value[0]
	}
	if uint64(sum) != total {
		return fmt.Errorf("pprof samples sum to %d, want %d", sum, total)
	}
	return nil
}

// TestConcurrentQueriesOverSmallTriesStayExact runs flame graphs of two services and diffs concurrently on a
// server whose stack tries hold only a few nodes, so they start over under the queries' feet: every graph
// must still equal the raw-rows computation.
func TestConcurrentQueriesOverSmallTriesStayExact(t *testing.T) {
	f := newFixture(t)
	f.base = serve(t, query.New(query.Config{TrieNodes: 8}, f.st.CH, f.st.PG, slog.New(slog.NewTextHandler(io.Discard, nil))))
	rs := f.ranges()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i, r := range rs {
				fl := filters[(i+w)%len(filters)]
				service := "svc"
				if (i+w)%3 == 0 {
					service, fl.f = "noise", nil
				}
				want := f.rawStacks(service, r.from, r.to, fl.f)
				q := params(service, r.from, r.to, fl.f)
				q.Set("maxNodes", "0")
				var got node
				f.getJSON(t, "/api/v1/flamegraph", q, &got)
				sameTree(t, fmt.Sprintf("worker %d %s %s/%s", w, service, r.name, fl.name), flat(&got), expectedTree(t, want))

				base := rs[(i+1)%len(rs)]
				q.Set("base_from", base.from.Format(time.RFC3339))
				q.Set("base_to", base.to.Format(time.RFC3339))
				var d node
				f.getJSON(t, "/api/v1/diff", q, &d)
				wantBase := expectedTree(t, f.rawStacks(service, base.from, base.to, fl.f))
				if d.Base != wantBase[""].Value || d.Value != got.Value {
					t.Errorf("worker %d diff %s: value/base %d/%d, want %d/%d", w, r.name, d.Value, d.Base, got.Value, wantBase[""].Value)
				}
			}
		})
	}
	wg.Wait()
}

// TestRangesPastRetentionAreWidenedToWholeRollupBuckets serves the fixture with a retention under which its
// first days are past the raw (and hour) horizons: every graph must equal the raw rows of the range the
// response headers report, which must contain the asked range and start and end on whole hours or days
// where they are past the raw horizon.
func TestRangesPastRetentionAreWidenedToWholeRollupBuckets(t *testing.T) {
	f := newFixture(t)
	f.base = serve(t, query.New(query.Config{RawDays: 3, HourDays: 4}, f.st.CH, f.st.PG, slog.New(slog.NewTextHandler(io.Discard, nil))))
	today := time.Now().UTC().Truncate(24 * time.Hour)
	rawSince, hourSince := today.AddDate(0, 0, -3), today.AddDate(0, 0, -4)
	// The indexer's janitor drops what is past that retention, so that only rollups can answer for it. It
	// built the per-dimension rollups of those days long before (schema step 7): here, first.
	jan := indexer.NewJanitor(f.st.CH, indexer.Retention{RawDays: 3, HourDays: 4}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	builder := indexer.NewJanitor(f.st.CH, indexer.Retention{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if res, err := builder.BuildRollups(context.Background()); err != nil || res.Built == 0 {
		t.Fatalf("build the rollups: %+v, %v", res, err)
	}
	dropped, err := jan.Sweep(context.Background())
	if err != nil || len(dropped) == 0 {
		t.Fatalf("janitor dropped %v: %v", dropped, err)
	}
	widened := 0
	for _, r := range f.ranges() {
		for _, fl := range filters[:2] {
			t.Run(r.name+"/"+fl.name, func(t *testing.T) {
				q := params("svc", r.from, r.to, fl.f)
				q.Set("maxNodes", "0")
				var got node
				from, to := answered(t, f.getJSONHeader(t, "/api/v1/flamegraph", q, &got))
				if from.After(r.from) || to.Before(r.to) {
					t.Fatalf("answered range %v..%v does not contain %v..%v", from, to, r.from, r.to)
				}
				aligned := func(what string, e time.Time, pastHours, pastRaw bool) {
					if (pastHours && !e.Truncate(24*time.Hour).Equal(e)) || (pastRaw && !e.Truncate(time.Hour).Equal(e)) {
						t.Errorf("%s %v past the horizons (hour %v, raw %v) is not on a whole day or hour", what, e, hourSince, rawSince)
					}
				}
				aligned("from", from, from.Before(hourSince), from.Before(rawSince))
				aligned("to", to, !to.After(hourSince), !to.After(rawSince))
				if from.Before(r.from) || to.After(r.to) {
					widened++
				}
				sameTree(t, "widened flamegraph", flat(&got), expectedTree(t, f.rawStacks("svc", from, to, fl.f)))
				if tf, tt := f.checkTimelineAndFilters(t, r.from, r.to, fl.f); !tf.Equal(from) || !tt.Equal(to) {
					t.Errorf("timeline covers %v..%v, flame graph %v..%v", tf, tt, from, to)
				}
			})
		}
	}
	if widened == 0 {
		t.Error("no range was widened: the test does not reach past the horizons")
	}
}

// TestSegmentCacheServesRepeatsAndFollowsLateRows queries a settled range twice (the second time from the
// segment cache), then writes a late row into it: the next answer must hold the row, read again from
// ClickHouse, and every answer must equal the raw rows.
func TestSegmentCacheServesRepeatsAndFollowsLateRows(t *testing.T) {
	f := newFixture(t)
	srv := query.New(query.Config{}, f.st.CH, f.st.PG, slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.base = serve(t, srv)
	r := f.ranges()[4]
	check := func(what string) {
		t.Helper()
		for _, fl := range filters {
			q := params("svc", r.from, r.to, fl.f)
			q.Set("maxNodes", "0")
			var got node
			f.getJSON(t, "/api/v1/flamegraph", q, &got)
			sameTree(t, what+" "+fl.name, flat(&got), expectedTree(t, f.rawStacks("svc", r.from, r.to, fl.f)))
		}
	}
	check("cold")
	h0, m0 := srv.CacheStats()
	if m0 == 0 {
		t.Fatal("no settled segment was looked up: the range does not exercise the cache")
	}
	check("warm")
	h1, m1 := srv.CacheStats()
	if h1-h0 != m0 || m1 != m0 {
		t.Errorf("second pass: %d hits and %d misses, want %d hits and none", h1-h0, m1-m0, m0)
	}
	late := []row{{ts: r.from.Add(30*time.Hour + 17*time.Second), service: "svc", host: "web-1", container: "c0",
		instance: "m5.large", k8s: "deploy/app", stack: "late;row;frame", count: 4242}}
	f.rows = append(f.rows, late...)
	f.insert(t, late)
	check("after a late row")
	if _, m2 := srv.CacheStats(); m2 == m1 {
		t.Error("the late row's segments were served from the cache")
	}
}

// answered reads the range a reply says it covers.
func answered(t *testing.T, h http.Header) (from, to time.Time) {
	t.Helper()
	from, err1 := time.Parse(time.RFC3339Nano, h.Get("Flamestream-From"))
	to, err2 := time.Parse(time.RFC3339Nano, h.Get("Flamestream-To"))
	if err1 != nil || err2 != nil {
		t.Fatalf("reply range %q..%q: %v %v", h.Get("Flamestream-From"), h.Get("Flamestream-To"), err1, err2)
	}
	return from, to
}

// checkTimelineAndFilters compares the timeline and the host filter options of a range with the raw rows
// of the range the replies say they cover, and returns that range.
func (f *fixture) checkTimelineAndFilters(t *testing.T, from, to time.Time, fl filter) (time.Time, time.Time) {
	t.Helper()
	var tl struct {
		Step   int64       `json:"step"`
		Points [][2]uint64 `json:"points"`
	}
	from1, to1 := answered(t, f.getJSONHeader(t, "/api/v1/timeline", params("svc", from, to, fl), &tl))
	if from1.After(from) || to1.Before(to) {
		t.Fatalf("timeline covers %v..%v, not all of %v..%v", from1, to1, from, to)
	}
	want := map[uint64]uint64{}
	for _, row := range f.rows {
		if row.service == "svc" && !row.ts.Before(from1) && row.ts.Before(to1) && fl.match(row) {
			want[uint64(row.ts.Unix()/tl.Step*tl.Step)] += uint64(row.count)
		}
	}
	if len(tl.Points) != len(want) {
		t.Errorf("timeline step %d: %d points, want %d", tl.Step, len(tl.Points), len(want))
	}
	for _, p := range tl.Points {
		if want[p[0]] != p[1] {
			t.Errorf("timeline point %d: %d, want %d", p[0], p[1], want[p[0]])
		}
	}

	var opts map[string][]struct {
		Value   string `json:"value"`
		Samples uint64 `json:"samples"`
	}
	from2, to2 := answered(t, f.getJSONHeader(t, "/api/v1/filters", params("svc", from, to, fl), &opts))
	if !from2.Equal(from1) || !to2.Equal(to1) {
		t.Errorf("filters cover %v..%v, timeline %v..%v", from2, to2, from1, to1)
	}
	hosts := map[string]uint64{}
	for _, row := range f.rows {
		if row.service == "svc" && !row.ts.Before(from2) && row.ts.Before(to2) {
			hosts[row.host] += uint64(row.count)
		}
	}
	if len(opts["host"]) != len(hosts) {
		t.Errorf("filters: %d hosts, want %d", len(opts["host"]), len(hosts))
	}
	for _, v := range opts["host"] {
		if hosts[v.Value] != v.Samples {
			t.Errorf("filters: host %q %d samples, want %d", v.Value, v.Samples, hosts[v.Value])
		}
	}
	return from1, to1
}

// TestWarmLearnsTheLastDaysStacks writes rows of the last hours for a service seen just now: Warm learns
// each of their stacks once, a second Warm has nothing left to learn, and graphs stay exact.
func TestWarmLearnsTheLastDaysStacks(t *testing.T) {
	f := newFixture(t)
	srv := query.New(query.Config{}, f.st.CH, f.st.PG, slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.base = serve(t, srv)
	ctx := context.Background()
	now := time.Now().UTC()
	if _, err := f.st.PG.TouchService(ctx, "svc", now); err != nil {
		t.Fatal(err)
	}
	var recent []row
	distinct := map[string]bool{}
	for i := range 12 {
		s := stackPool[i%len(stackPool)] + ";warm_" + strconv.Itoa(i%7)
		distinct[s] = true
		recent = append(recent, row{ts: now.Add(-time.Duration(i+1) * 37 * time.Minute), service: "svc", host: "web-1",
			container: "c0", instance: "m5.large", k8s: "deploy/app", stack: s, count: uint32(1 + i)})
	}
	f.rows = append(f.rows, recent...)
	f.insert(t, recent)
	n, err := srv.Warm(ctx)
	if err != nil || n != len(distinct) {
		t.Fatalf("Warm learned %d stacks (%v), want the %d of the last day", n, err, len(distinct))
	}
	if n, err := srv.Warm(ctx); err != nil || n != 0 {
		t.Fatalf("second Warm learned %d stacks (%v), want none", n, err)
	}
	from, to := now.Add(-10*time.Hour), now.Add(time.Minute)
	q := params("svc", from, to, nil)
	q.Set("maxNodes", "0")
	var got node
	f.getJSON(t, "/api/v1/flamegraph", q, &got)
	sameTree(t, "after warm-up", flat(&got), expectedTree(t, f.rawStacks("svc", from, to, nil)))
}
