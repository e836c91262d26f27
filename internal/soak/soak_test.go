package soak

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flamestream/flamestream/indexer"
	"github.com/flamestream/flamestream/internal/config"
	"github.com/flamestream/flamestream/internal/demo"
)

// TestSoakTwoMinutes is the suite's soak: two minutes of agent uploads while the indexer, ClickHouse, NATS
// and the S3 server are each killed at least once and restarted. It fails when an accepted profile is
// missing or counted twice (per profile, in any rollup, or in the flame graph), when a killed process or a
// role does not come back ready, or when RSS or goroutines grow.
func TestSoakTwoMinutes(t *testing.T) {
	if testing.Short() {
		t.Skip("the soak takes about three minutes")
	}
	cfg := config.Defaults()
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
		msg := "soak needs " + strings.Join(missing, ", ") + "; install and start them with `go tool task start`"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}

	dir := t.TempDir()
	bin := filepath.Join(dir, "flamestream")
	build := exec.Command("go", "build", "-o", bin, "github.com/flamestream/flamestream/cmd/flamestream")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build flamestream: %v\n%s", err, out)
	}

	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Config{BuildRollups: indexer.BuildEverything,
		Duration: 2 * time.Minute, Seed: 11, Rate: 5, Agents: 20, Workers: 32,
		MinDown: 2 * time.Second, MaxDown: 6 * time.Second, MinGap: 3 * time.Second, MaxGap: 8 * time.Second,
		Warmup: 10 * time.Second, Quiet: 20 * time.Second, Recover: 30 * time.Second,
		RetryGrace: 30 * time.Second, Drain: 45 * time.Second,
		SampleEvery: 4 * time.Second, QueryEvery: 10 * time.Second,
		Binary: bin, ClickHouseServer: progs["clickhouse-server"], NATSServer: progs["nats-server"], VersityGW: progs["versitygw"],
		PostgresURL: cfg.PostgresURL, Dir: filepath.Join(dir, "soak"), Progress: &progress,
	})
	if rep != nil {
		var table bytes.Buffer
		rep.WriteTable(&table)
		t.Log("\n" + table.String())
		if art := os.Getenv("FLAMESTREAM_ARTIFACTS"); art != "" {
			if b, err := json.MarshalIndent(rep, "", "  "); err == nil && os.MkdirAll(art, 0o755) == nil {
				_ = os.WriteFile(filepath.Join(art, "soak.json"), b, 0o644)
			}
		}
	}
	if err != nil {
		t.Log(progress.String())
		logTails(t, filepath.Join(dir, "soak"))
		t.Fatalf("soak could not run: %v", err)
	}
	if !rep.OK() {
		t.Log(progress.String())
		logTails(t, filepath.Join(dir, "soak"))
		for _, f := range rep.Failures {
			t.Error(f)
		}
	}
	// The soak must have tested something: uploads accepted during faults, every target killed.
	if rep.Acked < 400 || len(rep.Faults) < len(Targets) {
		t.Errorf("soak too small to prove anything: %d uploads accepted, %d faults", rep.Acked, len(rep.Faults))
	}
}

// logTails logs the warnings and errors at the end of every role's and server's log.
func logTails(t *testing.T, dir string) {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, p := range logs {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		var lines []string
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l := sc.Text()
			if strings.Contains(l, `"level":"WARN"`) || strings.Contains(l, `"level":"ERROR"`) || strings.Contains(l, "rror") {
				lines = append(lines, l)
			}
		}
		f.Close()
		if len(lines) > 8 {
			lines = lines[len(lines)-8:]
		}
		for i, l := range lines {
			if len(l) > 400 {
				lines[i] = l[:400] + "…"
			}
		}
		if len(lines) > 0 {
			t.Logf("%s (last warnings and errors):\n%s", filepath.Base(p), strings.Join(lines, "\n"))
		}
	}
}

// TestBodyCountReadsWhatIsSent checks the soak's expectation against a profile whose counts are known.
func TestBodyCountReadsWhatIsSent(t *testing.T) {
	text := "#{\"metadata\":{\"hostname\":\"h\"}}\npython3;a;b 3\njava;c 40\n\nk8s_x;node;d 2\n"
	body := demo.NewUpload([]byte(text), "h", time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC), "").Gzip()
	n, err := bodyCount(body)
	if err != nil || n != 45 {
		t.Fatalf("bodyCount = %d, %v; want 45", n, err)
	}
	bad := demo.NewUpload([]byte("#{}\npython3;a;b\n"), "h", time.Now(), "").Gzip()
	if _, err := bodyCount(bad); err == nil {
		t.Fatal("a stack line without a count was accepted")
	}
}
