package soak

// The pipeline bench: how fast Flamestream takes profiles of one shape from upload to queryable, and what
// that costs in CPU per profile in every process involved. It reuses the soak's own servers (ClickHouse,
// NATS, versitygw on free ports, the roles as processes of the flamestream binary), without faults.
//
// Queryable means: the profile's rows are in samples and in every rollup. The indexer writes each batch
// with a marker row in the same INSERT, which the views carry into every rollup (see indexer/ledger.go),
// and the batch ledger says which profiles a batch holds, so a poller that sees a batch's marker in every
// table knows every profile of it became readable. After the run, samples say
// which profile id each upload (host, start) got: each upload's lag is the time its batch's marker was
// first seen minus the time its request was sent.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/demo"
	"github.com/flamestream/flamestream/internal/pgdb"
	"github.com/flamestream/flamestream/internal/schema"
)

// PipelineShape is the shape of the profiles a pipeline bench uploads.
type PipelineShape struct {
	Name string `json:"name"`
	// Lines is the stack lines per profile, Stacks the distinct stacks of the service they are drawn
	// from, MinDepth and MaxDepth the frames per stack (see demo.Shape).
	Lines    int `json:"lines"`
	Stacks   int `json:"stacks"`
	MinDepth int `json:"min_depth"`
	MaxDepth int `json:"max_depth"`
	// Pool is how many different sets of stack lines the uploads cycle through; Agents how many hosts
	// send them (each upload is one host's minute, so Agents × minutes covers the run).
	Pool   int `json:"pool"`
	Agents int `json:"agents"`
}

// PipelineShapes are the presets: the two shapes of issue 15. "60" is an agent-shaped service profile;
// "2000" the big profiles (≈ 830 KB of text each) whose end-to-end rate the issue measured at ≈ 53/s.
// Depth 4–16 gives ≈ 440 bytes a line, like the real agent's profile (74 lines, 41 KB) and the issue's
// 2,000-line one; the generator's usual 20–60 would make them three times larger.
var PipelineShapes = map[string]PipelineShape{
	"60":   {Name: "60", Lines: 60, Stacks: 2000, MinDepth: 4, MaxDepth: 16, Pool: 32, Agents: 2000},
	"2000": {Name: "2000", Lines: 2000, Stacks: 5000, MinDepth: 4, MaxDepth: 16, Pool: 8, Agents: 500},
}

// PipelineConfig says what to offer and for how long.
type PipelineConfig struct {
	Shape PipelineShape
	// BuildRollups builds the per-dimension rollups (indexer.BuildEverything) after the window, measured
	// (see PipelineReport.Built*); nil skips it. A parameter because internal/ may not import a role.
	BuildRollups func(context.Context, *chdb.DB) error
	// Rate is the uploads per second offered; 0 offers at saturation: Workers uploads always in flight.
	Rate    float64
	Workers int
	// Duration is how long uploads are offered; Drain bounds the wait after it for every accepted
	// profile to become queryable; PollEvery is how often the poller looks for new batches.
	Duration, Drain, PollEvery time.Duration
	// Baseline is how long the processes' idle CPU is measured before the load.
	Baseline time.Duration
	// Settle bounds how long the CPU window goes on after every profile is queryable, until ClickHouse is
	// back near idle: the merges of the parts the load wrote are part of what a profile costs (0: 60 s,
	// negative: no settling).
	Settle  time.Duration
	Seed    uint64
	Service string
	// Binary, NATSServer, VersityGW, ClickHouseServer and PostgresURL are as in Config.
	Binary, NATSServer, VersityGW, ClickHouseServer, PostgresURL string
	// Dir holds the servers' data and logs (a new temporary directory if empty; removed after the run
	// unless Keep is set or it was given).
	Dir  string
	Keep bool
	// IndexerBatchWait is the indexer's FLAMESTREAM_BATCH_WAIT; 0 leaves its default (the soak's stack
	// sets 200 ms, which this bench undoes).
	IndexerBatchWait time.Duration
	// ProfileRole, when set, runs that role as `RoleBinary role -pprof ADDR <role>` and writes a CPU
	// profile of it over the load to ProfileOut.
	ProfileRole, RoleBinary, ProfileOut string
	// Progress receives a line every few seconds (nil: nothing).
	Progress io.Writer
}

// ProcessCPU is what one process used over the measured window.
type ProcessCPU struct {
	Name string `json:"name"`
	PID  int    `json:"pid"`
	// Millis is the CPU time over the window, MsPerProfile that divided by the accepted profiles;
	// IdleMsPerSec what it used per second before the load (background work, included in Millis).
	Millis       float64 `json:"cpu_ms"`
	MsPerProfile float64 `json:"cpu_ms_per_profile"`
	IdleMsPerSec float64 `json:"idle_cpu_ms_per_s"`
	Cores        float64 `json:"cores"` // Millis over the window: the average cores busy
	Restarted    bool    `json:"restarted,omitempty"`
	// Processes is, for a row that sums a group of processes (PostgreSQL's), how many there were at the
	// end of the window; PID is 0 then.
	Processes int `json:"processes,omitempty"`
}

// PipelineReport is the outcome of a pipeline bench. Rates are per second of wall time; lags and
// latencies in seconds and milliseconds.
type PipelineReport struct {
	Shape           PipelineShape    `json:"shape"`
	Rate            float64          `json:"rate_offered"` // 0: saturation
	Workers         int              `json:"workers"`
	DurationSeconds float64          `json:"duration_s"`
	BodyBytes       int              `json:"mean_body_bytes"`  // compressed, as sent
	PlainBytes      int              `json:"mean_plain_bytes"` // decompressed
	Offered         int64            `json:"offered"`
	Missed          int64            `json:"missed"` // at a fixed rate: no worker free, never sent
	Accepted        int64            `json:"accepted"`
	Statuses        map[string]int64 `json:"statuses"`
	AcceptedPerSec  float64          `json:"accepted_per_s"`
	IngestP50Ms     float64          `json:"ingest_p50_ms"`
	IngestP99Ms     float64          `json:"ingest_p99_ms"`
	// IngestFirstP99Ms is the p99 of the uploads sent without a gpid (each agent's first: ingest registers
	// the agent and allocates its gpid), IngestLaterP99Ms of the others; FirstUploads counts the first.
	IngestFirstP99Ms float64 `json:"ingest_first_upload_p99_ms"`
	IngestLaterP99Ms float64 `json:"ingest_later_upload_p99_ms"`
	FirstUploads     int64   `json:"first_uploads"`
	// IngestStore* and IngestAck* are the two waits inside an accepted upload, from ingest's histograms
	// over the load: the object-store PUT and JetStream's publish ack. Each is the upper bound of the
	// histogram bucket holding the quantile (-1: not read; +Inf shows as -2).
	// IngestYields and IngestYieldSeconds: how often, and for how long in all, ingest lowered its CPU
	// priority over the window because the indexer was behind (ingest.RunYield); -1 when it does not yield,
	// -2 when they were not read.
	IngestYields       float64 `json:"ingest_yields"`
	IngestYieldSeconds float64 `json:"ingest_yield_s"`
	IngestStoreP50Ms   float64 `json:"ingest_store_p50_ms"`
	IngestStoreP99Ms   float64 `json:"ingest_store_p99_ms"`
	IngestAckP50Ms     float64 `json:"ingest_publish_ack_p50_ms"`
	IngestAckP99Ms     float64 `json:"ingest_publish_ack_p99_ms"`
	// Queryable is how many accepted uploads became queryable; Rows their sample rows.
	Queryable int64 `json:"queryable"`
	Rows      int64 `json:"rows"`
	// IndexedPerSec and IndexedRowsPerSec count what became queryable during the load, over its
	// duration; EndToEnd* count everything, from the first upload sent to the last one queryable.
	IndexedPerSec          float64 `json:"indexed_per_s"`
	IndexedRowsPerSec      float64 `json:"indexed_rows_per_s"`
	EndToEndPerSec         float64 `json:"end_to_end_per_s"`
	EndToEndRowsPerSec     float64 `json:"end_to_end_rows_per_s"`
	AllQueryableAfterLoadS float64 `json:"all_queryable_after_load_s"` // -1: not within Drain
	LagP50S                float64 `json:"lag_p50_s"`
	LagP99S                float64 `json:"lag_p99_s"`
	LagMaxS                float64 `json:"lag_max_s"`
	// WindowSeconds is the CPU window: from the load's start until every accepted profile was queryable
	// (or Drain ran out), then until ClickHouse was back near idle (SettleSeconds of it, -1: still busy
	// after Settle).
	WindowSeconds float64      `json:"cpu_window_s"`
	SettleSeconds float64      `json:"settle_s"`
	CPU           []ProcessCPU `json:"cpu"`
	// PipelineMsPerProfile is the CPU per accepted profile of ingest, indexer, ClickHouse, S3, NATS and
	// the PostgreSQL backends of the bench's database together (not the query role, not the bench's own
	// client, not PostgreSQL's shared auxiliary processes).
	PipelineMsPerProfile float64 `json:"pipeline_cpu_ms_per_profile"`
	// PollerClickHouseMsPerSec is what the bench's own poller costs ClickHouse (measured before the load:
	// idle with it minus idle without it), and PollerMsPerProfile that over the window per accepted
	// profile: it is inside ClickHouse's and the pipeline's figures above.
	PollerClickHouseMsPerSec float64 `json:"poller_clickhouse_ms_per_s"`
	PollerMsPerProfile       float64 `json:"poller_ms_per_profile"`
	// Built* are the work the load leaves for later: the janitor builds the per-dimension rollups
	// (schema.Built) of each bucket once it is closed. The bench runs that build once after the window,
	// with the janitor's builder and its clock moved two days on: BuiltSeconds is its wall time,
	// BuiltClickHouseMs ClickHouse's CPU over it and BuiltMsPerProfile that per accepted profile. It is
	// not in the window's figures; the pipeline's whole CPU per profile is PipelineMsPerProfile plus
	// BuiltMsPerProfile.
	BuiltSeconds      float64 `json:"built_rollups_s"`
	BuiltClickHouseMs float64 `json:"built_rollups_clickhouse_ms"`
	BuiltMsPerProfile float64 `json:"built_rollups_ms_per_profile"`
	// MachineCores is the whole machine's busy CPU over the window (in cores) and OtherCores the part no
	// measured process used: other work on a shared machine.
	// LoadAverage is /proc/loadavg's one-minute figure at the start and at the end of the window.
	// Indexer* are from the indexer's own metrics over the window: its batches (writeBatch calls), the
	// seconds they spent in their INSERTs (ledger, stacks, samples with the views), and the mean events
	// per pulled batch. InsertShare is the insert seconds over the window: near or above 1 (the indexer
	// runs several lanes) the indexer waits on ClickHouse, not on its own CPU.
	IndexerInserts       float64 `json:"indexer_inserts"`
	IndexerInsertSeconds float64 `json:"indexer_insert_seconds"`
	IndexerInsertShare   float64 `json:"indexer_insert_share"`
	IndexerBatchEvents   float64 `json:"indexer_mean_batch_events"`
	IndexerBatchWait     string  `json:"indexer_batch_wait"` // "default" or the configured wait
	// IndexerBodyHits and IndexerBodyMisses count the bodies the indexer took from the NATS body cache and
	// those it read from the object store, over the window.
	IndexerBodyHits   float64    `json:"indexer_body_cache_hits"`
	IndexerBodyMisses float64    `json:"indexer_body_cache_misses"`
	MachineCores      float64    `json:"machine_busy_cores"`
	OtherCores        float64    `json:"other_cores"`
	LoadAverage       [2]float64 `json:"load_average"`
	Profile           string     `json:"pprof,omitempty"`
	Dir               string     `json:"dir"`
	Notes             []string   `json:"notes,omitempty"`
}

// pipelineProcs are the measured processes in table order; "bench" is this process (the load client).
// PostgresBackends and PostgresShared are groups of processes of the shared PostgreSQL (see pgCPU).
var pipelineProcs = []string{"ingest", "indexer", ClickHouse, S3, NATS, PostgresBackends, PostgresShared, "query", "bench"}

// inPipeline says whether a process counts towards PipelineMsPerProfile. PostgreSQL's auxiliary
// processes do not: they serve every database of the shared server (other tests on the machine too), so
// their row is shown apart; the backends of the bench's database (ingest's uploads and heartbeats) count.
func inPipeline(name string) bool {
	return name != "query" && name != "bench" && name != PostgresShared
}

// pipeUpload is one upload offered by the pipeline bench.
type pipeUpload struct {
	a       int       // agent
	start   time.Time // the profile's minute
	at      time.Time // when its request was sent
	latency time.Duration
	status  int  // 0: no answer
	first   bool // sent without a gpid: the agent's first upload, which ingest registers
}

// RunPipeline runs the pipeline bench. It returns an error only when it could not run; a pipeline that
// falls behind shows in the report (lags, AllQueryableAfterLoadS -1, Notes).
func RunPipeline(ctx context.Context, cfg PipelineConfig) (*PipelineReport, error) {
	sh := cfg.Shape
	if sh.Lines < 1 || sh.Stacks < 1 || sh.Pool < 1 || sh.Agents < 1 || sh.MinDepth < 1 || sh.MaxDepth < sh.MinDepth {
		return nil, errors.New("pipeline: shape needs positive Lines, Stacks, Pool, Agents and MinDepth ≤ MaxDepth")
	}
	if cfg.Duration <= 0 || cfg.Rate < 0 {
		return nil, errors.New("pipeline: Duration must be positive and Rate not negative")
	}
	if cfg.Binary == "" || cfg.PostgresURL == "" {
		return nil, errors.New("pipeline: Binary and PostgresURL are required")
	}
	cfg.Workers = cmp.Or(cfg.Workers, 32)
	cfg.Drain = cmp.Or(cfg.Drain, 3*time.Minute)
	cfg.PollEvery = cmp.Or(cfg.PollEvery, 500*time.Millisecond)
	cfg.Baseline = cmp.Or(cfg.Baseline, 5*time.Second)
	cfg.Settle = cmp.Or(cfg.Settle, time.Minute)
	cfg.Seed = cmp.Or(cfg.Seed, 1)
	cfg.Service = cmp.Or(cfg.Service, "pipeline")
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	dir, tmp := cfg.Dir, false
	if dir == "" {
		d, err := os.MkdirTemp("", "flamestream-pipeline-")
		if err != nil {
			return nil, err
		}
		dir, tmp = d, true
	}
	sc := Config{Binary: cfg.Binary, NATSServer: cfg.NATSServer, VersityGW: cfg.VersityGW,
		ClickHouseServer: cfg.ClickHouseServer, PostgresURL: cfg.PostgresURL}
	sc.Defaults()
	fmt.Fprintf(progress, "pipeline: servers and roles under %s\n", dir)
	st, err := startStack(ctx, sc, dir)
	if err != nil {
		if tmp && !cfg.Keep {
			_ = os.RemoveAll(dir)
		}
		return nil, err
	}
	defer func() {
		st.stop()
		if tmp && !cfg.Keep {
			_ = os.RemoveAll(dir)
		}
	}()
	rep := &PipelineReport{Shape: sh, Rate: cfg.Rate, Workers: cfg.Workers, Dir: dir, Statuses: map[string]int64{},
		AllQueryableAfterLoadS: -1}
	if tmp && !cfg.Keep {
		rep.Dir = ""
	}
	// The soak's stack gives every role a 200 ms batch wait (its faults want quick rounds); this bench
	// measures the indexer as deployed, at its default wait (or cfg.IndexerBatchWait): the wait decides
	// how many profiles an INSERT round carries, and each round costs ClickHouse a dozen parts.
	if err := st.restartWithEnv(ctx, "indexer", func(env []string) []string {
		env = slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "FLAMESTREAM_BATCH_WAIT=") })
		if cfg.IndexerBatchWait > 0 {
			env = append(env, "FLAMESTREAM_BATCH_WAIT="+cfg.IndexerBatchWait.String())
		}
		return env
	}); err != nil {
		return nil, err
	}
	rep.IndexerBatchWait = "default"
	if cfg.IndexerBatchWait > 0 {
		rep.IndexerBatchWait = cfg.IndexerBatchWait.String()
	}
	pprofAddr := ""
	if cfg.ProfileRole != "" {
		if pprofAddr, err = st.profiled(ctx, cfg.ProfileRole, cfg.RoleBinary); err != nil {
			return nil, err
		}
	}

	pg, err := pgdb.Open(ctx, st.pgURL)
	if err != nil {
		return nil, err
	}
	_, token, err := pg.CreateToken(ctx, "pipeline", pgdb.KindAgent, cfg.Service)
	pg.Close()
	if err != nil {
		return nil, fmt.Errorf("create token: %w", err)
	}
	b := &pipeBench{cfg: cfg, st: st, rep: rep, progress: progress, token: token}
	return b.run(ctx, pprofAddr)
}

// restartWithEnv restarts role with the environment edit returns.
func (st *stack) restartWithEnv(ctx context.Context, role string, edit func([]string) []string) error {
	p, ok := st.roles[role]
	if !ok {
		return fmt.Errorf("pipeline: no role %q", role)
	}
	p.kill()
	p.mu.Lock()
	p.env = edit(slices.Clone(p.env))
	p.mu.Unlock()
	if err := p.start(); err != nil {
		return err
	}
	if err := p.waitReady(ctx, 90*time.Second); err != nil {
		return fmt.Errorf("%w (log %s)", err, p.logPath)
	}
	return nil
}

// profiled restarts role under the dev binary's pprof wrapper and returns the wrapper's pprof address.
func (st *stack) profiled(ctx context.Context, role, devBinary string) (string, error) {
	p, ok := st.roles[role]
	if !ok || devBinary == "" {
		return "", fmt.Errorf("pipeline: cannot profile %q (roles: %v; the dev binary is required)", role, roles)
	}
	port, err := freePort()
	if err != nil {
		return "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p.kill()
	p.mu.Lock()
	p.path, p.args = devBinary, []string{"role", "-pprof", addr, role}
	p.mu.Unlock()
	if err := p.start(); err != nil {
		return "", err
	}
	if err := p.waitReady(ctx, 90*time.Second); err != nil {
		return "", fmt.Errorf("%w (log %s)", err, p.logPath)
	}
	return addr, nil
}

// pipeBench is one run in progress.
type pipeBench struct {
	cfg      PipelineConfig
	st       *stack
	rep      *PipelineReport
	progress io.Writer
	token    string
	fleet    *demo.LoadFleet
	base     time.Time
	client   *http.Client

	next     atomic.Int64 // the next upload's index
	accepted atomic.Int64
	// gpids holds each agent's gpid once the server gave it one: like the real agent, an emulated agent
	// sends it back with its next uploads (without it every upload would be a new agent process).
	gpids   []atomic.Int64
	mu      sync.Mutex
	uploads []pipeUpload

	seenMu    sync.Mutex
	seen      map[uint64]time.Time // batch → when its marker was first seen
	queryable int64                // profiles in the batches seen (from the ledger)
}

func (b *pipeBench) run(ctx context.Context, pprofAddr string) (*PipelineReport, error) {
	cfg, rep := b.cfg, b.rep
	fleet := demo.NewFleet(cfg.Seed, cfg.Service, demo.Shape{Stacks: cfg.Shape.Stacks, Lines: cfg.Shape.Lines,
		MinDepth: cfg.Shape.MinDepth, MaxDepth: cfg.Shape.MaxDepth})
	b.fleet = demo.NewLoadFleet(cfg.Seed, fleet, cfg.Shape.Agents, cfg.Shape.Pool)
	b.base = time.Now().UTC().Truncate(time.Minute)
	b.seen = map[uint64]time.Time{}
	b.gpids = make([]atomic.Int64, cfg.Shape.Agents)
	rep.PlainBytes = b.fleet.PlainBytes
	for k := range cfg.Shape.Pool {
		rep.BodyBytes += len(b.fleet.Body(0, k, b.base, ""))
	}
	rep.BodyBytes /= cfg.Shape.Pool
	b.client = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Workers,
		DialContext: (&net.Dialer{Timeout: 3 * time.Second}).DialContext}}

	// Idle CPU first: what every process does with nothing to do (ClickHouse's merges, the query role's
	// warm-up, NATS's housekeeping) is part of what the window measures. Then the same with the poller
	// running: the difference is what its queries cost ClickHouse, which the window includes too.
	idle0 := b.readCPU()
	sleepCtx(ctx, cfg.Baseline)
	idle1 := b.readCPU()
	pollCtx, stopPoll := context.WithCancel(ctx)
	var bg sync.WaitGroup
	bg.Go(func() { b.pollLoop(pollCtx) })
	sleepCtx(ctx, cfg.Baseline)
	idle2 := b.readCPU()
	if a, ok := idle1[ClickHouse]; ok {
		if z, ok := idle2[ClickHouse]; ok && a.pid == z.pid {
			if i0, ok := idle0[ClickHouse]; ok && i0.pid == a.pid {
				base := cfg.Baseline.Seconds()
				rep.PollerClickHouseMsPerSec = max((z.end-a.end)/base-(a.end-i0.end)/base, 0)
			}
		}
	}

	t0 := time.Now()
	cpu0 := b.readCPU()
	busy0, busyErr := machineBusy()
	ix0 := b.indexerMetrics(ctx)
	ing0 := b.ingestWaits(ctx)
	y0 := b.ingestYield(ctx)
	rep.LoadAverage[0] = loadAverage()
	var pprofErr error
	if pprofAddr != "" {
		bg.Go(func() { pprofErr = fetchProfile(ctx, pprofAddr, cfg.Duration, cfg.ProfileOut) })
	}
	offerCtx, stopOffer := context.WithTimeout(ctx, cfg.Duration)
	b.offer(offerCtx)
	stopOffer()
	loadEnd := time.Now()
	rep.DurationSeconds = loadEnd.Sub(t0).Seconds()
	rep.ingestWaits(ing0, b.ingestWaits(ctx))
	fmt.Fprintf(b.progress, "pipeline %5.0fs  load over: %d offered, %d accepted\n", rep.DurationSeconds, len(b.uploads), b.accepted.Load())

	// Drain: wait until the batches seen hold every accepted profile.
	deadline := loadEnd.Add(cfg.Drain)
	for ctx.Err() == nil {
		b.seenMu.Lock()
		q := b.queryable
		b.seenMu.Unlock()
		if q >= b.accepted.Load() {
			rep.AllQueryableAfterLoadS = 0 // made exact by summarize, from the time each batch was seen
			break
		}
		if time.Now().After(deadline) {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%d of %d accepted profiles still not queryable %s after the load", b.accepted.Load()-q, b.accepted.Load(), cfg.Drain))
			break
		}
		sleepCtx(ctx, cfg.PollEvery)
	}
	rep.SettleSeconds = b.settle(ctx, cfg.Settle)
	windowEnd := time.Now()
	cpu1 := b.readCPU()
	busy1, err := machineBusy()
	ix1 := b.indexerMetrics(ctx)
	y1 := b.ingestYield(ctx)
	_, on0 := y0[ingestYields]
	_, on1 := y1[ingestYields]
	switch {
	case y0 == nil || y1 == nil:
		rep.IngestYields, rep.IngestYieldSeconds = -2, -2
		rep.Notes = append(rep.Notes, "ingest's yield counters: not read")
	case on0 && on1:
		rep.IngestYields = y1[ingestYields] - y0[ingestYields]
		rep.IngestYieldSeconds = y1[ingestYieldSeconds] - y0[ingestYieldSeconds]
	default:
		rep.IngestYields, rep.IngestYieldSeconds = -1, -1
	}
	rep.LoadAverage[1] = loadAverage()
	stopPoll()
	bg.Wait()
	if pprofErr != nil {
		rep.Notes = append(rep.Notes, "pprof: "+pprofErr.Error())
	} else if pprofAddr != "" {
		rep.Profile = cfg.ProfileOut
	}
	rep.WindowSeconds = windowEnd.Sub(t0).Seconds()
	if err := b.summarize(ctx, t0, loadEnd); err != nil {
		return rep, err
	}
	b.cpuTable(idle0, idle1, cpu0, cpu1, cfg.Baseline.Seconds())
	if cfg.BuildRollups == nil {
		rep.Notes = append(rep.Notes, "the per-dimension rollups were not built (no builder given)")
	} else if err := b.buildRollups(ctx); err != nil {
		rep.Notes = append(rep.Notes, "build the per-dimension rollups: "+err.Error())
	}
	rep.PollerMsPerProfile = rep.PollerClickHouseMsPerSec * rep.WindowSeconds / float64(max(rep.Accepted, 1))
	if ix0 != nil && ix1 != nil {
		d := func(name string) float64 { return ix1[name] - ix0[name] }
		rep.IndexerInserts = d("flamestream_indexer_insert_seconds_count")
		rep.IndexerInsertSeconds = d("flamestream_indexer_insert_seconds_sum")
		rep.IndexerInsertShare = rep.IndexerInsertSeconds / rep.WindowSeconds
		if n := d("flamestream_indexer_batch_events_count"); n > 0 {
			rep.IndexerBatchEvents = d("flamestream_indexer_batch_events_sum") / n
		}
		rep.IndexerBodyHits, rep.IndexerBodyMisses = d(bodyHits), d(bodyMisses)
	} else {
		rep.Notes = append(rep.Notes, "indexer metrics: not read")
	}
	if busyErr == nil && err == nil {
		rep.MachineCores = (busy1 - busy0) / 1000 / rep.WindowSeconds
		rep.OtherCores = rep.MachineCores
		for _, c := range rep.CPU {
			rep.OtherCores -= c.Cores
		}
	}
	return rep, nil
}

// buildRollups builds the per-dimension rollups of the load's buckets as the janitor will once they are
// closed, and measures what it costs ClickHouse (see PipelineReport.Built*).
func (b *pipeBench) buildRollups(ctx context.Context) error {
	db, err := chdb.Open(ctx, chdb.Options{Addr: b.st.chAddr, Database: chDB, MaxConns: 2})
	if err != nil {
		return err
	}
	defer db.Close()
	a, t0 := b.readCPU()[ClickHouse], time.Now()
	if err := b.cfg.BuildRollups(ctx, db); err != nil {
		return err
	}
	z := b.readCPU()[ClickHouse]
	b.rep.BuiltSeconds = time.Since(t0).Seconds()
	if a.pid != 0 && a.pid == z.pid {
		b.rep.BuiltClickHouseMs = z.end - a.end
		b.rep.BuiltMsPerProfile = b.rep.BuiltClickHouseMs / float64(max(b.rep.Accepted, 1))
	}
	return nil
}

// readCPU reads every measured process's CPU time; a process without a pid is left out.
func (b *pipeBench) readCPU() map[string]cpuUse {
	out := map[string]cpuUse{}
	db := ""
	if u, err := url.Parse(b.st.pgURL); err == nil {
		db = strings.TrimPrefix(u.Path, "/")
	}
	for name, pids := range pgCPU(db) {
		out[name] = cpuUse{pids: pids}
	}
	for _, name := range pipelineProcs {
		if name == PostgresBackends || name == PostgresShared {
			continue
		}
		pid := os.Getpid()
		if name != "bench" {
			pid = b.st.proc(name).pid()
		}
		if ms, err := cpuMillis(pid); err == nil {
			out[name] = cpuUse{pid: pid, start: ms, end: ms}
		}
	}
	return out
}

// settleBusy is the ClickHouse CPU rate (ms per s) under which it counts as settled: its idle rate
// with the poller running is 10–20 ms/s here, a merge keeps it far above.
const settleBusy = 60

// settle waits, at most bound, until ClickHouse used less than settleBusy ms/s of CPU over two seconds,
// and returns how long that took (-1: it did not).
func (b *pipeBench) settle(ctx context.Context, bound time.Duration) float64 {
	if bound < 0 {
		return 0
	}
	t0 := time.Now()
	p := b.st.proc(ClickHouse)
	last, err := cpuMillis(p.pid())
	for err == nil && time.Since(t0) < bound {
		if !sleepCtx(ctx, 2*time.Second) {
			break
		}
		now, err2 := cpuMillis(p.pid())
		if err2 != nil {
			break
		}
		if (now-last)/2 < settleBusy {
			return time.Since(t0).Seconds()
		}
		last = now
	}
	return -1
}

// ingest's yield counters (ingest.RunYield), as /metrics writes them.
const (
	ingestYields       = "flamestream_ingest_yields_total"
	ingestYieldSeconds = "flamestream_ingest_yielding_seconds_total"
)

// roleMetrics reads the named counters and gauges of role's /metrics (nil when it does not answer; a name
// it does not export is absent).
func (b *pipeBench) roleMetrics(ctx context.Context, role string, names ...string) map[string]float64 {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := metrics(ctx, "http://"+b.st.addrs[role]+"/metrics", names...)
	if err != nil {
		return nil
	}
	return m
}

// ingestYield reads ingest's yield counters (nil when it does not answer; absent when it does not yield).
func (b *pipeBench) ingestYield(ctx context.Context) map[string]float64 {
	return b.roleMetrics(ctx, "ingest", ingestYields, ingestYieldSeconds)
}

// The indexer's body-cache counters, as /metrics writes them.
const (
	bodyHits   = `flamestream_indexer_body_cache_total{result="hit"}`
	bodyMisses = `flamestream_indexer_body_cache_total{result="miss"}`
)

// indexerMetrics reads the indexer's insert and batch histograms (nil when it does not answer).
func (b *pipeBench) indexerMetrics(ctx context.Context) map[string]float64 {
	return b.roleMetrics(ctx, "indexer", "flamestream_indexer_insert_seconds_count",
		"flamestream_indexer_insert_seconds_sum", "flamestream_indexer_batch_events_count", "flamestream_indexer_batch_events_sum",
		bodyHits, bodyMisses)
}

// The histograms of ingest's waits inside an upload.
const (
	storeSeconds = "flamestream_ingest_store_seconds"
	ackSeconds   = "flamestream_ingest_publish_ack_seconds"
)

// ingestWaits reads ingest's store and publish-ack histograms (nil when it does not answer).
func (b *pipeBench) ingestWaits(ctx context.Context) map[string]histogram {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	h, err := histograms(ctx, "http://"+b.st.addrs["ingest"]+"/metrics", storeSeconds, ackSeconds)
	if err != nil {
		return nil
	}
	return h
}

// ingestWaits fills the IngestStore* and IngestAck* figures from readings before and after the load.
func (r *PipelineReport) ingestWaits(before, after map[string]histogram) {
	ms := func(name string, q float64) float64 {
		d := after[name].since(before[name])
		v := d.quantile(q)
		switch {
		case d == nil || math.IsNaN(v):
			return -1
		case math.IsInf(v, 1):
			return -2
		}
		return v * 1000
	}
	r.IngestStoreP50Ms, r.IngestStoreP99Ms = ms(storeSeconds, 0.5), ms(storeSeconds, 0.99)
	r.IngestAckP50Ms, r.IngestAckP99Ms = ms(ackSeconds, 0.5), ms(ackSeconds, 0.99)
	if r.IngestStoreP99Ms == -1 || r.IngestAckP99Ms == -1 {
		r.Notes = append(r.Notes, "ingest's store and publish-ack histograms: not read")
	}
}

// cpuTable fills the report's CPU rows from readings before and after the baseline and the window.
func (b *pipeBench) cpuTable(idle0, idle1, cpu0, cpu1 map[string]cpuUse, baseline float64) {
	rep := b.rep
	n := float64(max(rep.Accepted, 1))
	for _, name := range pipelineProcs {
		a, okA := cpu0[name]
		z, okZ := cpu1[name]
		if !okA || !okZ {
			rep.Notes = append(rep.Notes, name+": no CPU reading")
			continue
		}
		u := cpuUse{pid: z.pid, start: a.start, end: z.end, restarted: a.pid != z.pid}
		pc := ProcessCPU{Name: name, PID: z.pid, Millis: u.millis(), Restarted: u.restarted}
		if z.pids != nil {
			// A group of processes: its row's pid is how many there were at the end.
			var ended int
			pc.Millis, ended = groupMillis(a.pids, z.pids)
			pc.PID, pc.Processes, u.restarted, pc.Restarted = 0, len(z.pids), false, false
			if ended > 0 {
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s: %d processes ended during the window: their CPU is not counted", name, ended))
			}
		}
		pc.MsPerProfile = pc.Millis / n
		pc.Cores = pc.Millis / 1000 / max(rep.WindowSeconds, 1e-9)
		if i0, ok := idle0[name]; ok {
			if i1, ok := idle1[name]; ok && i0.pids != nil {
				ms, _ := groupMillis(i0.pids, i1.pids)
				pc.IdleMsPerSec = ms / baseline
			} else if ok && i0.pid == i1.pid {
				pc.IdleMsPerSec = (i1.end - i0.start) / baseline
			}
		}
		if u.restarted {
			rep.Notes = append(rep.Notes, name+" restarted during the window: its CPU is a lower bound")
		}
		if inPipeline(name) {
			rep.PipelineMsPerProfile += pc.MsPerProfile
		}
		rep.CPU = append(rep.CPU, pc)
	}
}

// offer sends uploads until ctx ends: at saturation each worker sends its next upload as soon as the last
// one was answered; at a fixed rate a ticker hands them out and an upload no worker is free for is missed.
func (b *pipeBench) offer(ctx context.Context) {
	cfg := b.cfg
	var wg sync.WaitGroup
	if cfg.Rate == 0 {
		for range cfg.Workers {
			wg.Go(func() {
				for ctx.Err() == nil {
					b.send(ctx, int(b.next.Add(1)-1))
				}
			})
		}
		wg.Wait()
		return
	}
	jobs := make(chan int, cfg.Workers)
	for range cfg.Workers {
		wg.Go(func() {
			for i := range jobs {
				b.send(ctx, i)
			}
		})
	}
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	t0 := time.Now()
	for i := 0; ; i++ {
		if !sleepCtx(ctx, time.Until(t0.Add(time.Duration(i)*interval))) {
			break
		}
		select {
		case jobs <- int(b.next.Add(1) - 1):
		default:
			b.next.Add(-1)
			b.rep.Missed++
		}
	}
	close(jobs)
	wg.Wait()
}

// send posts upload i once (no retry: a failure is a figure of the bench) and records it.
func (b *pipeBench) send(ctx context.Context, i int) {
	agents := b.cfg.Shape.Agents
	a := i % agents
	start := b.base.Add(-time.Duration(i/agents+1) * time.Minute)
	host := b.fleet.Agents[a].Host
	gpid := ""
	if g := b.gpids[a].Load(); g > 0 {
		gpid = strconv.FormatInt(g, 10)
	}
	body := b.fleet.Body(a, i%b.cfg.Shape.Pool, start, gpid)
	q := url.Values{"key": {b.token}, "service": {b.cfg.Service}, "hostname": {host}, "version": {"1.35.0"}}
	req, _ := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, "http://"+b.st.addrs["ingest"]+"/api/v2/profiles?"+q.Encode(), bytes.NewReader(body))
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("GPROFILER-API-KEY", b.token)
	req.Header.Set("GPROFILER-SERVICE-NAME", b.cfg.Service)
	u := pipeUpload{a: a, start: start, at: time.Now(), first: gpid == ""}
	// The request is not cut short when the offer ends: an upload in flight then is still answered.
	resp, err := b.client.Do(req)
	u.latency = time.Since(u.at)
	if err == nil {
		reply, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		u.status = resp.StatusCode
		if u.status == http.StatusOK {
			b.accepted.Add(1)
			var r struct {
				GPID int64 `json:"gpid"`
			}
			if json.Unmarshal(reply, &r) == nil && r.GPID > 0 {
				b.gpids[a].Store(r.GPID)
			}
		}
	}
	b.mu.Lock()
	b.uploads = append(b.uploads, u)
	b.mu.Unlock()
}

// pollLoop looks for new batch markers until ctx ends.
func (b *pipeBench) pollLoop(ctx context.Context) {
	db, err := chdb.Open(ctx, chdb.Options{Addr: b.st.chAddr, Database: chDB, MaxConns: 1})
	if err != nil {
		fmt.Fprintf(b.progress, "pipeline: poller: %v\n", err)
		return
	}
	defer db.Close()
	tick := time.NewTicker(b.cfg.PollEvery)
	defer tick.Stop()
	last := time.Now()
	for {
		now := time.Now()
		batches, counts, err := b.queryableBatches(ctx, db)
		if err == nil {
			b.seenMu.Lock()
			var q int64
			for i, batch := range batches {
				if _, ok := b.seen[batch]; !ok {
					b.seen[batch] = now
				}
				q += int64(counts[i])
			}
			b.queryable = q
			b.seenMu.Unlock()
		} else if ctx.Err() == nil {
			fmt.Fprintf(b.progress, "pipeline: poller: %v\n", err)
		}
		if time.Since(last) >= 5*time.Second {
			last = time.Now()
			b.seenMu.Lock()
			q := b.queryable
			b.seenMu.Unlock()
			fmt.Fprintf(b.progress, "pipeline: sent %d, accepted %d, queryable %d\n", b.next.Load(), b.accepted.Load(), q)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// queryableBatches returns the batches whose marker is in samples and in every rollup (a flame graph may
// read any of them), each with its profiles of the service from the ledger. A batch's INSERT writes the
// samples part first and the views' parts after it, seconds later for a big batch. The marker rows lead
// every table's sort key (service first), so each subquery reads only their granules, and it is one
// query per poll: on ClickHouse 18.16 a query's fixed cost is what a poller pays most.
func (b *pipeBench) queryableBatches(ctx context.Context, db *chdb.DB) (batches, counts []uint64, err error) {
	body := "SELECT batch, toUInt64(count()) AS n FROM " + db.Table(schema.Batches) + " WHERE service = " + chdb.String(b.cfg.Service)
	for _, t := range append([]schema.Rollup{{Table: schema.Samples, Dims: true, Stack: true}}, schema.Rollups...) {
		// The marker's stack is the batch id; a table without a stack column has it in host, as 16 hex
		// digits (big-endian).
		col := "stack"
		if !t.Stack {
			col = "reinterpretAsUInt64(reverse(unhex(host)))"
		}
		body += " AND batch IN (SELECT " + col + " FROM " + db.Table(t.Table) + " WHERE service = " + chdb.String(schema.MarkerService) + ")"
	}
	var batch, n proto.ColUInt64
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = db.Do(cctx, ch.Query{
		Body:   body + " GROUP BY batch",
		Result: proto.Results{{Name: "batch", Data: &batch}, {Name: "n", Data: &n}},
		OnResult: func(context.Context, proto.Block) error {
			batches, counts = append(batches, batch...), append(counts, n...)
			return nil
		},
	})
	return batches, counts, err
}

// summarize matches every accepted upload to its profile id (samples), its batch (ledger) and the time
// that batch became queryable, and computes the report's rates, lags and latencies.
func (b *pipeBench) summarize(ctx context.Context, t0, loadEnd time.Time) error {
	rep := b.rep
	type prof struct {
		id   uint64
		rows uint64
	}
	byUpload := map[string]prof{}
	batchOf := map[uint64]uint64{} // profile → its batch seen first
	err := (&soaker{st: b.st}).withCH(ctx, func(db *chdb.DB) error {
		var host proto.ColStr
		var ts proto.ColUInt32
		var id, rows proto.ColUInt64
		// Both results come in many blocks: each is consumed as it arrives.
		if err := db.Do(ctx, ch.Query{
			Body: "SELECT host, toUInt32(ts) AS t, profile, toUInt64(count()) AS rows FROM " + db.Table(schema.Samples) +
				" WHERE service = " + chdb.String(b.cfg.Service) + " GROUP BY host, ts, profile",
			Result: proto.Results{{Name: "host", Data: &host}, {Name: "t", Data: &ts}, {Name: "profile", Data: &id}, {Name: "rows", Data: &rows}},
			OnResult: func(context.Context, proto.Block) error {
				for i := range ts.Rows() {
					byUpload[profileKey(host.Row(i), int64(ts[i]))] = prof{id: id[i], rows: rows[i]}
				}
				return nil
			},
		}); err != nil {
			return fmt.Errorf("read profiles: %w", err)
		}
		var profile, batch proto.ColUInt64
		b.seenMu.Lock()
		defer b.seenMu.Unlock()
		if err := db.Do(ctx, ch.Query{
			Body:   "SELECT profile, batch FROM " + db.Table(schema.Batches) + " WHERE service = " + chdb.String(b.cfg.Service),
			Result: proto.Results{{Name: "profile", Data: &profile}, {Name: "batch", Data: &batch}},
			OnResult: func(context.Context, proto.Block) error {
				for i := range profile.Rows() {
					at, ok := b.seen[batch[i]]
					if !ok {
						continue // a batch whose samples never arrived (or arrived after the poller stopped)
					}
					if prev, ok := batchOf[profile[i]]; !ok || at.Before(b.seen[prev]) {
						batchOf[profile[i]] = batch[i]
					}
				}
				return nil
			},
		}); err != nil {
			return fmt.Errorf("read ledger: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}

	var lat, firstLat, laterLat, lags []float64
	var first, last time.Time
	var duringRows, duringN int64
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, u := range b.uploads {
		rep.Offered++
		rep.Statuses[statusName(u.status)]++
		ms := float64(u.latency) / float64(time.Millisecond)
		lat = append(lat, ms)
		if u.first {
			firstLat = append(firstLat, ms)
		} else {
			laterLat = append(laterLat, ms)
		}
		if first.IsZero() || u.at.Before(first) {
			first = u.at
		}
		if u.status != http.StatusOK {
			continue
		}
		rep.Accepted++
		p, ok := byUpload[profileKey(b.fleet.Agents[u.a].Host, u.start.Unix())]
		if !ok {
			continue
		}
		batch, ok := batchOf[p.id]
		if !ok {
			continue
		}
		at := b.seen[batch]
		rep.Queryable++
		rep.Rows += int64(p.rows)
		lags = append(lags, at.Sub(u.at).Seconds())
		if at.After(last) {
			last = at
		}
		if !at.After(loadEnd) {
			duringN++
			duringRows += int64(p.rows)
		}
	}
	rep.Offered += rep.Missed
	d := loadEnd.Sub(t0).Seconds()
	rep.AcceptedPerSec = float64(rep.Accepted) / d
	rep.IndexedPerSec = float64(duringN) / d
	rep.IndexedRowsPerSec = float64(duringRows) / d
	if !last.IsZero() {
		if rep.AllQueryableAfterLoadS >= 0 {
			rep.AllQueryableAfterLoadS = max(last.Sub(loadEnd).Seconds(), 0)
		}
		e2e := last.Sub(first).Seconds()
		rep.EndToEndPerSec = float64(rep.Queryable) / e2e
		rep.EndToEndRowsPerSec = float64(rep.Rows) / e2e
	}
	rep.IngestP50Ms, rep.IngestP99Ms = percentile(lat, 50), percentile(lat, 99)
	rep.LagP50S, rep.LagP99S = jsonNum(percentile(lags, 50)), jsonNum(percentile(lags, 99))
	rep.LagMaxS = jsonNum(percentile(lags, 100))
	rep.IngestP50Ms, rep.IngestP99Ms = jsonNum(rep.IngestP50Ms), jsonNum(rep.IngestP99Ms)
	rep.FirstUploads = int64(len(firstLat))
	rep.IngestFirstP99Ms, rep.IngestLaterP99Ms = jsonNum(percentile(firstLat, 99)), jsonNum(percentile(laterLat, 99))
	if rep.Queryable < rep.Accepted {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d accepted uploads were never seen queryable (no lag for them)", rep.Accepted-rep.Queryable))
	}
	return nil
}

// jsonNum maps NaN (no values) to -1, which JSON can carry.
func jsonNum(v float64) float64 {
	if math.IsNaN(v) {
		return -1
	}
	return v
}

func statusName(code int) string {
	if code == 0 {
		return "transport"
	}
	return strconv.Itoa(code)
}

// fetchProfile reads a CPU profile of seconds from a pprof address and writes it to path.
func fetchProfile(ctx context.Context, addr string, d time.Duration, path string) error {
	secs := max(int(d.Seconds()), 1)
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%d %s", resp.StatusCode, bytes.TrimSpace(body[:min(len(body), 200)]))
	}
	return os.WriteFile(path, body, 0o644)
}

// bound prints a histogram quantile of PipelineReport: ≤ the bucket's bound, or above the last one.
func bound(ms float64) string {
	switch ms {
	case -1:
		return "?"
	case -2:
		return "> last bucket"
	}
	return "≤" + strconv.FormatFloat(ms, 'g', 3, 64)
}

// WriteTable prints the report for a terminal.
func (r *PipelineReport) WriteTable(w io.Writer) {
	rate := "saturation"
	if r.Rate > 0 {
		rate = fmt.Sprintf("%.0f/s offered", r.Rate)
	}
	fmt.Fprintf(w, "pipeline bench: %s-line profiles (%d distinct stacks, depth %d-%d, %d agents; body %d B gzip, %d B plain), %s, %d workers, %.0f s\n",
		r.Shape.Name, r.Shape.Stacks, r.Shape.MinDepth, r.Shape.MaxDepth, r.Shape.Agents, r.BodyBytes, r.PlainBytes, rate, r.Workers, r.DurationSeconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "offered\t%d\t(missed %d, statuses %v)\n", r.Offered, r.Missed, r.Statuses)
	fmt.Fprintf(tw, "accepted/s\t%.1f\t%d accepted\n", r.AcceptedPerSec, r.Accepted)
	fmt.Fprintf(tw, "ingest request p50 / p99\t%.1f / %.1f ms\t\n", r.IngestP50Ms, r.IngestP99Ms)
	fmt.Fprintf(tw, "  agents' first uploads / later, p99\t%.1f / %.1f ms\t(%d first uploads: ingest registers the agent)\n",
		r.IngestFirstP99Ms, r.IngestLaterP99Ms, r.FirstUploads)
	if r.IngestStoreP99Ms != -1 {
		fmt.Fprintf(tw, "  of which S3 PUT / publish ack p50, p99\t%s, %s / %s, %s ms\t(at most: histogram bucket bounds)\n",
			bound(r.IngestStoreP50Ms), bound(r.IngestStoreP99Ms), bound(r.IngestAckP50Ms), bound(r.IngestAckP99Ms))
	}
	fmt.Fprintf(tw, "indexed/s during the load\t%.1f profiles\t%.0f sample rows/s\n", r.IndexedPerSec, r.IndexedRowsPerSec)
	fmt.Fprintf(tw, "end to end (first upload → last queryable)\t%.1f profiles/s\t%.0f sample rows/s (%d profiles, %d rows)\n", r.EndToEndPerSec, r.EndToEndRowsPerSec, r.Queryable, r.Rows)
	fmt.Fprintf(tw, "lag upload → queryable p50 / p99 / max\t%.2f / %.2f / %.2f s\t\n", r.LagP50S, r.LagP99S, r.LagMaxS)
	fmt.Fprintf(tw, "all queryable after the load\t%.1f s\t(-1: not within the drain bound)\n", r.AllQueryableAfterLoadS)
	if r.IndexerInserts > 0 {
		fmt.Fprintf(tw, "indexer inserts\t%.0f, mean %.2f s\t%.0f%% of the window in INSERTs; %.0f events per pulled batch (batch wait %s)\n",
			r.IndexerInserts, r.IndexerInsertSeconds/r.IndexerInserts, 100*r.IndexerInsertShare, r.IndexerBatchEvents, r.IndexerBatchWait)
	}
	if r.IngestYields >= 0 {
		fmt.Fprintf(tw, "ingest yielded the CPU to the indexer\t%.0f times, %.1f s\t(lower priority while the indexer's backlog was over the yield lag)\n", r.IngestYields, r.IngestYieldSeconds)
	} else if r.IngestYields == -1 {
		fmt.Fprintf(tw, "ingest yielded the CPU to the indexer\toff\t(FLAMESTREAM_INGEST_YIELD_LAG=0, or no CAP_SYS_NICE)\n")
	}
	if n := r.IndexerBodyHits + r.IndexerBodyMisses; n > 0 {
		fmt.Fprintf(tw, "bodies from the NATS body cache\t%.1f %%\t%.0f of %.0f; the rest read from S3\n", 100*r.IndexerBodyHits/n, r.IndexerBodyHits, n)
	}
	tw.Flush()
	fmt.Fprintf(w, "CPU over %.0f s (load, drain, then %.0f s for ClickHouse to settle), per accepted profile:\n", r.WindowSeconds, r.SettleSeconds)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "process\tpid\tCPU ms\tms/profile\tcores\tidle ms/s\t")
	for _, c := range r.CPU {
		pid := strconv.Itoa(c.PID)
		if c.Processes > 0 {
			pid = fmt.Sprintf("%d procs", c.Processes)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.3f\t%.2f\t%.1f\t\n", c.Name, pid, c.Millis, c.MsPerProfile, c.Cores, c.IdleMsPerSec)
	}
	fmt.Fprintf(tw, "pipeline (ingest+indexer+clickhouse+s3+nats+postgres)\t\t\t%.3f\t\t\t\n", r.PipelineMsPerProfile)
	fmt.Fprintf(tw, "of which the bench's poller, in ClickHouse\t\t\t%.3f\t\t%.1f\t\n", r.PollerMsPerProfile, r.PollerClickHouseMsPerSec)
	fmt.Fprintf(tw, "other work on the machine (not measured above)\t\t\t\t%.2f\t\t\n", r.OtherCores)
	fmt.Fprintf(tw, "later: the janitor builds the per-dimension rollups, in ClickHouse\t\t%.0f\t%.3f\t\t%.1f s\t\n", r.BuiltClickHouseMs, r.BuiltMsPerProfile, r.BuiltSeconds)
	fmt.Fprintf(tw, "pipeline with that build\t\t\t%.3f\t\t\t\n", r.PipelineMsPerProfile+r.BuiltMsPerProfile)
	tw.Flush()
	fmt.Fprintf(w, "machine: %.2f cores busy over the window; load average %.1f → %.1f\n", r.MachineCores, r.LoadAverage[0], r.LoadAverage[1])
	if r.Profile != "" {
		fmt.Fprintf(w, "CPU profile: %s\n", r.Profile)
	}
	for _, n := range slices.Clone(r.Notes) {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}
