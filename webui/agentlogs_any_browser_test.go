package webui_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/flamestream/flamestream/cmd/flamestream/testenv"
	"github.com/flamestream/flamestream/internal/pgdb"
)

// TestBrowserAgentLogsOfAnAgentWithoutProfiles: an agent that sends its logs but no profile (it fails to
// profile) has no row in the agents list and its service is in no service picker; the Agents page still
// opens its logs, by the "Logs of" form (service typed, hosts of every record), and a host of a record
// narrows the panel to that host. The rows are exactly the records posted through ingest.
func TestBrowserAgentLogsOfAnAgentWithoutProfiles(t *testing.T) {
	p := newPage(t)
	st := testenv.Start(t, testenv.Options{})
	if err := st.PG.SetUser(context.Background(), "alice", "correct horse"); err != nil {
		t.Fatal(err)
	}
	agent := st.Token(t, pgdb.KindAgent, "batch-jobs")
	start := time.Now().UTC().Truncate(time.Minute).Add(-10 * time.Minute)
	var posted []logRec
	for b, host := range []string{"etl-1", "etl-2"} {
		var logs []string
		for i, m := range []string{"perf failed to start: permission denied", "profiling disabled for this run", "heartbeat"} {
			r := logRec{host: host, logger: "gprofiler.main", msg: fmt.Sprintf("%s (%s)", m, host), sev: 4 - i}
			posted = append(posted, r)
			logs = append(logs, fmt.Sprintf(`{"severity":%d,"timestamp":%d,"text":{"message":%q,"logger_name":%q}}`,
				r.sev, start.Add(time.Duration(len(posted))*time.Second).UnixMilli(), r.msg, r.logger))
		}
		req, _ := http.NewRequest(http.MethodPost, st.URL+"/api/v1/logs", bytes.NewReader([]byte(fmt.Sprintf(
			`{"batch_id":"b%d","metadata":{"run_id":"r","gprofiler_version":"1.35.0","service_name":"batch-jobs","hostname":%q},"logs":[%s]}`,
			b, host, strings.Join(logs, ",")))))
		req.Header.Set("X-Token", agent)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("POST /api/v1/logs: %d %s", resp.StatusCode, body)
		}
	}
	want := func(host string) []string {
		var out []string
		for i := len(posted) - 1; i >= 0; i-- {
			if r := posted[i]; host == "" || r.host == host {
				out = append(out, fmt.Sprintf("%s|%s|%s", r.host, r.logger, r.msg))
			}
		}
		return out
	}
	rows := func() []string {
		return evalJS[[]string](p, `[...document.querySelectorAll('.al-table tbody tr[data-id]')].map(tr =>
			[...tr.querySelectorAll('td')].slice(2).map(td => td.textContent).join('|'))`)
	}
	ready := `!document.querySelector('.agent-logs').hidden && document.querySelector('.agent-logs').dataset.ready === 'true'`

	p.do("open agents", chromedp.Navigate(st.URL+"/admin/agents"))
	p.signIn("alice", "correct horse")
	p.wait("agents page", `location.pathname === '/admin/agents' && window.__flamestream.ready`)
	if n := evalJS[int](p, `document.querySelectorAll('[data-action=logs]').length`); n != 0 {
		t.Fatalf("%d agents listed, want none (no profile was uploaded)", n)
	}
	if evalJS[bool](p, `[...document.querySelectorAll('select[aria-label=service] option')].some(o => o.value === 'batch-jobs')`) {
		t.Log("the service picker lists batch-jobs (ingest recorded the service from its logs)")
	}
	p.do("type the service", chromedp.SendKeys(chromedp.CSS(`form.al-open input.al-open-service`), "batch-jobs"),
		chromedp.Click(chromedp.CSS(`form.al-open button[type=submit]`)))
	p.wait("logs of every host", `new URLSearchParams(location.search).get('log_service') === 'batch-jobs' && !new URLSearchParams(location.search).has('log_host') && `+ready)
	if got := rows(); !slices.Equal(got, want("")) {
		t.Errorf("every host:\n got %q\nwant %q", got, want(""))
	}
	t.Logf("screenshot %s", p.shot("agent-logs-without-profiles"))

	p.do("narrow to a host", chromedp.Click(chromedp.CSS(`.al-table a.al-host[data-host="etl-2"]`)))
	p.wait("logs of etl-2", `new URLSearchParams(location.search).get('log_host') === 'etl-2' && `+ready+
		` && [...document.querySelectorAll('.al-table tbody tr[data-id]')].length === 3`)
	if got := rows(); !slices.Equal(got, want("etl-2")) || len(got) == 0 {
		t.Errorf("etl-2:\n got %q\nwant %q", got, want("etl-2"))
	}
}
