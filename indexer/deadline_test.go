package indexer_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flamestream/flamestream/indexer"
	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/testenv"
)

func TestDeadlineABatchStalledInClickHouseFailsBeforeTheAckWaitAndRunStopsInTime(t *testing.T) {
	r := newRig(t)
	base := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	r.upload(t, "stall", 8, 2, base)
	cfg := r.st.Config
	px := testenv.NewProxy(t, cfg.ClickHouseAddr)
	db, err := chdb.Open(context.Background(), chdb.Options{Addr: px.Addr(), User: cfg.ClickHouseUser,
		Password: cfg.ClickHousePassword, Database: cfg.ClickHouseDatabase})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)

	// Ack wait 4 s: each batch gets 3 s.
	const ackWait = 4 * time.Second
	cons := r.consumer(t, "indexer", ackWait)
	px.Pause()
	reg := prometheus.NewRegistry()
	ix := indexer.New(r.indexerConfig(), db, r.store, r.js, cons, r.log, reg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t0 := time.Now()
	go func() { _ = ix.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	for metric(t, reg, "flamestream_indexer_batch_failures_total") == 0 {
		if time.Since(t0) > ackWait+time.Second {
			t.Fatalf("no batch failed %s into a ClickHouse stall: the batch outlived the ack wait", time.Since(t0))
		}
		time.Sleep(20 * time.Millisecond)
	}
	failedAfter := time.Since(t0)
	t.Logf("stalled batch failed after %s (ack wait %s)", failedAfter.Round(time.Millisecond), ackWait)
	if failedAfter >= ackWait {
		t.Errorf("stalled batch failed after %s, not within the ack wait %s", failedAfter, ackWait)
	}

	// A stop in the middle of a stalled batch returns within the batch's deadline.
	time.Sleep(1500 * time.Millisecond)
	t1 := time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(ackWait):
		t.Fatalf("Run still running %s after its context ended during a ClickHouse stall", ackWait)
	}
	t.Logf("Run returned %s after cancel", time.Since(t1).Round(time.Millisecond))

	// Once ClickHouse answers again, everything is indexed exactly once.
	px.Heal()
	r.run(t, db, cons)
	drained(t, cons, 60*time.Second)
	checkTotals(t, fingerprintOf(t, r.st.CH, "stall"), r.sent["stall"])
}
