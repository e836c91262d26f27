package webui

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// fixtureMetrics answers GET /api/v1/metrics with a fixed shape over the requested range: one bucket a
// minute with the CPU and memory statistics derived from the bucket's index, and a summary and trend the
// browser test reads back from the panel.
func (f *fixtureAPI) metrics(w http.ResponseWriter, r *http.Request) {
	from, err1 := time.Parse(time.RFC3339, r.URL.Query().Get("from"))
	to, err2 := time.Parse(time.RFC3339, r.URL.Query().Get("to"))
	if err1 != nil || err2 != nil {
		// The UI sends unix seconds.
		var a, b int64
		_, e1 := fmt.Sscan(r.URL.Query().Get("from"), &a)
		_, e2 := fmt.Sscan(r.URL.Query().Get("to"), &b)
		if e1 != nil || e2 != nil {
			apiError(w, http.StatusBadRequest, "bad from or to")
			return
		}
		from, to = time.Unix(a, 0).UTC(), time.Unix(b, 0).UTC()
	}
	step := int64(60)
	if to.Sub(from) > 5*time.Hour {
		step = 300
	}
	stats := func(avg float64) map[string]float64 {
		return map[string]float64{"avg": avg, "p50": avg - 1, "p90": avg + 10, "p99": avg + 15, "max": avg + 20}
	}
	var series []map[string]any
	for t := from.Unix() / step * step; t < to.Unix(); t += step {
		i := len(series)
		series = append(series, map[string]any{"t": t, "profiles": 2, "hosts": 2,
			"cpu": stats(20 + float64(i%40)), "mem": stats(50 + float64(i%7))})
	}
	trend := map[string]any{"from": from.Add(-7 * 24 * time.Hour), "to": to.Add(-7 * 24 * time.Hour),
		"previous": map[string]any{"profiles": 10, "hosts": 2, "cores": 8, "cpu": stats(34.75), "mem": stats(53.5)},
		"cpu":      2.5, "mem": -1.0}
	if r.URL.Query().Get("container") != "" {
		// As the server answers a container filter whose week-earlier range is past the raw retention.
		trend = map[string]any{"from": from.Add(-7 * 24 * time.Hour), "to": to.Add(-7 * 24 * time.Hour),
			"previous": map[string]any{"profiles": 0}, "cpu": nil, "mem": nil, "unavailable": "filters apply within the raw retention only"}
	}
	// As the server does: the runtime and process view cannot apply to host metrics, and the reply says so.
	var ignored []string
	for _, p := range []string{"runtimes_off", "process", "process_not"} {
		if strings.Join(r.URL.Query()[p], "") != "" {
			ignored = append(ignored, p)
		}
	}
	writeJSON(w, 200, map[string]any{"from": from.Format(time.RFC3339), "to": to.Format(time.RFC3339), "step": step,
		"ignored": ignored, "series": series,
		"summary": map[string]any{"profiles": 2 * len(series), "hosts": 2, "cores": 8, "cpu": stats(37.25), "mem": stats(52.5),
			"percentiles_from": from.Format(time.RFC3339)},
		"trend": trend,
	})
}

// TestBrowserHostMetricsPanel opens a filtered profile and checks the host metrics panel above the flame
// graph: the request carries the page's service, range and filters; the summary shows the reply's numbers
// and trend; each chart has one point per bucket for the average; the diff view hides it.
func TestBrowserHostMetricsPanel(t *testing.T) {
	b := newBrowser(t)
	b.do("open profile", chromedp.Navigate(b.base+"/profile?service=demo&range=1h&host=ip-10-0-0-1"))
	b.login()
	b.wait("profile drawn", `window.__flamestream.view === 'profile' && window.__flamestream.ready`)
	b.wait("metrics panel", `document.querySelector('.host-metrics')?.dataset.state === 'ready'`)
	req := b.waitRequest("/api/v1/metrics", "service=demo", "host=ip-10-0-0-1", "from=", "to=")
	b.shot("host-metrics")

	got := eval[map[string]any](b, `(() => {
		const p = document.querySelector('.host-metrics');
		const txt = (s) => p.querySelector(s)?.textContent || '';
		const graph = document.querySelector('.fg-canvas').getBoundingClientRect();
		return {
			hosts: txt('.hm-hosts'), cores: txt('.hm-cores'),
			cpu: txt('.hm-sum[data-metric=cpu]'), mem: txt('.hm-sum[data-metric=mem]'),
			cpuN: +p.querySelector('.hm-fig[data-metric=cpu] .hm-avg-line').dataset.n,
			memN: +p.querySelector('.hm-fig[data-metric=mem] .hm-avg-line').dataset.n,
			p90N: +p.querySelector('.hm-fig[data-metric=cpu] .hm-p90').dataset.n,
			above: p.getBoundingClientRect().bottom <= graph.top,
			visible: p.getBoundingClientRect().height > 100,
		};
	})()`)
	// The fixture answers one bucket a minute over the hour the page asked for.
	var from, to int64
	for _, kv := range strings.Split(req[strings.IndexByte(req, '?')+1:], "&") {
		if v, ok := strings.CutPrefix(kv, "from="); ok {
			fmt.Sscan(v, &from)
		}
		if v, ok := strings.CutPrefix(kv, "to="); ok {
			fmt.Sscan(v, &to)
		}
	}
	buckets := 0
	for t := from / 60 * 60; t < to; t += 60 {
		buckets++
	}
	if buckets < 60 || got["cpuN"].(float64) != float64(buckets) || got["memN"].(float64) != float64(buckets) || got["p90N"].(float64) != float64(buckets) {
		t.Errorf("chart points cpu %v mem %v p90 %v, want %d (request %s)", got["cpuN"], got["memN"], got["p90N"], buckets, req)
	}
	for k, want := range map[string]string{
		"hosts": "2 hosts", "cores": "8 cores",
		"cpu": "CPU avg 37.3% · p50 36.3% · p90 47.3% · p99 52.3% · max 57.3% · +2.5 pts vs a week earlier",
		"mem": "Memory avg 52.5% · p50 51.5% · p90 62.5% · p99 67.5% · max 72.5% · −1.0 pts vs a week earlier",
	} {
		if got[k] != want {
			t.Errorf("%s: %q, want %q", k, got[k], want)
		}
	}
	if got["above"] != true || got["visible"] != true {
		t.Errorf("panel above the flame graph %v, visible %v", got["above"], got["visible"])
	}

	// Changing a filter reloads the panel with it.
	b.do("exclude a host", chromedp.Navigate(b.base+"/profile?service=demo&range=1h&host_not=ip-10-0-0-2"))
	b.waitRequest("/api/v1/metrics", "service=demo", "host_not=ip-10-0-0-2")
	b.wait("metrics panel again", `document.querySelector('.host-metrics')?.dataset.state === 'ready'`)

	// No trend: the panel says why.
	b.do("filter a container", chromedp.Navigate(b.base+"/profile?service=demo&range=1h&container=webapp"))
	b.waitRequest("/api/v1/metrics", "service=demo", "container=webapp")
	b.wait("trend reason", `(document.querySelector('.host-metrics .hm-sum[data-metric=cpu] .hm-trend')?.textContent || '').includes('no trend: filters apply within the raw retention only')`)

	// The diff view compares stacks: no host metrics there.
	b.do("open diff", chromedp.Navigate(b.base+"/diff?service=demo&range=1h&base=1d"))
	b.wait("diff drawn", `window.__flamestream.view === 'diff' && window.__flamestream.ready`)
	if hidden := eval[bool](b, `document.querySelector('.host-metrics').hidden`); !hidden {
		t.Error("host metrics panel shown in the diff view")
	}
	if errs := b.pageErrors(); len(errs) > 0 {
		t.Errorf("page errors: %v", errs)
	}
}
