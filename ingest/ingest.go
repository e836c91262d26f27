// Package ingest is the agent-facing HTTP API: it accepts exactly what the gProfiler agent sends, checks its
// token, stores the raw upload in the object store, publishes the event to JetStream and only then says ok.
//
// Routes (every error reply is JSON {"message", "detail"}; the agent shows "message"):
//
//	GET  /api/v1/health_check, /api/v2/health_check   the agent's start-up probe
//	POST /api/v2/profiles (and /api/v1/profiles)      a profile upload (gzip JSON)
//	POST /api/v1/logs                                 the agent's own log batches (--glogger-server)
//	GET  /api/v1/logs?service=S[&hostname=H]          those logs, newest first (any token valid for S)
//	POST /api/metrics/heartbeat                       dynamic-profiling heartbeat (forks of the agent)
//	POST /api/metrics/command_completion              its command completion report
//	POST /ingest                                      Pyroscope SDKs (folded, lines, pprof; see pyroscope.go)
//	POST /v1development/profiles                      OTLP/HTTP profiles, protobuf or JSON (see otlp.go)
//
// Input contract. What cannot be stored exactly is refused with 400 and a message naming the field (or
// the profile line) and the reason, never changed on the way:
//
//   - Sample counts: at most 4,294,967,295 (ClickHouse's UInt32 samples.count) on a line, and for the total
//     of one stack of one container over the profile (duplicate lines are summed).
//   - start_time and end_time: from 2000-01-01T00:00:00Z to 24 h after the server's clock (so always within
//     ClickHouse's DateTime, 1970 to 2106-02-07T06:28:15Z), and end_time not before start_time.
//   - The service name (header, query parameter or body) and the hostname (upload JSON, the profile's
//     metadata header, a log batch, a heartbeat, a logs query): valid UTF-8 without NUL bytes; a service
//     name is at most 255 bytes once URL-escaped (it names a folder of the object key).
//   - Other metadata text that goes to PostgreSQL (agent version, instance type, cloud provider, container
//     names, run arguments, agent log records, heartbeat fields) is stored with each NUL byte and each
//     invalid UTF-8 sequence replaced by U+FFFD. Frame text and container fields of stack lines go to
//     ClickHouse byte for byte.
//   - /api/v1/profiles reads stack lines without prefix fields whatever the header says (agents started
//     with --profile-api-version v1); /api/v2/profiles takes the layout from the header.
//
// 503 with Retry-After means a server ingest needs is down or too slow, and only that (the agent retries
// it forever); a value PostgreSQL refuses anyway is a 400. A 5xx reply carries a fixed detail: the error
// behind it is logged, never sent.
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
	InsertAgentLogs(ctx context.Context, b pgdb.AgentLogBatch, at time.Time) (bool, error)
	PruneAgentLogs(ctx context.Context, service string, keep int) (int64, error)
	ListAgentLogs(ctx context.Context, q pgdb.AgentLogQuery) ([]pgdb.AgentLog, error)
	RecordHeartbeat(ctx context.Context, h pgdb.Heartbeat, at time.Time) error
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
	// StoreTimeout bounds the metadata writes, the object write and the publish of one upload; past it the
	// agent gets 503 with Retry-After and retries.
	StoreTimeout time.Duration
	// RateLimit is uploads per second per token (0: unlimited); the burst is five seconds' worth.
	RateLimit float64
	// AuthCacheTTL is how long a checked token and a service's settings are remembered (0: not at all). A
	// revoked token or a changed sample threshold takes effect within it.
	AuthCacheTTL time.Duration
	// AgentLogsMaxRows bounds the agent log records kept per service (0: 100,000).
	AgentLogsMaxRows int
	// AgentFlushInterval is how often Run writes the upload counters of known agents (0: 2 s).
	AgentFlushInterval time.Duration
}

// Server is the ingest API.
type Server struct {
	cfg     Config
	meta    Metadata
	store   ObjectPutter
	publish Publisher
	bodies  BodyCache
	log     *slog.Logger
	metrics *metrics

	tokens   *ttlCache[pgdb.Token]
	services *ttlCache[pgdb.Service]
	agents   *agentBook

	mu       sync.Mutex
	limiters map[int64]*rate.Limiter
	// logBatches counts stored log batches per service, to prune every few batches rather than every one.
	logBatches map[string]int
}

// New returns a ready ingest server. reg may be nil.
func New(cfg Config, meta Metadata, store ObjectPutter, publish Publisher, log *slog.Logger, reg prometheus.Registerer) *Server {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxDecompressedBytes <= 0 {
		cfg.MaxDecompressedBytes = DefaultMaxDecompressedBytes
	}
	if cfg.StoreTimeout <= 0 {
		cfg.StoreTimeout = DefaultStoreTimeout
	}
	if cfg.AgentLogsMaxRows <= 0 {
		cfg.AgentLogsMaxRows = DefaultAgentLogsMaxRows
	}
	if cfg.AgentFlushInterval <= 0 {
		cfg.AgentFlushInterval = defaultAgentFlushInterval
	}
	log = log.With("role", "ingest")
	return &Server{cfg: cfg, meta: meta, store: store, publish: publish, log: log, agents: newAgentBook(meta, log),
		metrics: newMetrics(reg), limiters: map[int64]*rate.Limiter{}, logBatches: map[string]int{},
		tokens: newTTLCache[pgdb.Token](cfg.AuthCacheTTL), services: newTTLCache[pgdb.Service](cfg.AuthCacheTTL)}
}

// BodyCache takes the stored body of an upload for the indexer (stream.BodyCache). It never waits and may
// drop a body: the object store has it.
type BodyCache interface {
	Put(id, key string, body []byte) bool
}

// CacheBodies makes the server hand every stored upload body to c before it publishes the event, so that
// the indexer usually finds the body there instead of reading the object store. Call it before serving.
func (s *Server) CacheBodies(c BodyCache) { s.bodies = c }

// Run writes the bookkeeping of uploads in batches until ctx ends, then writes what is left and returns.
// While it runs, the uploads of an agent already known are counted in memory and written once per
// AgentFlushInterval (see agentBook); without it every upload writes its agent's row itself. Requests
// served after ctx ended are recorded synchronously, so a graceful stop loses no count.
func (s *Server) Run(ctx context.Context) error {
	s.agents.run(ctx, s.cfg.AgentFlushInterval)
	return nil
}

// Routes mounts the agent API on r.
func (s *Server) Routes(r chi.Router) {
	r.Get("/api/v1/health_check", s.instrument("health_check", s.healthCheck))
	r.Get("/api/v2/health_check", s.instrument("health_check", s.healthCheck))
	r.Post("/api/v2/profiles", s.instrument("profiles", s.postProfileV2))
	// Agents started with --profile-api-version v1 post here; the body and reply are the same, the stack
	// lines have no prefix fields.
	r.Post("/api/v1/profiles", s.instrument("profiles", s.postProfileV1))
	r.Post("/api/v1/logs", s.instrument("logs", s.postLogs))
	r.Get("/api/v1/logs", s.instrument("logs_query", s.getLogs))
	r.Post("/api/metrics/heartbeat", s.instrument("heartbeat", s.postHeartbeat))
	r.Post("/api/metrics/command_completion", s.instrument("command_completion", s.postCommandCompletion))
	// Other front doors into the same pipeline: Pyroscope SDKs and OTLP profiles (frontdoor.go).
	r.Post("/ingest", s.instrument("pyroscope", s.postPyroscope))
	r.Post("/v1development/profiles", s.instrument("otlp", s.postOTLP))
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
