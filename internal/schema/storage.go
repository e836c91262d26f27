package schema

import (
	"fmt"
	"strings"
)

// Storage is how the tables store their columns. The logical schema (names, columns, sort keys,
// partitions, views) is the same in every storage; only the column types and codecs differ.
//
// On current ClickHouse, StorageCompact declares the dimension columns LowCardinality(String) (a
// dictionary per part: the materialized views group and sort them by dictionary position instead of
// hashing and comparing strings, and they take almost no space) and gives the columns codecs that
// suit them. ClickHouse 18.16 has neither at its default settings, so it gets StoragePlain, today's DDL
// letter for letter.
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
	}
	return fmt.Sprintf("Storage(%d)", int(s))
}

// ParseStorage reads a storage name: auto, plain or compact.
func ParseStorage(name string) (Storage, error) {
	for _, s := range []Storage{StorageAuto, StoragePlain, StorageCompact} {
		if s.String() == name {
			return s, nil
		}
	}
	return 0, fmt.Errorf("storage %q: want auto, plain or compact", name)
}

// StorageFor is the storage a server of version major.minor supports at its default settings:
// StorageCompact from 20.3 on (LowCardinality is no longer experimental there, and every codec used here,
// T64 the latest of them, exists), StoragePlain before. A version of 0.0 (unknown) is StoragePlain.
func StorageFor(major, minor int) Storage {
	if major > 20 || (major == 20 && minor >= 3) {
		return StorageCompact
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
	if s != StorageCompact {
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
		if lowCardinality[name] && typ == "String" {
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
