// Package testenv starts Flamestream against the real local servers for integration and end-to-end tests:
// ClickHouse, PostgreSQL and versitygw from deploy/local, NATS embedded in the process. Each Stack gets its
// own PostgreSQL database, ClickHouse database, bucket and JetStream store, so tests never see each other.
package testenv

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/flamestream/flamestream/internal/app"
	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/config"
	"github.com/flamestream/flamestream/internal/pgdb"
)

// Stack is a running `flamestream all` with its own databases.
type Stack struct {
	URL    string
	Config config.Config
	PG     *pgdb.DB
	CH     *chdb.DB
}

// Servers checks that the local servers answer. Without them the test is skipped, unless CI is set: in CI
// a missing server is a failure.
func Servers(t testing.TB) config.Config {
	t.Helper()
	cfg := config.Defaults()
	var missing []string
	for name, addr := range map[string]string{"clickhouse": cfg.ClickHouseAddr, "postgresql": "127.0.0.1:5432", "versitygw (s3)": cfg.S3Endpoint} {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			missing = append(missing, name+" at "+addr)
			continue
		}
		c.Close()
	}
	if len(missing) > 0 {
		msg := "local servers not running (" + strings.Join(missing, ", ") + "); start them with `go tool task start`"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return cfg
}

// FreeAddr returns a free 127.0.0.1 port.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Name returns a fresh identifier usable as a database or bucket name.
func Name(prefix string) string {
	return fmt.Sprintf("%s_%d", prefix, time.Now().UnixNano()%1e12)
}

// NewPostgres creates a fresh PostgreSQL database and returns its URL; it is dropped at the end of the test.
func NewPostgres(t testing.TB, base string) string {
	t.Helper()
	ctx := context.Background()
	name := Name("fs_test")
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(context.Background())
		}
	})
	return strings.Replace(base, "/flamestream?", "/"+name+"?", 1)
}

// Options adjust a Stack before it starts.
type Options struct {
	// Role is the role to run ("all" by default).
	Role string
	// Edit changes the configuration.
	Edit func(*config.Config)
}

// Start runs Flamestream in-process and waits until /readyz answers.
func Start(t testing.TB, o Options) *Stack {
	t.Helper()
	cfg := Servers(t)
	cfg.PostgresURL = NewPostgres(t, cfg.PostgresURL)
	cfg.ClickHouseDatabase = Name("fs_test")
	cfg.S3Bucket = strings.ReplaceAll(Name("fs-test"), "_", "-")
	cfg.NATSURL = ""
	cfg.DataDir = t.TempDir()
	cfg.IngestAddr = FreeAddr(t)
	cfg.QueryAddr = FreeAddr(t)
	cfg.BatchWait = 200 * time.Millisecond
	cfg.RateLimit = 0
	if o.Edit != nil {
		o.Edit(&cfg)
	}
	role := o.Role
	if role == "" {
		role = "all"
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: testLogLevel()}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, cfg, log, role) }()
	st := &Stack{URL: "http://" + cfg.IngestAddr, Config: cfg}
	if role == "query" {
		st.URL = "http://" + cfg.QueryAddr
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(st.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			cancel()
			t.Fatalf("flamestream %s stopped: %v", role, err)
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("flamestream %s not ready after 60s (last error %v)", role, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var err error
	if st.PG, err = pgdb.Open(ctx, cfg.PostgresURL); err != nil {
		t.Fatal(err)
	}
	if st.CH, err = chdb.Open(ctx, chdb.Options{Addr: cfg.ClickHouseAddr, User: cfg.ClickHouseUser, Password: cfg.ClickHousePassword, Database: cfg.ClickHouseDatabase}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("flamestream %s did not stop within 30s", role)
		}
		_ = st.CH.Exec(context.Background(), "DROP DATABASE IF EXISTS "+cfg.ClickHouseDatabase)
		st.CH.Close()
		st.PG.Close()
	})
	return st
}

// Token creates an API token in the stack's database.
func (s *Stack) Token(t testing.TB, kind, service string) string {
	t.Helper()
	_, secret, err := s.PG.CreateToken(context.Background(), "test", kind, service)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// testLogLevel is warn, or what FLAMESTREAM_TEST_LOG_LEVEL says (debug, info, warn, error).
func testLogLevel() slog.Level {
	var l slog.Level = slog.LevelWarn
	if v := os.Getenv("FLAMESTREAM_TEST_LOG_LEVEL"); v != "" {
		_ = l.UnmarshalText([]byte(v))
	}
	return l
}
