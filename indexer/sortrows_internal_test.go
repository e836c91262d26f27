package indexer

import (
	"cmp"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flamestream/flamestream/internal/demo"
	"github.com/flamestream/flamestream/internal/profile"
	"github.com/flamestream/flamestream/stream"
)

type sampleRow struct {
	service, host  string
	ts             int64
	container, k8s string
	itype          string
	profile, stack uint64
	count          uint32
}

func compareRows(a, b sampleRow) int {
	return cmp.Or(cmp.Compare(a.service, b.service), cmp.Compare(a.host, b.host), cmp.Compare(a.ts, b.ts),
		cmp.Compare(a.container, b.container), cmp.Compare(a.stack, b.stack))
}

func builtRows(w *writer) []sampleRow {
	rows := make([]sampleRow, w.ts.Rows())
	for i := range rows {
		rows[i] = sampleRow{w.service.Row(i), w.host.Row(i), w.ts.Row(i).Unix(), w.container.Row(i), w.k8sObject.Row(i),
			w.itype.Row(i), w.profile.Row(i), w.stack.Row(i), w.count.Row(i)}
	}
	return rows
}

// The sample rows of a batch come out in the samples key's order, so that ClickHouse skips its sort, and
// they are exactly the rows of the profiles (same multiset as written in the profiles' own order).
func TestBuildWritesSampleRowsInKeyOrder(t *testing.T) {
	ix := New(Config{}, nil, nil, nil, nil, slog.New(slog.DiscardHandler), nil)
	k8s, err := os.ReadFile("../internal/profile/testdata/agent-merge-v2-k8s.collapsed")
	if err != nil {
		t.Fatal(err)
	}
	fleet := demo.NewFleet(1, "sort", demo.Shape{Stacks: 300, Lines: 200, MinDepth: 3, MaxDepth: 9})
	rng := rand.New(rand.NewPCG(5, 6))
	start := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	var items []*item
	for i := range 40 {
		// Services and hosts out of order, two profiles of one host a minute apart, and profiles with
		// several containers (the real agent's k8s layout) among plain ones.
		svc := []string{"zeta", "alpha", "mid"}[i%3]
		host := fmt.Sprintf("host-%d", (i*7)%5)
		ts := start.Add(time.Duration((i*13)%4) * time.Minute)
		body := demo.NewUpload(fleet.Profile(rng, host, "m5.large"), host, ts, "").Gzip()
		if i%4 == 0 {
			body = demo.NewUpload(k8s, host, ts, "").Gzip()
		}
		agg, err := ix.parse(stream.Event{Start: ts}, body)
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, &item{agg: agg, id: uint64(i), ev: stream.Event{Service: svc, Host: host, Start: ts, InstanceType: "m5.large"}})
	}
	// Two items of the same service, host and time would interleave their rows; keep one per key.
	seen := map[string]bool{}
	items = slices.DeleteFunc(items, func(it *item) bool {
		k := it.ev.Service + "/" + it.ev.Host + "/" + it.ev.Start.String()
		defer func() { seen[k] = true }()
		return seen[k]
	})
	order := slices.Clone(items)

	var w writer
	w.build(7, items, map[serviceStack]struct{}{})
	got := builtRows(&w)
	if !slices.IsSortedFunc(got, compareRows) {
		for i := 1; i < len(got); i++ {
			if compareRows(got[i-1], got[i]) > 0 {
				t.Fatalf("row %d %+v comes after row %d %+v", i, got[i], i-1, got[i-1])
			}
		}
	}
	if !slices.Equal(items, order) {
		t.Error("build reordered its caller's items")
	}
	var want []sampleRow
	multi := 0
	for _, it := range items {
		names := map[string]bool{}
		for _, e := range it.agg.Entries() {
			c, k := profile.ContainerInfo(e.Container)
			names[c] = true
			want = append(want, sampleRow{it.ev.Service, it.ev.Host, it.ev.Start.Unix(), c, k, "m5.large", it.id, e.Hash, uint32(e.Count)})
		}
		if len(names) > 1 {
			multi++
		}
	}
	if multi == 0 {
		t.Fatal("no profile with several containers: the test would not cover their order")
	}
	got = slices.DeleteFunc(got, func(r sampleRow) bool { return strings.HasPrefix(r.service, "\x00") })
	full := func(a, b sampleRow) int {
		return cmp.Or(compareRows(a, b), cmp.Compare(a.k8s, b.k8s), cmp.Compare(a.itype, b.itype),
			cmp.Compare(a.profile, b.profile), cmp.Compare(a.count, b.count))
	}
	slices.SortFunc(want, full)
	slices.SortFunc(got, full)
	if len(got) != len(want) || !slices.Equal(got, want) {
		t.Fatalf("%d rows built, want %d (or the rows differ)", len(got), len(want))
	}
}
