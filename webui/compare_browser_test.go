package webui_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/flamestream/flamestream/cmd/flamestream/testenv"
	"github.com/flamestream/flamestream/internal/demo"
	"github.com/flamestream/flamestream/internal/pgdb"
)

// These tests drive the diff's A vs B table against another service, and the runtime and process views,
// in headless Chromium against a whole Flamestream (ingest, indexer, query API, embedded UI) on real
// ClickHouse and PostgreSQL; every number the page shows is checked against sums made here from the
// uploaded text.

// canaryText is a hand-written profile with known runtimes and processes (75 samples).
func canaryText() []byte {
	return append(demo.NewFleet(1, "canary", demo.Shape{Stacks: 10, Lines: 1, MinDepth: 2, MaxDepth: 3}).HeaderLine("canary-1", "m5.large"),
		";python3;main_[p];rec_[p];rec_[p];leaf_[k] 40\n"+
			";python3;main_[p];do_syscall_64_[k];sys_read_[k] 9\n"+
			";python3;main_[p];numpy_dot_[pn] 11\n"+
			";java;Main.run_[j];gc_[k] 7\n"+
			";java;Main.run_[j];write_[k] 3\n"+
			";nginx;ngx_worker;epoll_wait_[k] 5\n"...)
}

// twoServices starts a stack with user alice, uploads the real agent profile to "shop" and canaryText to
// "canary", waits until both are indexed, and returns the stack, the range parameters and the texts.
func twoServices(t *testing.T) (st *testenv.Stack, from, to time.Time, shop, canary []byte) {
	t.Helper()
	st = testenv.Start(t, testenv.Options{})
	if err := st.PG.SetUser(context.Background(), "alice", "correct horse"); err != nil {
		t.Fatal(err)
	}
	read := st.Token(t, pgdb.KindRead, "")
	from = time.Now().UTC().Truncate(time.Minute).Add(-30 * time.Minute)
	to = from.Add(time.Hour)
	shop, canary = demo.Restamp("web-1", 1), canaryText()
	for _, up := range []struct {
		service, host string
		text          []byte
	}{{"shop", "web-1", shop}, {"canary", "canary-1", canary}} {
		agent := st.Token(t, pgdb.KindAgent, up.service)
		req, _ := http.NewRequest(http.MethodPost, st.URL+"/api/v2/profiles", bytes.NewReader(demo.NewUpload(up.text, up.host, from.Add(5*time.Minute), "").Gzip()))
		for k, v := range map[string]string{"GPROFILER-API-KEY": agent, "GPROFILER-SERVICE-NAME": up.service,
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
			t.Fatalf("upload to %s: %d %s", up.service, resp.StatusCode, b)
		}
		_, want := countsOf(stacksOf(t, up.text))
		deadline := time.Now().Add(90 * time.Second)
		for {
			req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/api/v1/top?service=%s&from=%d&to=%d&limit=1", st.URL, up.service, from.Unix(), to.Unix()), nil)
			req.Header.Set("Authorization", "Bearer "+read)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var top struct{ Total uint64 }
			_ = json.NewDecoder(resp.Body).Decode(&top)
			resp.Body.Close()
			if top.Total == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not indexed within 90 s: %d of %d samples", up.service, top.Total, want)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	return st, from, to, shop, canary
}

func (p *page) login() {
	p.t.Helper()
	p.wait("login form", `location.pathname === '/login'`)
	p.do("log in",
		chromedp.WaitVisible(chromedp.CSS(`input[name=username]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), "alice"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), "correct horse"),
		chromedp.Click(chromedp.CSS(`form.login button[type=submit]`)))
}

func intOf(t *testing.T, s string) int64 {
	t.Helper()
	s = strings.NewReplacer(",", "", "+", "", "−", "-", "\u00a0", "", " ", "").Replace(s)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("not an integer: %q", s)
	}
	return n
}

// TestBrowserCompareAgainstAnotherService: on the Diff tab, picking another service as the baseline puts
// base_service and the same range in the URL, the diff graph's status shows the other service's total, and
// (and its own filters: another service's hosts differ), the A vs B table lists every function of either side with self and total of each and the deltas computed
// from the two texts, ordered by the size of the normalized change; a column header sorts by it, a second
// click the other way round, both in the URL.
func TestBrowserCompareAgainstAnotherService(t *testing.T) {
	p := newPage(t)
	st, from, to, shop, canary := twoServices(t)
	a, totalA := countsOf(stacksOf(t, shop))
	b, totalB := countsOf(stacksOf(t, canary))
	names := map[string]bool{}
	for n := range a {
		names[n] = true
	}
	for n := range b {
		names[n] = true
	}
	ndelta := func(n string) float64 {
		return float64(a[n].total)/float64(totalA) - float64(b[n].total)/float64(totalB)
	}

	p.do("open diff", chromedp.Navigate(fmt.Sprintf("%s/diff?service=shop&from=%d&to=%d", st.URL, from.Unix(), to.Unix())))
	p.login()
	p.wait("baseline service picker", `location.pathname === '/diff' && [...document.querySelectorAll('.base-service select option')].some(o => o.value === 'canary')`)
	p.do("pick canary", chromedp.Evaluate[chromedp.Void](`(() => { const s = document.querySelector('.base-service select'); s.value = 'canary'; s.dispatchEvent(new Event('change')); })()`))
	p.wait("table", `(() => { const q = new URLSearchParams(location.search); return q.get('base_service') === 'canary' && q.get('base') === 'same' && q.get('bf') === 'own' &&
		window.__flamestream.ready && document.querySelectorAll('.cmp-table tbody tr[data-name]').length > 0; })()`)
	if s := evalJS[string](p, `document.querySelector('.status').textContent`); !strings.Contains(s, fmt.Sprintf("baseline %s samples", commas(totalB))) ||
		!strings.HasPrefix(s, commas(totalA)+" samples") {
		t.Errorf("diff status %q, want %d samples and baseline %d", s, totalA, totalB)
	}
	type cmpRow struct {
		Name                                            string
		Self, Total, BaseSelf, BaseTotal, DSelf, DTotal string
	}
	rows := func() []cmpRow {
		return evalJS[[]cmpRow](p, `[...document.querySelectorAll('.cmp-table tbody tr[data-name]')].map(tr => { const c = k => tr.querySelector('[data-col='+k+']').textContent;
			return {Name: tr.dataset.name, Self: c('self'), Total: c('total'), BaseSelf: c('base_self'), BaseTotal: c('base_total'), DSelf: c('delta_self'), DTotal: c('delta_total')}; })`)
	}
	got := rows()
	if len(got) != len(names) {
		t.Errorf("%d rows, want %d (the functions of either side)", len(got), len(names))
	}
	prev := math.Inf(1)
	for _, r := range got {
		wa, wb := a[r.Name], b[r.Name]
		if !names[r.Name] {
			t.Errorf("row %q is on neither side", r.Name)
		}
		if intOf(t, r.Self) != int64(wa.self) || intOf(t, r.Total) != int64(wa.total) || intOf(t, r.BaseSelf) != int64(wb.self) ||
			intOf(t, r.BaseTotal) != int64(wb.total) || intOf(t, r.DSelf) != int64(wa.self)-int64(wb.self) || intOf(t, r.DTotal) != int64(wa.total)-int64(wb.total) {
			t.Errorf("row %+v, want A %d/%d B %d/%d", r, wa.self, wa.total, wb.self, wb.total)
		}
		if c := math.Abs(ndelta(r.Name)); c > prev+1e-6 {
			t.Errorf("row %q: |normalized delta| %v after %v: not in the default order", r.Name, c, prev)
		} else {
			prev = c
		}
	}
	t.Logf("A vs B: %d functions, A %d samples, B %d; screenshot %s", len(got), totalA, totalB, p.shot("compare-table"))

	byBaseSelf := make([]string, 0, len(names))
	for n := range names {
		byBaseSelf = append(byBaseSelf, n)
	}
	sort.Slice(byBaseSelf, func(i, j int) bool {
		x, y := b[byBaseSelf[i]].self, b[byBaseSelf[j]].self
		if x != y {
			return x > y
		}
		return byBaseSelf[i] < byBaseSelf[j]
	})
	p.do("sort by B self", chromedp.Click(chromedp.CSS(`.cmp-table th[data-sort=base_self]`)))
	p.wait("sorted by B self", fmt.Sprintf(`new URLSearchParams(location.search).get('csort') === 'base_self' && document.querySelector('.cmp-table tbody tr[data-name]')?.dataset.name === %q`, byBaseSelf[0]))
	got = rows()
	for i := 1; i < len(got); i++ {
		if intOf(t, got[i].BaseSelf) > intOf(t, got[i-1].BaseSelf) {
			t.Errorf("by B self: row %d %q (%s) after %q (%s)", i, got[i].Name, got[i].BaseSelf, got[i-1].Name, got[i-1].BaseSelf)
		}
	}
	p.do("sort by B self ascending", chromedp.Click(chromedp.CSS(`.cmp-table th[data-sort=base_self]`)))
	p.wait("ascending", `new URLSearchParams(location.search).get('corder') === 'asc' && document.querySelector('.cmp-table th.sorted')?.getAttribute('aria-sort') === 'ascending'`)
	p.wait("rows reordered", `(() => { const r = document.querySelectorAll('.cmp-table tbody tr[data-name] [data-col=base_self]'); return r.length > 1 && r[0].textContent === '0'; })()`)
	t.Logf("ascending screenshot %s", p.shot("compare-table-ascending"))
}

// TestBrowserRuntimeAndProcessViews: turning the kernel off keeps the graph's total and gives the kernel
// frames' samples to their callers (top table), excluding a process and keeping only another change the
// total by exactly their samples, and the weight threshold hides the small nodes without changing the
// total; each state is in the URL.
func TestBrowserRuntimeAndProcessViews(t *testing.T) {
	p := newPage(t)
	st, from, to, _, _ := twoServices(t)
	status := func() int64 {
		s := evalJS[string](p, `document.querySelector('.status').textContent`)
		return intOf(t, strings.SplitN(s, " samples", 2)[0])
	}
	drawn := func(name string) bool { return evalJS[bool](p, fmt.Sprintf(`!!window.__flamestream.locate(%q)`, name)) }
	topSelf := func(name string) int64 {
		s := evalJS[string](p, fmt.Sprintf(`(() => { const tr = [...document.querySelectorAll('.top-wrap tbody tr')].find(tr => tr.cells[0].textContent === %q); return tr ? tr.cells[1].querySelector('.muted').textContent : '-1'; })()`, name))
		return intOf(t, s)
	}
	ready := `window.__flamestream.ready && document.querySelectorAll('.top-wrap tbody tr td.fn').length > 0`

	p.do("open profile", chromedp.Navigate(fmt.Sprintf("%s/profile?service=canary&from=%d&to=%d", st.URL, from.Unix(), to.Unix())))
	p.login()
	p.wait("graph", ready+` && document.querySelector('input[data-runtime=kernel]')`)
	if n := status(); n != 75 || !drawn("gc_[k]") || topSelf("Main.run_[j]") != 0 {
		t.Fatalf("whole graph: %d samples, gc_[k] drawn %v, Main.run_[j] self %d; want 75, true, 0", n, drawn("gc_[k]"), topSelf("Main.run_[j]"))
	}

	p.do("kernel off", chromedp.Click(chromedp.CSS(`input[data-runtime=kernel]`)))
	p.wait("kernel off", `new URLSearchParams(location.search).get('runtimes_off') === 'kernel' && `+ready+` && !window.__flamestream.locate('gc_[k]')`)
	p.wait("top table without kernel", `![...document.querySelectorAll('.top-wrap tbody tr td.fn')].some(td => td.textContent.endsWith('_[k]'))`)
	// 7 samples of gc_[k] and 3 of write_[k] are Main.run_[j]'s own now; main_[p] gets sys_read's 9.
	if n, rs, ms := status(), topSelf("Main.run_[j]"), topSelf("main_[p]"); n != 75 || rs != 10 || ms != 9 {
		t.Errorf("kernel off: %d samples, Main.run_[j] self %d, main_[p] self %d; want 75, 10, 9", n, rs, ms)
	}
	if href := evalJS[string](p, `document.querySelector('[data-export=folded]').href`); !strings.Contains(href, "runtimes_off=kernel") {
		t.Errorf("folded export link %q does not carry the runtime view", href)
	}
	t.Logf("kernel off screenshot %s", p.shot("runtime-kernel-off"))

	p.do("exclude nginx", chromedp.Evaluate[chromedp.Void](`(() => { const s = document.querySelector('.proc-pick'); s.value = 'nginx'; })()`),
		chromedp.Click(chromedp.CSS(`.stack-view [data-act=exclude]`)))
	p.wait("nginx excluded", `new URLSearchParams(location.search).getAll('process_not').join() === 'nginx' && `+ready+` && !window.__flamestream.locate('ngx_worker')`)
	if n := status(); n != 70 {
		t.Errorf("nginx excluded: %d samples, want 70", n)
	}
	p.do("only java", chromedp.Evaluate[chromedp.Void](`(() => { const s = document.querySelector('.proc-pick'); s.value = 'java'; })()`),
		chromedp.Click(chromedp.CSS(`.stack-view [data-act=only]`)))
	p.wait("only java", `new URLSearchParams(location.search).getAll('process').join() === 'java' && `+ready+` && !window.__flamestream.locate('main_[p]')`)
	if n := status(); n != 10 {
		t.Errorf("only java: %d samples, want 10", n)
	}
	t.Logf("process view screenshot %s", p.shot("runtime-process-only-java"))

	// The chips are drawn again whenever a read answers: clicked from the page's own script, the click
	// lands on the chip there now (chromedp's Click may find a node that was just replaced).
	p.do("back to every process, kernel on", chromedp.Evaluate[chromedp.Void](`document.querySelector('.stack-view [data-process=java]').click()`))
	p.wait("java chip gone", `!new URLSearchParams(location.search).get('process') && document.querySelector('.stack-view [data-process-not=nginx]')`)
	p.do("nginx back", chromedp.Evaluate[chromedp.Void](`document.querySelector('.stack-view [data-process-not=nginx]').click()`))
	p.wait("nginx back", `!new URLSearchParams(location.search).get('process_not') && `+ready+` && window.__flamestream.locate('ngx_worker')`)
	p.do("kernel on", chromedp.Click(chromedp.CSS(`input[data-runtime=kernel]`)))
	p.wait("kernel on", `!new URLSearchParams(location.search).get('runtimes_off') && `+ready+` && window.__flamestream.locate('gc_[k]')`)

	// 5 % of 75 is 3.75: write_[k] (3) goes, gc_[k] (7) stays.
	p.do("hide under 5 %", chromedp.Evaluate[chromedp.Void](`(() => { const s = document.querySelector('select.minw'); s.value = '5'; s.dispatchEvent(new Event('change')); })()`))
	p.wait("threshold", `new URLSearchParams(location.search).get('minw') === '5' && window.__flamestream.ready && !window.__flamestream.locate('write_[k]')`)
	if n, hidden := status(), evalJS[string](p, `document.querySelector('.hidden-count')?.textContent || ''`); n != 75 || hidden != "1 hidden" || !drawn("gc_[k]") {
		t.Errorf("threshold 5 %%: %d samples, %q, gc_[k] drawn %v; want 75, 1 hidden, true", n, hidden, drawn("gc_[k]"))
	}
	t.Logf("threshold screenshot %s", p.shot("runtime-threshold"))
}

// commas formats n as the UI does (fmtInt: thousands separated by commas).
func commas(n uint64) string {
	s := strconv.FormatUint(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
