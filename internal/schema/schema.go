// Package schema owns Flamestream's ClickHouse schema: the tables, their columns, the rollups and the
// materialized views that feed them, and the migrations that create them. The indexer writes and the query
// API reads by the names declared here.
package schema

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/flamestream/flamestream/internal/chdb"
)

// table is one ClickHouse table, described once so that the single-server schema and the cluster variant
// (Replicated*MergeTree shards behind a Distributed table of the same name) come from the same definition.
// Definitions must run on ClickHouse 18.16 and on current ClickHouse: no TTL, Map or JSON functions, and
// columns are declared with 18.16's types; on a server that supports them, Storage adds LowCardinality
// and codecs to the same columns when the statement is written (see storage.go).
type table struct {
	name      string
	columns   string // "ts DateTime, service String, ..."
	engine    string // MergeTree, ReplacingMergeTree, SummingMergeTree
	engineArg string // the engine's own arguments, e.g. "count" for SummingMergeTree(count)
	partition string // PARTITION BY expression, empty for none
	order     string // ORDER BY expression, without parentheses
	shard     string // sharding key of the Distributed table in the cluster variant
}

// view is a materialized view on samples (or on the table from) writing into a rollup table. Query
// selects FROM {src}.
type view struct {
	name, to, query string
	from            string // the source table; empty for samples
}

// migration is one versioned schema step: tables then views, created IF NOT EXISTS, then after (if set),
// which writes rows the step needs once its views exist.
type migration struct {
	version uint32
	name    string
	tables  []table
	views   []view
	// dropViews are views of earlier steps this step drops (after its tables are created).
	dropViews []string
	after     func(ctx context.Context, db *chdb.DB) error
}

// shardByService keeps every row of a service on one shard, so a flame graph of one service reads one
// shard and the rollups fed by materialized views on the shard are complete for that service.
const shardByService = "cityHash64(service)"

// migrationsTable records the applied schema versions.
var migrationsTable = table{name: "schema_migrations", columns: "version UInt32, name String, applied_at DateTime DEFAULT now()",
	engine: "MergeTree", order: "version", shard: "version"}

// migrations is the ClickHouse schema, in order. Never change what a released step creates; add a step.
//
// A stack is stored once in stacks, keyed by the xxhash64 of its text ("comm;frame;...;leaf"). Sample rows
// carry time, service, the filter dimensions, the profile id (the exactly-once guard, see Indexer) and a
// count; they are sorted so that one profile's rows are adjacent and every repeated column compresses to
// almost nothing.
var migrations = []migration{
	{version: 1, name: "stacks and samples", tables: []table{
		{name: "stacks", columns: "hash UInt64, frames String", engine: "ReplacingMergeTree", order: "hash", shard: "hash"},
		{name: Samples, columns: "ts DateTime, service String, host String, container String, instance_type String, k8s_object String, profile UInt64, stack UInt64, count UInt32",
			engine: "MergeTree", partition: "toYYYYMMDD(ts)", order: "service, host, ts, container, stack", shard: shardByService},
	}},
	{version: 2, name: "rollups", tables: rollupTables(), views: rollupViews()},
	{version: 3, name: "service-wide minute rollup", tables: []table{
		{name: MinuteRollup, columns: "ts DateTime, service String, stack UInt64, count UInt64", engine: "SummingMergeTree",
			engineArg: "count", partition: "toYYYYMMDD(ts)", order: "service, ts, stack", shard: shardByService},
		{name: Epochs, columns: "name String, since DateTime", engine: "ReplacingMergeTree", order: "name", shard: "cityHash64(name)"},
	}, views: []view{{name: MinuteRollup + "_mv", to: MinuteRollup,
		query: "SELECT toStartOfMinute(ts) AS ts, service, stack, toUInt64(sum(count)) AS count FROM {src} GROUP BY ts, service, stack"}},
		after: recordEpoch(MinuteRollup)},
	// A query server learns the stacks of one service at a time; in stacks, ordered by hash alone, that
	// read scans every service's stacks (measured: 20 s for the 1M stacks of one service among 6M, 1.7 GB of
	// 12 GB). Here a service's stacks are one range of the sort key. Stacks written before this step stay in
	// stacks, which readers fall back to.
	{version: 4, name: "stacks by service", tables: []table{
		{name: Stacks, columns: "service String, hash UInt64, frames String", engine: "ReplacingMergeTree",
			order: "service, hash", shard: shardByService},
	}},
	// Every write is a numbered batch whose marker row the views carry into each rollup, so that a rollup
	// a failed insert left short is found and completed (see ledger.go). The ledger says which batch
	// wrote which profile.
	{version: 5, name: "batch ledger", tables: []table{
		{name: Batches, columns: "ts DateTime, service String, batch UInt64, profile UInt64", engine: "MergeTree",
			partition: "toYYYYMMDD(ts)", order: "profile", shard: shardByService},
	}},
	// The agent's host metrics (metrics.cpu_avg and mem_avg of each profile's header, and the host's
	// metadata.processors), one row per profile, and their hour and day sums for exact averages over long
	// ranges (an average is sum/n, never an average of averages). The indexer writes a profile's row after
	// its samples and completes missing rows from the profiles its exactly-once guard finds in samples (see
	// indexer/hostmetrics.go); the raw table is keyed by profile so that a row written twice (two indexers
	// completing the same profile at once) merges away.
	{version: 6, name: "host metrics", tables: []table{
		{name: HostMetrics, columns: "ts DateTime, service String, host String, instance_type String, profile UInt64, cpu Float64, mem Float64, cores UInt32",
			engine: "ReplacingMergeTree", partition: "toYYYYMMDD(ts)", order: "service, host, ts, profile", shard: shardByService},
		hostMetricsRollup(HostMetricsHour, "toYYYYMMDD(ts)"),
		hostMetricsRollup(HostMetricsDay, "toYYYYMM(ts)"),
	}, views: []view{
		hostMetricsView(HostMetricsHour, "toStartOfHour(ts)"),
		hostMetricsView(HostMetricsDay, "toStartOfDay(ts)"),
	}},
	// The per-dimension hour and day rollups cost most of an INSERT: measured with 2,000-line profiles,
	// ClickHouse spent 83 % of its CPU on them (sorting each batch's rows, which a view cannot reduce
	// since a batch holds about one profile per host, by five string columns). From this step on the
	// janitor builds them from closed buckets instead (see Built and indexer/rollupbuild.go), where an
	// hour of a host's profiles is one row per stack, and records each bucket it completed in Builds.
	// Every bucket needs a record, those the views wrote too (the builder finds them complete and records
	// them without a delta): a profile indexed after this step with an older timestamp (a backlog, a replay,
	// a reindex of an old range) reaches no view, so no bucket can be trusted for its age.
	{version: 7, name: "dimension rollups built by the janitor", tables: []table{
		{name: Builds, columns: "rollup_table String, service String, ts DateTime, total UInt64, version UInt64",
			engine: "ReplacingMergeTree", engineArg: "version", partition: "toYYYYMM(ts)", order: "rollup_table, service, ts",
			shard: shardByService},
	}, dropViews: []string{Hour + "_mv", Day + "_mv"}, after: recordBuiltEpochs},
}

// Builds records, per built rollup (see Built), service and bucket, the total count the janitor found the
// rollup to hold, equal to its Check table's, after completing it: rollup_table (its name; 18.16 parses a
// column named rollup as WITH ROLLUP), service, ts (the bucket), total and version (when it was recorded,
// in nanoseconds; the newest record of a bucket counts). A bucket is complete while its record's total equals the Check table's: every sample later
// added to the source raises the Check total, so a late profile shows as a difference until the janitor
// has built the bucket again.
const Builds = "rollup_builds"

// BuiltEpoch is the name, in Epochs, of the first bucket of a built rollup that needs a record in Builds
// (the builder builds and readers check from there on; buckets before it are read as they are). Schema step
// 7 sets it to 2000-01-01 for both (not 0, which 18.16 writes as 0000-00-00 in text formats and current
// servers read back as another date): every bucket needs a record, the ones the dropped views wrote too,
// since a profile indexed later with an old timestamp reaches no view. Readers and the builder still trust
// the buckets older than their source's retention (see indexer.RollupBuilds and query.Rollups): nothing
// can be added to them, and nothing read instead.
func BuiltEpoch(rollup string) string { return rollup + "/built" }

// BuiltRollup is a rollup the janitor builds from Source: its Rollup bucket and keys, the table whose rows
// it aggregates, and Check, the view-fed service-wide rollup of the same bucket whose total per service and
// bucket it must equal.
type BuiltRollup struct {
	Rollup
	Source, Check string
}

// Built are the rollups the janitor builds: the hour one from the raw samples, the day one from the hour
// one.
var Built = []BuiltRollup{
	{Rollup{Hour, "toStartOfHour(ts)", true, true}, Samples, HourAll},
	{Rollup{Day, "toStartOfDay(ts)", true, true}, Hour, DayAll},
}

// DeltaQuery is the SELECT whose rows, inserted into the rollup, make its rows of service in [from, to)
// (whole buckets) the Source's rows aggregated per bucket and key: the source's sums minus the rollup's,
// per key, leaving out the keys whose difference is 0. Inserting it again after a failed insert that
// wrote only part of it completes the rest; there is nothing to undo. A negative difference (the rollup
// holds more than its source, which only two builders inserting the same rows at once can cause) is
// written as its two's complement: SummingMergeTree's UInt64 sums wrap, so it subtracts. table qualifies a
// table name (chdb.DB.Table); service is quoted here.
func (b BuiltRollup) DeltaQuery(table func(string) string, service string, from, to time.Time) string {
	keys := b.Keys()
	where := " WHERE service = " + chdb.String(service) + " AND ts >= " + chdb.Time(from) + " AND ts < " + chdb.Time(to)
	return "SELECT b AS ts, " + keys + ", toUInt64(sum(c)) AS count FROM (" +
		"SELECT " + b.Bucket + " AS b, " + keys + ", toInt64(sum(count)) AS c FROM " + table(b.Source) + where + " GROUP BY b, " + keys +
		" UNION ALL " +
		"SELECT ts AS b, " + keys + ", -toInt64(sum(count)) AS c FROM " + table(b.Table) + where + " GROUP BY b, " + keys +
		") GROUP BY b, " + keys + " HAVING sum(c) != 0"
}

// recordBuiltEpochs records BuiltEpoch of each built rollup: 2000-01-01, every bucket.
func recordBuiltEpochs(ctx context.Context, db *chdb.DB) error {
	name, since := new(proto.ColStr), proto.ColDateTime{}
	for _, b := range Built {
		name.Append(BuiltEpoch(b.Table))
		since.Append(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC))
	}
	if err := db.Insert(ctx, Epochs, proto.Input{{Name: "name", Data: name}, {Name: "since", Data: &since}}); err != nil {
		return fmt.Errorf("record the built rollups' epochs: %w", err)
	}
	return nil
}

// Host metrics tables (schema step 6). HostMetrics has one row per profile: ts, service, host,
// instance_type, profile, cpu and mem (percent, as the agent sent them) and cores (0 when the agent did not
// say). HostMetricsHour and HostMetricsDay hold, per bucket, service, host and instance type, cpu_sum,
// mem_sum and n (the number of profiles), fed by materialized views on HostMetrics.
const (
	HostMetrics     = "host_metrics"
	HostMetricsHour = "host_metrics_1h"
	HostMetricsDay  = "host_metrics_1d"
)

func hostMetricsRollup(name, partition string) table {
	return table{name: name, columns: "ts DateTime, service String, host String, instance_type String, cpu_sum Float64, mem_sum Float64, n UInt64",
		// Without arguments SummingMergeTree sums every numeric column outside the key: cpu_sum, mem_sum, n.
		engine: "SummingMergeTree", partition: partition, order: "service, host, instance_type, ts",
		shard: shardByService}
}

func hostMetricsView(to, bucket string) view {
	return view{name: to + "_mv", to: to, from: HostMetrics,
		query: "SELECT " + bucket + " AS ts, service, host, instance_type, sum(cpu) AS cpu_sum, sum(mem) AS mem_sum, toUInt64(count()) AS n" +
			" FROM {src} GROUP BY ts, service, host, instance_type"}
}

// Table names. Samples holds one row per (profile, container, stack); the others are fed from it by
// materialized views, except the stack texts, the epochs and the batch ledger, which the indexer writes.
const (
	// Samples is the raw table: time, service, dimensions, profile id, stack hash and count.
	Samples = "samples"
	// Hour and Day roll samples up per stack and every dimension; HourAll and DayAll per stack,
	// service-wide; Totals1m per minute and dimension, without the stack (timelines, filter values, service
	// overviews). MinuteRollup (below) is per stack and minute, service-wide.
	Hour     = "samples_1h"
	HourAll  = "samples_1h_all"
	Day      = "samples_1d"
	DayAll   = "samples_1d_all"
	Totals1m = "totals_1m"
	// Stacks holds each service's stack texts, keyed by (service, hash). LegacyStacks is the table of
	// stacks written before schema step 4, keyed by hash alone.
	Stacks       = "service_stacks"
	LegacyStacks = "stacks"
	// Batches is the batch ledger: which write (batch) put which profile into samples. See MarkerService.
	Batches = "batches"
	// MarkerService is the service of the marker row each batch adds to its INSERT into samples; the views
	// carry it into every rollup with the batch's rows, so a rollup holds the marker exactly when it holds
	// the batch. It holds a NUL byte, which no service name can (see pgdb.ValidName): readers that select
	// a service never see it. The marker's host is the batch id in hex and its stack the batch id.
	MarkerService = "\x00batch"
)

// MinuteRollup is the service-wide per-minute per-stack rollup. It is not backfilled when its migration
// runs (an INSERT SELECT would race with concurrent inserts and count them twice): it is complete only
// from its epoch on, see Epochs.
const MinuteRollup = "samples_1m_all"

// Epochs records, per rollup created after data may already exist, the first whole bucket (since) from
// which the rollup holds every sample. Readers use a rollup only at or after its epoch and take the
// smallest since of a name: an epoch may be moved earlier (after backfilling the rollup), never later.
const Epochs = "rollup_epochs"

// recordEpoch returns the step that records the rollup's epoch: the start of the minute after its view
// was created, by the server's clock. Samples inserted in the minute the view appeared may predate it.
func recordEpoch(rollup string) func(context.Context, *chdb.DB) error {
	return func(ctx context.Context, db *chdb.DB) error {
		var now proto.ColUInt32
		if err := db.Do(ctx, ch.Query{
			Body:   "SELECT toUInt32(now()) AS now",
			Result: proto.Results{{Name: "now", Data: &now}},
		}); err != nil {
			return fmt.Errorf("read server clock: %w", err)
		}
		if len(now) != 1 {
			return fmt.Errorf("read server clock: %d rows", len(now))
		}
		since := proto.ColDateTime{}
		since.Append(time.Unix(int64(now[0]-now[0]%60+60), 0))
		name := new(proto.ColStr)
		name.Append(rollup)
		if err := db.Insert(ctx, Epochs, proto.Input{{Name: "name", Data: name}, {Name: "since", Data: &since}}); err != nil {
			return fmt.Errorf("record epoch of %s: %w", rollup, err)
		}
		return nil
	}
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
	{Hour, "toStartOfHour(ts)", "toYYYYMMDD(ts)", true},
	{HourAll, "toStartOfHour(ts)", "toYYYYMMDD(ts)", false},
	{Day, "toStartOfDay(ts)", "toYYYYMM(ts)", true},
	{DayAll, "toStartOfDay(ts)", "toYYYYMM(ts)", false},
}

// DimColumns are the filter dimensions, in the order of the tables that keep them.
const DimColumns = "host, container, instance_type, k8s_object"

func rollupTables() []table {
	var out []table
	for _, r := range rollups {
		cols, key := "ts DateTime, service String, ", "service, ts, stack"
		if r.dims {
			cols += "host String, container String, instance_type String, k8s_object String, "
			key = "service, " + DimColumns + ", ts, stack"
		}
		out = append(out, table{name: r.table, columns: cols + "stack UInt64, count UInt64", engine: "SummingMergeTree",
			engineArg: "count", partition: r.partition, order: key, shard: shardByService})
	}
	return append(out, table{name: Totals1m,
		columns: "ts DateTime, service String, host String, container String, instance_type String, k8s_object String, count UInt64",
		engine:  "SummingMergeTree", engineArg: "count", partition: "toYYYYMMDD(ts)", order: "service, ts, " + DimColumns, shard: shardByService})
}

func rollupViews() []view {
	var out []view
	for _, r := range rollups {
		sel := "service, "
		if r.dims {
			sel += DimColumns + ", "
		}
		out = append(out, view{name: r.table + "_mv", to: r.table,
			query: "SELECT " + r.bucket + " AS ts, " + sel + "stack, toUInt64(sum(count)) AS count FROM {src} GROUP BY ts, " + sel + "stack"})
	}
	return append(out, view{name: Totals1m + "_mv", to: Totals1m,
		query: "SELECT toStartOfMinute(ts) AS ts, service, " + DimColumns + ", toUInt64(sum(count)) AS count FROM {src} GROUP BY ts, service, " + DimColumns})
}

// Layout says where the schema goes: one server (Cluster empty) or every node of a ClickHouse cluster.
type Layout struct {
	Database string
	// Cluster is the cluster name of remote_servers; when set, each table becomes <name>_local, a
	// Replicated*MergeTree on every shard (ZooKeeper path /clickhouse/tables/{shard}/<db>/<name>_local and
	// the {shard} and {replica} macros of each server), plus a Distributed table <name> over them, so the
	// indexer and the query API use the same names in both layouts. Materialized views are created on the
	// local tables: each shard rolls up its own samples.
	Cluster string
	// Storage chooses the column types: StorageAuto (the zero value) is what the server supports when
	// Migrate runs, and 18.16's plain types where no server is known (SQL).
	Storage Storage
}

// localSuffix names the shard-local tables of the cluster variant.
const localSuffix = "_local"

func (l Layout) onCluster() string {
	if l.Cluster == "" {
		return ""
	}
	return " ON CLUSTER " + l.Cluster
}

// createDatabase is the statement that creates the database.
func (l Layout) createDatabase() string {
	return "CREATE DATABASE IF NOT EXISTS " + l.Database + l.onCluster()
}

// tableSQL returns the statements that create t.
func (l Layout) tableSQL(t table) []string {
	tail := ""
	if t.partition != "" {
		tail += " PARTITION BY " + t.partition
	}
	tail += " ORDER BY (" + t.order + ")"
	t.columns = l.Storage.columns(t)
	if l.Cluster == "" {
		engine := t.engine
		if t.engineArg != "" {
			engine += "(" + t.engineArg + ")"
		}
		return []string{"CREATE TABLE IF NOT EXISTS " + l.Database + "." + t.name + " (" + t.columns + ") ENGINE = " + engine + tail}
	}
	local := t.name + localSuffix
	args := "'/clickhouse/tables/{shard}/" + l.Database + "/" + local + "', '{replica}'"
	if t.engineArg != "" {
		args += ", " + t.engineArg
	}
	return []string{
		"CREATE TABLE IF NOT EXISTS " + l.Database + "." + local + l.onCluster() + " (" + t.columns + ") ENGINE = Replicated" + t.engine + "(" + args + ")" + tail,
		"CREATE TABLE IF NOT EXISTS " + l.Database + "." + t.name + l.onCluster() + " AS " + l.Database + "." + local +
			" ENGINE = Distributed(" + l.Cluster + ", " + l.Database + ", " + local + ", " + t.shard + ")",
	}
}

// viewSQL returns the statement that creates v.
func (l Layout) viewSQL(v view) string {
	src, to := Samples, v.to
	if v.from != "" {
		src = v.from
	}
	if l.Cluster != "" {
		src, to = src+localSuffix, to+localSuffix
	}
	return "CREATE MATERIALIZED VIEW IF NOT EXISTS " + l.Database + "." + v.name + l.onCluster() + " TO " + l.Database + "." + to +
		" AS " + strings.ReplaceAll(v.query, "{src}", l.Database+"."+src)
}

// statements returns the statements of one migration step.
func (l Layout) statements(m migration) []string {
	var out []string
	for _, t := range m.tables {
		out = append(out, l.tableSQL(t)...)
	}
	for _, v := range m.views {
		out = append(out, l.viewSQL(v))
	}
	for _, v := range m.dropViews {
		out = append(out, "DROP TABLE IF EXISTS "+l.Database+"."+v+l.onCluster())
	}
	return out
}

// SQL returns every statement of the whole schema for the layout, in order: what `flamestream migrate
// --print` shows.
func (l Layout) SQL() ([]string, error) {
	if err := l.check(); err != nil {
		return nil, err
	}
	out := []string{l.createDatabase()}
	out = append(out, l.tableSQL(migrationsTable)...)
	for _, m := range migrations {
		out = append(out, l.statements(m)...)
	}
	return out, nil
}

func (l Layout) check() error {
	if err := chdb.CheckIdent(l.Database); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	if l.Cluster != "" {
		if err := chdb.CheckIdent(l.Cluster); err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
	}
	return nil
}

// Migrate creates the database and applies the schema steps not applied yet on one server. It is
// idempotent: the applied versions are recorded in {db}.schema_migrations and every statement is IF NOT
// EXISTS.
func Migrate(ctx context.Context, db *chdb.DB) (applied []string, err error) {
	return MigrateLayout(ctx, db, Layout{Database: db.Database})
}

// MigrateLayout is Migrate for a given layout; with a cluster, db may be any node of it (DDL runs ON
// CLUSTER). The layout's database must be db's.
//
// With StorageAuto, the tables a step creates take the storage StorageFor chooses for the server's
// version: on current ClickHouse, column codecs. Tables that exist already are never
// rewritten: a database created on an older server keeps its types, and only the tables of later steps
// get the new ones (readers and writers work on both; see storage.go).
func MigrateLayout(ctx context.Context, db *chdb.DB, l Layout) (applied []string, err error) {
	if err := l.check(); err != nil {
		return nil, err
	}
	if l.Storage == StorageAuto {
		l.Storage = StorageFor(db.ServerMajor, db.ServerMinor)
	}
	if l.Database != db.Database {
		return nil, fmt.Errorf("migrate: layout database %s is not the connection's %s", l.Database, db.Database)
	}
	if err := db.Exec(ctx, l.createDatabase()); err != nil {
		return nil, fmt.Errorf("create database: %w", err)
	}
	for _, stmt := range l.tableSQL(migrationsTable) {
		if err := db.Exec(ctx, stmt); err != nil {
			return nil, fmt.Errorf("create schema_migrations: %w", err)
		}
	}
	done := map[uint32]bool{}
	var col proto.ColUInt32
	if err := db.Do(ctx, ch.Query{
		Body:   "SELECT version FROM " + l.Database + "." + migrationsTable.name,
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
		for _, stmt := range l.statements(m) {
			if err := db.Exec(ctx, stmt); err != nil {
				return applied, fmt.Errorf("schema step %d (%s): %w", m.version, m.name, err)
			}
		}
		if m.after != nil {
			if err := m.after(ctx, db); err != nil {
				return applied, fmt.Errorf("schema step %d (%s): %w", m.version, m.name, err)
			}
		}
		// Rows go in as a native block: inline VALUES make old servers wait for a data block.
		version, name := proto.ColUInt32{m.version}, new(proto.ColStr)
		name.Append(m.name)
		in := proto.Input{{Name: "version", Data: &version}, {Name: "name", Data: name}}
		if err := db.Insert(ctx, migrationsTable.name, in); err != nil {
			return applied, fmt.Errorf("record schema step %d: %w", m.version, err)
		}
		applied = append(applied, fmt.Sprintf("%d %s", m.version, m.name))
	}
	return applied, nil
}

// Rollup is one table a materialized view on samples feeds: its time bucket, whether it keeps the
// dimension columns and whether it keeps the stack.
type Rollup struct {
	Table, Bucket string
	Dims, Stack   bool
}

// Rollups are every table a view on samples feeds (Built are the others). TestRollupsAreTheViews checks
// that each one's Query is, letter for letter, its view's.
var Rollups = []Rollup{
	{HourAll, "toStartOfHour(ts)", false, true},
	{DayAll, "toStartOfDay(ts)", false, true},
	{Totals1m, "toStartOfMinute(ts)", true, false},
	{MinuteRollup, "toStartOfMinute(ts)", false, true},
}

// Keys are the rollup's grouping columns after ts.
func (r Rollup) Keys() string {
	k := "service"
	if r.Dims {
		k += ", " + DimColumns
	}
	if r.Stack {
		k += ", stack"
	}
	return k
}

// Query is the view's SELECT over src (a table or a parenthesized subquery with the columns of samples).
func (r Rollup) Query(src string) string {
	return "SELECT " + r.Bucket + " AS ts, " + r.Keys() + ", toUInt64(sum(count)) AS count FROM " + src + " GROUP BY ts, " + r.Keys()
}

// MarkerColumn is the column that carries the batch id of a marker row: stack, or host where the table
// keeps no stack.
func (r Rollup) MarkerColumn() string {
	if r.Stack {
		return "stack"
	}
	return "host"
}
