package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/flamestream/flamestream/cmd/flamestream/testenv"
	"github.com/flamestream/flamestream/internal/demo"
	"github.com/flamestream/flamestream/internal/pgdb"
)

// bigProfile is an agent profile of n distinct stacks (a vocabulary of shared prefixes, a unique leaf)
// whose counts add up to the returned total.
func bigProfile(host string, n int) (text []byte, total uint64) {
	hdr, _, _ := bytes.Cut(demo.Restamp(host, 1), []byte("\n"))
	var b bytes.Buffer
	b.Grow(n * 64)
	b.Write(hdr)
	b.WriteByte('\n')
	for i := range n {
		c := uint64(1 + i%7)
		total += c
		fmt.Fprintf(&b, "0;;java;Thread.run_[j];pool%d.Worker.loop_[j];svc%d.Handler.serve_[j];leaf%d_[j] %d\n",
			i%13, i/13%997, i, c)
	}
	return b.Bytes(), total
}

// rawGet reads a query API reply whole.
func rawGet(t *testing.T, u, bearer string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestBigServiceNeverStallsASmallOne puts a service with a million distinct stacks (FLAMESTREAM_TEST_BIG_STACKS
// overrides the number) next to a small one, on ClickHouse at its default settings. Every read of the big
// one (flame graph, diff, top, folded export, timeline, filters, focus) answers 200 with exact totals, and
// after each of them a new upload of the small service is indexed within seconds and read back exactly.
// Before stack hashes went to ClickHouse as external data, the first read of the big service failed with
// "Max query size exceeded" and left a connection out of step that failed every later query and insert.
func TestBigServiceNeverStallsASmallOne(t *testing.T) {
	n := 1_000_000
	if v := os.Getenv("FLAMESTREAM_TEST_BIG_STACKS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	st := testenv.Start(t, testenv.Options{})
	bigToken := st.Token(t, pgdb.KindAgent, "big")
	smallToken := st.Token(t, pgdb.KindAgent, "small")
	read := st.Token(t, pgdb.KindRead, "")

	now := time.Now().UTC().Truncate(time.Second)
	from, to := now.Add(-50*time.Minute), now.Add(time.Minute)
	text, bigTotal := bigProfile("big-host", n)
	body := demo.NewUpload(text, "big-host", now.Add(-20*time.Minute), "").Gzip()
	t.Logf("big profile: %d stacks, %d MB of text, %d MB gzip", n, len(text)>>20, len(body)>>20)
	if code, reply := post(t, st.URL, bigToken, "big", body); code != http.StatusOK {
		t.Fatalf("big upload: %d %v", code, reply)
	}
	q := func(path, service string, extra ...string) string {
		v := url.Values{"service": {service}, "from": {from.Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)}}
		for i := 0; i+1 < len(extra); i += 2 {
			v.Set(extra[i], extra[i+1])
		}
		return st.URL + path + "?" + v.Encode()
	}
	rootValue := func(service string) (uint64, int) {
		var root node
		code := getJSON(t, q("/api/v1/flamegraph", service), read, &root)
		return root.Value, code
	}
	waitFor := func(what, service string, want uint64, within time.Duration) time.Duration {
		t.Helper()
		t0 := time.Now()
		for {
			got, code := rootValue(service)
			if code == http.StatusOK && got == want {
				return time.Since(t0)
			}
			if got > want || time.Since(t0) > within {
				var svc proto.ColStr
				var rows proto.ColUInt64
				_ = st.CH.Do(context.Background(), ch.Query{
					Body:   "SELECT service, count() AS rows FROM " + st.CH.Table("samples") + " GROUP BY service ORDER BY service",
					Result: proto.Results{{Name: "service", Data: &svc}, {Name: "rows", Data: &rows}},
				})
				for i := range rows.Rows() {
					t.Logf("samples of %s: %d rows", svc.Row(i), rows[i])
				}
				t.Fatalf("%s: %s's total is %d (HTTP %d) after %v, want %d", what, service, got, code, time.Since(t0).Round(time.Millisecond), want)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	small := demo.Restamp("small-host", 1)
	smallEach, _ := expected(t, small)
	var smallTotal uint64
	uploadSmall := func(i int) {
		t.Helper()
		up := demo.NewUpload(small, "small-host", now.Add(-time.Duration(40-i)*time.Minute), "")
		if code, reply := post(t, st.URL, smallToken, "small", up.Gzip()); code != http.StatusOK {
			t.Fatalf("small upload %d: %d %v", i, code, reply)
		}
		smallTotal += smallEach
	}

	// While the big profile goes through the indexer (tens of seconds), another service's upload is
	// indexed by another worker and queryable within seconds.
	time.Sleep(time.Second)
	uploadSmall(-5)
	lag := waitFor("while the big upload is indexed", "small", smallTotal, 15*time.Second)
	t.Logf("a small upload made while the big one was indexed was queryable in %v", lag.Round(time.Millisecond))
	took := waitFor("big upload indexed", "big", bigTotal, 5*time.Minute)
	t.Logf("big service queryable %v after its upload was acknowledged", took.Round(time.Millisecond))
	// The raw rows are visible before the INSERT has gone through every materialized view (a million rows
	// take tens of seconds there): the timeline, read from a rollup, tells when it is done.
	for t0 := time.Now(); ; {
		code, b := rawGet(t, q("/api/v1/timeline", "big"), read)
		if code == http.StatusOK && bytes.Contains(b, []byte(strconv.FormatUint(bigTotal, 10))) {
			t.Logf("big upload through every rollup %v after it was acknowledged", (took + time.Since(t0)).Round(time.Millisecond))
			break
		}
		if time.Since(t0) > 5*time.Minute {
			t.Fatalf("big upload not in the timeline after 5 minutes: HTTP %d %.200s", code, b)
		}
		time.Sleep(time.Second)
	}

	reads := []struct {
		name  string
		url   string
		check func(body []byte) error
	}{
		{"flame graph", q("/api/v1/flamegraph", "big"), rootIs(bigTotal)},
		{"diff", q("/api/v1/diff", "big", "base_from", from.Add(-time.Hour).Format(time.RFC3339), "base_to", from.Format(time.RFC3339)), rootIs(bigTotal)},
		{"focus", q("/api/v1/flamegraph", "big", "focus", "java;Thread.run_[j]"), rootIs(bigTotal)},
		{"top", q("/api/v1/top", "big"), contains("leaf")},
		{"folded export", q("/api/v1/export", "big", "format", "folded"), foldedTotal(bigTotal, n)},
		{"timeline", q("/api/v1/timeline", "big"), contains(strconv.FormatUint(bigTotal, 10))},
		{"filters", q("/api/v1/filters", "big"), contains("big-host")},
	}
	for i, r := range reads {
		t0 := time.Now()
		code, b := rawGet(t, r.url, read)
		if code != http.StatusOK {
			t.Fatalf("%s of the big service: HTTP %d %.300s", r.name, code, b)
		}
		if err := r.check(b); err != nil {
			for _, table := range []string{"samples", "totals_1m", "samples_1m_all", "samples_1h_all"} {
				var svc proto.ColStr
				var rows, sum proto.ColUInt64
				err := st.CH.Do(context.Background(), ch.Query{
					Body:   "SELECT service, count() AS rows, toUInt64(sum(count)) AS sum FROM " + st.CH.Table(table) + " GROUP BY service ORDER BY service",
					Result: proto.Results{{Name: "service", Data: &svc}, {Name: "rows", Data: &rows}, {Name: "sum", Data: &sum}},
				})
				for i := range rows.Rows() {
					t.Logf("%s of %s: %d rows, %d samples", table, svc.Row(i), rows[i], sum[i])
				}
				if err != nil {
					t.Logf("%s: %v", table, err)
				}
			}
			t.Fatalf("%s of the big service: %v", r.name, err)
		}
		d := time.Since(t0)
		uploadSmall(i)
		lag := waitFor("after the big "+r.name, "small", smallTotal, 20*time.Second)
		t.Logf("%-13s of %d stacks: %6v, %d KB; then a small upload was queryable in %v", r.name, n,
			d.Round(time.Millisecond), len(b)>>10, lag.Round(time.Millisecond))
	}
	plain, limited := st.CH.Stats()
	t.Logf("test client pools: %+v %+v", plain, limited)
}

// rootIs checks a flame graph's (or diff's) root value.
func rootIs(want uint64) func([]byte) error {
	return func(b []byte) error {
		// The root's value is the first "value" of the reply: the tree is written root first.
		i := bytes.Index(b, []byte(`"value":`))
		if i < 0 {
			return fmt.Errorf("no value in %.200s", b)
		}
		rest := b[i+len(`"value":`):]
		end := bytes.IndexAny(rest, ",}")
		got, err := strconv.ParseUint(string(rest[:end]), 10, 64)
		if err != nil || got != want {
			return fmt.Errorf("root value %q, want %d", rest[:end], want)
		}
		return nil
	}
}

func contains(s string) func([]byte) error {
	return func(b []byte) error {
		if !bytes.Contains(b, []byte(s)) {
			return fmt.Errorf("reply does not contain %q: %.300s", s, b)
		}
		return nil
	}
}

// foldedTotal checks a folded export: stacks lines whose counts add up to want.
func foldedTotal(want uint64, stacks int) func([]byte) error {
	return func(b []byte) error {
		var total uint64
		lines := 0
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			sp := strings.LastIndexByte(line, ' ')
			c, err := strconv.ParseUint(line[sp+1:], 10, 64)
			if err != nil {
				return fmt.Errorf("folded line %q: %v", line, err)
			}
			total += c
			lines++
		}
		if total != want || lines != stacks {
			return fmt.Errorf("folded export: %d lines adding up to %d, want %d and %d", lines, total, stacks, want)
		}
		return nil
	}
}
