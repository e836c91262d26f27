package indexer

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"
	"github.com/cespare/xxhash/v2"

	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/config"
	"github.com/flamestream/flamestream/internal/demo"
	"github.com/flamestream/flamestream/internal/profile"
	"github.com/flamestream/flamestream/internal/schema"
	"github.com/flamestream/flamestream/stream"
)

// originalSchema is the original system's samples table (contracts/original-system.md): one row per
// prefix node of every profile's call tree. On ClickHouse 18.16 LowCardinality and the ZSTD codec of
// CallStackName do not exist (String and the server's default LZ4 instead), and xxHash32 is murmurHash2_32.
const originalSchema = `CREATE TABLE %s.original_samples (
	Timestamp DateTime, ServiceId UInt32, InstanceType String, ContainerEnvName String, HostName String,
	ContainerName String, NumSamples UInt32, CallStackHash UInt64,
	HostNameHash UInt32 MATERIALIZED murmurHash2_32(HostName),
	ContainerNameHash UInt32 MATERIALIZED murmurHash2_32(ContainerName),
	CallStackName String, CallStackParent UInt64, InsertionTimestamp DateTime, ErrNumSamples UInt32
) ENGINE = MergeTree PARTITION BY toYYYYMMDD(Timestamp)
ORDER BY (ServiceId, InstanceType, ContainerEnvName, HostNameHash, ContainerNameHash, Timestamp)`

// originalRows builds the original indexer's prefix-node rows of profiles.
type originalRows struct {
	ts, inserted                      proto.ColDateTime
	service, errs, num                proto.ColUInt32
	itype, k8s, host, container, name proto.ColStr
	hash, parent                      proto.ColUInt64
}

func (o *originalRows) input() proto.Input {
	return proto.Input{
		{Name: "Timestamp", Data: &o.ts}, {Name: "ServiceId", Data: &o.service}, {Name: "InstanceType", Data: &o.itype},
		{Name: "ContainerEnvName", Data: &o.k8s}, {Name: "HostName", Data: &o.host}, {Name: "ContainerName", Data: &o.container},
		{Name: "NumSamples", Data: &o.num}, {Name: "CallStackHash", Data: &o.hash}, {Name: "CallStackName", Data: &o.name},
		{Name: "CallStackParent", Data: &o.parent}, {Name: "InsertionTimestamp", Data: &o.inserted}, {Name: "ErrNumSamples", Data: &o.errs},
	}
}

// add appends one profile: per container, one row per distinct prefix of its stacks with the sum of the
// counts through it. A node's hash chains its parent's hash and its frame, which identifies the prefix as
// the original's hash of the joined frames does, at the same 8 bytes a row.
func (o *originalRows) add(agg *profile.Aggregate, ev stream.Event) int {
	type key struct {
		container string
		hash      uint64
	}
	type node struct {
		parent uint64
		name   []byte
		count  uint64
	}
	nodes := map[key]*node{}
	var order []key
	var buf [8]byte
	for _, e := range agg.Entries() {
		text, _ := agg.Stack(e.Hash)
		parent := uint64(0)
		for len(text) > 0 {
			i := bytes.IndexByte(text, ';')
			frame := text
			if i >= 0 {
				frame, text = text[:i], text[i+1:]
			} else {
				text = nil
			}
			binary.LittleEndian.PutUint64(buf[:], parent)
			d := xxhash.New()
			_, _ = d.Write(buf[:])
			_, _ = d.Write(frame)
			h := d.Sum64()
			k := key{e.Container, h}
			n, ok := nodes[k]
			if !ok {
				n = &node{parent: parent, name: frame}
				nodes[k] = n
				order = append(order, k)
			}
			n.count += e.Count
			parent = h
		}
	}
	for _, k := range order {
		n := nodes[k]
		c, k8s := profile.ContainerInfo(k.container)
		o.ts.Append(ev.Start)
		o.service.Append(1)
		o.itype.Append(ev.InstanceType)
		o.k8s.Append(k8s)
		o.host.Append(ev.Host)
		o.container.Append(c)
		o.num.Append(uint32(n.count))
		o.hash.Append(k.hash)
		o.name.AppendBytes(n.name)
		o.parent.Append(n.parent)
		o.inserted.Append(ev.Start.Add(2 * time.Minute))
		o.errs.Append(0)
	}
	return len(order)
}

func (o *originalRows) reset() {
	for _, c := range o.input() {
		c.Data.(proto.Resettable).Reset()
	}
}

// TestStorageFootprint loads the same demo profiles into Flamestream's schema and the original's
// prefix-node table and prints the compressed bytes per sample of each table. It is a bench command:
//
//	FLAMESTREAM_STORAGE_BENCH=1 go test -run TestStorageFootprint -v -timeout 30m ./indexer/
//
// FLAMESTREAM_STORAGE_PROFILES (default 2000) sets the number of profiles, from 20 hosts.
func TestStorageFootprint(t *testing.T) {
	if os.Getenv("FLAMESTREAM_STORAGE_BENCH") == "" {
		t.Skip("bench command: set FLAMESTREAM_STORAGE_BENCH=1")
	}
	nProfiles := 2000
	if s := os.Getenv("FLAMESTREAM_STORAGE_PROFILES"); s != "" {
		nProfiles, _ = strconv.Atoi(s)
	}
	cfg := config.Defaults()
	if c, err := net.DialTimeout("tcp", cfg.ClickHouseAddr, time.Second); err != nil {
		t.Skip("ClickHouse not running")
	} else {
		c.Close()
	}
	ctx := context.Background()
	db, err := chdb.Open(ctx, chdb.Options{Addr: cfg.ClickHouseAddr, User: cfg.ClickHouseUser, Password: cfg.ClickHousePassword,
		Database: fmt.Sprintf("fs_storage_%d", time.Now().UnixNano()%1e9)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if os.Getenv("FLAMESTREAM_STORAGE_KEEP") == "" {
			_ = db.Exec(ctx, "DROP DATABASE IF EXISTS "+db.Database)
		}
		db.Close()
	}()
	if _, err := schema.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := db.Exec(ctx, fmt.Sprintf(originalSchema, db.Database)); err != nil {
		t.Fatal(err)
	}

	ix := New(Config{}, db, nil, nil, nil, slog.New(slog.DiscardHandler), nil)
	fleet := demo.NewFleet(11, "storage", demo.DefaultShape)
	rng := rand.New(rand.NewPCG(5, 6))
	start := time.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
	var orig originalRows
	var samples uint64
	var rows, origRows int
	const batch = 20
	items := make([]*item, 0, batch)
	for i := 0; i < nProfiles; i += batch {
		items = items[:0]
		orig.reset()
		for j := i; j < min(i+batch, nProfiles); j++ {
			host := fmt.Sprintf("host-%02d", j%20)
			ev := stream.Event{Service: "storage", Host: host, InstanceType: "m5.xlarge",
				Start: start.Add(time.Duration(j/20) * time.Minute)}
			agg, err := ix.parse(ev, demo.NewUpload(fleet.Profile(rng, host, "m5.xlarge"), host, ev.Start, "").Gzip())
			if err != nil {
				t.Fatal(err)
			}
			samples += agg.Samples()
			origRows += orig.add(agg, ev)
			items = append(items, &item{agg: agg, ev: ev, id: uint64(j + 1)})
		}
		n, err := ix.write(ctx, newLane(), items)
		if err != nil {
			t.Fatal(err)
		}
		rows += n
		if err := db.Insert(ctx, "original_samples", orig.input()); err != nil {
			t.Fatal(err)
		}
	}
	tables := []string{"samples", "stacks", "service_stacks", "samples_1h", "samples_1h_all", "samples_1d", "samples_1d_all", "totals_1m", "original_samples"}
	for _, tb := range tables {
		if err := db.Exec(ctx, "OPTIMIZE TABLE "+db.Table(tb)+" FINAL"); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d profiles from 20 hosts, %d samples (sum of counts), %d sample rows, %d original prefix-node rows", nProfiles, samples, rows, origRows)
	t.Logf("%-18s %12s %14s %12s %10s", "table", "rows", "compressed B", "B/row", "B/sample")
	var bytesCol, rowsCol proto.ColUInt64
	var name proto.ColStr
	err = db.Do(ctx, ch.Query{
		Body: "SELECT table, toUInt64(sum(rows)) AS r, toUInt64(sum(data_compressed_bytes)) AS b FROM system.parts WHERE active AND database = " +
			chdb.String(db.Database) + " GROUP BY table ORDER BY table",
		Result: proto.Results{{Name: "table", Data: &name}, {Name: "r", Data: &rowsCol}, {Name: "b", Data: &bytesCol}},
		OnResult: func(ctx context.Context, b proto.Block) error {
			for i := 0; i < name.Rows(); i++ {
				r, by := rowsCol[i], bytesCol[i]
				t.Logf("%-18s %12d %14d %12.2f %10.3f", name.Row(i), r, by, float64(by)/float64(max(r, 1)), float64(by)/float64(samples))
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
}
