package roles

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flamestream/flamestream/indexer"
	"github.com/flamestream/flamestream/ingest"
	"github.com/flamestream/flamestream/internal/config"
	"github.com/flamestream/flamestream/internal/procprio"
	"github.com/flamestream/flamestream/query"
	"github.com/flamestream/flamestream/stream"
	"github.com/flamestream/flamestream/webui"
)

// Opens is the set of dependencies a role connects to.
type Opens uint8

// The dependencies a role may open.
const (
	// Postgres is the metadata database (services, tokens, users, settings); opening it runs its migrations.
	Postgres Opens = 1 << iota
	// ClickHouse holds the samples; opening it runs its migrations.
	ClickHouse
	// S3 is the bucket of raw profiles.
	S3
	// NATS is the JetStream server holding the PROFILES stream.
	NATS
	// EmbeddedNATS starts a NATS server in the process when NATS_URL is empty.
	EmbeddedNATS
)

// String names the dependencies, as the usage text lists them.
func (o Opens) String() string {
	var names []string
	for _, x := range []struct {
		o    Opens
		name string
	}{{Postgres, "PostgreSQL"}, {ClickHouse, "ClickHouse"}, {S3, "S3"}, {NATS, "NATS"}, {EmbeddedNATS, "embedded NATS"}} {
		if o&x.o != 0 {
			names = append(names, x.name)
		}
	}
	return strings.Join(names, ", ")
}

// Role is one server subcommand: the dependencies it opens, the parts it runs on them, and where it
// listens (its own API, or only /healthz, /readyz and /metrics).
type Role struct {
	Name    string
	Summary string
	Opens   Opens
	parts   []part
	// listensOnIngest: the role serves on FLAMESTREAM_INGEST_ADDR, the others on FLAMESTREAM_QUERY_ADDR.
	listensOnIngest bool
}

// part is one component a role runs: the variables it reads, and how it mounts its routes on r and returns
// its long-running tasks (each started by Run in its errgroup).
type part struct {
	vars  func() []config.Var
	start func(ctx context.Context, cfg config.Config, log *slog.Logger, d *deps, reg prometheus.Registerer, r chi.Router) ([]func(context.Context) error, error)
}

var (
	ingestPart = part{
		vars: ingest.Vars,
		start: func(ctx context.Context, cfg config.Config, log *slog.Logger, d *deps, reg prometheus.Registerer, r chi.Router) ([]func(context.Context) error, error) {
			s := ingest.New(ingest.ConfigOf(cfg), d.pg, d.store, ingest.JetStreamPublisher(d.js), log, reg)
			if cfg.BodyCacheBytes > 0 {
				s.CacheBodies(stream.NewBodyCache(d.nc))
			}
			s.Routes(r)
			return []func(context.Context) error{s.Run}, nil
		},
	}
	// yieldPart runs ingest.RunYield in a process that runs ingest without the indexer (in one process
	// with it, lowering the priority would slow indexing too).
	yieldPart = part{
		vars: ingest.YieldVars,
		start: func(ctx context.Context, cfg config.Config, log *slog.Logger, d *deps, reg prometheus.Registerer, r chi.Router) ([]func(context.Context) error, error) {
			if cfg.IngestYieldLag <= 0 {
				return nil, nil
			}
			if !procprio.CanLower() {
				log.Info("ingest will not yield the CPU to the indexer: it could not take its priority back (no CAP_SYS_NICE, RLIMIT_NICE < 20)")
				return nil, nil
			}
			backlog := stream.NewBacklog(d.js, stream.IndexerConsumer)
			age := func(ctx context.Context) (time.Duration, error) {
				a, _, err := backlog.Age(ctx)
				return a, err
			}
			yield := func(ctx context.Context) error {
				return ingest.RunYield(ctx, ingest.YieldConfig{Lag: cfg.IngestYieldLag}, age, procprio.Set, log, reg)
			}
			return []func(context.Context) error{yield}, nil
		},
	}
	indexerPart = part{
		vars: func() []config.Var { return config.Join(indexer.Vars(), config.Consumer()) },
		start: func(ctx context.Context, cfg config.Config, log *slog.Logger, d *deps, reg prometheus.Registerer, r chi.Router) ([]func(context.Context) error, error) {
			cons, err := stream.EnsureConsumer(ctx, d.js, cfg.Consumer, consumerAckWait)
			if err != nil {
				return nil, err
			}
			// The batch deadline derives from the consumer's own ack wait (an operator's replay consumer may
			// have another one).
			c, err := indexer.ConfigOf(cfg)
			if err != nil {
				return nil, err
			}
			c.BatchTimeout = batchTimeout
			if cfg.BodyCacheBytes > 0 {
				c.Bodies = stream.NewBodyCache(d.nc).Recreating(d.js, cfg.BodyCacheBytes)
			}
			ix := indexer.New(c, d.ch, d.store, d.js, cons, log, reg)
			if cfg.Consumer != stream.IndexerConsumer {
				// An operator's replay: a progress line on stderr, like the other long commands (replay.go).
				return []func(context.Context) error{ix.Run, replayProgress(cfg.Consumer, cons, os.Stderr, log)}, nil
			}
			return []func(context.Context) error{ix.Run}, nil
		},
	}
	queryPart = part{
		vars: func() []config.Var { return config.Join(query.Vars(), indexer.RetentionVars()) },
		start: func(ctx context.Context, cfg config.Config, log *slog.Logger, d *deps, reg prometheus.Registerer, r chi.Router) ([]func(context.Context) error, error) {
			qcfg, err := query.ConfigOf(cfg)
			if err != nil {
				return nil, err
			}
			qs := query.New(qcfg, d.ch, d.pg, log)
			qs.Routes(r)
			r.Handle("/*", webui.Handler())
			// Learn the recent stacks in the background, so that the first graphs after a start are fast.
			// A failed warm-up is logged, not fatal: queries learn the stacks themselves.
			warm := func(ctx context.Context) error {
				wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
				defer cancel()
				t0 := time.Now()
				n, err := qs.Warm(wctx)
				if err != nil && ctx.Err() == nil {
					log.Warn("query warm-up stopped", "err", err, "stacks", n)
					return nil
				}
				log.Info("query warm-up done", "stacks", n, "took", time.Since(t0).Round(time.Millisecond))
				return nil
			}
			return []func(context.Context) error{warm}, nil
		},
	}
	janitorPart = part{
		vars: func() []config.Var { return config.Join(indexer.JanitorVars(), indexer.RetentionVars()) },
		start: func(ctx context.Context, cfg config.Config, log *slog.Logger, d *deps, reg prometheus.Registerer, r chi.Router) ([]func(context.Context) error, error) {
			if cfg.JanitorInterval <= 0 {
				log.Info("janitor disabled", "interval", cfg.JanitorInterval)
				return nil, nil
			}
			jan := indexer.NewJanitor(d.ch, indexer.RetentionOf(cfg), log)
			jan.Services = d.pg // per-service retention
			if d.store != nil {
				jan.Archive = d.store // archive retention and compaction of the raw uploads
			}
			jan.Compaction = indexer.CompactionOf(cfg)
			// Rollup builds claim their work in NATS where this role has it (all); the janitor role alone
			// relies on ClickHouse refusing a second query of the same id (indexer/rollupbuild.go).
			jan.Builds.Claims = d.js
			jan.Builds.Metrics = indexer.NewBuildMetrics(reg)
			return []func(context.Context) error{func(ctx context.Context) error { return jan.Run(ctx, cfg.JanitorInterval) }}, nil
		},
	}
)

// Table lists the server roles, each with what it opens. A role opens nothing more: the indexer, which
// never reads metadata, does not connect to PostgreSQL; retention (which reads per-service settings from
// PostgreSQL) is the janitor's.
func Table() []Role {
	return []Role{
		{Name: "all", Summary: "every role in one process (NATS embedded unless NATS_URL is set)",
			Opens: Postgres | ClickHouse | S3 | NATS | EmbeddedNATS, parts: []part{ingestPart, indexerPart, queryPart, janitorPart}, listensOnIngest: true},
		{Name: "ingest", Summary: "the agent-facing API", Opens: Postgres | S3 | NATS, parts: []part{ingestPart, yieldPart}, listensOnIngest: true},
		{Name: "indexer", Summary: "the JetStream consumer that writes ClickHouse", Opens: ClickHouse | S3 | NATS, parts: []part{indexerPart}},
		{Name: "query", Summary: "the query API and the web UI", Opens: Postgres | ClickHouse, parts: []part{queryPart}},
		{Name: "janitor", Summary: "drops ClickHouse partitions and archived uploads past retention (per-service settings from PostgreSQL), bundles closed hours of the archive and builds the per-dimension hour and day rollups", Opens: Postgres | ClickHouse | S3, parts: []part{janitorPart}},
	}
}

// Lookup returns the role named name.
func Lookup(name string) (Role, bool) {
	for _, r := range Table() {
		if r.Name == name {
			return r, true
		}
	}
	return Role{}, false
}

// Addr is the address the role serves on: its API, or its operations routes only.
func (r Role) Addr(cfg config.Config) string {
	if r.listensOnIngest {
		return cfg.IngestAddr
	}
	return cfg.QueryAddr
}

// Vars lists the configuration variables the role reads: those of what it opens, then its parts' own.
func (r Role) Vars() []config.Var {
	lists := [][]config.Var{}
	if r.listensOnIngest {
		lists = append(lists, config.IngestAddr())
	} else {
		lists = append(lists, config.QueryAddr())
	}
	lists = append(lists, OpensVars(r.Opens))
	if r.Opens&Postgres != 0 {
		lists = append(lists, config.Admin())
	}
	for _, p := range r.parts {
		lists = append(lists, p.vars())
	}
	return config.Join(append(lists, config.Logging())...)
}

// OpensVars lists the connection variables of the dependencies in o.
func OpensVars(o Opens) []config.Var {
	var lists [][]config.Var
	if o&Postgres != 0 {
		lists = append(lists, config.Postgres())
	}
	if o&ClickHouse != 0 {
		lists = append(lists, config.ClickHouse())
	}
	if o&S3 != 0 {
		lists = append(lists, config.S3())
	}
	if o&NATS != 0 {
		lists = append(lists, config.NATS())
	}
	if o&EmbeddedNATS != 0 {
		lists = append(lists, config.EmbeddedNATS())
	}
	return config.Join(lists...)
}

// Defaults returns the configuration of every role at its defaults (no environment read): what tests
// start a role with before they change it.
func Defaults() config.Config {
	c, err := config.Apply(AllVars(), func(string) string { return "" })
	if err != nil {
		panic(err)
	}
	return c
}

// AllVars lists every variable of every role, the shared ones first.
func AllVars() []config.Var {
	lists := [][]config.Var{config.Shared()}
	for _, r := range Table() {
		lists = append(lists, r.Vars())
	}
	return config.Join(lists...)
}

// open connects to what o names, each only when named, into d; d.close closes what was opened.
func (d *deps) open(ctx context.Context, cfg config.Config, log *slog.Logger, o Opens) error {
	var err error
	if o&Postgres != 0 {
		if d.pg, err = OpenPG(ctx, cfg, log); err != nil {
			return err
		}
	}
	if o&ClickHouse != 0 {
		if d.ch, err = OpenCH(ctx, cfg, log); err != nil {
			return err
		}
	}
	if o&S3 != 0 {
		if d.store, err = openStore(ctx, cfg); err != nil {
			return err
		}
	}
	if o&NATS != 0 {
		if err := openNATS(ctx, cfg, log, o&EmbeddedNATS != 0, d); err != nil {
			return err
		}
	}
	return nil
}
