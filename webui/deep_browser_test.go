package webui

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/flamestream/flamestream/internal/flame"
)

// deepFrames is the depth of the deep service's one deep stack (below its process name).
const deepFrames = 100_000

// deepFrame is the name of the deep stack's k-th frame (1-based), unique so a test can find one.
func deepFrame(k int) string { return fmt.Sprintf("walk_%06d_[p]", k) }

// deepService serves the "deep" service's flame graph through the query API's own tree code
// (flame.Builder, Tree with the request's maxNodes, WriteJSON), so the page gets what the real API
// sends, truncation by the node budget included.
type deepService struct {
	once  sync.Once
	b     *flame.Builder
	mu    sync.Mutex
	trees map[int][]byte // JSON by maxNodes
}

func (f *fixtureAPI) deepGraph(w http.ResponseWriter, q url.Values) {
	d := &f.deep
	d.once.Do(func() {
		d.b = &flame.Builder{}
		var walk func(n *fnode, path string)
		walk = func(n *fnode, path string) {
			if n.Self > 0 && path != "" {
				d.b.Add(path, uint64(n.Self))
			}
			for _, c := range n.Children {
				p := c.Name
				if path != "" {
					p = path + ";" + c.Name
				}
				walk(c, p)
			}
		}
		walk(f.demo, "")
		var sb strings.Builder
		sb.WriteString("deep-worker")
		for k := 1; k <= deepFrames; k++ {
			sb.WriteString(";" + deepFrame(k))
		}
		d.b.Add(sb.String(), uint64(f.demo.Value/2))
		d.trees = map[int][]byte{}
	})
	maxNodes, err := strconv.Atoi(q.Get("maxNodes"))
	if err != nil || maxNodes < 0 || maxNodes > 1<<20 {
		apiError(w, 400, "maxNodes must be an integer from 0 to 1048576")
		return
	}
	d.mu.Lock()
	body, ok := d.trees[maxNodes]
	if !ok {
		var buf bytes.Buffer
		if err := d.b.Tree(maxNodes).WriteJSON(&buf, false); err != nil {
			d.mu.Unlock()
			apiError(w, 500, err.Error())
			return
		}
		body = buf.Bytes()
		d.trees[maxNodes] = body
	}
	d.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// graphState is what the deep-stack test reads of the graph after each step.
type graphState struct {
	CanvasW, CanvasH   float64 // backing store, device pixels
	CSSW, CSSH         float64 // canvas size on the page, CSS pixels
	DPR                float64
	Deep               bool
	ScrollTop, ScrollH float64 // the graph element's scroll offset and range
	ViewH              float64
	PageH              float64 // the document's height
	Nodes              float64
	ZoomDepth          float64
	URL                string
}

const readGraphState = `(() => {
	const c = document.querySelector('.fg-canvas'), el = document.querySelector('.fg'), f = window.__flamestream;
	return {CanvasW: c.width, CanvasH: c.height, CSSW: c.clientWidth, CSSH: c.clientHeight, DPR: devicePixelRatio,
		Deep: el.classList.contains('deep'), ScrollTop: el.scrollTop, ScrollH: el.scrollHeight, ViewH: el.clientHeight,
		PageH: document.documentElement.scrollHeight, Nodes: f.nodes, ZoomDepth: f.zoomPath.length, URL: location.href};
})()`

// TestBrowserDeepStack opens a service holding one 100,000-frame-deep stack next to ordinary ones, served by
// the query API's tree code, at a device pixel ratio of 2. The canvas stays within the browser's limits and
// at full resolution (no blur), the page stays a normal height (a full-page screenshot works), the node
// budget's "other" marker at the end of the truncated stack expands it, and a frame 99,990 deep is reached
// by scrolling inside the graph, hovered, clicked (zoom, kept across a reload through a short URL) and found
// by search.
func TestBrowserDeepStack(t *testing.T) {
	b := newBrowser(t)
	f := b.api
	b.do("device pixel ratio 2", chromedp.EmulateViewport(1400, 1000, chromedp.EmulateScale(2)))
	start := time.Now()
	b.do("open deep", chromedp.Navigate(b.base+"/login?next="+url.QueryEscape("/profile?service=deep")))
	b.login()
	b.wait("deep drawn", `window.__flamestream.view === 'profile' && window.__flamestream.ready && window.__flamestream.nodes > 0`)
	t.Logf("default budget: %v nodes, first paint %.0f ms (flatten %.0f ms, parse %.0f ms), page ready %v after navigation",
		eval[float64](b, `__flamestream.nodes`), eval[float64](b, `__flamestream.firstPaintMs`), eval[float64](b, `__flamestream.flattenMs`),
		eval[float64](b, `__flamestream.parseMs`), time.Since(start).Round(time.Millisecond))

	check := func(step string) graphState {
		t.Helper()
		g := eval[graphState](b, readGraphState)
		switch {
		case g.CanvasH > 16384 || g.CanvasW > 16384 || g.CanvasW*g.CanvasH > 1<<25:
			t.Errorf("%s: canvas %vx%v device px is past the limits (16384 a side, 2^25 in all)", step, g.CanvasW, g.CanvasH)
		case g.CanvasH < g.CSSH*g.DPR-1 || g.CanvasW < g.CSSW*g.DPR-1:
			t.Errorf("%s: canvas %vx%v device px for %vx%v CSS px at ratio %v: scaled down, so blurred", step, g.CanvasW, g.CanvasH, g.CSSW, g.CSSH, g.DPR)
		case !g.Deep || g.ViewH > 4096 || g.ScrollH < 10*g.ViewH:
			t.Errorf("%s: graph not a scrolling viewport: %+v", step, g)
		case g.PageH > 8000:
			t.Errorf("%s: page %v px high: the graph does not scroll inside itself", step, g.PageH)
		}
		if ink := eval[float64](b, canvasInk); ink < 0.05 {
			t.Errorf("%s: only %.1f%% of the canvas is drawn", step, ink*100)
		}
		return g
	}
	// A full-page screenshot must work (it failed with "Page is too large" when the canvas was the tree's height).
	shot := func(name string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
		defer cancel()
		img, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("full-page screenshot %s: %v", name, err)
		}
		p := filepath.Join(b.art, name+".png")
		if err := os.WriteFile(p, img, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// 1. The default budget (20,000 nodes) cuts the deep stack; its end is an "other" marker.
	g := check("default budget")
	b.scrollGraph("bottom", `el.scrollHeight`)
	r := b.locate("other")
	b.do("hover the marker", chromedp.MouseEvent("mouseMoved", r.X+r.W/2, r.Y+r.H/2))
	b.wait("marker hovered", `window.__flamestream.hovered && window.__flamestream.hovered.name === 'other'`)
	markerDepth := eval[float64](b, `__flamestream.hovered.depth`)
	t.Logf("default budget: graph viewport %v px of %v px, canvas %vx%v device px; the stack is cut at depth %v", g.ViewH, g.ScrollH, g.CanvasW, g.CanvasH, markerDepth)
	if markerDepth < 1000 || markerDepth > 20000 {
		t.Errorf("the budget's marker is at depth %v", markerDepth)
	}
	b.do("click the marker", chromedp.MouseClickXY(r.X+r.W/2, r.Y+r.H/2))
	b.wait("bigger budget", `window.__flamestream.ready && new URLSearchParams(location.search).get('maxNodes') === '80000'`)
	b.wait("still at the marker's parent", fmt.Sprintf(`window.__flamestream.zoomPath.length === %v`, markerDepth-1))
	if z := eval[string](b, `new URLSearchParams(location.search).get('zoom')`); !strings.HasPrefix(z, "~") || len(z) > 40 {
		t.Errorf("zoom URL value %q: want a short path key", z)
	}
	// Its marker is at the end of the longer stack: one more click loads the whole stack.
	b.scrollGraph("bottom again", `el.scrollHeight`)
	r = b.locate("other")
	b.do("click the next marker", chromedp.MouseClickXY(r.X+r.W/2, r.Y+r.H/2))
	b.wait("whole stack", `window.__flamestream.ready && new URLSearchParams(location.search).get('maxNodes') === '320000' && window.__flamestream.nodes > 100000`)
	b.wait("zoom kept across trees", fmt.Sprintf(`window.__flamestream.zoomPath.length > %v`, markerDepth))
	check("whole stack, zoomed")
	t.Logf("whole stack: %v nodes, JSON.parse %.0f ms, flatten %.0f ms, first paint (flatten + render) %.0f ms",
		eval[float64](b, `__flamestream.nodes`), eval[float64](b, `__flamestream.parseMs`), eval[float64](b, `__flamestream.flattenMs`), eval[float64](b, `__flamestream.firstPaintMs`))
	f.deep.mu.Lock()
	for _, n := range []int{20000, 80000, 320000} {
		t.Logf("flame-graph JSON with maxNodes=%d: %d bytes", n, len(f.deep.trees[n]))
	}
	if n := len(f.deep.trees[20000]); n > 2<<20 {
		t.Errorf("the default budget's JSON is %d bytes", n)
	}
	f.deep.mu.Unlock()

	// 2. The whole tree: scroll inside the graph to a frame 99,990 deep.
	b.do("reset zoom", chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur()`), chromedp.KeyEvent(kb.Escape))
	b.wait("zoom reset", `window.__flamestream.zoomPath.length === 0 && !location.search.includes('zoom=')`)
	g = check("whole stack")
	if want := float64(deepFrames+2) * 18; g.ScrollH < want {
		t.Errorf("scroll range %v px, want the whole depth (%v px)", g.ScrollH, want)
	}
	target := deepFrame(99_990)
	// Scroll by hand to about the right place (the last rows, as far as the range goes), then up by the
	// wheel, as a user would.
	b.scrollGraph("near the target", fmt.Sprintf(`%d * 18 - 10`, 99_990+1))
	box := eval[rect](b, `(() => { const r = document.querySelector('.fg').getBoundingClientRect(); return {X: r.left, Y: r.top, W: r.width, H: r.height}; })()`)
	before := eval[float64](b, `document.querySelector('.fg').scrollTop`)
	renders := eval[float64](b, `__flamestream.renders`)
	b.do("wheel", chromedp.MouseEvent("mouseWheel", box.X+box.W/2, box.Y+box.H/2, func(p *input.DispatchMouseEventParams) {
		// CDP wants both deltas, and cdproto omits a zero: a hundredth of a pixel sideways (overflow-x is hidden).
		p.DeltaX, p.DeltaY = 0.01, -90
	}))
	b.wait("scrolled by the wheel", fmt.Sprintf(`document.querySelector('.fg').scrollTop < %v && __flamestream.renders > %v`, before, renders))
	t.Logf("a render after scrolling %.1f ms (%v rectangles drawn)", eval[float64](b, `__flamestream.lastRenderMs`), eval[float64](b, `__flamestream.nodesDrawn`))
	r = b.locate(target)
	b.do("hover the deep frame", chromedp.MouseEvent("mouseMoved", r.X+r.W/2, r.Y+r.H/2))
	b.wait("deep frame hovered", fmt.Sprintf(`window.__flamestream.hovered && window.__flamestream.hovered.name === %q`, target))
	if dep := eval[float64](b, `__flamestream.hovered.depth`); dep != 99_991 {
		t.Errorf("hovered depth %v, want 99991", dep)
	}
	// The hover outline sits on the hovered row, scroll offset included.
	b.wait("outline drawn", `!document.querySelector('.fg-hl').hidden`)
	if hl := eval[rect](b, `(() => { const r = document.querySelector('.fg-hl').getBoundingClientRect(); return {X: r.left, Y: r.top, W: r.width, H: r.height}; })()`); hl.Y < r.Y-2 || hl.Y > r.Y+2 {
		t.Errorf("hover outline at y=%v, the hovered row at y=%v", hl.Y, r.Y)
	}
	p := shot("deep-stack-scrolled")
	check("scrolled")
	b.do("click the deep frame", chromedp.MouseClickXY(r.X+r.W/2, r.Y+r.H/2))
	b.wait("zoomed deep", fmt.Sprintf(`window.__flamestream.zoomPath.length === 99991 && window.__flamestream.zoomPath[99990] === %q`, target))
	zoomURL := eval[string](b, `location.href`)
	if len(zoomURL) > 400 {
		t.Errorf("the zoomed URL is %d bytes", len(zoomURL))
	}
	if n := eval[float64](b, `document.querySelectorAll('nav.crumbs .crumb').length`); n > 12 {
		t.Errorf("%v zoom crumbs: a long path must be shortened", n)
	}
	check("zoomed deep")
	// The zoomed node is in view after the zoom, and after a reload of its URL.
	if r := eval[*rect](b, fmt.Sprintf(`(() => { const r = __flamestream.locate(%q); return r && {X: r.x, Y: r.y, W: r.w, H: r.h}; })()`, target)); r == nil {
		t.Errorf("the zoomed frame is not in view")
	}
	b.do("reload zoomed", chromedp.Navigate(zoomURL))
	b.wait("zoom restored", fmt.Sprintf(`window.__flamestream.ready && window.__flamestream.zoomPath.length === 99991 && window.__flamestream.zoomPath[99990] === %q`, target))
	r = b.locate(target)
	pz := shot("deep-stack-zoomed")
	// The SVG export is the graph as shown: the rows in view, not a document 1.8 million pixels high.
	b.do("capture downloads", chromedp.Evaluate[chromedp.Void](`window.__blobs = [];
		const orig = URL.createObjectURL.bind(URL);
		URL.createObjectURL = (blob) => { window.__blobs.push(blob); return orig(blob); };`))
	b.do("export svg", chromedp.Evaluate[chromedp.Void](`document.querySelector('[data-export=svg]').click()`))
	b.wait("svg blob", `window.__blobs.length === 1`)
	svg := eval[map[string]any](b, fmt.Sprintf(`window.__blobs[0].text().then((t) => ({height: +/height="([\d.]+)"/.exec(t)[1], rects: (t.match(/<rect /g) || []).length, target: t.includes(%q)}))`, target))
	if svg["height"].(float64) > 4096+24 || svg["rects"].(float64) < 20 || svg["target"] != true {
		t.Errorf("svg export of the deep view: %v", svg)
	}

	// 3. Search finds a deep frame; flame orientation starts at the root (the bottom).
	b.do("search", chromedp.SendKeys(chromedp.CSS(`input.search`), "walk_09999"))
	b.wait("search matched", `window.__flamestream.searchMatched > 0`)
	b.do("blur search", chromedp.Evaluate[chromedp.Void](`document.activeElement.blur()`), chromedp.KeyEvent(kb.Escape), chromedp.KeyEvent("f"))
	b.wait("flame orientation", `window.__flamestream.orientation === 'flame' && window.__flamestream.zoomPath.length === 0`)
	g = check("flame orientation")
	if g.ScrollTop < g.ScrollH-g.ViewH-2 {
		t.Errorf("flame orientation opened at scroll %v of %v: the root row is at the bottom", g.ScrollTop, g.ScrollH-g.ViewH)
	}
	if r := eval[*rect](b, `(() => { const r = __flamestream.locate('deep-worker'); return r && {X: r.x, Y: r.y, W: r.w, H: r.h}; })()`); r == nil {
		t.Errorf("the process row is not in view in flame orientation")
	}
	pf := shot("deep-stack-flame")
	t.Logf("screenshots: %s, %s, %s", p, pz, pf)
	if errs := b.pageErrors(); len(errs) > 0 {
		t.Errorf("page errors: %v", errs)
	}
}

// scrollGraph sets the graph element's scroll offset (a JavaScript expression over el) and waits for the
// render of the rows that came into view.
func (b *browser) scrollGraph(what, expr string) {
	b.t.Helper()
	renders := eval[float64](b, `__flamestream.renders`)
	b.do("scroll graph to "+what, chromedp.Evaluate[chromedp.Void](`(() => { const el = document.querySelector('.fg'); el.scrollTop = `+expr+`; })()`))
	b.wait("render after scroll to "+what, fmt.Sprintf(`__flamestream.renders > %v`, renders))
}
