package query_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flamestream/flamestream/cmd/flamestream/testenv"
	"github.com/flamestream/flamestream/internal/pgdb"
)

// agentRecord is one log record as the test posts it.
type agentRecord struct {
	host, logger, message string
	severity              int
}

// TestAgentLogsAPIFiltersByHostLevelAndLiteralText posts agent log batches through ingest (the agent's
// POST /api/v1/logs, gzip JSON as gLogger sends it) and reads them back with GET /api/v1/agents/logs on the
// same process: every combination of host, level and search text returns exactly the records the test
// selects from what it posted, newest first; % and _ in the text match themselves; pages chain through
// before without gaps or repeats; bad parameters are 400s with a message, and a read token of another
// service is refused.
func TestAgentLogsAPIFiltersByHostLevelAndLiteralText(t *testing.T) {
	st := testenv.Start(t, testenv.Options{})
	agent, read := st.Token(t, pgdb.KindAgent, "shop"), st.Token(t, pgdb.KindRead, "shop")
	other := st.Token(t, pgdb.KindRead, "other")
	messages := []string{"profiling cycle done", "disk 100% full", "disk 1000 full", "a_b matched", "axb matched",
		"Uploading profile FAILED", "upload retry", "perf error: PERF_EVENT", "stack dump"}
	var posted []agentRecord
	base := time.Now().Add(-time.Hour).UnixMilli()
	for b, host := range []string{"web-1", "web-2", "web-1"} {
		var logs []string
		for i, m := range messages {
			r := agentRecord{host: host, logger: []string{"gprofiler.main", "gprofiler.perf"}[i%2], message: fmt.Sprintf("%s #%d", m, b), severity: 1 + (i+b)%5}
			posted = append(posted, r)
			logs = append(logs, fmt.Sprintf(`{"severity":%d,"timestamp":%d,"text":{"message":%q,"logger_name":%q}}`,
				r.severity, base+int64(len(posted))*1000, r.message, r.logger))
		}
		body := fmt.Sprintf(`{"batch_id":"b%d","metadata":{"run_id":"r","gprofiler_version":"1.35.0","service_name":"shop","hostname":%q},"lost":0,"logs":[%s]}`,
			b, host, strings.Join(logs, ","))
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write([]byte(body))
		zw.Close()
		req, _ := http.NewRequest(http.MethodPost, st.URL+"/api/v1/logs", &gz)
		for k, v := range map[string]string{"X-Token": agent, "X-Application-Name": "gprofiler", "Content-Encoding": "gzip", "Content-Type": "application/json"} {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("post batch %d: %d", b, resp.StatusCode)
		}
	}
	get := func(token string, q url.Values) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, st.URL+"/api/v1/agents/logs?"+q.Encode(), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	type reply struct {
		Service string          `json:"service"`
		Logs    []pgdb.AgentLog `json:"logs"`
		More    bool            `json:"more"`
	}
	levels := map[string]int{"": 0, "debug": 1, "info": 2, "warning": 3, "error": 4, "critical": 5}
	checked := 0
	for _, host := range []string{"", "web-1", "web-2"} {
		for level, min := range levels {
			for _, text := range []string{"", "DISK", "100%", "a_b", "upload", "perf", "#2", "nothing like this"} {
				var want []string // newest first: the reverse of the posting order
				for i := len(posted) - 1; i >= 0; i-- {
					r := posted[i]
					lt := strings.ToLower(text)
					if (host == "" || r.host == host) && r.severity >= min &&
						(text == "" || strings.Contains(strings.ToLower(r.message), lt) || strings.Contains(strings.ToLower(r.logger), lt)) {
						want = append(want, r.host+" "+r.message)
					}
				}
				code, body := get(read, url.Values{"service": {"shop"}, "hostname": {host}, "level": {level}, "q": {text}})
				var got reply
				if code != http.StatusOK || json.Unmarshal(body, &got) != nil || got.Service != "shop" || got.More {
					t.Fatalf("host %q level %q q %q: %d %s", host, level, text, code, body)
				}
				var names []string
				for _, l := range got.Logs {
					names = append(names, l.Hostname+" "+l.Message)
				}
				if !slices.Equal(names, want) {
					t.Errorf("host %q level %q q %q:\n got %q\nwant %q", host, level, text, names, want)
				}
				checked++
			}
		}
	}
	// The % and _ cases are not vacuous: each matches one message of each batch, not its look-alike.
	if code, body := get(read, url.Values{"service": {"shop"}, "q": {"100%"}}); code != 200 || strings.Count(string(body), "disk 100% full") != 3 || strings.Contains(string(body), "disk 1000") {
		t.Errorf("100%%: %d %s", code, body)
	}

	// Pages of 4 chain through before and together are the whole list.
	var all []string
	q := url.Values{"service": {"shop"}, "limit": {"4"}}
	for page := 0; ; page++ {
		code, body := get(read, q)
		var got reply
		if code != 200 || json.Unmarshal(body, &got) != nil || len(got.Logs) == 0 || len(got.Logs) > 4 {
			t.Fatalf("page %d: %d %s", page, code, body)
		}
		for _, l := range got.Logs {
			all = append(all, l.Hostname+" "+l.Message)
		}
		if !got.More {
			break
		}
		q.Set("before", fmt.Sprint(got.Logs[len(got.Logs)-1].ID))
	}
	if len(all) != len(posted) || all[0] != posted[len(posted)-1].host+" "+posted[len(posted)-1].message || all[len(all)-1] != posted[0].host+" "+posted[0].message {
		t.Errorf("paged through %d records (%q … %q), want %d newest first", len(all), all[0], all[len(all)-1], len(posted))
	}

	for _, tc := range []struct {
		q       url.Values
		message string
	}{
		{url.Values{"service": {"shop"}, "level": {"verbose"}}, "bad level"},
		{url.Values{"service": {"shop"}, "level": {"3"}}, "bad level"},
		{url.Values{"service": {"shop"}, "limit": {"0"}}, "bad limit"},
		{url.Values{"service": {"shop"}, "limit": {"501"}}, "bad limit"},
		{url.Values{"service": {"shop"}, "before": {"-4"}}, "bad before"},
		{url.Values{"service": {"shop"}, "before": {"x"}}, "bad before"},
		{url.Values{"service": {"shop"}, "q": {strings.Repeat("x", 201)}}, "bad q"},
		{url.Values{"service": {"shop"}, "q": {"a\x00b"}}, "bad q"},
	} {
		code, body := get(read, tc.q)
		var msg struct{ Message string }
		if code != http.StatusBadRequest || json.Unmarshal(body, &msg) != nil || !strings.Contains(msg.Message, tc.message) {
			t.Errorf("%v: %d %s, want 400 %q", tc.q, code, body, tc.message)
		}
	}
	// A token of every service must name one; a token of one service reads its own by default.
	if code, body := get(st.Token(t, pgdb.KindRead, ""), url.Values{"level": {"info"}}); code != http.StatusBadRequest || !strings.Contains(string(body), "service is required") {
		t.Errorf("no service with a token of every service: %d %s, want 400", code, body)
	}
	if code, body := get(other, url.Values{"service": {"shop"}}); code != http.StatusForbidden {
		t.Errorf("read token of another service: %d %s, want 403", code, body)
	}
	if code, body := get(other, url.Values{}); code != http.StatusOK || strings.Contains(string(body), "web-1") {
		t.Errorf("read token of another service, no service: %d %s, want its own (empty) logs", code, body)
	}
	t.Logf("%d filter combinations checked against %d posted records", checked, len(posted))
}
