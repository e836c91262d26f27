// Package indexer turns the PROFILES stream into ClickHouse rows: it pulls batches of events, fetches the
// raw uploads from the object store, parses and aggregates them, writes one columnar block per table per
// batch, and acknowledges the events only after the insert.
package indexer

import (
	"bytes"
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
	"github.com/flamestream/flamestream/internal/schema"
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
	// BatchTimeout bounds the work on one batch. Zero derives it from the consumer's ack wait (three
	// quarters of it). A longer one is kept: in-progress acks keep the batch's events from going to
	// another indexer meanwhile.
	BatchTimeout time.Duration
	// Workers is how many batches one indexer works on at once (default 2): a batch holding a huge
	// profile (a million stacks take tens of seconds through the materialized views) must not hold back
	// every other service's events behind it.
	Workers int
	// Rules, when set, rewrite the frames of every stack before it is stored (see profile.Rules).
	Rules *profile.Rules
	// MaxDeliveries is how many deliveries an event ClickHouse keeps refusing gets before it is
	// dead-lettered with its last error (default 20). Failures that are not a refusal of the data
	// (connection errors, timeouts, a server down or busy) never count: those events wait for the server.
	MaxDeliveries int
	// Bodies, when set, is asked for a batch's upload bodies before the object store (see bodies.go).
	Bodies BodySource
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

	// lanes holds one lane per worker: a batch being written holds one.
	lanes chan *lane
	// fetchMu lets one worker fetch at a time (see fetch).
	fetchMu sync.Mutex

	// batchTimeout bounds one batch's work; settleTimeout bounds the dead-lettering and acks after it.
	// Their sum stays within the consumer's ack wait.
	batchTimeout, settleTimeout time.Duration
	ackWait                     time.Duration

	// tz is the ClickHouse server's time zone (see serverLocation).
	tzMu sync.Mutex
	tz   *time.Location
	// repairMu makes one repair at a time in this process; claims is the bucket of repair claims
	// between processes (see ledger.go).
	repairMu sync.Mutex
	claimMu  sync.Mutex
	claims   jetstream.KeyValue
	// bodyWarned is when a failing body cache was last logged.
	bodyWarnMu sync.Mutex
	bodyWarned time.Time
}

// lane is what one batch at a time writes with: its columns, and the stacks it already wrote (so a
// stack seen in every profile is inserted once per lane, not once per batch; only successful inserts
// enter it).
type lane struct {
	w           writer
	knownStacks map[serviceStack]struct{}
}

func newLane() *lane { return &lane{knownStacks: map[serviceStack]struct{}{}} }

// serviceStack names a row of schema.Stacks.
type serviceStack struct {
	service string
	hash    uint64
}

// maxKnownStacks bounds the knownStacks of all lanes together; past it the set starts over (re-inserting a stack is harmless:
// stacks is a ReplacingMergeTree).
const maxKnownStacks = 4 << 20

// New returns an indexer reading from cons.
func New(cfg Config, db *chdb.DB, objects Objects, js jetstream.JetStream, cons jetstream.Consumer, log *slog.Logger, reg prometheus.Registerer) *Indexer {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.BatchWait <= 0 {
		cfg.BatchWait = DefaultBatchWait
	}
	if cfg.FetchParallel <= 0 {
		cfg.FetchParallel = DefaultFetchParallel
	}
	if cfg.MaxDecompressedBytes <= 0 {
		cfg.MaxDecompressedBytes = DefaultMaxDecompressedBytes
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.MaxDeliveries <= 0 {
		cfg.MaxDeliveries = 20
	}
	ix := &Indexer{cfg: cfg, db: db, objects: objects, js: js, cons: cons, log: log.With("role", "indexer"),
		metrics: newMetrics(reg), lanes: make(chan *lane, cfg.Workers)}
	for range cfg.Workers {
		ix.lanes <- newLane()
	}
	ix.ackWait = ackWait(cons)
	ix.batchTimeout, ix.settleTimeout = batchTimeouts(cfg.BatchTimeout, ix.ackWait)
	return ix
}

// defaultAckWait is JetStream's ack wait when a consumer does not set one.
const defaultAckWait = 30 * time.Second

// ackWait is the consumer's ack wait, as the server reported it when the consumer was looked up.
func ackWait(cons jetstream.Consumer) time.Duration {
	if cons != nil {
		if info := cons.CachedInfo(); info != nil && info.Config.AckWait > 0 {
			return info.Config.AckWait
		}
	}
	return defaultAckWait
}

// batchTimeouts splits the ack wait: three quarters for the batch's work, the rest (at most 10 s) to
// dead-letter and acknowledge its events. A configured batch timeout may be longer than the ack wait:
// while a batch is worked on, its events are kept from redelivery by in-progress acks (see indexBatch), so
// the ack wait only says how soon the events of an indexer that died are handed to another.
func batchTimeouts(configured, ackWait time.Duration) (batch, settle time.Duration) {
	batch = ackWait * 3 / 4
	if configured > 0 {
		batch = configured
	}
	return batch, min(ackWait/4, 10*time.Second)
}

// Run pulls and indexes batches until ctx ends; the batch in hand is finished first, within its deadline.
// Run returns only after every goroutine it started has ended.
func (ix *Indexer) Run(ctx context.Context) error {
	ix.log.Info("indexer started", "batch", ix.cfg.BatchSize, "wait", ix.cfg.BatchWait, "batch_timeout", ix.batchTimeout)
	lagDone := make(chan struct{})
	go func() {
		defer close(lagDone)
		ix.watchLag(ctx)
	}()
	defer func() { <-lagDone }()
	var wg sync.WaitGroup
	for range ix.cfg.Workers {
		wg.Go(func() { ix.work(ctx) })
	}
	wg.Wait()
	return nil
}

// work is one worker of Run: it fetches and indexes batches until ctx ends.
func (ix *Indexer) work(ctx context.Context) {
	failures := 0
	// size shrinks when a batch misses its deadline, so that a backlog of slow events is worked through in
	// smaller batches instead of timing out whole again and again; it grows back after each success.
	size := ix.cfg.BatchSize
	for ctx.Err() == nil {
		msgs, err := ix.fetch(size)
		if err != nil && msgs == nil {
			ix.log.Warn("fetch failed", "err", err)
			sleep(ctx, time.Second)
			continue
		}
		if err != nil {
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
		b, err := ix.indexBatch(ctx, msgs)
		if err != nil {
			ix.metrics.failures.Inc()
			failures++
			delay := backoff(failures)
			if errors.Is(err, errBatchDeadline) {
				size = max(1, size/2)
			}
			ix.log.Error("batch failed, will retry", "events", len(msgs), "retry_in", delay, "next_batch", size, "err", err)
			for _, m := range msgs {
				_ = m.NakWithDelay(delay)
			}
			sleep(ctx, delay)
			continue
		}
		b.Ack()
		size = min(ix.cfg.BatchSize, size*2)
		if b.Indexed > 0 && b.Rows > b.Indexed {
			// Pull about one INSERT's worth of rows (maxBatchRows) at a time: the profiles of a pulled
			// batch are all in memory at once, so big ones come in fewer events (250 of 2,000 lines).
			size = max(1, min(size, maxBatchRows*b.Indexed/b.Rows))
		}
		if b.Indexed == 0 && b.Retried > 0 {
			// ClickHouse refused everything it was given: the server may refuse all data for now (a
			// broken schema, a full disk), so wait as after a failure rather than spin through the stream.
			failures++
			sleep(ctx, backoff(failures))
			continue
		}
		failures = 0
	}
}

// fetch pulls up to size events, waiting at most BatchWait for them. One worker fetches at a time: the
// others write meanwhile. Fetching side by side, the workers split the events arriving in one wait
// between them, so each INSERT round carried half as many profiles, and every round costs ClickHouse a
// part per table and view (≈ 12) whatever it holds: with 60-line profiles, 64 profiles a round cost it
// 1.2 ms of CPU a profile, 256 a round 0.34 ms (TestClickHouseInsertCost). The wait for a fetch stays
// BatchWait, so the lag does not grow. A nil slice with an error means the fetch itself failed; events
// with an error mean it ended early (the error is worth a warning, the events are indexed).
func (ix *Indexer) fetch(size int) ([]jetstream.Msg, error) {
	ix.fetchMu.Lock()
	defer ix.fetchMu.Unlock()
	// The events of a fetch wait in it without in-progress acks: it must end well within the ack wait,
	// or the first of them would go to another worker meanwhile.
	batch, err := ix.cons.Fetch(size, jetstream.FetchMaxWait(min(ix.cfg.BatchWait, max(ix.ackWait/4, 100*time.Millisecond))))
	if err != nil {
		return nil, err
	}
	msgs := make([]jetstream.Msg, 0, size)
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
		return msgs, err
	}
	return msgs, nil
}

// errBatchDeadline marks a batch that failed because it ran out of time.
var errBatchDeadline = errors.New("batch deadline exceeded")

// indexBatch runs Index under the batch deadline. The batch is finished even when ctx ends meanwhile
// (acking it avoids a redelivery), but never past the deadline: after the ack wait JetStream hands its
// events to another indexer, and a stalled ClickHouse read must not hold the consumer forever.
func (ix *Indexer) indexBatch(ctx context.Context, msgs []jetstream.Msg) (*Batch, error) {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ix.batchTimeout)
	defer cancel()
	// In-progress acks reset the events' ack wait while the batch is worked on, so that a batch allowed
	// longer than the ack wait (a huge profile through the materialized views) is not redelivered to
	// another worker meanwhile.
	beat := time.NewTicker(max(ix.ackWait/3, 100*time.Millisecond))
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-beat.C:
				for _, m := range msgs {
					_ = m.InProgress()
				}
			}
		}
	})
	defer func() { close(done); wg.Wait(); beat.Stop() }()
	b, err := ix.Index(bctx, msgs)
	if err != nil && bctx.Err() != nil {
		return nil, fmt.Errorf("%w (%s): %w", errBatchDeadline, ix.batchTimeout, err)
	}
	return b, err
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
	host    hostSample // the header's host metrics
	poison  string     // why the event can never be indexed
	transit error      // a failure worth retrying
	refusal error      // ClickHouse refused this event's rows when they were inserted alone
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
	msgs  []jetstream.Msg
	retry []retry
	log   *slog.Logger
	// Events is the number of messages in the batch; Indexed how many profiles were written (the rest were
	// already in ClickHouse, dead-lettered, not accepted or to be retried); Rows the sample rows written;
	// Retried how many events ClickHouse refused that go back to the stream for another try.
	Events, Indexed, Rows, Retried int
}

// retry is an event handed back to JetStream, redelivered after delay.
type retry struct {
	msg   jetstream.Msg
	delay time.Duration
}

// Ack acknowledges the batch's messages and hands the events to retry back to JetStream. A failed ack
// only means the event comes back and is skipped.
func (b *Batch) Ack() {
	for _, m := range b.msgs {
		if err := m.Ack(); err != nil {
			b.log.Warn("ack failed (the event will be redelivered and skipped)", "err", err)
		}
	}
	for _, r := range b.retry {
		_ = r.msg.NakWithDelay(r.delay)
	}
}

// Index writes one batch to ClickHouse without acknowledging it: poison events are dead-lettered and
// terminated, events already indexed are skipped, the rest is inserted. The caller acks the returned Batch.
// An error means nothing was acknowledged and a retry could succeed.
//
// Fault isolation: when ClickHouse refuses an insert (a server exception about the data, see refused),
// the events are written again in halves, down to single events, so that one bad event does not hold
// the others back. An event refused alone is dead-lettered with the server's reason when another part of
// the batch was written (the server takes data, just not this event's). When nothing was written, the
// refusal may be the server's (a broken schema, say): the event goes back to the stream with a backoff,
// and is dead-lettered once it has been delivered MaxDeliveries times. Connection errors, timeouts and a
// server down or busy fail the whole batch, which is retried with a backoff and never dead-lettered. Every
// retry passes the exactly-once guard again, so a group that reached the server before failing is not
// written twice.
//
// Exactly-once effect: a profile's sample rows are written by one INSERT into samples, which on one server
// is one part per partition, and a profile's rows all share one timestamp, so they are all there or none.
// Before inserting, skipIndexed drops the profiles that already have rows, so a redelivery after a crash
// between insert and ack, a re-published event or a full replay never adds a sample twice. The rollups are
// written by materialized views inside the same INSERT, part after part: when the server fails between
// them, the batch's marker shows which rollups missed it, and the guard completes them (see ledger.go).
//
// Known weaknesses: (1) two indexers can hold the same event only if the ack wait expires while the first
// is still indexing it, without in-progress acks; both then pass the guard. Batches finish in well under
// a second, so this needs a stalled process. (2) A single profile of more than about a million sample rows
// may leave a view's output in two parts; its batch marker then vouches for one of them only.
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
	defer release(items)
	for _, it := range items {
		if it.transit != nil {
			return nil, it.transit
		}
	}
	// Dead-lettering and acks get their own short deadline: they must happen even when the batch's
	// work used all of its time.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ix.settleTimeout)
	defer cancel()
	// Poison first: they are terminated whatever happens to the rest.
	var good []*item
	for _, it := range items {
		if it.poison == "" {
			good = append(good, it)
			continue
		}
		if err := ix.deadLetter(sctx, it.msg, it.poison); err != nil {
			return nil, err
		}
	}
	var ln *lane
	select {
	case ln = <-ix.lanes:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { ix.lanes <- ln }()
	var w written
	if err := ix.writeIsolated(ctx, ln, good, &w); err != nil {
		return nil, err
	}
	refusedNow := map[*item]bool{}
	var retries []retry
	if len(w.refused) > 0 {
		// A refused insert may still have reached the samples table (a materialized view failing after
		// the part was written): such an event counts as indexed, it is neither retried nor dead-lettered.
		still, err := ix.skipIndexed(ctx, w.refused)
		if err != nil {
			return nil, err
		}
		disown(w.refused, still)
		for _, it := range still {
			refusedNow[it] = true
			delivered := uint64(1)
			if md, err := it.msg.Metadata(); err == nil {
				delivered = md.NumDelivered
			}
			var reason string
			switch {
			case w.indexed > 0:
				reason = "clickhouse refused the event's rows: " + it.refusal.Error()
			case delivered >= uint64(ix.cfg.MaxDeliveries):
				reason = fmt.Sprintf("clickhouse refused the event's rows on each of %d deliveries, last: %v", delivered, it.refusal)
			default:
				delay := backoff(int(min(delivered, 16)))
				ix.log.Warn("clickhouse refused an event, will retry", "subject", it.msg.Subject(), "delivered", delivered, "retry_in", delay, "err", it.refusal)
				retries = append(retries, retry{msg: it.msg, delay: delay})
				continue
			}
			if err := ix.deadLetter(sctx, it.msg, reason); err != nil {
				return nil, err
			}
		}
	}
	for _, it := range good {
		if !refusedNow[it] {
			settled = append(settled, it.msg)
		}
	}
	d := time.Since(t0)
	ix.metrics.batchSize.Observe(float64(len(msgs)))
	ix.metrics.profiles.Add(float64(w.indexed))
	ix.metrics.rows.Add(float64(w.rows))
	ix.log.Debug("batch indexed", "events", len(msgs), "indexed", w.indexed, "refused", len(refusedNow), "rows", w.rows, "took", d)
	return &Batch{msgs: settled, retry: retries, log: ix.log, Events: len(msgs), Indexed: w.indexed, Rows: w.rows, Retried: len(retries)}, nil
}

// deadLetter copies msg to the dead-letter stream with reason and terminates it.
func (ix *Indexer) deadLetter(ctx context.Context, msg jetstream.Msg, reason string) error {
	ix.metrics.dlq.Inc()
	ix.log.Warn("dead-lettering event", "subject", msg.Subject(), "reason", reason)
	if err := stream.DeadLetter(ctx, ix.js, msg, reason); err != nil {
		return err
	}
	_ = msg.Term()
	return nil
}

// written is what writeIsolated did.
type written struct {
	indexed, rows int
	refused       []*item // events ClickHouse refused when inserted alone (refusal says why)
}

// writeIsolated inserts the items that are not indexed yet. When ClickHouse refuses the insert, it
// writes each half again, down to single events, and leaves the events refused alone in w.refused.
// Any other error ends it: the batch is retried whole (the guard skips what was written meanwhile).
func (ix *Indexer) writeIsolated(ctx context.Context, ln *lane, items []*item, w *written) error {
	fresh, err := ix.skipIndexed(ctx, items)
	if err != nil {
		return err
	}
	disown(items, fresh)
	rows, err := ix.write(ctx, ln, fresh)
	if err == nil {
		w.indexed += len(fresh)
		w.rows += rows
		return nil
	}
	if !refused(err) || ctx.Err() != nil {
		return err
	}
	if len(fresh) == 1 {
		fresh[0].refusal = err
		w.refused = append(w.refused, fresh[0])
		return nil
	}
	half := len(fresh) / 2
	if err := ix.writeIsolated(ctx, ln, fresh[:half], w); err != nil {
		return err
	}
	return ix.writeIsolated(ctx, ln, fresh[half:], w)
}

// transientCodes are the server exceptions that say nothing about the data: the server is busy, short of
// memory, read-only, shutting down or missing a table. The batch waits for the server instead of being
// narrowed down to events that would then be blamed.
var transientCodes = []proto.Error{
	proto.ErrUnknownTable, proto.ErrTimeoutExceeded, proto.ErrReadonly, proto.ErrTooManySimultaneousQueries,
	proto.ErrSocketTimeout, proto.ErrNetworkError, proto.ErrTableIsDropped, proto.ErrAborted,
	proto.ErrMemoryLimitExceeded, proto.ErrTableIsReadOnly, proto.ErrTooManyParts,
	proto.ErrAllConnectionTriesFailed, proto.ErrQueryWasCancelled, proto.ErrKeeperException,
}

// refused reports whether err is ClickHouse refusing an insert's data: a server exception other than
// the transient ones. Connection errors, timeouts and cancellations are not refusals.
func refused(err error) bool {
	e, ok := ch.AsException(err)
	return ok && !e.IsCode(transientCodes...)
}

// disown forgets the aggregates of the items skipIndexed dropped (it handed them back to the pool
// itself, or, for a duplicate inside the batch, to the garbage collector), so that release does not put
// them back a second time.
func disown(all, kept []*item) {
	keep := make(map[*item]bool, len(kept))
	for _, it := range kept {
		keep[it] = true
	}
	for _, it := range all {
		if !keep[it] {
			it.agg = nil
		}
	}
}

// release hands the aggregates still held by items back to the pool.
func release(items []*item) {
	for _, it := range items {
		if it.agg != nil {
			aggPool.Put(it.agg)
			it.agg = nil
		}
	}
}

// load fetches and parses the objects of a batch concurrently.
func (ix *Indexer) load(ctx context.Context, items []*item) {
	cached := ix.cachedBodies(ctx, items)
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
			body, err := cached[it], error(nil)
			if body == nil {
				body, err = fetchObject(ctx, ix.objects, it.ev.Key) // the original, or its bundle (compact_read.go)
			}
			if errors.Is(err, objstore.ErrNotFound) {
				it.poison = "object missing: " + it.ev.Key
				return
			}
			if err != nil {
				it.transit = err
				return
			}
			agg, host, err := ix.parseWithHost(it.ev, body)
			if err != nil {
				it.poison = err.Error()
				return
			}
			it.agg, it.host = agg, host
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
	agg, _, err := ix.parseWithHost(ev, body)
	return agg, err
}

// parseWithHost is parse that also returns the header's host metrics.
func (ix *Indexer) parseWithHost(ev stream.Event, body []byte) (*profile.Aggregate, hostSample, error) {
	if !profile.StorableTime(ev.Start) {
		return nil, hostSample{}, fmt.Errorf("start %s is outside the range of a ClickHouse DateTime", ev.Start.UTC().Format(time.RFC3339))
	}
	d := decoderPool.Get().(*objectDecoder)
	defer func() {
		if cap(d.plain) <= 32<<20 { // an outsized upload's buffers go back to the GC
			decoderPool.Put(d)
		}
	}()
	text, err := d.decode(body, ix.cfg.MaxDecompressedBytes)
	if err != nil {
		return nil, hostSample{}, err
	}
	agg := aggPool.Get().(*profile.Aggregate)
	agg.Reset()
	// The text bounds the stack text the aggregate keeps, and its lines the entries: one allocation of
	// each instead of a series of doublings when the pool handed out a fresh aggregate (it drops them at
	// every other GC).
	agg.Reserve(bytes.Count(text, []byte{'\n'}), len(text))
	add := agg.Add
	if ix.cfg.Rules != nil {
		rw := d.rewriter(ix.cfg.Rules)
		add = func(l *profile.Line) error {
			l.Stack = rw.Stack(l.Stack)
			return agg.Add(l)
		}
	}
	hdr, err := profile.ParseAs(text, profile.Format(ev.Format), add)
	if err != nil {
		aggPool.Put(agg)
		return nil, hostSample{}, fmt.Errorf("profile: %w", err)
	}
	return agg, hostSampleOf(&hdr), nil
}

// skipIndexed drops the events whose profile already has rows in samples: the exactly-once guard. One
// profile's rows share one timestamp, so they live in one partition and are written by one atomic part:
// either all of them are there or none.
func (ix *Indexer) skipIndexed(ctx context.Context, items []*item) ([]*item, error) {
	if len(items) == 0 {
		return nil, nil
	}
	// A redelivered event's profile may have been written by an earlier attempt whose insert the server
	// is still finishing: wait for it before concluding that the profile is missing.
	var again []*item
	for _, it := range items {
		if md, err := it.msg.Metadata(); err == nil && md.NumDelivered > 1 {
			again = append(again, it)
		}
	}
	if len(again) > 0 {
		if err := ix.waitEarlier(ctx, again); err != nil {
			return nil, err
		}
	}
	seen, err := ix.profilesIn(ctx, schema.Samples, items)
	if err != nil {
		return nil, fmt.Errorf("check indexed profiles: %w", err)
	}
	var indexed []*item
	for _, it := range items {
		if seen[it.id] {
			indexed = append(indexed, it)
		}
	}
	if len(indexed) > 0 {
		// Their batch is in samples; a view may have missed it.
		if err := ix.completeRollups(ctx, indexed); err != nil {
			return nil, err
		}
		if err := ix.completeHostMetrics(ctx, indexed); err != nil {
			return nil, err
		}
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

// profilesIn returns which of the items' profiles have rows in table (which has ts and profile columns),
// looking only at the items' start times. The ids go as an external table, so the statement's size does
// not follow the batch's.
func (ix *Indexer) profilesIn(ctx context.Context, table string, items []*item) (map[uint64]bool, error) {
	found := map[uint64]bool{}
	if len(items) == 0 {
		return found, nil
	}
	ids := make(proto.ColUInt64, 0, len(items))
	lo, hi := items[0].ev.Start, items[0].ev.Start
	for _, it := range items {
		ids = append(ids, it.id)
		lo, hi = minTime(lo, it.ev.Start), maxTime(hi, it.ev.Start)
	}
	var col proto.ColUInt64
	err := ix.db.Do(ctx, ch.Query{
		Body: "SELECT DISTINCT profile FROM " + ix.db.Table(table) +
			" WHERE ts >= " + chdb.Time(lo.Add(-time.Second)) + " AND ts <= " + chdb.Time(hi.Add(time.Second)) +
			" AND profile GLOBAL IN (SELECT id FROM _ids)",
		ExternalTables: []ch.ExternalTable{{Name: "_ids", Data: proto.Input{{Name: "id", Data: &ids}}}},
		Result:         proto.Results{{Name: "profile", Data: &col}},
		OnResult: func(ctx context.Context, b proto.Block) error {
			for _, v := range col {
				found[v] = true
			}
			return nil
		},
	})
	return found, err
}
