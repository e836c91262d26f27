package flame

import (
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	benchOnce   sync.Once
	benchRandom []genStack // 1M unique stacks in random order
	benchSorted []genStack // the same stacks sorted byte-wise
	benchBytes  int64
)

// benchInput generates the benchmark stacks once: 1M unique stacks of
// depth 20 to 60 over 4000 frame names, in random order as a GROUP BY
// returns them, and sorted as an ORDER BY stack returns them.
func benchInput(b *testing.B) {
	b.Helper()
	benchOnce.Do(func() {
		benchRandom = genStacks(1_000_000, 42, 60)
		r := rand.New(rand.NewPCG(7, 7))
		r.Shuffle(len(benchRandom), func(i, j int) { benchRandom[i], benchRandom[j] = benchRandom[j], benchRandom[i] })
		benchSorted = slices.Clone(benchRandom)
		slices.SortFunc(benchSorted, func(x, y genStack) int { return strings.Compare(x.stack, y.stack) })
		// Copy the strings in their final order, so that they sit in
		// memory in the order they are read, as a database driver
		// decoding the rows one by one would lay them out.
		for _, in := range [][]genStack{benchRandom, benchSorted} {
			for i := range in {
				in[i].stack = strings.Clone(in[i].stack)
			}
		}
		for _, s := range benchRandom {
			benchBytes += int64(len(s.stack))
		}
	})
}

func benchMerge(b *testing.B, in []genStack) {
	b.ReportAllocs()
	b.SetBytes(benchBytes)
	var nodes int
	for b.Loop() {
		fb := &Builder{}
		for _, s := range in {
			fb.Add(s.stack, s.count)
		}
		if tr := fb.Tree(2048); tr.Value == 0 {
			b.Fatal("empty tree")
		}
		nodes = fb.Nodes()
	}
	b.ReportMetric(float64(nodes), "nodes")
}

// BenchmarkBuilderMerge1M merges 1M unique stacks given in random order and
// builds the tree truncated to 2048 nodes.
func BenchmarkBuilderMerge1M(b *testing.B) {
	benchInput(b)
	benchMerge(b, benchRandom)
}

// BenchmarkBuilderMerge1MSorted is BenchmarkBuilderMerge1M with the stacks
// sorted, as an ORDER BY stack query returns them.
func BenchmarkBuilderMerge1MSorted(b *testing.B) {
	benchInput(b)
	benchMerge(b, benchSorted)
}

var (
	benchBuiltOnce sync.Once
	benchBuilt     *Builder
)

func builtBuilder(b *testing.B) *Builder {
	benchInput(b)
	benchBuiltOnce.Do(func() {
		benchBuilt = &Builder{}
		for _, s := range benchSorted {
			benchBuilt.Add(s.stack, s.count)
		}
	})
	return benchBuilt
}

// BenchmarkTree2048 measures Tree(2048) alone on the 1M-stack Builder,
// derived data included.
func BenchmarkTree2048(b *testing.B) {
	fb := builtBuilder(b)
	b.ReportAllocs()
	for b.Loop() {
		fb.cache = nil
		fb.Tree(2048)
	}
}

// BenchmarkTopFunctions measures TopFunctions on the 1M-stack Builder,
// derived data included.
func BenchmarkTopFunctions(b *testing.B) {
	fb := builtBuilder(b)
	b.ReportAllocs()
	for b.Loop() {
		fb.cache = nil
		if len(fb.TopFunctions("total", 100)) != 100 {
			b.Fatal("short table")
		}
	}
}

// BenchmarkTopFunctionsCached measures TopFunctions after a Tree call on
// the same data, as one request building both does.
func BenchmarkTopFunctionsCached(b *testing.B) {
	fb := builtBuilder(b)
	fb.cache = nil
	fb.Tree(2048)
	b.ReportAllocs()
	for b.Loop() {
		fb.TopFunctions("self", 100)
	}
}

func BenchmarkWriteFolded(b *testing.B) {
	fb := builtBuilder(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := fb.WriteFolded(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteSpeedscope(b *testing.B) {
	fb := builtBuilder(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := fb.WriteSpeedscope(io.Discard, "bench"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWritePprof(b *testing.B) {
	fb := builtBuilder(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := fb.WritePprof(io.Discard, time.Time{}, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSortThenMerge1M is what the query path does with 1M stacks that arrive in GROUP BY (random)
// order: sort them by text, then merge them in that order and build the truncated tree.
func BenchmarkSortThenMerge1M(b *testing.B) {
	benchInput(b)
	b.ReportAllocs()
	b.SetBytes(benchBytes)
	for b.Loop() {
		in := slices.Clone(benchRandom)
		slices.SortFunc(in, func(x, y genStack) int { return strings.Compare(x.stack, y.stack) })
		fb := &Builder{}
		for _, s := range in {
			fb.Add(s.stack, s.count)
		}
		if tr := fb.Tree(2048); tr.Value == 0 {
			b.Fatal("empty tree")
		}
	}
}

var (
	benchTrieOnce sync.Once
	benchTrie     *Trie
	benchLeaves   []uint32 // leaf of benchRandom[i]
)

// BenchmarkViewMerge1M is the query server's path for 1M unique stacks that it has merged into its trie
// before: a view of the trie gets the 1M (leaf, count) pairs in random order, as a GROUP BY returns them,
// and builds the tree truncated to 2048 nodes.
func BenchmarkViewMerge1M(b *testing.B) {
	benchInput(b)
	benchTrieOnce.Do(func() {
		benchTrie = NewTrie()
		leaf := make(map[string]uint32, len(benchSorted))
		for _, s := range benchSorted {
			leaf[s.stack] = benchTrie.Leaf(s.stack)
		}
		for _, s := range benchRandom {
			benchLeaves = append(benchLeaves, leaf[s.stack])
		}
		runtime.GC() // collect the setup's garbage (the 1M-entry map) before timing
	})
	b.ReportAllocs()
	b.SetBytes(benchBytes)
	for b.Loop() {
		v := benchTrie.View()
		for i, s := range benchRandom {
			v.AddLeaf(benchLeaves[i], s.count)
		}
		if tr := v.Tree(2048); tr.Value == 0 {
			b.Fatal("empty tree")
		}
		v.Release() // as the query server does once it has answered
	}
}

// BenchmarkTrieLeaf1M is what a query server pays once for 1M stacks it has not seen: sort their texts
// and merge them into its trie.
func BenchmarkTrieLeaf1M(b *testing.B) {
	benchInput(b)
	b.ReportAllocs()
	b.SetBytes(benchBytes)
	for b.Loop() {
		in := slices.Clone(benchRandom)
		slices.SortFunc(in, func(x, y genStack) int { return strings.Compare(x.stack, y.stack) })
		t := NewTrie()
		for _, s := range in {
			t.Leaf(s.stack)
		}
	}
}
