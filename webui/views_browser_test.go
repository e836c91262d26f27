package webui_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/flamestream/flamestream/cmd/flamestream/testenv"
	"github.com/flamestream/flamestream/internal/demo"
	"github.com/flamestream/flamestream/internal/pgdb"
)

// These tests drive the saved views, the permalink and the agent logs panel in headless Chromium against a
// whole Flamestream (ingest, indexer, query API and the embedded UI) on the real local servers.

// signIn fills the login form the page was sent to.
func (p *page) signIn(user, password string) {
	p.t.Helper()
	p.wait("login form", `location.pathname === '/login'`)
	p.do("log in",
		chromedp.WaitVisible(chromedp.CSS(`input[name=username]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), user),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), password),
		chromedp.Click(chromedp.CSS(`form.login button[type=submit]`)))
}

// sameQuery fails unless two query strings hold the same parameters.
func sameQuery(t *testing.T, what, got, want string) {
	t.Helper()
	g, err1 := url.ParseQuery(strings.TrimPrefix(got, "?"))
	w, err2 := url.ParseQuery(strings.TrimPrefix(want, "?"))
	if err1 != nil || err2 != nil || g.Encode() != w.Encode() {
		t.Errorf("%s: query %q, want %q", what, got, want)
	}
}

// TestBrowserSavedViewsAndPermalink: on a profile page the permalink pins the relative range to absolute
// from/to and keeps every other parameter; a view saved from the top bar is stored for the user with the
// page's path and query; saving another page under the same name asks to replace and then does (same
// view, new state); the view opens from another page; deleting it empties the list and the table.
func TestBrowserSavedViewsAndPermalink(t *testing.T) {
	p := newPage(t)
	st := testenv.Start(t, testenv.Options{})
	ctx := context.Background()
	if err := st.PG.SetUser(ctx, "alice", "correct horse"); err != nil {
		t.Fatal(err)
	}
	state := "service=shop&range=6h&host=web-1&host_not=web-2&view=table&tsort=occurrences"
	p.do("open profile", chromedp.Navigate(st.URL+"/profile?"+state))
	p.signIn("alice", "correct horse")
	p.wait("profile", `location.pathname === '/profile' && location.search.includes('tsort=occurrences')`)

	before := time.Now().Unix()
	p.do("permalink", chromedp.Click(chromedp.CSS(`[data-action=permalink]`)))
	// The menu opens once the copy is done (the button then says so): closing it earlier would race that.
	p.wait("permalink shown", `document.querySelector('.sv-menu').open && document.querySelector('[data-action=permalink]').textContent !== 'Permalink' && !document.querySelector('input.sv-link').hidden && document.querySelector('input.sv-link').value !== ''`)
	link, err := url.Parse(evalJS[string](p, `document.querySelector('input.sv-link').value`))
	if err != nil {
		t.Fatal(err)
	}
	q := link.Query()
	from, _ := strconv.ParseInt(q.Get("from"), 10, 64)
	to, _ := strconv.ParseInt(q.Get("to"), 10, 64)
	if link.Path != "/profile" || q.Has("range") || to-from != 6*3600 || to < before-5 || to > time.Now().Unix()+5 {
		t.Errorf("permalink %s: want /profile with from/to 6 h apart ending now, no range", link)
	}
	q.Del("from")
	q.Del("to")
	q.Set("range", "6h")
	sameQuery(t, "permalink's other parameters", q.Encode(), state)
	t.Logf("permalink %s; screenshot %s", link, p.shot("views-permalink"))
	p.do("close menu", chromedp.Click(chromedp.CSS(`.sv-menu summary`)))
	p.wait("menu closed", `!document.querySelector('.sv-menu').open`)

	p.do("open views", chromedp.Click(chromedp.CSS(`.sv-menu summary`)))
	p.wait("views listed", `document.querySelector('.sv-menu').open && document.querySelector('.sv-list').dataset.ready === 'true' && document.querySelector('.sv-list').dataset.count === '0'`)
	p.do("save view",
		chromedp.SendKeys(chromedp.CSS(`input[name=view-name]`), "Shop web-1 (6h)"),
		chromedp.Click(chromedp.CSS(`[data-action=save-view]`)))
	p.wait("view saved", `document.querySelector('.sv-list').dataset.count === '1' && document.querySelector('.sv-msg').textContent.includes('Saved')`)
	views, err := st.PG.ListViews(ctx, "alice", 10)
	if err != nil || len(views) != 1 {
		t.Fatalf("stored views %+v %v, want one", views, err)
	}
	v := views[0]
	if v.Name != "Shop web-1 (6h)" || v.Path != "/profile" || v.Service != "shop" {
		t.Errorf("stored %+v", v)
	}
	sameQuery(t, "stored view", v.Query, state)
	t.Logf("saved-view screenshot %s", p.shot("views-saved"))

	// The same name from a diff page: the menu asks to replace, and Replace overwrites the same view.
	diff := "service=shop&range=1h&base=7d"
	p.do("open diff", chromedp.Navigate(st.URL+"/diff?"+diff))
	p.wait("diff", `location.pathname === '/diff' && !!document.querySelector('.sv-menu summary')`)
	p.do("open views", chromedp.Click(chromedp.CSS(`.sv-menu summary`)))
	p.wait("views listed", `document.querySelector('.sv-menu').open && document.querySelector('.sv-list').dataset.ready === 'true' && document.querySelector('.sv-list').dataset.count === '1'`)
	p.do("save the same name",
		chromedp.SendKeys(chromedp.CSS(`input[name=view-name]`), "Shop web-1 (6h)"),
		chromedp.Click(chromedp.CSS(`[data-action=save-view]`)))
	p.wait("asked to replace", `document.querySelector('[data-action=save-view]').textContent === 'Replace' && document.querySelector('.sv-msg').textContent.includes('exists')`)
	if views, _ := st.PG.ListViews(ctx, "alice", 10); len(views) != 1 || views[0].Path != "/profile" {
		t.Fatalf("before Replace the view changed: %+v", views)
	}
	p.do("replace", chromedp.Click(chromedp.CSS(`[data-action=save-view]`)))
	p.wait("replaced", `document.querySelector('.sv-msg').textContent.includes('Saved') && document.querySelector('[data-action=save-view]').textContent === 'Save'`)
	views, _ = st.PG.ListViews(ctx, "alice", 10)
	if len(views) != 1 || views[0].ID != v.ID || views[0].Path != "/diff" {
		t.Fatalf("after Replace: %+v, want view %d of /diff", views, v.ID)
	}
	sameQuery(t, "replaced view", views[0].Query, diff)

	// From another page the saved view opens its page with its state.
	p.do("open services", chromedp.Navigate(st.URL+"/services"))
	p.wait("services", `location.pathname === '/services' && !!document.querySelector('.sv-menu summary')`)
	p.do("open views", chromedp.Click(chromedp.CSS(`.sv-menu summary`)))
	p.wait("views listed", `document.querySelector('.sv-menu').open && document.querySelector('.sv-list').dataset.ready === 'true' && document.querySelector('.sv-list').dataset.count === '1'`)
	if evalJS[bool](p, `!document.querySelector('[data-action=save-view]').disabled`) {
		t.Error("Save is enabled on the services page, which has no view state")
	}
	p.do("open the view", chromedp.Click(chromedp.CSS(`.sv-list li[data-view-id] a`)))
	p.wait("view opened", `location.pathname === '/diff'`)
	sameQuery(t, "opened view", evalJS[string](p, `location.search`), diff)

	p.do("open views", chromedp.Click(chromedp.CSS(`.sv-menu summary`)))
	p.wait("views listed", `document.querySelector('.sv-menu').open && document.querySelector('.sv-list').dataset.ready === 'true' && document.querySelector('.sv-list').dataset.count === '1'`)
	p.do("delete", chromedp.Click(chromedp.CSS(`.sv-list [data-action=delete-view]`)))
	p.wait("deleted", `document.querySelector('.sv-list').dataset.count === '0'`)
	if views, _ := st.PG.ListViews(ctx, "alice", 10); len(views) != 0 {
		t.Errorf("after delete: %+v", views)
	}
}

// logRec is one agent log record as the test posts it.
type logRec struct {
	host, logger, msg string
	sev               int
}

// TestBrowserAgentLogs: the Agents page opens an agent's logs from its row; the panel lists that host's
// records newest first exactly as posted through ingest; the level filter and the search go to the URL
// and to the server, and the rows are then exactly the posted records that pass both; closing the panel
// clears its URL state; the service's logs of every host come a page of 200 at a time, Older adding the rest.
func TestBrowserAgentLogs(t *testing.T) {
	p := newPage(t)
	st := testenv.Start(t, testenv.Options{})
	if err := st.PG.SetUser(context.Background(), "alice", "correct horse"); err != nil {
		t.Fatal(err)
	}
	agent, read := st.Token(t, pgdb.KindAgent, "shop"), st.Token(t, pgdb.KindRead, "")
	post := func(path string, body []byte, hdr map[string]string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, st.URL+path, bytes.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b)
		}
	}
	start := time.Now().UTC().Truncate(time.Minute).Add(-20 * time.Minute)
	for i, host := range []string{"web-1", "web-2"} {
		post("/api/v2/profiles", demo.NewUpload(demo.Restamp(host, 1), host, start.Add(time.Duration(i)*time.Minute), "").Gzip(),
			map[string]string{"GPROFILER-API-KEY": agent, "GPROFILER-SERVICE-NAME": "shop", "Content-Encoding": "gzip", "Content-Type": "application/json"})
	}
	texts := []string{"profiling cycle started", "Upload of profile failed: timeout", "perf: lost 3 samples",
		"upload succeeded", "Java attach failed for pid 42", "profiling cycle done"}
	var posted []logRec
	for b, host := range []string{"web-1", "web-2", "web-1"} {
		var logs []string
		for i, m := range texts {
			r := logRec{host: host, logger: []string{"gprofiler.main", "gprofiler.java"}[i%2], msg: fmt.Sprintf("%s (batch %d)", m, b), sev: 1 + (i*2+b)%5}
			posted = append(posted, r)
			logs = append(logs, fmt.Sprintf(`{"severity":%d,"timestamp":%d,"text":{"message":%q,"logger_name":%q}}`,
				r.sev, start.Add(time.Duration(len(posted))*time.Second).UnixMilli(), r.msg, r.logger))
		}
		post("/api/v1/logs", []byte(fmt.Sprintf(`{"batch_id":"b%d","metadata":{"run_id":"r","gprofiler_version":"1.35.0","service_name":"shop","hostname":%q},"logs":[%s]}`,
			b, host, strings.Join(logs, ","))), map[string]string{"X-Token": agent, "Content-Type": "application/json"})
	}
	// A long log of web-2: more than a page (200) of every host's records.
	var bulk []string
	for i := range 205 {
		r := logRec{host: "web-2", logger: "gprofiler.main", msg: fmt.Sprintf("bulk record %d", i), sev: 2}
		posted = append(posted, r)
		bulk = append(bulk, fmt.Sprintf(`{"severity":2,"timestamp":%d,"text":{"message":%q,"logger_name":"gprofiler.main"}}`,
			start.Add(time.Duration(len(posted))*time.Second).UnixMilli(), r.msg))
	}
	post("/api/v1/logs", []byte(`{"batch_id":"bulk","metadata":{"service_name":"shop","hostname":"web-2"},"logs":[`+strings.Join(bulk, ",")+`]}`),
		map[string]string{"X-Token": agent, "Content-Type": "application/json"})
	// The agents list comes from the uploads' bookkeeping; wait until both hosts are there.
	deadline := time.Now().Add(60 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, st.URL+"/api/v1/agents?service=shop", nil)
		req.Header.Set("Authorization", "Bearer "+read)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var r struct{ Agents []pgdb.Agent }
		_ = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if len(r.Agents) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agents listed: %d, want 2", len(r.Agents))
		}
		time.Sleep(200 * time.Millisecond)
	}
	levels := map[string]int{"": 0, "debug": 1, "info": 2, "warning": 3, "error": 4, "critical": 5}
	names := []string{"debug", "info", "warning", "error", "critical"}
	want := func(host, level, text string) []string {
		var out []string
		for i := len(posted) - 1; i >= 0; i-- {
			r := posted[i]
			lt := strings.ToLower(text)
			if (host == "" || r.host == host) && r.sev >= levels[level] &&
				(text == "" || strings.Contains(strings.ToLower(r.msg), lt) || strings.Contains(strings.ToLower(r.logger), lt)) {
				out = append(out, fmt.Sprintf("%s|%s|%s|%s", names[r.sev-1], r.host, r.logger, r.msg))
			}
		}
		return out
	}
	rows := func() []string {
		return evalJS[[]string](p, `[...document.querySelectorAll('.al-table tbody tr[data-id]')].map(tr =>
			[...tr.querySelectorAll('td')].slice(1).map(td => td.textContent).join('|'))`)
	}
	check := func(what string, w []string) {
		t.Helper()
		if got := rows(); !slices.Equal(got, w) || len(w) == 0 {
			t.Errorf("%s:\n got %q\nwant %q (not empty)", what, got, w)
		}
	}

	p.do("open agents", chromedp.Navigate(st.URL+"/admin/agents?service=shop"))
	p.signIn("alice", "correct horse")
	p.wait("agents", `location.pathname === '/admin/agents' && !!document.querySelector('[data-action=logs][data-host="web-1"]')`)
	p.do("open logs", chromedp.Click(chromedp.CSS(`[data-action=logs][data-host="web-1"]`)))
	ready := `!document.querySelector('.agent-logs').hidden && document.querySelector('.agent-logs').dataset.ready === 'true'`
	p.wait("logs of web-1", `new URLSearchParams(location.search).get('log_host') === 'web-1' && `+ready)
	check("web-1, every level", want("web-1", "", ""))
	if n := evalJS[int](p, `document.querySelectorAll('.grid:not(.al-table) tbody tr').length`); n != 2 {
		t.Errorf("the agents table has %d rows beside the logs, want 2", n)
	}
	t.Logf("logs screenshot %s", p.shot("agent-logs"))

	p.do("level error", chromedp.Evaluate[chromedp.Void](`(() => { const s = document.querySelector('.al-level-pick'); s.value = 'error'; s.dispatchEvent(new Event('change')); })()`))
	p.wait("level in the URL", `new URLSearchParams(location.search).get('log_level') === 'error' && `+ready)
	check("web-1, error and above", want("web-1", "error", ""))

	p.do("level warning", chromedp.Evaluate[chromedp.Void](`(() => { const s = document.querySelector('.al-level-pick'); s.value = 'warning'; s.dispatchEvent(new Event('change')); })()`))
	p.do("search", chromedp.SendKeys(chromedp.CSS(`input.al-search`), "UPLOAD"))
	p.wait("search in the URL", `new URLSearchParams(location.search).get('log_q') === 'UPLOAD' && new URLSearchParams(location.search).get('log_level') === 'warning' && `+ready)
	check("web-1, warning and above, 'UPLOAD'", want("web-1", "warning", "UPLOAD"))
	t.Logf("filtered logs screenshot %s", p.shot("agent-logs-filtered"))

	p.do("close", chromedp.Click(chromedp.CSS(`[data-action=close-logs]`)))
	p.wait("closed", `document.querySelector('.agent-logs').hidden && !/log_/.test(location.search) && new URLSearchParams(location.search).get('service') === 'shop'`)

	// Every host of the service, a page at a time: the newest 200 records, then Older adds the rest.
	p.do("logs of every host", chromedp.Click(chromedp.CSS(`[data-action=service-logs]`)))
	p.wait("every host", `new URLSearchParams(location.search).get('log_service') === 'shop' && !new URLSearchParams(location.search).has('log_host') && `+ready)
	every := want("", "", "")
	check("every host, first page", every[:200])
	if !evalJS[bool](p, `!document.querySelector('[data-action=older-logs]').hidden`) {
		t.Fatal("no Older button under a full page")
	}
	p.do("older", chromedp.Click(chromedp.CSS(`[data-action=older-logs]`)))
	p.wait("older page", fmt.Sprintf(`document.querySelectorAll('.al-table tbody tr[data-id]').length === %d && `+ready, len(every)))
	check("every host, both pages", every)
	if evalJS[bool](p, `!document.querySelector('[data-action=older-logs]').hidden`) {
		t.Error("Older still offered after the last page")
	}
}
