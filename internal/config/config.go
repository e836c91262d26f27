// Package config reads Flamestream's configuration from environment variables, with command-line flags
// overriding them. A variable is declared once, by the package that owns it, as a Var with a typed
// default: the connections every role shares are declared here, each role's own settings in its package
// (ingest.Vars, indexer.Vars, query.Vars). A command loads only the variables of its parts, so `-h` lists
// them and nothing else, and the README table and `flamestream config` come from the same declarations.
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

// Config holds the values of every variable. A command fills only the fields of the variables it
// loaded; the others keep their zero value, which each package's New reads as its own default.
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
	BodyCacheBytes int64
	DataDir        string
	Consumer       string

	MaxBodyBytes         int64
	MaxDecompressedBytes int64
	FrameRules           string // file of frame rewrite rules (indexer)
	TrustedProxies       string // reverse proxies whose X-Forwarded-For is believed (query)
	StoreTimeout         time.Duration
	RateLimit            float64
	AuthCacheTTL         time.Duration
	// IngestYieldLag: a lone ingest process lowers its CPU priority while the indexer's backlog is older.
	IngestYieldLag   time.Duration
	AgentLogsMaxRows int

	BatchSize     int
	BatchWait     time.Duration
	FetchParallel int

	RetentionRawDays     int
	RetentionHourDays    int
	RetentionDayDays     int
	RetentionArchiveDays int
	JanitorInterval      time.Duration
	ArchiveCompactAfter  time.Duration

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

// Var is one configuration variable: its environment name, its flag, its default as printed, its help,
// and how a value is stored in a Config.
type Var struct {
	Env, Flag, Default, Help string
	set                      func(c *Config, v string) error
}

// String declares a string variable stored in the field field returns.
func String(env, flagName, def, help string, field func(*Config) *string) Var {
	return Var{env, flagName, def, help, func(c *Config, v string) error { *field(c) = v; return nil }}
}

// Int declares an integer variable.
func Int(env, flagName string, def int, help string, field func(*Config) *int) Var {
	return Var{env, flagName, strconv.Itoa(def), help, func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		*field(c) = n
		return err
	}}
}

// Int64 declares a 64-bit integer variable.
func Int64(env, flagName string, def int64, help string, field func(*Config) *int64) Var {
	return Var{env, flagName, strconv.FormatInt(def, 10), help, func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		*field(c) = n
		return err
	}}
}

// Float declares a floating-point variable.
func Float(env, flagName string, def float64, help string, field func(*Config) *float64) Var {
	return Var{env, flagName, strconv.FormatFloat(def, 'g', -1, 64), help, func(c *Config, v string) error {
		n, err := strconv.ParseFloat(v, 64)
		*field(c) = n
		return err
	}}
}

// Bool declares a boolean variable.
func Bool(env, flagName string, def bool, help string, field func(*Config) *bool) Var {
	return Var{env, flagName, strconv.FormatBool(def), help, func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		*field(c) = b
		return err
	}}
}

// Duration declares a duration variable (printed as time.Duration.String, without zero units).
func Duration(env, flagName string, def time.Duration, help string, field func(*Config) *time.Duration) Var {
	return Var{env, flagName, shortDuration(def), help, func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		*field(c) = d
		return err
	}}
}

// shortDuration prints 1h rather than 1h0m0s, as an operator writes it.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// Defaults of the shared variables, declared here once.
const (
	DefaultIngestAddr  = "127.0.0.1:8080"
	DefaultQueryAddr   = "127.0.0.1:8081"
	DefaultPostgresURL = "postgres://flamestream:flamestream@127.0.0.1:5432/flamestream?sslmode=disable"
	DefaultCHAddr      = "127.0.0.1:9000"
	DefaultCHDatabase  = "flamestream"
	DefaultCHUser      = "default"
	DefaultS3Endpoint  = "127.0.0.1:7070"
	DefaultS3AccessKey = "flamestream"
	DefaultS3SecretKey = "flamestream-secret"
	DefaultS3Bucket    = "flamestream"
	DefaultS3Region    = "us-east-1"
	DefaultReplicas    = 1
	DefaultStreamAge   = 168 * time.Hour
	DefaultStreamBytes = -1
	// DefaultBodyCacheBytes is the memory of the body cache (stream.BodiesStream): about 45,000 bodies of
	// 60-line uploads (2.8 KB), 45 s of them at 1,000/s.
	DefaultBodyCacheBytes = 128 << 20
	DefaultDataDir        = ".local/data"
	DefaultConsumer       = "indexer"
	DefaultLogLevel       = "info"
	DefaultLogFormat      = "auto"
)

// IngestAddr is the listen address of the ingest role (and of `all`).
func IngestAddr() []Var {
	return []Var{String("FLAMESTREAM_INGEST_ADDR", "ingest-addr", DefaultIngestAddr, "listen address of the agent-facing ingest API (the `all` role also serves the UI and query API here)", func(c *Config) *string { return &c.IngestAddr })}
}

// QueryAddr is the listen address of the query role; the indexer and janitor serve their operations
// routes there.
func QueryAddr() []Var {
	return []Var{String("FLAMESTREAM_QUERY_ADDR", "query-addr", DefaultQueryAddr, "listen address of the query API and web UI (query role); the indexer and janitor roles serve only /healthz, /readyz and /metrics there", func(c *Config) *string { return &c.QueryAddr })}
}

// Postgres is the PostgreSQL connection.
func Postgres() []Var {
	return []Var{String("FLAMESTREAM_PG_URL", "pg-url", DefaultPostgresURL, "PostgreSQL connection URL", func(c *Config) *string { return &c.PostgresURL })}
}

// ClickHouse is the ClickHouse connection.
func ClickHouse() []Var {
	return []Var{
		String("FLAMESTREAM_CH_ADDR", "ch-addr", DefaultCHAddr, "ClickHouse native protocol address", func(c *Config) *string { return &c.ClickHouseAddr }),
		String("FLAMESTREAM_CH_DATABASE", "ch-database", DefaultCHDatabase, "ClickHouse database", func(c *Config) *string { return &c.ClickHouseDatabase }),
		String("FLAMESTREAM_CH_USER", "ch-user", DefaultCHUser, "ClickHouse user", func(c *Config) *string { return &c.ClickHouseUser }),
		String("FLAMESTREAM_CH_PASSWORD", "ch-password", "", "ClickHouse password", func(c *Config) *string { return &c.ClickHousePassword }),
	}
}

// S3 is the object store holding the raw profiles.
func S3() []Var {
	return []Var{
		String("FLAMESTREAM_S3_ENDPOINT", "s3-endpoint", DefaultS3Endpoint, "S3 endpoint host:port (MinIO, versitygw, AWS)", func(c *Config) *string { return &c.S3Endpoint }),
		String("FLAMESTREAM_S3_ACCESS_KEY", "s3-access-key", DefaultS3AccessKey, "S3 access key", func(c *Config) *string { return &c.S3AccessKey }),
		String("FLAMESTREAM_S3_SECRET_KEY", "s3-secret-key", DefaultS3SecretKey, "S3 secret key", func(c *Config) *string { return &c.S3SecretKey }),
		String("FLAMESTREAM_S3_BUCKET", "s3-bucket", DefaultS3Bucket, "bucket for raw profiles (created if missing)", func(c *Config) *string { return &c.S3Bucket }),
		String("FLAMESTREAM_S3_REGION", "s3-region", DefaultS3Region, "S3 region", func(c *Config) *string { return &c.S3Region }),
		Bool("FLAMESTREAM_S3_SECURE", "s3-secure", false, "use HTTPS to the S3 endpoint", func(c *Config) *bool { return &c.S3Secure }),
	}
}

// NATS is the NATS connection and the PROFILES stream's settings.
func NATS() []Var {
	return []Var{
		String("NATS_URL", "nats-url", "", "NATS server URL(s), comma-separated; empty: the `all` role embeds a server, other roles use nats://127.0.0.1:4222", func(c *Config) *string { return &c.NATSURL }),
		Int("FLAMESTREAM_NATS_REPLICAS", "nats-replicas", DefaultReplicas, "replicas of the PROFILES stream (3 in a cluster)", func(c *Config) *int { return &c.NATSReplicas }),
		Duration("FLAMESTREAM_STREAM_MAX_AGE", "stream-max-age", DefaultStreamAge, "how long events stay in the PROFILES stream (the replay window)", func(c *Config) *time.Duration { return &c.StreamMaxAge }),
		Int64("FLAMESTREAM_STREAM_MAX_BYTES", "stream-max-bytes", DefaultStreamBytes, "byte limit of the PROFILES stream (-1: none)", func(c *Config) *int64 { return &c.StreamMaxBytes }),
		Int64("FLAMESTREAM_BODY_CACHE_BYTES", "body-cache-bytes", DefaultBodyCacheBytes, "memory of the NATS stream that hands recent upload bodies to the indexer, saving an object-store GET per profile (0: off)", func(c *Config) *int64 { return &c.BodyCacheBytes }),
	}
}

// EmbeddedNATS is where the `all` role keeps the store of the NATS server it embeds.
func EmbeddedNATS() []Var {
	return []Var{String("FLAMESTREAM_DATA_DIR", "data-dir", DefaultDataDir, "directory for the embedded NATS server's storage", func(c *Config) *string { return &c.DataDir })}
}

// Consumer is the durable consumer an indexer pulls from.
func Consumer() []Var {
	return []Var{String("FLAMESTREAM_CONSUMER", "consumer", DefaultConsumer, "durable consumer the indexer pulls from (replay: a consumer made with the nats CLI)", func(c *Config) *string { return &c.Consumer })}
}

// Admin is the UI user a role that opens PostgreSQL creates at start.
func Admin() []Var {
	return []Var{
		String("FLAMESTREAM_ADMIN_USER", "admin-user", "", "if set with FLAMESTREAM_ADMIN_PASSWORD, this UI user is created/updated at start", func(c *Config) *string { return &c.AdminUser }),
		String("FLAMESTREAM_ADMIN_PASSWORD", "admin-password", "", "password of FLAMESTREAM_ADMIN_USER", func(c *Config) *string { return &c.AdminPassword }),
	}
}

// Logging is the log level and format of every command.
func Logging() []Var {
	return []Var{
		String("FLAMESTREAM_LOG_LEVEL", "log-level", DefaultLogLevel, "debug, info, warn or error", func(c *Config) *string { return &c.LogLevel }),
		String("FLAMESTREAM_LOG_FORMAT", "log-format", DefaultLogFormat, "auto (tint on a terminal, JSON otherwise), text or json", func(c *Config) *string { return &c.LogFormat }),
	}
}

// Shared lists the variables declared in this package.
func Shared() []Var {
	return Join(IngestAddr(), QueryAddr(), Postgres(), ClickHouse(), S3(), NATS(), EmbeddedNATS(), Consumer(), Admin(), Logging())
}

// Defaults returns a Config holding the defaults of the shared variables (connections, addresses,
// logging); role settings stay zero, which each role's New reads as its own default.
func Defaults() Config {
	c, err := Apply(Shared(), func(string) string { return "" })
	if err != nil {
		panic(err)
	}
	return c
}

// Join concatenates lists of variables, keeping the first of several with the same environment name. Two
// packages may declare the same variable (ingest and indexer both bound decompressed uploads); Join
// panics if they disagree on its flag or default, so a test of the commands catches it.
func Join(lists ...[]Var) []Var {
	var out []Var
	seen := map[string]Var{}
	for _, l := range lists {
		for _, v := range l {
			if p, ok := seen[v.Env]; ok {
				if p.Flag != v.Flag || p.Default != v.Default {
					panic(fmt.Sprintf("config: %s declared twice, as -%s=%q and -%s=%q", v.Env, p.Flag, p.Default, v.Flag, v.Default))
				}
				continue
			}
			seen[v.Env] = v
			out = append(out, v)
		}
	}
	return out
}

// Apply returns the configuration made of the defaults of vars, overridden by the environment.
func Apply(vars []Var, getenv func(string) string) (Config, error) {
	var c Config
	for _, v := range vars {
		if err := v.set(&c, v.Default); err != nil {
			return c, fmt.Errorf("config default of %s: %w", v.Env, err)
		}
	}
	for _, v := range vars {
		if s := getenv(v.Env); s != "" {
			if err := v.set(&c, s); err != nil {
				return c, fmt.Errorf("env %s=%q: %w", v.Env, s, err)
			}
		}
	}
	return c, nil
}

// Load builds the configuration of vars from their defaults, then the environment (os.Getenv if getenv is
// nil), then the flags in args parsed by fs (which gains one flag per variable, after any flags of the
// command's own). It reports which variable or flag holds a bad value.
func Load(fs *flag.FlagSet, args []string, getenv func(string) string, vars []Var) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	c, err := Apply(vars, getenv)
	if err != nil {
		return c, err
	}
	for _, v := range vars {
		// Backquotes would make flag.PrintDefaults take the quoted word for the value's name.
		help := strings.ReplaceAll(v.Help, "`", "") + " (env " + v.Env
		if v.Default != "" {
			help += ", default " + v.Default
		}
		fs.Func(v.Flag, help+")", func(s string) error { return v.set(&c, s) })
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	return c, nil
}

// Sorted returns vars sorted by environment name, as the README table lists them.
func Sorted(vars []Var) []Var {
	out := append([]Var(nil), vars...)
	sort.Slice(out, func(i, j int) bool { return out[i].Env < out[j].Env })
	return out
}

// WriteMarkdown writes vars as the Markdown table the README holds.
func WriteMarkdown(w io.Writer, vars []Var) error {
	var b strings.Builder
	b.WriteString("| variable | flag | default | meaning |\n|---|---|---|---|\n")
	for _, v := range Sorted(vars) {
		fmt.Fprintf(&b, "| `%s` | `-%s` | `%s` | %s |\n", v.Env, v.Flag, v.Default, v.Help)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
