package ingest

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	bytesIn       prometheus.Counter
	ackLatency    prometheus.Histogram
	storeErrors   prometheus.Counter
	publishErrors prometheus.Counter
	downsampled   prometheus.Counter
	bytesInflated prometheus.Counter
	rateLimited   prometheus.Counter
	storeLatency  prometheus.Histogram
	logRecords    prometheus.Counter
	heartbeats    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flamestream_ingest_requests_total",
			Help: "Agent API requests by route and status code."}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "flamestream_ingest_request_seconds",
			Help: "Agent API request duration by route.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}, []string{"route"}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{Name: "flamestream_ingest_bytes_total",
			Help: "Compressed profile bytes received."}),
		ackLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "flamestream_ingest_publish_ack_seconds",
			Help: "Time from publish to JetStream acknowledgement.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "flamestream_ingest_store_errors_total",
			Help: "Object store writes that failed."}),
		publishErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "flamestream_ingest_publish_errors_total",
			Help: "JetStream publishes that failed."}),
		downsampled: prometheus.NewCounter(prometheus.CounterOpts{Name: "flamestream_ingest_downsampled_total",
			Help: "Profiles archived but not indexed because of the service's sample_threshold."}),
		bytesInflated: prometheus.NewCounter(prometheus.CounterOpts{Name: "flamestream_ingest_decompressed_bytes_total",
			Help: "Bytes the accepted gzip bodies inflated to."}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{Name: "flamestream_ingest_rate_limited_total",
			Help: "Uploads refused with 429 by the per-token rate limit."}),
		storeLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "flamestream_ingest_store_seconds",
			Help: "Time to write one raw profile to the object store.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		logRecords: prometheus.NewCounter(prometheus.CounterOpts{Name: "flamestream_ingest_agent_log_records_total",
			Help: "Agent log records stored."}),
		heartbeats: prometheus.NewCounter(prometheus.CounterOpts{Name: "flamestream_ingest_heartbeats_total",
			Help: "Agent heartbeats received."}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.bytesIn, m.ackLatency, m.storeErrors, m.publishErrors, m.downsampled,
			m.bytesInflated, m.rateLimited, m.storeLatency, m.logRecords, m.heartbeats)
	}
	return m
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// instrument adapts an error-returning handler: it writes the error reply and records the metrics.
func (s *Server) instrument(route string, h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		if err := h(sw, r); err != nil {
			writeError(sw, err)
			if sw.code >= 500 {
				s.log.Error("request failed", "route", route, "code", sw.code, "err", err)
			} else {
				s.log.Info("request refused", "route", route, "code", sw.code, "err", err)
			}
		}
		s.metrics.requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
		s.metrics.duration.WithLabelValues(route).Observe(time.Since(t0).Seconds())
	}
}
