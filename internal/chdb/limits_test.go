package chdb_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/testenv"
)

// newCutter is a fault proxy without a planned fault: it forwards, counts and cuts connections.
func newCutter(t *testing.T, target string) *faultProxy { return newFaultProxy(t, target) }

// TestDoLimitedKeepsLimitsOnConnectionsOfTheirOwn runs limited queries through a proxy that counts and cuts
// connections: the limits hold on every reused connection, never reach the main pool or other limits,
// connections are reused instead of dialled per query, and a kept connection that was cut is replaced.
func TestDoLimitedKeepsLimitsOnConnectionsOfTheirOwn(t *testing.T) {
	cfg := testenv.Servers(t)
	proxy := newCutter(t, cfg.ClickHouseAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	db := openAt(t, ctx, proxy.ln.Addr().String(), chdb.Options{MaxConns: 2})
	rows := func(n int) ch.Query {
		var col proto.ColUInt64
		return ch.Query{Body: "SELECT number FROM system.numbers LIMIT " + strconv.Itoa(n),
			Result: proto.Results{{Name: "number", Data: &col}}}
	}
	small := chdb.Limits{MaxResultRows: 3}
	if err := db.DoLimited(ctx, small, rows(2)); err != nil {
		t.Fatal(err)
	}
	before := proxy.dials()
	for i := range 20 {
		if err := db.DoLimited(ctx, small, rows(2)); err != nil {
			t.Fatalf("query %d under the limit: %v", i, err)
		}
		if err := db.DoLimited(ctx, small, rows(10)); chdb.LimitOf(err) != chdb.LimitRows {
			t.Fatalf("query %d over the limit: %v, want the rows limit", i, err)
		}
	}
	// Each failed query closes its connection; the 20 successful ones reuse.
	if d := proxy.dials() - before; d > 21 {
		t.Errorf("%d dials for 40 limited queries: connections are not reused", d)
	}
	if err := db.Do(ctx, rows(10)); err != nil {
		t.Errorf("the main pool got the limits: %v", err)
	}
	if err := db.DoLimited(ctx, chdb.Limits{MaxResultRows: 100}, rows(10)); err != nil {
		t.Errorf("other limits got the small one: %v", err)
	}
	proxy.cut()
	if err := db.DoLimited(ctx, small, rows(2)); err != nil {
		t.Errorf("after the kept connections were cut: %v", err)
	}
}
