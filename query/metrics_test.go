package query_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/flamestream/flamestream/cmd/flamestream/testenv"
	"github.com/flamestream/flamestream/internal/demo"
	"github.com/flamestream/flamestream/internal/pgdb"
	"github.com/flamestream/flamestream/query"
)

// hostHeader is one uploaded profile's header metrics, and where its samples ran.
type hostHeader struct {
	ts                time.Time
	host, itype, cont string
	cpu, mem          float64
	cores             int
}

var metricsHosts = []struct {
	name, itype string
	cores       int
}{{"web-1", "m5.large", 2}, {"web-2", "m5.large", 2}, {"db-1", "r5.xlarge", 4}, {"batch \"7\"", "c5.9xlarge", 36}}

// uploadHeaders sends one profile per host and minute from start for minutes minutes, through the ingest
// API exactly as the agent does, with metrics that vary per host and minute, and returns the headers.
// Even minutes' samples ran in container "api", odd ones' in "worker".
func uploadHeaders(t *testing.T, st *testenv.Stack, token, service string, start time.Time, minutes, seed int) []hostHeader {
	t.Helper()
	var out []hostHeader
	for m := range minutes {
		for i, h := range metricsHosts {
			x := m*len(metricsHosts) + i + seed
			hh := hostHeader{ts: start.Add(time.Duration(m)*time.Minute + time.Duration(i*7+3)*time.Second), host: h.name, itype: h.itype,
				cont: []string{"api", "worker"}[m%2], cpu: float64((x*37+11*i)%997) / 10, mem: 10 + float64((x*53)%877)/9, cores: h.cores}
			out = append(out, hh)
			hdr, _ := json.Marshal(map[string]any{
				"metadata": map[string]any{"hostname": h.name, "processors": h.cores, "cloud_info": map[string]any{"instance_type": h.itype},
					"run_arguments": map[string]any{"service_name": service}},
				"metrics": map[string]any{"cpu_avg": hh.cpu, "mem_avg": hh.mem}, "containers": []string{hh.cont},
			})
			text := "#" + string(hdr) + "\n" + hh.cont + ";python3;main_[p];loop_[p] " + fmt.Sprint(1+x%9) + "\n"
			body := demo.NewUpload([]byte(text), h.name, hh.ts, "").Gzip()
			st.Upload(t, token, service, body)
		}
	}
	return out
}

// quantile is ClickHouse's quantileExact, computed here: the value at index floor(q·n) of the sorted values.
func quantile(sorted []float64, q float64) float64 {
	return sorted[min(int(q*float64(len(sorted))), len(sorted)-1)]
}

type wantStats struct {
	n                       int
	avg, p50, p90, p99, max float64
}

func statsOf(vs []float64) wantStats {
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	var sum float64
	for _, v := range s {
		sum += v
	}
	return wantStats{n: len(s), avg: sum / float64(len(s)), p50: quantile(s, 0.5), p90: quantile(s, 0.9), p99: quantile(s, 0.99), max: s[len(s)-1]}
}

// checkStats compares a reply's statistics with the expected ones: averages up to float64 rounding (the
// server sums in another order), percentiles and maxima exactly (they are values the agent sent).
func checkStats(t *testing.T, what string, got query.MetricStats, want wantStats, percentiles bool) {
	t.Helper()
	if math.Abs(got.Avg-want.avg) > 1e-9 {
		t.Errorf("%s: avg %v, want %v", what, got.Avg, want.avg)
	}
	if !percentiles {
		if got.P50 != nil || got.Max != nil {
			t.Errorf("%s: percentiles where only sums are kept", what)
		}
		return
	}
	if got.P50 == nil || got.P90 == nil || got.P99 == nil || got.Max == nil {
		t.Errorf("%s: percentiles missing", what)
		return
	}
	if *got.P50 != want.p50 || *got.P90 != want.p90 || *got.P99 != want.p99 || *got.Max != want.max {
		t.Errorf("%s: p50/p90/p99/max %v/%v/%v/%v, want %v/%v/%v/%v", what, *got.P50, *got.P90, *got.P99, *got.Max, want.p50, want.p90, want.p99, want.max)
	}
}

// expectMetrics computes, from the uploaded headers only, the reply for [from, to) in buckets of step.
func checkMetrics(t *testing.T, what string, got query.MetricsReply, sent, prev []hostHeader, keep func(hostHeader) bool, percentiles bool) {
	t.Helper()
	type acc struct {
		cpu, mem []float64
		hosts    map[string]bool
	}
	newAcc := func() *acc { return &acc{hosts: map[string]bool{}} }
	in := func(h hostHeader, from, to time.Time) bool {
		ts := h.ts.Truncate(time.Second)
		return !ts.Before(from) && ts.Before(to) && keep(h)
	}
	buckets, all := map[int64]*acc{}, newAcc()
	cores := map[string]int{}
	for _, h := range sent {
		if !in(h, got.From, got.To) {
			continue
		}
		b := h.ts.Unix() / got.Step * got.Step
		if buckets[b] == nil {
			buckets[b] = newAcc()
		}
		for _, a := range []*acc{buckets[b], all} {
			a.cpu, a.mem, a.hosts[h.host] = append(a.cpu, h.cpu), append(a.mem, h.mem), true
		}
		cores[h.host] = max(cores[h.host], h.cores)
	}
	if len(all.cpu) == 0 {
		t.Fatalf("%s: the test selects no header", what)
	}
	if len(got.Series) != len(buckets) {
		t.Errorf("%s: %d buckets, want %d", what, len(got.Series), len(buckets))
	}
	for _, b := range got.Series {
		w := buckets[b.T]
		if w == nil {
			t.Errorf("%s: bucket %d not expected", what, b.T)
			continue
		}
		if b.Profiles != uint64(len(w.cpu)) || b.Hosts != uint64(len(w.hosts)) {
			t.Errorf("%s: bucket %d: %d profiles of %d hosts, want %d of %d", what, b.T, b.Profiles, b.Hosts, len(w.cpu), len(w.hosts))
		}
		checkStats(t, fmt.Sprintf("%s bucket %d cpu", what, b.T), b.CPU, statsOf(w.cpu), percentiles)
		checkStats(t, fmt.Sprintf("%s bucket %d mem", what, b.T), b.Mem, statsOf(w.mem), percentiles)
	}
	sm := got.Summary
	if sm.Profiles != uint64(len(all.cpu)) || sm.Hosts != uint64(len(all.hosts)) {
		t.Errorf("%s: summary %d profiles of %d hosts, want %d of %d", what, sm.Profiles, sm.Hosts, len(all.cpu), len(all.hosts))
	}
	wantCores := 0
	for _, c := range cores {
		wantCores += c
	}
	if percentiles && sm.Cores != uint64(wantCores) {
		t.Errorf("%s: %d cores, want %d", what, sm.Cores, wantCores)
	}
	cs, ms := statsOf(all.cpu), statsOf(all.mem)
	checkStats(t, what+" summary cpu", sm.CPU, cs, percentiles)
	checkStats(t, what+" summary mem", sm.Mem, ms, percentiles)
	// The trend: the same range a week earlier.
	var pc, pm []float64
	for _, h := range prev {
		if in(h, got.Trend.From, got.Trend.To) {
			pc, pm = append(pc, h.cpu), append(pm, h.mem)
		}
	}
	// The week-earlier range is the range moved back 7 days, widened to whole hours or days if it reaches
	// past the raw retention.
	wf, wt := got.From.Add(-7*24*time.Hour), got.To.Add(-7*24*time.Hour)
	widened := !got.Trend.From.After(wf) && !got.Trend.To.Before(wt) && wf.Sub(got.Trend.From) < 24*time.Hour && got.Trend.To.Sub(wt) < 24*time.Hour
	if !widened || got.Trend.Previous.Profiles != uint64(len(pc)) {
		t.Errorf("%s: trend from %v with %d profiles, want %v with %d", what, got.Trend.From, got.Trend.Previous.Profiles, got.From.Add(-7*24*time.Hour), len(pc))
	}
	if len(pc) == 0 {
		if got.Trend.CPU != nil {
			t.Errorf("%s: a trend without a previous range", what)
		}
		return
	}
	pcs, pms := statsOf(pc), statsOf(pm)
	if got.Trend.CPU == nil || got.Trend.Mem == nil || math.Abs(*got.Trend.CPU-(cs.avg-pcs.avg)) > 1e-9 || math.Abs(*got.Trend.Mem-(ms.avg-pms.avg)) > 1e-9 {
		t.Errorf("%s: trend %v %v, want %v %v", what, got.Trend.CPU, got.Trend.Mem, cs.avg-pcs.avg, ms.avg-pms.avg)
	}
}

func getMetrics(t *testing.T, base, token string, q url.Values) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/metrics?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestMetricsAgreeWithUploadedHeaders uploads profiles through the ingest API (the indexer of the same
// process stores them) now and a week earlier, and checks every number of GET /api/v1/metrics, per bucket,
// over the range and against the week before, with and without filters, against the headers sent; then
// the same range read past the raw retention (averages from the hour sums); then bad requests.
func TestMetricsAgreeWithUploadedHeaders(t *testing.T) {
	st := testenv.Start(t, testenv.Options{})
	agent, read := st.Token(t, "agent", ""), st.Token(t, pgdb.KindRead, "")
	start := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour).Add(-20 * time.Minute)
	sent := uploadHeaders(t, st, agent, "hm", start, 70, 0)
	prev := uploadHeaders(t, st, agent, "hm", start.Add(-7*24*time.Hour), 40, 5)
	deadline := time.Now().Add(60 * time.Second)
	for {
		var n proto.ColUInt64
		if err := st.CH.Do(context.Background(), chQuery("SELECT count() AS n FROM "+st.CH.Table("host_metrics"), &n)); err != nil {
			t.Fatal(err)
		}
		if n[0] == uint64(len(sent)+len(prev)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d host metrics rows after 60 s, want %d", n[0], len(sent)+len(prev))
		}
		time.Sleep(200 * time.Millisecond)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	base := serve(t, query.New(query.Config{}, st.CH, st.PG, log))
	from, to := start.Add(-4*time.Hour-13*time.Second), start.Add(85*time.Minute+31*time.Second)
	all := func(hostHeader) bool { return true }
	for _, tc := range []struct {
		name string
		q    url.Values
		keep func(hostHeader) bool
	}{
		{"no filter, 5-minute buckets", nil, all},
		{"one host", url.Values{"host": {"web-1"}}, func(h hostHeader) bool { return h.host == "web-1" }},
		{"not an instance type", url.Values{"instance_type_not": {"r5.xlarge"}}, func(h hostHeader) bool { return h.itype != "r5.xlarge" }},
		{"a container (through the minute totals) and a quoted host", url.Values{"container": {"api"}, "host": {"batch \"7\"", "db-1"}},
			func(h hostHeader) bool { return h.cont == "api" && (h.host == "db-1" || h.host == "batch \"7\"") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := params("hm", from, to, nil)
			for k, v := range tc.q {
				q[k] = v
			}
			code, body := getMetrics(t, base, read, q)
			if code != http.StatusOK {
				t.Fatalf("%d %s", code, body)
			}
			var got query.MetricsReply
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			if got.Step != 300 {
				t.Errorf("step %d, want 300 for %v", got.Step, to.Sub(from))
			}
			checkMetrics(t, tc.name, got, sent, prev, tc.keep, true)
		})
	}
	t.Run("services overview", func(t *testing.T) {
		// The last 24 whole hours hold the profiles sent now, not those of a week ago.
		var cpu, mem float64
		for _, h := range sent {
			cpu += h.cpu
			mem += h.mem
		}
		cpu, mem = cpu/float64(len(sent)), mem/float64(len(sent))
		req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/services", nil)
		req.Header.Set("Authorization", "Bearer "+read)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got struct{ Services []query.ServiceSummary }
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, sv := range got.Services {
			if sv.Name != "hm" {
				continue
			}
			found = true
			if sv.CPUAvg == nil || sv.MemAvg == nil {
				t.Fatalf("hm: no cpu_avg or mem_avg: %+v", sv)
			}
			if math.Abs(*sv.CPUAvg-cpu) > 1e-9 || math.Abs(*sv.MemAvg-mem) > 1e-9 {
				t.Errorf("hm: cpu_avg %v mem_avg %v, want %v %v (from %d headers)", *sv.CPUAvg, *sv.MemAvg, cpu, mem, len(sent))
			}
		}
		if !found {
			t.Errorf("hm not among the services: %+v", got.Services)
		}
	})
	t.Run("one-minute buckets", func(t *testing.T) {
		code, body := getMetrics(t, base, read, params("hm", start.Add(20*time.Minute), start.Add(50*time.Minute), nil))
		var got query.MetricsReply
		if code != http.StatusOK || json.Unmarshal(body, &got) != nil {
			t.Fatalf("%d %s", code, body)
		}
		if got.Step != 60 || len(got.Series) != 30 {
			t.Errorf("step %d with %d buckets, want 60 and 30", got.Step, len(got.Series))
		}
		checkMetrics(t, "one-minute buckets", got, sent, prev, all, true)
	})
	t.Run("past the raw retention: hour sums", func(t *testing.T) {
		old := serve(t, query.New(query.Config{RawDays: 3, HourDays: 30}, st.CH, st.PG, log))
		pf, pt := start.Add(-7*24*time.Hour-50*time.Minute), start.Add(-7*24*time.Hour+3*time.Hour+10*time.Minute)
		code, body := getMetrics(t, old, read, params("hm", pf, pt, nil))
		var got query.MetricsReply
		if code != http.StatusOK || json.Unmarshal(body, &got) != nil {
			t.Fatalf("%d %s", code, body)
		}
		// Widened to whole hours, buckets of an hour, averages exact from the sums, no percentiles.
		if got.Step != 3600 || got.From.Minute() != 0 || got.To.Minute() != 0 || !got.Summary.PercentilesFrom.Equal(got.To) {
			t.Errorf("step %d over %v..%v, percentiles from %v", got.Step, got.From, got.To, got.Summary.PercentilesFrom)
		}
		checkMetrics(t, "hour sums", got, prev, nil, all, false)
		code, body = getMetrics(t, old, read, url.Values{"service": {"hm"}, "from": {pf.Format(time.RFC3339)}, "to": {pt.Format(time.RFC3339)}, "container": {"api"}})
		if code != http.StatusBadRequest || !strings.Contains(string(body), `"message":"bad filter"`) {
			t.Errorf("container filter past the raw retention: %d %s", code, body)
		}
		// A recent range with such a filter is answered; its week-earlier range is past the raw retention,
		// so there is no trend, and it says why.
		q := params("hm", from, to, nil)
		q.Set("container", "api")
		code, body = getMetrics(t, old, read, q)
		var recent query.MetricsReply
		if code != http.StatusOK || json.Unmarshal(body, &recent) != nil {
			t.Fatalf("%d %s", code, body)
		}
		if recent.Trend.Unavailable == "" {
			t.Error("no reason given for the missing trend")
		}
		checkMetrics(t, "container filter without a trend", recent, sent, nil, func(h hostHeader) bool { return h.cont == "api" }, true)
	})
	for _, bad := range []struct {
		q       url.Values
		message string
	}{
		{url.Values{"from": {from.Format(time.RFC3339)}}, "missing parameter"},
		{url.Values{"service": {"hm"}, "from": {"yesterday"}}, "bad from"},
		{url.Values{"service": {"hm"}, "from": {to.Format(time.RFC3339)}, "to": {from.Format(time.RFC3339)}}, "bad time range"},
	} {
		code, body := getMetrics(t, base, read, bad.q)
		var e struct{ Message string }
		if code != http.StatusBadRequest || json.Unmarshal(body, &e) != nil || e.Message != bad.message {
			t.Errorf("%v: %d %s, want 400 %q", bad.q, code, body, bad.message)
		}
	}
}
