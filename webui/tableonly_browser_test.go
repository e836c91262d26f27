package webui

import (
	"encoding/json"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// digits keeps the digits of a text ("12,345 samples" → "12345").
func digits(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}

// TestBrowserTableOnlyViewFetchesOnlyTheTable opens the table-only view with the kernel turned off: the
// page asks for the functions table, the timeline and the host metrics with runtimes_off, and never for the
// hidden flame graph or its top table; the host metrics panel says the view does not apply to it. A row
// opens the function's history from the fixture's /function route, whose numbers the panel shows as the
// fixture computed them from the kernel-less stacks. The process picker offers the stacks' first frames
// (from the functions reply's roots, as no graph names them). Switching to the graph then fetches the graph, with
// the same view.
func TestBrowserTableOnlyViewFetchesOnlyTheTable(t *testing.T) {
	b := newBrowser(t)
	b.do("open table view", chromedp.Navigate(b.base+"/profile?service=demo&range=1h&view=table&runtimes_off=kernel"))
	b.wait("login", `location.pathname === '/login'`)
	b.login()
	b.wait("table rows", `location.pathname === '/profile' && document.querySelectorAll('.fn-table tbody tr[data-name]').length > 0 && window.__flamestream.ready`)
	b.waitRequest("/api/v1/functions?", "runtimes_off=kernel", "service=demo")
	b.waitRequest("/api/v1/timeline?", "runtimes_off=kernel", "service=demo")
	b.waitRequest("/api/v1/metrics?", "runtimes_off=kernel", "service=demo")
	b.wait("host metrics note", `document.querySelector('.host-metrics .hm-ignored')?.dataset.ignored === 'runtimes_off'`)

	// The function with the most self time once the kernel is off (no kernel frame may be listed).
	shape := url.Values{"runtimes_off": {"kernel"}}
	stats, _ := fixtureStats(b.api.shapedStacks(shape))
	var names []string
	for n := range stats {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		if stats[names[i]].Self != stats[names[j]].Self {
			return stats[names[i]].Self > stats[names[j]].Self
		}
		return names[i] < names[j]
	})
	name := names[0]
	if kernel := eval[int](b, `[...document.querySelectorAll('.fn-table tbody tr[data-name]')].filter(tr => tr.dataset.name.endsWith('_[k]')).length`); kernel != 0 {
		t.Errorf("%d kernel frames listed with the kernel off", kernel)
	}
	// The process picker offers the processes (the stacks' first frames) though no graph was drawn: the
	// functions reply names them.
	var roots []string
	for st := range b.api.shapedStacks(shape) {
		if root, _, _ := strings.Cut(st, ";"); !slices.Contains(roots, root) {
			roots = append(roots, root)
		}
	}
	sort.Strings(roots)
	if len(roots) < 2 {
		t.Fatalf("the fixture has %d processes, want several", len(roots))
	}
	b.wait("process picker", `JSON.stringify([...document.querySelectorAll('.proc-pick option')].map(o => o.value).filter(v => v)) === `+strconv.Quote(mustJSON(t, roots)))
	t.Logf("table-only screenshot %s/table-only-processes.png", b.art)
	b.shot("table-only-processes")
	b.do("open history", chromedp.Evaluate[chromedp.Void](`[...document.querySelectorAll('.fn-table tbody tr[data-name]')].find(tr => tr.dataset.name === `+strconv.Quote(name)+`).click()`))
	b.wait("history", `new URLSearchParams(location.search).get('hist') === `+strconv.Quote(name)+` && document.querySelector('.fn-history').dataset.ready === 'true'`)
	req := b.waitRequest("/api/v1/function?", "runtimes_off=kernel", "name="+url.QueryEscape(name))
	rq, _ := url.ParseQuery(strings.SplitN(req, "?", 2)[1])
	want := b.api.fixtureHistory(rq)
	got := eval[map[string]any](b, `(() => { const s = k => document.querySelector('.fn-history [data-stat='+k+'] .fh-value').textContent;
		return {total: s('total'), self: s('self'), occurrences: s('occurrences'), samples: s('samples'), points: document.querySelectorAll('.fn-history .fh-slot').length}; })()`)
	num := func(k string) string { return strconv.FormatInt(want[k].(int64), 10) }
	if digits(got["total"].(string)) != num("total") || digits(got["self"].(string)) != num("self") ||
		digits(got["occurrences"].(string)) != num("occurrences") || digits(got["samples"].(string)) != num("samples") ||
		int(got["points"].(float64)) != len(want["points"].([]map[string]int64)) || want["self"].(int64) == 0 {
		t.Errorf("history of %s shows %v, the fixture answered total %v self %v occurrences %v of %v samples in %d buckets",
			name, got, want["total"], want["self"], want["occurrences"], want["samples"], len(want["points"].([]map[string]int64)))
	}
	t.Logf("table-only screenshot %s/table-only-history.png", b.art)
	b.shot("table-only-history")

	// Nothing of the hidden graph was asked for.
	if g, top := b.api.seen("/api/v1/flamegraph"), b.api.seen("/api/v1/top"); len(g)+len(top) != 0 {
		t.Fatalf("the table-only view asked for the hidden graph %q and top table %q", g, top)
	}

	b.do("graph view", chromedp.Click(chromedp.CSS(`.view-switch [data-view=graph]`)))
	b.wait("graph drawn", `new URLSearchParams(location.search).get('view') === null && window.__flamestream.ready && window.__flamestream.nodes > 0`)
	b.waitRequest("/api/v1/flamegraph?", "runtimes_off=kernel")
	b.waitRequest("/api/v1/top?", "runtimes_off=kernel")
	if errs := b.pageErrors(); len(errs) > 0 {
		t.Errorf("page errors: %v", errs)
	}
}

// mustJSON is v as JSON.
func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
