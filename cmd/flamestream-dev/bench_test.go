package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flamestream/flamestream/cmd/flamestream/testenv"
)

func TestParseProcStatusReadsMemoryFigures(t *testing.T) {
	st := parseProcStatus([]byte("Name:\tflamestream\nState:\tS (sleeping)\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t9\n"))
	if st["VmHWM"] != 204800 || st["VmRSS"] != 102400 {
		t.Fatalf("parsed %v", st)
	}
	if _, ok := st["Threads"]; ok {
		t.Error("a figure without kB was read as memory")
	}
	own, err := procStatus(os.Getpid())
	if err != nil || own["VmRSS"] <= 0 || own["VmHWM"] < own["VmRSS"] {
		t.Fatalf("own status: %v, %v", own, err)
	}
}

// TestBenchManyServicesReportsTrieStartOvers backfills two small tree-shaped services, then runs bench query
// on them twice: with the default trie bound every read after the first round hits the tries; with a bound
// smaller than one service's trie, the tries start over on every read and the goal is reported missed.
func TestBenchManyServicesReportsTrieStartOvers(t *testing.T) {
	st := testenv.Start(t, testenv.Options{Role: "query"})
	db := []string{"--ch-database", st.Config.ClickHouseDatabase, "--pg-url", st.Config.PostgresURL, "--log-level", "warn"}
	end := time.Now().UTC().Truncate(time.Hour).Format(time.RFC3339)
	var out, errb bytes.Buffer
	args := append([]string{"backfill", "--shape", "tree", "--services", "2", "--service", "many", "--days", "1", "--hosts", "3",
		"--interval", "1h", "--stacks-per-profile", "200", "--distinct-per-day", "2000", "--noise", "0", "--end", end}, db...)
	if code := run(args, &out, &errb); code != 0 {
		t.Fatalf("backfill: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "2000 distinct per day") {
		t.Errorf("backfill output lacks the distinct count:\n%s", out.String())
	}

	bench := func(trieNodes int) benchReport {
		t.Helper()
		path := filepath.Join(t.TempDir(), "bench.json")
		out.Reset()
		errb.Reset()
		args := append([]string{"bench", "query", "--service", "many-01", "--runs", "2", "--fresh=false", "--many", "2", "--many-rounds", "2",
			"--json", path, "--query-trie-nodes", strconv.Itoa(trieNodes)}, db...)
		if code := run(args, &out, &errb); code != 0 {
			t.Fatalf("bench: exit %d: %s", code, errb.String())
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var r benchReport
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		if r.Many == nil || len(r.Many.Rounds) != 2 || len(r.Table) == 0 || len(r.Goals) != 3 {
			t.Fatalf("report lacks figures: %s", b)
		}
		if r.Stacks != 2000 || r.Many.StacksPerService != 2000 {
			t.Errorf("24h distinct stacks %d and %d, want the 2000 backfill promised", r.Stacks, r.Many.StacksPerService)
		}
		return r
	}
	r := bench(20_000_000)
	if m := r.Many; m.Rounds[0].Misses != 2 || m.Rounds[1].Hits != 2 || m.SteadyResets != 0 || m.SteadyHitRate != 1 || !r.Goals[2].Met {
		t.Errorf("default bound: %+v, goal %+v", m, r.Goals[2])
	}
	if !strings.Contains(out.String(), "goals (issue 11") || !strings.Contains(out.String(), "round 2: 2/2 reads hit the tries") {
		t.Errorf("output lacks the goals or rounds:\n%s", out.String())
	}
	r = bench(1000)
	if m := r.Many; m.Rounds[1].Hits != 0 || m.SteadyResets < 2 || m.SteadyHitRate != 0 || r.Goals[2].Met {
		t.Errorf("bound of 1000 nodes: %+v, goal %+v", m, r.Goals[2])
	}
	if !strings.Contains(out.String(), "MISSED") {
		t.Errorf("a missed goal is not shown:\n%s", out.String())
	}
}
