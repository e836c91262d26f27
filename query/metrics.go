package query

// Host metrics: GET /api/v1/metrics.
//
// The agent reports, with every profile, its host's average CPU and memory use over the period (percent)
// and its core count; the indexer keeps one row per profile in schema.HostMetrics and hour and day sums in
// schema.HostMetricsHour and HostMetricsDay (see indexer/hostmetrics.go). Here:
//
//   - Within the raw retention, everything comes from the raw rows, collapsed by profile (a row the indexer
//     wrote twice counts once): per bucket and over the range the exact average (sum/count), the
//     percentiles and the maximum, the hosts, and the cores (the sum over hosts of each host's core count).
//   - Past the raw retention (the janitor dropped the raw rows), the hour and day sums give the averages
//     and the hosts of whole buckets, exactly; percentiles, maxima and cores are then over the raw part only
//     (summary.percentiles_from says where it starts), and those buckets carry averages only.
//
// Filters apply as to the flame graph: host and instance_type on the metrics' own columns; container and
// k8s_object through the minute totals, keeping the minutes of each host whose samples match (a host's
// metrics are the host's, whichever containers ran). The minute totals are raw-retention data, so such a
// filter over a range past the raw retention is a 400.
//
// Percentiles are ClickHouse's quantileExact: the value at index floor(q·n) of the n sorted values.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/flamestream/flamestream/internal/schema"
)

// MetricStats are the statistics of one metric (percent) over a bucket or a range. The percentiles and
// the maximum are absent where only the hour and day sums are left.
type MetricStats struct {
	Avg float64  `json:"avg"`
	P50 *float64 `json:"p50,omitempty"`
	P90 *float64 `json:"p90,omitempty"`
	P99 *float64 `json:"p99,omitempty"`
	Max *float64 `json:"max,omitempty"`
}

// MetricsBucket is one bucket of the series: its start (unix seconds), the profiles that reported
// metrics in it and their hosts, and the CPU and memory statistics.
type MetricsBucket struct {
	T        int64       `json:"t"`
	Profiles uint64      `json:"profiles"`
	Hosts    uint64      `json:"hosts"`
	CPU      MetricStats `json:"cpu"`
	Mem      MetricStats `json:"mem"`
}

// MetricsSummary is the whole range: profiles, distinct hosts, their cores (each host's largest reported
// core count, summed; raw part only) and the statistics.
type MetricsSummary struct {
	Profiles uint64      `json:"profiles"`
	Hosts    uint64      `json:"hosts"`
	Cores    uint64      `json:"cores"`
	CPU      MetricStats `json:"cpu"`
	Mem      MetricStats `json:"mem"`
	// PercentilesFrom is where the raw rows, which percentiles, maxima and cores come from, start (the
	// range's start unless it reaches past the raw retention).
	PercentilesFrom time.Time `json:"percentiles_from"`
}

// MetricsTrend compares the range's averages with the same range a week earlier: Previous is that range's
// summary, CPU and Mem the differences of the averages in percentage points (absent when either range has
// no metrics). Unavailable says why there is no trend when the previous range cannot be read with the
// selection's filters (then Previous is empty).
type MetricsTrend struct {
	From        time.Time      `json:"from"`
	To          time.Time      `json:"to"`
	Previous    MetricsSummary `json:"previous"`
	CPU         *float64       `json:"cpu"`
	Mem         *float64       `json:"mem"`
	Unavailable string         `json:"unavailable,omitempty"`
}

// MetricsReply is the reply of GET /api/v1/metrics.
type MetricsReply struct {
	From    time.Time       `json:"from"`
	To      time.Time       `json:"to"`
	Step    int64           `json:"step"`
	Series  []MetricsBucket `json:"series"`
	Summary MetricsSummary  `json:"summary"`
	Trend   MetricsTrend    `json:"trend"`
}

// ownDims are the dimensions host_metrics rows carry; the others filter through the minute totals.
var ownDims = map[string]bool{"host": true, "instance_type": true}

// trendOffset is how far back the trend's range is.
const trendOffset = 7 * 24 * time.Hour

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) error {
	rd, err := s.startReading(w, r, nil)
	if err != nil {
		return err
	}
	defer rd.cancel()
	sel := rd.sel
	step := timelineStep(sel.To.Sub(sel.From))
	old, _ := rd.rollups.PastRaw(sel.From, sel.To)
	for _, seg := range old {
		switch {
		case seg.Gran == Day && step < 86400:
			step = 86400
		case seg.Gran == Hour && step < 3600:
			step = 3600
		}
	}
	prev := sel
	prev.From, prev.To = sel.From.Add(-trendOffset), sel.To.Add(-trendOffset)
	rd.widen(w, &prev, "Trend-")
	if o, _ := rd.rollups.PastRaw(sel.From, sel.To); len(o) > 0 && throughTotals(sel) {
		return badRequest("bad filter", errors.New("container and k8s_object filters apply to host metrics within the raw retention only"))
	}
	// The week before may be past the raw retention when the range is not: such a filter has no trend.
	prevOld, _ := rd.rollups.PastRaw(prev.From, prev.To)
	noTrend := len(prevOld) > 0 && throughTotals(sel)
	out := MetricsReply{From: sel.From, To: sel.To, Step: step, Series: []MetricsBucket{}}
	if out.Series, err = s.metricsSeries(rd.ctx, rd, sel, step); err != nil {
		return err
	}
	if out.Summary, err = s.metricsSummary(rd.ctx, rd, sel); err != nil {
		return err
	}
	out.Trend = MetricsTrend{From: prev.From, To: prev.To}
	if noTrend {
		out.Trend.Unavailable = "container and k8s_object filters apply to host metrics within the raw retention only"
	} else if out.Trend.Previous, err = s.metricsSummary(rd.ctx, rd, prev); err != nil {
		return err
	}
	if out.Summary.Profiles > 0 && out.Trend.Previous.Profiles > 0 {
		c, m := out.Summary.CPU.Avg-out.Trend.Previous.CPU.Avg, out.Summary.Mem.Avg-out.Trend.Previous.Mem.Avg
		out.Trend.CPU, out.Trend.Mem = &c, &m
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// throughTotals reports whether the selection filters on a dimension host_metrics does not carry.
func throughTotals(sel Selection) bool {
	for _, m := range []map[string][]string{sel.Include, sel.Exclude} {
		for d := range m {
			if !ownDims[d] {
				return true
			}
		}
	}
	return false
}

// ownFilters is the selection with only the filters host_metrics rows carry.
func ownFilters(sel Selection) Selection {
	own := Selection{Service: sel.Service, From: sel.From, To: sel.To, Include: map[string][]string{}, Exclude: map[string][]string{}}
	for d, vs := range sel.Include {
		if ownDims[d] {
			own.Include[d] = vs
		}
	}
	for d, vs := range sel.Exclude {
		if ownDims[d] {
			own.Exclude[d] = vs
		}
	}
	return own
}

// rawMetricsSQL selects the selection's host metrics rows in [from, to), one per profile: ts, host, c (cpu),
// m (mem) and k (cores).
func (s *Server) rawMetricsSQL(sel Selection, from, to time.Time) string {
	q := "SELECT ts, host, profile, any(cpu) AS c, any(mem) AS m, any(cores) AS k FROM " + s.ch.Table(schema.HostMetrics) +
		ownFilters(sel).Clauses("ts", from, to)
	if throughTotals(sel) {
		q += " AND (host, toStartOfMinute(ts)) GLOBAL IN (SELECT host, ts FROM " + s.ch.Table(schema.Totals1m) +
			sel.Clauses("ts", from.Truncate(time.Minute), to) + " GROUP BY host, ts)"
	}
	return "(" + q + " GROUP BY ts, host, profile)"
}

// rollupMetricsSQL selects the hour or day sums of the selection in the segment.
func (s *Server) rollupMetricsSQL(sel Selection, seg Segment) string {
	table := schema.HostMetricsHour
	if seg.Gran == Day {
		table = schema.HostMetricsDay
	}
	return "(SELECT ts, host, cpu_sum, mem_sum, n FROM " + s.ch.Table(table) + ownFilters(sel).Clauses("ts", seg.From, seg.To) + ")"
}

// statCols are the raw statistics of c and m, and their result columns.
const statCols = "count() AS n, sum(c) AS cs, sum(m) AS ms, " +
	"quantileExact(0.5)(c) AS c50, quantileExact(0.9)(c) AS c90, quantileExact(0.99)(c) AS c99, max(c) AS cmax, " +
	"quantileExact(0.5)(m) AS m50, quantileExact(0.9)(m) AS m90, quantileExact(0.99)(m) AS m99, max(m) AS mmax"

type statResult struct {
	n                   proto.ColUInt64
	cs, ms              proto.ColFloat64
	c50, c90, c99, cmax proto.ColFloat64
	m50, m90, m99, mmax proto.ColFloat64
}

func (r *statResult) results() proto.Results {
	return proto.Results{{Name: "n", Data: &r.n}, {Name: "cs", Data: &r.cs}, {Name: "ms", Data: &r.ms},
		{Name: "c50", Data: &r.c50}, {Name: "c90", Data: &r.c90}, {Name: "c99", Data: &r.c99}, {Name: "cmax", Data: &r.cmax},
		{Name: "m50", Data: &r.m50}, {Name: "m90", Data: &r.m90}, {Name: "m99", Data: &r.m99}, {Name: "mmax", Data: &r.mmax}}
}

// stats returns row i's statistics; the averages are set by the caller, who may add rollup sums.
func (r *statResult) stats(i int) (cpu, mem MetricStats) {
	f := func(v float64) *float64 { return &v }
	cpu = MetricStats{P50: f(r.c50[i]), P90: f(r.c90[i]), P99: f(r.c99[i]), Max: f(r.cmax[i])}
	mem = MetricStats{P50: f(r.m50[i]), P90: f(r.m90[i]), P99: f(r.m99[i]), Max: f(r.mmax[i])}
	return cpu, mem
}

// metricSums accumulates exact averages: sums and counts.
type metricSums struct {
	n        uint64
	cpu, mem float64
}

func (s metricSums) avg() (cpu, mem float64) {
	if s.n == 0 {
		return 0, 0
	}
	return s.cpu / float64(s.n), s.mem / float64(s.n)
}

// metricsSeries returns the buckets of step seconds (aligned on multiples of step, as the timeline's) that
// hold metrics, in time order.
func (s *Server) metricsSeries(ctx context.Context, rd *reading, sel Selection, step int64) ([]MetricsBucket, error) {
	old, rest := rd.rollups.PastRaw(sel.From, sel.To)
	byT := map[int64]*MetricsBucket{}
	sum := map[int64]*metricSums{}
	bucket := fmt.Sprintf("toInt64(intDiv(toUInt32(ts), %d) * %d) AS t", step, step)
	get := func(t int64) (*MetricsBucket, *metricSums) {
		if byT[t] == nil {
			byT[t], sum[t] = &MetricsBucket{T: t}, &metricSums{}
		}
		return byT[t], sum[t]
	}
	if rest.Before(sel.To) {
		var t proto.ColInt64
		var hosts proto.ColUInt64
		var st statResult
		res := append(proto.Results{{Name: "t", Data: &t}, {Name: "hosts", Data: &hosts}}, st.results()...)
		err := s.ch.DoLimited(ctx, s.limits(), ch.Query{
			Body:   "SELECT " + bucket + ", uniqExact(host) AS hosts, " + statCols + " FROM " + s.rawMetricsSQL(sel, rest, sel.To) + " GROUP BY t",
			Result: res,
			OnResult: func(ctx context.Context, _ proto.Block) error {
				for i := range t.Rows() {
					b, sm := get(t[i])
					b.Hosts += hosts[i]
					b.CPU, b.Mem = st.stats(i)
					sm.n, sm.cpu, sm.mem = sm.n+st.n[i], sm.cpu+st.cs[i], sm.mem+st.ms[i]
				}
				return nil
			},
		})
		if err != nil {
			return nil, fmt.Errorf("metrics series: %w", err)
		}
	}
	for _, seg := range old {
		// Past the raw retention the step is whole hours or days: a bucket is in one segment only.
		var t proto.ColInt64
		var hosts, n proto.ColUInt64
		var cs, ms proto.ColFloat64
		err := s.ch.DoLimited(ctx, s.limits(), ch.Query{
			Body: "SELECT " + bucket + ", uniqExact(host) AS hosts, sum(n) AS n, sum(cpu_sum) AS cs, sum(mem_sum) AS ms FROM " +
				s.rollupMetricsSQL(sel, seg) + " GROUP BY t",
			Result: proto.Results{{Name: "t", Data: &t}, {Name: "hosts", Data: &hosts}, {Name: "n", Data: &n},
				{Name: "cs", Data: &cs}, {Name: "ms", Data: &ms}},
			OnResult: func(ctx context.Context, _ proto.Block) error {
				for i := range t.Rows() {
					b, sm := get(t[i])
					b.Hosts = max(b.Hosts, hosts[i])
					sm.n, sm.cpu, sm.mem = sm.n+n[i], sm.cpu+cs[i], sm.mem+ms[i]
				}
				return nil
			},
		})
		if err != nil {
			return nil, fmt.Errorf("metrics series (%s sums): %w", seg.Gran, err)
		}
	}
	out := make([]MetricsBucket, 0, len(byT))
	for t, b := range byT {
		b.Profiles = sum[t].n
		b.CPU.Avg, b.Mem.Avg = sum[t].avg()
		out = append(out, *b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].T < out[j].T })
	return out, nil
}

// metricsSummary returns the statistics of the whole selection.
func (s *Server) metricsSummary(ctx context.Context, rd *reading, sel Selection) (MetricsSummary, error) {
	old, rest := rd.rollups.PastRaw(sel.From, sel.To)
	out := MetricsSummary{PercentilesFrom: rest}
	var total metricSums
	var hostParts []string
	if rest.Before(sel.To) {
		raw := s.rawMetricsSQL(sel, rest, sel.To)
		hostParts = append(hostParts, "SELECT host FROM "+raw)
		var st statResult
		var cores proto.ColUInt64
		err := s.ch.DoLimited(ctx, s.limits(), ch.Query{
			Body:   "SELECT " + statCols + ", (SELECT toUInt64(sum(k)) FROM (SELECT host, max(k) AS k FROM " + raw + " GROUP BY host)) AS cores FROM " + raw,
			Result: append(st.results(), proto.ResultColumn{Name: "cores", Data: &cores}),
			OnResult: func(ctx context.Context, _ proto.Block) error {
				for i := range st.n.Rows() {
					if st.n[i] == 0 {
						continue // no rows: ClickHouse's statistics of nothing are not numbers to show
					}
					out.CPU, out.Mem = st.stats(i)
					out.Cores = cores[i]
					total = metricSums{total.n + st.n[i], total.cpu + st.cs[i], total.mem + st.ms[i]}
				}
				return nil
			},
		})
		if err != nil {
			return out, fmt.Errorf("metrics summary: %w", err)
		}
	}
	for _, seg := range old {
		src := s.rollupMetricsSQL(sel, seg)
		hostParts = append(hostParts, "SELECT host FROM "+src)
		var n proto.ColUInt64
		var cs, ms proto.ColFloat64
		err := s.ch.DoLimited(ctx, s.limits(), ch.Query{
			Body:   "SELECT toUInt64(sum(n)) AS n, sum(cpu_sum) AS cs, sum(mem_sum) AS ms FROM " + src,
			Result: proto.Results{{Name: "n", Data: &n}, {Name: "cs", Data: &cs}, {Name: "ms", Data: &ms}},
			OnResult: func(ctx context.Context, _ proto.Block) error {
				for i := range n.Rows() {
					total = metricSums{total.n + n[i], total.cpu + cs[i], total.mem + ms[i]}
				}
				return nil
			},
		})
		if err != nil {
			return out, fmt.Errorf("metrics summary (%s sums): %w", seg.Gran, err)
		}
	}
	out.Profiles = total.n
	out.CPU.Avg, out.Mem.Avg = total.avg()
	if total.n == 0 {
		return out, nil
	}
	union := hostParts[0]
	for _, p := range hostParts[1:] {
		union += " UNION ALL " + p
	}
	var hosts proto.ColUInt64
	err := s.ch.DoLimited(ctx, s.limits(), ch.Query{
		Body:   "SELECT uniqExact(host) AS hosts FROM (" + union + ")",
		Result: proto.Results{{Name: "hosts", Data: &hosts}},
	})
	if err != nil {
		return out, fmt.Errorf("metrics hosts: %w", err)
	}
	if len(hosts) == 1 {
		out.Hosts = hosts[0]
	}
	return out, nil
}
