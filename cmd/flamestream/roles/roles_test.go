package roles_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/flamestream/flamestream/cmd/flamestream/roles"
	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/config"
	"github.com/flamestream/flamestream/internal/testenv"
	"github.com/flamestream/flamestream/stream"
)

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// running is one roles.Run on the local servers with its own databases, bucket and embedded NATS.
type running struct {
	url    string
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
	err    error         // what Run returned
}

func start(t *testing.T, role string, edit func(*config.Config)) *running {
	t.Helper()
	chAddr := testenv.Servers(t).ClickHouseAddr
	cfg := roles.Defaults()
	cfg.PostgresURL = testenv.NewPostgres(t, cfg.PostgresURL)
	cfg.ClickHouseDatabase = testenv.Name("fs_test")
	cfg.S3Bucket = strings.ReplaceAll(testenv.Name("fs-test"), "_", "-")
	cfg.NATSURL = ""
	cfg.DataDir = t.TempDir()
	cfg.IngestAddr = testenv.FreeAddr(t)
	cfg.QueryAddr = testenv.FreeAddr(t)
	cfg.BatchWait = 200 * time.Millisecond
	if edit != nil {
		edit(&cfg)
	}
	t.Cleanup(func() {
		db, err := chdb.Open(context.Background(), chdb.Options{Addr: chAddr, User: cfg.ClickHouseUser, Password: cfg.ClickHousePassword, Database: "default"})
		if err == nil {
			_ = db.Exec(context.Background(), "DROP DATABASE IF EXISTS "+cfg.ClickHouseDatabase)
			db.Close()
		}
	})
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	rl, ok := roles.Lookup(role)
	if !ok {
		t.Fatalf("no role %q", role)
	}
	r := &running{url: "http://" + rl.Addr(cfg), cancel: cancel, done: make(chan struct{})}
	go func() {
		r.err = roles.Run(ctx, cfg, log, role)
		close(r.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Error("roles.Run did not return within 30s")
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if code, _ := readyz(t, r.url); code == http.StatusOK {
			return r
		}
		select {
		case <-r.done:
			t.Fatalf("roles.Run %s stopped: %v", role, r.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after 60s", role)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// client keeps no idle connection, so that no goroutine of the test's own HTTP transport outlives a call.
var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func readyz(t *testing.T, base string) (int, string) {
	t.Helper()
	resp, err := client.Get(base + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// flamestreamGoroutines returns the stacks of the goroutines running Flamestream code, other than the
// test's own.
func flamestreamGoroutines() []string {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "_test.go") {
			continue
		}
		for _, line := range strings.Split(g, "\n") {
			// Frames only: "created by" names the starter of a goroutine that may run another package's code.
			if strings.HasPrefix(line, "github.com/flamestream/flamestream/") {
				out = append(out, g)
				break
			}
		}
	}
	return out
}

func TestRunReturnsOnlyAfterItsGoroutinesEnded(t *testing.T) {
	base := runtime.NumGoroutine()
	r := start(t, "all", func(c *config.Config) { c.JanitorInterval = time.Hour })
	for range 3 {
		if code, body := readyz(t, r.url); code != http.StatusOK {
			t.Fatalf("/readyz %d %s", code, body)
		}
	}
	r.cancel()
	select {
	case <-r.done:
		if r.err != nil {
			t.Errorf("roles.Run returned %v after its context ended", r.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("roles.Run did not return within 30s")
	}
	// At once, not eventually: every goroutine Run started (roles, janitor, warm-up, the indexer's lag
	// watcher, the HTTP servers' listeners) must have ended before it returned.
	if gs := flamestreamGoroutines(); len(gs) > 0 {
		t.Fatalf("%d goroutines running Flamestream code after roles.Run returned:\n%s", len(gs), strings.Join(gs, "\n\n"))
	}
	// The clients' own goroutines (a draining NATS connection, pgx's pool) end shortly after.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base+2 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines 10s after roles.Run returned, %d before it started:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestReadyzNamesTheDependencyNotReadyWithoutItsErrorAndRecoversWithClickHouse(t *testing.T) {
	cut := testenv.NewProxy(t, testenv.Servers(t).ClickHouseAddr)
	r := start(t, "query", func(c *config.Config) { c.ClickHouseAddr = cut.Addr() })

	cut.Refuse()
	code, body := readyz(t, r.url)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with ClickHouse cut: %d %s, want 503", code, body)
	}
	var reply struct{ Message, Detail string }
	if err := json.Unmarshal([]byte(body), &reply); err != nil {
		t.Fatalf("/readyz reply %q: %v", body, err)
	}
	if reply.Message != "not ready" || reply.Detail != "clickhouse: unavailable" {
		t.Errorf("/readyz reply %q, want message \"not ready\" and detail \"clickhouse: unavailable\"", body)
	}
	for _, leak := range []string{"127.0.0.1", "tcp", "EOF", "reset", "broken pipe", "refused", "handshake"} {
		if strings.Contains(body, leak) {
			t.Errorf("/readyz reply %q carries the connection error (%q)", body, leak)
		}
	}

	cut.Heal()
	t0 := time.Now()
	for {
		code, body = readyz(t, r.url)
		if code == http.StatusOK {
			break
		}
		if time.Since(t0) > 2*time.Second {
			t.Fatalf("/readyz still %d %s 2s after ClickHouse came back", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("/readyz ready %s after ClickHouse came back", time.Since(t0).Round(time.Millisecond))
}

// TestTableRolesOpenOnlyWhatTheyDeclare pins the role table: the indexer opens neither PostgreSQL nor
// an embedded NATS, and each role's configuration holds the variables of what it opens and nothing else.
func TestTableRolesOpenOnlyWhatTheyDeclare(t *testing.T) {
	want := map[string]roles.Opens{
		"all":     roles.Postgres | roles.ClickHouse | roles.S3 | roles.NATS | roles.EmbeddedNATS,
		"ingest":  roles.Postgres | roles.S3 | roles.NATS,
		"indexer": roles.ClickHouse | roles.S3 | roles.NATS,
		"query":   roles.Postgres | roles.ClickHouse,
		"janitor": roles.Postgres | roles.ClickHouse | roles.S3, // the archive's retention
	}
	for _, r := range roles.Table() {
		if r.Opens != want[r.Name] {
			t.Errorf("%s opens %v, want %v", r.Name, r.Opens, want[r.Name])
		}
		vars := map[string]bool{}
		for _, v := range r.Vars() {
			vars[v.Env] = true
		}
		for env, dep := range map[string]roles.Opens{"FLAMESTREAM_PG_URL": roles.Postgres, "FLAMESTREAM_CH_ADDR": roles.ClickHouse,
			"FLAMESTREAM_S3_ENDPOINT": roles.S3, "NATS_URL": roles.NATS, "FLAMESTREAM_DATA_DIR": roles.EmbeddedNATS} {
			if vars[env] != (r.Opens&dep != 0) {
				t.Errorf("%s reads %s: %v, but opens %v", r.Name, env, vars[env], r.Opens)
			}
		}
	}
	if len(roles.Table()) != len(want) {
		t.Errorf("%d roles, want %d", len(roles.Table()), len(want))
	}
}

// TestIndexerRunsWithoutPostgres starts the indexer with PostgreSQL pointing at a closed port: it must come
// up ready and index nothing from PostgreSQL, because it never opens it (nor runs its migrations).
func TestIndexerRunsWithoutPostgres(t *testing.T) {
	ns, err := stream.StartEmbedded(t.TempDir(), -1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown) // after the role stopped: cleanups run last registered first
	r := start(t, "indexer", func(c *config.Config) {
		c.PostgresURL = "postgres://flamestream:x@127.0.0.1:1/none?sslmode=disable&connect_timeout=1"
		c.NATSURL = ns.URL()
	})
	if code, body := readyz(t, r.url); code != http.StatusOK || strings.Contains(body, "postgres") {
		t.Fatalf("indexer /readyz %d %s", code, body)
	}
}
