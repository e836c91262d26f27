package indexer_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/flamestream/flamestream/indexer"
	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/demo"
)

// TestDiskBytesPerSample measures the disk each part takes per sample on a realistic hour: HOSTS hosts ×
// MINUTES minutes of one service through ingest and the indexer, then the janitor's compaction. It runs
// only with FLAMESTREAM_DISK_BENCH set (it takes minutes):
//
//	FLAMESTREAM_DISK_BENCH=agent  the real agent profile (74 lines) per host, counts and lines varying from
//	                              minute to minute (what one service's agents send)
//	FLAMESTREAM_DISK_BENCH=fleet  the pipeline bench's 60-line shape: every profile drawn at random from
//	                              2,000 stacks (no continuity from minute to minute: the worst case)
//
// FLAMESTREAM_DISK_HOSTS and FLAMESTREAM_DISK_MINUTES set the size (default 60 × 60), FLAMESTREAM_DISK_SCALE
// multiplies the agent profile's counts (default 1: ≈ 70 samples a profile once idle is dropped; 13 gives
// the ≈ 900 of the measurement). It fails unless every
// sample is counted, the archive shrinks and every upload reads back from its bundle.
func TestDiskBytesPerSample(t *testing.T) {
	mode := os.Getenv("FLAMESTREAM_DISK_BENCH")
	if mode == "" {
		t.Skip("set FLAMESTREAM_DISK_BENCH=agent or fleet to measure")
	}
	hosts, minutes := envInt("FLAMESTREAM_DISK_HOSTS", 60), envInt("FLAMESTREAM_DISK_MINUTES", 60)
	scale := float64(envInt("FLAMESTREAM_DISK_SCALE", 1))
	r := newRig(t)
	ctx := context.Background()
	svc := fmt.Sprintf("disk-%s-%d", mode, time.Now().UnixNano())
	base := time.Now().UTC().Truncate(time.Hour).Add(-4 * time.Hour)
	rng := rand.New(rand.NewPCG(11, 12))
	fleet := demo.NewFleet(13, svc, demo.Shape{Stacks: 2000, Lines: 60, MinDepth: 4, MaxDepth: 16})
	prev := make([][]byte, hosts) // each host's last profile: the next minute varies it
	var samples uint64
	t0 := time.Now()
	for m := range minutes {
		for h := range hosts {
			host := fmt.Sprintf("host-%03d", h)
			var text []byte
			switch mode {
			case "agent":
				if prev[h] == nil {
					prev[h] = demo.Restamp(host, scale*(0.5+float64(h)/float64(hosts)))
				}
				text = varyProfile(rng, prev[h])
			case "fleet":
				text = fleet.Profile(rng, host, "m5.large")
			default:
				t.Fatalf("FLAMESTREAM_DISK_BENCH=%q: want agent or fleet", mode)
			}
			samples += countOf(t, text, mode == "agent")
			r.st.Upload(t, r.token, svc, demo.NewUpload(text, host, base.Add(time.Duration(m)*time.Minute), "").Gzip())
		}
	}
	t.Logf("%d profiles, %d samples uploaded in %v", hosts*minutes, samples, time.Since(t0).Round(time.Millisecond))
	cons := r.consumer(t, "indexer", time.Minute)
	r.run(t, r.st.CH, cons)
	drained(t, cons, 10*time.Minute)
	checkTotals(t, fingerprintOf(t, r.st.CH, svc), samples)

	keys := uploadKeys(t, r.store, svc)
	before := archiveBytes(t, r, svc)
	j := indexer.NewJanitor(r.st.CH, indexer.Retention{}, r.log)
	j.Compaction.Settle = -1 // this test's uploads are seconds old
	j.Archive = scopedStore{r.store, "profiles/" + svc}
	if out := os.Getenv("FLAMESTREAM_DISK_PPROF"); out != "" { // a CPU profile of the compaction alone
		f, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		defer f.Close()
	}
	t1, c1 := time.Now(), processCPU()
	res, err := j.CompactArchive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	took, cpu := time.Since(t1), processCPU()-c1
	pprof.StopCPUProfile() // nothing when no profile was started
	after := archiveBytes(t, r, svc)
	if after >= before || res.Objects != len(keys) {
		t.Errorf("compaction %+v: archive %d → %d bytes, %d uploads", res, before, after, len(keys))
	}
	got := contents(t, r.store, keys) // every upload reads back (from its bundle)
	if len(got) != len(keys) {
		t.Errorf("%d of %d uploads read back", len(got), len(keys))
	}
	chAsIs := clickHouseBytes(t, r.st.CH)
	for _, tb := range clickHouseTables(t, r.st.CH) {
		if err := r.st.CH.Exec(ctx, "OPTIMIZE TABLE "+r.st.CH.Table(tb)+" FINAL"); err != nil {
			t.Fatal(err)
		}
	}
	chFinal := clickHouseBytes(t, r.st.CH)
	per := func(b int64) string { return fmt.Sprintf("%.3f B/sample", float64(b)/float64(samples)) }
	t.Logf("%s: %d hosts × %d minutes, %d profiles, %d samples (%.0f a profile)", mode, hosts, minutes, hosts*minutes, samples, float64(samples)/float64(hosts*minutes))
	t.Logf("archive before compaction: %d bytes, %s (%d objects)", before, per(before), len(keys))
	t.Logf("archive after compaction:  %d bytes, %s (%d bundles, %.1fx smaller, compaction took %v, %v of this process's CPU a upload)",
		after, per(after), res.Bundles, float64(before)/float64(after), took.Round(time.Millisecond), (cpu / time.Duration(len(keys))).Round(time.Microsecond))
	t.Logf("ClickHouse as merged:      %d bytes, %s", chAsIs, per(chAsIs))
	t.Logf("ClickHouse after OPTIMIZE: %d bytes, %s", chFinal, per(chFinal))
	t.Logf("in all, before → after:    %s → %s", per(before+chFinal), per(after+chFinal))
	for _, tb := range clickHouseTables(t, r.st.CH) {
		t.Logf("  %-32s %s", tb, per(clickHouseBytes(t, r.st.CH, tb)))
	}
}

// processCPU is the CPU time this process has used (the janitor's compaction runs in it; the S3 server's
// share is not counted).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// varyProfile is the same host's next minute: every count scaled by a random factor in [0.7, 1.3), about
// a tenth of the stack lines left out (those the profiler did not see this time).
func varyProfile(rng *rand.Rand, text []byte) []byte {
	lines := bytes.Split(text, []byte("\n"))
	out := make([]byte, 0, len(text))
	for i, l := range lines {
		sp := bytes.LastIndexByte(l, ' ')
		if i == 0 || sp < 0 {
			if len(l) > 0 {
				out = append(append(out, l...), '\n')
			}
			continue
		}
		if rng.IntN(10) == 0 {
			continue
		}
		n, err := strconv.Atoi(string(l[sp+1:]))
		if err != nil {
			continue
		}
		n = max(1, int(float64(n)*(0.7+0.6*rng.Float64())))
		out = append(append(out, l[:sp+1]...), strconv.Itoa(n)...)
		out = append(out, '\n')
	}
	return out
}

// countOf sums the counts of a profile's stack lines but the idle ones (the swapper process, which the
// indexer drops like the original; with two prefix fields, the real agent's format).
func countOf(t *testing.T, text []byte, prefixed bool) uint64 {
	t.Helper()
	var n uint64
	for _, line := range strings.Split(string(text), "\n")[1:] {
		if f := strings.SplitN(line, ";", 3); prefixed && len(f) == 3 && strings.HasPrefix(f[2], "swapper") {
			continue
		}
		if sp := strings.LastIndexByte(line, ' '); sp > 0 {
			c, err := strconv.ParseUint(line[sp+1:], 10, 64)
			if err != nil {
				t.Fatalf("profile line %q: %v", line, err)
			}
			n += c
		}
	}
	return n
}

// archiveBytes sums the stored bytes of service's uploads and bundles.
func archiveBytes(t *testing.T, r *rig, service string) int64 {
	t.Helper()
	ctx := context.Background()
	var n int64
	days, err := r.store.Prefixes(ctx, "profiles/"+service+"/", 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range days {
		hours, err := r.store.Prefixes(ctx, d, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hours {
			for _, dir := range []string{h, h + "bundles/"} {
				objs, err := r.store.List(ctx, dir, 1_000_000)
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range objs {
					n += o.Size
				}
			}
		}
	}
	return n
}

// clickHouseTables lists the tables of the test's database that hold parts.
func clickHouseTables(t *testing.T, db *chdb.DB) []string {
	t.Helper()
	var col proto.ColStr
	var out []string
	err := db.Do(context.Background(), ch.Query{
		Body:   "SELECT DISTINCT table FROM system.parts WHERE active AND database = " + chdb.String(db.Database),
		Result: proto.Results{{Name: "table", Data: &col}},
		OnResult: func(ctx context.Context, b proto.Block) error {
			for i := 0; i < col.Rows(); i++ {
				out = append(out, col.Row(i))
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// clickHouseBytes is the bytes on disk of every active part of the test's database, or of the tables
// named.
func clickHouseBytes(t *testing.T, db *chdb.DB, tables ...string) int64 {
	t.Helper()
	var n proto.ColUInt64
	where := ""
	for i, tb := range tables {
		if i == 0 {
			where = " AND table IN (" + chdb.String(tb)
		} else {
			where += ", " + chdb.String(tb)
		}
		if i == len(tables)-1 {
			where += ")"
		}
	}
	err := db.Do(context.Background(), ch.Query{
		Body:   "SELECT toUInt64(sum(bytes_on_disk)) AS n FROM system.parts WHERE active AND database = " + chdb.String(db.Database) + where,
		Result: proto.Results{{Name: "n", Data: &n}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return int64(n[0])
}
