package indexer

// Host metrics.
//
// Each profile's header carries the agent's metrics over the period (metrics.cpu_avg and mem_avg, in
// percent) and metadata.processors; the indexer stores them, one row per profile, in schema.HostMetrics,
// whose views sum them per hour and day.
//
// Exactly once: the row is inserted right AFTER the batch's samples, under a query id naming the batch
// (flamestream-metrics-<batch>), and never before. So
//   - a failed samples insert leaves no metrics row: the retry writes both;
//   - a failed metrics insert (or a crash between the two) leaves the profile in samples and not in
//     host_metrics; the retry's exactly-once guard finds the profile in samples and completeHostMetrics
//     writes the rows the guard's profiles miss, from the headers in hand;
//   - an insert of an earlier attempt still running is waited for like the samples insert (the guard's
//     waitEarlier matches the batch id in every flamestream- query id).
//
// Inserting the metrics first instead would have needed a second guard, on host_metrics, before the
// samples one (a retry after a failed samples insert would write them twice). The one case left where a
// row can be written twice is two indexers both checking and then completing the same profile within the
// same moment (the completion runs under the query id of a ledger batch of those profiles, which a later
// redelivery waits for, but two checks may still both come first): the hour and day sums and raw reads
// would count it twice, until the raw table (a ReplacingMergeTree keyed by profile) merges it away.

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/flamestream/flamestream/internal/profile"
	"github.com/flamestream/flamestream/internal/schema"
)

// hostSample is what a profile's header says about its host: ok is false when the header has no
// metrics (an old agent, or a profile from another front door), and then nothing is stored.
type hostSample struct {
	ok       bool
	cpu, mem float64
	cores    uint32
}

// hostSampleOf reads metrics.cpu_avg, metrics.mem_avg and metadata.processors from the header. Both
// metrics must be numbers; processors is 0 when absent or not a count. The header says which were there
// (Header.HasMetrics; CPUAvg is 0 both when the agent said 0 and when it said nothing), so the JSON is
// not decoded a second time.
func hostSampleOf(h *profile.Header) hostSample {
	if !h.HasMetrics {
		return hostSample{}
	}
	s := hostSample{ok: true, cpu: h.CPUAvg, mem: h.MemAvg}
	p := h.Processors
	if len(p) == 0 {
		return s
	}
	var n float64
	switch c := p[0]; {
	case c == '-' || c >= '0' && c <= '9':
		v, err := strconv.ParseFloat(string(p), 64)
		if err != nil {
			return hostSample{} // encoding/json refused such a number: the metrics were never read
		}
		n = v
	case c == '[' || c == '{':
		// A number float64 cannot hold anywhere inside made encoding/json refuse the whole header.
		var v any
		if json.Unmarshal(p, &v) != nil {
			return hostSample{}
		}
		return s
	default:
		return s // a string, true, false or null: no count
	}
	if n >= 1 && n <= 1<<20 && n == float64(uint32(n)) {
		s.cores = uint32(n)
	}
	return s
}

// hostRows are the columns of a host_metrics block.
type hostRows struct {
	ts                   proto.ColDateTime
	service, host, itype proto.ColStr
	profile              proto.ColUInt64
	cpu, mem             proto.ColFloat64
	cores                proto.ColUInt32
}

func (r *hostRows) reset() {
	r.ts.Reset()
	r.service.Reset()
	r.host.Reset()
	r.itype.Reset()
	r.profile.Reset()
	r.cpu.Reset()
	r.mem.Reset()
	r.cores.Reset()
}

// add appends it's row when its header had metrics.
func (r *hostRows) add(it *item) {
	if !it.host.ok {
		return
	}
	r.ts.Append(it.ev.Start.Truncate(time.Second)) // the samples' ts
	r.service.Append(it.ev.Service)
	r.host.Append(it.ev.Host)
	r.itype.Append(it.ev.InstanceType)
	r.profile.Append(it.id)
	r.cpu.Append(it.host.cpu)
	r.mem.Append(it.host.mem)
	r.cores.Append(it.host.cores)
}

func (r *hostRows) input() proto.Input {
	return proto.Input{{Name: "ts", Data: &r.ts}, {Name: "service", Data: &r.service}, {Name: "host", Data: &r.host},
		{Name: "instance_type", Data: &r.itype}, {Name: "profile", Data: &r.profile}, {Name: "cpu", Data: &r.cpu},
		{Name: "mem", Data: &r.mem}, {Name: "cores", Data: &r.cores}}
}

func metricsQueryID(b uint64) string { return queryIDPrefix + "metrics-" + batchHex(b) }

// insertHostMetrics writes r under batch b's metrics query id. Its error never reads as ClickHouse
// refusing the batch's data (the samples are in by then): the batch is retried whole, and the guard
// completes the rows.
func (ix *Indexer) insertHostMetrics(ctx context.Context, b uint64, r *hostRows) error {
	if r.profile.Rows() == 0 {
		return nil
	}
	if err := ix.db.InsertAs(ctx, metricsQueryID(b), schema.HostMetrics, r.input()); err != nil {
		return fmt.Errorf("insert host metrics: %v", err)
	}
	return nil
}

// completeHostMetrics writes the host metrics rows that the items, all found in samples by the guard,
// miss in host_metrics (an earlier attempt wrote their samples and failed before or during its metrics).
func (ix *Indexer) completeHostMetrics(ctx context.Context, items []*item) error {
	var with []*item
	for _, it := range items {
		if it.host.ok {
			with = append(with, it)
		}
	}
	if len(with) == 0 {
		return nil
	}
	have, err := ix.profilesIn(ctx, schema.HostMetrics, with)
	if err != nil {
		return fmt.Errorf("check host metrics: %w", err)
	}
	var r hostRows
	for _, it := range items {
		if !have[it.id] {
			have[it.id] = true // once, even if the batch holds the profile twice
			r.add(it)
		}
	}
	if r.profile.Rows() == 0 {
		return nil
	}
	// Named after a batch of the ledger that wrote these profiles' samples, the insert is what a redelivery
	// of them meanwhile waits for (waitEarlier), and the server refuses a second one under the same id
	// while it runs.
	b := newBatchID()
	if bs, err := ix.ledgerBatches(ctx, items); err == nil && len(bs) > 0 {
		b = bs[0].id
	}
	ix.log.Warn("host metrics completed: an earlier attempt wrote samples without them", "profiles", r.profile.Rows(), "batch", batchHex(b))
	return ix.insertHostMetrics(ctx, b, &r)
}
