package indexer_test

import (
	"context"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/schema"
)

// buildRollupsNow completes the built rollups (schema.Built: samples_1h, samples_1d) of every service over
// every day its source holds, at once, with their delta statements: what the janitor's builder does bucket by
// bucket once they are closed. Tests whose subject is not the builder call it before they compare tables;
// the delta is convergent, so calling it again only adds what is new.
func buildRollupsNow(t *testing.T, db *chdb.DB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	day := 24 * time.Hour
	for _, b := range schema.Built {
		var svc proto.ColStr
		var lo, hi proto.ColUInt32
		err := db.Do(ctx, ch.Query{
			Body: "SELECT service, toUInt32(min(ts)) AS lo, toUInt32(max(ts)) AS hi FROM " + db.Table(b.Source) +
				" WHERE service != " + chdb.String(schema.MarkerService) + " GROUP BY service",
			Result: proto.Results{{Name: "service", Data: &svc}, {Name: "lo", Data: &lo}, {Name: "hi", Data: &hi}},
		})
		if err != nil {
			t.Fatalf("build %s: %v", b.Table, err)
		}
		for i := 0; i < svc.Rows(); i++ {
			from := time.Unix(int64(lo[i]), 0).UTC().Truncate(day)
			to := time.Unix(int64(hi[i]), 0).UTC().Truncate(day).Add(day)
			if err := db.Exec(ctx, "INSERT INTO "+db.Table(b.Table)+" (ts, "+b.Keys()+", count) "+
				b.DeltaQuery(db.Table, svc.Row(i), from, to)); err != nil {
				t.Fatalf("build %s of %s: %v", b.Table, svc.Row(i), err)
			}
		}
	}
}
