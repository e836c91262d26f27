package indexer_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/flamestream/flamestream/indexer"
	"github.com/flamestream/flamestream/internal/chdb"
)

// buildRollupsNow runs the janitor's rollup builder (samples_1h, samples_1d) as it will run once every
// bucket is closed, its clock moved two days on, until it finds nothing left. Tests whose subject is not
// the builder call it before they compare tables; it only adds what is new.
func buildRollupsNow(t *testing.T, db *chdb.DB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	j := indexer.NewJanitor(db, indexer.Retention{}, slog.New(slog.DiscardHandler))
	j.Now = func() time.Time { return time.Now().Add(48 * time.Hour) }
	for range 10 {
		res, err := j.BuildRollups(ctx)
		if err != nil {
			t.Fatalf("build the rollups: %v", err)
		}
		if res.Found == 0 {
			return
		}
	}
	t.Fatal("the builder still found work after 10 runs")
}
