package indexer_test

import (
	"context"
	"testing"
	"time"

	"github.com/flamestream/flamestream/indexer"
	"github.com/flamestream/flamestream/internal/chdb"
)

// buildRollupsNow runs the janitor's rollup builder over every bucket (indexer.BuildEverything). Tests
// whose subject is not the builder call it before they compare tables; it only adds what is new.
func buildRollupsNow(t *testing.T, db *chdb.DB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := indexer.BuildEverything(ctx, db); err != nil {
		t.Fatal(err)
	}
}
