package webui

import (
	"context"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

const chromiumPath = "/usr/bin/chromium"

// browser is one headless Chromium tab pointed at a fixture server.
type browser struct {
	t      *testing.T
	ctx    context.Context
	base   string
	api    *fixtureAPI
	art    string
	mu     sync.Mutex
	errors []string
}

// newBrowser starts the fixture server and Chromium. It skips when Chromium
// is absent, unless CI is set: in CI the browser tests must run.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("skipping browser test: %s not found (apt-get install chromium); with CI set this test fails instead", chromiumPath)
		}
		t.Fatalf("CI is set but Chromium is missing at %s: %v", chromiumPath, err)
	}
	art := os.Getenv("FLAMESTREAM_ARTIFACTS")
	if art == "" {
		art = t.TempDir()
	}
	if err := os.MkdirAll(art, 0o755); err != nil {
		t.Fatal(err)
	}
	api := newFixtureAPI(t)
	srv := httptest.NewServer(api.handler())
	t.Cleanup(srv.Close)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	b := &browser{t: t, ctx: ctx, base: srv.URL, api: api, art: art}
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	if err := chromedp.Listen(ctx, func(ev any) {
		var msg string
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			msg = "exception: " + e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil {
				msg += " " + e.ExceptionDetails.Exception.Description
			}
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError {
				msg = "console.error:"
				for _, a := range e.Args {
					msg += " " + string(a.Value) + a.Description
				}
			}
		}
		if msg != "" {
			b.mu.Lock()
			b.errors = append(b.errors, msg)
			b.mu.Unlock()
		}
	}); err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Logf("fixture server %s, screenshots in %s", srv.URL, art)
	return b
}

// do runs steps with a deadline; on failure it saves a screenshot first.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.shot("failure-" + strings.ReplaceAll(what, " ", "-"))
		b.t.Fatalf("%s: %v (page errors: %v)", what, err, b.pageErrors())
	}
}

// wait polls a JavaScript condition until it is truthy.
func (b *browser) wait(what, cond string) {
	b.t.Helper()
	b.do("wait for "+what, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingTimeout(20*time.Second))(ctx, t)
		return err
	}))
}

// eval evaluates an expression (promises are awaited) and decodes its value.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.shot("failure-eval")
		b.t.Fatalf("eval %q: %v (page errors: %v)", expr, err, b.pageErrors())
	}
	return v
}

// waitRequest waits until the fixture API saw a request to path whose query
// contains every one of parts, and returns it.
func (b *browser) waitRequest(path string, parts ...string) string {
	b.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		reqs := b.api.seen(path)
		for i := len(reqs) - 1; i >= 0; i-- {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(reqs[i], p)
			}
			if ok {
				return reqs[i]
			}
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("no request to %s with %q; saw %q", path, parts, reqs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *browser) shot(name string) {
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	img, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(b.art, name+".png")
	if err := os.WriteFile(p, img, 0o644); err != nil {
		b.t.Logf("save screenshot: %v", err)
	}
}

func (b *browser) pageErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

type rect struct{ X, Y, W, H float64 }

// locate scrolls the widest node with that name into view and returns its viewport rectangle.
func (b *browser) locate(name string) rect {
	b.t.Helper()
	r := eval[*rect](b, fmt.Sprintf(`(() => {
		const f = window.__flamestream;
		let r = f.locate && f.locate(%q);
		if (r && (r.y < 0 || r.y + r.h > innerHeight)) { scrollBy(0, r.y - innerHeight / 3); r = f.locate(%[1]q); }
		return r ? {X: r.x, Y: r.y, W: r.w, H: r.h} : null;
	})()`, name))
	if r == nil {
		b.shot("failure-locate")
		b.t.Fatalf("node %q is not drawn", name)
	}
	return *r
}

func (b *browser) login() {
	b.do("fill login form",
		chromedp.WaitVisible(chromedp.CSS(`input[name=username]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), fixtureUser),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), fixturePass),
		chromedp.Click(chromedp.CSS(`form.login button[type=submit]`)))
}

const canvasInk = `(() => {
	const c = document.querySelector('.fg-canvas');
	const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
	const probe = document.createElement('canvas').getContext('2d');
	probe.fillStyle = getComputedStyle(document.documentElement).getPropertyValue('--graph-bg').trim();
	probe.fillRect(0, 0, 1, 1);
	const bg = probe.getImageData(0, 0, 1, 1).data;
	let ink = 0;
	for (let i = 0; i < d.length; i += 4) if (d[i] !== bg[0] || d[i+1] !== bg[1] || d[i+2] !== bg[2]) ink++;
	return ink / (d.length / 4);
})()`

// TestBrowserStudio drives the UI in headless Chromium against the fixture API.
func TestBrowserStudio(t *testing.T) {
	b := newBrowser(t)

	// An unauthenticated deep link goes to the login page and comes back.
	b.do("open profile", chromedp.Navigate(b.base+"/profile?service=demo&range=6h"))
	b.wait("login redirect", `location.pathname === '/login' && new URLSearchParams(location.search).get('next').startsWith('/profile')`)
	b.shot("login")
	b.login()
	b.wait("profile drawn", `window.__flamestream.view === 'profile' && window.__flamestream.ready && location.search.includes('range=6h')`)
	b.shot("profile")

	st := eval[map[string]any](b, `({nodes: __flamestream.nodes, drawn: __flamestream.nodesDrawn, ms: __flamestream.firstPaintMs})`)
	if st["nodes"].(float64) < 100 || st["drawn"].(float64) < 10 {
		t.Fatalf("graph state %v", st)
	}
	if ink := eval[float64](b, canvasInk); ink < 0.05 {
		t.Fatalf("only %.1f%% of the canvas differs from the background", ink*100)
	}
	t.Logf("demo graph: %v nodes, %v drawn, first paint %.1f ms", st["nodes"], st["drawn"], st["ms"])
	if reqs := b.api.seen("/api/v1/flamegraph"); len(reqs) == 0 || !strings.Contains(reqs[0], "maxNodes=") {
		t.Errorf("flamegraph requests %v lack maxNodes", reqs)
	}

	// Hover shows the tooltip and publishes the hovered node.
	r := b.locate("perf")
	b.do("hover perf", chromedp.MouseEvent("mouseMoved", r.X+r.W/2, r.Y+r.H/2))
	b.wait("hovered", `window.__flamestream.hovered && window.__flamestream.hovered.name === 'perf' && !document.querySelector('.fg-tip').hidden`)
	if pct := eval[float64](b, `__flamestream.hovered.pct`); pct <= 0 || pct > 1 {
		t.Errorf("hovered pct %v", pct)
	}

	// Search highlights and reports the matched share of the root.
	b.do("search", chromedp.SendKeys(chromedp.CSS(`input.search`), "sys_read"))
	b.wait("search matched", `window.__flamestream.searchMatched > 0 && new URLSearchParams(location.search).get('search') === 'sys_read'`)
	matched := eval[float64](b, `__flamestream.searchMatched`)
	if matched >= 1 {
		t.Errorf("matched fraction %v, want in (0, 1)", matched)
	}
	if txt := eval[string](b, `document.querySelector('.matched').textContent`); !strings.HasPrefix(txt, "matched ") {
		t.Errorf("matched label %q", txt)
	}
	b.shot("search")
	b.do("clear search", chromedp.Click(chromedp.CSS(`input.search`)), chromedp.KeyEvent(kb.Escape))
	b.wait("search cleared", `window.__flamestream.searchMatched === 0 && !location.search.includes('search=')`)

	// Clicking a node zooms: the zoom path and the URL change.
	r = b.locate("perf")
	b.do("click perf", chromedp.MouseClickXY(r.X+r.W/2, r.Y+r.H/2))
	b.wait("zoomed", `JSON.stringify(window.__flamestream.zoomPath) === '["perf"]' && new URLSearchParams(location.search).get('zoom') === 'perf'`)
	b.shot("zoomed")
	b.do("back", chromedp.NavigateBack())
	b.wait("zoom undone by history", `window.__flamestream.zoomPath.length === 0`)
	b.do("forward", chromedp.NavigateForward())
	b.wait("zoom restored", `window.__flamestream.zoomPath[0] === 'perf'`)
	// Esc resets the zoom; f flips the orientation.
	b.do("blur", chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur()`), chromedp.KeyEvent(kb.Escape))
	b.wait("zoom reset", `window.__flamestream.zoomPath.length === 0 && !location.search.includes('zoom=')`)
	b.do("flip", chromedp.KeyEvent("f"))
	b.wait("flame orientation", `window.__flamestream.orientation === 'flame' && location.search.includes('orient=flame')`)
	b.shot("flame-orientation")
	b.do("help", chromedp.KeyEvent("?"))
	b.wait("help open", `document.querySelector('dialog.help').open`)
	b.do("close help", chromedp.KeyEvent(kb.Escape))
	b.wait("help closed", `!document.querySelector('dialog.help').open`)
	b.do("flip back", chromedp.KeyEvent("f"))
	b.wait("icicle orientation", `window.__flamestream.orientation === 'icicle'`)

	// A top-table row highlights its function.
	b.do("top row", chromedp.Click(chromedp.CSS(`.top-table tbody tr:first-child`)))
	b.wait("function highlighted", `new URLSearchParams(location.search).get('fn') && window.__flamestream.searchMatched > 0`)
	b.do("sort by total", chromedp.Click(chromedp.CSS(`.top-table th.sortable:nth-child(3)`)))
	b.wait("sorted by total", `location.search.includes('sort=total') && document.querySelector('.top-table th.sorted').textContent.startsWith('Total')`)
	b.waitRequest("/api/v1/top", "sort=total", "limit=")

	// The "other" node re-requests the graph focused on its parent.
	r = b.locate("other")
	b.do("click other", chromedp.MouseClickXY(r.X+r.W/2, r.Y+r.H/2))
	b.wait("focused", fmt.Sprintf(`window.__flamestream.ready && JSON.stringify(window.__flamestream.focus) === '[%q]'`, b.api.otherProcName()))
	b.waitRequest("/api/v1/flamegraph", "focus="+b.api.otherProcName())
	b.shot("focus")

	// Filters: include a host, the request carries it; exclusion uses *_not.
	b.do("open host filter", chromedp.Click(chromedp.CSS(`details[data-filter=host] summary`)))
	b.do("include host", chromedp.Click(chromedp.CSS(`details[data-filter=host] li:first-child button[title=include]`)))
	b.wait("host filter", `window.__flamestream.ready && new URLSearchParams(location.search).get('host') === 'ip-10-0-0-1'`)
	b.do("open container filter", chromedp.Click(chromedp.CSS(`details[data-filter=container] summary`)))
	b.do("exclude container", chromedp.Click(chromedp.CSS(`details[data-filter=container] li:nth-child(2) button[title=exclude]`)))
	b.wait("container exclusion", `window.__flamestream.ready && new URLSearchParams(location.search).get('container_not') === 'indexer'`)
	b.waitRequest("/api/v1/flamegraph", "host=ip-10-0-0-1", "container_not=indexer")
	b.shot("filters")

	// Exports: API links carry the selection; PNG and SVG are made in the page.
	if href := eval[string](b, `document.querySelector('[data-export=folded]').href`); !strings.Contains(href, "/api/v1/export?") ||
		!strings.Contains(href, "format=folded") || !strings.Contains(href, "service=demo") || !strings.Contains(href, "host=ip-10-0-0-1") {
		t.Errorf("folded export link %q", href)
	}
	b.do("capture downloads", chromedp.Evaluate[chromedp.Void](`window.__blobs = [];
		const orig = URL.createObjectURL.bind(URL);
		URL.createObjectURL = (blob) => { window.__blobs.push(blob); return orig(blob); };`))
	b.do("export svg", chromedp.Click(chromedp.CSS(`[data-export=svg]`)))
	b.wait("svg blob", `window.__blobs.length === 1`)
	svgInfo := eval[map[string]any](b, `window.__blobs[0].text().then((t) => ({type: window.__blobs[0].type, head: t.slice(0, 4), rects: (t.match(/<rect /g) || []).length}))`)
	if svgInfo["type"] != "image/svg+xml" || svgInfo["head"] != "<svg" || svgInfo["rects"].(float64) < 10 {
		t.Errorf("svg export %v", svgInfo)
	}
	b.do("export png", chromedp.Click(chromedp.CSS(`[data-export=png]`)))
	b.wait("png blob", `window.__blobs.length === 2`)
	if png := eval[map[string]any](b, `({type: window.__blobs[1].type, size: window.__blobs[1].size})`); png["type"] != "image/png" || png["size"].(float64) < 1000 {
		t.Errorf("png export %v", png)
	}

	// Dragging on the timeline selects a custom range.
	tl := eval[rect](b, `(() => { const r = document.querySelector('.tl-canvas').getBoundingClientRect(); return {X: r.left, Y: r.top, W: r.width, H: r.height}; })()`)
	y := tl.Y + tl.H/2
	b.do("drag timeline",
		chromedp.MouseEvent("mousePressed", tl.X+tl.W*0.25, y, chromedp.ButtonLeft),
		chromedp.MouseEvent("mouseMoved", tl.X+tl.W*0.5, y, chromedp.ButtonLeft),
		chromedp.MouseEvent("mouseReleased", tl.X+tl.W*0.6, y, chromedp.ButtonLeft))
	b.wait("custom range", `(() => { const q = new URLSearchParams(location.search);
		return !q.has('range') && +q.get('to') - +q.get('from') > 3600 && +q.get('to') - +q.get('from') < 3 * 3600 && window.__flamestream.ready; })()`)
	b.waitRequest("/api/v1/timeline", "host=ip-10-0-0-1", "container_not=indexer")

	// Diff view.
	b.do("open diff", chromedp.Navigate(b.base+"/diff?service=demo&range=1h"))
	b.wait("diff drawn", `window.__flamestream.view === 'diff' && window.__flamestream.ready && window.__flamestream.nodesDrawn > 10`)
	if reqs := b.api.seen("/api/v1/diff"); len(reqs) == 0 || !strings.Contains(reqs[0], "base_from=") || !strings.Contains(reqs[0], "base_to=") {
		t.Errorf("diff requests %v", reqs)
	}
	if ink := eval[float64](b, canvasInk); ink < 0.05 {
		t.Errorf("diff canvas mostly empty (%.1f%%)", ink*100)
	}
	b.shot("diff")

	// Services overview.
	b.do("services", chromedp.Navigate(b.base+"/"))
	b.wait("services", `window.__flamestream.view === 'services' && document.querySelectorAll('.services-table tbody tr').length === 2`)
	// Host metrics of the last day: demo's agents reported them, bench's did not.
	for sel, want := range map[string]string{
		`tr[data-service=demo] td.cpu`: "37.3 %", `tr[data-service=demo] td.mem`: "52.5 %",
		`tr[data-service=bench] td.cpu`: "–", `tr[data-service=bench] td.mem`: "–",
	} {
		if got := eval[string](b, `document.querySelector('`+sel+`').textContent`); got != want {
			t.Errorf("%s: %q, want %q", sel, got, want)
		}
	}
	b.do("open demo", chromedp.Click(chromedp.CSS(`tr[data-service=demo] td:nth-child(2)`)))
	b.wait("profile from services", `window.__flamestream.view === 'profile' && window.__flamestream.ready && location.search.includes('service=demo')`)

	// Tokens: create (shown once, CSRF header sent), use in install, revoke.
	b.do("tokens", chromedp.Navigate(b.base+"/admin/tokens"))
	b.wait("tokens listed", `window.__flamestream.ready && document.querySelectorAll('tr[data-token]').length === 1`)
	b.do("create token", chromedp.SendKeys(chromedp.CSS(`input[name=name]`), "ci agents"), chromedp.Click(chromedp.CSS(`form.form-row button[type=submit]`)))
	b.wait("token shown", `document.querySelector('code.secret') && document.querySelector('code.secret').textContent === 'fs_tok_2_abcdef'`)
	b.shot("token-created")
	b.do("to install", chromedp.Click(chromedp.CSS(`.notice a`)))
	b.wait("install filled", `window.__flamestream.view === 'install' && document.querySelector('[data-snippet=docker]').textContent.includes('--token=fs_tok_2_abcdef')`)
	docker := eval[string](b, `document.querySelector('[data-snippet=docker]').textContent`)
	if want := "--server-host " + b.base; !strings.Contains(docker, want) || !strings.HasPrefix(docker, "docker run --name granulate-gprofiler -d --restart=on-failure:10 --pid=host --userns=host --privileged granulate/gprofiler:latest -cu ") {
		t.Errorf("docker command %q lacks %q", docker, want)
	}
	if k8s := eval[string](b, `document.querySelector('[data-snippet=k8s]').textContent`); !strings.Contains(k8s, "kind: DaemonSet") || !strings.Contains(k8s, `"fs_tok_2_abcdef"`) {
		t.Errorf("k8s manifest %q", k8s)
	}
	b.shot("install")
	b.do("tokens again", chromedp.Navigate(b.base+"/admin/tokens"))
	b.wait("two tokens", `document.querySelectorAll('tr[data-token]').length === 2`)
	b.do("revoke", chromedp.Evaluate[chromedp.Void](`window.confirm = () => true`), chromedp.Click(chromedp.CSS(`tr[data-token="2"] button.danger`)))
	b.wait("revoked", `document.querySelector('tr[data-token="2"] .badge.bad')`)

	// Agents and settings.
	b.do("agents", chromedp.Navigate(b.base+"/admin/agents?service=demo"))
	b.wait("agents", `document.querySelectorAll('table.grid tbody tr').length === 2`)
	b.do("settings", chromedp.Navigate(b.base+"/admin/settings?service=demo"))
	b.wait("settings form", `document.querySelector('input[name=retention_days]')`)
	b.do("save settings",
		chromedp.SetValue(chromedp.CSS(`input[name=retention_days]`), "14"),
		chromedp.Click(chromedp.CSS(`form.form-grid button[type=submit]`)))
	b.wait("saved", `document.querySelector('.ok-text')`)
	b.api.mu.Lock()
	saved := b.api.settings["demo"]
	b.api.mu.Unlock()
	if saved == nil || saved["retention_days"] != float64(14) {
		t.Errorf("settings saved %v", saved)
	}
	// An empty retention is the global one: sent as null, never as a number of days.
	b.do("clear retention",
		chromedp.SetValue(chromedp.CSS(`input[name=retention_days]`), ""),
		chromedp.Click(chromedp.CSS(`form.form-grid button[type=submit]`)))
	b.wait("saved again", `document.querySelector('.ok-text')`)
	b.api.mu.Lock()
	saved = b.api.settings["demo"]
	b.api.mu.Unlock()
	if v, ok := saved["retention_days"]; !ok || v != nil {
		t.Errorf("settings saved with an empty retention: %v", saved)
	}

	// Dark theme.
	b.do("profile again", chromedp.Navigate(b.base+"/profile?service=demo"))
	b.wait("profile", `window.__flamestream.ready`)
	b.do("theme light", chromedp.Click(chromedp.CSS(`[data-action=theme]`)))
	b.do("theme dark", chromedp.Click(chromedp.CSS(`[data-action=theme]`)))
	b.wait("dark", `document.documentElement.dataset.theme === 'dark'`)
	b.shot("profile-dark")

	// A range past the raw retention: the reply covers whole days (2020-01-01 to 2020-01-04), and the
	// status line says so.
	b.do("old range", chromedp.Navigate(b.base+"/profile?service=demo&from=1577873472&to=1578013200"))
	b.wait("widened range shown", `window.__flamestream.ready && JSON.stringify(window.__flamestream.covered) === '[1577836800,1578096000]' && document.body.innerText.includes('past the raw retention: whole days')`)
	b.shot("profile-past-retention")

	if errs := b.pageErrors(); len(errs) > 0 {
		// 401s while logged out are logged by the browser as failed loads, not as script errors.
		t.Errorf("page errors: %v", errs)
	}
}

func (f *fixtureAPI) otherProcName() string {
	if f.otherProc == "" {
		_, f.otherProc = truncateWidest(f.demo)
	}
	return f.otherProc
}

// TestRenderBenchmark64K measures, in the page, the first paint and redraw
// times of a synthetic 65,536-node tree. It runs only when asked for:
// FLAMESTREAM_RENDER_BENCH=1 or -run TestRenderBenchmark64K.
func TestRenderBenchmark64K(t *testing.T) {
	if os.Getenv("FLAMESTREAM_RENDER_BENCH") != "1" {
		if f := flag.Lookup("test.run"); f == nil || !strings.Contains(f.Value.String(), "RenderBenchmark") {
			t.Skip("render benchmark: set FLAMESTREAM_RENDER_BENCH=1 or run with -run TestRenderBenchmark64K")
		}
	}
	b := newBrowser(t)
	b.do("open bench", chromedp.Navigate(b.base+"/login?next="+"/profile%3Fservice%3Dbench"))
	b.login()
	// First paint is measured over several fresh page loads (cold JIT each
	// time); the median is the figure, the spread shows the machine's noise.
	const loads = 5
	var firsts []map[string]float64
	for k := 0; k < loads; k++ {
		if k > 0 {
			b.do("reload bench", chromedp.Reload())
		}
		b.wait("bench drawn", `window.__flamestream.view === 'profile' && window.__flamestream.ready`)
		firsts = append(firsts, eval[map[string]float64](b, `({nodes: __flamestream.nodes, drawn: __flamestream.nodesDrawn, load: __flamestream.loadMs,
			parse: __flamestream.parseMs, flatten: __flamestream.flattenMs, first: __flamestream.firstPaintMs})`))
	}
	b.shot("bench-64k")
	if firsts[0]["nodes"] != 65536 {
		t.Fatalf("loaded %v nodes, want 65536", firsts[0]["nodes"])
	}
	med := func(key string) (median, lo, hi float64) {
		v := make([]float64, 0, len(firsts))
		for _, f := range firsts {
			v = append(v, f[key])
		}
		sort.Float64s(v)
		return v[len(v)/2], v[0], v[len(v)-1]
	}
	first := map[string]float64{}
	for _, k := range []string{"load", "parse", "flatten", "first"} {
		m, lo, hi := med(k)
		first[k] = m
		t.Logf("%-8s median %6.1f ms (min %6.1f, max %6.1f) over %d loads", k, m, lo, hi, loads)
	}
	first["drawn"] = firsts[len(firsts)-1]["drawn"]
	res := eval[map[string]float64](b, `(async () => {
		const fs = window.__flamestream;
		const ov = document.querySelector('.fg-canvas');
		const raf = () => new Promise((r) => requestAnimationFrame(() => r()));
		const stats = (a) => {
			if (!a.length) return { mean: 0, median: 0, max: 0, n: 0 };
			const s = a.slice().sort((x, y) => x - y);
			return { mean: a.reduce((x, y) => x + y, 0) / a.length, median: s[s.length >> 1], max: s[s.length - 1], n: a.length };
		};
		window.scrollTo(0, 0);
		await raf();
		const flush = () => document.querySelector('.fg-canvas').getContext('2d').getImageData(0, 0, 1, 1);
		const full = [];
		const fullRaster = [];
		for (let k = 0; k < 20; k++) {
			full.push(fs.renderNow());
			const t0 = performance.now();
			fs.renderNow();
			flush();
			fullRaster.push(performance.now() - t0);
		}
		const hover = [];
		for (let k = 0; k < 300; k++) {
			const r = ov.getBoundingClientRect();
			const x = r.left + ((k * 37) % 997) / 997 * r.width;
			const y = r.top + Math.min(r.height - 2, ((k * 7) % 24) * 18 + 9);
			const before = fs.overlayRenders;
			const t0 = performance.now();
			ov.dispatchEvent(new MouseEvent('mousemove', { clientX: x, clientY: y, bubbles: true }));
			const handler = performance.now() - t0;
			await raf();
			if (fs.overlayRenders > before) hover.push(handler + fs.lastOverlayMs);
		}
		const zoom = [];
		const click = async (x, y) => {
			const before = fs.renders;
			const t0 = performance.now();
			ov.dispatchEvent(new MouseEvent('click', { clientX: x, clientY: y, bubbles: true }));
			const handler = performance.now() - t0;
			await raf();
			if (fs.renders > before) zoom.push(handler + fs.lastRenderMs);
		};
		for (let k = 0; k < 40; k++) {
			let r = ov.getBoundingClientRect();
			await click(r.left + ((k * 53) % 101) / 101 * r.width, r.top + (1 + (k % 4)) * 18 + 9);
			r = ov.getBoundingClientRect();
			await click(r.left + 4, r.top + 9); // the root row: back to the whole tree
		}
		const f = stats(full), fr = stats(fullRaster), ho = stats(hover), zo = stats(zoom);
		return { fullMean: f.mean, fullMedian: f.median, fullMax: f.max, rasterMean: fr.mean, rasterMedian: fr.median,
			hoverMean: ho.mean, hoverMedian: ho.median, hoverMax: ho.max, hoverN: ho.n,
			zoomMean: zo.mean, zoomMedian: zo.median, zoomMax: zo.max, zoomN: zo.n };
	})()`)
	t.Logf("64K nodes (medians): fetch+parse %.1f ms (JSON.parse %.1f ms), flatten %.1f ms, first paint (flatten+render) %.1f ms, %v rects drawn",
		first["load"], first["parse"], first["flatten"], first["first"], first["drawn"])
	busy := false
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		t.Logf("machine load average: %s (%d CPUs)", strings.TrimSpace(string(la)), goruntime.NumCPU())
		if f := strings.Fields(string(la)); len(f) > 0 {
			l1, _ := strconv.ParseFloat(f[0], 64)
			busy = l1 > 1.5*float64(goruntime.NumCPU())
		}
	}
	t.Logf("full redraw at root: mean %.2f ms, median %.2f, max %.2f (20 runs); including rasterization (forced by getImageData): mean %.2f, median %.2f",
		res["fullMean"], res["fullMedian"], res["fullMax"], res["rasterMean"], res["rasterMedian"])
	t.Logf("hover redraw (hit-test + tooltip + outline): mean %.3f ms, median %.3f, max %.2f (%v moves)", res["hoverMean"], res["hoverMedian"], res["hoverMax"], res["hoverN"])
	t.Logf("zoom redraw (click handler + full render): mean %.2f ms, median %.2f, max %.2f (%v zooms)", res["zoomMean"], res["zoomMedian"], res["zoomMax"], res["zoomN"])
	if res["hoverN"] < 50 || res["zoomN"] < 40 {
		t.Errorf("too few measured redraws: %v", res)
	}
	// The goals are 200 ms and 16 ms. Shared machines are noisy, so the
	// medians are checked, a miss is logged, and only a miss by more than 2x
	// on a machine that is not oversubscribed fails the test.
	check := func(what string, got, goal float64) {
		switch {
		case got > 2*goal && !busy:
			t.Errorf("%s %.1f ms is more than twice the %.0f ms goal", what, got, goal)
		case got > goal:
			t.Logf("GOAL MISSED: %s %.1f ms > %.0f ms (machine load can explain it; see the load average)", what, got, goal)
		}
	}
	check("first paint", first["first"], 200)
	check("median hover redraw", res["hoverMedian"], 16)
	check("median zoom redraw", res["zoomMedian"], 16)
}
