package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"
	"github.com/go-chi/chi/v5"

	"github.com/flamestream/flamestream/cmd/internal/cli"
	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/config"
	"github.com/flamestream/flamestream/internal/pgdb"
	"github.com/flamestream/flamestream/internal/schema"
	"github.com/flamestream/flamestream/query"
)

// benchFresh is what benchFreshProcess measures on a child `flamestream query` process.
type benchFresh struct {
	ReadyMs         float64  `json:"ready_ms"`              // from the spawn to /healthz answering
	First24hMs      float64  `json:"first_24h_ms"`          // the first call, a 24h graph, once ready
	SpawnTo24hMs    float64  `json:"spawn_to_first_24h_ms"` // both together: the goal's figure
	Warm1h          benchRow `json:"warm_1h"`
	Warm24h         benchRow `json:"warm_24h"`
	VmRSSMiB        float64  `json:"vm_rss_mib"` // at the end, from /proc/PID/status
	VmHWMMiB        float64  `json:"vm_hwm_mib"` // peak resident set of the whole run
	WarmUp          string   `json:"warm_up"`    // the child's own warm-up log line, if it finished
	Log             string   `json:"log"`        // file holding the child's log
	QueryTimeoutRaw string   `json:"query_timeout"`
}

func (f *benchFresh) goals() []benchGoal {
	const how = "fresh `flamestream query` child process"
	return []benchGoal{
		{Goal: "1h flame graph p50 warm", Measured: f.Warm1h.P50Ms, Limit: 300, Unit: "ms", How: how},
		{Goal: "24h flame graph p50 warm", Measured: f.Warm24h.P50Ms, Limit: 1000, Unit: "ms", How: how},
		{Goal: "first 24h graph, from spawning the process", Measured: f.SpawnTo24hMs, Limit: 5000, Unit: "ms", How: how},
		{Goal: "query process peak RSS (VmHWM)", Measured: f.VmHWMMiB, Limit: 2048, Unit: "MiB", How: how + ", /proc/PID/status"},
	}
}

// benchChildTimeout is the query timeout of the child process: long, so that a slow first call is measured
// rather than cut at the default 60 s.
const benchChildTimeout = 10 * time.Minute

// benchFreshProcess starts the flamestream binary's `query` role as a child process on a free loopback port with the
// bench's ClickHouse and PostgreSQL settings, times its first 24h flame graph (which finds the stack tries
// empty, while the process's own warm-up runs as after any start), then the warm 1h and 24h graphs, and
// reads the child's resident memory from /proc. The child is stopped with SIGTERM at the end.
func benchFreshProcess(ctx context.Context, cfg config.Config, o *benchOptions, to time.Time, secret string, out io.Writer) (*benchFresh, error) {
	exe, err := serverBinary(*o.server)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	logf, err := os.CreateTemp("", "flamestream-bench-query-*.log")
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cacheMB := cfg.QueryCacheMB
	if *o.noCache {
		cacheMB = 0
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(cctx, exe, "query")
	cmd.Env = append(os.Environ(),
		"FLAMESTREAM_QUERY_ADDR="+addr,
		"FLAMESTREAM_CH_ADDR="+cfg.ClickHouseAddr,
		"FLAMESTREAM_CH_DATABASE="+cfg.ClickHouseDatabase,
		"FLAMESTREAM_CH_USER="+cfg.ClickHouseUser,
		"FLAMESTREAM_CH_PASSWORD="+cfg.ClickHousePassword,
		"FLAMESTREAM_PG_URL="+cfg.PostgresURL,
		"FLAMESTREAM_QUERY_CACHE_MB="+strconv.Itoa(cacheMB),
		"FLAMESTREAM_QUERY_TRIE_NODES="+strconv.Itoa(cfg.QueryTrieNodes),
		"FLAMESTREAM_QUERY_TIMEOUT="+benchChildTimeout.String(),
		"FLAMESTREAM_LOG_FORMAT=json",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	spawn := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start %s query: %w", exe, err)
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		err := cmd.Wait()
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.Sys().(syscall.WaitStatus).Signaled() {
			err = nil
		}
		return err
	}
	defer func() { _ = stop() }()

	f := &benchFresh{Log: logf.Name(), QueryTimeoutRaw: benchChildTimeout.String()}
	c := &benchClient{base: "http://" + addr, secret: secret, http: &http.Client{Timeout: benchChildTimeout + time.Minute}}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/healthz", nil)
		resp, err := c.http.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Since(spawn) > time.Minute {
			return nil, fmt.Errorf("bench: the query process did not answer /healthz within a minute (log: %s)", logf.Name())
		}
		if cmd.ProcessState != nil {
			return nil, fmt.Errorf("bench: the query process exited (log: %s)", logf.Name())
		}
		time.Sleep(20 * time.Millisecond)
	}
	ready := time.Now()
	f.ReadyMs = benchMsf(ready.Sub(spawn))
	day := benchCase{"flamegraph 24h", "/api/v1/flamegraph", benchRange(*o.service, to, 24*time.Hour)}
	first, body, err := c.get(ctx, day.path, day.q)
	if err != nil {
		return nil, fmt.Errorf("bench: first 24h graph of the fresh process: %w (log: %s)", err, logf.Name())
	}
	f.First24hMs, f.SpawnTo24hMs = benchMsf(first), benchMsf(ready.Sub(spawn)+first)
	samples, nodes := benchSummary(body)
	fmt.Fprintf(out, "\nfresh `flamestream query` process (pid %d, log %s): ready in %s, first 24h graph %s (%s from spawn; %s samples, %s nodes)\n",
		cmd.Process.Pid, logf.Name(), benchMs(ready.Sub(spawn)), benchMs(first), benchMs(ready.Sub(spawn)+first), samples, nodes)

	for _, x := range []struct {
		row *benchRow
		bc  benchCase
	}{
		{&f.Warm1h, benchCase{"flamegraph 1h", "/api/v1/flamegraph", benchRange(*o.service, to, time.Hour)}},
		{&f.Warm24h, day},
	} {
		cold, times, body, err := c.timed(ctx, x.bc, *o.runs)
		if err != nil {
			return nil, fmt.Errorf("bench: fresh process: %w", err)
		}
		samples, nodes := benchSummary(body)
		*x.row = benchRow{Query: x.bc.name, ColdMs: benchMsf(cold), P50Ms: benchMsf(benchPct(times, 50)), P95Ms: benchMsf(benchPct(times, 95)),
			MaxMs: benchMsf(times[len(times)-1]), Samples: samples, Nodes: nodes}
		fmt.Fprintf(out, "  %-26s first %9s  p50 %9s  p95 %9s  max %9s  (%d runs)\n", x.bc.name, benchMs(cold), benchMs(benchPct(times, 50)),
			benchMs(benchPct(times, 95)), benchMs(times[len(times)-1]), len(times))
	}
	st, err := procStatus(cmd.Process.Pid)
	if err != nil {
		return nil, fmt.Errorf("bench: memory of the query process: %w", err)
	}
	f.VmRSSMiB, f.VmHWMMiB = float64(st["VmRSS"])/1024, float64(st["VmHWM"])/1024
	fmt.Fprintf(out, "  memory: VmRSS %.0f MiB now, VmHWM %.0f MiB peak (/proc/%d/status)\n", f.VmRSSMiB, f.VmHWMMiB, cmd.Process.Pid)
	if err := stop(); err != nil {
		return nil, fmt.Errorf("bench: stop the query process: %w (log: %s)", err, logf.Name())
	}
	f.WarmUp = benchWarmUpLine(logf.Name())
	if f.WarmUp != "" {
		fmt.Fprintf(out, "  its warm-up: %s\n", f.WarmUp)
	}
	return f, nil
}

// procStatus reads the kB figures of /proc/PID/status (VmRSS, VmHWM, …).
func procStatus(pid int) (map[string]int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return nil, err
	}
	return parseProcStatus(b), nil
}

// parseProcStatus reads the "Name:   123 kB" lines of a /proc status file.
func parseProcStatus(b []byte) map[string]int64 {
	m := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 2 && f[1] == "kB" {
			if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				m[k] = n
			}
		}
	}
	return m
}

// benchWarmUpLine returns the child's log line that ends its warm-up, if any.
func benchWarmUpLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.Contains(line, "warm-up") {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// benchMany is what benchManyServices measures.
type benchMany struct {
	Services         int              `json:"services"`
	StacksPerService uint64           `json:"stacks_24h_first_service"`
	TrieNodesBound   int              `json:"trie_nodes_bound"`
	Rounds           []benchManyRound `json:"rounds"`
	SteadyHitRate    float64          `json:"steady_hit_rate"` // hits of the rounds after the first
	SteadyResets     int64            `json:"steady_resets"`
	HeapInuseMiB     float64          `json:"heap_inuse_mib"` // of the bench process, which holds the server
	VmHWMMiB         float64          `json:"vm_hwm_mib"`
}

// benchManyRound is one round over every service.
type benchManyRound struct {
	Queries   int     `json:"queries"`
	Hits      int64   `json:"hits"`
	Misses    int64   `json:"misses"`
	Resets    int64   `json:"resets"`
	P50Ms     float64 `json:"p50_ms"`
	MaxMs     float64 `json:"max_ms"`
	TrieNodes int64   `json:"trie_nodes"`
}

func (m *benchMany) goal() benchGoal {
	return benchGoal{Goal: fmt.Sprintf("%d services in turn: trie hit rate after round 1", m.Services), Measured: m.SteadyHitRate,
		Limit: 0.9, Unit: "hit rate", How: fmt.Sprintf("in-process server, %d start-overs after round 1, trie bound %d nodes", m.SteadyResets, m.TrieNodesBound)}
}

// benchManyServices reads the 24h graphs of services PREFIX-01…PREFIX-N in turn, -many-rounds times, on a
// query server of its own in this process, and reports from the server's TrieStats how many reads found
// their stacks in the tries and how often the tries started over (they are bounded together by
// FLAMESTREAM_QUERY_TRIE_NODES). The memory figures are this process's, which holds that server.
func benchManyServices(ctx context.Context, db *chdb.DB, pg *pgdb.DB, log *slog.Logger, qc query.Config, o *benchOptions, to time.Time,
	secret string, out io.Writer) (*benchMany, error) {
	if *o.manyRounds < 2 {
		return nil, cli.Usagef("-many-rounds must be at least 2 (the first round learns the tries)")
	}
	qs := query.New(qc, db, pg, log)
	r := chi.NewRouter()
	qs.Routes(r)
	srv := httptest.NewServer(r)
	defer srv.Close()
	c := &benchClient{base: srv.URL, secret: secret, http: &http.Client{Timeout: 5 * time.Minute}}
	name := func(i int) string { return fmt.Sprintf("%s-%02d", *o.manyPrefix, i+1) }
	first, err := benchDistinctStacks(ctx, db, name(0), to)
	if err != nil {
		return nil, err
	}
	if first == 0 {
		return nil, fmt.Errorf("bench: no samples of %s in the 24h before %s (run backfill --shape tree --services %d --service %s)",
			name(0), to.Format(time.RFC3339), *o.many, *o.manyPrefix)
	}
	bound := qc.TrieNodes
	if bound <= 0 {
		bound = 20_000_000
	}
	m := &benchMany{Services: *o.many, StacksPerService: first, TrieNodesBound: bound}
	fmt.Fprintf(out, "\nmany services: %d services %s…%s (%d distinct stacks in 24h in the first), their 24h graphs in turn, %d rounds, trie bound %d nodes\n",
		*o.many, name(0), name(*o.many-1), first, *o.manyRounds, bound)
	var hits, queries int64
	for round := range *o.manyRounds {
		before := qs.TrieStats()
		times := make([]time.Duration, 0, *o.many)
		for i := range *o.many {
			d, _, err := c.get(ctx, "/api/v1/flamegraph", benchRange(name(i), to, 24*time.Hour))
			if err != nil {
				return nil, fmt.Errorf("bench: %s: %w", name(i), err)
			}
			times = append(times, d)
		}
		after := qs.TrieStats()
		slices.Sort(times)
		rd := benchManyRound{Queries: len(times), Hits: after.Hits - before.Hits, Misses: after.Misses - before.Misses,
			Resets: after.Resets - before.Resets, P50Ms: benchMsf(benchPct(times, 50)), MaxMs: benchMsf(times[len(times)-1]), TrieNodes: after.Nodes}
		m.Rounds = append(m.Rounds, rd)
		if round > 0 {
			hits += rd.Hits
			queries += int64(rd.Queries)
			m.SteadyResets += rd.Resets
		}
		fmt.Fprintf(out, "  round %d: %d/%d reads hit the tries, %d start-overs, p50 %s, max %s, %d trie nodes after\n",
			round+1, rd.Hits, rd.Queries, rd.Resets, benchMs(benchPct(times, 50)), benchMs(times[len(times)-1]), rd.TrieNodes)
	}
	m.SteadyHitRate = float64(hits) / float64(max(queries, 1))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.HeapInuseMiB = float64(ms.HeapInuse) / (1 << 20)
	if st, err := procStatus(os.Getpid()); err == nil {
		m.VmHWMMiB = float64(st["VmHWM"]) / 1024
	}
	fmt.Fprintf(out, "  memory (this process, which holds the server): heap in use %.0f MiB after a GC, VmHWM %.0f MiB\n", m.HeapInuseMiB, m.VmHWMMiB)
	return m, nil
}

// benchDistinctStacks counts the distinct stacks of a service in the 24 hours before to.
func benchDistinctStacks(ctx context.Context, db *chdb.DB, service string, to time.Time) (uint64, error) {
	var n proto.ColUInt64
	err := db.Do(ctx, ch.Query{
		Body: "SELECT uniqExact(stack) AS n FROM " + db.Table(schema.HourAll) + " WHERE service = " + chdb.String(service) +
			" AND ts >= " + chdb.Time(to.Add(-24*time.Hour).Truncate(time.Hour)) + " AND ts < " + chdb.Time(to),
		Result: proto.Results{{Name: "n", Data: &n}},
	})
	if err != nil {
		return 0, fmt.Errorf("bench: distinct stacks of %s: %w", service, err)
	}
	if len(n) != 1 {
		return 0, nil
	}
	return n[0], nil
}
