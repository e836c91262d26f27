package query_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flamestream/flamestream/cmd/flamestream/testenv"
	"github.com/flamestream/flamestream/internal/demo"
	"github.com/flamestream/flamestream/internal/pgdb"
)

// fnStats are the numbers of one function, computed by a test from stack texts.
type fnStats struct {
	Self, Total, Occurrences uint64
}

// collapsedStacks reads a profile text as the agent uploads it ("#" JSON header, then "FIELDS;comm;frame;…
// COUNT" lines) into counts per stack, on its own, by the documented input contract (internal/profile's
// ParseAs, like the original indexer): the prefix fields are 2 when the header says
// application_metadata_enabled, else 1 (the container); frames are trimmed and empty ones dropped; stacks
// whose process name starts with "swapper" (the idle task) and zero counts are left out.
func collapsedStacks(t *testing.T, text []byte, into map[string]uint64) {
	t.Helper()
	lines := strings.Split(string(text), "\n")
	var hdr struct {
		AppMetadata bool `json:"application_metadata_enabled"`
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(lines[0], "#")), &hdr); err != nil {
		t.Fatalf("header: %v", err)
	}
	prefix := 1
	if hdr.AppMetadata {
		prefix = 2
	}
	for _, l := range lines[1:] {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		sp := strings.LastIndexByte(l, ' ')
		n, err := strconv.ParseUint(l[sp+1:], 10, 64)
		if err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		var frames []string
		for _, fr := range strings.Split(l[:sp], ";")[prefix:] {
			if fr = strings.TrimSpace(fr); fr != "" {
				frames = append(frames, fr)
			}
		}
		if n == 0 || len(frames) == 0 || strings.HasPrefix(frames[0], "swapper") {
			continue
		}
		into[strings.Join(frames, ";")] += n
	}
}

// functionStats derives, from counts per stack, each function's self (the stacks it ends), total (the
// stacks that hold it, once each) and occurrences (how many distinct stacks hold it), and the sum of all.
func functionStats(stacks map[string]uint64) (map[string]fnStats, uint64) {
	out := map[string]fnStats{}
	var all uint64
	for s, c := range stacks {
		if c == 0 {
			continue
		}
		all += c
		frames := strings.Split(s, ";")
		seen := map[string]bool{}
		for i, fr := range frames {
			st := out[fr]
			if i == len(frames)-1 {
				st.Self += c
			}
			if !seen[fr] {
				seen[fr] = true
				st.Total += c
				st.Occurrences++
			}
			out[fr] = st
		}
	}
	return out, all
}

type tableReply struct {
	Total     uint64   `json:"total"`
	Step      int64    `json:"step"`
	From      int64    `json:"from"`
	Samples   []uint64 `json:"samples"`
	Matched   int      `json:"matched"`
	Functions []struct {
		Name        string   `json:"name"`
		Self        uint64   `json:"self"`
		Total       uint64   `json:"total"`
		Occurrences uint64   `json:"occurrences"`
		Trend       []uint64 `json:"trend"`
	} `json:"functions"`
	Roots []string `json:"roots"`
}

type historyReply struct {
	Name        string `json:"name"`
	Step        int64  `json:"step"`
	Samples     uint64 `json:"samples"`
	Self        uint64 `json:"self"`
	Total       uint64 `json:"total"`
	Occurrences uint64 `json:"occurrences"`
	Points      []struct {
		T       int64  `json:"t"`
		Samples uint64 `json:"samples"`
		Self    uint64 `json:"self"`
		Total   uint64 `json:"total"`
	} `json:"points"`
}

// upload is one profile sent through ingest, with its stacks as the test reads them from the text.
type upload struct {
	host   string
	start  time.Time
	stacks map[string]uint64
}

// TestFunctionTableAndHistoryAgreeWithUploadedText uploads the real agent profile from two hosts and a
// profile with recursion, shared names and a function that is both a leaf and a caller, through ingest, and
// checks the functions table (self, total, occurrences, the sparkline buckets) and the history of several
// functions (over the range and per minute bucket) against numbers computed from the uploaded text alone,
// unfiltered and with a host filter.
func TestFunctionTableAndHistoryAgreeWithUploadedText(t *testing.T) {
	st := testenv.Start(t, testenv.Options{})
	agent, read := st.Token(t, pgdb.KindAgent, "shop"), st.Token(t, pgdb.KindRead, "")
	// Aligned to 5 minutes, so that the hour from start is 60 minute buckets and 12 of 5 minutes.
	start := time.Now().UTC().Truncate(5 * time.Minute).Add(-40 * time.Minute)
	recursive := append(demo.NewFleet(1, "shop", demo.Shape{Stacks: 10, Lines: 1, MinDepth: 2, MaxDepth: 3}).HeaderLine("web-2", "m5.large"),
		";python3;main_[p];rec_[p];rec_[p];rec_[p];leaf_[k] 40\n"+
			";python3;main_[p];rec_[p];leaf_[k] 9\n"+
			";python3;main_[p];rec_[p] 4\n"+
			"c1;python3;main_[p];rec_[p] 6\n"+ // the same stack in another container: one stack, summed
			";python3;main_[p] 3\n"+
			";java;main_[j];rec_[p];rec_[p] 2\n"+
			";python3;do_syscall_64_[k];main_[p] 5\n"...) // a caller in the agent profile, here a caller of main_[p]
	var ups []upload
	send := func(host string, at time.Time, text []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, st.URL+"/api/v2/profiles", bytes.NewReader(demo.NewUpload(text, host, at, "").Gzip()))
		for k, v := range map[string]string{"GPROFILER-API-KEY": agent, "GPROFILER-SERVICE-NAME": "shop",
			"Content-Encoding": "gzip", "Content-Type": "application/json"} {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("upload from %s: %d %s", host, resp.StatusCode, b)
		}
		u := upload{host: host, start: at, stacks: map[string]uint64{}}
		collapsedStacks(t, text, u.stacks)
		ups = append(ups, u)
	}
	// The host column comes from the profile's own header: Restamp names it (and keeps the counts).
	send("web-1", start.Add(5*time.Minute), demo.Restamp("web-1", 1))
	send("web-2", start.Add(12*time.Minute), recursive)
	send("web-2", start.Add(21*time.Minute), demo.Restamp("web-2", 1))

	from, to := start, start.Add(time.Hour)
	q := func(extra url.Values) url.Values {
		v := url.Values{"service": {"shop"}, "from": {strconv.FormatInt(from.Unix(), 10)}, "to": {strconv.FormatInt(to.Unix(), 10)}}
		for k, vs := range extra {
			v[k] = vs
		}
		return v
	}
	getJSON := func(path string, v url.Values, out any) {
		t.Helper()
		code, body := rawGet(t, st.URL, path+"?"+v.Encode(), read)
		if code != http.StatusOK {
			t.Fatalf("GET %s?%s: %d %s", path, v.Encode(), code, body)
		}
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("GET %s: %v in %s", path, err, body)
		}
	}
	all := map[string]uint64{}
	for _, u := range ups {
		for s, c := range u.stacks {
			all[s] += c
		}
	}
	_, wantAll := functionStats(all)
	deadline := time.Now().Add(90 * time.Second)
	for {
		var tb tableReply
		getJSON("/api/v1/functions", q(url.Values{"limit": {"1"}}), &tb)
		if tb.Total == wantAll {
			break
		}
		if time.Now().After(deadline) {
			var dbg tableReply
			getJSON("/api/v1/functions", q(url.Values{"limit": {"10000"}}), &dbg)
			t.Fatalf("uploads not indexed within 90 s: total %d, want %d: %+v", tb.Total, wantAll, dbg)
		}
		time.Sleep(300 * time.Millisecond)
	}

	for _, tc := range []struct {
		name   string
		filter url.Values
		hosts  []string
	}{
		{"all hosts", nil, []string{"web-1", "web-2"}},
		{"host web-2", url.Values{"host": {"web-2"}}, []string{"web-2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ins []upload
			stacks := map[string]uint64{}
			for _, u := range ups {
				if slices.Contains(tc.hosts, u.host) {
					ins = append(ins, u)
					for s, c := range u.stacks {
						stacks[s] += c
					}
				}
			}
			want, total := functionStats(stacks)
			// The minute bucket each upload falls in, and the stats of each upload alone.
			per := make([]map[string]fnStats, len(ins))
			perAll := make([]uint64, len(ins))
			for i, u := range ins {
				per[i], perAll[i] = functionStats(u.stacks)
			}
			// checkBuckets finds each upload's samples in exactly one bucket (at or just after its start)
			// and nothing elsewhere: got(i) is bucket i's value, wantOf(k) upload k's.
			checkBuckets := func(what string, starts []int64, got func(i int) uint64, wantOf func(k int) uint64) {
				t.Helper()
				k := 0
				for i, s := range starts {
					g := got(i)
					var w uint64
					if k < len(ins) && s >= ins[k].start.Unix() && s <= ins[k].start.Add(time.Minute).Unix() && (g != 0 || wantOf(k) == 0) {
						w = wantOf(k)
						k++
					}
					if g != w {
						t.Errorf("%s: bucket %d (t=%d) has %d, want %d", what, i, s, g, w)
					}
				}
				if k != len(ins) {
					t.Errorf("%s: found %d of %d uploads in the buckets", what, k, len(ins))
				}
			}

			var tb tableReply
			getJSON("/api/v1/functions", q(merge(tc.filter, url.Values{"limit": {"10000"}, "sort": {"name"}})), &tb)
			if tb.Total != total || tb.Matched != len(want) || len(tb.Functions) != len(want) {
				t.Fatalf("table: total %d, %d functions (matched %d); want %d, %d", tb.Total, len(tb.Functions), tb.Matched, total, len(want))
			}
			// The step is the smallest that makes at most 24 buckets of the aligned hour: 5 minutes.
			if tb.Step != 300 || len(tb.Samples) != 12 || tb.From != from.Unix() {
				t.Fatalf("table: step %d, %d buckets from %d; want 12 of 5 minutes from %d", tb.Step, len(tb.Samples), tb.From, from.Unix())
			}
			names := make([]string, 0, len(want))
			for n := range want {
				names = append(names, n)
			}
			sort.Strings(names)
			inBucket := func(k int) int { // the 5-minute bucket of upload k
				return int((ins[k].start.Unix() - (tb.From - tb.From%tb.Step)) / tb.Step)
			}
			for i, f := range tb.Functions {
				w := want[names[i]]
				if f.Name != names[i] || f.Self != w.Self || f.Total != w.Total || f.Occurrences != w.Occurrences {
					t.Errorf("table row %d: %s self %d total %d occurrences %d; want %s %+v", i, f.Name, f.Self, f.Total, f.Occurrences, names[i], w)
					continue
				}
				wantTrend := make([]uint64, len(tb.Samples))
				for k := range ins {
					wantTrend[inBucket(k)] += per[k][f.Name].Total
				}
				if fmt.Sprint(f.Trend) != fmt.Sprint(wantTrend) {
					t.Errorf("table %s: trend %v, want %v", f.Name, f.Trend, wantTrend)
				}
			}
			wantSamples := make([]uint64, len(tb.Samples))
			for k := range ins {
				wantSamples[inBucket(k)] += perAll[k]
			}
			if fmt.Sprint(tb.Samples) != fmt.Sprint(wantSamples) {
				t.Errorf("table samples per bucket %v, want %v", tb.Samples, wantSamples)
			}
			// The roots: the first frames of the uploaded stacks, whatever the name filter.
			var wantRoots []string
			for st, c := range stacks {
				if root, _, _ := strings.Cut(st, ";"); c > 0 && !slices.Contains(wantRoots, root) {
					wantRoots = append(wantRoots, root)
				}
			}
			sort.Strings(wantRoots)
			var filtered tableReply
			getJSON("/api/v1/functions", q(merge(tc.filter, url.Values{"limit": {"1"}, "match": {"no such function"}})), &filtered)
			if len(wantRoots) == 0 || fmt.Sprint(tb.Roots) != fmt.Sprint(wantRoots) || fmt.Sprint(filtered.Roots) != fmt.Sprint(wantRoots) {
				t.Errorf("table roots %q, with a name filter matching nothing %q; want %q", tb.Roots, filtered.Roots, wantRoots)
			}

			// Sorted and cut: the first rows by occurrences, ties by name.
			var top tableReply
			getJSON("/api/v1/functions", q(merge(tc.filter, url.Values{"limit": {"5"}, "sort": {"occurrences"}})), &top)
			byOcc := slices.Clone(names)
			slices.SortStableFunc(byOcc, func(a, b string) int {
				return int(want[b].Occurrences) - int(want[a].Occurrences)
			})
			if len(top.Functions) != 5 || top.Matched != len(want) {
				t.Fatalf("top 5 by occurrences: %d rows, matched %d", len(top.Functions), top.Matched)
			}
			for i, f := range top.Functions {
				if f.Name != byOcc[i] || f.Occurrences != want[byOcc[i]].Occurrences {
					t.Errorf("by occurrences row %d: %s %d, want %s %d", i, f.Name, f.Occurrences, byOcc[i], want[byOcc[i]].Occurrences)
				}
			}
			// The name filter is a case-insensitive substring.
			var matched tableReply
			getJSON("/api/v1/functions", q(merge(tc.filter, url.Values{"match": {"REC_["}})), &matched)
			if recWant, ok := want["rec_[p]"]; ok {
				if len(matched.Functions) != 1 || matched.Functions[0].Name != "rec_[p]" || matched.Functions[0].Total != recWant.Total || matched.Total != total {
					t.Errorf("match REC_[: %+v, want rec_[p] alone with total %d", matched.Functions, recWant.Total)
				}
			}

			for _, name := range []string{"rec_[p]", "leaf_[k]", "main_[p]", "do_syscall_64_[k]", "perf", "python3", "absent_[p]"} {
				var h historyReply
				getJSON("/api/v1/function", q(merge(tc.filter, url.Values{"name": {name}})), &h)
				w := want[name]
				if h.Name != name || h.Samples != total || h.Self != w.Self || h.Total != w.Total || h.Occurrences != w.Occurrences {
					t.Errorf("history %s: samples %d self %d total %d occurrences %d; want %d %+v", name, h.Samples, h.Self, h.Total, h.Occurrences, total, w)
				}
				if h.Step != 60 || len(h.Points) != 60 {
					t.Fatalf("history %s: step %d, %d points; want 60 minutes", name, h.Step, len(h.Points))
				}
				ts := make([]int64, len(h.Points))
				for i, p := range h.Points {
					ts[i] = p.T
					if p.T != from.Unix()+int64(i)*60 {
						t.Fatalf("history %s: point %d at %d, want %d", name, i, p.T, from.Unix()+int64(i)*60)
					}
				}
				checkBuckets(name+" samples", ts, func(i int) uint64 { return h.Points[i].Samples }, func(k int) uint64 { return perAll[k] })
				// Self and total per bucket: in the bucket of the upload's samples.
				for i, p := range h.Points {
					var ws, wt uint64
					for k := range ins {
						if h.Points[i].Samples > 0 && p.T >= ins[k].start.Unix() && p.T <= ins[k].start.Add(time.Minute).Unix() {
							ws, wt = per[k][name].Self, per[k][name].Total
						}
					}
					if p.Self != ws || p.Total != wt {
						t.Errorf("history %s: point %d self %d total %d, want %d %d", name, i, p.Self, p.Total, ws, wt)
					}
				}
			}
		})
	}
}

func merge(a, b url.Values) url.Values {
	out := url.Values{}
	for k, vs := range a {
		out[k] = vs
	}
	for k, vs := range b {
		out[k] = vs
	}
	return out
}

// TestFunctionEndpointsRefuseBadInput: a missing, compound or oversized name, a bad sort or limit, and a bad
// range are each a 400 with a JSON message, before anything is read.
func TestFunctionEndpointsRefuseBadInput(t *testing.T) {
	st := testenv.Start(t, testenv.Options{})
	read := st.Token(t, pgdb.KindRead, "")
	long := strings.Repeat("x", 5000)
	for _, tc := range []struct{ path, query, message string }{
		{"/api/v1/function", "service=s", "missing parameter"},
		{"/api/v1/function", "service=s&name=", "missing parameter"},
		{"/api/v1/function", "service=s&name=a%3Bb", "bad name"},
		{"/api/v1/function", "service=s&name=a;b", "bad name"},
		{"/api/v1/function", "service=s&name=" + long, "bad name"},
		{"/api/v1/function", "name=main", "missing parameter"},
		{"/api/v1/function", "service=s&name=main&from=2&to=1", "bad time range"},
		{"/api/v1/functions", "service=s&sort=size", "bad sort"},
		{"/api/v1/functions", "service=s&limit=0", "bad limit"},
		{"/api/v1/functions", "service=s&limit=10001", "bad limit"},
		{"/api/v1/functions", "service=s&match=" + long, "bad match"},
		{"/api/v1/functions", "service=s&from=yesterday", "bad from"},
	} {
		code, body := rawGet(t, st.URL, tc.path+"?"+tc.query, read)
		var e struct{ Message, Detail string }
		if err := json.Unmarshal(body, &e); err != nil || code != http.StatusBadRequest || e.Message != tc.message {
			t.Errorf("%s?%.60s: %d %s, want 400 %q", tc.path, tc.query, code, body, tc.message)
		}
	}
	// A function with no samples in the range is zeros, not an error.
	code, body := rawGet(t, st.URL, "/api/v1/function?service=s&name=main", read)
	var h historyReply
	if err := json.Unmarshal(body, &h); err != nil || code != http.StatusOK || h.Samples != 0 || h.Total != 0 || len(h.Points) == 0 || len(h.Points) > 60 {
		t.Errorf("empty history: %d %s", code, body)
	}
}

// bucketEdges are the buckets a reply of step seconds over [from, to) covers: multiples of the step, the
// first and the last clipped to the range.
func bucketEdges(from, to time.Time, step int64) [][2]time.Time {
	var out [][2]time.Time
	for s := from.Unix() - from.Unix()%step; s < to.Unix() || (s == to.Unix() && to.After(time.Unix(s, 0))); s += step {
		a, b := time.Unix(s, 0).UTC(), time.Unix(s+step, 0).UTC()
		if a.Before(from) {
			a = from
		}
		if b.After(to) {
			b = to
		}
		if a.Before(b) {
			out = append(out, [2]time.Time{a, b})
		}
	}
	return out
}

// TestFunctionBucketsOverRollupsEqualRawRows reads the functions table and a function's history over ranges
// that touch every table (raw edges, minutes, hours, days, subtracted edges) with and without filters, and
// compares every number, per bucket too, with the raw rows inserted: the buckets of one query add up exactly
// whichever rollups serve them.
func TestFunctionBucketsOverRollupsEqualRawRows(t *testing.T) {
	f := newFixture(t)
	for _, r := range f.ranges() {
		for _, fl := range []struct {
			name string
			f    filter
		}{filters[0], filters[2]} {
			t.Run(r.name+"/"+fl.name, func(t *testing.T) {
				var tb tableReply
				q := params("svc", r.from, r.to, fl.f)
				q.Set("limit", "10000")
				t0 := time.Now()
				from, to := answered(t, f.getJSONHeader(t, "/api/v1/functions", q, &tb))
				tableTook := time.Since(t0)
				want, total := functionStats(f.rawStacks("svc", from, to, fl.f))
				if total == 0 {
					t.Fatal("fixture has no rows in this range")
				}
				if tb.Total != total || len(tb.Functions) != len(want) {
					t.Fatalf("table: total %d, %d functions; want %d, %d", tb.Total, len(tb.Functions), total, len(want))
				}
				edges := bucketEdges(from, to, tb.Step)
				if len(edges) != len(tb.Samples) || len(edges) > 24 || tb.From != from.Unix() {
					t.Fatalf("table: %d buckets of %d s from %d, want %d from %d (at most 24)", len(tb.Samples), tb.Step, tb.From, len(edges), from.Unix())
				}
				per := make([]map[string]fnStats, len(edges))
				for i, e := range edges {
					var all uint64
					per[i], all = functionStats(f.rawStacks("svc", e[0], e[1], fl.f))
					if tb.Samples[i] != all {
						t.Errorf("bucket %d %v: %d samples, want %d", i, e, tb.Samples[i], all)
					}
				}
				for _, fn := range tb.Functions {
					w := want[fn.Name]
					if fn.Self != w.Self || fn.Total != w.Total || fn.Occurrences != w.Occurrences {
						t.Errorf("%s: self %d total %d occurrences %d, want %+v", fn.Name, fn.Self, fn.Total, fn.Occurrences, w)
					}
					for i := range edges {
						if fn.Trend[i] != per[i][fn.Name].Total {
							t.Errorf("%s: bucket %d total %d, want %d", fn.Name, i, fn.Trend[i], per[i][fn.Name].Total)
						}
					}
				}

				var h historyReply
				q.Set("name", "handle_[p]")
				t0 = time.Now()
				f.getJSON(t, "/api/v1/function", q, &h)
				t.Logf("functions table %v (%d buckets), history %v (%d buckets)", tableTook.Round(time.Millisecond), len(tb.Samples), time.Since(t0).Round(time.Millisecond), len(h.Points))
				w := want["handle_[p]"]
				if h.Samples != total || h.Self != w.Self || h.Total != w.Total || h.Occurrences != w.Occurrences {
					t.Errorf("history: samples %d self %d total %d occurrences %d, want %d %+v", h.Samples, h.Self, h.Total, h.Occurrences, total, w)
				}
				edges = bucketEdges(from, to, h.Step)
				if len(edges) != len(h.Points) || len(edges) > 60 {
					t.Fatalf("history: %d points of %d s, want %d (at most 60)", len(h.Points), h.Step, len(edges))
				}
				for i, e := range edges {
					ws, all := functionStats(f.rawStacks("svc", e[0], e[1], fl.f))
					p := h.Points[i]
					if p.T != e[0].Unix() || p.Samples != all || p.Self != ws["handle_[p]"].Self || p.Total != ws["handle_[p]"].Total {
						t.Errorf("history point %d: %+v, want t=%d samples %d %+v", i, p, e[0].Unix(), all, ws["handle_[p]"])
					}
				}

				// The runtime and process view over the same tables: the raw rows reshaped here.
				notJava := func(p string) bool { return p != "java" }
				shapedRaw := func(a, b time.Time, keep func(string) bool) map[string]uint64 {
					return reshape(f.rawStacks("svc", a, b, fl.f), []string{"k"}, keep)
				}
				qs := merge(q, url.Values{"process_not": {"java"}, "runtimes_off": {"kernel"}, "name": {"loop_[p]"}})
				var sh historyReply
				f.getJSON(t, "/api/v1/function", qs, &sh)
				ws, sall := functionStats(shapedRaw(from, to, notJava))
				if sh.Samples != sall || sh.Self != ws["loop_[p]"].Self || sh.Total != ws["loop_[p]"].Total || sh.Occurrences != ws["loop_[p]"].Occurrences {
					t.Errorf("shaped history: samples %d self %d total %d occurrences %d, want %d %+v", sh.Samples, sh.Self, sh.Total, sh.Occurrences, sall, ws["loop_[p]"])
				}
				for i, e := range bucketEdges(from, to, sh.Step) {
					ws, all := functionStats(shapedRaw(e[0], e[1], notJava))
					if p := sh.Points[i]; p.T != e[0].Unix() || p.Samples != all || p.Self != ws["loop_[p]"].Self || p.Total != ws["loop_[p]"].Total {
						t.Errorf("shaped history point %d: %+v, want t=%d samples %d %+v", i, p, e[0].Unix(), all, ws["loop_[p]"])
					}
				}
				qs.Del("name")
				var stb tableReply
				f.getJSON(t, "/api/v1/functions", qs, &stb)
				if stb.Total != sall || len(stb.Functions) != len(ws) {
					t.Errorf("shaped table: total %d, %d functions; want %d, %d", stb.Total, len(stb.Functions), sall, len(ws))
				}
				sedges := bucketEdges(from, to, stb.Step)
				for _, fn := range stb.Functions {
					if w := ws[fn.Name]; fn.Self != w.Self || fn.Total != w.Total || fn.Occurrences != w.Occurrences {
						t.Errorf("shaped table %s: %d/%d/%d, want %+v", fn.Name, fn.Self, fn.Total, fn.Occurrences, w)
					}
				}
				for i, e := range sedges {
					if _, all := functionStats(shapedRaw(e[0], e[1], notJava)); stb.Samples[i] != all {
						t.Errorf("shaped table bucket %d: %d samples, want %d", i, stb.Samples[i], all)
					}
				}
				// The timeline of one process: its samples per aligned bucket of the step.
				var tl struct {
					Step   int64       `json:"step"`
					Points [][2]uint64 `json:"points"`
				}
				f.getJSON(t, "/api/v1/timeline", merge(params("svc", from, to, fl.f), url.Values{"process": {"nginx"}}), &tl)
				gotTL := map[int64]uint64{}
				for _, p := range tl.Points {
					gotTL[int64(p[0])] += p[1]
				}
				wantTL := map[int64]uint64{}
				for _, e := range bucketEdges(from, to, tl.Step) {
					if _, all := functionStats(shapedRaw(e[0], e[1], func(p string) bool { return p == "nginx" })); all > 0 {
						wantTL[e[0].Unix()-e[0].Unix()%tl.Step] = all
					}
				}
				if len(wantTL) == 0 || fmt.Sprint(gotTL) != fmt.Sprint(wantTL) {
					t.Errorf("timeline of nginx: %v, want %v", gotTL, wantTL)
				}
			})
		}
	}
}

// TestReadsHonorRuntimeAndProcessViews: the functions table, a function's history and the timeline follow
// runtimes_off, process and process_not as the flame graph does (frames of a runtime turned off go and
// equal stacks merge, totals kept; stacks of excluded processes go), checked per bucket against sums made
// here from the uploaded text; host metrics, which have no stacks, name the parameters in ignored and are
// otherwise the reply without them.
func TestReadsHonorRuntimeAndProcessViews(t *testing.T) {
	st := testenv.Start(t, testenv.Options{})
	agent, read := st.Token(t, pgdb.KindAgent, "shop"), st.Token(t, pgdb.KindRead, "")
	start := time.Now().UTC().Truncate(5 * time.Minute).Add(-40 * time.Minute)
	mixed := append(demo.NewFleet(1, "shop", demo.Shape{Stacks: 10, Lines: 1, MinDepth: 2, MaxDepth: 3}).HeaderLine("web-1", "m5.large"),
		";python3;main_[p];rec_[p];rec_[p];leaf_[k] 40\n"+
			";python3;main_[p];do_syscall_64_[k];sys_read_[k] 9\n"+
			";python3;main_[p];sys_read_[k] 6\n"+ // with the kernel off, one stack with the one above
			";python3;main_[p];numpy_dot_[pn] 11\n"+
			";java;Main.run_[j];gc_[k] 7\n"+
			";java;Main.run_[j];write_[k] 3\n"+
			";java;Main.run_[j] 2\n"+
			";nginx;ngx_worker;epoll_wait_[k] 5\n"...)
	var ups []upload
	send := func(at time.Time, text []byte) {
		t.Helper()
		st.Upload(t, agent, "shop", demo.NewUpload(text, "web-1", at, "").Gzip())
		u := upload{host: "web-1", start: at, stacks: map[string]uint64{}}
		collapsedStacks(t, text, u.stacks)
		ups = append(ups, u)
	}
	send(start.Add(5*time.Minute), demo.Restamp("web-1", 1))
	send(start.Add(12*time.Minute), mixed)
	send(start.Add(21*time.Minute), mixed)

	from, to := start, start.Add(time.Hour)
	q := func(extra url.Values) url.Values {
		v := url.Values{"service": {"shop"}, "from": {strconv.FormatInt(from.Unix(), 10)}, "to": {strconv.FormatInt(to.Unix(), 10)}}
		for k, vs := range extra {
			v[k] = vs
		}
		return v
	}
	getJSON := func(path string, v url.Values, out any) []byte {
		t.Helper()
		code, body := rawGet(t, st.URL, path+"?"+v.Encode(), read)
		if code != http.StatusOK {
			t.Fatalf("GET %s?%s: %d %s", path, v.Encode(), code, body)
		}
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("GET %s: %v in %s", path, err, body)
		}
		return body
	}
	all := map[string]uint64{}
	for _, u := range ups {
		for s, c := range u.stacks {
			all[s] += c
		}
	}
	_, wantAll := functionStats(all)
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		var tb tableReply
		getJSON("/api/v1/functions", q(url.Values{"limit": {"1"}}), &tb)
		if tb.Total == wantAll {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("uploads not indexed within 90 s: total %d, want %d", tb.Total, wantAll)
		}
	}
	yes := func(string) bool { return true }
	for _, tc := range []struct {
		name  string
		extra url.Values
		drop  []string
		keep  func(string) bool
	}{
		{"kernel off", url.Values{"runtimes_off": {"kernel"}}, []string{"k"}, yes},
		{"kernel and python off", url.Values{"runtimes_off": {"kernel,python"}}, []string{"k", "p"}, yes},
		{"exclude python3", url.Values{"process_not": {"python3"}}, nil, func(p string) bool { return p != "python3" }},
		{"only java and nginx, kernel off", url.Values{"process": {"java", "nginx"}, "runtimes_off": {"kernel"}}, []string{"k"},
			func(p string) bool { return p == "java" || p == "nginx" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			per := make([]map[string]fnStats, len(ups))
			perAll := make([]uint64, len(ups))
			merged := map[string]uint64{}
			for k, u := range ups {
				r := reshape(u.stacks, tc.drop, tc.keep)
				per[k], perAll[k] = functionStats(r)
				for s, c := range r {
					merged[s] += c
				}
			}
			// Occurrences count the stacks of the view: stacks that it makes equal are one.
			want, total := functionStats(merged)
			if total == 0 || len(want) == 0 {
				t.Fatal("the case keeps nothing: it would prove nothing")
			}

			var tb tableReply
			getJSON("/api/v1/functions", q(merge(tc.extra, url.Values{"limit": {"10000"}, "sort": {"name"}})), &tb)
			if tb.Total != total || len(tb.Functions) != len(want) || tb.Step != 300 || len(tb.Samples) != 12 {
				t.Fatalf("table: total %d, %d functions, %d buckets of %d s; want %d, %d, 12 of 300 s", tb.Total, len(tb.Functions), len(tb.Samples), tb.Step, total, len(want))
			}
			inBucket := func(k int) int { return int((ups[k].start.Unix() - tb.From) / tb.Step) }
			wantSamples := make([]uint64, len(tb.Samples))
			for k := range ups {
				wantSamples[inBucket(k)] += perAll[k]
			}
			if fmt.Sprint(tb.Samples) != fmt.Sprint(wantSamples) {
				t.Errorf("table samples per bucket %v, want %v", tb.Samples, wantSamples)
			}
			for _, f := range tb.Functions {
				w, ok := want[f.Name]
				if !ok || f.Self != w.Self || f.Total != w.Total || f.Occurrences != w.Occurrences {
					t.Errorf("table %s: self %d total %d occurrences %d; want %+v (listed: %v)", f.Name, f.Self, f.Total, f.Occurrences, w, ok)
					continue
				}
				wantTrend := make([]uint64, len(tb.Samples))
				for k := range ups {
					wantTrend[inBucket(k)] += per[k][f.Name].Total
				}
				if fmt.Sprint(f.Trend) != fmt.Sprint(wantTrend) {
					t.Errorf("table %s: trend %v, want %v", f.Name, f.Trend, wantTrend)
				}
			}

			for _, name := range []string{"main_[p]", "sys_read_[k]", "Main.run_[j]", "java", "python3", "rec_[p]"} {
				var h historyReply
				getJSON("/api/v1/function", q(merge(tc.extra, url.Values{"name": {name}})), &h)
				w := want[name]
				if h.Samples != total || h.Self != w.Self || h.Total != w.Total || h.Occurrences != w.Occurrences {
					t.Errorf("history %s: samples %d self %d total %d occurrences %d; want %d %+v", name, h.Samples, h.Self, h.Total, h.Occurrences, total, w)
				}
				if h.Step != 60 || len(h.Points) != 60 {
					t.Fatalf("history %s: %d points of %d s, want 60 of 60 s", name, len(h.Points), h.Step)
				}
				got := map[int64][3]uint64{}
				for _, p := range h.Points {
					if p.Samples+p.Self+p.Total > 0 {
						got[p.T] = [3]uint64{p.Samples, p.Self, p.Total}
					}
				}
				wantPts := map[int64][3]uint64{}
				for k, u := range ups {
					if perAll[k] > 0 {
						wantPts[u.start.Unix()] = [3]uint64{perAll[k], per[k][name].Self, per[k][name].Total}
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(wantPts) {
					t.Errorf("history %s: points (samples, self, total) %v, want %v", name, got, wantPts)
				}
			}

			var tl struct {
				Step   int64       `json:"step"`
				Points [][2]uint64 `json:"points"`
			}
			getJSON("/api/v1/timeline", q(tc.extra), &tl)
			gotTL := map[uint64]uint64{}
			for _, p := range tl.Points {
				gotTL[p[0]] += p[1]
			}
			wantTL := map[uint64]uint64{}
			for k, u := range ups {
				if perAll[k] > 0 {
					wantTL[uint64(u.start.Unix())] += perAll[k]
				}
			}
			if tl.Step != 60 || fmt.Sprint(gotTL) != fmt.Sprint(wantTL) {
				t.Errorf("timeline: step %d, points %v; want 60, %v", tl.Step, gotTL, wantTL)
			}

			var plain, shapedM map[string]any
			getJSON("/api/v1/metrics", q(nil), &plain)
			getJSON("/api/v1/metrics", q(tc.extra), &shapedM)
			var names []string
			for _, p := range []string{"runtimes_off", "process", "process_not"} {
				if len(tc.extra[p]) > 0 {
					names = append(names, p)
				}
			}
			if fmt.Sprint(shapedM["ignored"]) != fmt.Sprint(names) {
				t.Errorf("metrics: ignored %v, want %v", shapedM["ignored"], names)
			}
			delete(shapedM, "ignored")
			if _, ok := plain["ignored"]; ok || fmt.Sprint(plain) != fmt.Sprint(shapedM) {
				t.Errorf("metrics with the view differ from the plain reply:\n%v\n%v", shapedM, plain)
			}
		})
	}
	// A bad value is a 400 on every read, host metrics included.
	for _, path := range []string{"/api/v1/functions", "/api/v1/function", "/api/v1/timeline", "/api/v1/metrics"} {
		code, body := rawGet(t, st.URL, path+"?"+q(url.Values{"name": {"main_[p]"}, "runtimes_off": {"no such!"}}).Encode(), read)
		if code != http.StatusBadRequest || !strings.Contains(string(body), "bad runtimes_off") {
			t.Errorf("%s with a bad runtimes_off: %d %s", path, code, body)
		}
	}
}
