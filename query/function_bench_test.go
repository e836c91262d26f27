package query

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/flamestream/flamestream/internal/flame"
)

// BenchmarkFunctionViews measures the in-process part of the functions table and of a function history
// (everything after the one ClickHouse query) over a service trie of 50,000 stacks (20 frames deep over
// 5,000 names) in 60 segments: the table's functions over the whole range and the rows of each leaf for
// the sparklines of 24 buckets; the history's classification of the leaves and 60 buckets' counts.
//
//	go test ./query -run X -bench FunctionViews -benchtime 5x
func BenchmarkFunctionViews(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	tr := flame.NewTrie()
	var leaves []uint32
	seen := map[string]bool{}
	for len(leaves) < 50000 {
		frames := make([]string, 20)
		for i := range frames {
			frames[i] = "fn_" + strconv.Itoa(rng.IntN(5000)) + "_[p]"
		}
		s := strings.Join(frames, ";")
		if !seen[s] {
			seen[s] = true
			leaves = append(leaves, tr.Leaf(s))
		}
	}
	// One segment per bucket, each holding a 60th of the stacks.
	segs := make([]segmentSums, maxHistoryPoints)
	lv := make([][]uint32, maxHistoryPoints)
	for i, l := range leaves {
		k := i % maxHistoryPoints
		segs[k].sign = 1
		segs[k].sums = append(segs[k].sums, stackSum{uint64(i), int64(1 + i%7)})
		lv[k] = append(lv[k], l)
	}
	all := make([]int, len(segs))
	for j := range all {
		all[j] = j
	}
	b.Run("table", func(b *testing.B) {
		for range b.N {
			v := tr.View()
			counts := &leafCounts{sums: segs, leaves: lv, net: map[uint32]int64{}}
			stats, _ := tableStats(v, counts, all)
			if len(stats) == 0 {
				b.Fatal("no functions")
			}
			// The sparklines of the 500 functions listed, 24 buckets of 2 or 3 segments.
			listed := map[string]bool{}
			for name := range stats {
				if len(listed) < 500 {
					listed[name] = true
				}
			}
			var frames []string
			rowsOf := map[uint32]int{}
			for k := range maxTrendPoints {
				var mine []int
				for j := k; j < len(segs); j += maxTrendPoints {
					mine = append(mine, j)
				}
				counts.each(mine, func(leaf uint32, n uint64) {
					if _, ok := rowsOf[leaf]; !ok {
						frames = v.Frames(leaf, frames[:0])
						c := 0
						for _, f := range frames {
							if listed[f] {
								c++
							}
						}
						rowsOf[leaf] = c
					}
				})
			}
			v.Release()
		}
	})
	b.Run("history", func(b *testing.B) {
		for range b.N {
			v := tr.View()
			h := &history{v: v, name: "fn_42_[p]", counts: &leafCounts{sums: segs, leaves: lv, net: map[uint32]int64{}}, class: map[uint32]leafClass{}}
			h.add(all)
			for j := range segs {
				h.add([]int{j})
			}
			v.Release()
		}
	})
}
