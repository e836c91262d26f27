package schema

import (
	"fmt"
	"strings"
)

// Storage is how the tables store their columns. The logical schema (names, columns, sort keys,
// partitions, views) is the same in every storage; only the column types and codecs differ.
//
// On current ClickHouse, StorageCodecs gives the columns codecs that suit them, and StorageCompact
// also declares the dimension columns LowCardinality(String) (a dictionary per part: they take almost no
// space, but inserts cost more CPU; see StorageFor). ClickHouse 18.16 has neither at its default
// settings, so it gets StoragePlain, today's DDL letter for letter.
//
// Clients need no change for LowCardinality: chdb.Open asks current servers to send those columns as
// String (low_cardinality_allow_in_native_format = 0), so readers keep reading proto.ColStr, and a
// String column sent in an INSERT is converted by the server into the table's LowCardinality column.
type Storage int

// The storages.
const (
	// StorageAuto is the storage the server supports, when Migrate runs; without a server (Layout.SQL),
	// StoragePlain.
	StorageAuto Storage = iota
	// StoragePlain is the storage of ClickHouse 18.16: String, and the server's default compression.
	StoragePlain
	// StorageCompact adds LowCardinality(String) and column codecs (ClickHouse 20.3 and later).
	StorageCompact
	// StorageCodecs adds the column codecs only: the dimension columns stay String.
	StorageCodecs
)

// String names the storage as the migrate command's -storage flag does.
func (s Storage) String() string {
	switch s {
	case StorageAuto:
		return "auto"
	case StoragePlain:
		return "plain"
	case StorageCompact:
		return "compact"
	case StorageCodecs:
		return "codecs"
	}
	return fmt.Sprintf("Storage(%d)", int(s))
}

// ParseStorage reads a storage name: auto, plain, codecs or compact.
func ParseStorage(name string) (Storage, error) {
	for _, s := range []Storage{StorageAuto, StoragePlain, StorageCodecs, StorageCompact} {
		if s.String() == name {
			return s, nil
		}
	}
	return 0, fmt.Errorf("storage %q: want auto, plain, codecs or compact", name)
}

// StorageFor is the storage Migrate chooses for a server of version major.minor: StorageCodecs from 20.3
// on (every codec used here, T64 the latest of them, exists there, and LowCardinality is no longer
// experimental), StoragePlain before. A version of 0.0 (unknown) is StoragePlain.
//
// Not StorageCompact, although the server supports it: on ClickHouse 26.5 (chDB, BenchmarkInsertSamples
// in internal/chcompat) LowCardinality dimensions made the indexer's INSERT into samples and its six
// views cost 40-60% more CPU (60-line profiles, 256 a batch: 225-240 ms against 150 ms a batch; 2,000
// lines, 32 a batch: 560 against 390 ms; and a quarter more to merge; codecs alone cost nothing
// measurable), while they save 3.4 bytes per sample row more than the codecs alone (the
// fleet of TestStorageBytesPerSample: 78.5 B plain, 58.5 codecs, 55.1 compact, all tables). Not
// profiled; likely because the views' GROUP BY keys are short strings, which hash about as fast as
// dictionary positions are looked up, while every block and part written builds dictionaries. One to whom
// disk matters more than CPU chooses compact with `flamestream migrate --storage compact`.
func StorageFor(major, minor int) Storage {
	if major > 20 || (major == 20 && minor >= 3) {
		return StorageCodecs
	}
	return StoragePlain
}

// lowCardinality are the columns with few distinct values (services, hosts, containers, instance types,
// Kubernetes objects: thousands at most, repeated on millions of rows) that StorageCompact declares
// LowCardinality(String), in every table that has them.
var lowCardinality = map[string]bool{"service": true, "host": true, "container": true, "instance_type": true, "k8s_object": true}

// codecs are the codecs StorageCompact gives a column, by its name and plain type. What each pays was
// measured on chDB with a fleet-shaped data set (internal/chcompat, TestStorageBytesPerSample):
//   - ts: sorted within a (service, host) or (service, dims) run, so its deltas are mostly 0 or 60:
//     DoubleDelta leaves almost nothing for ZSTD.
//   - profile: one value over a profile's adjacent rows: Delta turns the run into zeros.
//   - stack and hash: 64-bit hashes, random, but ascending within a sort-key run: Delta leaves smaller
//     numbers for ZSTD in the rollups and stack tables (-4% to -11%). Not in samples, whose runs are a
//     profile's few stacks of one container: there LZ4 alone did best (7.8 B/row, 8.0 with Delta+ZSTD).
//   - count: small integers in a wide type: T64 cuts the unused high bits.
//   - frames: stack texts, long and alike (shared prefixes): ZSTD beats LZ4 by far.
var codecs = map[string]string{
	"ts DateTime":     "CODEC(DoubleDelta, ZSTD(1))",
	"profile UInt64":  "CODEC(Delta, ZSTD(1))",
	"batch UInt64":    "CODEC(Delta, ZSTD(1))",
	"stack UInt64":    "CODEC(Delta, ZSTD(1))",
	"hash UInt64":     "CODEC(Delta, ZSTD(1))",
	"count UInt32":    "CODEC(T64, ZSTD(1))",
	"count UInt64":    "CODEC(T64, ZSTD(1))",
	"n UInt64":        "CODEC(T64, ZSTD(1))",
	"total UInt64":    "CODEC(T64, ZSTD(1))",
	"cores UInt32":    "CODEC(T64, ZSTD(1))",
	"frames String":   "CODEC(ZSTD(3))",
	"cpu Float64":     "CODEC(Gorilla, ZSTD(1))",
	"mem Float64":     "CODEC(Gorilla, ZSTD(1))",
	"cpu_sum Float64": "CODEC(Gorilla, ZSTD(1))",
	"mem_sum Float64": "CODEC(Gorilla, ZSTD(1))",
}

// plainCodec are the columns that keep the server's default codec in one table although codecs gives
// them another elsewhere.
var plainCodec = map[string]string{Samples: "stack UInt64"}

// columns returns t's column list in storage s. Plain storage returns it unchanged; a column with a
// DEFAULT (schema_migrations.applied_at) is always left as it is.
func (s Storage) columns(t table) string {
	if s != StorageCompact && s != StorageCodecs {
		return t.columns
	}
	defs := strings.Split(t.columns, ", ")
	for i, d := range defs {
		name, typ, ok := strings.Cut(d, " ")
		if !ok || strings.Contains(typ, " ") {
			continue
		}
		codec := codecs[d]
		if plainCodec[t.name] == d {
			codec = ""
		}
		if s == StorageCompact && lowCardinality[name] && typ == "String" {
			// LowCardinality keeps its dictionary and positions compressed with the default codec.
			typ, codec = "LowCardinality(String)", ""
		}
		defs[i] = name + " " + typ
		if codec != "" {
			defs[i] += " " + codec
		}
	}
	return strings.Join(defs, ", ")
}
