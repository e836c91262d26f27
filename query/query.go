// Package query serves the flame-graph, table, timeline, diff and export API over ClickHouse, the metadata
// API over PostgreSQL, and the web UI.
package query

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/flame"
	"github.com/flamestream/flamestream/internal/pgdb"
)

// Config holds the query API's settings.
type Config struct {
	// CookieSecure marks session cookies Secure (behind TLS).
	CookieSecure bool
	// MaxNodes is the default node budget of a flame graph.
	MaxNodes int
	// Timeout bounds one API call.
	Timeout time.Duration
	// MaxQueryMemory bounds the memory of one ClickHouse query (max_memory_usage); default 2 GiB.
	MaxQueryMemory uint64
	// MaxQueryRows bounds the rows one ClickHouse query may return (max_result_rows); default 5 million.
	MaxQueryRows uint64
	// RawDays and HourDays are the retention of the raw samples and of the hour rollups (0: kept forever):
	// a range reaching past them is widened to whole hours or days (see Rollups.Widen).
	RawDays, HourDays int
	// CacheBytes bounds the segment cache (see segCache); default 256 MiB, negative turns it off.
	CacheBytes int
	// TrieNodes bounds the nodes of the stack tries kept across queries (see tries); default 20 million.
	TrieNodes int
	// TrustedProxies are the reverse proxies whose X-Forwarded-For names the client (see clientAddr).
	TrustedProxies []netip.Prefix
}

// Server is the query API.
type Server struct {
	cfg   Config
	ch    *chdb.DB
	meta  *pgdb.DB
	log   *slog.Logger
	tries *tries
	cache *segCache // nil when off
	// logins limits failed logins per user and per client address (see userLoginPolicy).
	logins *loginLimiter

	mu        sync.Mutex
	rollups   *Rollups // nil until probed
	cacheable bool     // the tables' parts are visible in system.parts
}

// New returns a ready query server.
func New(cfg Config, ch *chdb.DB, meta *pgdb.DB, log *slog.Logger) *Server {
	if cfg.MaxNodes <= 0 {
		cfg.MaxNodes = DefaultMaxNodes
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxQueryMemory == 0 {
		cfg.MaxQueryMemory = DefaultMaxQueryMemory
	}
	if cfg.MaxQueryRows == 0 {
		cfg.MaxQueryRows = DefaultMaxQueryRows
	}
	if cfg.TrieNodes <= 0 {
		cfg.TrieNodes = DefaultTrieNodes
	}
	srv := &Server{cfg: cfg, ch: ch, meta: meta, log: log.With("role", "query"), tries: newTries(cfg.TrieNodes),
		logins: newLoginLimiter(loginLimitEntries, time.Now)}
	if cfg.CacheBytes == 0 {
		cfg.CacheBytes = DefaultCacheBytes
	}
	if cfg.CacheBytes > 0 {
		srv.cache = newSegCache(cfg.CacheBytes)
	}
	return srv
}

// Routes mounts the API under /api/v1 on r.
func (s *Server) Routes(r chi.Router) {
	r.Post("/api/v1/login", s.handle(s.login))
	r.Group(func(r chi.Router) {
		r.Use(strictQuery, s.authenticate)
		// The API's description is for its users: like every route but login, it needs a session or a token.
		r.Get("/api/v1/openapi.json", serveOpenAPI)
		r.Post("/api/v1/logout", s.handle(s.logout))
		r.Get("/api/v1/me", s.handle(s.me))
		r.Get("/api/v1/services", s.handle(s.services))
		r.Get("/api/v1/flamegraph", s.handle(s.flamegraph))
		r.Get("/api/v1/timeline", s.handle(s.timeline))
		r.Get("/api/v1/metrics", s.handle(s.metrics))
		r.Get("/api/v1/top", s.handle(s.top))
		r.Get("/api/v1/function", s.handle(s.function))
		r.Get("/api/v1/functions", s.handle(s.functions))
		r.Get("/api/v1/filters", s.handle(s.filterOptions))
		r.Get("/api/v1/diff", s.handle(s.diff))
		r.Get("/api/v1/export", s.handle(s.export))
		r.Get("/api/v1/agents", s.handle(s.agents))
		r.Get("/api/v1/agents/logs", s.handle(s.agentLogs))
		r.Group(func(r chi.Router) {
			r.Use(requireUser)
			r.Get("/api/v1/tokens", s.handle(s.listTokens))
			r.Post("/api/v1/tokens", s.handle(s.createToken))
			r.Delete("/api/v1/tokens/{id}", s.handle(s.revokeToken))
			r.Get("/api/v1/settings/{service}", s.handle(s.getSettings))
			r.Put("/api/v1/settings/{service}", s.handle(s.putSettings))
			r.Get("/api/v1/views", s.handle(s.listViews))
			r.Post("/api/v1/views", s.handle(s.saveView))
			r.Delete("/api/v1/views/{id}", s.handle(s.deleteView))
		})
	})
}

// Error is an API error with its status; every error reply is {"message", "detail"}.
type Error struct {
	Status  int
	Message string
	Detail  string
	// cause is an error from a database kept out of Detail (see fromDatabase): handle logs it.
	cause error
}

func (e *Error) Error() string { return e.Message + ": " + e.Detail }

func badRequest(msg string, err error) *Error {
	e := &Error{Status: http.StatusBadRequest, Message: msg}
	switch {
	case err == nil:
	case fromDatabase(err):
		e.cause, e.Detail = err, "the server log has the cause"
	default:
		e.Detail = err.Error()
	}
	return e
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeTree writes a flame-graph tree as JSON, the bytes encoding/json would write, without reflection
// (see flame.Node.AppendJSON); with totals the root always carries total and base_total.
func writeTree(w http.ResponseWriter, root *flame.Node, totals bool) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if root.WriteJSON(w, totals) == nil {
		_, _ = w.Write([]byte{'\n'})
	}
}

// handle adapts an error-returning handler and maps its error to a JSON reply in one place.
func (s *Server) handle(h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		// A reply never carries a database's text (SQL, addresses, PostgreSQL's own messages): the log has
		// it, and the reply the request id to find it by.
		var e *Error
		if !errors.As(err, &e) {
			e = &Error{Status: http.StatusInternalServerError, Message: "internal error", Detail: "the server log has the cause"}
			if id := middleware.GetReqID(r.Context()); id != "" {
				e.Detail += " (request id " + id + ")"
			}
			switch chdb.LimitOf(err) {
			case chdb.LimitMemory:
				e = &Error{Status: http.StatusUnprocessableEntity, Message: "query needs too much memory", Detail: narrow}
			case chdb.LimitRows:
				e = &Error{Status: http.StatusUnprocessableEntity, Message: "query returns too many rows", Detail: narrow}
			case chdb.LimitTime:
				e = &Error{Status: http.StatusGatewayTimeout, Message: "query took too long", Detail: narrow}
			default:
				if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errTimeout) {
					e = &Error{Status: http.StatusGatewayTimeout, Message: "query took too long", Detail: narrow}
				}
				if errors.Is(err, chdb.ErrUnavailable) {
					e = &Error{Status: http.StatusServiceUnavailable, Message: "profile store unavailable", Detail: "retry later"}
				}
				if textRefused(err) {
					e = errBadText
				}
			}
			s.log.Error("request failed", "path", r.URL.Path, "status", e.Status, "err", err)
		} else if e.cause != nil {
			if textRefused(e.cause) {
				e = errBadText
			}
			s.log.Warn("request refused", "path", r.URL.Path, "status", e.Status, "err", e.cause)
		}
		if e.Status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", strconv.Itoa(10))
		}
		writeJSON(w, e.Status, map[string]string{"message": e.Message, "detail": e.Detail})
	}
}

var errTimeout = errors.New("query timeout")

// errBadText answers a value PostgreSQL refused as text that no check before it caught.
var errBadText = &Error{Status: http.StatusBadRequest, Message: "bad text in the request",
	Detail: "names and values must be valid UTF-8 without NUL bytes"}

const narrow = "narrow the time range or add filters"

// limits are the ClickHouse limits of one API query; the time limit matches the API call's timeout.
func (s *Server) limits() chdb.Limits {
	return chdb.Limits{MaxMemory: s.cfg.MaxQueryMemory, MaxResultRows: s.cfg.MaxQueryRows, MaxExecutionTime: s.cfg.Timeout}
}
