package query_test

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flamestream/flamestream/cmd/flamestream/testenv"
	"github.com/flamestream/flamestream/internal/demo"
	"github.com/flamestream/flamestream/internal/pgdb"
)

// compareReply is the side-by-side table of GET /api/v1/diff?format=table.
type compareReply struct {
	Total       uint64 `json:"total"`
	BaseTotal   uint64 `json:"base_total"`
	Count       int    `json:"count"`
	BaseService string `json:"base_service"`
	Functions   []struct {
		Name        string  `json:"name"`
		Self        uint64  `json:"self"`
		Total       uint64  `json:"total"`
		BaseSelf    uint64  `json:"base_self"`
		BaseTotal   uint64  `json:"base_total"`
		DeltaSelf   int64   `json:"delta_self"`
		DeltaTotal  int64   `json:"delta_total"`
		NDeltaSelf  float64 `json:"ndelta_self"`
		NDeltaTotal float64 `json:"ndelta_total"`
	} `json:"functions"`
}

// sideStats are a test's own per-function sums of stack counts: self (the stacks a function ends) and
// total (the stacks that hold it, once each).
func sideStats(stacks map[string]uint64) (self, total map[string]uint64, all uint64) {
	self, total = map[string]uint64{}, map[string]uint64{}
	for s, c := range stacks {
		fr := strings.Split(s, ";")
		self[fr[len(fr)-1]] += c
		seen := map[string]bool{}
		for _, f := range fr {
			if !seen[f] {
				seen[f] = true
				total[f] += c
			}
		}
		all += c
	}
	return self, total, all
}

// reshape applies, on its own, what runtimes_off and process filters document: frames ending in one of the
// dropped suffixes go (the process frame stays), equal stacks merge; stacks of other processes go.
func reshape(stacks map[string]uint64, dropSuffixes []string, keep func(proc string) bool) map[string]uint64 {
	out := map[string]uint64{}
	for s, c := range stacks {
		fr := strings.Split(s, ";")
		if !keep(fr[0]) {
			continue
		}
		kept := []string{fr[0]}
		for _, f := range fr[1:] {
			drop := false
			for _, sfx := range dropSuffixes {
				if strings.HasSuffix(f, "_["+sfx+"]") {
					drop = true
				}
			}
			if !drop {
				kept = append(kept, f)
			}
		}
		out[strings.Join(kept, ";")] += c
	}
	return out
}

// TestCompareAcrossServicesAndRuntimeViewsAgreeWithUploadedText uploads the real agent profile to one
// service and a hand-written one to another, through ingest, and checks against sums made here from the
// uploaded text: the side-by-side table of a diff whose baseline is the other service (self, total, deltas,
// normalized deltas, sort orders), the cross-service diff tree, and the flame graph, top table and folded
// export with runtimes turned off (frames dropped and merged, totals kept) and processes included or excluded.
func TestCompareAcrossServicesAndRuntimeViewsAgreeWithUploadedText(t *testing.T) {
	st := testenv.Start(t, testenv.Options{})
	read := st.Token(t, pgdb.KindRead, "")
	start := time.Now().UTC().Truncate(time.Minute).Add(-20 * time.Minute)
	textB := append(demo.NewFleet(1, "canary", demo.Shape{Stacks: 10, Lines: 1, MinDepth: 2, MaxDepth: 3}).HeaderLine("canary-1", "m5.large"),
		";python3;main_[p];rec_[p];rec_[p];leaf_[k] 40\n"+
			";python3;main_[p];do_syscall_64_[k];sys_read_[k] 9\n"+
			";python3;main_[p];numpy_dot_[pn] 11\n"+
			";java;Main.run_[j];gc_[k] 7\n"+
			";java;Main.run_[j];write_[k] 3\n"+
			";nginx;ngx_worker;epoll_wait_[k] 5\n"...)
	textA := demo.Restamp("web-1", 1)
	stacks := map[string]map[string]uint64{"shop": {}, "canary": {}}
	send := func(service string, at time.Time, text []byte) {
		t.Helper()
		agent := st.Token(t, pgdb.KindAgent, service)
		host := "web-1"
		if service == "canary" {
			host = "canary-1"
		}
		req, _ := http.NewRequest(http.MethodPost, st.URL+"/api/v2/profiles", bytes.NewReader(demo.NewUpload(text, host, at, "").Gzip()))
		for k, v := range map[string]string{"GPROFILER-API-KEY": agent, "GPROFILER-SERVICE-NAME": service,
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
			t.Fatalf("upload to %s: %d %s", service, resp.StatusCode, b)
		}
		collapsedStacks(t, text, stacks[service])
	}
	send("shop", start.Add(2*time.Minute), textA)
	send("canary", start.Add(3*time.Minute), textB)
	from, to := start, start.Add(30*time.Minute)
	q := func(service string, extra url.Values) url.Values {
		v := url.Values{"service": {service}, "from": {strconv.FormatInt(from.Unix(), 10)}, "to": {strconv.FormatInt(to.Unix(), 10)}}
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
	_, _, wantA := sideStats(stacks["shop"])
	_, _, wantB := sideStats(stacks["canary"])
	deadline := time.Now().Add(90 * time.Second)
	for {
		var a, b node
		getJSON("/api/v1/flamegraph", q("shop", nil), &a)
		getJSON("/api/v1/flamegraph", q("canary", nil), &b)
		if a.Value == wantA && b.Value == wantB {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("uploads not indexed within 90 s: %d/%d, want %d/%d", a.Value, b.Value, wantA, wantB)
		}
		time.Sleep(300 * time.Millisecond)
	}
	// The real profile must hold the runtimes the views drop, or the test proves nothing.
	for _, sfx := range []string{"_[k]", "_[p]"} {
		if !strings.Contains(string(textA), sfx) {
			t.Fatalf("the agent profile has no %s frame", sfx)
		}
	}

	// The heaviest process of the agent profile, to keep with python3 of the other service.
	procTotals := map[string]uint64{}
	for s, c := range stacks["shop"] {
		procTotals[strings.Split(s, ";")[0]] += c
	}
	procA := ""
	for p, c := range procTotals {
		if procA == "" || c > procTotals[procA] || c == procTotals[procA] && p < procA {
			procA = p
		}
	}

	t.Run("table of a diff against another service", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			extra url.Values
			drop  []string
			keep  func(string) bool
		}{
			{"whole", nil, nil, func(string) bool { return true }},
			{"kernel off, two processes", url.Values{"runtimes_off": {"kernel"}, "process": {"python3", procA}}, []string{"k"},
				func(p string) bool { return p == "python3" || p == procA }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				a := reshape(stacks["shop"], tc.drop, tc.keep)
				b := reshape(stacks["canary"], tc.drop, tc.keep)
				selfA, totA, allA := sideStats(a)
				selfB, totB, allB := sideStats(b)
				names := map[string]bool{}
				for n := range totA {
					names[n] = true
				}
				for n := range totB {
					names[n] = true
				}
				extra := url.Values{"base_service": {"canary"}, "base_from": {strconv.FormatInt(from.Unix(), 10)},
					"base_to": {strconv.FormatInt(to.Unix(), 10)}, "format": {"table"}, "limit": {"100000"}}
				for k, v := range tc.extra {
					extra[k] = v
				}
				var got compareReply
				getJSON("/api/v1/diff", q("shop", extra), &got)
				if got.Total != allA || got.BaseTotal != allB || got.BaseService != "canary" {
					t.Fatalf("totals %d/%d (base %q), want %d/%d", got.Total, got.BaseTotal, got.BaseService, allA, allB)
				}
				if len(got.Functions) != len(names) || got.Count != len(names) {
					t.Errorf("%d rows (count %d), want %d", len(got.Functions), got.Count, len(names))
				}
				share := func(x, of uint64) float64 { return float64(x) / float64(of) }
				close := func(x, y float64) bool { return math.Abs(x-y) <= 1e-5*math.Max(math.Abs(y), 1e-9) }
				prev := math.Inf(1)
				for _, r := range got.Functions {
					if !names[r.Name] {
						t.Errorf("row %q is on neither side", r.Name)
						continue
					}
					if r.Self != selfA[r.Name] || r.Total != totA[r.Name] || r.BaseSelf != selfB[r.Name] || r.BaseTotal != totB[r.Name] {
						t.Errorf("%q: self/total %d/%d base %d/%d, want %d/%d base %d/%d", r.Name, r.Self, r.Total, r.BaseSelf, r.BaseTotal,
							selfA[r.Name], totA[r.Name], selfB[r.Name], totB[r.Name])
					}
					if r.DeltaSelf != int64(selfA[r.Name])-int64(selfB[r.Name]) || r.DeltaTotal != int64(totA[r.Name])-int64(totB[r.Name]) {
						t.Errorf("%q: deltas %d/%d", r.Name, r.DeltaSelf, r.DeltaTotal)
					}
					if want := share(totA[r.Name], allA) - share(totB[r.Name], allB); !close(r.NDeltaTotal, want) {
						t.Errorf("%q: ndelta_total %v, want %v", r.Name, r.NDeltaTotal, want)
					}
					if want := share(selfA[r.Name], allA) - share(selfB[r.Name], allB); !close(r.NDeltaSelf, want) {
						t.Errorf("%q: ndelta_self %v, want %v", r.Name, r.NDeltaSelf, want)
					}
					// The default order is the size of the normalized change of total, largest first.
					if c := math.Abs(r.NDeltaTotal); c > prev {
						t.Errorf("%q: |ndelta_total| %v after %v: not sorted", r.Name, c, prev)
					} else {
						prev = c
					}
					if len(tc.drop) > 0 && strings.HasSuffix(r.Name, "_[k]") {
						t.Errorf("%q: a kernel frame with the kernel off", r.Name)
					}
				}
			})
		}
		// Other orders and the limit.
		base := url.Values{"base_service": {"canary"}, "format": {"table"}, "base_from": {strconv.FormatInt(from.Unix(), 10)}, "base_to": {strconv.FormatInt(to.Unix(), 10)}}
		var bySelf, byName compareReply
		getJSON("/api/v1/diff", q("shop", merge(base, url.Values{"sort": {"base_self"}, "limit": {"3"}})), &bySelf)
		selfB, _, _ := sideStats(stacks["canary"])
		var want []uint64
		for _, c := range selfB {
			want = append(want, c)
		}
		sort.Slice(want, func(i, j int) bool { return want[i] > want[j] })
		if len(bySelf.Functions) != 3 {
			t.Fatalf("limit 3: %d rows", len(bySelf.Functions))
		}
		for i, r := range bySelf.Functions {
			if r.BaseSelf != want[i] {
				t.Errorf("sort base_self: row %d %q has %d, want %d", i, r.Name, r.BaseSelf, want[i])
			}
		}
		getJSON("/api/v1/diff", q("shop", merge(base, url.Values{"sort": {"name"}, "limit": {"100000"}})), &byName)
		if !sort.SliceIsSorted(byName.Functions, func(i, j int) bool { return byName.Functions[i].Name < byName.Functions[j].Name }) {
			t.Errorf("sort name: not A to Z")
		}
	})

	t.Run("diff tree against another service", func(t *testing.T) {
		var got node
		getJSON("/api/v1/diff", q("shop", url.Values{"base_service": {"canary"}, "base_from": {strconv.FormatInt(from.Unix(), 10)},
			"base_to": {strconv.FormatInt(to.Unix(), 10)}, "maxNodes": {"0"}}), &got)
		if got.Total == nil || got.BaseTotal == nil || *got.Total != wantA || *got.BaseTotal != wantB {
			t.Fatalf("diff totals %v/%v, want %d/%d", got.Total, got.BaseTotal, wantA, wantB)
		}
		flatGot := flat(&got)
		sameTree(t, "comparison side", flatGot, mergeTrees(expectedTree(t, stacks["shop"]), expectedTree(t, stacks["canary"])))
		for path, c := range stacks["canary"] {
			n := flatGot[path]
			if n == nil || n.BaseSelf < c {
				t.Errorf("baseline stack %q: node %+v, want base_self ≥ %d", path, n, c)
			}
		}
		if n := flatGot["java;Main.run_[j]"]; n == nil || n.Base != 10 {
			t.Errorf("java;Main.run_[j]: %+v, want base 10", n)
		}
		// The runtime view applies to both sides of a diff: totals kept, kernel time with the callers.
		var shaped node
		getJSON("/api/v1/diff", q("shop", url.Values{"base_service": {"canary"}, "base_from": {strconv.FormatInt(from.Unix(), 10)},
			"base_to": {strconv.FormatInt(to.Unix(), 10)}, "maxNodes": {"0"}, "runtimes_off": {"kernel"}}), &shaped)
		all := func(string) bool { return true }
		wa, wb := reshape(stacks["shop"], []string{"k"}, all), reshape(stacks["canary"], []string{"k"}, all)
		if shaped.Total == nil || shaped.BaseTotal == nil || *shaped.Total != wantA || *shaped.BaseTotal != wantB {
			t.Fatalf("kernel off: diff totals %v/%v, want %d/%d", shaped.Total, shaped.BaseTotal, wantA, wantB)
		}
		fs := flat(&shaped)
		sameTree(t, "kernel off, comparison side", fs, mergeTrees(expectedTree(t, wa), expectedTree(t, wb)))
		for path, c := range wb {
			if n := fs[path]; n == nil || n.BaseSelf != c {
				t.Errorf("kernel off: baseline stack %q: node %+v, want base_self %d", path, n, c)
			}
		}
		if n := fs["java;Main.run_[j]"]; n == nil || n.BaseSelf != 10 {
			t.Errorf("kernel off: java;Main.run_[j] %+v, want base_self 10", n)
		}
	})

	t.Run("runtime and process views", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			extra url.Values
			drop  []string
			keep  func(string) bool
		}{
			{"kernel off", url.Values{"runtimes_off": {"kernel"}}, []string{"k"}, func(string) bool { return true }},
			{"kernel and python off", url.Values{"runtimes_off": {"kernel,python"}}, []string{"k", "p"}, func(string) bool { return true }},
			{"python native off (a raw suffix too)", url.Values{"runtimes_off": {"python_ext", "s"}}, []string{"pe", "pn", "s"}, func(string) bool { return true }},
			{"exclude python3", url.Values{"process_not": {"python3"}}, nil, func(p string) bool { return p != "python3" }},
			{"only java and nginx, kernel off", url.Values{"process": {"java", "nginx"}, "runtimes_off": {"kernel"}}, []string{"k"},
				func(p string) bool { return p == "java" || p == "nginx" }},
		} {
			for _, svc := range []string{"shop", "canary"} {
				t.Run(tc.name+" "+svc, func(t *testing.T) {
					want := reshape(stacks[svc], tc.drop, tc.keep)
					_, _, total := sideStats(want)
					var got node
					getJSON("/api/v1/flamegraph", q(svc, merge(tc.extra, url.Values{"maxNodes": {"0"}})), &got)
					if got.Value != total {
						t.Errorf("total %d, want %d", got.Value, total)
					}
					sameTree(t, tc.name, flat(&got), expectedTree(t, want))
					var top struct {
						Total     uint64 `json:"total"`
						Functions []struct {
							Name  string `json:"name"`
							Self  uint64 `json:"self"`
							Total uint64 `json:"total"`
						} `json:"functions"`
					}
					getJSON("/api/v1/top", q(svc, merge(tc.extra, url.Values{"limit": {"100000"}})), &top)
					self, tot, _ := sideStats(want)
					if top.Total != total || len(top.Functions) != len(tot) {
						t.Errorf("top: total %d with %d rows, want %d with %d", top.Total, len(top.Functions), total, len(tot))
					}
					for _, f := range top.Functions {
						if f.Self != self[f.Name] || f.Total != tot[f.Name] {
							t.Errorf("top %q: %d/%d, want %d/%d", f.Name, f.Self, f.Total, self[f.Name], tot[f.Name])
						}
					}
					// The folded export is the reshaped stacks, line for line.
					code, body := rawGet(t, st.URL, "/api/v1/export?"+q(svc, merge(tc.extra, url.Values{"format": {"folded"}})).Encode(), read)
					if code != http.StatusOK {
						t.Fatalf("export: %d %s", code, body)
					}
					folded := map[string]uint64{}
					for _, l := range strings.Split(strings.TrimSpace(string(body)), "\n") {
						if l == "" {
							continue
						}
						sp := strings.LastIndexByte(l, ' ')
						n, err := strconv.ParseUint(l[sp+1:], 10, 64)
						if err != nil {
							t.Fatalf("export line %q", l)
						}
						folded[l[:sp]] += n
					}
					if len(folded) != len(want) {
						t.Errorf("export: %d stacks, want %d", len(folded), len(want))
					}
					for s, c := range want {
						if folded[s] != c {
							t.Errorf("export: %q %d, want %d", s, folded[s], c)
						}
					}
				})
			}
		}
		// Turning the kernel off keeps the total: its samples go to the callers.
		var whole, noKernel node
		getJSON("/api/v1/flamegraph", q("canary", nil), &whole)
		getJSON("/api/v1/flamegraph", q("canary", url.Values{"runtimes_off": {"kernel"}}), &noKernel)
		if whole.Value != noKernel.Value || whole.Value != wantB {
			t.Errorf("kernel off changed the total: %d → %d", whole.Value, noKernel.Value)
		}
		if n := flat(&noKernel)["java;Main.run_[j]"]; n == nil || n.Self != 10 {
			t.Errorf("java;Main.run_[j] with the kernel off: %+v, want self 10 (7 of gc_[k] and 3 of write_[k])", n)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		limited := st.Token(t, pgdb.KindRead, "shop")
		for _, tc := range []struct {
			path  string
			extra url.Values
			token string
			code  int
			msg   string
		}{
			{"/api/v1/flamegraph", url.Values{"runtimes_off": {"kernel,no such!"}}, read, 400, "bad runtimes_off"},
			{"/api/v1/top", url.Values{"process": {""}}, read, 400, "bad process"},
			{"/api/v1/diff", url.Values{"format": {"table"}, "sort": {"size"}}, read, 400, "bad sort"},
			{"/api/v1/diff", url.Values{"format": {"csv"}}, read, 400, "bad format"},
			{"/api/v1/diff", url.Values{"format": {"table"}, "order": {"up"}}, read, 400, "bad order"},
			{"/api/v1/diff", url.Values{"format": {"table"}, "limit": {"0"}}, read, 400, "bad limit"},
			{"/api/v1/diff", url.Values{"base_service": {"canary"}}, limited, 403, "token is not valid for the baseline service"},
		} {
			code, body := rawGet(t, st.URL, tc.path+"?"+q("shop", tc.extra).Encode(), tc.token)
			var e struct {
				Message string `json:"message"`
			}
			_ = json.Unmarshal(body, &e)
			if code != tc.code || e.Message != tc.msg {
				t.Errorf("%s %v: %d %s, want %d %q", tc.path, tc.extra, code, body, tc.code, tc.msg)
			}
		}
	})
}

// mergeTrees returns the comparison-side nodes of a diff of two flattened trees: a's nodes as they are,
// and b's other nodes with zero counts (the diff tree holds every path of either side).
func mergeTrees(a, b map[string]*node) map[string]*node {
	out := map[string]*node{}
	for k := range b {
		out[k] = &node{}
	}
	for k, v := range a {
		out[k] = v
	}
	return out
}
