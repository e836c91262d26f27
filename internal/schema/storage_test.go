package schema

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestStorageForChoosesCodecsOnServersThatHaveThem(t *testing.T) {
	for _, tt := range []struct {
		major, minor int
		want         Storage
	}{
		{0, 0, StoragePlain}, {18, 16, StoragePlain}, {19, 17, StoragePlain}, {20, 1, StoragePlain},
		{20, 3, StorageCodecs}, {21, 8, StorageCodecs}, {25, 8, StorageCodecs}, {26, 5, StorageCodecs},
	} {
		if got := StorageFor(tt.major, tt.minor); got != tt.want {
			t.Errorf("StorageFor(%d, %d) = %v, want %v", tt.major, tt.minor, got, tt.want)
		}
	}
}

func TestParseStorageReadsEveryNameAndRefusesOthers(t *testing.T) {
	for _, s := range []Storage{StorageAuto, StoragePlain, StorageCodecs, StorageCompact} {
		got, err := ParseStorage(s.String())
		if err != nil || got != s {
			t.Errorf("ParseStorage(%q) = %v, %v", s.String(), got, err)
		}
	}
	if _, err := ParseStorage("lowcard"); err == nil {
		t.Error("ParseStorage accepted lowcard")
	}
}

// Without a server, the schema is 18.16's, letter for letter (what TestSingleServerSchema... checks).
func TestSchemaWithoutAServerIsPlain(t *testing.T) {
	auto, _ := Layout{Database: "fs"}.SQL()
	plain, _ := Layout{Database: "fs", Storage: StoragePlain}.SQL()
	if !slices.Equal(auto, plain) {
		t.Errorf("auto storage without a server differs from plain:\n%s\n%s", strings.Join(auto, "\n"), strings.Join(plain, "\n"))
	}
	for _, s := range plain {
		if strings.Contains(s, "LowCardinality") || strings.Contains(s, "CODEC") {
			t.Errorf("plain statement uses what 18.16 lacks: %s", s)
		}
	}
}

var codecClause = regexp.MustCompile(` CODEC\([^()]*(\([^()]*\)[^()]*)*\)`)

// The compact storage changes column types and codecs only: without them, every statement is the plain
// one, in the same order (names, sort keys, partitions, engines and views stay), in both layouts.
func TestCompactStorageKeepsTheLogicalSchema(t *testing.T) {
	for _, tt := range []struct {
		cluster string
		storage Storage
	}{{"", StorageCompact}, {"prod", StorageCompact}, {"", StorageCodecs}, {"prod", StorageCodecs}} {
		cluster := tt.cluster
		plain, _ := Layout{Database: "fs", Cluster: cluster, Storage: StoragePlain}.SQL()
		compact, _ := Layout{Database: "fs", Cluster: cluster, Storage: tt.storage}.SQL()
		if tt.storage == StorageCodecs && strings.Contains(strings.Join(compact, "\n"), "LowCardinality") {
			t.Error("the codecs storage declares LowCardinality columns")
		}
		if len(plain) != len(compact) {
			t.Fatalf("cluster %q: %d plain statements, %d compact", cluster, len(plain), len(compact))
		}
		changed := 0
		for i := range plain {
			back := strings.ReplaceAll(codecClause.ReplaceAllString(compact[i], ""), "LowCardinality(String)", "String")
			if back != plain[i] {
				t.Errorf("cluster %q: compact statement is more than types and codecs:\n%s\n%s", cluster, compact[i], plain[i])
			}
			if compact[i] != plain[i] {
				changed++
			}
			if strings.HasPrefix(plain[i], "CREATE MATERIALIZED VIEW") && compact[i] != plain[i] {
				t.Errorf("view changed: %s", compact[i])
			}
		}
		if changed == 0 {
			t.Errorf("cluster %q: compact storage changed nothing", cluster)
		}
	}
}

func TestCompactStorageDeclaresDimensionsLowCardinalityAndCodecs(t *testing.T) {
	stmts, _ := Layout{Database: "fs", Storage: StorageCompact}.SQL()
	for _, w := range []string{
		"CREATE TABLE IF NOT EXISTS fs.samples (ts DateTime CODEC(DoubleDelta, ZSTD(1)), service LowCardinality(String), host LowCardinality(String), container LowCardinality(String), instance_type LowCardinality(String), k8s_object LowCardinality(String), profile UInt64 CODEC(Delta, ZSTD(1)), stack UInt64, count UInt32 CODEC(T64, ZSTD(1))) ENGINE = MergeTree PARTITION BY toYYYYMMDD(ts) ORDER BY (service, host, ts, container, stack)",
		"CREATE TABLE IF NOT EXISTS fs.service_stacks (service LowCardinality(String), hash UInt64 CODEC(Delta, ZSTD(1)), frames String CODEC(ZSTD(3))) ENGINE = ReplacingMergeTree ORDER BY (service, hash)",
		"CREATE TABLE IF NOT EXISTS fs.schema_migrations (version UInt32, name String, applied_at DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY (version)",
		"CREATE TABLE IF NOT EXISTS fs.rollup_epochs (name String, since DateTime) ENGINE = ReplacingMergeTree ORDER BY (name)",
	} {
		if !slices.Contains(stmts, w) {
			t.Errorf("compact schema lacks\n%s\ngot:\n%s", w, strings.Join(stmts, "\n"))
		}
	}
	// Every dimension column of every table is LowCardinality.
	for _, s := range stmts {
		for dim := range lowCardinality {
			if strings.Contains(s, " "+dim+" String") || strings.Contains(s, "("+dim+" String") {
				t.Errorf("%s stays String: %s", dim, s)
			}
		}
	}
}
