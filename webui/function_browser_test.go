package webui_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
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

// This test drives the functions table and the function history in headless Chromium against a whole
// Flamestream (ingest, indexer, query API and the embedded UI) with real ClickHouse and PostgreSQL: the
// profiles go in through ingest, and every number the page shows is checked against the uploaded text.

const chromium = "/usr/bin/chromium"

// page is one headless Chromium tab on a real stack.
type page struct {
	t   *testing.T
	ctx context.Context
	art string
}

func newPage(t *testing.T) *page {
	t.Helper()
	if _, err := os.Stat(chromium); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("skipping browser test: %s not found (apt-get install chromium); with CI set this test fails instead", chromium)
		}
		t.Fatalf("CI is set but Chromium is missing at %s: %v", chromium, err)
	}
	art := os.Getenv("FLAMESTREAM_ARTIFACTS")
	if art == "" {
		art = t.TempDir()
	}
	if err := os.MkdirAll(art, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-proxy-server", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1400, 1000))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	t.Logf("screenshots in %s", art)
	return &page{t: t, ctx: ctx, art: art}
}

func (p *page) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.shot("function-failure-" + strings.ReplaceAll(what, " ", "-"))
		p.t.Fatalf("%s: %v", what, err)
	}
}

func (p *page) wait(what, cond string) {
	p.t.Helper()
	p.do("wait for "+what, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingTimeout(20*time.Second))(ctx, t)
		return err
	}))
}

func evalJS[T any](p *page, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.shot("function-failure-eval")
		p.t.Fatalf("eval %q: %v", expr, err)
	}
	return v
}

func (p *page) shot(name string) string {
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	img, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	path := filepath.Join(p.art, name+".png")
	if err := os.WriteFile(path, img, 0o644); err != nil {
		p.t.Logf("save screenshot: %v", err)
	}
	return path
}

// fnCounts are a function's numbers computed from stack texts.
type fnCounts struct{ self, total, occurrences uint64 }

// stacksOf reads profile texts the way the ingest contract documents (prefix fields by the header, frames
// trimmed, swapper stacks and zero counts left out) into counts per stack.
func stacksOf(t *testing.T, texts ...[]byte) map[string]uint64 {
	out := map[string]uint64{}
	for _, text := range texts {
		lines := strings.Split(string(text), "\n")
		var hdr struct {
			AppMetadata bool `json:"application_metadata_enabled"`
		}
		if err := json.Unmarshal([]byte(strings.TrimPrefix(lines[0], "#")), &hdr); err != nil {
			t.Fatal(err)
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
				t.Fatal(err)
			}
			var frames []string
			for _, f := range strings.Split(l[:sp], ";")[prefix:] {
				if f = strings.TrimSpace(f); f != "" {
					frames = append(frames, f)
				}
			}
			if n > 0 && len(frames) > 0 && !strings.HasPrefix(frames[0], "swapper") {
				out[strings.Join(frames, ";")] += n
			}
		}
	}
	return out
}

func countsOf(stacks map[string]uint64) (map[string]fnCounts, uint64) {
	out := map[string]fnCounts{}
	var all uint64
	for s, c := range stacks {
		all += c
		frames := strings.Split(s, ";")
		seen := map[string]bool{}
		for i, f := range frames {
			x := out[f]
			if i == len(frames)-1 {
				x.self += c
			}
			if !seen[f] {
				seen[f] = true
				x.total += c
				x.occurrences++
			}
			out[f] = x
		}
	}
	return out, all
}

// TestBrowserFunctionsTableAndHistory: the Table view lists every function of the uploaded profiles with
// the self, total and occurrences computed from the text; sorting by occurrences and filtering by name go
// to the URL and reorder and narrow the rows; a row opens the function's history, whose numbers match the
// text; Both shows graph and table, and a click on a frame of the graph opens that frame's history.
func TestBrowserFunctionsTableAndHistory(t *testing.T) {
	p := newPage(t)
	st := testenv.Start(t, testenv.Options{})
	if err := st.PG.SetUser(context.Background(), "alice", "correct horse"); err != nil {
		t.Fatal(err)
	}
	agent, read := st.Token(t, pgdb.KindAgent, "shop"), st.Token(t, pgdb.KindRead, "")
	start := time.Now().UTC().Truncate(time.Minute).Add(-30 * time.Minute)
	recursive := append(demo.NewFleet(1, "shop", demo.Shape{Stacks: 10, Lines: 1, MinDepth: 2, MaxDepth: 3}).HeaderLine("web-2", "m5.large"),
		";python3;main_[p];rec_[p];rec_[p];rec_[p];leaf_[k] 400\n"+
			";python3;main_[p];rec_[p];leaf_[k] 90\n"+
			";python3;main_[p];rec_[p] 40\n"+
			";java;main_[j];rec_[p];rec_[p] 20\n"...)
	texts := [][]byte{demo.Restamp("web-1", 1), recursive, demo.Restamp("web-2", 1)}
	for i, text := range texts {
		host := []string{"web-1", "web-2", "web-2"}[i]
		req, _ := http.NewRequest(http.MethodPost, st.URL+"/api/v2/profiles",
			bytes.NewReader(demo.NewUpload(text, host, start.Add(time.Duration(5+7*i)*time.Minute), "").Gzip()))
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
			t.Fatalf("upload %d: %d %s", i, resp.StatusCode, b)
		}
	}
	want, all := countsOf(stacksOf(t, texts...))
	rng := fmt.Sprintf("service=shop&from=%d&to=%d", start.Unix(), start.Add(time.Hour).Unix())
	deadline := time.Now().Add(90 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, st.URL+"/api/v1/functions?limit=1&"+rng, nil)
		req.Header.Set("Authorization", "Bearer "+read)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var tb struct{ Total uint64 }
		_ = json.NewDecoder(resp.Body).Decode(&tb)
		resp.Body.Close()
		if tb.Total == all {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("uploads not indexed within 90 s: %d of %d samples", tb.Total, all)
		}
		time.Sleep(300 * time.Millisecond)
	}

	p.do("open table view", chromedp.Navigate(st.URL+"/profile?view=table&"+rng))
	p.wait("login form", `location.pathname === '/login'`)
	p.do("log in",
		chromedp.WaitVisible(chromedp.CSS(`input[name=username]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), "alice"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), "correct horse"),
		chromedp.Click(chromedp.CSS(`form.login button[type=submit]`)))
	p.wait("table rows", `location.pathname === '/profile' && document.querySelectorAll('.fn-table tbody tr[data-name]').length > 0`)
	if graphShown := evalJS[bool](p, `!document.querySelector('.split').hidden || document.querySelector('.graph-tools input.search').offsetParent !== null || document.querySelector('.crumbs').offsetParent !== null`); graphShown {
		t.Error("view=table shows the flame graph or its tools")
	}
	type row struct {
		Name                     string
		Self, Total, Occurrences string
		Spark                    bool
	}
	rows := func() []row {
		return evalJS[[]row](p, `[...document.querySelectorAll('.fn-table tbody tr[data-name]')].map(tr => ({
			Name: tr.dataset.name,
			Self: tr.querySelector('[data-col=self] .muted').textContent,
			Total: tr.querySelector('[data-col=total] .muted').textContent,
			Occurrences: tr.querySelector('[data-col=occurrences]').textContent,
			Spark: !!tr.querySelector('svg.spark polyline')}))`)
	}
	n := func(v uint64) string { return strconv.FormatUint(v, 10) }
	intText := func(s string) string { return strings.ReplaceAll(s, ",", "") }
	check := func(what string, got []row, order []string) {
		t.Helper()
		if len(got) != len(order) {
			t.Fatalf("%s: %d rows, want %d", what, len(got), len(order))
		}
		for i, r := range got {
			w := want[order[i]]
			if r.Name != order[i] || intText(r.Self) != n(w.self) || intText(r.Total) != n(w.total) || intText(r.Occurrences) != n(w.occurrences) || !r.Spark {
				t.Errorf("%s row %d: %+v, want %s self %d total %d occurrences %d with a sparkline", what, i, r, order[i], w.self, w.total, w.occurrences)
			}
		}
	}
	names := make([]string, 0, len(want))
	for name := range want {
		names = append(names, name)
	}
	order := func(key func(fnCounts) uint64) []string {
		o := append([]string(nil), names...)
		sort.Slice(o, func(i, j int) bool {
			a, b := key(want[o[i]]), key(want[o[j]])
			if a != b {
				return a > b
			}
			return o[i] < o[j]
		})
		return o
	}
	check("by total", rows(), order(func(c fnCounts) uint64 { return c.total }))
	t.Logf("table: %d functions, %d samples; screenshot %s", len(want), all, p.shot("function-table"))

	p.do("sort by occurrences", chromedp.Click(chromedp.CSS(`.fn-table th[data-sort=occurrences]`)))
	p.wait("sorted by occurrences", `new URLSearchParams(location.search).get('tsort') === 'occurrences' && document.querySelector('.fn-table th.sorted')?.dataset.sort === 'occurrences'`)
	p.wait("rows reordered", fmt.Sprintf(`document.querySelector('.fn-table tbody tr[data-name]')?.dataset.name === %q`, order(func(c fnCounts) uint64 { return c.occurrences })[0]))
	check("by occurrences", rows(), order(func(c fnCounts) uint64 { return c.occurrences }))

	p.do("filter by name", chromedp.SendKeys(chromedp.CSS(`input.ft-filter`), "REC_"))
	p.wait("filtered", `new URLSearchParams(location.search).get('tfilter') === 'REC_' && document.querySelectorAll('.fn-table tbody tr[data-name]').length === 1`)
	check("filtered", rows(), []string{"rec_[p]"})

	p.do("open history", chromedp.Click(chromedp.CSS(`.fn-table tbody tr[data-name="rec_[p]"]`)))
	p.wait("history", `new URLSearchParams(location.search).get('hist') === 'rec_[p]' && document.querySelector('.fn-history').dataset.ready === 'true'`)
	type hist struct {
		Total, Self, Occurrences, Samples string
		Points                            int
		Ink                               bool
	}
	history := func() hist {
		return evalJS[hist](p, `(() => { const s = k => document.querySelector('.fn-history [data-stat='+k+'] .fh-value').textContent;
			return {Total: s('total'), Self: s('self'), Occurrences: s('occurrences'), Samples: s('samples'),
				Points: document.querySelectorAll('.fn-history .fh-slot').length,
				Ink: document.querySelector('.fn-history .fh-total').getAttribute('points').split(' ').some(p => +p.split(',')[1] < 150)}; })()`)
	}
	checkHistory := func(name string) {
		t.Helper()
		h, w := history(), want[name]
		if intText(h.Total) != n(w.total)+" samples" || intText(h.Self) != n(w.self)+" samples" || intText(h.Occurrences) != n(w.occurrences)+" stacks" ||
			intText(h.Samples) != n(all) || h.Points != 60 || !h.Ink {
			t.Errorf("history of %s: %+v, want total %d self %d occurrences %d of %d samples in 60 minute buckets, with a line off the floor", name, h, w.total, w.self, w.occurrences, all)
		}
	}
	checkHistory("rec_[p]")
	t.Logf("history screenshot %s", p.shot("function-history-from-table"))

	// Both: the graph is back above the table; a click on a frame opens its history.
	p.do("clear filter", chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur()`))
	p.do("both view", chromedp.Click(chromedp.CSS(`.view-switch [data-view=both]`)))
	p.wait("graph and table", `new URLSearchParams(location.search).get('view') === 'both' && !document.querySelector('.split').hidden && !document.querySelector('.fn-table-panel').hidden && window.__flamestream.ready && document.querySelector('.graph-tools input.search').offsetParent !== null`)
	r := evalJS[map[string]float64](p, `(() => { let r = __flamestream.locate('main_[p]'); if (r && (r.y < 0 || r.y + r.h > innerHeight)) { scrollBy(0, r.y - innerHeight / 3); r = __flamestream.locate('main_[p]'); } return r; })()`)
	if r == nil {
		t.Fatal("main_[p] is not drawn")
	}
	p.do("click main_[p]", chromedp.MouseClickXY(r["x"]+r["w"]/2, r["y"]+r["h"]/2))
	p.wait("frame history", `new URLSearchParams(location.search).get('hist') === 'main_[p]' && document.querySelector('.fn-history').dataset.ready === 'true'`)
	checkHistory("main_[p]")
	t.Logf("both-view screenshot %s", p.shot("function-history-from-graph"))

	p.do("close history", chromedp.Click(chromedp.CSS(`.fn-history .fh-close`)))
	p.wait("history closed", `!new URLSearchParams(location.search).get('hist') && document.querySelector('.fn-history').hidden`)
	p.do("graph view", chromedp.Click(chromedp.CSS(`.view-switch [data-view=graph]`)))
	p.wait("graph only", `!new URLSearchParams(location.search).get('view') && document.querySelector('.fn-table-panel').hidden && !document.querySelector('.split').hidden`)
}
