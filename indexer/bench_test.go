package indexer

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/flamestream/flamestream/internal/demo"
	"github.com/flamestream/flamestream/internal/profile"
	"github.com/flamestream/flamestream/stream"
)

// benchBatch returns n stored uploads (gzip JSON, as in the bucket) of the demo fleet's default shape:
// 800 lines per profile over 5,000 stacks of depth 20–60.
func benchBatch(b testing.TB, n int) [][]byte { return benchBatchOf(b, n, demo.DefaultShape) }

// benchBatchOf is benchBatch of another shape.
func benchBatchOf(b testing.TB, n int, shape demo.Shape) [][]byte {
	fleet := demo.NewFleet(1, "bench", shape)
	rng := rand.New(rand.NewPCG(3, 4))
	out := make([][]byte, n)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range out {
		host := fmt.Sprintf("host-%02d", i%20)
		out[i] = demo.NewUpload(fleet.Profile(rng, host, "m5.xlarge"), host, start.Add(time.Duration(i)*time.Minute), "").Gzip()
	}
	return out
}

// BenchmarkObjectToColumns is the indexer's whole CPU path per batch: gunzip, JSON, parse, aggregate and
// build the ClickHouse columns of stacks and samples. lines/s counts stack lines (one stack with its count),
// samples/s the counts they carry.
func BenchmarkObjectToColumns(b *testing.B) {
	b.Run("800", func(b *testing.B) { benchObjectToColumns(b, benchBatch(b, 32)) })
	// The pipeline bench's shapes (internal/soak.PipelineShapes).
	b.Run("60", func(b *testing.B) {
		benchObjectToColumns(b, benchBatchOf(b, 128, demo.Shape{Stacks: 2000, Lines: 60, MinDepth: 4, MaxDepth: 16}))
	})
	b.Run("2000", func(b *testing.B) {
		benchObjectToColumns(b, benchBatchOf(b, 16, demo.Shape{Stacks: 5000, Lines: 2000, MinDepth: 4, MaxDepth: 16}))
	})
}

func benchObjectToColumns(b *testing.B, bodies [][]byte) {
	ix := New(Config{}, nil, nil, nil, nil, slog.New(slog.DiscardHandler), nil)
	known := map[serviceStack]struct{}{}
	ln := newLane()
	var lines, samples int
	items := make([]*item, len(bodies))
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		for i, body := range bodies {
			agg, host, err := ix.parseWithHost(stream.Event{Start: time.Now()}, body)
			if err != nil || !host.ok {
				b.Fatal(err, host)
			}
			lines += agg.Lines()
			samples += int(agg.Samples())
			items[i] = &item{agg: agg, id: uint64(i), ev: stream.Event{Service: "bench", Host: "h", Start: time.Unix(int64(i)*60, 0)}}
		}
		for h := range ln.w.build(1, items, known) {
			known[h] = struct{}{}
		}
		release(items) // as Index does once the batch is written
	}
	cpu := (cpuTime() - cpu0).Seconds()
	b.ReportMetric(float64(lines)/b.Elapsed().Seconds(), "lines/s")
	b.ReportMetric(float64(samples)/b.Elapsed().Seconds(), "samples/s")
	// Per CPU-second figures hold on a shared machine too: the process's user+system time, GC included.
	b.ReportMetric(float64(lines)/cpu, "lines/cpu-s")
	b.ReportMetric(float64(samples)/cpu, "samples/cpu-s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(bodies)), "ns/profile")
}

// cpuTime is the user plus system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkBuildColumns is the column building alone, from aggregated profiles.
func BenchmarkBuildColumns(b *testing.B) {
	b.Run("800", func(b *testing.B) { benchBuildColumns(b, benchBatch(b, 32), false) })
	b.Run("2000", func(b *testing.B) {
		benchBuildColumns(b, benchBatchOf(b, 16, demo.Shape{Stacks: 5000, Lines: 2000, MinDepth: 4, MaxDepth: 16}), false)
	})
	// A lane's first batch, or one bigger than any before: the columns grow from nothing.
	b.Run("2000-fresh", func(b *testing.B) {
		benchBuildColumns(b, benchBatchOf(b, 16, demo.Shape{Stacks: 5000, Lines: 2000, MinDepth: 4, MaxDepth: 16}), true)
	})
}

func benchBuildColumns(b *testing.B, bodies [][]byte, fresh bool) {
	ix := New(Config{}, nil, nil, nil, nil, slog.New(slog.DiscardHandler), nil)
	aggs := make([]*profile.Aggregate, len(bodies))
	var lines int
	for i, body := range bodies {
		agg, err := ix.parse(stream.Event{Start: time.Now()}, body)
		if err != nil {
			b.Fatal(err)
		}
		aggs[i] = agg
		lines += agg.Lines()
	}
	known := map[serviceStack]struct{}{}
	ln := newLane()
	items := make([]*item, len(bodies))
	var rows int
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		if fresh {
			ln.w = writer{}
		}
		for i, agg := range aggs {
			items[i] = &item{agg: agg, id: uint64(i), ev: stream.Event{Service: "bench", Host: "h", Start: time.Unix(int64(i)*60, 0)}}
		}
		for h := range ln.w.build(1, items, known) {
			known[h] = struct{}{}
		}
		// build hands the aggregates to the pool, which leaves them intact: nothing else takes from it here.
		rows += ln.w.ts.Rows()
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// BenchmarkProfileField is the unquoting of the profile text out of an inflated agent upload (the JSON
// body), for the pipeline bench's shapes.
func BenchmarkProfileField(b *testing.B) {
	for _, c := range []struct {
		name  string
		shape demo.Shape
	}{
		{"60", demo.Shape{Stacks: 2000, Lines: 60, MinDepth: 4, MaxDepth: 16}},
		{"2000", demo.Shape{Stacks: 5000, Lines: 2000, MinDepth: 4, MaxDepth: 16}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var d objectDecoder
			plain, err := d.decode(benchBatchOf(b, 1, c.shape)[0], 1<<30)
			if err != nil {
				b.Fatal(err)
			}
			body := append([]byte(nil), d.plain...)
			if len(plain) == 0 {
				b.Fatal("no profile text")
			}
			for _, fresh := range []bool{false, true} {
				name := "reused"
				if fresh {
					name = "fresh" // a decoder new from the pool: its text buffer grows from nothing
				}
				b.Run(name, func(b *testing.B) {
					var dst []byte
					b.SetBytes(int64(len(body)))
					b.ReportAllocs()
					cpu0 := cpuTime()
					for b.Loop() {
						if fresh {
							dst = nil
						}
						var ok bool
						if dst, ok = profileField(body, dst[:0]); !ok {
							b.Fatal("the fast path refused the body")
						}
					}
					b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
				})
			}
		})
	}
}
