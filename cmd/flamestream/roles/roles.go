// Package roles is the role table of the flamestream binary: what each server role opens (PostgreSQL,
// ClickHouse, the object store, NATS), which configuration variables it reads, and how Run starts its
// parts and stops them. It is the only package that imports every role (ingest, indexer, query, webui);
// the binary and the tests that run a whole role start them through it.
package roles

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/config"
	"github.com/flamestream/flamestream/internal/objstore"
	"github.com/flamestream/flamestream/internal/pgdb"
	"github.com/flamestream/flamestream/internal/schema"
	"github.com/flamestream/flamestream/stream"
)

// deps are the connections a role needs; each is opened only when needed.
type deps struct {
	pg       *pgdb.DB
	ch       *chdb.DB
	store    *objstore.Store
	nc       *nats.Conn
	js       jetstream.JetStream
	embedded *stream.Embedded
}

func (d *deps) close() {
	if d.nc != nil {
		_ = d.nc.Drain()
	}
	if d.embedded != nil {
		d.embedded.Shutdown()
	}
	if d.ch != nil {
		d.ch.Close()
	}
	if d.pg != nil {
		d.pg.Close()
	}
	if d.store != nil {
		d.store.Close()
	}
}

// OpenPG connects to PostgreSQL and applies its migrations.
func OpenPG(ctx context.Context, cfg config.Config, log *slog.Logger) (*pgdb.DB, error) {
	pg, err := pgdb.Open(ctx, cfg.PostgresURL)
	if err != nil {
		return nil, err
	}
	applied, err := pg.Migrate(ctx)
	if err != nil {
		pg.Close()
		return nil, err
	}
	if len(applied) > 0 {
		log.Info("postgres migrated", "applied", applied)
	}
	return pg, nil
}

// OpenCH connects to ClickHouse and applies its migrations.
func OpenCH(ctx context.Context, cfg config.Config, log *slog.Logger) (*chdb.DB, error) {
	db, err := chdb.Open(ctx, chdb.Options{Addr: cfg.ClickHouseAddr, User: cfg.ClickHouseUser,
		Password: cfg.ClickHousePassword, Database: cfg.ClickHouseDatabase})
	if err != nil {
		return nil, err
	}
	applied, err := schema.Migrate(ctx, db)
	if err != nil {
		db.Close()
		return nil, err
	}
	log.Info("clickhouse ready", "revision", db.Revision, "legacy_protocol", db.Legacy, "applied", applied)
	return db, nil
}

func openNATS(ctx context.Context, cfg config.Config, log *slog.Logger, embed bool, d *deps) error {
	url := cfg.NATSURL
	if url == "" && embed {
		e, err := stream.StartEmbedded(filepath.Join(cfg.DataDir, "nats"), -1)
		if err != nil {
			return err
		}
		d.embedded = e
		url = e.URL()
		log.Info("embedded nats started", "url", url)
	}
	if url == "" {
		url = nats.DefaultURL
	}
	nc, err := nats.Connect(url, nats.Name("flamestream"), nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true), nats.ReconnectWait(time.Second))
	if err != nil {
		return fmt.Errorf("connect nats %s: %w", url, err)
	}
	d.nc = nc
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	d.js = js
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// A NATS cluster starting with Flamestream may refuse a replicated stream for a moment ("no suitable
	// peers for placement" until every node has joined): try again until the deadline, then fail.
	scfg := stream.Config{Replicas: cfg.NATSReplicas, MaxAge: cfg.StreamMaxAge, MaxBytes: cfg.StreamMaxBytes}
	for wait := 250 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		err := stream.Ensure(sctx, js, scfg)
		if err == nil {
			break
		}
		log.Warn("jetstream streams not ready; trying again", "in", wait, "err", err)
		select {
		case <-sctx.Done():
			return err
		case <-time.After(wait):
		}
	}
	// The body cache is only a cache: without it (a server short of memory, say) the indexer reads every
	// body from the object store.
	if err := stream.EnsureBodies(sctx, js, cfg.BodyCacheBytes); err != nil {
		log.Warn("body cache unavailable; the indexer reads every profile from the object store", "err", err)
	}
	return nil
}

func openStore(ctx context.Context, cfg config.Config) (*objstore.Store, error) {
	st, err := objstore.Open(objstore.Options{Endpoint: cfg.S3Endpoint, AccessKey: cfg.S3AccessKey,
		SecretKey: cfg.S3SecretKey, Bucket: cfg.S3Bucket, Region: cfg.S3Region, Secure: cfg.S3Secure})
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return st, st.EnsureBucket(sctx)
}

// Run starts the role named name ("all" for every role) and blocks until ctx ends. It opens exactly what
// the role's table entry declares, and closes it only after every goroutine of the role ended.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger, name string) error {
	role, ok := Lookup(name)
	if !ok {
		return fmt.Errorf("unknown role %q", name)
	}
	d := &deps{}
	defer d.close()
	if err := d.open(ctx, cfg, log, role.Opens); err != nil {
		return err
	}
	if d.pg != nil && cfg.AdminUser != "" && cfg.AdminPassword != "" {
		if err := d.pg.SetUser(ctx, cfg.AdminUser, cfg.AdminPassword); err != nil {
			return err
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// Every goroutine of the role is one of tasks, started in g below: the first to fail stops the others
	// through gctx, and Run returns only after all of them ended, before the deferred d.close closes the
	// pools they use. Everything that can fail is set up before the first goroutine starts.
	var tasks []func(ctx context.Context) error
	r := opsRouter(d, reg, log)
	for _, p := range role.parts {
		t, err := p.start(ctx, cfg, log, d, reg, r)
		if err != nil {
			return err
		}
		tasks = append(tasks, t...)
	}
	addr := role.Addr(cfg)
	tasks = append(tasks, func(ctx context.Context) error { return serve(ctx, log, addr, r) })
	g, gctx := errgroup.WithContext(ctx)
	for _, task := range tasks {
		g.Go(func() error { return task(gctx) })
	}
	return g.Wait()
}

// consumerAckWait is the ack wait of the indexer consumer Run creates (or updates): how soon the events
// of an indexer that died go to another. batchTimeout bounds one batch; in-progress acks keep its events
// meanwhile. It is long because a batch past its deadline has its ClickHouse insert cut, and an insert cut
// while the server applies it to samples and its materialized views may reach some of them only: the bound
// is there for a stalled server, not for a big batch on a busy one (a million-stack profile took 45 s to
// go through the views on this project's 2-core test machine under load).
const (
	consumerAckWait = time.Minute
	batchTimeout    = 5 * time.Minute
)

// opsRouter is the router every role starts from: request ids, panics to 500, and the operations routes.
func opsRouter(d *deps, reg *prometheus.Registry, log *slog.Logger) chi.Router {
	r := chi.NewRouter()
	r.Use(middleware.RequestID, middleware.Recoverer)
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"message":"ok"}` + "\n"))
	})
	r.Get("/readyz", func(w http.ResponseWriter, r *http.Request) {
		failed := readiness(r.Context(), d, log)
		w.Header().Set("Content-Type", "application/json")
		if len(failed) > 0 {
			w.Header().Set("Retry-After", "5")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, `{"message":"not ready","detail":%q}`+"\n", strings.Join(failed, "; "))
			return
		}
		_, _ = w.Write([]byte(`{"message":"ready"}` + "\n"))
	})
	r.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return r
}

// readinessTimeout bounds one /readyz: the dependencies are checked at the same time, each within it.
const readinessTimeout = 3 * time.Second

// readiness pings the dependencies the role uses and returns, for each one that fails, its name and a
// generic reason. The errors themselves (socket addresses, server messages) go to the log only: a probe's
// reply is no place for them.
func readiness(ctx context.Context, d *deps, log *slog.Logger) []string {
	ctx, cancel := context.WithTimeout(ctx, readinessTimeout)
	defer cancel()
	type check struct {
		name string
		ping func(context.Context) error
	}
	var checks []check
	if d.pg != nil {
		checks = append(checks, check{"postgres", d.pg.Ping})
	}
	if d.ch != nil {
		checks = append(checks, check{"clickhouse", d.ch.Ping})
	}
	if d.store != nil {
		checks = append(checks, check{"s3", d.store.Ping})
	}
	if d.js != nil {
		checks = append(checks, check{"jetstream", func(ctx context.Context) error { _, err := d.js.AccountInfo(ctx); return err }})
	}
	reasons := make([]string, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.ping(ctx)
			if err == nil {
				return
			}
			log.Warn("not ready", "dependency", c.name, "err", err)
			reasons[i] = c.name + ": unavailable"
			if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
				reasons[i] = c.name + ": no answer within " + readinessTimeout.String()
			}
		}()
	}
	wg.Wait()
	var failed []string
	for _, r := range reasons {
		if r != "" {
			failed = append(failed, r)
		}
	}
	return failed
}

// serve runs an HTTP server until ctx ends, then shuts it down gracefully, and returns only after its
// listening goroutine ended.
func serve(ctx context.Context, log *slog.Logger, addr string, h http.Handler) error {
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 150 * time.Second, WriteTimeout: 150 * time.Second, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("listening", "addr", "http://"+addr)
	select {
	case err := <-errc:
		return fmt.Errorf("listen %s: %w", addr, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		// Requests still running after the grace period are cut: their contexts end, and the pools
		// close the connections they hold, before Run closes the pools.
		_ = srv.Close()
	}
	<-errc
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shut down %s: %w", addr, err)
	}
	return nil
}
