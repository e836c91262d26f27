package indexer_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flamestream/flamestream/indexer"
	"github.com/flamestream/flamestream/internal/demo"
	"github.com/flamestream/flamestream/stream"
)

// bodyCacheCounts reads the hit and miss counters of the body cache.
func bodyCacheCounts(t *testing.T, reg *prometheus.Registry) (hits, misses float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "flamestream_indexer_body_cache_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch m.GetLabel()[0].GetValue() {
			case "hit":
				hits = m.GetCounter().GetValue()
			case "miss":
				misses = m.GetCounter().GetValue()
			}
		}
	}
	return hits, misses
}

// runWithBodies is rig.run with the body cache on.
func (r *rig) runWithBodies(t *testing.T, cons string) *prometheus.Registry {
	t.Helper()
	nc, err := nats.Connect(r.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	c := r.indexerConfig()
	c.Bodies = stream.NewBodyCache(nc)
	reg := prometheus.NewRegistry()
	ix := indexer.New(c, r.st.CH, r.store, r.js, r.consumer(t, cons, time.Minute), r.log, reg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = ix.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return reg
}

// events returns the events of the PROFILES stream, in order.
func (r *rig) events(t *testing.T) []stream.Event {
	t.Helper()
	s, err := r.js.Stream(context.Background(), stream.ProfilesStream)
	if err != nil {
		t.Fatal(err)
	}
	var evs []stream.Event
	for seq := uint64(1); seq <= s.CachedInfo().State.LastSeq; seq++ {
		m, err := s.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := stream.Decode(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	return evs
}

// The ingest role hands every stored body to the cache, and the indexer takes it from there: with their
// objects deleted from the object store, uploads are still indexed exactly. A cached body that is not the
// stored one (another size under the same id) is never used: that upload is read from the store.
func TestIndexerTakesBodiesFromTheCacheAndOnlyTheStoredOnes(t *testing.T) {
	r := newRig(t)
	const service = "bodies"
	r.upload(t, service, 24, 4, time.Now().UTC().Truncate(time.Hour).Add(-2*time.Hour))
	evs := r.events(t)
	if len(evs) != 24 {
		t.Fatalf("%d events, want 24", len(evs))
	}
	ctx := context.Background()

	// Upload 0's cached body becomes another valid upload of the same host and time (other counts): if the
	// indexer used it, the totals would differ from what was sent.
	nc, err := nats.Connect(r.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	other := demo.NewUpload(r.fleet.Profile(r.rng, evs[0].Host, "m5.large"), evs[0].Host, evs[0].Start, "").Gzip()
	if int64(len(other)) == evs[0].Size {
		t.Fatal("the replacement body has the size of the stored one; pick another")
	}
	cache := stream.NewBodyCache(nc)
	if !cache.Put(evs[0].ID, evs[0].Key, other) {
		t.Fatal("Put refused")
	}
	// Upload 1's cached body claims another object key.
	stored, err := r.store.Get(ctx, evs[1].Key)
	if err != nil {
		t.Fatal(err)
	}
	cache.Put(evs[1].ID, strings.Replace(evs[1].Key, service, "elsewhere", 1), stored)
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// Every other upload exists only in the cache from now on.
	var gone []string
	for _, ev := range evs[2:] {
		gone = append(gone, ev.Key)
	}
	if err := r.store.Delete(ctx, gone); err != nil {
		t.Fatal(err)
	}

	reg := r.runWithBodies(t, "cached")
	waitSamples(t, r.st.CH, service, r.sent[service], time.Minute)
	checkTotals(t, fingerprintOf(t, r.st.CH, service), r.sent[service])
	if hits, misses := bodyCacheCounts(t, reg); hits != 22 || misses != 2 {
		t.Errorf("body cache: %v hits and %v misses, want 22 and 2", hits, misses)
	}
}

// Without the cache's stream every body is read from the object store, exactly.
func TestIndexerWithoutTheBodyCacheReadsTheStore(t *testing.T) {
	r := newRig(t)
	const service = "nobodies"
	r.upload(t, service, 12, 4, time.Now().UTC().Truncate(time.Hour).Add(-2*time.Hour))
	if err := stream.EnsureBodies(context.Background(), r.js, 0); err != nil {
		t.Fatal(err)
	}
	reg := r.runWithBodies(t, "uncached")
	waitSamples(t, r.st.CH, service, r.sent[service], time.Minute)
	checkTotals(t, fingerprintOf(t, r.st.CH, service), r.sent[service])
	if hits, misses := bodyCacheCounts(t, reg); hits != 0 || misses != 12 {
		t.Errorf("body cache: %v hits and %v misses, want 0 and 12", hits, misses)
	}
	if errs := metric(t, reg, "flamestream_indexer_body_cache_errors_total"); errs < 1 {
		t.Errorf("no body-cache error counted")
	}
}
