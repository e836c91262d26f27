package chcompat

import (
	"strconv"
	"strings"
	"testing"

	"github.com/flamestream/flamestream/internal/schema"
)

// storageVariant rewrites the schema's column types the way current ClickHouse allows (18.16 does not):
// LowCardinality for the repeated names, and codecs suited to each column (delta for times and profile
// ids sorted within a profile, T64 for small counts, ZSTD behind them). Migrations are not changed: this
// only measures what such a step would save.
var storageVariant = strings.NewReplacer(
	"service String", "service LowCardinality(String)",
	"host String", "host LowCardinality(String)",
	"container String", "container LowCardinality(String)",
	"instance_type String", "instance_type LowCardinality(String)",
	"k8s_object String", "k8s_object LowCardinality(String)",
	"ts DateTime,", "ts DateTime CODEC(DoubleDelta, ZSTD(1)),",
	"profile UInt64", "profile UInt64 CODEC(Delta, ZSTD(1))",
	"stack UInt64,", "stack UInt64 CODEC(ZSTD(1)),",
	"count UInt32", "count UInt32 CODEC(T64, ZSTD(1))",
	"count UInt64", "count UInt64 CODEC(T64, ZSTD(1))",
)

// TestStorageVariantBytesPerSample loads the same synthetic fleet (3 services, 20 hosts, one profile of
// 60 stacks per host and minute for 4 hours: 288,000 sample rows) into the current schema and into the
// variant on ClickHouse 26.5, and reports the bytes on disk per sample row of samples and each rollup.
// It fails if the variant is not smaller in total, or if either schema stops loading on current ClickHouse.
func TestStorageVariantBytesPerSample(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 288,000 rows twice")
	}
	const rows = 4 * 60 * 20 * 60
	sizes := map[string]map[string]float64{}
	for _, db := range []string{"fs_store_current", "fs_store_variant"} {
		ddl, err := schema.Layout{Database: db}.SQL()
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, "DROP DATABASE IF EXISTS "+db)
		t.Cleanup(func() { _ = engine.Exec("DROP DATABASE IF EXISTS " + db) })
		for _, s := range ddl {
			if db == "fs_store_variant" && strings.HasPrefix(s, "CREATE TABLE") {
				s = storageVariant.Replace(s)
			}
			mustExec(t, s)
		}
		// n -> profile p (host, minute); stacks skewed towards a few hot ones, as in a CPU profile.
		mustExec(t, "INSERT INTO "+db+".samples (ts, service, host, container, instance_type, k8s_object, profile, stack, count) "+
			"SELECT toDateTime(1796000000 + intDiv(p, 20) * 60) AS ts, concat('svc-', toString(p % 3)) AS service, "+
			"concat('ip-10-0-', toString(p % 20), '.ec2.internal') AS host, "+
			"['k8s_api_api-7f9c8d6b5-x2x9k_prod_0b1c2d3e-aaaa-bbbb-cccc-0123456789ab_0', 'k8s_worker_worker-5d8f7c9b4-q8w7e_prod_1b1c2d3e-aaaa-bbbb-cccc-0123456789ab_0', ''][1 + s % 3] AS container, "+
			"'m5.large' AS instance_type, '' AS k8s_object, cityHash64(p) AS profile, cityHash64(p % 3, s) AS stack, "+
			"toUInt32(1 + cityHash64(number) % 50) AS count "+
			"FROM (SELECT number, intDiv(number, 60) AS p, intDiv(((number * 2654435761) % 100000) * ((number * 2654435761) % 100000), 500000) AS s "+
			"FROM numbers("+strconv.Itoa(rows)+"))")
		sizes[db] = map[string]float64{}
		for _, tb := range []string{"samples", "samples_1m_all", "totals_1m", "samples_1h", "samples_1h_all", "samples_1d", "samples_1d_all"} {
			mustExec(t, "OPTIMIZE TABLE "+db+"."+tb+" FINAL")
			out, err := engine.Query("SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND database = '"+db+"' AND table = '"+tb+"'", "")
			if err != nil {
				t.Fatal(err)
			}
			b, err := strconv.ParseFloat(strings.TrimSpace(out), 64)
			if err != nil {
				t.Fatalf("%s.%s bytes: %q", db, tb, out)
			}
			sizes[db][tb] = b
		}
	}
	var cur, vari float64
	for _, tb := range []string{"samples", "samples_1m_all", "totals_1m", "samples_1h", "samples_1h_all", "samples_1d", "samples_1d_all"} {
		c, v := sizes["fs_store_current"][tb], sizes["fs_store_variant"][tb]
		cur, vari = cur+c, vari+v
		t.Logf("%-15s current %7.3f B/sample, LowCardinality+codecs %7.3f B/sample (%.0f%%)", tb, c/rows, v/rows, 100*v/c)
	}
	t.Logf("%-15s current %7.3f B/sample, LowCardinality+codecs %7.3f B/sample (%.0f%%)", "all", cur/rows, vari/rows, 100*vari/cur)
	if vari >= cur {
		t.Errorf("the variant takes %.0f bytes, the current schema %.0f: no saving", vari, cur)
	}
}

func mustExec(t *testing.T, sql string) {
	t.Helper()
	if err := engine.Exec(sql); err != nil {
		t.Fatalf("%.200s: %v", sql, err)
	}
}
