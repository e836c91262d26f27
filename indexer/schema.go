package indexer

import (
	"context"
	"fmt"
	"strings"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/flamestream/flamestream/internal/chdb"
)

// migration is one versioned schema step. Statements use {db} for the database name and must run on
// ClickHouse 18.16 and on current ClickHouse: no TTL, codecs, LowCardinality, Map or JSON functions.
type migration struct {
	version    uint32
	name       string
	statements []string
}

// migrations is the ClickHouse schema, in order. Never edit a released step; add a new one.
//
// A stack is stored once in stacks, keyed by the xxhash64 of its text ("comm;frame;...;leaf"). Sample rows
// carry time, service, the filter dimensions, the profile id (the exactly-once guard, see Indexer) and a
// count; they are sorted so that one profile's rows are adjacent and every repeated column compresses to
// almost nothing.
var migrations = []migration{
	{1, "stacks and samples", []string{
		`CREATE TABLE IF NOT EXISTS {db}.stacks (
			hash UInt64,
			frames String
		) ENGINE = ReplacingMergeTree ORDER BY hash`,
		`CREATE TABLE IF NOT EXISTS {db}.samples (
			ts DateTime,
			service String,
			host String,
			container String,
			instance_type String,
			k8s_object String,
			profile UInt64,
			stack UInt64,
			count UInt32
		) ENGINE = MergeTree PARTITION BY toYYYYMMDD(ts) ORDER BY (service, host, ts, container, stack)`,
	}},
	{2, "rollups", rollupStatements()},
}

// Rollup tables. Each is a SummingMergeTree fed by a materialized view on samples, so it is written in the
// same INSERT as the samples themselves and the indexer's exactly-once guard covers it too. Rows are summed
// at merge time; readers must still sum(count) ... GROUP BY.
//
//   - samples_1h, samples_1d: per stack and every filter dimension, for filtered queries over long ranges.
//   - samples_1h_all, samples_1d_all: per stack, service-wide, for unfiltered queries.
//   - totals_1m: per minute and dimension, no stack: timelines, filter values, service overviews.
//
// Hour tables are partitioned by day like samples; day tables by month (they are kept a year).
var rollups = []struct {
	table, bucket, partition string
	dims                     bool
}{
	{"samples_1h", "toStartOfHour(ts)", "toYYYYMMDD(ts)", true},
	{"samples_1h_all", "toStartOfHour(ts)", "toYYYYMMDD(ts)", false},
	{"samples_1d", "toStartOfDay(ts)", "toYYYYMM(ts)", true},
	{"samples_1d_all", "toStartOfDay(ts)", "toYYYYMM(ts)", false},
}

const dimColumns = "host, container, instance_type, k8s_object"

func rollupStatements() []string {
	var out []string
	for _, r := range rollups {
		cols, key, sel := "ts DateTime, service String, ", "service, ts, stack", "service, "
		if r.dims {
			cols += "host String, container String, instance_type String, k8s_object String, "
			key = "service, " + dimColumns + ", ts, stack"
			sel += dimColumns + ", "
		}
		out = append(out,
			"CREATE TABLE IF NOT EXISTS {db}."+r.table+" ("+cols+"stack UInt64, count UInt64) ENGINE = SummingMergeTree(count) PARTITION BY "+r.partition+" ORDER BY ("+key+")",
			"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}."+r.table+"_mv TO {db}."+r.table+" AS SELECT "+r.bucket+" AS ts, "+sel+"stack, toUInt64(sum(count)) AS count FROM {db}.samples GROUP BY ts, "+sel+"stack",
		)
	}
	out = append(out,
		"CREATE TABLE IF NOT EXISTS {db}.totals_1m (ts DateTime, service String, host String, container String, instance_type String, k8s_object String, count UInt64) ENGINE = SummingMergeTree(count) PARTITION BY toYYYYMMDD(ts) ORDER BY (service, ts, "+dimColumns+")",
		"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.totals_1m_mv TO {db}.totals_1m AS SELECT toStartOfMinute(ts) AS ts, service, "+dimColumns+", toUInt64(sum(count)) AS count FROM {db}.samples GROUP BY ts, service, "+dimColumns,
	)
	return out
}

func expand(db, stmt string) string { return strings.ReplaceAll(stmt, "{db}", db) }

// Migrate creates the database and applies the schema steps not applied yet. It is idempotent: the applied
// versions are recorded in {db}.schema_migrations and every statement is IF NOT EXISTS.
func Migrate(ctx context.Context, db *chdb.DB) (applied []string, err error) {
	if err := db.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+db.Database); err != nil {
		return nil, err
	}
	if err := db.Exec(ctx, expand(db.Database, `CREATE TABLE IF NOT EXISTS {db}.schema_migrations (
		version UInt32, name String, applied_at DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY version`)); err != nil {
		return nil, err
	}
	done := map[uint32]bool{}
	var col proto.ColUInt32
	if err := db.Do(ctx, ch.Query{
		Body:   "SELECT version FROM " + db.Table("schema_migrations"),
		Result: proto.Results{{Name: "version", Data: &col}},
		OnResult: func(ctx context.Context, b proto.Block) error {
			for _, v := range col {
				done[v] = true
			}
			return nil
		},
	}); err != nil {
		return nil, fmt.Errorf("read schema version: %w", err)
	}
	for _, m := range migrations {
		if done[m.version] {
			continue
		}
		for _, stmt := range m.statements {
			if err := db.Exec(ctx, expand(db.Database, stmt)); err != nil {
				return applied, fmt.Errorf("schema step %d (%s): %w", m.version, m.name, err)
			}
		}
		// Rows go in as a native block: inline VALUES make old servers wait for a data block.
		version, name := proto.ColUInt32{m.version}, new(proto.ColStr)
		name.Append(m.name)
		in := proto.Input{{Name: "version", Data: &version}, {Name: "name", Data: name}}
		if err := db.Insert(ctx, "schema_migrations", in); err != nil {
			return applied, fmt.Errorf("record schema step %d: %w", m.version, err)
		}
		applied = append(applied, fmt.Sprintf("%d %s", m.version, m.name))
	}
	return applied, nil
}
