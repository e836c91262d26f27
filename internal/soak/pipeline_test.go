package soak

import (
	"bytes"
	"context"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/flamestream/flamestream/indexer"
	"github.com/flamestream/flamestream/internal/config"
	"github.com/flamestream/flamestream/internal/demo"
)

func TestCPUTicksAddsUtimeAndStimeAfterTheLastParenthesis(t *testing.T) {
	// Fields 14 and 15 are utime 1234 and stime 56; the command name holds spaces and a ')' of its own.
	stat := "4242 (clickhouse) srv (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 56 7 8 20 0 30 0 123 456 789"
	got, err := cpuTicks(stat)
	if err != nil {
		t.Fatal(err)
	}
	if got != 1290 {
		t.Fatalf("cpuTicks = %d, want 1290 (utime 1234 + stime 56; children's 7 and 8 not counted)", got)
	}
	for _, bad := range []string{"", "12 noparen S 1 2", "12 (x) S 1 2 3", "12 (x) S 1 1 1 0 -1 0 0 0 0 0 abc 5 0 0"} {
		if _, err := cpuTicks(bad); err == nil {
			t.Errorf("cpuTicks(%q) did not fail", bad)
		}
	}
}

func TestCPUMillisOfThisProcessGrowsWithWork(t *testing.T) {
	before, err := cpuMillis(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	x := 0.0
	for t0 := time.Now(); time.Since(t0) < 150*time.Millisecond; {
		x += math.Sqrt(x + 1)
	}
	after, err := cpuMillis(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// 150 ms of busy loop on a shared machine: at least some of it is ours, and never more than wall time
	// times the cores.
	if d := after - before; d < 10 || d > 150*float64(8)+100 {
		t.Fatalf("busy loop of 150 ms used %.0f ms of CPU by /proc (x=%v)", d, x)
	}
	if _, err := cpuMillis(0); err == nil {
		t.Fatal("cpuMillis(0) did not fail")
	}
}

func TestCPUUseOfARestartedProcessCountsOnlyTheNewOne(t *testing.T) {
	if got := (cpuUse{start: 500, end: 800}).millis(); got != 300 {
		t.Fatalf("millis = %v, want 300", got)
	}
	if got := (cpuUse{start: 500, end: 40, restarted: true}).millis(); got != 40 {
		t.Fatalf("restarted millis = %v, want 40", got)
	}
}

func TestPercentileIsNearestRank(t *testing.T) {
	xs := func() []float64 { return []float64{9, 1, 8, 2, 7, 3, 6, 4, 5, 10} }
	for _, c := range []struct {
		p, want float64
	}{{50, 5}, {90, 9}, {99, 10}, {100, 10}, {10, 1}, {0.1, 1}, {51, 6}} {
		if got := percentile(xs(), c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if got := percentile([]float64{3}, 99); got != 3 {
		t.Errorf("p99 of one value = %v", got)
	}
	if !math.IsNaN(percentile(nil, 50)) {
		t.Error("percentile of nothing is not NaN")
	}
}

// TestPipelinePresetsHaveTheIssuesShapes keeps the presets what the issue measured: 60 stack lines, and
// 2,000 lines of ≈ 830 KB of text.
func TestPipelinePresetsHaveTheIssuesShapes(t *testing.T) {
	for name, wantKB := range map[string][2]int{"60": {15, 45}, "2000": {700, 1000}} {
		sh := PipelineShapes[name]
		lf := demo.NewLoadFleet(1, demo.NewFleet(1, "x", demo.Shape{Stacks: sh.Stacks, Lines: sh.Lines, MinDepth: sh.MinDepth, MaxDepth: sh.MaxDepth}), 2, 2)
		body := lf.Body(0, 0, time.Now(), "")
		n, err := bodyCount(body)
		if err != nil || n == 0 {
			t.Fatalf("%s: body count %d, %v", name, n, err)
		}
		kb := lf.PlainBytes / 1000
		if kb < wantKB[0] || kb > wantKB[1] || sh.Name != name {
			t.Errorf("preset %s: %d KB of text per profile, want %d–%d", name, kb, wantKB[0], wantKB[1])
		}
	}
}

// TestPipelineBenchSmoke runs the pipeline bench for a few seconds on its own servers, with the indexer
// under the dev binary's pprof wrapper: every accepted upload must be found queryable with a lag, the
// processes must show CPU, and the indexer's profile must be a CPU profile.
func TestPipelineBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("the pipeline smoke test starts ClickHouse, NATS, versitygw and the roles")
	}
	progs := map[string]string{}
	var missing []string
	for _, name := range []string{"clickhouse-server", "nats-server", "versitygw"} {
		progs[name] = FindProgram(name)
		if !isExecutable(progs[name]) {
			missing = append(missing, name)
		}
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:5432", time.Second); err == nil {
		c.Close()
	} else {
		missing = append(missing, "postgresql at 127.0.0.1:5432")
	}
	if len(missing) > 0 {
		msg := "pipeline bench needs " + strings.Join(missing, ", ") + "; install and start them with `go tool task start`"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	bins := map[string]string{}
	for _, name := range []string{"flamestream", "flamestream-dev"} {
		bins[name] = filepath.Join(dir, name)
		if out, err := exec.Command("go", "build", "-o", bins[name], "github.com/flamestream/flamestream/cmd/"+name).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", name, err, out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	sh := PipelineShapes["60"]
	sh.Agents = 40
	pp := filepath.Join(dir, "indexer.pprof")
	rep, err := RunPipeline(ctx, PipelineConfig{BuildRollups: indexer.BuildEverything, Shape: sh, Rate: 30, Workers: 8, Duration: 5 * time.Second,
		Drain: 20 * time.Second, Baseline: 500 * time.Millisecond, Settle: 5 * time.Second, Seed: 3,
		Binary: bins["flamestream"], ClickHouseServer: progs["clickhouse-server"], NATSServer: progs["nats-server"],
		VersityGW: progs["versitygw"], PostgresURL: config.Defaults().PostgresURL, Dir: filepath.Join(dir, "run"),
		ProfileRole: "indexer", RoleBinary: bins["flamestream-dev"], ProfileOut: pp, Progress: &progress})
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	var table bytes.Buffer
	rep.WriteTable(&table)
	t.Log("\n" + table.String())
	if rep.Accepted < 50 || rep.Statuses["200"] != rep.Accepted {
		t.Fatalf("accepted %d of %d offered (%v); want ≥ 50 of ≈ 150", rep.Accepted, rep.Offered, rep.Statuses)
	}
	if rep.Queryable != rep.Accepted || rep.AllQueryableAfterLoadS < 0 {
		t.Fatalf("%d of %d accepted uploads found queryable (all after %.1f s): %v", rep.Queryable, rep.Accepted, rep.AllQueryableAfterLoadS, rep.Notes)
	}
	// Every profile has at most 60 rows (one per container and stack) and at least one.
	if rep.Rows < rep.Queryable || rep.Rows > 60*rep.Queryable {
		t.Fatalf("%d sample rows for %d profiles of at most 60 lines", rep.Rows, rep.Queryable)
	}
	if !(rep.LagP50S > 0 && rep.LagP50S <= rep.LagP99S && rep.LagP99S <= rep.LagMaxS && rep.LagMaxS < rep.WindowSeconds) {
		t.Fatalf("lags p50 %.2f p99 %.2f max %.2f s in a window of %.1f s", rep.LagP50S, rep.LagP99S, rep.LagMaxS, rep.WindowSeconds)
	}
	if !(rep.IngestP50Ms > 0 && rep.IngestP99Ms >= rep.IngestP50Ms) || rep.AcceptedPerSec < 5 || rep.IndexedRowsPerSec <= 0 {
		t.Fatalf("ingest p50 %.1f p99 %.1f ms, accepted %.1f/s, indexed %.0f rows/s", rep.IngestP50Ms, rep.IngestP99Ms, rep.AcceptedPerSec, rep.IndexedRowsPerSec)
	}
	// Each of the 40 agents sent its first upload without a gpid (a later one too, if its first reply was late).
	if rep.FirstUploads < int64(sh.Agents) || rep.FirstUploads >= rep.Offered || rep.IngestFirstP99Ms <= 0 || rep.IngestLaterP99Ms <= 0 {
		t.Fatalf("%d first uploads of %d agents (p99 %.1f ms, later %.1f ms)", rep.FirstUploads, sh.Agents, rep.IngestFirstP99Ms, rep.IngestLaterP99Ms)
	}
	if rep.IngestYields == -2 || (os.Geteuid() == 0 && rep.IngestYields < 0) {
		t.Errorf("ingest yield counters %v (%v s): not read, or off for a root process", rep.IngestYields, rep.IngestYieldSeconds)
	}
	used := map[string]float64{}
	for _, c := range rep.CPU {
		used[c.Name] = c.Millis
	}
	for _, name := range []string{"ingest", "indexer", ClickHouse, S3, NATS} {
		if used[name] <= 0 {
			t.Errorf("%s used no CPU by /proc over the window (%v)", name, used)
		}
	}
	if rep.IndexerInserts < 1 || rep.IndexerInsertSeconds <= 0 || rep.IndexerBatchEvents < 1 {
		t.Errorf("indexer metrics: %.0f inserts, %.3f s in them, %.1f events per batch", rep.IndexerInserts, rep.IndexerInsertSeconds, rep.IndexerBatchEvents)
	}
	if _, ok := used[PostgresBackends]; !ok {
		t.Errorf("no row for the PostgreSQL backends of the bench's database (%v)", used)
	}
	if rep.PipelineMsPerProfile <= 0 {
		t.Errorf("pipeline CPU per profile %.3f ms", rep.PipelineMsPerProfile)
	}
	f, err := os.Open(pp)
	if err != nil {
		t.Fatalf("indexer profile: %v (notes %v)", err, rep.Notes)
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		t.Fatalf("indexer profile: %v", err)
	}
	if len(p.SampleType) < 2 || p.SampleType[1].Type != "cpu" || p.DurationNanos < int64(4*time.Second) {
		t.Fatalf("indexer profile is not a CPU profile of the load: %v, %d ns", p.SampleType, p.DurationNanos)
	}
}

func TestMachineTicksCountsAllButIdleAndIOWait(t *testing.T) {
	stat := "cpu  100 5 50 1000 20 3 2 1 40 0\ncpu0 50 2 25 500 10 1 1 0 20 0\nintr 1 2 3\n"
	busy, total, err := machineTicks(stat)
	if err != nil {
		t.Fatal(err)
	}
	// user 100 + nice 5 + system 50 + irq 3 + softirq 2 + steal 1; guest 40 is inside user already.
	if busy != 161 || total != 1181 {
		t.Fatalf("busy %d total %d, want 161 and 1181", busy, total)
	}
	if _, _, err := machineTicks("cpu0 1 2 3 4 5\n"); err == nil {
		t.Fatal("no aggregate cpu line did not fail")
	}
	if _, _, err := machineTicks("cpu  1 x 3 4 5\n"); err == nil {
		t.Fatal("a bad column did not fail")
	}
}

func TestPGProcessGroupCountsTheBenchsBackendsAndTheSharedProcessesApart(t *testing.T) {
	const db = "fs_soak_42"
	for cmd, want := range map[string]string{
		"postgres: 15/main: flamestream fs_soak_42 127.0.0.1(51234) idle\x00":          PostgresBackends,
		"postgres: flamestream fs_soak_42 127.0.0.1(51234) INSERT\x00":                 PostgresBackends,
		"postgres: 15/main: flamestream fs_soak_42 [local] idle\x00":                   PostgresBackends,
		"postgres: 15/main: flamestream fs_test_7 127.0.0.1(40000) idle\x00":           "",
		"postgres: 15/main: flamestream fs_soak_421 127.0.0.1(40000) idle\x00":         "",
		"postgres: 15/main: walwriter \x00":                                            PostgresShared,
		"postgres: 15/main: autovacuum worker fs_soak_42\x00":                          PostgresShared,
		"/usr/lib/postgresql/15/bin/postgres\x00-D\x00/var/lib/postgresql/15/main\x00": PostgresShared,
		"/usr/sbin/clickhouse-server\x00--config=x\x00":                                "",
		"": "",
	} {
		if got := pgProcessGroup(cmd, db); got != want {
			t.Errorf("pgProcessGroup(%q) = %q, want %q", cmd, got, want)
		}
	}
}

func TestGroupMillisAddsEachProcessGrowthAndAllOfANewOne(t *testing.T) {
	a := map[int]float64{1: 100, 2: 50, 3: 10}
	z := map[int]float64{1: 130, 2: 50, 4: 25} // 3 ended, 4 started
	ms, ended := groupMillis(a, z)
	if ms != 55 || ended != 1 {
		t.Fatalf("groupMillis = %v ms, %d ended; want 55 (30 + 0 + 25) and 1", ms, ended)
	}
}
