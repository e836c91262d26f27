package indexer

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/flamestream/flamestream/internal/profile"
	"github.com/flamestream/flamestream/internal/schema"
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

	// The batch ledger's columns.
	ledgerTS                   proto.ColDateTime
	ledgerService              proto.ColStr
	ledgerBatch, ledgerProfile proto.ColUInt64

	// hm holds the batch's host metrics rows, inserted after its samples (see hostmetrics.go).
	hm hostRows

	containers map[string][2]string
	// recent holds the last answers of containerInfo, nextRecent the one to replace next.
	recent     [4]containerMemo
	nextRecent int
	// rows orders each profile's sample rows (sortrows.go).
	rows rowSorter
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
	w.ledgerTS.Reset()
	w.ledgerService.Reset()
	w.ledgerBatch.Reset()
	w.ledgerProfile.Reset()
	w.hm.reset()
}

// containerInfo caches profile.ContainerInfo, which every row needs.
//
// The last few names answer first, from recent: a profile names a handful of containers, and an
// Aggregate hands out the same string for every entry of one container, so the comparison usually stops
// at the pointers, where the map hashed the whole name (often 70 bytes) for every lookup (12 % of
// building a 2,000-line profile's rows).
func (w *writer) containerInfo(raw string) (string, string) {
	for i := range w.recent {
		if m := &w.recent[i]; m.set && m.raw == raw {
			return m.container, m.k8s
		}
	}
	if w.containers == nil || len(w.containers) > 100000 {
		w.containers = map[string][2]string{}
	}
	v, ok := w.containers[raw]
	if !ok {
		v[0], v[1] = profile.ContainerInfo(raw)
		w.containers[raw] = v
	}
	w.recent[w.nextRecent] = containerMemo{raw: raw, container: v[0], k8s: v[1], set: true}
	w.nextRecent = (w.nextRecent + 1) % len(w.recent)
	return v[0], v[1]
}

// containerMemo is one answer of profile.ContainerInfo.
type containerMemo struct {
	raw, container, k8s string
	set                 bool
}

// build fills the columns with batch: its ledger, the stacks not in known, then one sample row per
// (profile, container, stack) and the batch's marker row (see ledger.go). It returns the stacks it added. The aggregates stay with the items: a batch that
// ClickHouse refused is written again in smaller groups (Index releases them at the end).
func (w *writer) build(batch uint64, items []*item, known map[serviceStack]struct{}) map[serviceStack]struct{} {
	w.reset()
	newStacks := map[serviceStack]struct{}{}
	// Rows go in the samples key's order (sortrows.go): the marker first (its service sorts before any
	// other), then the profiles by service, host and time, each by container and stack.
	items = sortedForSamples(items)
	w.reserve(items)
	if len(items) > 0 {
		w.ts.Append(items[0].ev.Start.Truncate(time.Second)) // the batch's day, like every row of it
		w.service.Append(schema.MarkerService)
		w.host.Append(batchHex(batch))
		w.container.Append("")
		w.itype.Append("")
		w.k8sObject.Append("")
		w.profile.Append(0)
		w.stack.Append(batch)
		w.count.Append(1)
	}
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
		w.ledgerTS.Append(ts)
		w.ledgerService.Append(it.ev.Service)
		w.ledgerBatch.Append(batch)
		w.ledgerProfile.Append(it.id)
		w.hm.add(it)
		entries := agg.Entries()
		// The columns that hold the same value on every row of a profile are filled in one go; the others
		// row by row. Every column gets its values in the same row order.
		n := len(entries)
		dt := proto.ToDateTime(ts)
		for range n {
			w.ts.Data = append(w.ts.Data, dt)
			w.profile = append(w.profile, it.id)
		}
		appendRepeated(&w.service, it.ev.Service, n)
		appendRepeated(&w.host, it.ev.Host, n)
		appendRepeated(&w.itype, it.ev.InstanceType, n)
		for _, i := range w.rows.sort(w, entries) {
			e := &entries[i]
			w.container.Append(w.rows.containers[i])
			w.k8sObject.Append(w.rows.k8s[i])
			w.stack = append(w.stack, e.Hash)
			w.count = append(w.count, uint32(min(e.Count, 1<<32-1)))
		}
	}
	return newStacks
}

// reserve grows the sample columns, when they are too small, to hold the rows of items at once: a column
// that grows row by row doubles a dozen times and copies itself each time (2.5 % of the indexer's CPU in
// growslice under 2,000-line profiles, the first batches of a lane, or any batch bigger than the lane's
// largest so far).
func (w *writer) reserve(items []*item) {
	rows := 1 // the marker
	var service, host, itype int
	for _, it := range items {
		n := len(it.agg.Entries())
		rows += n
		service += n * len(it.ev.Service)
		host += n * len(it.ev.Host)
		itype += n * len(it.ev.InstanceType)
	}
	w.ts.Data = slices.Grow(w.ts.Data, rows)
	w.profile = slices.Grow(w.profile, rows)
	w.stack = slices.Grow(w.stack, rows)
	w.count = slices.Grow(w.count, rows)
	growStr(&w.service, rows, service+len(schema.MarkerService))
	growStr(&w.host, rows, host+16) // the marker's batchHex
	growStr(&w.itype, rows, itype)
	// The container and Kubernetes names are known row by row only: their bytes grow as they come.
	growStr(&w.container, rows, 0)
	growStr(&w.k8sObject, rows, 0)
}

// growStr makes room in c for rows more rows of bytes more bytes.
func growStr(c *proto.ColStr, rows, bytes int) {
	c.Pos = slices.Grow(c.Pos, rows)
	c.Buf = slices.Grow(c.Buf, bytes)
}

// appendRepeated appends n rows of v to c: the bytes are copied in doubling runs rather than once per row
// (a profile's service, host and instance type are the same on each of its thousands of rows).
func appendRepeated(c *proto.ColStr, v string, n int) {
	if n <= 0 {
		return
	}
	start := len(c.Buf)
	c.Buf = slices.Grow(c.Buf, n*len(v))
	c.Buf = c.Buf[:start+n*len(v)]
	run := c.Buf[start:]
	for done := copy(run, v); done < len(run); {
		done += copy(run[done:], run[:done])
	}
	c.Pos = slices.Grow(c.Pos, n)
	for i := range n {
		c.Pos = append(c.Pos, proto.Position{Start: start + i*len(v), End: start + (i+1)*len(v)})
	}
}

// write inserts the items as batches of one day each (see ledger.go), and returns the sample rows written.
func (ix *Indexer) write(ctx context.Context, ln *lane, items []*item) (rows int, err error) {
	batches, err := ix.days(ctx, items)
	if err != nil {
		return 0, err
	}
	for _, batch := range batches {
		n, err := ix.writeBatch(ctx, ln, batch)
		if err != nil {
			return rows, err
		}
		rows += n
	}
	return rows, nil
}

// writeBatch inserts one batch: its ledger rows, its new stacks, then its sample rows with its marker,
// then its host metrics, each as one native columnar block. A crash between them leaves only ledger rows of a batch that is not
// in samples, or unreferenced stacks, which are both harmless.
func (ix *Indexer) writeBatch(ctx context.Context, ln *lane, items []*item) (rows int, err error) {
	w := &ln.w
	batch := newBatchID()
	newStacks := w.build(batch, items, ln.knownStacks)
	t0 := time.Now()
	ledger := proto.Input{{Name: "ts", Data: &w.ledgerTS}, {Name: "service", Data: &w.ledgerService},
		{Name: "batch", Data: &w.ledgerBatch}, {Name: "profile", Data: &w.ledgerProfile}}
	if err := ix.db.Insert(ctx, schema.Batches, ledger); err != nil {
		return 0, fmt.Errorf("insert batch ledger: %w", err)
	}
	if w.stackHash.Rows() > 0 {
		in := proto.Input{{Name: "service", Data: &w.stackService}, {Name: "hash", Data: &w.stackHash}, {Name: "frames", Data: &w.stackText}}
		if err := ix.db.Insert(ctx, schema.Stacks, in); err != nil {
			return 0, fmt.Errorf("insert stacks: %w", err)
		}
	}
	rows = w.ts.Rows() - 1 // without the marker
	in := proto.Input{
		{Name: "ts", Data: &w.ts}, {Name: "service", Data: &w.service}, {Name: "host", Data: &w.host},
		{Name: "container", Data: &w.container}, {Name: "instance_type", Data: &w.itype},
		{Name: "k8s_object", Data: &w.k8sObject}, {Name: "profile", Data: &w.profile},
		{Name: "stack", Data: &w.stack}, {Name: "count", Data: &w.count},
	}
	if err := ix.db.InsertAs(ctx, batchQueryID(batch), schema.Samples, in); err != nil {
		return 0, fmt.Errorf("insert samples: %w", err)
	}
	ix.metrics.insertLatency.Observe(time.Since(t0).Seconds())
	// After the samples, never before: the exactly-once guard looks at samples (see hostmetrics.go).
	if err := ix.insertHostMetrics(ctx, batch, &w.hm); err != nil {
		return 0, err
	}
	if len(ln.knownStacks)+len(newStacks) > maxKnownStacks/ix.cfg.Workers {
		ln.knownStacks = map[serviceStack]struct{}{}
	}
	for h := range newStacks {
		ln.knownStacks[h] = struct{}{}
	}
	return rows, nil
}
