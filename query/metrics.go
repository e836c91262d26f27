package query

// Host metrics: GET /api/v1/metrics.
//
// The agent reports, with every profile, its host's average CPU and memory use over the period (percent)
// and its core count; the indexer keeps one row per profile in schema.HostMetrics and hour and day sums in
// schema.HostMetricsHour and HostMetricsDay (see indexer/hostmetrics.go). Here:
//
//   - Within the raw retention, everything comes from the raw rows (one per profile, see rawMetricsSQL):
//     per bucket and over the range the exact average (sum/count), the
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
// Percentiles are ClickHouse's quantilesExact: the value at index floor(q·n) of the n sorted values.
//
// The runtime and process view (runtimes_off, process, process_not) cannot apply: an agent measures its
// host's CPU and memory for all processes and runtimes together. The reply names those parameters in
// ignored, and the UI says so, instead of ignoring them silently.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
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
	// Ignored names the parameters of the request that cannot apply to host metrics, so that a client
	// says so instead of showing numbers as if they did: the runtime and process view (runtimes_off,
	// process, process_not) reshapes stacks, while an agent measures CPU and memory per host, for all its
	// processes and runtimes together.
	Ignored []string `json:"ignored,omitempty"`
}

// stackShapeParams are the parameters of the runtime and process view (see stackShape).
var stackShapeParams = []string{"runtimes_off", "process", "process_not"}

// ownDims are the dimensions host_metrics rows carry; the others filter through the minute totals.
var ownDims = map[string]bool{"host": true, "instance_type": true}

// trendOffset is how far back the trend's range is.
const trendOffset = 7 * 24 * time.Hour

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) error {
	rd, err := s.startReading(w, r, func(*Selection) error {
		// Checked like everywhere else (a bad value is a 400 here too), then reported as ignored.
		_, err := parseStackShape(r.URL.Query())
		return err
	})
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
	for _, p := range stackShapeParams {
		if strings.Join(r.URL.Query()[p], "") != "" {
			out.Ignored = append(out.Ignored, p)
		}
	}
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

// rawRowsSQL selects cols from the selection's host metrics rows in [from, to).
func (s *Server) rawRowsSQL(sel Selection, from, to time.Time, cols string) string {
	q := "SELECT " + cols + " FROM " + s.ch.Table(schema.HostMetrics) + ownFilters(sel).Clauses("ts", from, to)
	if throughTotals(sel) {
		q += " AND (host, toStartOfMinute(ts)) GLOBAL IN (SELECT host, ts FROM " + s.ch.Table(schema.Totals1m) +
			sel.Clauses("ts", from.Truncate(time.Minute), to) + " GROUP BY host, ts)"
	}
	return q
}

// rawMetricsSQL selects the selection's host metrics in [from, to): mts (the profile's time), mhost, c (cpu)
// and m (mem), one row per profile as the indexer writes them (see indexer/hostmetrics.go).
//
// The rows are not collapsed by profile at read time: with that GROUP BY a 7-day range of 200 hosts (2M
// rows) took 10.7-29 s, without it 1.6-2.3 s (24 hours: 1.0-2.0 s → 0.15-0.23 s), on this project's
// 2-core machine under a load average near 20. The one way a row gets written
// twice, two indexers completing the same profile at the same moment, is as rare as for the hour and day
// sums, and ReplacingMergeTree merges the raw duplicate away.
func (s *Server) rawMetricsSQL(sel Selection, from, to time.Time) string {
	return "(" + s.rawRowsSQL(sel, from, to, "ts AS mts, host AS mhost, cpu AS c, mem AS m") + ")"
}

// rollupMetricsSQL selects the hour or day sums of the selection in the segment.
func (s *Server) rollupMetricsSQL(sel Selection, seg Segment) string {
	table := schema.HostMetricsHour
	if seg.Gran == Day {
		table = schema.HostMetricsDay
	}
	return "(SELECT ts, host, cpu_sum, mem_sum, n FROM " + s.ch.Table(table) + ownFilters(sel).Clauses("ts", seg.From, seg.To) + ")"
}

// statCols are the raw statistics of c and m, and their result columns. quantilesExact sorts the values
// once for the three levels (three quantileExact took twice as long). The sums are compensated (Kahan):
// a plain float sum depends on the order the server reads the rows in (734.4 on one server was
// 734.4000000000001 on another for the same rows).
const statCols = "count() AS n, sumKahan(c) AS cs, sumKahan(m) AS ms, " +
	"quantilesExact(0.5, 0.9, 0.99)(c) AS cq, max(c) AS cmax, quantilesExact(0.5, 0.9, 0.99)(m) AS mq, max(m) AS mmax"

type statResult struct {
	n          proto.ColUInt64
	cs, ms     proto.ColFloat64
	cq, mq     *proto.ColArr[float64]
	cmax, mmax proto.ColFloat64
}

func (r *statResult) results() proto.Results {
	r.cq, r.mq = proto.NewArray[float64](new(proto.ColFloat64)), proto.NewArray[float64](new(proto.ColFloat64))
	return proto.Results{{Name: "n", Data: &r.n}, {Name: "cs", Data: &r.cs}, {Name: "ms", Data: &r.ms},
		{Name: "cq", Data: r.cq}, {Name: "cmax", Data: &r.cmax}, {Name: "mq", Data: r.mq}, {Name: "mmax", Data: &r.mmax}}
}

// stats returns row i's statistics; the averages are set by the caller, who may add rollup sums.
func (r *statResult) stats(i int) (cpu, mem MetricStats) {
	f := func(v float64) *float64 { return &v }
	of := func(q []float64, max float64) MetricStats {
		if len(q) != 3 {
			return MetricStats{Max: f(max)}
		}
		return MetricStats{P50: f(q[0]), P90: f(q[1]), P99: f(q[2]), Max: f(max)}
	}
	return of(r.cq.Row(i), r.cmax[i]), of(r.mq.Row(i), r.mmax[i])
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
	bucket := func(ts string) string {
		return fmt.Sprintf("toInt64(intDiv(toUInt32(%s), %d) * %d) AS t", ts, step, step)
	}
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
			Body:   "SELECT " + bucket("mts") + ", uniqExact(mhost) AS hosts, " + statCols + " FROM " + s.rawMetricsSQL(sel, rest, sel.To) + " GROUP BY t",
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
			Body: "SELECT " + bucket("ts") + ", uniqExact(host) AS hosts, sum(n) AS n, sum(cpu_sum) AS cs, sum(mem_sum) AS ms FROM " +
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
	// Hosts and cores: each host's largest core count (0 where only sums are kept), summed.
	var hostParts []string
	if rest.Before(sel.To) {
		raw := s.rawMetricsSQL(sel, rest, sel.To)
		hostParts = append(hostParts, s.rawRowsSQL(sel, rest, sel.To, "host, cores"))
		var st statResult
		err := s.ch.DoLimited(ctx, s.limits(), ch.Query{
			Body:   "SELECT " + statCols + " FROM " + raw,
			Result: st.results(),
			OnResult: func(ctx context.Context, _ proto.Block) error {
				for i := range st.n.Rows() {
					if st.n[i] == 0 {
						continue // no rows: ClickHouse's statistics of nothing are not numbers to show
					}
					out.CPU, out.Mem = st.stats(i)
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
		hostParts = append(hostParts, "SELECT host, toUInt32(0) AS cores FROM "+src)
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
	var hosts, cores proto.ColUInt64
	err := s.ch.DoLimited(ctx, s.limits(), ch.Query{
		Body:   "SELECT uniqExact(host) AS hosts, toUInt64(sum(k)) AS cores FROM (SELECT host, max(cores) AS k FROM (" + union + ") GROUP BY host)",
		Result: proto.Results{{Name: "hosts", Data: &hosts}, {Name: "cores", Data: &cores}},
	})
	if err != nil {
		return out, fmt.Errorf("metrics hosts: %w", err)
	}
	if len(hosts) == 1 {
		out.Hosts, out.Cores = hosts[0], cores[0]
	}
	return out, nil
}
