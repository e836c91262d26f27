package chcompat

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/flamestream/flamestream/internal/schema"
)

// createSchema creates Flamestream's schema in db on chDB, in the given storage.
func createSchema(t testing.TB, db string, storage schema.Storage) {
	t.Helper()
	createEdited(t, db, storage, nil)
}

// createEdited is createSchema with each statement edited first (when edit is not nil): the benchmark's
// variants of a storage.
func createEdited(t testing.TB, db string, storage schema.Storage, edit func(string) string) {
	t.Helper()
	ddl, err := schema.Layout{Database: db, Storage: storage}.SQL()
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, "DROP DATABASE IF EXISTS "+db)
	t.Cleanup(func() { _ = engine.Exec("DROP DATABASE IF EXISTS " + db) })
	for _, s := range ddl {
		if edit != nil {
			s = edit(s)
		}
		mustExec(t, s)
	}
}

// Variants of the compact storage, for BenchmarkInsertSamples: LowCardinality without codecs, and the
// codecs with LZ4 behind them instead of ZSTD.
var (
	codecClause = regexp.MustCompile(` CODEC\(([^()]|\([^()]*\))*\)`)
	zstdLevel   = regexp.MustCompile(`ZSTD\(\d\)`)
	noCodecs    = func(s string) string { return codecClause.ReplaceAllString(s, "") }
	lz4Codecs   = func(s string) string { return zstdLevel.ReplaceAllString(s, "LZ4") }
	plainTypes  = func(s string) string { return strings.ReplaceAll(s, "LowCardinality(String)", "String") }
)

// TestStoragesHaveTheirTypesAndCodecsOnCurrentClickHouse creates the schema in the codecs storage (what
// Migrate chooses on current ClickHouse) and in the compact one on chDB, and reads the columns back from
// system.columns: every dimension column of every table is LowCardinality(String) in compact and String
// in codecs, the time, id, count, hash and stack text columns have codecs in both (but samples.stack),
// and the migrations and epochs tables are as on 18.16.
func TestStoragesHaveTheirTypesAndCodecsOnCurrentClickHouse(t *testing.T) {
	for _, st := range []schema.Storage{schema.StorageCodecs, schema.StorageCompact} {
		db := "fs_columns_" + st.String()
		createSchema(t, db, st)
		// The tables only: a materialized view's columns are its SELECT's, it stores nothing.
		out, err := engine.Query("SELECT table, name, type, compression_codec FROM system.columns WHERE database = '"+db+"'"+
			" AND table IN (SELECT name FROM system.tables WHERE database = '"+db+"' AND engine LIKE '%MergeTree')", "")
		if err != nil {
			t.Fatal(err)
		}
		dimType := map[schema.Storage]string{schema.StorageCodecs: "String", schema.StorageCompact: "LowCardinality(String)"}[st]
		dims := map[string]bool{"service": true, "host": true, "container": true, "instance_type": true, "k8s_object": true}
		coded := map[string]bool{"ts": true, "profile": true, "stack": true, "count": true, "frames": true, "hash": true}
		var dimCols, codecs int
		for _, line := range SortedLines(out) {
			f := strings.Split(line, "\t")
			if len(f) != 4 {
				t.Fatalf("system.columns row %q", line)
			}
			table, name, typ, codec := f[0], f[1], f[2], f[3]
			switch {
			case table == "schema_migrations" || table == schema.Epochs:
				if typ == "LowCardinality(String)" || codec != "" {
					t.Errorf("%s: %s.%s is %s %s, want 18.16's type", st, table, name, typ, codec)
				}
			case dims[name]:
				if typ != dimType {
					t.Errorf("%s: %s.%s is %s, want %s", st, table, name, typ, dimType)
				}
				dimCols++
			case table == schema.Samples && name == "stack": // LZ4 alone does best there (see schema's codecs)
				if codec != "" {
					t.Errorf("%s: samples.stack has codec %q, want the default", st, codec)
				}
			case coded[name]:
				if !strings.HasPrefix(codec, "CODEC(") || !strings.Contains(codec, "ZSTD") {
					t.Errorf("%s: %s.%s (%s) has codec %q, want one with ZSTD", st, table, name, typ, codec)
				}
				codecs++
			}
		}
		// samples 5 dimensions, 2 rollups and totals 5 each, the other 3 rollups, service_stacks, batches
		// 1 each, host metrics 3 x 3, rollup_builds 1.
		if dimCols != 5*4+3+1+1+9+1 || codecs < 30 {
			t.Errorf("%s: %d dimension columns, %d with codecs: the schema changed, or the storage did not apply", st, dimCols, codecs)
		}
	}
}

// fleet is the SELECT of a synthetic fleet's sample rows: 2,400 hosts in 3 services, one profile of 60
// stacks per host and minute, stacks drawn (skewed towards hot ones, as in a CPU profile) from 50,000
// per service, hosts spread over containers, 4 instance types and 200 Kubernetes objects. Its columns
// are samples' plus s, the stack's number within its service.
func fleet(minutes int) string {
	return "SELECT toDateTime(1796000000 + intDiv(p, 2400) * 60) AS ts, concat('svc-', toString(h % 3)) AS service, " +
		"concat('ip-10-', toString(intDiv(h, 250)), '-', toString(h % 250), '.ec2.internal') AS host, " +
		"concat('k8s_', ['api', 'worker', 'cron'][1 + s % 3], '_', toString(h % 400), '-7f9c8d6b5-x2x9k_prod_0b1c2d3e-aaaa-bbbb-cccc-0123456789ab_0') AS container, " +
		"['m5.large', 'm5.xlarge', 'c5.2xlarge', 'r5.large'][1 + h % 4] AS instance_type, " +
		"concat('prod/deployment/app-', toString(h % 200)) AS k8s_object, cityHash64(p) AS profile, cityHash64(h % 3, s) AS stack, " +
		"toUInt32(1 + cityHash64(number) % 50) AS count, s " +
		"FROM (SELECT number, intDiv(number, 60) AS p, p % 2400 AS h, " +
		"intDiv(((number * 2654435761) % 1000000) * ((number * 2654435761) % 1000000), 20000000) AS s " +
		"FROM numbers(" + strconv.Itoa(minutes*2400*60) + "))"
}

// stackText is the SQL text of stack s of a service: 8 to 23 frames whose prefixes are shared the way a
// call tree shares them (stacks with the same s >> k share their first frames).
const stackText = "arrayStringConcat(arrayMap(i -> concat('pkg', toString(cityHash64(svc, i, bitShiftRight(s, greatest(0, 16 - i))) % 97), " +
	"'/module_', toString(cityHash64(svc, i, bitShiftRight(s, greatest(0, 16 - i))) % 1013), '.py:handler_', " +
	"toString(cityHash64(svc, i, bitShiftRight(s, greatest(0, 16 - i))) % 4999)), range(8 + s % 16)), ';')"

// TestStorageBytesPerSample loads the same synthetic fleet (2,400 hosts, 4 minutes: 576,000 sample rows,
// 100k+ distinct stacks with their texts) into the plain, codecs and compact storages on ClickHouse 26.5
// and reports the bytes on disk per sample row of every table, merged, and of each column of samples and
// stack texts. It fails if a storage with codecs is not smaller in all than the plain one, or if any stops
// loading on current ClickHouse.
// Measured here: 78.5 B/sample plain, 58.5 codecs, 55.1 compact (4 minutes: 576k rows, 139k stacks).
func TestStorageBytesPerSample(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 576k rows three times")
	}
	const minutes = 4
	const rows = minutes * 2400 * 60
	storages := []schema.Storage{schema.StoragePlain, schema.StorageCodecs, schema.StorageCompact}
	sizes := map[schema.Storage]map[string]float64{}
	colSizes := map[schema.Storage]map[string]float64{}
	var tables []string
	for _, st := range storages {
		db := "fs_store_" + st.String()
		createSchema(t, db, st)
		cols := "ts, service, host, container, instance_type, k8s_object, profile, stack, count"
		mustExec(t, "INSERT INTO "+db+".samples ("+cols+") SELECT "+cols+" FROM ("+fleet(minutes)+")")
		mustExec(t, "INSERT INTO "+db+"."+schema.Stacks+" (service, hash, frames) SELECT service, stack, "+stackText+
			" FROM (SELECT DISTINCT service, toUInt64(substring(service, 5)) AS svc, s, stack FROM ("+fleet(minutes)+"))")
		out, err := engine.Query("SELECT name FROM system.tables WHERE database = '"+db+"' AND engine LIKE '%MergeTree'", "")
		if err != nil {
			t.Fatal(err)
		}
		tables = SortedLines(out)
		sizes[st] = map[string]float64{}
		for _, tb := range tables {
			mustExec(t, "OPTIMIZE TABLE "+db+"."+tb+" FINAL")
			out, err := engine.Query("SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND database = '"+db+"' AND table = '"+tb+"'", "")
			if err != nil {
				t.Fatal(err)
			}
			b, err := strconv.ParseFloat(strings.TrimSpace(out), 64)
			if err != nil {
				t.Fatalf("%s.%s bytes: %q", db, tb, out)
			}
			sizes[st][tb] = b
		}
		out, err = engine.Query("SELECT concat(table, '.', name), data_compressed_bytes FROM system.columns WHERE database = '"+db+
			"' AND table IN ('samples', '"+schema.Stacks+"')", "")
		if err != nil {
			t.Fatal(err)
		}
		colSizes[st] = map[string]float64{}
		for _, line := range SortedLines(out) {
			name, b, _ := strings.Cut(line, "\t")
			colSizes[st][name], _ = strconv.ParseFloat(b, 64)
		}
	}
	stacks, err := engine.Query("SELECT count() FROM fs_store_plain."+schema.Stacks, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d sample rows, %s distinct stacks; bytes per sample row:", rows, strings.TrimSpace(stacks))
	t.Logf("%-28s %8s %8s %8s", "", "plain", "codecs", "compact")
	total := map[schema.Storage]float64{}
	line := func(name string, of map[schema.Storage]float64) {
		t.Logf("%-28s %8.3f %8.3f %8.3f", name, of[storages[0]]/rows, of[storages[1]]/rows, of[storages[2]]/rows)
	}
	for _, tb := range tables {
		of := map[schema.Storage]float64{}
		for _, st := range storages {
			of[st] = sizes[st][tb]
			total[st] += of[st]
		}
		if of[schema.StoragePlain] > 0 {
			line(tb, of)
		}
	}
	line("all tables", total)
	for _, name := range slices.Sorted(maps.Keys(colSizes[schema.StoragePlain])) {
		of := map[schema.Storage]float64{}
		for _, st := range storages {
			of[st] = colSizes[st][name]
		}
		line("  "+name, of)
	}
	for _, st := range storages[1:] {
		if total[st] >= total[schema.StoragePlain] {
			t.Errorf("the %s storage takes %.0f bytes, the plain one %.0f: no saving", st, total[st], total[schema.StoragePlain])
		}
	}
}

// sampleBlock is one INSERT into samples as the indexer sends it: profiles of rows each, from a fleet of
// hosts (3 services) whose stacks are drawn, skewed, from 40,000 per service. With lowCard the dimension
// columns are proto.ColLowCardinality (a dictionary built by the client), else proto.ColStr (the
// indexer's columns today, converted by the server).
func sampleBlock(profiles, rows int, lowCard bool) proto.Input {
	rng := rand.New(rand.NewPCG(1, 2))
	var (
		ts             proto.ColDateTime
		profile, stack proto.ColUInt64
		count          proto.ColUInt32
	)
	dims := make([]proto.ColumnOf[string], 5)
	for i := range dims {
		if lowCard {
			dims[i] = proto.NewLowCardinality[string](new(proto.ColStr))
		} else {
			dims[i] = new(proto.ColStr)
		}
	}
	zipf := rand.NewZipf(rng, 1.1, 8, 39_999)
	at := time.Unix(1796000000, 0)
	for p := range profiles {
		h := rng.IntN(3000)
		svc := h % 3
		id := rng.Uint64()
		values := []string{"svc-" + strconv.Itoa(svc), fmt.Sprintf("ip-10-%d-%d.ec2.internal", h/250, h%250),
			fmt.Sprintf("k8s_api_%d-7f9c8d6b5-x2x9k_prod_0b1c2d3e-aaaa-bbbb-cccc-0123456789ab_0", h%400),
			[]string{"m5.large", "m5.xlarge", "c5.2xlarge", "r5.large"}[h%4], "prod/deployment/app-" + strconv.Itoa(h%200)}
		for range rows {
			ts.Append(at.Add(time.Duration(p%60) * time.Second))
			for i, d := range dims {
				d.Append(values[i])
			}
			profile.Append(id)
			stack.Append(uint64(svc)<<32 | zipf.Uint64())
			count.Append(uint32(1 + rng.IntN(50)))
		}
	}
	in := proto.Input{{Name: "ts", Data: &ts}}
	for i, name := range []string{"service", "host", "container", "instance_type", "k8s_object"} {
		in = append(in, proto.InputColumn{Name: name, Data: dims[i]})
	}
	return append(in, proto.InputColumn{Name: "profile", Data: &profile}, proto.InputColumn{Name: "stack", Data: &stack},
		proto.InputColumn{Name: "count", Data: &count})
}

// nativeFile writes in as a file in ClickHouse's Native format, as ch-go encodes a block on the wire
// (without the protocol's block info). An INSERT ... FROM INFILE ... FORMAT Native reads it with the
// server's NativeReader against the table's header, as the TCP interface reads an INSERT's block: a
// String column for a LowCardinality one is converted there in both cases.
func nativeFile(t testing.TB, in proto.Input) string {
	t.Helper()
	var buf proto.Buffer
	if err := (proto.Block{Columns: len(in), Rows: in[0].Data.Rows()}).EncodeRawBlock(&buf, 0, in); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "block.native")
	if err := os.WriteFile(path, buf.Buf, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// rollupRows reads every rollup of db summed per key, and samples.
func rollupRows(t testing.TB, db string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, r := range schema.Rollups {
		sql := "SELECT ts, " + r.Keys() + ", sum(count) FROM " + db + "." + r.Table + " GROUP BY ts, " + r.Keys()
		got, err := engine.Query(sql, "")
		if err != nil {
			t.Fatal(err)
		}
		out[r.Table] = SortedLines(got)
	}
	got, err := engine.Query("SELECT * FROM "+db+".samples", "")
	if err != nil {
		t.Fatal(err)
	}
	out["samples"] = SortedLines(got)
	return out
}

// The indexer's block (String columns, or a client-built LowCardinality dictionary) inserted into the
// compact storage fills samples and every rollup with the rows the same block gives the plain storage,
// and the rollups' repair SELECTs (schema.Rollups) give the views' rows on the compact tables.
func TestIndexerBlocksFillCompactTablesAsPlainOnes(t *testing.T) {
	createSchema(t, "fs_ins_plain", schema.StoragePlain)
	createSchema(t, "fs_ins_compact", schema.StorageCompact)
	str, lc := nativeFile(t, sampleBlock(20, 50, false)), nativeFile(t, sampleBlock(20, 50, true))
	mustExec(t, "INSERT INTO fs_ins_plain.samples FROM INFILE '"+str+"' FORMAT Native")
	want := rollupRows(t, "fs_ins_plain")
	if len(want["samples"]) != 1000 {
		t.Fatalf("plain samples hold %d rows, want 1000", len(want["samples"]))
	}
	for _, file := range []string{str, lc} {
		mustExec(t, "TRUNCATE TABLE fs_ins_compact.samples")
		for _, r := range schema.Rollups {
			mustExec(t, "TRUNCATE TABLE fs_ins_compact."+r.Table)
		}
		mustExec(t, "INSERT INTO fs_ins_compact.samples FROM INFILE '"+file+"' FORMAT Native")
		got := rollupRows(t, "fs_ins_compact")
		for name, w := range want {
			if !slices.Equal(w, got[name]) {
				t.Errorf("%s: %s differs: plain %d rows, compact %d rows", filepath.Base(file), name, len(w), len(got[name]))
			}
		}
		// The repair writes what the view wrote: its SELECT over the compact samples answers the view's rows.
		for _, r := range schema.Rollups {
			sql := "SELECT ts, " + r.Keys() + ", count FROM (" + r.Query("fs_ins_compact.samples") + ")"
			rows, err := engine.Query(sql, "")
			if err != nil {
				t.Fatalf("repair SELECT of %s on compact tables: %v", r.Table, err)
			}
			if !slices.Equal(SortedLines(rows), want[r.Table]) {
				t.Errorf("repair SELECT of %s answers other rows than the view wrote", r.Table)
			}
		}
	}
}

// BenchmarkInsertSamples measures one INSERT into samples, with its six materialized views, on ClickHouse
// 26.5 in this process: an op is one indexer batch (256 profiles of 60 stacks, or 32 of 2,000) read from a
// Native file. cpu-ms/op is this process's user+system CPU during the inserts (chDB's threads: parsing,
// the views' grouping and sorting, compression), the figure issue 15 counts; merge-cpu-ms/op is the CPU
// of merging what the ops wrote, afterwards; the wall time is ns/op. plain: today's tables; compact/str: the compact storage fed
// String columns (the indexer today); compact-lc: fed LowCardinality columns built by the client;
// lowcard-only: LowCardinality without codecs; compact-lz4: the codecs with LZ4 behind them, not ZSTD.
func BenchmarkInsertSamples(b *testing.B) {
	for _, shape := range []struct {
		name           string
		profiles, rows int
	}{{"60x256", 256, 60}, {"2000x32", 32, 2000}} {
		for _, v := range []struct {
			name    string
			storage schema.Storage
			edit    func(string) string
			lowCard bool
		}{
			{"plain", schema.StoragePlain, nil, false},
			{"lowcard-only", schema.StorageCompact, noCodecs, false},
			{"codecs-only", schema.StorageCompact, plainTypes, false},
			{"compact-lz4", schema.StorageCompact, lz4Codecs, false},
			{"compact-str", schema.StorageCompact, nil, false},
			{"compact-lc", schema.StorageCompact, nil, true},
		} {
			b.Run(shape.name+"/"+v.name, func(b *testing.B) {
				db := "fs_bench_" + strings.ReplaceAll(v.name, "-", "_")
				createEdited(b, db, v.storage, v.edit)
				file := nativeFile(b, sampleBlock(shape.profiles, shape.rows, v.lowCard))
				sql := "INSERT INTO " + db + ".samples FROM INFILE '" + file + "' FORMAT Native"
				mustExec(b, sql) // first parts, caches
				out, err := engine.Query("SELECT name FROM system.tables WHERE database = '"+db+"' AND engine LIKE '%MergeTree'", "")
				if err != nil {
					b.Fatal(err)
				}
				tables := SortedLines(out)
				// Background merges would land in whichever op they happen to run beside: they are stopped
				// while the inserts run, and all of them done at the end as one OPTIMIZE ... FINAL per table,
				// measured apart (merge-cpu-ms/op, the merge work of one op's rows).
				for _, tb := range tables {
					mustExec(b, "SYSTEM STOP MERGES "+db+"."+tb)
				}
				before := cpuTime()
				b.ResetTimer()
				for range b.N {
					mustExec(b, sql)
				}
				b.StopTimer()
				cpu := cpuTime() - before
				before = cpuTime()
				for _, tb := range tables {
					mustExec(b, "SYSTEM START MERGES "+db+"."+tb)
					mustExec(b, "OPTIMIZE TABLE "+db+"."+tb+" FINAL")
				}
				merge := cpuTime() - before
				b.ReportMetric(float64(cpu.Microseconds())/1e3/float64(b.N), "cpu-ms/op")
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*shape.profiles*shape.rows), "cpu-ns/row")
				b.ReportMetric(float64(merge.Microseconds())/1e3/float64(b.N), "merge-cpu-ms/op")
			})
		}
	}
}

// cpuTime is this process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func mustExec(t testing.TB, sql string) {
	t.Helper()
	if err := engine.Exec(sql); err != nil {
		t.Fatalf("%.300s: %v", sql, err)
	}
}
