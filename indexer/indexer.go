// Package indexer turns the PROFILES stream into ClickHouse rows: it pulls batches of events, fetches the
// raw uploads from the object store, parses and aggregates them, writes one columnar block per table per
// batch, and acknowledges the events only after the insert.
package indexer

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/objstore"
	"github.com/flamestream/flamestream/internal/profile"
	"github.com/flamestream/flamestream/stream"
)

// Objects is what the indexer needs from the object store.
type Objects interface {
	Get(ctx context.Context, key string) ([]byte, error)
}

// Config tunes the consumer loop.
type Config struct {
	BatchSize     int
	BatchWait     time.Duration
	FetchParallel int
	// MaxDecompressedBytes caps what one object may inflate to.
	MaxDecompressedBytes int64
	// Accept, when set, selects the events to index; the others are acknowledged untouched (reindex uses
	// it to replay one service and time range).
	Accept func(stream.Event) bool
}

// Indexer is one consumer of the PROFILES stream. Several processes may share one durable consumer.
type Indexer struct {
	cfg     Config
	db      *chdb.DB
	objects Objects
	js      jetstream.JetStream
	cons    jetstream.Consumer
	log     *slog.Logger
	metrics *metrics

	// knownStacks holds hashes already written to the stacks table by this process, so a stack seen in
	// every profile is inserted once, not once per batch. Only successful inserts enter it.
	knownStacks map[uint64]struct{}
	failures    int

	w writer
}

// maxKnownStacks bounds knownStacks; past it the set starts over (re-inserting a stack is harmless:
// stacks is a ReplacingMergeTree).
const maxKnownStacks = 4 << 20

// New returns an indexer reading from cons.
func New(cfg Config, db *chdb.DB, objects Objects, js jetstream.JetStream, cons jetstream.Consumer, log *slog.Logger, reg prometheus.Registerer) *Indexer {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 256
	}
	if cfg.BatchWait <= 0 {
		cfg.BatchWait = time.Second
	}
	if cfg.FetchParallel <= 0 {
		cfg.FetchParallel = 8
	}
	if cfg.MaxDecompressedBytes <= 0 {
		cfg.MaxDecompressedBytes = 128 << 20
	}
	return &Indexer{cfg: cfg, db: db, objects: objects, js: js, cons: cons, log: log.With("role", "indexer"),
		metrics: newMetrics(reg), knownStacks: map[uint64]struct{}{}}
}

// Run pulls and indexes batches until ctx ends; the batch in hand is finished first.
func (ix *Indexer) Run(ctx context.Context) error {
	ix.log.Info("indexer started", "batch", ix.cfg.BatchSize, "wait", ix.cfg.BatchWait)
	go ix.watchLag(ctx)
	for ctx.Err() == nil {
		batch, err := ix.cons.Fetch(ix.cfg.BatchSize, jetstream.FetchMaxWait(ix.cfg.BatchWait))
		if err != nil {
			ix.log.Warn("fetch failed", "err", err)
			sleep(ctx, time.Second)
			continue
		}
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			ix.log.Warn("fetch ended early", "err", err)
			if len(msgs) == 0 {
				// A failing fetch returns at once (e.g. "no responders" while a NATS cluster elects the
				// consumer's leader): wait before the next one instead of spinning.
				sleep(ctx, time.Second)
				continue
			}
		}
		if len(msgs) == 0 {
			continue
		}
		// The batch is finished even when ctx ends meanwhile: it is bounded, and acking it avoids a redelivery.
		if err := ix.ProcessBatch(context.WithoutCancel(ctx), msgs); err != nil {
			ix.metrics.failures.Inc()
			ix.failures++
			delay := backoff(ix.failures)
			ix.log.Error("batch failed, will retry", "events", len(msgs), "retry_in", delay, "err", err)
			for _, m := range msgs {
				_ = m.NakWithDelay(delay)
			}
			sleep(ctx, delay)
			continue
		}
		ix.failures = 0
	}
	return nil
}

func backoff(failures int) time.Duration {
	d := time.Second << min(failures-1, 5)
	return min(d, 30*time.Second)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// item is one event of a batch on its way to ClickHouse.
type item struct {
	msg     jetstream.Msg
	ev      stream.Event
	id      uint64
	agg     *profile.Aggregate
	poison  string // why the event can never be indexed
	transit error  // a failure worth retrying
}

// ProfileKey is the 64-bit profile id stored with every sample row: the first 8 bytes of the event id.
func ProfileKey(id string) (uint64, error) {
	if len(id) < 16 {
		return 0, fmt.Errorf("profile id %q: too short", id)
	}
	b, err := hex.DecodeString(id[:16])
	if err != nil {
		return 0, fmt.Errorf("profile id %q: %w", id, err)
	}
	var n uint64
	for _, c := range b {
		n = n<<8 | uint64(c)
	}
	return n, nil
}

// ProcessBatch indexes one batch and acks or terminates every message in it. It returns an error, and
// acks nothing, when a retry could succeed (object store or ClickHouse unavailable).
func (ix *Indexer) ProcessBatch(ctx context.Context, msgs []jetstream.Msg) error {
	b, err := ix.Index(ctx, msgs)
	if err != nil {
		return err
	}
	b.Ack()
	return nil
}

// Batch is an indexed batch whose messages are not acknowledged yet.
type Batch struct {
	msgs []jetstream.Msg
	log  *slog.Logger
	// Events is the number of messages in the batch; Indexed how many profiles were written (the rest were
	// already in ClickHouse, dead-lettered or not accepted); Rows the sample rows written.
	Events, Indexed, Rows int
}

// Ack acknowledges the batch's messages. A failed ack only means the event comes back and is skipped.
func (b *Batch) Ack() {
	for _, m := range b.msgs {
		if err := m.Ack(); err != nil {
			b.log.Warn("ack failed (the event will be redelivered and skipped)", "err", err)
		}
	}
}

// Index writes one batch to ClickHouse without acknowledging it: poison events are dead-lettered and
// terminated, events already indexed are skipped, the rest is inserted. The caller acks the returned Batch.
// An error means nothing was acknowledged and a retry could succeed.
//
// Exactly-once effect: a profile's sample rows are written by one INSERT into samples, which on one server
// is one part per partition, and a profile's rows all share one timestamp, so they are all there or none.
// Before inserting, skipIndexed drops the profiles that already have rows, so a redelivery after a crash
// between insert and ack, a re-published event or a full replay never adds a sample twice. The rollups are
// written by materialized views inside the same INSERT and are covered by the same guard.
//
// Known weaknesses: (1) materialized views are pushed after the source part is written and not atomically
// with it (ClickHouse 18.16 and current versions alike): if the server fails between the samples part and
// a view's part, the INSERT errors, the batch is retried, the guard sees the samples rows and skips the
// profile, and that rollup misses it; `flamestream reindex` over the range repairs it. (2) Two indexers can
// hold the same event only if the ack wait (1 minute) expires while the first is still indexing it; both
// then pass the guard. Batches finish in well under a second, so this needs a stalled process.
func (ix *Indexer) Index(ctx context.Context, msgs []jetstream.Msg) (*Batch, error) {
	t0 := time.Now()
	items := make([]*item, 0, len(msgs))
	var settled []jetstream.Msg // acked with the batch, not indexed
	for _, m := range msgs {
		it := &item{msg: m}
		ev, err := stream.Decode(m.Data())
		if err != nil && ix.cfg.Accept != nil {
			settled = append(settled, m) // a selective replay: the live consumer dead-letters it
			continue
		}
		if err != nil {
			it.poison = err.Error()
			items = append(items, it)
			continue
		}
		if ix.cfg.Accept != nil && !ix.cfg.Accept(ev) {
			settled = append(settled, m)
			continue
		}
		it.ev = ev
		if it.id, err = ProfileKey(ev.ID); err != nil {
			it.poison = err.Error()
		}
		items = append(items, it)
	}
	ix.load(ctx, items)
	for _, it := range items {
		if it.transit != nil {
			for _, it := range items {
				if it.agg != nil {
					aggPool.Put(it.agg)
				}
			}
			return nil, it.transit
		}
	}
	// Poison first: they are terminated whatever happens to the rest.
	var good []*item
	for _, it := range items {
		if it.poison == "" {
			good = append(good, it)
			continue
		}
		ix.metrics.dlq.Inc()
		ix.log.Warn("dead-lettering event", "subject", it.msg.Subject(), "reason", it.poison)
		if err := stream.DeadLetter(ctx, ix.js, it.msg, it.poison); err != nil {
			return nil, err
		}
		_ = it.msg.Term()
	}
	fresh, err := ix.skipIndexed(ctx, good)
	if err != nil {
		return nil, err
	}
	rows, err := ix.write(ctx, fresh)
	if err != nil {
		return nil, err
	}
	for _, it := range good {
		settled = append(settled, it.msg)
	}
	d := time.Since(t0)
	ix.metrics.batchSize.Observe(float64(len(msgs)))
	ix.metrics.profiles.Add(float64(len(fresh)))
	ix.metrics.rows.Add(float64(rows))
	ix.log.Debug("batch indexed", "events", len(msgs), "indexed", len(fresh), "duplicates", len(good)-len(fresh), "rows", rows, "took", d)
	return &Batch{msgs: settled, log: ix.log, Events: len(msgs), Indexed: len(fresh), Rows: rows}, nil
}

// load fetches and parses the objects of a batch concurrently.
func (ix *Indexer) load(ctx context.Context, items []*item) {
	sem := make(chan struct{}, ix.cfg.FetchParallel)
	var wg sync.WaitGroup
	for _, it := range items {
		if it.poison != "" {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			body, err := ix.objects.Get(ctx, it.ev.Key)
			if errors.Is(err, objstore.ErrNotFound) {
				it.poison = "object missing: " + it.ev.Key
				return
			}
			if err != nil {
				it.transit = err
				return
			}
			agg, err := ix.parse(it.ev, body)
			if err != nil {
				it.poison = err.Error()
				return
			}
			it.agg = agg
		}()
	}
	wg.Wait()
}

var aggPool = sync.Pool{New: func() any { return new(profile.Aggregate) }}

// parse inflates one stored upload and aggregates its stacks, reading the lines in the format the event
// records (the endpoint the agent posted to). Its errors are final: a start time ClickHouse cannot store, an
// unknown format, a malformed profile, or a count above profile.MaxCount (per line or per stack total),
// which ingest refuses today but an object archived before may hold. Such a profile is dead-lettered, never
// stored with a clamped or wrapped count or time.
func (ix *Indexer) parse(ev stream.Event, body []byte) (*profile.Aggregate, error) {
	if !profile.StorableTime(ev.Start) {
		return nil, fmt.Errorf("start %s is outside the range of a ClickHouse DateTime", ev.Start.UTC().Format(time.RFC3339))
	}
	d := decoderPool.Get().(*objectDecoder)
	defer func() {
		if cap(d.plain) <= 32<<20 { // an outsized upload's buffers go back to the GC
			decoderPool.Put(d)
		}
	}()
	text, err := d.decode(body, ix.cfg.MaxDecompressedBytes)
	if err != nil {
		return nil, err
	}
	agg := aggPool.Get().(*profile.Aggregate)
	agg.Reset()
	if _, err := profile.ParseAs(text, profile.Format(ev.Format), agg.Add); err != nil {
		aggPool.Put(agg)
		return nil, fmt.Errorf("profile: %w", err)
	}
	return agg, nil
}

// skipIndexed drops the events whose profile already has rows in samples: the exactly-once guard. One
// profile's rows share one timestamp, so they live in one partition and are written by one atomic part:
// either all of them are there or none.
func (ix *Indexer) skipIndexed(ctx context.Context, items []*item) ([]*item, error) {
	if len(items) == 0 {
		return nil, nil
	}
	ids := make(proto.ColUInt64, 0, len(items))
	lo, hi := items[0].ev.Start, items[0].ev.Start
	for _, it := range items {
		ids = append(ids, it.id)
		lo, hi = minTime(lo, it.ev.Start), maxTime(hi, it.ev.Start)
	}
	seen := map[uint64]bool{}
	var col proto.ColUInt64
	err := ix.db.Do(ctx, ch.Query{
		Body: "SELECT DISTINCT profile FROM " + ix.db.Table("samples") +
			" WHERE ts >= " + chdb.Time(lo.Add(-time.Second)) + " AND ts <= " + chdb.Time(hi.Add(time.Second)) +
			" AND profile GLOBAL IN (SELECT id FROM _ids)",
		// The ids go as an external table, so the statement's size does not follow the batch's.
		ExternalTables: []ch.ExternalTable{{Name: "_ids", Data: proto.Input{{Name: "id", Data: &ids}}}},
		Result:         proto.Results{{Name: "profile", Data: &col}},
		OnResult: func(ctx context.Context, b proto.Block) error {
			for _, v := range col {
				seen[v] = true
			}
			return nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("check indexed profiles: %w", err)
	}
	var out []*item
	for _, it := range items {
		if seen[it.id] {
			aggPool.Put(it.agg)
			continue
		}
		seen[it.id] = true // a duplicate inside the batch
		out = append(out, it)
	}
	return out, nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
