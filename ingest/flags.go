package ingest

import (
	"time"

	"github.com/flamestream/flamestream/internal/config"
)

// Defaults of the ingest role's settings, declared once: Vars prints them and New falls back to them.
const (
	DefaultMaxBodyBytes         = 16 << 20
	DefaultMaxDecompressedBytes = 128 << 20
	DefaultStoreTimeout         = 10 * time.Second
	DefaultRateLimit            = 1000
	DefaultAuthCacheTTL         = 10 * time.Second
	DefaultAgentLogsMaxRows     = 100_000
	DefaultYieldLag             = 5 * time.Second
)

// Vars declares the ingest role's own configuration variables.
func Vars() []config.Var {
	return []config.Var{
		config.Int64("FLAMESTREAM_MAX_BODY_BYTES", "max-body-bytes", DefaultMaxBodyBytes, "largest compressed upload accepted (413 above)", func(c *config.Config) *int64 { return &c.MaxBodyBytes }),
		config.Int64("FLAMESTREAM_MAX_DECOMPRESSED_BYTES", "max-decompressed-bytes", DefaultMaxDecompressedBytes, "largest decompressed upload accepted (413 above; gzip bombs)", func(c *config.Config) *int64 { return &c.MaxDecompressedBytes }),
		config.Duration("FLAMESTREAM_STORE_TIMEOUT", "store-timeout", DefaultStoreTimeout, "bound on the object write plus the JetStream publish of one upload (503 after)", func(c *config.Config) *time.Duration { return &c.StoreTimeout }),
		config.Float("FLAMESTREAM_RATE_LIMIT", "rate-limit", DefaultRateLimit, "uploads per second allowed per token (burst: 5 s worth; one token often serves a whole fleet); 0 disables", func(c *config.Config) *float64 { return &c.RateLimit }),
		config.Duration("FLAMESTREAM_AUTH_CACHE_TTL", "auth-cache-ttl", DefaultAuthCacheTTL, "how long ingest remembers a checked token and a service's settings (a revoke or a new sample threshold takes effect within it); 0 disables", func(c *config.Config) *time.Duration { return &c.AuthCacheTTL }),
		config.Int("FLAMESTREAM_AGENT_LOGS_MAX_ROWS", "agent-logs-max-rows", DefaultAgentLogsMaxRows, "agent log records kept per service (oldest deleted first)", func(c *config.Config) *int { return &c.AgentLogsMaxRows }),
	}
}

// YieldVars declares the setting of RunYield, which only a process running ingest without the indexer uses.
func YieldVars() []config.Var {
	return []config.Var{
		config.Duration("FLAMESTREAM_INGEST_YIELD_LAG", "ingest-yield-lag", DefaultYieldLag, "an ingest process that shares its machine with the indexer lowers its CPU priority (nice 10) while the oldest event the indexer has not taken yet is older than this, and takes it back below half of it: at saturation indexing keeps up and accepting slows instead (needs CAP_SYS_NICE or RLIMIT_NICE >= 20 to take it back, else off); 0 disables", func(c *config.Config) *time.Duration { return &c.IngestYieldLag }),
	}
}

// ConfigOf returns the ingest Config the loaded variables describe.
func ConfigOf(c config.Config) Config {
	return Config{MaxBodyBytes: c.MaxBodyBytes, MaxDecompressedBytes: c.MaxDecompressedBytes, StoreTimeout: c.StoreTimeout,
		RateLimit: c.RateLimit, AuthCacheTTL: c.AuthCacheTTL, AgentLogsMaxRows: c.AgentLogsMaxRows}
}
