// Package testenv starts Flamestream roles in-process, through the role table, against the real local
// servers, for integration and end-to-end tests: ClickHouse, PostgreSQL and versitygw from deploy/local,
// NATS embedded in the process. Each Stack gets its own PostgreSQL database, ClickHouse database, bucket
// and JetStream store, so tests never see each other. The server-free helpers (Servers, NewPostgres, Name,
// FreeAddr) are internal/testenv's, repeated here so a test needs one import.
package testenv

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flamestream/flamestream/cmd/flamestream/roles"
	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/config"
	"github.com/flamestream/flamestream/internal/pgdb"
	base "github.com/flamestream/flamestream/internal/testenv"
)

// Servers checks that the local servers answer (see internal/testenv.Servers).
func Servers(t testing.TB) config.Config { t.Helper(); return base.Servers(t) }

// FreeAddr returns a free 127.0.0.1 port.
func FreeAddr(t testing.TB) string { t.Helper(); return base.FreeAddr(t) }

// Name returns a fresh identifier usable as a database or bucket name.
func Name(prefix string) string { return base.Name(prefix) }

// NewPostgres creates a fresh PostgreSQL database and returns its URL; it is dropped at the end of the test.
func NewPostgres(t testing.TB, url string) string { t.Helper(); return base.NewPostgres(t, url) }

// Stack is a running role (`flamestream all` by default) with its own databases.
type Stack struct {
	URL    string
	Config config.Config
	PG     *pgdb.DB
	CH     *chdb.DB
}

// Options adjust a Stack before it starts.
type Options struct {
	// Role is the role to run ("all" by default).
	Role string
	// Edit changes the configuration.
	Edit func(*config.Config)
}

// Start runs a role in-process with every variable at its default, its own databases, bucket and
// embedded NATS, and waits until /readyz answers. The role is stopped at the end of the test, and must
// return within 30 s.
func Start(t testing.TB, o Options) *Stack {
	t.Helper()
	shared := base.Servers(t)
	cfg := roles.Defaults()
	cfg.PostgresURL = base.NewPostgres(t, shared.PostgresURL)
	cfg.ClickHouseDatabase = base.Name("fs_test")
	cfg.S3Bucket = strings.ReplaceAll(base.Name("fs-test"), "_", "-")
	cfg.NATSURL = ""
	cfg.DataDir = t.TempDir()
	cfg.IngestAddr = base.FreeAddr(t)
	cfg.QueryAddr = base.FreeAddr(t)
	cfg.BatchWait = 200 * time.Millisecond
	cfg.RateLimit = 0
	if o.Edit != nil {
		o.Edit(&cfg)
	}
	role := o.Role
	if role == "" {
		role = "all"
	}
	r, ok := roles.Lookup(role)
	if !ok {
		t.Fatalf("no role %q", role)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- roles.Run(ctx, cfg, base.Logger(t), role) }()
	st := &Stack{URL: "http://" + r.Addr(cfg), Config: cfg}
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

// Upload posts one gzipped agent upload (demo.NewUpload(...).Gzip()) of service to the stack's ingest API
// as the v2 agent does, and fails the test unless it is accepted.
func (s *Stack) Upload(t testing.TB, token, service string, gzipped []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+"/api/v2/profiles", bytes.NewReader(gzipped))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("GPROFILER-API-KEY", token)
	req.Header.Set("GPROFILER-SERVICE-NAME", service)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("upload of %s: %s %s", service, resp.Status, b)
	}
}
