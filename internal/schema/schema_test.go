package schema

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSingleServerSchemaCreatesPlainTablesAndViewsOnSamples(t *testing.T) {
	stmts, err := Layout{Database: "fs"}.SQL()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"CREATE DATABASE IF NOT EXISTS fs",
		"CREATE TABLE IF NOT EXISTS fs.stacks (hash UInt64, frames String) ENGINE = ReplacingMergeTree ORDER BY (hash)",
		"CREATE TABLE IF NOT EXISTS fs.samples (ts DateTime, service String, host String, container String, instance_type String, k8s_object String, profile UInt64, stack UInt64, count UInt32) ENGINE = MergeTree PARTITION BY toYYYYMMDD(ts) ORDER BY (service, host, ts, container, stack)",
		"CREATE TABLE IF NOT EXISTS fs.samples_1d_all (ts DateTime, service String, stack UInt64, count UInt64) ENGINE = SummingMergeTree(count) PARTITION BY toYYYYMM(ts) ORDER BY (service, ts, stack)",
		"CREATE MATERIALIZED VIEW IF NOT EXISTS fs.samples_1h_mv TO fs.samples_1h AS SELECT toStartOfHour(ts) AS ts, service, host, container, instance_type, k8s_object, stack, toUInt64(sum(count)) AS count FROM fs.samples GROUP BY ts, service, host, container, instance_type, k8s_object, stack",
		"CREATE TABLE IF NOT EXISTS fs.samples_1m_all (ts DateTime, service String, stack UInt64, count UInt64) ENGINE = SummingMergeTree(count) PARTITION BY toYYYYMMDD(ts) ORDER BY (service, ts, stack)",
		"CREATE MATERIALIZED VIEW IF NOT EXISTS fs.samples_1m_all_mv TO fs.samples_1m_all AS SELECT toStartOfMinute(ts) AS ts, service, stack, toUInt64(sum(count)) AS count FROM fs.samples GROUP BY ts, service, stack",
		"CREATE TABLE IF NOT EXISTS fs.rollup_epochs (name String, since DateTime) ENGINE = ReplacingMergeTree ORDER BY (name)",
	}
	for _, w := range want {
		if !slices.Contains(stmts, w) {
			t.Errorf("schema lacks\n%s\ngot:\n%s", w, strings.Join(stmts, "\n"))
		}
	}
	for _, s := range stmts {
		if strings.Contains(s, "Replicated") || strings.Contains(s, "Distributed") || strings.Contains(s, "ON CLUSTER") || strings.Contains(s, "{") {
			t.Errorf("single-server statement has cluster parts or placeholders: %s", s)
		}
	}
}

func TestClusterSchemaShardsReplicatedTablesBehindDistributedOnes(t *testing.T) {
	stmts, err := Layout{Database: "fs", Cluster: "prod"}.SQL()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		want string
	}{
		{"database on every node", "CREATE DATABASE IF NOT EXISTS fs ON CLUSTER prod"},
		{"replicated samples shard", "CREATE TABLE IF NOT EXISTS fs.samples_local ON CLUSTER prod (ts DateTime, service String, host String, container String, instance_type String, k8s_object String, profile UInt64, stack UInt64, count UInt32) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/fs/samples_local', '{replica}') PARTITION BY toYYYYMMDD(ts) ORDER BY (service, host, ts, container, stack)"},
		{"distributed samples by service", "CREATE TABLE IF NOT EXISTS fs.samples ON CLUSTER prod AS fs.samples_local ENGINE = Distributed(prod, fs, samples_local, cityHash64(service))"},
		{"replicated summing rollup keeps its sum column", "CREATE TABLE IF NOT EXISTS fs.samples_1h_all_local ON CLUSTER prod (ts DateTime, service String, stack UInt64, count UInt64) ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/fs/samples_1h_all_local', '{replica}', count) PARTITION BY toYYYYMMDD(ts) ORDER BY (service, ts, stack)"},
		{"distributed rollup by service", "CREATE TABLE IF NOT EXISTS fs.totals_1m ON CLUSTER prod AS fs.totals_1m_local ENGINE = Distributed(prod, fs, totals_1m_local, cityHash64(service))"},
		{"replicated replacing stacks", "CREATE TABLE IF NOT EXISTS fs.stacks_local ON CLUSTER prod (hash UInt64, frames String) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fs/stacks_local', '{replica}') ORDER BY (hash)"},
		{"distributed stacks by hash", "CREATE TABLE IF NOT EXISTS fs.stacks ON CLUSTER prod AS fs.stacks_local ENGINE = Distributed(prod, fs, stacks_local, hash)"},
		{"view reads and writes shard-local tables", "CREATE MATERIALIZED VIEW IF NOT EXISTS fs.samples_1d_mv ON CLUSTER prod TO fs.samples_1d_local AS SELECT toStartOfDay(ts) AS ts, service, host, container, instance_type, k8s_object, stack, toUInt64(sum(count)) AS count FROM fs.samples_local GROUP BY ts, service, host, container, instance_type, k8s_object, stack"},
		{"replicated minute rollup", "CREATE TABLE IF NOT EXISTS fs.samples_1m_all_local ON CLUSTER prod (ts DateTime, service String, stack UInt64, count UInt64) ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/fs/samples_1m_all_local', '{replica}', count) PARTITION BY toYYYYMMDD(ts) ORDER BY (service, ts, stack)"},
		{"distributed minute rollup by service", "CREATE TABLE IF NOT EXISTS fs.samples_1m_all ON CLUSTER prod AS fs.samples_1m_all_local ENGINE = Distributed(prod, fs, samples_1m_all_local, cityHash64(service))"},
		{"minute view reads and writes shard-local tables", "CREATE MATERIALIZED VIEW IF NOT EXISTS fs.samples_1m_all_mv ON CLUSTER prod TO fs.samples_1m_all_local AS SELECT toStartOfMinute(ts) AS ts, service, stack, toUInt64(sum(count)) AS count FROM fs.samples_local GROUP BY ts, service, stack"},
		{"distributed rollup epochs", "CREATE TABLE IF NOT EXISTS fs.rollup_epochs ON CLUSTER prod AS fs.rollup_epochs_local ENGINE = Distributed(prod, fs, rollup_epochs_local, cityHash64(name))"},
		{"migrations table", "CREATE TABLE IF NOT EXISTS fs.schema_migrations ON CLUSTER prod AS fs.schema_migrations_local ENGINE = Distributed(prod, fs, schema_migrations_local, version)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !slices.Contains(stmts, tt.want) {
				t.Errorf("cluster schema lacks\n%s\ngot:\n%s", tt.want, strings.Join(stmts, "\n"))
			}
		})
	}
	// Every table has a shard and a distributed table, and every local table precedes its distributed one.
	single, _ := Layout{Database: "fs"}.SQL()
	var tables, views int
	for _, s := range single {
		switch {
		case strings.HasPrefix(s, "CREATE TABLE"):
			tables++
		case strings.HasPrefix(s, "CREATE MATERIALIZED VIEW"):
			views++
		}
	}
	var local, dist, cviews int
	for _, s := range stmts {
		switch {
		case strings.Contains(s, "ENGINE = Replicated"):
			local++
		case strings.Contains(s, "ENGINE = Distributed"):
			dist++
		case strings.HasPrefix(s, "CREATE MATERIALIZED VIEW"):
			cviews++
			if strings.Contains(s, "FROM fs.samples ") {
				t.Errorf("cluster view reads the distributed table: %s", s)
			}
		}
	}
	if local != tables || dist != tables || cviews != views {
		t.Errorf("cluster schema: %d replicated, %d distributed, %d views; want %d, %d, %d", local, dist, cviews, tables, tables, views)
	}
}

func TestSchemaRejectsNamesThatAreNotIdentifiers(t *testing.T) {
	for _, l := range []Layout{{Database: "fs; DROP"}, {Database: "fs", Cluster: "a b"}, {Database: ""}} {
		if _, err := l.SQL(); err == nil {
			t.Errorf("layout %+v accepted", l)
		}
	}
}

// The repair of a rollup writes what its materialized view would have written: the rollup's Query must be
// the view's, letter for letter, and every view must have a shape.
func TestRollupsAreTheViews(t *testing.T) {
	views := map[string]string{}
	for _, m := range migrations {
		for _, v := range m.views {
			if v.from == "" { // views on other tables than samples are no rollups of samples
				views[v.to] = v.query
			}
		}
		for _, d := range m.dropViews {
			delete(views, strings.TrimSuffix(d, "_mv"))
		}
	}
	if len(views) != len(Rollups) {
		t.Errorf("%d views, %d rollups", len(views), len(Rollups))
	}
	for _, r := range Rollups {
		q, ok := views[r.Table]
		if !ok {
			t.Errorf("no view writes %s", r.Table)
			continue
		}
		if got := r.Query("{src}"); got != q {
			t.Errorf("%s:\nshape %s\nview  %s", r.Table, got, q)
		}
	}
}

// The host metrics step keeps exact sums: a rollup's rows are summed per (service, host, instance type,
// bucket), its view reads host_metrics (not samples), and the raw table collapses a row written twice.
func TestHostMetricsStepSumsForExactAverages(t *testing.T) {
	stmts, err := Layout{Database: "fs"}.SQL()
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		"CREATE TABLE IF NOT EXISTS fs.host_metrics (ts DateTime, service String, host String, instance_type String, profile UInt64, cpu Float64, mem Float64, cores UInt32) ENGINE = ReplacingMergeTree PARTITION BY toYYYYMMDD(ts) ORDER BY (service, host, ts, profile)",
		"CREATE TABLE IF NOT EXISTS fs.host_metrics_1h (ts DateTime, service String, host String, instance_type String, cpu_sum Float64, mem_sum Float64, n UInt64) ENGINE = SummingMergeTree PARTITION BY toYYYYMMDD(ts) ORDER BY (service, host, instance_type, ts)",
		"CREATE MATERIALIZED VIEW IF NOT EXISTS fs.host_metrics_1d_mv TO fs.host_metrics_1d AS SELECT toStartOfDay(ts) AS ts, service, host, instance_type, sum(cpu) AS cpu_sum, sum(mem) AS mem_sum, toUInt64(count()) AS n FROM fs.host_metrics GROUP BY ts, service, host, instance_type",
	} {
		if !slices.Contains(stmts, w) {
			t.Errorf("schema lacks\n%s", w)
		}
	}
	cluster, _ := Layout{Database: "fs", Cluster: "prod"}.SQL()
	want := "CREATE MATERIALIZED VIEW IF NOT EXISTS fs.host_metrics_1h_mv ON CLUSTER prod TO fs.host_metrics_1h_local AS SELECT toStartOfHour(ts) AS ts, service, host, instance_type, sum(cpu) AS cpu_sum, sum(mem) AS mem_sum, toUInt64(count()) AS n FROM fs.host_metrics_local GROUP BY ts, service, host, instance_type"
	if !slices.Contains(cluster, want) {
		t.Errorf("cluster schema lacks\n%s", want)
	}
}

// The built rollups are the ones whose views a later step drops, and their delta, read from the source
// alone (an empty rollup), is their old view's query restricted to one service and range.
func TestBuiltRollupsReplaceTheDroppedViews(t *testing.T) {
	dropped := map[string]bool{}
	for _, m := range migrations {
		for _, d := range m.dropViews {
			dropped[strings.TrimSuffix(d, "_mv")] = true
		}
	}
	if len(dropped) != len(Built) {
		t.Errorf("%d views dropped, %d built rollups", len(dropped), len(Built))
	}
	for _, b := range Built {
		if !dropped[b.Table] {
			t.Errorf("%s is built but its view is not dropped", b.Table)
		}
		for _, r := range Rollups {
			if r.Table == b.Table {
				t.Errorf("%s is both built and view-fed", b.Table)
			}
		}
	}
	stmts, err := Layout{Database: "fs", Cluster: "prod"}.SQL()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(stmts, "DROP TABLE IF EXISTS fs.samples_1h_mv ON CLUSTER prod") {
		t.Errorf("the cluster schema does not drop the hour view on every node:\n%s", strings.Join(stmts, "\n"))
	}
	q := Built[0].DeltaQuery(func(s string) string { return "fs." + s }, "a'b", time.Unix(3600, 0), time.Unix(7200, 0))
	want := "SELECT b AS ts, service, host, container, instance_type, k8s_object, stack, toUInt64(sum(c)) AS count FROM (" +
		"SELECT toStartOfHour(ts) AS b, service, host, container, instance_type, k8s_object, stack, toInt64(sum(count)) AS c FROM fs.samples WHERE service = 'a\\'b' AND ts >= toDateTime(3600) AND ts < toDateTime(7200) GROUP BY b, service, host, container, instance_type, k8s_object, stack" +
		" UNION ALL SELECT ts AS b, service, host, container, instance_type, k8s_object, stack, -toInt64(sum(count)) AS c FROM fs.samples_1h WHERE service = 'a\\'b' AND ts >= toDateTime(3600) AND ts < toDateTime(7200) GROUP BY b, service, host, container, instance_type, k8s_object, stack" +
		") GROUP BY b, service, host, container, instance_type, k8s_object, stack HAVING sum(c) != 0"
	if q != want {
		t.Errorf("delta:\n%s\nwant\n%s", q, want)
	}
}
