package indexer_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flamestream/flamestream/indexer"
	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/demo"
	"github.com/flamestream/flamestream/internal/schema"
	"github.com/flamestream/flamestream/stream"
)

// refuseMarker is a frame ClickHouse refuses once refuseMarkedStacks is in place.
const refuseMarker = "REFUSE_ME"

// refuseMarkedStacks makes the test database's ClickHouse refuse every insert into stacks that holds a
// stack with refuseMarker: a materialized view that throws. ClickHouse 18.16 has no CHECK constraints;
// this is the same server-side refusal (an exception for the data sent) that a real bad row would cause.
func refuseMarkedStacks(t *testing.T, db *chdb.DB) {
	t.Helper()
	err := db.Exec(context.Background(), "CREATE MATERIALIZED VIEW "+db.Table("refuse_marked")+
		" ENGINE = Null AS SELECT throwIf(position(frames, "+chdb.String(refuseMarker)+") > 0) AS refused FROM "+db.Table(schema.Stacks))
	if err != nil {
		t.Fatal(err)
	}
}

// uploadText sends one profile with the given stack lines through the ingest API.
func uploadText(t *testing.T, r *rig, service, host string, ts time.Time, lines string) {
	t.Helper()
	text := append(r.fleet.HeaderLine(host, "m5.large"), lines...)
	body := demo.NewUpload(text, host, ts, "").Gzip()
	r.st.Upload(t, r.token, service, body)
}

// deadLetters returns the messages of the dead-letter stream.
func deadLetters(t *testing.T, r *rig) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	dlq, err := r.js.Stream(ctx, stream.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := dlq.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := dlq.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func samplesOf(t *testing.T, r *rig, service string) uint64 {
	t.Helper()
	return fingerprintOf(t, r.st.CH, service)["samples"][0]
}

func TestIsolationOneRefusedEventIsDeadLetteredAndTheRestOfItsBatchIndexed(t *testing.T) {
	r := newRig(t)
	refuseMarkedStacks(t, r.st.CH)
	base := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	r.upload(t, "good", 6, 3, base)
	uploadText(t, r, "bad", "host-bad", base, "python;main;"+refuseMarker+" 7\npython;main;ok 3\n")
	r.upload(t, "good", 6, 3, base.Add(10*time.Minute))

	cons := r.consumer(t, "indexer", 30*time.Second)
	reg := prometheus.NewRegistry()
	ix := indexer.New(r.indexerConfig(), r.st.CH, r.store, r.js, cons, r.log, reg)
	batch, err := cons.Fetch(16, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	if len(msgs) != 13 {
		t.Fatalf("fetched %d events, want the 13 in one batch", len(msgs))
	}
	b, err := ix.Index(context.Background(), msgs)
	if err != nil {
		t.Fatalf("a batch with one refused event failed whole: %v", err)
	}
	b.Ack()
	if b.Indexed != 12 || b.Retried != 0 {
		t.Errorf("indexed %d, retried %d; want the 12 good ones indexed and none retried", b.Indexed, b.Retried)
	}
	checkTotals(t, fingerprintOf(t, r.st.CH, "good"), r.sent["good"])
	if n := samplesOf(t, r, "bad"); n != 0 {
		t.Errorf("the refused event has %d samples, want 0", n)
	}
	dl := deadLetters(t, r)
	if len(dl) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dl))
	}
	if dl[0].Subject != stream.DeadLetterSubjectPrefix+"bad" {
		t.Errorf("dead letter on %s, want the bad service's", dl[0].Subject)
	}
	reason := dl[0].Header.Get(stream.HeaderReason)
	if !strings.Contains(reason, "clickhouse refused") || !strings.Contains(reason, "throwIf") {
		t.Errorf("dead-letter reason %q does not say that ClickHouse refused the rows and why", reason)
	}
	drained(t, cons, 10*time.Second)
	if got := metric(t, reg, "flamestream_indexer_dead_letters_total"); got != 1 {
		t.Errorf("dead_letters_total = %v, want 1", got)
	}
	if got := metric(t, reg, "flamestream_indexer_profiles_total"); got != 12 {
		t.Errorf("profiles_total = %v, want 12", got)
	}

	// Indexing the same events again (a replay) adds nothing. The good events are skipped, not written,
	// so the bad one, alone refused, is dead-lettered on its first delivery only with MaxDeliveries 1.
	before := fingerprintOf(t, r.st.CH, "good")
	replay := r.consumer(t, "replay", 30*time.Second)
	cfg := r.indexerConfig()
	cfg.MaxDeliveries = 1
	rix := indexer.New(cfg, r.st.CH, r.store, r.js, replay, r.log, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = rix.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	drained(t, replay, 30*time.Second)
	if after := fingerprintOf(t, r.st.CH, "good"); after["samples"] != before["samples"] || after["samples_1d"] != before["samples_1d"] {
		t.Errorf("a replay changed the good service: %v then %v", before, after)
	}
	if n := len(deadLetters(t, r)); n != 1 {
		t.Errorf("%d dead letters after the replay, want 1 (the same event is stored once in the DLQ)", n)
	}
}

func TestIsolationAnEventRefusedOnEveryDeliveryIsDeadLetteredAfterMaxDeliveries(t *testing.T) {
	r := newRig(t)
	refuseMarkedStacks(t, r.st.CH)
	base := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	// Alone in its batch, nothing else is written: the refusal could be the server's, so the event is
	// retried, and dead-lettered only on its MaxDeliveries-th delivery.
	uploadText(t, r, "bad", "host-bad", base, "python;"+refuseMarker+" 1\n")
	cons := r.consumer(t, "indexer", 30*time.Second)
	cfg := r.indexerConfig()
	cfg.MaxDeliveries = 3
	reg := prometheus.NewRegistry()
	ix := indexer.New(cfg, r.st.CH, r.store, r.js, cons, r.log, reg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = ix.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	deadline := time.Now().Add(30 * time.Second)
	for len(deadLetters(t, r)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the refused event was not dead-lettered after 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	dl := deadLetters(t, r)
	if reason := dl[0].Header.Get(stream.HeaderReason); !strings.Contains(reason, "each of 3 deliveries") || !strings.Contains(reason, "throwIf") {
		t.Errorf("dead-letter reason %q does not give the deliveries and the last error", reason)
	}
	drained(t, cons, 10*time.Second)
	info, err := cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumRedelivered != 0 || info.Delivered.Consumer != 3 {
		t.Errorf("consumer delivered %d times, want 3", info.Delivered.Consumer)
	}

	// The indexer goes on with the next events.
	r.upload(t, "good", 4, 2, base)
	waitSamples(t, r.st.CH, "good", r.sent["good"], 20*time.Second)
	if got := len(deadLetters(t, r)); got != 1 {
		t.Errorf("%d dead letters, want 1", got)
	}
}
