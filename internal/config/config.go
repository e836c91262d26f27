// Package config reads Flamestream's configuration from environment variables, with command-line flags
// overriding them. Every variable is declared once, in vars below, so the README table and the
// `flamestream config` schema printout come from the same place.
package config

import (
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Config is the whole configuration of every role.
type Config struct {
	IngestAddr string
	QueryAddr  string

	PostgresURL string

	ClickHouseAddr     string
	ClickHouseDatabase string
	ClickHouseUser     string
	ClickHousePassword string

	S3Endpoint  string
	S3AccessKey string
	S3SecretKey string
	S3Bucket    string
	S3Region    string
	S3Secure    bool

	NATSURL        string
	NATSReplicas   int
	StreamMaxAge   time.Duration
	StreamMaxBytes int64
	DataDir        string
	Consumer       string

	MaxBodyBytes         int64
	MaxDecompressedBytes int64
	StoreTimeout         time.Duration
	RateLimit            float64
	AuthCacheTTL         time.Duration
	AgentLogsMaxRows     int

	BatchSize     int
	BatchWait     time.Duration
	FetchParallel int

	RetentionRawDays  int
	RetentionHourDays int
	RetentionDayDays  int
	JanitorInterval   time.Duration

	QueryTimeout   time.Duration
	QueryMaxMemory int64
	QueryMaxRows   int64
	QueryMaxNodes  int
	QueryTrieNodes int
	QueryCacheMB   int

	AdminUser     string
	AdminPassword string
	CookieSecure  bool

	LogLevel  string
	LogFormat string
}

type variable struct {
	env, flag, def, help string
	set                  func(c *Config, v string) error
}

func str(p func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *p(c) = v; return nil }
}

func integer(p func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		*p(c) = n
		return err
	}
}

func int64v(p func(*Config) *int64) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		*p(c) = n
		return err
	}
}

func float(p func(*Config) *float64) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.ParseFloat(v, 64)
		*p(c) = n
		return err
	}
}

func boolean(p func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		*p(c) = b
		return err
	}
}

func duration(p func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		*p(c) = d
		return err
	}
}

var vars = []variable{
	{"FLAMESTREAM_INGEST_ADDR", "ingest-addr", "127.0.0.1:8080", "listen address of the agent-facing ingest API (the `all` role also serves the UI and query API here)", str(func(c *Config) *string { return &c.IngestAddr })},
	{"FLAMESTREAM_QUERY_ADDR", "query-addr", "127.0.0.1:8081", "listen address of the query API and web UI (query role)", str(func(c *Config) *string { return &c.QueryAddr })},
	{"FLAMESTREAM_PG_URL", "pg-url", "postgres://flamestream:flamestream@127.0.0.1:5432/flamestream?sslmode=disable", "PostgreSQL connection URL", str(func(c *Config) *string { return &c.PostgresURL })},
	{"FLAMESTREAM_CH_ADDR", "ch-addr", "127.0.0.1:9000", "ClickHouse native protocol address", str(func(c *Config) *string { return &c.ClickHouseAddr })},
	{"FLAMESTREAM_CH_DATABASE", "ch-database", "flamestream", "ClickHouse database", str(func(c *Config) *string { return &c.ClickHouseDatabase })},
	{"FLAMESTREAM_CH_USER", "ch-user", "default", "ClickHouse user", str(func(c *Config) *string { return &c.ClickHouseUser })},
	{"FLAMESTREAM_CH_PASSWORD", "ch-password", "", "ClickHouse password", str(func(c *Config) *string { return &c.ClickHousePassword })},
	{"FLAMESTREAM_S3_ENDPOINT", "s3-endpoint", "127.0.0.1:7070", "S3 endpoint host:port (MinIO, versitygw, AWS)", str(func(c *Config) *string { return &c.S3Endpoint })},
	{"FLAMESTREAM_S3_ACCESS_KEY", "s3-access-key", "flamestream", "S3 access key", str(func(c *Config) *string { return &c.S3AccessKey })},
	{"FLAMESTREAM_S3_SECRET_KEY", "s3-secret-key", "flamestream-secret", "S3 secret key", str(func(c *Config) *string { return &c.S3SecretKey })},
	{"FLAMESTREAM_S3_BUCKET", "s3-bucket", "flamestream", "bucket for raw profiles (created if missing)", str(func(c *Config) *string { return &c.S3Bucket })},
	{"FLAMESTREAM_S3_REGION", "s3-region", "us-east-1", "S3 region", str(func(c *Config) *string { return &c.S3Region })},
	{"FLAMESTREAM_S3_SECURE", "s3-secure", "false", "use HTTPS to the S3 endpoint", boolean(func(c *Config) *bool { return &c.S3Secure })},
	{"NATS_URL", "nats-url", "", "NATS server URL(s), comma-separated; empty: the `all` role embeds a server, other roles use nats://127.0.0.1:4222", str(func(c *Config) *string { return &c.NATSURL })},
	{"FLAMESTREAM_NATS_REPLICAS", "nats-replicas", "1", "replicas of the PROFILES stream (3 in a cluster)", integer(func(c *Config) *int { return &c.NATSReplicas })},
	{"FLAMESTREAM_STREAM_MAX_AGE", "stream-max-age", "168h", "how long events stay in the PROFILES stream (the replay window)", duration(func(c *Config) *time.Duration { return &c.StreamMaxAge })},
	{"FLAMESTREAM_STREAM_MAX_BYTES", "stream-max-bytes", "-1", "byte limit of the PROFILES stream (-1: none)", int64v(func(c *Config) *int64 { return &c.StreamMaxBytes })},
	{"FLAMESTREAM_DATA_DIR", "data-dir", ".local/data", "directory for the embedded NATS server's storage", str(func(c *Config) *string { return &c.DataDir })},
	{"FLAMESTREAM_CONSUMER", "consumer", "indexer", "durable consumer the indexer pulls from (replay: a consumer made with the nats CLI)", str(func(c *Config) *string { return &c.Consumer })},
	{"FLAMESTREAM_MAX_BODY_BYTES", "max-body-bytes", "16777216", "largest compressed upload accepted (413 above)", int64v(func(c *Config) *int64 { return &c.MaxBodyBytes })},
	{"FLAMESTREAM_MAX_DECOMPRESSED_BYTES", "max-decompressed-bytes", "134217728", "largest decompressed upload accepted (413 above; gzip bombs)", int64v(func(c *Config) *int64 { return &c.MaxDecompressedBytes })},
	{"FLAMESTREAM_STORE_TIMEOUT", "store-timeout", "10s", "bound on the object write plus the JetStream publish of one upload (503 after)", duration(func(c *Config) *time.Duration { return &c.StoreTimeout })},
	{"FLAMESTREAM_RATE_LIMIT", "rate-limit", "1000", "uploads per second allowed per token (burst: 5 s worth; one token often serves a whole fleet); 0 disables", float(func(c *Config) *float64 { return &c.RateLimit })},
	{"FLAMESTREAM_AUTH_CACHE_TTL", "auth-cache-ttl", "10s", "how long ingest remembers a checked token and a service's settings (a revoke or a new sample threshold takes effect within it); 0 disables", duration(func(c *Config) *time.Duration { return &c.AuthCacheTTL })},
	{"FLAMESTREAM_AGENT_LOGS_MAX_ROWS", "agent-logs-max-rows", "100000", "agent log records kept per service (oldest deleted first)", integer(func(c *Config) *int { return &c.AgentLogsMaxRows })},
	{"FLAMESTREAM_BATCH_SIZE", "batch-size", "256", "events the indexer pulls per batch", integer(func(c *Config) *int { return &c.BatchSize })},
	{"FLAMESTREAM_BATCH_WAIT", "batch-wait", "1s", "longest wait to fill a batch", duration(func(c *Config) *time.Duration { return &c.BatchWait })},
	{"FLAMESTREAM_FETCH_PARALLEL", "fetch-parallel", "8", "objects the indexer downloads concurrently", integer(func(c *Config) *int { return &c.FetchParallel })},
	{"FLAMESTREAM_RETENTION_RAW_DAYS", "retention-raw-days", "30", "days of raw samples and minute rollups kept", integer(func(c *Config) *int { return &c.RetentionRawDays })},
	{"FLAMESTREAM_RETENTION_HOUR_DAYS", "retention-hour-days", "30", "days of hour rollups kept", integer(func(c *Config) *int { return &c.RetentionHourDays })},
	{"FLAMESTREAM_RETENTION_DAY_DAYS", "retention-day-days", "365", "days of day rollups kept", integer(func(c *Config) *int { return &c.RetentionDayDays })},
	{"FLAMESTREAM_QUERY_TIMEOUT", "query-timeout", "60s", "bound on one query API call and its ClickHouse query (504 after)", duration(func(c *Config) *time.Duration { return &c.QueryTimeout })},
	{"FLAMESTREAM_QUERY_MAX_MEMORY", "query-max-memory", "2147483648", "ClickHouse memory one query may use, in bytes (422 above)", int64v(func(c *Config) *int64 { return &c.QueryMaxMemory })},
	{"FLAMESTREAM_QUERY_MAX_ROWS", "query-max-rows", "5000000", "rows one ClickHouse query may return (422 above)", int64v(func(c *Config) *int64 { return &c.QueryMaxRows })},
	{"FLAMESTREAM_QUERY_MAX_NODES", "query-max-nodes", "8192", "default node budget of a flame graph (the maxNodes parameter overrides it)", integer(func(c *Config) *int { return &c.QueryMaxNodes })},
	{"FLAMESTREAM_QUERY_TRIE_NODES", "query-trie-nodes", "20000000", "stack-trie nodes a query server keeps in memory across queries (about 40 bytes each); past it the least recently used services' tries are let go", integer(func(c *Config) *int { return &c.QueryTrieNodes })},
	{"FLAMESTREAM_QUERY_CACHE_MB", "query-cache-mb", "256", "memory for the per-stack sums of settled time ranges, reused while ClickHouse holds the same data parts (0 turns the cache off)", integer(func(c *Config) *int { return &c.QueryCacheMB })},
	{"FLAMESTREAM_JANITOR_INTERVAL", "janitor-interval", "1h", "how often the indexer drops ClickHouse partitions past retention (0 disables)", duration(func(c *Config) *time.Duration { return &c.JanitorInterval })},
	{"FLAMESTREAM_ADMIN_USER", "admin-user", "", "if set with FLAMESTREAM_ADMIN_PASSWORD, this UI user is created/updated at start", str(func(c *Config) *string { return &c.AdminUser })},
	{"FLAMESTREAM_ADMIN_PASSWORD", "admin-password", "", "password of FLAMESTREAM_ADMIN_USER", str(func(c *Config) *string { return &c.AdminPassword })},
	{"FLAMESTREAM_COOKIE_SECURE", "cookie-secure", "false", "mark session cookies Secure (set true behind TLS)", boolean(func(c *Config) *bool { return &c.CookieSecure })},
	{"FLAMESTREAM_LOG_LEVEL", "log-level", "info", "debug, info, warn or error", str(func(c *Config) *string { return &c.LogLevel })},
	{"FLAMESTREAM_LOG_FORMAT", "log-format", "auto", "auto (tint on a terminal, JSON otherwise), text or json", str(func(c *Config) *string { return &c.LogFormat })},
}

// Defaults returns the configuration made of the built-in defaults only.
func Defaults() Config {
	var c Config
	for _, v := range vars {
		if err := v.set(&c, v.def); err != nil {
			panic(fmt.Sprintf("config default of %s: %v", v.env, err))
		}
	}
	return c
}

// Load builds the configuration from the defaults, then the environment, then the flags in args parsed by
// fs (which gains one flag per variable). It reports which variable or flag holds a bad value.
func Load(fs *flag.FlagSet, args []string, getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	c := Defaults()
	for _, v := range vars {
		if s := getenv(v.env); s != "" {
			if err := v.set(&c, s); err != nil {
				return c, fmt.Errorf("env %s=%q: %w", v.env, s, err)
			}
		}
	}
	for _, v := range vars {
		v := v
		fs.Func(v.flag, v.help+" (env "+v.env+")", func(s string) error { return v.set(&c, s) })
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	return c, nil
}

// Var describes one configuration variable.
type Var struct {
	Env, Flag, Default, Help string
}

// Schema lists every configuration variable, sorted by environment name.
func Schema() []Var {
	out := make([]Var, 0, len(vars))
	for _, v := range vars {
		out = append(out, Var{v.env, v.flag, v.def, v.help})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Env < out[j].Env })
	return out
}

// WriteMarkdown writes the schema as the Markdown table the README holds.
func WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString("| variable | flag | default | meaning |\n|---|---|---|---|\n")
	for _, v := range Schema() {
		fmt.Fprintf(&b, "| `%s` | `-%s` | `%s` | %s |\n", v.Env, v.Flag, v.Default, v.Help)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
