// Package soak runs Flamestream under steady agent-shaped load while its indexer, ClickHouse, NATS and S3
// server are killed (SIGKILL) and restarted at random, then checks what an operator relies on: every
// upload answered 200 is counted exactly once (per profile in ClickHouse, per rollup table, and in the
// flame graph the query API returns), every killed process comes back and the roles become ready again,
// and the roles' memory and goroutines stay flat.
//
// The soak owns every server it kills: its own clickhouse-server, nats-server and versitygw on free ports
// of 127.0.0.1 under one directory, and the ingest, indexer and query roles as separate processes of the
// flamestream binary. PostgreSQL is shared (a fresh database, never stopped). Shared servers other tests
// use are never touched.
package soak

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/pgdb"
)

// Config says how long and how hard to soak, and where the programs are.
type Config struct {
	// BuildRollups builds the per-dimension rollups (indexer.BuildEverything) before the tables are
	// checked; nil leaves them out of the check. A parameter because internal/ may not import a role.
	BuildRollups func(context.Context, *chdb.DB) error
	// Duration is how long load is offered. Faults happen between Warmup and Duration-Quiet.
	Duration time.Duration
	// Seed makes the uploads and the fault schedule repeatable.
	Seed uint64
	// Rate is the uploads per second offered across Agents hosts; Workers bounds the requests in flight.
	Rate    float64
	Agents  int
	Workers int
	// Stacks, Lines and Pool shape the profiles (see demo.Shape and demo.NewLoadFleet).
	Stacks, Lines, Pool int
	// Service is the service name the uploads go to.
	Service string
	// Targets are what may be killed (Indexer, ClickHouse, NATS, S3); each is killed at least once when
	// the fault window allows it, in an order drawn from Seed, then at random.
	Targets []string
	// MinDown and MaxDown bound how long a killed process stays down; MinGap and MaxGap the fault-free
	// time between the recovery of one fault and the next fault.
	MinDown, MaxDown, MinGap, MaxGap time.Duration
	// Warmup and Quiet are fault-free at the start and end of the load.
	Warmup, Quiet time.Duration
	// Recover bounds the wait for a restarted process, then every role, to be ready again.
	Recover time.Duration
	// RetryGrace is how long uploads still unanswered when the load ends keep being retried.
	RetryGrace time.Duration
	// Drain bounds the wait, after the load, for every accepted profile to be indexed.
	Drain time.Duration
	// SampleEvery is how often RSS, goroutines and lag are sampled; QueryEvery how often a flame graph is
	// read during the load (0: never).
	SampleEvery, QueryEvery time.Duration
	// GrowthRatio and the slacks bound how much a role's RSS and goroutines may grow over the second half
	// of the load: last third over first third of its samples, at most first*GrowthRatio + slack.
	GrowthRatio      float64
	RSSSlackMiB      float64
	GoroutineSlack   float64
	Binary           string // the flamestream binary
	NATSServer       string // nats-server
	VersityGW        string // versitygw
	ClickHouseServer string // clickhouse-server
	// PostgresURL is the shared PostgreSQL (its database is replaced by a fresh one).
	PostgresURL string
	// Dir holds the servers' data and every log; a new temporary directory if empty. Run never removes
	// it (the caller prints the report first: removing the data of a long soak takes a while).
	Dir string
	// Progress receives a line per sample and per fault (nil: nothing).
	Progress io.Writer
}

// Defaults fills the zero fields of c with the values of a 30-minute soak on a small machine.
func (c *Config) Defaults() {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Duration, 30*time.Minute)
	def(&c.MinDown, 2*time.Second)
	def(&c.MaxDown, 10*time.Second)
	def(&c.MinGap, 10*time.Second)
	def(&c.MaxGap, 60*time.Second)
	def(&c.Warmup, min(c.Duration/10, time.Minute))
	def(&c.Quiet, min(c.Duration/6, 2*time.Minute))
	def(&c.Recover, 90*time.Second)
	def(&c.RetryGrace, 2*time.Minute)
	def(&c.Drain, 3*time.Minute)
	def(&c.SampleEvery, 10*time.Second)
	c.Seed = cmp.Or(c.Seed, 1)
	c.Rate = cmp.Or(c.Rate, 20)
	c.Agents = cmp.Or(c.Agents, 50)
	c.Workers = cmp.Or(c.Workers, 64)
	c.Stacks = cmp.Or(c.Stacks, 2000)
	c.Lines = cmp.Or(c.Lines, 60)
	c.Pool = cmp.Or(c.Pool, 32)
	if c.Service == "" {
		c.Service = "soak"
	}
	if c.Targets == nil {
		c.Targets = Targets
	}
	if c.GrowthRatio == 0 {
		c.GrowthRatio = 0.25
	}
	if c.RSSSlackMiB == 0 {
		c.RSSSlackMiB = 32
	}
	if c.GoroutineSlack == 0 {
		c.GoroutineSlack = 25
	}
	if c.NATSServer == "" {
		c.NATSServer = "nats-server"
	}
	if c.VersityGW == "" {
		c.VersityGW = "versitygw"
	}
	if c.ClickHouseServer == "" {
		c.ClickHouseServer = "clickhouse-server"
	}
}

// Fault is one kill and restart.
type Fault struct {
	Target string `json:"target"`
	// At is when it was killed, seconds after the load started; Down how long it stayed down.
	At   float64 `json:"at_s"`
	Down float64 `json:"down_s"`
	// Back is the time from the restart until the process served again; Recovered until every role
	// answered /readyz 200 again (-1: not within Config.Recover).
	Back      float64 `json:"back_s"`
	Recovered float64 `json:"recovered_s"`
	// Unready lists the roles that were already not ready when the fault began (not waited for).
	Unready []string `json:"unready_before,omitempty"`
	Err     string   `json:"error,omitempty"`
}

// RoleSample is one role's figures at a sample.
type RoleSample struct {
	PID        int     `json:"pid"`
	RSSMiB     float64 `json:"rss_mib"`
	Goroutines float64 `json:"goroutines"` // -1: /metrics did not answer
}

// Sample is the state of the soak at one moment.
type Sample struct {
	T     float64               `json:"t_s"` // seconds after the load started (negative: before it)
	Roles map[string]RoleSample `json:"roles"`
	// Acked is the uploads answered 200 so far; Indexed the profiles in ClickHouse (-1: ClickHouse down);
	// Pending the events the indexer's consumer has not been handed yet (its own metric, -1: unknown).
	Acked   int64   `json:"acked"`
	Indexed int64   `json:"indexed"`
	Pending float64 `json:"pending"`
	Fault   string  `json:"fault,omitempty"` // the target down at that moment
}

// Growth is how a role's memory moved over the second half of the load.
type Growth struct {
	Samples             int      `json:"samples"`
	RSSFirstMiB         float64  `json:"rss_first_mib"`
	RSSLastMiB          float64  `json:"rss_last_mib"`
	GoroutinesFirst     float64  `json:"goroutines_first"`
	GoroutinesLast      float64  `json:"goroutines_last"`
	GoroutinesIdleStart float64  `json:"goroutines_idle_start"`
	GoroutinesIdleEnd   float64  `json:"goroutines_idle_end"`
	Restarts            int      `json:"restarts"`
	UnexpectedExits     []string `json:"unexpected_exits,omitempty"`
}

// Totals compares what was accepted with what Flamestream holds.
type Totals struct {
	// Expected is the sum of the counts of every profile that must be in ClickHouse (the accepted ones,
	// plus unanswered ones that did get indexed).
	Expected uint64 `json:"expected"`
	// Tables is sum(count) of the service in samples and in every rollup.
	Tables map[string]uint64 `json:"tables"`
	// API is the root value of the flame graph over the whole range (read twice: cold and warm).
	API []uint64 `json:"api"`
	// Profiles is how many distinct profiles samples hold; Missing, Double, Wrong and Stray count accepted
	// profiles with no rows, with exactly twice their count, with another count or more than one profile
	// id, and rows of no upload at all (or of an upload answered 4xx or never sent).
	Profiles int `json:"profiles"`
	Missing  int `json:"missing"`
	Double   int `json:"double"`
	Wrong    int `json:"wrong"`
	Stray    int `json:"stray"`
	// IndexedAfter is how long after the load every accepted profile was in ClickHouse (-1: not within
	// Config.Drain).
	IndexedAfter float64  `json:"indexed_after_s"`
	Examples     []string `json:"examples,omitempty"`
}

// Report is the outcome of a soak.
type Report struct {
	Seed            uint64             `json:"seed"`
	DurationSeconds float64            `json:"duration_s"`
	Rate            float64            `json:"rate"`
	Agents          int                `json:"agents"`
	Dir             string             `json:"dir"`
	Offered         int64              `json:"offered"`
	Missed          int64              `json:"missed"`
	Acked           int64              `json:"acked"`
	Unanswered      int64              `json:"unanswered"` // never answered 200 nor 4xx (retries ran out)
	Rejected        int64              `json:"rejected"`
	Attempts        int64              `json:"attempts"`
	Statuses        map[string]int64   `json:"statuses"`
	Rejects         []string           `json:"rejects,omitempty"`
	Queries         map[string]int64   `json:"queries_during_load"`
	QueryErrors     []string           `json:"query_errors,omitempty"`
	Faults          []Fault            `json:"faults"`
	Samples         []Sample           `json:"samples"`
	Growth          map[string]*Growth `json:"growth"`
	Totals          Totals             `json:"totals"`
	// Failures says what went wrong; empty when the soak passed.
	Failures []string `json:"failures"`
}

// OK is true when nothing failed.
func (r *Report) OK() bool { return len(r.Failures) == 0 }

func (r *Report) fail(format string, args ...any) {
	r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
}

// Run soaks Flamestream as cfg says. It returns an error only when the soak could not run (a server that
// does not start); what the soak found is in the report's Failures.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.Defaults()
	if cfg.Binary == "" || cfg.PostgresURL == "" {
		return nil, errors.New("soak: Binary and PostgresURL are required")
	}
	for _, t := range cfg.Targets {
		if !slices.Contains(Targets, t) {
			return nil, fmt.Errorf("soak: unknown target %q (want %s)", t, strings.Join(Targets, ", "))
		}
	}
	if cfg.MinDown > cfg.MaxDown || cfg.MinGap > cfg.MaxGap {
		return nil, errors.New("soak: MinDown/MinGap above MaxDown/MaxGap")
	}
	if cfg.Duration <= 0 || cfg.Rate <= 0 || cfg.Agents < 1 || cfg.Workers < 1 || cfg.Lines < 1 || cfg.Pool < 1 || cfg.SampleEvery <= 0 {
		return nil, errors.New("soak: Duration, Rate, Agents, Workers, Lines, Pool and SampleEvery must be positive")
	}
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "flamestream-soak-")
		if err != nil {
			return nil, err
		}
		dir = d
	}
	rep := &Report{Seed: cfg.Seed, Rate: cfg.Rate, Agents: cfg.Agents, Dir: dir, Queries: map[string]int64{},
		Growth: map[string]*Growth{}}
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	fmt.Fprintf(progress, "soak: servers and roles under %s\n", dir)
	st, err := startStack(ctx, cfg, dir)
	if err != nil {
		rep.fail("start: %v", err)
		return rep, err
	}
	defer st.stop()

	pg, err := pgdb.Open(ctx, st.pgURL)
	if err != nil {
		return rep, err
	}
	var agentToken, readToken string
	_, agentToken, err = pg.CreateToken(ctx, "soak", pgdb.KindAgent, cfg.Service)
	if err == nil {
		_, readToken, err = pg.CreateToken(ctx, "soak-read", pgdb.KindRead, cfg.Service)
	}
	pg.Close()
	if err != nil {
		return rep, fmt.Errorf("create tokens: %w", err)
	}
	ld, err := newLoad(cfg, "http://"+st.addrs["ingest"], agentToken)
	if err != nil {
		return rep, err
	}
	s := &soaker{cfg: cfg, st: st, ld: ld, rep: rep, progress: progress, readToken: readToken}
	return s.run(ctx)
}

// soaker is one run in progress.
type soaker struct {
	cfg       Config
	st        *stack
	ld        *load
	rep       *Report
	progress  io.Writer
	readToken string
	t0        time.Time

	mu   sync.Mutex
	down string // the target killed right now
}

func (s *soaker) since() float64 { return time.Since(s.t0).Seconds() }

func (s *soaker) run(ctx context.Context) (*Report, error) {
	cfg, rep := s.cfg, s.rep
	idleStart := s.sample(ctx, -1)
	rep.Samples = append(rep.Samples, idleStart)
	s.t0 = time.Now()

	offerCtx, stopOffer := context.WithTimeout(ctx, cfg.Duration)
	defer stopOffer()
	retryCtx, stopRetry := context.WithTimeout(ctx, cfg.Duration+cfg.RetryGrace)
	defer stopRetry()
	bgCtx, stopBG := context.WithCancel(ctx)
	var bg sync.WaitGroup
	bg.Go(func() { s.sampleLoop(bgCtx) })
	if cfg.QueryEvery > 0 {
		bg.Go(func() { s.queryLoop(offerCtx) })
	}
	var chaos sync.WaitGroup
	chaos.Go(func() { s.chaos(offerCtx) })

	s.ld.run(offerCtx, retryCtx)
	chaos.Wait()
	rep.DurationSeconds = s.ld.offerEnd.Sub(s.t0).Seconds()
	fmt.Fprintf(s.progress, "soak %5.0fs  load over: %d offered, %d accepted\n", s.since(), s.ld.offered.Load(), s.ld.ackedN.Load())

	// Every process must still be up (the chaos restarted what it killed and waited for it) and every
	// role ready: by now the last fault is long over, so a short bound is enough.
	for _, name := range append(append([]string(nil), roles...), ClickHouse, NATS, S3) {
		p := s.st.proc(name)
		if err := p.waitReady(ctx, min(cfg.Recover, 10*time.Second)); err != nil {
			rep.fail("%s not ready at the end of the load: %v", name, err)
		}
	}
	s.verify(ctx)
	stopBG()
	bg.Wait()

	// Idle figures: with the load's connections closed, the goroutines must be back where they started.
	s.ld.client.CloseIdleConnections()
	time.Sleep(2 * time.Second)
	idleEnd := s.sample(ctx, s.since())
	rep.Samples = append(rep.Samples, idleEnd)
	s.summarize(idleStart, idleEnd)
	if rep.OK() {
		fmt.Fprintln(s.progress, "soak: passed")
	} else {
		fmt.Fprintf(s.progress, "soak: FAILED (logs in %s)\n", rep.Dir)
	}
	return rep, nil
}

// chaos kills and restarts targets, one at a time, until ctx ends or the fault window closes.
func (s *soaker) chaos(ctx context.Context) {
	cfg := s.cfg
	if len(cfg.Targets) == 0 {
		return
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0xc4a05))
	between := func(lo, hi time.Duration) time.Duration {
		if hi <= lo {
			return lo
		}
		return lo + time.Duration(rng.Int64N(int64(hi-lo)))
	}
	// Every target once, in a seeded order, then at random.
	order := slices.Clone(cfg.Targets)
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	last := cfg.Duration - cfg.Quiet - cfg.MaxDown // no fault may still be down when the quiet end starts
	wait := cfg.Warmup
	for n := 0; ; n++ {
		if !sleepCtx(ctx, wait) {
			return
		}
		if time.Since(s.t0) > last {
			return
		}
		target := order[n%len(order)]
		if n >= len(order) {
			target = cfg.Targets[rng.IntN(len(cfg.Targets))]
		}
		down := between(cfg.MinDown, cfg.MaxDown)
		s.fault(ctx, target, down)
		wait = between(cfg.MinGap, cfg.MaxGap)
	}
}

// fault kills target, keeps it down for down, starts it again and waits for it and every role.
func (s *soaker) fault(ctx context.Context, target string, down time.Duration) {
	p := s.st.proc(target)
	// Only the roles ready before the fault must be ready after it: a role still failing from an earlier
	// fault is not blamed on this one again.
	var watch, unready []string
	for _, role := range roles {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		if s.st.roles[role].ready(cctx) == nil || role == target {
			watch = append(watch, role)
		} else {
			unready = append(unready, role)
		}
		cancel()
	}
	f := Fault{Target: target, At: s.since(), Down: down.Seconds(), Back: -1, Recovered: -1, Unready: unready}
	s.mu.Lock()
	s.down = target
	s.mu.Unlock()
	fmt.Fprintf(s.progress, "soak %5.0fs  kill -9 %s (pid %d) for %.1fs\n", f.At, target, p.pid(), f.Down)
	p.kill()
	time.Sleep(down) // not cut short: a fault always ends with a restart
	s.mu.Lock()
	s.down = ""
	s.mu.Unlock()
	restarted := time.Now()
	if err := p.start(); err != nil {
		f.Err = err.Error()
	} else if err := p.waitReady(context.WithoutCancel(ctx), s.cfg.Recover); err != nil {
		f.Err = err.Error()
	} else {
		f.Back = time.Since(restarted).Seconds()
		var errs []string
		for _, role := range watch {
			if err := s.st.roles[role].waitReady(context.WithoutCancel(ctx), s.cfg.Recover-time.Since(restarted)); err != nil {
				errs = append(errs, err.Error())
			}
		}
		if len(errs) == 0 {
			f.Recovered = time.Since(restarted).Seconds()
		} else {
			f.Err = strings.Join(errs, "; ")
		}
	}
	if f.Err != "" {
		s.rep.fail("after %s was killed at %.0fs: %s", target, f.At, f.Err)
	}
	fmt.Fprintf(s.progress, "soak %5.0fs  %s back after %.1fs, every role ready after %.1fs %s\n", s.since(), target, f.Back, f.Recovered, f.Err)
	s.mu.Lock()
	s.rep.Faults = append(s.rep.Faults, f)
	s.mu.Unlock()
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
