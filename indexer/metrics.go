package indexer

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	batchSize     prometheus.Histogram
	insertLatency prometheus.Histogram
	profiles      prometheus.Counter
	rows          prometheus.Counter
	dlq           prometheus.Counter
	failures      prometheus.Counter
	pending       prometheus.Gauge
	repairs       prometheus.Counter
	// bodyCache counts bodies found in the body cache (hit) or read from the object store (miss).
	bodyCache       *prometheus.CounterVec
	bodyCacheErrors prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "flamestream_indexer_batch_events",
			Help: "Events per indexed batch.", Buckets: prometheus.ExponentialBuckets(1, 2, 12)}),
		insertLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "flamestream_indexer_insert_seconds",
			Help: "ClickHouse insert time per batch.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		profiles: prometheus.NewCounter(prometheus.CounterOpts{Name: "flamestream_indexer_profiles_total",
			Help: "Profiles indexed (duplicates excluded)."}),
		rows: prometheus.NewCounter(prometheus.CounterOpts{Name: "flamestream_indexer_rows_total",
			Help: "Sample rows written to ClickHouse."}),
		dlq: prometheus.NewCounter(prometheus.CounterOpts{Name: "flamestream_indexer_dead_letters_total",
			Help: "Events sent to the dead-letter stream."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "flamestream_indexer_batch_failures_total",
			Help: "Batches that failed and were Nak'ed for a retry with backoff (ClickHouse or object store down)."}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "flamestream_indexer_consumer_pending",
			Help: "Events not yet delivered to the indexer consumer (lag)."}),
		repairs: prometheus.NewCounter(prometheus.CounterOpts{Name: "flamestream_indexer_rollup_repairs_total",
			Help: "Rollups completed with a batch their materialized view had missed (ClickHouse failed mid-insert)."}),
		bodyCache: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flamestream_indexer_body_cache_total",
			Help: "Upload bodies taken from the NATS body cache (result=hit) or read from the object store (result=miss)."}, []string{"result"}),
		bodyCacheErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "flamestream_indexer_body_cache_errors_total",
			Help: "Batches whose body-cache request failed (their bodies were read from the object store)."}),
	}
	if reg != nil {
		reg.MustRegister(m.batchSize, m.insertLatency, m.profiles, m.rows, m.dlq, m.failures, m.pending, m.repairs,
			m.bodyCache, m.bodyCacheErrors)
	}
	return m
}

// watchLag samples the consumer's pending count every few seconds.
func (ix *Indexer) watchLag(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if info, err := ix.cons.Info(ctx); err == nil {
				ix.metrics.pending.Set(float64(info.NumPending))
			}
		}
	}
}
