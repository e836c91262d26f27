package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/flamestream/flamestream/cmd/flamestream/testenv"
	"github.com/flamestream/flamestream/internal/demo"
	"github.com/flamestream/flamestream/internal/pgdb"
)

const chromium = "/usr/bin/chromium"

// studio is a headless Chromium tab on a real Flamestream stack.
type studio struct {
	t    *testing.T
	ctx  context.Context
	base string
	art  string
}

func newStudio(t *testing.T, base string) *studio {
	t.Helper()
	if _, err := os.Stat(chromium); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("skipping: %s not found (go tool task install)", chromium)
		}
		t.Fatalf("CI is set but Chromium is missing: %v", err)
	}
	art := os.Getenv("FLAMESTREAM_ARTIFACTS")
	if art == "" {
		art = t.TempDir()
	}
	art = filepath.Join(art, "e2e")
	if err := os.MkdirAll(art, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-proxy-server", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1400, 1000))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return &studio{t: t, ctx: ctx, base: base, art: art}
}

func (s *studio) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		s.shot("failure-" + strings.ReplaceAll(what, " ", "-"))
		s.t.Fatalf("%s: %v", what, err)
	}
}

func (s *studio) wait(what, cond string) {
	s.t.Helper()
	s.do("wait for "+what, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingTimeout(25*time.Second))(ctx, t)
		return err
	}))
}

func evalJS[T any](s *studio, expr string) T {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		s.shot("failure-eval")
		s.t.Fatalf("eval %q: %v", expr, err)
	}
	return v
}

func (s *studio) shot(name string) {
	ctx, cancel := context.WithTimeout(s.ctx, 20*time.Second)
	defer cancel()
	img, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		s.t.Logf("screenshot %s: %v", name, err)
		return
	}
	_ = os.WriteFile(filepath.Join(s.art, name+".png"), img, 0o644)
}

type box struct{ X, Y, W, H float64 }

func (s *studio) locate(name string) box {
	s.t.Helper()
	r := evalJS[*box](s, fmt.Sprintf(`(() => { const r = window.__flamestream.locate && window.__flamestream.locate(%q);
		return r ? {X: r.x, Y: r.y, W: r.w, H: r.h} : null; })()`, name))
	if r == nil {
		s.shot("failure-locate")
		s.t.Fatalf("node %q is not drawn", name)
	}
	return *r
}

// TestStudioOnRealStack logs in to a real stack, opens the flame graph of uploaded profiles, searches,
// zooms, opens the diff, and creates a token in the UI that then uploads a profile.
func TestStudioOnRealStack(t *testing.T) {
	st := testenv.Start(t, testenv.Options{})
	if err := st.PG.SetUser(context.Background(), "alice", "wonderland"); err != nil {
		t.Fatal(err)
	}
	agentToken := st.Token(t, pgdb.KindAgent, "shop")
	now := time.Now().UTC().Truncate(time.Minute)
	var total uint64
	for i := 1; i <= 6; i++ {
		text := demo.Restamp("ip-10-0-0-"+strconv.Itoa(i%2+1), float64(i))
		n, _ := expected(t, text)
		total += n
		start := now.Add(-time.Duration(i*5) * time.Minute)
		if code, reply := post(t, st.URL, agentToken, "shop", demo.NewUpload(text, "ip-10-0-0-"+strconv.Itoa(i%2+1), start, "").Gzip()); code != http.StatusOK {
			t.Fatalf("upload: %d %v", code, reply)
		}
	}
	readToken := st.Token(t, pgdb.KindRead, "")
	url := fmt.Sprintf("%s/api/v1/flamegraph?service=shop&from=%d&to=%d", st.URL, now.Add(-time.Hour).Unix(), now.Add(time.Minute).Unix())
	waitFor(t, "indexed", func() bool { var root node; getJSON(t, url, readToken, &root); return root.Value == total })

	s := newStudio(t, st.URL)
	s.do("open", chromedp.Navigate(st.URL+"/"))
	s.wait("login page", `location.pathname === '/login'`)
	s.do("log in",
		chromedp.WaitVisible(chromedp.CSS(`input[name=username]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), "alice"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), "wonderland"),
		chromedp.Click(chromedp.CSS(`form.login button[type=submit]`)))
	s.wait("services", `window.__flamestream.view === 'services' && document.querySelector('tr[data-service=shop]')`)
	s.shot("services")
	s.do("pick shop", chromedp.Click(chromedp.CSS(`tr[data-service=shop] td:nth-child(2)`)))
	s.wait("graph drawn", `window.__flamestream.view === 'profile' && window.__flamestream.ready && window.__flamestream.nodesDrawn > 10`)
	s.shot("profile")
	ink := evalJS[float64](s, `(() => { const c = document.querySelector('.fg-canvas'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
		const bg = [d[d.length-4], d[d.length-3], d[d.length-2]]; let n = 0;
		for (let i = 0; i < d.length; i += 4) if (d[i] !== bg[0] || d[i+1] !== bg[1] || d[i+2] !== bg[2]) n++; return n / (d.length / 4); })()`)
	if ink < 0.02 {
		t.Errorf("canvas is %.1f%% ink: the graph is not drawn", ink*100)
	}

	// Search highlights part of the graph.
	s.do("search", chromedp.SendKeys(chromedp.CSS(`input.search`), "_[k]"))
	s.wait("matched", `window.__flamestream.searchMatched > 0 && window.__flamestream.searchMatched < 1`)
	s.shot("search")
	s.do("clear search", chromedp.Click(chromedp.CSS(`input.search`)), chromedp.KeyEvent(kb.Escape))
	s.wait("search cleared", `window.__flamestream.searchMatched === 0`)

	// Clicking a process zooms into it.
	r := s.locate("perf")
	s.do("click perf", chromedp.MouseClickXY(r.X+r.W/2, r.Y+r.H/2))
	s.wait("zoomed", `JSON.stringify(window.__flamestream.zoomPath) === '["perf"]'`)
	s.shot("zoomed")

	// The diff view renders against the previous half hour.
	s.do("diff", chromedp.Navigate(fmt.Sprintf("%s/diff?service=shop&from=%d&to=%d&base_from=%d&base_to=%d", st.URL,
		now.Add(-15*time.Minute).Unix(), now.Add(time.Minute).Unix(), now.Add(-time.Hour).Unix(), now.Add(-15*time.Minute).Unix())))
	s.wait("diff drawn", `window.__flamestream.view === 'diff' && window.__flamestream.ready && window.__flamestream.nodesDrawn > 10`)
	s.shot("diff")

	// A token created in the UI uploads a profile.
	s.do("tokens", chromedp.Navigate(st.URL+"/admin/tokens"))
	s.wait("tokens page", `window.__flamestream.view === 'tokens' && window.__flamestream.ready`)
	s.do("create token", chromedp.SendKeys(chromedp.CSS(`input[name=name]`), "from the ui"), chromedp.Click(chromedp.CSS(`form.form-row button[type=submit]`)))
	s.wait("token shown", `document.querySelector('code.secret') && document.querySelector('code.secret').textContent.startsWith('fs_')`)
	s.shot("token-created")
	secret := evalJS[string](s, `document.querySelector('code.secret').textContent`)
	text := demo.Restamp("ip-10-9-9-9", 1)
	if code, reply := post(t, st.URL, secret, "shop", demo.NewUpload(text, "ip-10-9-9-9", now.Add(-time.Minute), "").Gzip()); code != http.StatusOK {
		t.Fatalf("upload with the UI's token: %d %v", code, reply)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
