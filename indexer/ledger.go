package indexer

// Exact rollups.
//
// The rollups are written by materialized views inside the INSERT into samples. ClickHouse writes the
// samples part first and then each view's part, not atomically: a server killed in between, or a view
// failing, leaves the profiles in samples and missing from some rollups, and the exactly-once guard, which
// looks at samples, then skips them on the retry. The soak measured it: 2,153 of 27,252,712 samples missing
// from four rollups after one kill of ClickHouse.
//
// So every write is a numbered batch (an unpredictable 64-bit id):
//
//  1. The batch ledger (schema.Batches) gets one row per profile: (ts, service, batch, profile).
//  2. The INSERT into samples carries one marker row next to the profiles' rows: service schema.MarkerService,
//     host the batch id in hex, stack the batch id, count 1. Every view aggregates it into its own part, so
//     a table holds the marker exactly when it holds the batch's rows, because a part is written whole or
//     not at all. For that, one batch is one part per table: its profiles share one day of the server's
//     clock (every table is partitioned by day or month) and it holds at most maxBatchRows rows (a view's
//     output then stays one block, below min_insert_block_size_rows).
//
// When the guard finds a profile already in samples, it looks up the batches that wrote it in the ledger.
// For each batch whose marker is in samples (so its rows are), every rollup missing the marker gets the
// batch's rows again, aggregated from samples exactly as its view does, together with the marker, as one
// block: one part again. Before that, and before deciding that a redelivered profile is not in samples,
// the guard waits until no insert of an earlier attempt is still running on the server (they run under
// query ids naming the batch), and a repair is claimed in a NATS key-value bucket, so that two indexers
// never repair the same batch twice.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/schema"
)

const (
	// maxBatchRows bounds the sample rows of one batch (a single larger profile is one batch of its own).
	maxBatchRows = 500_000
	// queryIDPrefix starts the query id of every insert of a batch and of every repair.
	queryIDPrefix = "flamestream-"
	// repairBucket is the NATS key-value bucket of repair claims; a claim lapses after repairClaimTTL, so a
	// repairer that died releases its claim.
	repairBucket   = "flamestream_repairs"
	repairClaimTTL = 2 * time.Minute
)

// markedTables are samples and the rollups: every table a batch leaves a marker in.
func markedTables() []schema.Rollup {
	return append([]schema.Rollup{{Table: schema.Samples, Dims: true, Stack: true}}, schema.Rollups...)
}

func newBatchID() uint64 {
	for {
		if b := rand.Uint64(); b != 0 {
			return b
		}
	}
}

func batchHex(b uint64) string { return fmt.Sprintf("%016x", b) }

func batchQueryID(b uint64) string { return queryIDPrefix + "batch-" + batchHex(b) }

func repairQueryID(b uint64, table string) string {
	return queryIDPrefix + "repair-" + batchHex(b) + "-" + table
}

// errEarlierRunning says that an insert of an earlier attempt at some of the batch's profiles is still
// running on the server: the batch waits for it (it is retried like a server that is down).
var errEarlierRunning = errors.New("an earlier insert of these profiles is still running on ClickHouse")

// errRepairClaimed says that another indexer is repairing a batch's rollups right now.
var errRepairClaimed = errors.New("another indexer is completing the rollups of an earlier batch")

// days groups the items by the day of the server's clock their start falls in, in time order, and cuts
// each day into batches of at most maxBatchRows sample rows.
func (ix *Indexer) days(ctx context.Context, items []*item) ([][]*item, error) {
	loc, err := ix.serverLocation(ctx)
	if err != nil {
		return nil, err
	}
	byDay := map[time.Time][]*item{}
	for _, it := range items {
		d := dayStart(it.ev.Start, loc)
		byDay[d] = append(byDay[d], it)
	}
	order := make([]time.Time, 0, len(byDay))
	for d := range byDay {
		order = append(order, d)
	}
	slices.SortFunc(order, func(a, b time.Time) int { return a.Compare(b) })
	var out [][]*item
	for _, d := range order {
		var cur []*item
		rows := 0
		for _, it := range byDay[d] {
			n := len(it.agg.Entries())
			if len(cur) > 0 && rows+n > maxBatchRows {
				out = append(out, cur)
				cur, rows = nil, 0
			}
			cur = append(cur, it)
			rows += n
		}
		out = append(out, cur)
	}
	return out, nil
}

// dayStart is the start of t's day in loc.
func dayStart(t time.Time, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, loc)
}

// serverLocation is the time zone of the ClickHouse server, which its partitions and day buckets follow,
// asked once.
func (ix *Indexer) serverLocation(ctx context.Context) (*time.Location, error) {
	ix.tzMu.Lock()
	defer ix.tzMu.Unlock()
	if ix.tz != nil {
		return ix.tz, nil
	}
	var name proto.ColStr
	err := ix.db.Do(ctx, ch.Query{Body: "SELECT timezone() AS tz", Result: proto.Results{{Name: "tz", Data: &name}}})
	if err != nil {
		return nil, fmt.Errorf("read the server's time zone: %w", err)
	}
	if name.Rows() != 1 {
		return nil, fmt.Errorf("read the server's time zone: %d rows", name.Rows())
	}
	loc, err := time.LoadLocation(name.Row(0))
	if err != nil {
		// Without the zone database the server's days cannot be told: UTC is what deployments use.
		ix.log.Warn("unknown ClickHouse time zone, batches follow UTC days", "tz", name.Row(0), "err", err)
		loc = time.UTC
	}
	ix.tz = loc
	return loc, nil
}

// ledgerBatch is a batch found in the ledger and the day its profiles start in.
type ledgerBatch struct {
	id  uint64
	day time.Time
}

// ledgerBatches returns the batches that wrote (or tried to write) the items' profiles.
func (ix *Indexer) ledgerBatches(ctx context.Context, items []*item) ([]ledgerBatch, error) {
	ids := make(proto.ColUInt64, 0, len(items))
	lo, hi := items[0].ev.Start, items[0].ev.Start
	for _, it := range items {
		ids = append(ids, it.id)
		lo, hi = minTime(lo, it.ev.Start), maxTime(hi, it.ev.Start)
	}
	var batch proto.ColUInt64
	var first proto.ColDateTime
	var out []ledgerBatch
	loc, err := ix.serverLocation(ctx)
	if err != nil {
		return nil, err
	}
	err = ix.db.Do(ctx, ch.Query{
		Body: "SELECT batch, min(ts) AS first FROM " + ix.db.Table(schema.Batches) +
			" WHERE ts >= " + chdb.Time(lo.Add(-time.Second)) + " AND ts <= " + chdb.Time(hi.Add(time.Second)) +
			" AND profile GLOBAL IN (SELECT id FROM _ids) GROUP BY batch",
		ExternalTables: []ch.ExternalTable{{Name: "_ids", Data: proto.Input{{Name: "id", Data: &ids}}}},
		Result:         proto.Results{{Name: "batch", Data: &batch}, {Name: "first", Data: &first}},
		OnResult: func(ctx context.Context, b proto.Block) error {
			for i := range batch.Rows() {
				out = append(out, ledgerBatch{id: batch[i], day: dayStart(first.Row(i), loc)})
			}
			return nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("read batch ledger: %w", err)
	}
	return out, nil
}

// running returns which of the batches have an insert or a repair still running on the server.
func (ix *Indexer) running(ctx context.Context, batches []ledgerBatch) (map[uint64]bool, error) {
	want := map[string]uint64{}
	for _, b := range batches {
		want[batchHex(b.id)] = b.id
	}
	var qid proto.ColStr
	out := map[uint64]bool{}
	err := ix.db.Do(ctx, ch.Query{
		Body:   "SELECT query_id FROM system.processes WHERE startsWith(query_id, " + chdb.String(queryIDPrefix) + ")",
		Result: proto.Results{{Name: "query_id", Data: &qid}},
		OnResult: func(ctx context.Context, b proto.Block) error {
			for i := range qid.Rows() {
				// flamestream-batch-<hex> or flamestream-repair-<hex>-<table>
				parts := strings.SplitN(strings.TrimPrefix(qid.Row(i), queryIDPrefix), "-", 3)
				if len(parts) >= 2 {
					if id, ok := want[parts[1]]; ok {
						out[id] = true
					}
				}
			}
			return nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("check running inserts: %w", err)
	}
	return out, nil
}

// waitEarlier fails with errEarlierRunning while an earlier attempt at the items' profiles is still
// being written by the server: deciding now that a profile is missing could write it twice.
func (ix *Indexer) waitEarlier(ctx context.Context, items []*item) error {
	batches, err := ix.ledgerBatches(ctx, items)
	if err != nil || len(batches) == 0 {
		return err
	}
	run, err := ix.running(ctx, batches)
	if err != nil {
		return err
	}
	if len(run) > 0 {
		return errEarlierRunning
	}
	return nil
}

// markers returns, per table, which of the batches' markers it holds.
func (ix *Indexer) markers(ctx context.Context, batches []ledgerBatch, tables []schema.Rollup) (map[string]map[uint64]bool, error) {
	lo, hi := batches[0].day, batches[0].day
	ids := make(proto.ColUInt64, 0, len(batches))
	hexes := new(proto.ColStr)
	for _, b := range batches {
		ids = append(ids, b.id)
		hexes.Append(batchHex(b.id))
		lo, hi = minTime(lo, b.day), maxTime(hi, b.day)
	}
	hi = hi.AddDate(0, 0, 1)
	out := map[string]map[uint64]bool{}
	for _, t := range tables {
		found := map[uint64]bool{}
		out[t.Table] = found
		where := " WHERE service = " + chdb.String(schema.MarkerService) + " AND ts >= " + chdb.Time(lo) + " AND ts < " + chdb.Time(hi)
		var q ch.Query
		if t.Stack {
			var col proto.ColUInt64
			q = ch.Query{
				Body:           "SELECT DISTINCT stack FROM " + ix.db.Table(t.Table) + where + " AND stack GLOBAL IN (SELECT id FROM _b)",
				ExternalTables: []ch.ExternalTable{{Name: "_b", Data: proto.Input{{Name: "id", Data: &ids}}}},
				Result:         proto.Results{{Name: "stack", Data: &col}},
				OnResult: func(ctx context.Context, b proto.Block) error {
					for _, v := range col {
						found[v] = true
					}
					return nil
				},
			}
		} else {
			var col proto.ColStr
			q = ch.Query{
				Body:           "SELECT DISTINCT host FROM " + ix.db.Table(t.Table) + where + " AND host GLOBAL IN (SELECT h FROM _b)",
				ExternalTables: []ch.ExternalTable{{Name: "_b", Data: proto.Input{{Name: "h", Data: hexes}}}},
				Result:         proto.Results{{Name: "host", Data: &col}},
				OnResult: func(ctx context.Context, b proto.Block) error {
					for i := range col.Rows() {
						for _, bt := range batches {
							if batchHex(bt.id) == col.Row(i) {
								found[bt.id] = true
							}
						}
					}
					return nil
				},
			}
		}
		if err := ix.db.Do(ctx, q); err != nil {
			return nil, fmt.Errorf("read batch markers of %s: %w", t.Table, err)
		}
	}
	return out, nil
}

// completeRollups makes sure that every batch that wrote one of the items' profiles into samples is in
// every rollup too, writing what a view missed.
func (ix *Indexer) completeRollups(ctx context.Context, items []*item) error {
	batches, err := ix.ledgerBatches(ctx, items)
	if err != nil || len(batches) == 0 {
		return err
	}
	have, err := ix.markers(ctx, batches, markedTables())
	if err != nil {
		return err
	}
	for _, b := range batches {
		if !have[schema.Samples][b.id] {
			continue // the batch never reached samples: its profiles were written by another one
		}
		for _, t := range schema.Rollups {
			if have[t.Table][b.id] {
				continue
			}
			if err := ix.repair(ctx, b, t); err != nil {
				return err
			}
		}
	}
	return nil
}

// repair writes batch b's rows into rollup t, which misses them: aggregated from samples as t's view
// does, with the batch's marker, as one block.
func (ix *Indexer) repair(ctx context.Context, b ledgerBatch, t schema.Rollup) error {
	ix.repairMu.Lock()
	defer ix.repairMu.Unlock()
	release, err := ix.claimRepair(ctx, b.id, t.Table)
	if err != nil {
		return err
	}
	// Let go as soon as this attempt ends, done or not: a repair still running on the server is seen in
	// system.processes by the next one, and a marker written by this one ends the question.
	defer release()
	// Checked again under the claim: another indexer may have repaired it meanwhile.
	have, err := ix.markers(ctx, []ledgerBatch{b}, []schema.Rollup{t})
	if err != nil {
		return err
	}
	if have[t.Table][b.id] {
		return nil
	}
	run, err := ix.running(ctx, []ledgerBatch{b})
	if err != nil {
		return err
	}
	if run[b.id] {
		return errEarlierRunning
	}
	d0, d1 := chdb.Time(b.day), chdb.Time(b.day.AddDate(0, 0, 1))
	inDay := " AND ts >= " + d0 + " AND ts < " + d1
	samples := "SELECT ts, service, " + schema.DimColumns + ", stack, count FROM " + ix.db.Table(schema.Samples) + " WHERE "
	ledger := func(col string) string {
		return " GLOBAL IN (SELECT " + col + " FROM " + ix.db.Table(schema.Batches) + " WHERE batch = " + chdb.Uint(b.id) + inDay + ")"
	}
	var acc, got rollupRows
	for _, src := range []string{
		// The batch's rows, found by its profiles (a profile is in samples once: the guard).
		samples + "service" + ledger("service") + inDay + " AND profile" + ledger("profile"),
		// Its marker, aggregated the same way.
		samples + "service = " + chdb.String(schema.MarkerService) + " AND host = " + chdb.String(batchHex(b.id)) + inDay +
			" AND stack = " + chdb.Uint(b.id),
	} {
		err := ix.db.Do(ctx, ch.Query{
			Body:   t.Query("(" + src + ")"),
			Result: got.results(t),
			OnResult: func(ctx context.Context, _ proto.Block) error {
				acc.appendFrom(&got, t)
				return nil
			},
		})
		if err != nil {
			return fmt.Errorf("read batch %s for %s: %w", batchHex(b.id), t.Table, err)
		}
	}
	if acc.count.Rows() == 0 {
		return fmt.Errorf("batch %s: no rows in samples to complete %s with", batchHex(b.id), t.Table)
	}
	if err := ix.db.InsertAs(ctx, repairQueryID(b.id, t.Table), t.Table, acc.input(t)); err != nil {
		return fmt.Errorf("complete %s with batch %s: %w", t.Table, batchHex(b.id), err)
	}
	var total uint64
	for _, c := range acc.count {
		total += c
	}
	ix.metrics.repairs.Inc()
	ix.log.Warn("rollup completed: a view had missed a batch", "table", t.Table, "batch", batchHex(b.id),
		"rows", acc.count.Rows(), schema.Samples, total-1)
	return nil
}

// claimRepair claims the repair of batch b's rows in table for this indexer, and returns the function
// that lets the claim go. A claim left by an indexer that died lapses after repairClaimTTL.
func (ix *Indexer) claimRepair(ctx context.Context, b uint64, table string) (release func(), err error) {
	if ix.js == nil {
		return func() {}, nil // a lone indexer (tests): repairMu is enough
	}
	ix.claimMu.Lock()
	kv := ix.claims
	ix.claimMu.Unlock()
	if kv == nil {
		kv, err = ix.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: repairBucket,
			Description: "flamestream: which indexer completes which batch's rollups", TTL: repairClaimTTL, History: 1})
		if err != nil {
			return nil, fmt.Errorf("open repair claims: %w", err)
		}
		ix.claimMu.Lock()
		ix.claims = kv
		ix.claimMu.Unlock()
	}
	return claimKey(ctx, kv, batchHex(b)+"."+table, errRepairClaimed, "claim repair")
}

// claimKey creates key in the claims bucket kv and returns its release; busy when another holds it. On a
// failed release the claim lapses with the bucket's TTL.
func claimKey(ctx context.Context, kv jetstream.KeyValue, key string, busy error, what string) (release func(), err error) {
	_, err = kv.Create(ctx, key, nil)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil, busy
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = kv.Delete(dctx, key)
	}, nil
}

// rollupRows are the columns of a rollup block; a shape uses some of them.
type rollupRows struct {
	ts                                      proto.ColDateTime
	service, host, container, itype, k8sObj proto.ColStr
	stack, count                            proto.ColUInt64
}

func (r *rollupRows) named(t schema.Rollup) []proto.InputColumn {
	cols := []proto.InputColumn{{Name: "ts", Data: &r.ts}, {Name: "service", Data: &r.service}}
	if t.Dims {
		cols = append(cols, proto.InputColumn{Name: "host", Data: &r.host}, proto.InputColumn{Name: "container", Data: &r.container},
			proto.InputColumn{Name: "instance_type", Data: &r.itype}, proto.InputColumn{Name: "k8s_object", Data: &r.k8sObj})
	}
	if t.Stack {
		cols = append(cols, proto.InputColumn{Name: "stack", Data: &r.stack})
	}
	return append(cols, proto.InputColumn{Name: "count", Data: &r.count})
}

func (r *rollupRows) input(t schema.Rollup) proto.Input { return proto.Input(r.named(t)) }

func (r *rollupRows) results(t schema.Rollup) proto.Results {
	var out proto.Results
	for _, c := range r.named(t) {
		out = append(out, proto.ResultColumn{Name: c.Name, Data: c.Data.(proto.ColResult)})
	}
	return out
}

// appendFrom appends the rows of one result block.
func (r *rollupRows) appendFrom(o *rollupRows, t schema.Rollup) {
	for i := range o.count.Rows() {
		r.ts.Append(o.ts.Row(i))
		r.service.Append(o.service.Row(i))
		if t.Dims {
			r.host.Append(o.host.Row(i))
			r.container.Append(o.container.Row(i))
			r.itype.Append(o.itype.Row(i))
			r.k8sObj.Append(o.k8sObj.Row(i))
		}
		if t.Stack {
			r.stack.Append(o.stack[i])
		}
		r.count.Append(o.count[i])
	}
}
