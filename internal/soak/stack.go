package soak

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/pgdb"
)

// Target names: what the chaos may kill.
const (
	Indexer    = "indexer"
	ClickHouse = "clickhouse"
	NATS       = "nats"
	S3         = "s3"
)

// Targets is every target, in the order the report lists them.
var Targets = []string{Indexer, ClickHouse, NATS, S3}

// roles are the Flamestream processes, each a separate process of the binary so that the indexer can be
// killed alone while ingest and query keep serving.
var roles = []string{"ingest", "indexer", "query"}

const (
	s3Access = "soak"
	s3Secret = "soak-secret-key"
	chDB     = "flamestream"
	bucket   = "soak"
)

// stack is the soak's own servers and roles, on free ports under one directory. PostgreSQL is the only
// shared server: the soak uses a fresh database on it and never stops it.
type stack struct {
	dir     string
	chAddr  string
	natsURL string
	s3Addr  string
	pgURL   string // the soak's own database
	dropPG  func()
	servers map[string]*proc // clickhouse, nats, s3
	roles   map[string]*proc // ingest, indexer, query
	addrs   map[string]string
}

// startStack starts ClickHouse, NATS and versitygw, then the three roles, each once ready.
func startStack(ctx context.Context, cfg Config, dir string) (*stack, error) {
	st := &stack{dir: dir, servers: map[string]*proc{}, roles: map[string]*proc{}, addrs: map[string]string{}}
	ok := false
	defer func() {
		if !ok {
			st.stop()
		}
	}()
	var err error
	if st.pgURL, st.dropPG, err = freshPostgres(ctx, cfg.PostgresURL); err != nil {
		return nil, err
	}
	ch, chAddr, err := clickHouseProc(cfg, dir)
	if err != nil {
		return nil, err
	}
	st.chAddr = chAddr
	nats, natsURL, err := natsProc(cfg, dir)
	if err != nil {
		return nil, err
	}
	st.natsURL = natsURL
	s3, s3Addr, err := s3Proc(cfg, dir)
	if err != nil {
		return nil, err
	}
	st.s3Addr = s3Addr
	st.servers[ClickHouse], st.servers[NATS], st.servers[S3] = ch, nats, s3
	for _, name := range []string{ClickHouse, NATS, S3} {
		p := st.servers[name]
		if err := p.start(); err != nil {
			return nil, err
		}
		if err := p.waitReady(ctx, 60*time.Second); err != nil {
			return nil, fmt.Errorf("%w (log %s)", err, p.logPath)
		}
	}
	// Migrations run once, before any role starts, so that the three roles do not race to apply them.
	pg, err := pgdb.Open(ctx, st.pgURL)
	if err != nil {
		return nil, err
	}
	_, err = pg.Migrate(ctx)
	pg.Close()
	if err != nil {
		return nil, fmt.Errorf("migrate postgres: %w", err)
	}
	for _, role := range roles {
		p, err := st.roleProc(cfg, role)
		if err != nil {
			return nil, err
		}
		st.roles[role] = p
		if err := p.start(); err != nil {
			return nil, err
		}
		if err := p.waitReady(ctx, 90*time.Second); err != nil {
			return nil, fmt.Errorf("%w (log %s)", err, p.logPath)
		}
	}
	ok = true
	return st, nil
}

// stop ends the roles, then the servers, then drops the PostgreSQL database.
func (st *stack) stop() {
	for _, p := range st.roles {
		p.stop(20 * time.Second)
	}
	for _, p := range st.servers {
		p.stop(10 * time.Second)
	}
	if st.dropPG != nil {
		st.dropPG()
	}
}

// proc returns the process of a chaos target.
func (st *stack) proc(target string) *proc {
	if p, ok := st.servers[target]; ok {
		return p
	}
	return st.roles[target]
}

// freshPostgres creates a database on the shared server named by base and returns its URL and how to drop
// it.
func freshPostgres(ctx context.Context, base string) (string, func(), error) {
	name := fmt.Sprintf("fs_soak_%d", time.Now().UnixNano()%1e12)
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", nil, fmt.Errorf("postgres: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	drop := func() {
		c, err := pgx.Connect(context.Background(), base)
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(context.Background())
		}
	}
	u, err := url.Parse(base)
	if err != nil || u.Path == "" || u.Path == "/" {
		drop()
		return "", nil, fmt.Errorf("postgres url %q names no database", base)
	}
	u.Path = "/" + name
	return u.String(), drop, nil
}

// clickHouseProc prepares a clickhouse-server with a minimal configuration of its own: native protocol on a
// free port of 127.0.0.1 only, no HTTP or interserver port, data and logs under dir. It returns the native
// protocol address too.
func clickHouseProc(cfg Config, dir string) (*proc, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	home := filepath.Join(dir, "clickhouse")
	for _, d := range []string{"data", "tmp", "user_files", "format_schemas", "log"} {
		if err := os.MkdirAll(filepath.Join(home, d), 0o755); err != nil {
			return nil, "", err
		}
	}
	config := `<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>` + home + `/log/server.log</log><errorlog>` + home + `/log/error.log</errorlog><size>10M</size><count>2</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>` + strconv.Itoa(port) + `</tcp_port>
  <path>` + home + `/data/</path>
  <tmp_path>` + home + `/tmp/</tmp_path>
  <user_files_path>` + home + `/user_files/</user_files_path>
  <format_schema_path>` + home + `/format_schemas/</format_schema_path>
  <users_config>` + home + `/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
</yandex>
`
	users := `<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
`
	if err := os.WriteFile(filepath.Join(home, "config.xml"), []byte(config), 0o644); err != nil {
		return nil, "", err
	}
	if err := os.WriteFile(filepath.Join(home, "users.xml"), []byte(users), 0o644); err != nil {
		return nil, "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	return &proc{name: ClickHouse, path: cfg.ClickHouseServer, args: []string{"--config-file=" + filepath.Join(home, "config.xml")},
		env: os.Environ(), logPath: filepath.Join(dir, "clickhouse.log"), restart: true,
		ready: func(ctx context.Context) error {
			db, err := chdb.Open(ctx, chdb.Options{Addr: addr, Database: chDB})
			if err != nil {
				return err
			}
			defer db.Close()
			return db.Ping(ctx)
		}}, addr, nil
}

func natsProc(cfg Config, dir string) (*proc, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	mon, err := freePort()
	if err != nil {
		return nil, "", err
	}
	health := fmt.Sprintf("http://127.0.0.1:%d/healthz?js-enabled-only=true", mon)
	return &proc{name: NATS, path: cfg.NATSServer, env: os.Environ(), logPath: filepath.Join(dir, "nats.log"), restart: true,
			args:  []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port), "-m", strconv.Itoa(mon), "-js", "-sd", filepath.Join(dir, "nats")},
			ready: func(ctx context.Context) error { return httpOK(ctx, health) }},
		fmt.Sprintf("nats://127.0.0.1:%d", port), nil
}

func s3Proc(cfg Config, dir string) (*proc, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	root := filepath.Join(dir, "s3")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	env := append(os.Environ(), "ROOT_ACCESS_KEY="+s3Access, "ROOT_SECRET_KEY="+s3Secret)
	return &proc{name: S3, path: cfg.VersityGW, env: env, logPath: filepath.Join(dir, "versitygw.log"), restart: true,
		args: []string{"--port", addr, "--keep-alive", "--quiet", "posix", root},
		ready: func(ctx context.Context) error {
			// Any HTTP answer (an S3 error for an anonymous request included) means it serves.
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			return nil
		}}, addr, nil
}

// roleProc prepares one Flamestream role: the environment names the soak's servers and nothing of the
// caller's FLAMESTREAM_* settings leaks in.
func (st *stack) roleProc(cfg Config, role string) (*proc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	st.addrs[role] = addr
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FLAMESTREAM_") && !strings.HasPrefix(kv, "NATS_URL=") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"FLAMESTREAM_PG_URL="+st.pgURL,
		"FLAMESTREAM_CH_ADDR="+st.chAddr,
		"FLAMESTREAM_CH_DATABASE="+chDB,
		"FLAMESTREAM_S3_ENDPOINT="+st.s3Addr,
		"FLAMESTREAM_S3_ACCESS_KEY="+s3Access,
		"FLAMESTREAM_S3_SECRET_KEY="+s3Secret,
		"FLAMESTREAM_S3_BUCKET="+bucket,
		"NATS_URL="+st.natsURL,
		"FLAMESTREAM_DATA_DIR="+filepath.Join(st.dir, "data-"+role),
		"FLAMESTREAM_BATCH_WAIT=200ms",
		"FLAMESTREAM_RATE_LIMIT=0",
		"FLAMESTREAM_LOG_FORMAT=json",
		"FLAMESTREAM_LOG_LEVEL=info",
		// Without this the indexer's hourly janitor and the query's warm-up are the only background work;
		// both stay as configured by default.
	)
	// The ingest role listens on the ingest address; query and the indexer's operations routes on the
	// query address.
	if role == "ingest" {
		env = append(env, "FLAMESTREAM_INGEST_ADDR="+addr)
	} else {
		env = append(env, "FLAMESTREAM_QUERY_ADDR="+addr)
	}
	ready := "http://" + addr + "/readyz"
	return &proc{name: role, path: cfg.Binary, args: []string{role}, env: env,
		logPath: filepath.Join(st.dir, role+".log"), restart: true,
		ready: func(ctx context.Context) error { return httpOK(ctx, ready) }}, nil
}

// httpOK is nil when url answers 200.
func httpOK(ctx context.Context, url string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %d %s", url, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return nil
}

// metrics reads unlabelled gauges and counters from a Prometheus text page; names it lacks are left out.
func metrics(ctx context.Context, url string, names ...string) (map[string]float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %d", url, resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if ok && slices.Contains(names, name) {
			if v, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil {
				out[name] = v
			}
		}
	}
	return out, sc.Err()
}

// rssBytes reads a process's resident set size from /proc.
func rssBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest) // "123456 kB"
			if len(f) < 1 {
				break
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("pid %d: no VmRSS", pid)
}

// FindProgram returns the path of a program: from PATH, else from the .bin directory of the repository
// around the working directory (where deploy/local/install.sh puts nats-server and versitygw). It returns
// name itself when neither has it, so that the error names what is missing.
func FindProgram(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, sbin := range []string{"/usr/sbin", "/usr/local/sbin"} { // clickhouse-server lives in sbin
		if p := filepath.Join(sbin, name); isExecutable(p) {
			return p
		}
	}
	dir, err := os.Getwd()
	for err == nil {
		if p := filepath.Join(dir, ".bin", name); isExecutable(p) {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return name
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}
