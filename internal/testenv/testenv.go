// Package testenv gives integration tests the real local servers (ClickHouse, PostgreSQL and versitygw from
// deploy/local): it checks they answer, and hands out fresh databases, names and ports so tests never see
// each other. It runs no role: a test that needs a whole role running starts it with the testenv package
// under cmd/flamestream, which wires the roles (nothing under internal/ may import them).
package testenv

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/flamestream/flamestream/internal/config"
)

// Servers checks that the local servers answer and returns the shared configuration (connections,
// addresses) at its defaults. Without them the test is skipped, unless CI is set: in CI
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

// Logger returns a logger writing to the test's log at warn level, or at FLAMESTREAM_TEST_LOG_LEVEL.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: testLogLevel()}))
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
