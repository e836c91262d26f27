package indexer

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/flamestream/flamestream/internal/profile"
)

// writer holds the columns of one batch; they are reused from batch to batch.
type writer struct {
	stackService proto.ColStr
	stackHash    proto.ColUInt64
	stackText    proto.ColStr

	ts                                         proto.ColDateTime
	service, host, container, itype, k8sObject proto.ColStr
	profile, stack                             proto.ColUInt64
	count                                      proto.ColUInt32

	containers map[string][2]string
}

func (w *writer) reset() {
	w.stackService.Reset()
	w.stackHash.Reset()
	w.stackText.Reset()
	w.ts.Reset()
	w.service.Reset()
	w.host.Reset()
	w.container.Reset()
	w.itype.Reset()
	w.k8sObject.Reset()
	w.profile.Reset()
	w.stack.Reset()
	w.count.Reset()
}

// containerInfo caches profile.ContainerInfo, which every row needs.
func (w *writer) containerInfo(raw string) (string, string) {
	if w.containers == nil || len(w.containers) > 100000 {
		w.containers = map[string][2]string{}
	}
	if v, ok := w.containers[raw]; ok {
		return v[0], v[1]
	}
	c, k := profile.ContainerInfo(raw)
	w.containers[raw] = [2]string{c, k}
	return c, k
}

// build fills the columns with a batch: the stacks not in known, then one sample row per (profile,
// container, stack). It returns the stacks it added. The aggregates stay with the items: a batch that
// ClickHouse refused is written again in smaller groups (Index releases them at the end).
func (w *writer) build(items []*item, known map[serviceStack]struct{}) map[serviceStack]struct{} {
	w.reset()
	newStacks := map[serviceStack]struct{}{}
	for _, it := range items {
		agg := it.agg
		for h, text := range agg.Stacks() {
			k := serviceStack{it.ev.Service, h}
			if _, ok := known[k]; ok {
				continue
			}
			if _, ok := newStacks[k]; ok {
				continue
			}
			newStacks[k] = struct{}{}
			w.stackService.Append(it.ev.Service)
			w.stackHash.Append(h)
			w.stackText.AppendBytes(text)
		}
		ts := it.ev.Start.Truncate(time.Second)
		for _, e := range agg.Entries() {
			container, k8s := w.containerInfo(e.Container)
			w.ts.Append(ts)
			w.service.Append(it.ev.Service)
			w.host.Append(it.ev.Host)
			w.container.Append(container)
			w.itype.Append(it.ev.InstanceType)
			w.k8sObject.Append(k8s)
			w.profile.Append(it.id)
			w.stack.Append(e.Hash)
			w.count.Append(uint32(min(e.Count, 1<<32-1)))
		}
	}
	return newStacks
}

// write inserts the batch: new stacks first, then the sample rows, each as one native columnar block. A
// crash between the two leaves only unreferenced stacks, which are harmless.
func (ix *Indexer) write(ctx context.Context, ln *lane, items []*item) (rows int, err error) {
	w := &ln.w
	newStacks := w.build(items, ln.knownStacks)
	t0 := time.Now()
	if w.stackHash.Rows() > 0 {
		in := proto.Input{{Name: "service", Data: &w.stackService}, {Name: "hash", Data: &w.stackHash}, {Name: "frames", Data: &w.stackText}}
		if err := ix.db.Insert(ctx, StacksTable, in); err != nil {
			return 0, fmt.Errorf("insert stacks: %w", err)
		}
	}
	rows = w.ts.Rows()
	if rows > 0 {
		in := proto.Input{
			{Name: "ts", Data: &w.ts}, {Name: "service", Data: &w.service}, {Name: "host", Data: &w.host},
			{Name: "container", Data: &w.container}, {Name: "instance_type", Data: &w.itype},
			{Name: "k8s_object", Data: &w.k8sObject}, {Name: "profile", Data: &w.profile},
			{Name: "stack", Data: &w.stack}, {Name: "count", Data: &w.count},
		}
		if err := ix.db.Insert(ctx, "samples", in); err != nil {
			return 0, fmt.Errorf("insert samples: %w", err)
		}
	}
	ix.metrics.insertLatency.Observe(time.Since(t0).Seconds())
	if len(ln.knownStacks)+len(newStacks) > maxKnownStacks/ix.cfg.Workers {
		ln.knownStacks = map[serviceStack]struct{}{}
	}
	for h := range newStacks {
		ln.knownStacks[h] = struct{}{}
	}
	return rows, nil
}
