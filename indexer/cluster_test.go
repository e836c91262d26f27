package indexer_test

import (
	"context"
	"github.com/ClickHouse/ch-go/proto"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/schema"
	"github.com/flamestream/flamestream/internal/testenv"
)

// TestClusterSchemaRoutesInsertsThroughDistributedTablesIntoShardRollups runs the cluster variant on the
// local server's one-shard test cluster. Without ZooKeeper there is no ON CLUSTER DDL nor replication, so
// those two parts are taken out and the Replicated engines become their plain twins; what remains (the
// Distributed tables over the _local ones and the views between local tables) runs as generated.
func TestClusterSchemaRoutesInsertsThroughDistributedTablesIntoShardRollups(t *testing.T) {
	cfg := testenv.Servers(t)
	ctx := context.Background()
	db, err := chdb.Open(ctx, chdb.Options{Addr: cfg.ClickHouseAddr, User: cfg.ClickHouseUser,
		Password: cfg.ClickHousePassword, Database: testenv.Name("fs_test_cluster")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = db.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db.Database)
		db.Close()
	})
	const cluster = "test_shard_localhost"
	stmts, err := schema.Layout{Database: db.Database, Cluster: cluster}.SQL()
	if err != nil {
		t.Fatal(err)
	}
	replicated := regexp.MustCompile(`ENGINE = Replicated(\w+)\('[^']*', '\{replica\}'(?:, (\w+|\([^)]*\)))?\)`)
	for _, s := range stmts {
		s = strings.ReplaceAll(s, " ON CLUSTER "+cluster, "")
		s = replicated.ReplaceAllString(s, "ENGINE = $1($2)")
		if err := db.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	// Schema step 7's epochs of the built rollups (Migrate records them; the statements alone do not).
	name, since := new(proto.ColStr), proto.ColDateTime{}
	for _, b := range schema.Built {
		name.Append(schema.BuiltEpoch(b.Table))
		since.Append(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC))
	}
	if err := db.Insert(ctx, schema.Epochs, proto.Input{{Name: "name", Data: name}, {Name: "since", Data: &since}}); err != nil {
		t.Fatal(err)
	}
	insertSamples(t, db, "svc", 7, []time.Time{time.Now().Add(-time.Hour), time.Now()}, 5)
	deadline := time.Now().Add(20 * time.Second)
	for {
		fp := fingerprintOf(t, db, "svc")
		done := true
		for _, tb := range tables {
			if fp[tb][0] != 10 {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("through the distributed tables: %v, want 10 samples in every table", fp)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
