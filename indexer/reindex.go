package indexer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/schema"
	"github.com/flamestream/flamestream/stream"
)

// Range is what Reindex rebuilds: one service's profiles whose start lies in [From, To).
type Range struct {
	Service  string
	From, To time.Time
	// Slack is how long after its start a profile's event may reach the stream (upload period, agent
	// retries, ingest outages). Reindex reads the stream from From-Slack to To+Slack. Default 1h.
	Slack time.Duration
	// Progress, when set, is told what Reindex is doing: "deleting" before the range is deleted, then
	// "replaying" after each batch with the totals so far and the events still pending in the stream
	// (flamestream reindex draws its progress line from it). It must not block.
	Progress func(phase string, res ReindexResult, pending uint64)
}

// ReindexResult says what Reindex did.
type ReindexResult struct {
	// From and To are the range actually rebuilt: the requested one widened to whole UTC days.
	From, To time.Time
	// Events is how many stream events were read, Indexed how many profiles were written again, Rows
	// their sample rows.
	Events, Indexed, Rows int
}

// reindexTables are the tables Reindex deletes the range from: samples and every rollup.
//
// The batch ledger's rows of the range go too: a batch a view missed, completed later from the ledger,
// must not count the profiles the replay writes again under a new batch.
//
// The host metrics go too: the replay writes them again with the samples (their sums would count twice).
//
// So do the built rollups' records (schema.Builds): the replay gives the same totals, and a record left
// over would call the emptied buckets of the built rollups complete.
var reindexTables = []string{schema.Samples, schema.Totals1m, schema.MinuteRollup, schema.Hour, schema.HourAll, schema.Day, schema.DayAll, schema.Batches,
	schema.HostMetrics, schema.HostMetricsHour, schema.HostMetricsDay, schema.Builds}

// alignDays widens [from, to) to whole UTC days. A day rollup row covers a whole day and cannot be split;
// deleting and replaying whole days keeps every rollup row equal to the sum of its samples.
func alignDays(from, to time.Time) (time.Time, time.Time) {
	day := 24 * time.Hour
	f := from.UTC().Truncate(day)
	t := to.UTC().Truncate(day)
	if t.Before(to) {
		t = t.Add(day)
	}
	return f, t
}

// Reindex deletes one service's rows in a range from samples and every rollup, then replays the range's
// events from the PROFILES stream through an indexer. The range is first widened to whole UTC days (see
// alignDays), and Reindex refuses to run when the stream has already dropped events that may belong to
// the widened range, since deleted rows could then not be rebuilt.
//
// ALTER TABLE ... DELETE is an asynchronous mutation (ClickHouse 18.16 has it for the MergeTree family);
// Reindex waits until the mutations are done before replaying, because the exactly-once guard would
// otherwise still see the old rows and skip the profiles. Rows inserted meanwhile by a running indexer
// are not touched by the mutation, and the replay skips their profiles: nothing is counted twice.
//
// On a cluster, run it against one node per shard with the local tables (not supported here yet).
func Reindex(ctx context.Context, cfg Config, r Range, db *chdb.DB, objects Objects, js jetstream.JetStream, log *slog.Logger) (ReindexResult, error) {
	var res ReindexResult
	if r.Service == "" || !r.From.Before(r.To) {
		return res, errors.New("reindex: a service and a non-empty range are required")
	}
	if r.Slack <= 0 {
		r.Slack = time.Hour
	}
	from, to := alignDays(r.From, r.To)
	res.From, res.To = from, to
	log = log.With("role", "reindex", "service", r.Service, "from", from, "to", to)

	st, err := js.Stream(ctx, stream.ProfilesStream)
	if err != nil {
		return res, fmt.Errorf("reindex: stream %s: %w", stream.ProfilesStream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return res, fmt.Errorf("reindex: stream info: %w", err)
	}
	// A stream that still holds its first event is complete; otherwise its oldest event must predate the
	// range (with the slack: events arrive after their profile's start).
	if info.State.FirstSeq > 1 && info.State.FirstTime.After(from.Add(-r.Slack)) {
		return res, fmt.Errorf("reindex: the stream's oldest event is from %s, after the range start %s: the range is no longer replayable",
			info.State.FirstTime.UTC().Format(time.RFC3339), from.Format(time.RFC3339))
	}

	progress := r.Progress
	if progress == nil {
		progress = func(string, ReindexResult, uint64) {}
	}
	progress("deleting", res, 0)
	where := " DELETE WHERE service = " + chdb.String(r.Service) + " AND ts >= " + chdb.Time(from) + " AND ts < " + chdb.Time(to)
	for _, t := range reindexTables {
		if err := db.Exec(ctx, "ALTER TABLE "+db.Table(t)+where); err != nil {
			return res, fmt.Errorf("reindex: delete from %s: %w", t, err)
		}
	}
	if err := waitMutations(ctx, db); err != nil {
		return res, err
	}
	log.Info("range deleted, replaying")

	name := "reindex_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	cons, err := js.CreateConsumer(ctx, stream.ProfilesStream, jetstream.ConsumerConfig{
		Name:              name,
		Description:       "flamestream reindex " + r.Service,
		DeliverPolicy:     jetstream.DeliverByStartTimePolicy,
		OptStartTime:      ptr(from.Add(-r.Slack)),
		FilterSubject:     stream.Subject(r.Service),
		AckPolicy:         jetstream.AckExplicitPolicy,
		AckWait:           time.Minute,
		MaxAckPending:     20000,
		InactiveThreshold: 10 * time.Minute,
	})
	if err != nil {
		return res, fmt.Errorf("reindex: create consumer: %w", err)
	}
	defer func() { _ = js.DeleteConsumer(context.WithoutCancel(ctx), stream.ProfilesStream, name) }()

	end := to.Add(r.Slack)
	cfg.Accept = func(ev stream.Event) bool {
		return ev.Service == r.Service && !ev.Start.Before(from) && ev.Start.Before(to)
	}
	ix := New(cfg, db, objects, js, cons, log, nil)
	for ctx.Err() == nil {
		batch, err := cons.Fetch(ix.cfg.BatchSize, jetstream.FetchMaxWait(ix.cfg.BatchWait))
		if err != nil {
			return res, fmt.Errorf("reindex: fetch: %w", err)
		}
		var msgs []jetstream.Msg
		past := false
		for m := range batch.Messages() {
			if md, err := m.Metadata(); err == nil && md.Timestamp.After(end) {
				past = true // this and every later event arrived after the range's slack
				continue
			}
			msgs = append(msgs, m)
		}
		if len(msgs) > 0 {
			b, err := ix.Index(ctx, msgs)
			if err != nil {
				return res, fmt.Errorf("reindex: %w", err)
			}
			b.Ack()
			res.Events += b.Events
			res.Indexed += b.Indexed
			res.Rows += b.Rows
		}
		if past {
			break
		}
		ci, err := cons.Info(ctx)
		if err != nil {
			return res, fmt.Errorf("reindex: consumer info: %w", err)
		}
		progress("replaying", res, ci.NumPending)
		if ci.NumPending == 0 && ci.NumAckPending == 0 {
			break
		}
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("reindex interrupted: %w", err)
	}
	log.Info("reindexed", "events", res.Events, "profiles", res.Indexed, "rows", res.Rows)
	return res, nil
}

func ptr[T any](v T) *T { return &v }

// waitMutations waits until no mutation of the database is pending.
func waitMutations(ctx context.Context, db *chdb.DB) error {
	for {
		var n proto.ColUInt64
		err := db.Do(ctx, ch.Query{
			Body:   "SELECT count() AS n FROM system.mutations WHERE database = " + chdb.String(db.Database) + " AND is_done = 0",
			Result: proto.Results{{Name: "n", Data: &n}},
		})
		if err != nil {
			return fmt.Errorf("reindex: wait for mutations: %w", err)
		}
		if len(n) == 0 || n[0] == 0 {
			return nil
		}
		sleep(ctx, 100*time.Millisecond)
		if ctx.Err() != nil {
			return fmt.Errorf("reindex: wait for mutations: %w", ctx.Err())
		}
	}
}
