package indexer

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/flamestream/flamestream/internal/profile"
	"github.com/flamestream/flamestream/internal/schema"
	"github.com/flamestream/flamestream/stream"
)

// TestBuildRowsMatchTheAggregates checks the sample columns that build fills against the aggregates, row by
// row: every column has one value per row, the marker comes first, and each row's (time, service, host,
// container, instance type, Kubernetes object, profile, stack, count) is one entry of one profile, each
// entry exactly once. The profile-wide values are filled a profile at a time and the others row by row,
// so a row whose values came from different profiles or entries would show here. The writer is reused
// for a second, smaller batch, as a lane does.
func TestBuildRowsMatchTheAggregates(t *testing.T) {
	var w writer
	for round, profiles := range []int{7, 3} {
		var items []*item
		type row struct {
			ts                                         int64
			service, host, container, itype, k8sObject string
			profile, stack                             uint64
			count                                      uint32
		}
		var want []row
		for p := range profiles {
			var agg profile.Aggregate
			// More containers than containerInfo remembers, in turn.
			containers := []string{"", "k8s_api_api-7f9c8d6b5-x2x9k_prod_0b1c2d3e-aaaa-bbbb-cccc-0123456789ab_0", "web",
				"k8s_worker_worker-5d8f7c9b4-q8w7e_prod_1b1c2d3e-aaaa-bbbb-cccc-0123456789ab_0", "db", "ecs-task-3-worker-c0ffee"}
			for l := range 50 + 40*p {
				line := profile.Line{Container: []byte(containers[(l*p)%len(containers)]), Stack: fmt.Appendf(nil, "comm;f%d;g%d", l%17, l%5),
					Count: uint64(1 + l%9), Number: l + 2}
				if err := agg.Add(&line); err != nil {
					t.Fatal(err)
				}
			}
			ev := stream.Event{Service: fmt.Sprintf("svc-%d", p%2), Host: []string{"host-0", "h", "host-2"}[p%3],
				InstanceType: []string{"", "m5.xlarge", "c6g.large"}[p%3], Start: time.Unix(1767225600+int64(p*60+round), 0)}
			it := &item{agg: &agg, id: uint64(100*round + p + 1), ev: ev}
			items = append(items, it)
			for _, e := range agg.Entries() {
				c, k := profile.ContainerInfo(e.Container)
				want = append(want, row{ev.Start.Unix(), ev.Service, ev.Host, c, ev.InstanceType, k, it.id, e.Hash, uint32(e.Count)})
			}
		}
		w.build(uint64(round+1), items, map[serviceStack]struct{}{})
		n := w.ts.Rows()
		for name, rows := range map[string]int{"service": w.service.Rows(), "host": w.host.Rows(), "container": w.container.Rows(),
			"instance_type": w.itype.Rows(), "k8s_object": w.k8sObject.Rows(), "profile": w.profile.Rows(), "stack": w.stack.Rows(), "count": w.count.Rows()} {
			if rows != n {
				t.Fatalf("round %d: column %s has %d rows, ts %d", round, name, rows, n)
			}
		}
		if n != len(want)+1 || w.service.Row(0) != schema.MarkerService || w.stack.Row(0) != uint64(round+1) {
			t.Fatalf("round %d: %d rows (want %d and the marker), first %q %d", round, n, len(want), w.service.Row(0), w.stack.Row(0))
		}
		var got []row
		for i := 1; i < n; i++ {
			got = append(got, row{w.ts.Row(i).Unix(), w.service.Row(i), w.host.Row(i), w.container.Row(i), w.itype.Row(i),
				w.k8sObject.Row(i), w.profile.Row(i), w.stack.Row(i), w.count.Row(i)})
		}
		cmpRow := func(a, b row) int { return cmpString(fmt.Sprint(a), fmt.Sprint(b)) }
		slices.SortFunc(got, cmpRow)
		slices.SortFunc(want, cmpRow)
		if !slices.Equal(got, want) {
			for i := range min(len(got), len(want)) {
				if got[i] != want[i] {
					t.Fatalf("round %d: row %+v, want %+v", round, got[i], want[i])
				}
			}
			t.Fatalf("round %d: rows differ", round)
		}
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
