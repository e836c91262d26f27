package query

import (
	"time"

	"github.com/flamestream/flamestream/internal/config"
)

// Defaults of the query role's settings, declared once: Vars prints them and New falls back to them.
const (
	DefaultTimeout        = 60 * time.Second
	DefaultMaxQueryMemory = 2 << 30
	DefaultMaxQueryRows   = 5_000_000
	DefaultMaxNodes       = 8192
	DefaultTrieNodes      = 20_000_000
	DefaultCacheBytes     = 256 << 20
)

// Vars declares the query role's own configuration variables (retention comes from indexer.RetentionVars).
func Vars() []config.Var {
	return []config.Var{
		config.Duration("FLAMESTREAM_QUERY_TIMEOUT", "query-timeout", DefaultTimeout, "bound on one query API call and its ClickHouse query (504 after)", func(c *config.Config) *time.Duration { return &c.QueryTimeout }),
		config.Int64("FLAMESTREAM_QUERY_MAX_MEMORY", "query-max-memory", DefaultMaxQueryMemory, "ClickHouse memory one query may use, in bytes (422 above)", func(c *config.Config) *int64 { return &c.QueryMaxMemory }),
		config.Int64("FLAMESTREAM_QUERY_MAX_ROWS", "query-max-rows", DefaultMaxQueryRows, "rows one ClickHouse query may return (422 above)", func(c *config.Config) *int64 { return &c.QueryMaxRows }),
		config.Int("FLAMESTREAM_QUERY_MAX_NODES", "query-max-nodes", DefaultMaxNodes, "default node budget of a flame graph (the maxNodes parameter overrides it)", func(c *config.Config) *int { return &c.QueryMaxNodes }),
		config.Int("FLAMESTREAM_QUERY_TRIE_NODES", "query-trie-nodes", DefaultTrieNodes, "stack-trie nodes a query server keeps in memory across queries (about 40 bytes each); past it the least recently used services' tries are let go", func(c *config.Config) *int { return &c.QueryTrieNodes }),
		config.Int("FLAMESTREAM_QUERY_CACHE_MB", "query-cache-mb", DefaultCacheBytes>>20, "memory for the per-stack sums of settled time ranges, reused while ClickHouse holds the same data parts (0 turns the cache off)", func(c *config.Config) *int { return &c.QueryCacheMB }),
		config.String("FLAMESTREAM_TRUSTED_PROXIES", "trusted-proxies", "", "reverse proxies (comma-separated addresses or CIDR prefixes) whose X-Forwarded-For names the client the login limits count; empty: the TCP peer is the client", func(c *config.Config) *string { return &c.TrustedProxies }),
		config.Bool("FLAMESTREAM_COOKIE_SECURE", "cookie-secure", false, "mark session cookies Secure (set true behind TLS)", func(c *config.Config) *bool { return &c.CookieSecure }),
	}
}

// ConfigOf returns the query Config the loaded variables describe, retention included.
func ConfigOf(c config.Config) (Config, error) {
	proxies, err := ParseTrustedProxies(c.TrustedProxies)
	if err != nil {
		return Config{}, err
	}
	cache := -1 // FLAMESTREAM_QUERY_CACHE_MB=0 turns the cache off; Config.CacheBytes 0 would mean the default
	if c.QueryCacheMB > 0 {
		cache = c.QueryCacheMB << 20
	}
	return Config{CookieSecure: c.CookieSecure, Timeout: c.QueryTimeout,
		MaxQueryMemory: uint64(max(c.QueryMaxMemory, 0)), MaxQueryRows: uint64(max(c.QueryMaxRows, 0)),
		MaxNodes: c.QueryMaxNodes, TrieNodes: c.QueryTrieNodes,
		RawDays: c.RetentionRawDays, HourDays: c.RetentionHourDays, CacheBytes: cache, TrustedProxies: proxies}, nil
}
