package indexer

import (
	"time"

	"github.com/flamestream/flamestream/internal/config"
	"github.com/flamestream/flamestream/internal/profile"
)

// Defaults of the indexer's and the janitor's settings, declared once: Vars prints them and New falls
// back to them.
const (
	// DefaultBatchSize bounds the events of a pulled batch. Small profiles fill it (1,024 60-line profiles
	// are 61k rows, one INSERT: the pipeline bench measured ClickHouse's CPU per profile 0.49 → 0.26 ms
	// against 256); a batch of big profiles is cut to about maxBatchRows rows (see work).
	DefaultBatchSize = 1024
	// DefaultBatchWait is long enough for a round to carry a few hundred profiles at a few hundred a
	// second: every INSERT round costs ClickHouse about twelve new parts whatever it holds (see fetch).
	DefaultBatchWait            = 2 * time.Second
	DefaultFetchParallel        = 8
	DefaultMaxDecompressedBytes = 128 << 20
	DefaultRetentionRawDays     = 30
	DefaultRetentionHourDays    = 30
	DefaultRetentionDayDays     = 365
	DefaultRetentionArchiveDays = 30
	DefaultJanitorInterval      = time.Hour
	DefaultArchiveCompactAfter  = 2 * time.Hour
)

// Vars declares the indexer role's own configuration variables.
func Vars() []config.Var {
	return []config.Var{
		config.Int("FLAMESTREAM_BATCH_SIZE", "batch-size", DefaultBatchSize, "events the indexer pulls per batch", func(c *config.Config) *int { return &c.BatchSize }),
		config.Duration("FLAMESTREAM_BATCH_WAIT", "batch-wait", DefaultBatchWait, "longest wait to fill a batch", func(c *config.Config) *time.Duration { return &c.BatchWait }),
		config.Int("FLAMESTREAM_FETCH_PARALLEL", "fetch-parallel", DefaultFetchParallel, "objects the indexer downloads concurrently", func(c *config.Config) *int { return &c.FetchParallel }),
		config.String("FLAMESTREAM_FRAME_RULES", "frame-rules", "", "file of frame rewrite rules applied to every indexed stack (the original studio's replace.yaml format; see deploy/frame-rules.yaml); empty: none", func(c *config.Config) *string { return &c.FrameRules }),
		config.Int64("FLAMESTREAM_MAX_DECOMPRESSED_BYTES", "max-decompressed-bytes", DefaultMaxDecompressedBytes, "largest decompressed upload accepted (413 above; gzip bombs)", func(c *config.Config) *int64 { return &c.MaxDecompressedBytes }),
	}
}

// RetentionVars declares how long each table keeps its rows: the janitor drops what is older, and the
// query role widens ranges that reach past it.
func RetentionVars() []config.Var {
	return []config.Var{
		config.Int("FLAMESTREAM_RETENTION_RAW_DAYS", "retention-raw-days", DefaultRetentionRawDays, "days of raw samples and minute rollups kept", func(c *config.Config) *int { return &c.RetentionRawDays }),
		config.Int("FLAMESTREAM_RETENTION_HOUR_DAYS", "retention-hour-days", DefaultRetentionHourDays, "days of hour rollups kept", func(c *config.Config) *int { return &c.RetentionHourDays }),
		config.Int("FLAMESTREAM_RETENTION_ARCHIVE_DAYS", "retention-archive-days", DefaultRetentionArchiveDays, "days of raw uploads the object store keeps (replay from the bucket and reindex need them; 0 keeps them forever)", func(c *config.Config) *int { return &c.RetentionArchiveDays }),
		config.Int("FLAMESTREAM_RETENTION_DAY_DAYS", "retention-day-days", DefaultRetentionDayDays, "days of day rollups kept", func(c *config.Config) *int { return &c.RetentionDayDays }),
	}
}

// JanitorVars declares the janitor role's own variables (with RetentionVars).
func JanitorVars() []config.Var {
	return []config.Var{
		config.Duration("FLAMESTREAM_JANITOR_INTERVAL", "janitor-interval", DefaultJanitorInterval, "how often the janitor role (part of `all`) drops ClickHouse partitions past retention (0 disables)", func(c *config.Config) *time.Duration { return &c.JanitorInterval }),
		config.Duration("FLAMESTREAM_ARCHIVE_COMPACT_AFTER", "archive-compact-after", DefaultArchiveCompactAfter, "how long after an hour ends the janitor packs its raw uploads into zstd bundles, read back and checked before the originals go (replay and reindex read the bundles; see OPERATIONS.md); 0 keeps one gzip object per upload", func(c *config.Config) *time.Duration { return &c.ArchiveCompactAfter }),
	}
}

// ConfigOf returns the indexer Config the loaded variables describe. It fails when the frame rules file
// cannot be read or one of its rules or tests fails: an indexer must not store stacks under rules other
// than the operator's.
func ConfigOf(c config.Config) (Config, error) {
	cfg := Config{BatchSize: c.BatchSize, BatchWait: c.BatchWait, FetchParallel: c.FetchParallel, MaxDecompressedBytes: c.MaxDecompressedBytes}
	if c.FrameRules != "" {
		rules, err := profile.LoadRules(c.FrameRules)
		if err != nil {
			return cfg, err
		}
		cfg.Rules = rules
	}
	return cfg, nil
}

// CompactionOf returns the archive compaction the loaded variables describe: off when
// FLAMESTREAM_ARCHIVE_COMPACT_AFTER is 0 or negative (Compaction's zero value would mean its defaults).
func CompactionOf(c config.Config) Compaction {
	if c.ArchiveCompactAfter <= 0 {
		return Compaction{After: -1}
	}
	return Compaction{After: c.ArchiveCompactAfter}
}

// RetentionOf returns the Retention the loaded variables describe.
func RetentionOf(c config.Config) Retention {
	return Retention{RawDays: c.RetentionRawDays, HourDays: c.RetentionHourDays, DayDays: c.RetentionDayDays, ArchiveDays: c.RetentionArchiveDays}
}
