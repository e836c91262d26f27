// Package ingest is the agent-facing HTTP API: it accepts exactly what the gProfiler agent sends, checks its
// token, stores the raw upload in the object store, publishes the event to JetStream and only then says ok.
package ingest

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/flamestream/flamestream/internal/pgdb"
	"github.com/flamestream/flamestream/stream"
)

// ObjectPutter is what ingest needs from the object store.
type ObjectPutter interface {
	Put(ctx context.Context, key string, body []byte, contentType string) error
}

// Metadata is what ingest needs from the metadata store.
type Metadata interface {
	CheckToken(ctx context.Context, secret string) (pgdb.Token, error)
	TouchService(ctx context.Context, name string, at time.Time) (pgdb.Service, error)
	RecordProfile(ctx context.Context, gpid int64, a pgdb.Agent, at time.Time) (int64, error)
}

// Publisher sends an event and returns once JetStream acknowledged it.
type Publisher func(ctx context.Context, ev stream.Event) error

// JetStreamPublisher publishes through js.
func JetStreamPublisher(js jetstream.JetStream) Publisher {
	return func(ctx context.Context, ev stream.Event) error {
		_, err := stream.Publish(ctx, js, ev)
		return err
	}
}

// Config holds the limits of the ingest API.
type Config struct {
	// MaxBodyBytes caps the compressed body; MaxDecompressedBytes caps what it inflates to.
	MaxBodyBytes         int64
	MaxDecompressedBytes int64
	// StoreTimeout bounds the object write plus the publish; past it the agent gets 503 and retries.
	StoreTimeout time.Duration
	// RateLimit is uploads per second per token (0: unlimited); the burst is five seconds' worth.
	RateLimit float64
}

// Server is the ingest API.
type Server struct {
	cfg     Config
	meta    Metadata
	store   ObjectPutter
	publish Publisher
	log     *slog.Logger
	metrics *metrics
	// Random draws for downsampling; replaceable in tests.
	draw func() float64

	mu       sync.Mutex
	limiters map[int64]*rate.Limiter
}

// New returns a ready ingest server. reg may be nil.
func New(cfg Config, meta Metadata, store ObjectPutter, publish Publisher, log *slog.Logger, reg prometheus.Registerer) *Server {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 16 << 20
	}
	if cfg.MaxDecompressedBytes <= 0 {
		cfg.MaxDecompressedBytes = 128 << 20
	}
	if cfg.StoreTimeout <= 0 {
		cfg.StoreTimeout = 10 * time.Second
	}
	return &Server{cfg: cfg, meta: meta, store: store, publish: publish, log: log.With("role", "ingest"),
		metrics: newMetrics(reg), draw: randFloat, limiters: map[int64]*rate.Limiter{}}
}

// Routes mounts the agent API on r.
func (s *Server) Routes(r chi.Router) {
	r.Get("/api/v1/health_check", s.instrument("health_check", s.healthCheck))
	r.Get("/api/v2/health_check", s.instrument("health_check", s.healthCheck))
	r.Post("/api/v2/profiles", s.instrument("profiles", s.postProfile))
}

// allow applies the per-token rate limit.
func (s *Server) allow(tokenID int64) (bool, time.Duration) {
	if s.cfg.RateLimit <= 0 {
		return true, 0
	}
	s.mu.Lock()
	l, ok := s.limiters[tokenID]
	if !ok {
		l = rate.NewLimiter(rate.Limit(s.cfg.RateLimit), int(s.cfg.RateLimit*5)+1)
		s.limiters[tokenID] = l
	}
	s.mu.Unlock()
	r := l.Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel()
		return false, d
	}
	return true, 0
}
