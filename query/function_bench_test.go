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
// 5,000 names): the table makes a view of the whole range with occurrences, then one per bucket with its
// functions; the history classifies the leaves once and adds 60 buckets' counts per leaf.
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
	view := func(bucket, of int) *flame.View {
		v := tr.View()
		for i, l := range leaves {
			if of == 0 || i%of == bucket {
				v.AddLeaf(l, uint64(1+i%7))
			}
		}
		return v
	}
	b.Run("table", func(b *testing.B) {
		for range b.N {
			v := view(0, 0)
			if _, err := occurrences(v); err != nil {
				b.Fatal(err)
			}
			v.TopFunctions("self", 0)
			v.Release()
			for k := range maxTrendPoints {
				v := view(k, maxTrendPoints)
				v.TopFunctions("self", 0)
				v.Release()
			}
		}
	})
	// The history: one segment per bucket, each holding a 60th of the stacks.
	segs := make([]segmentSums, maxHistoryPoints)
	lv := make([][]uint32, maxHistoryPoints)
	for i, l := range leaves {
		k := i % maxHistoryPoints
		segs[k].sign = 1
		segs[k].sums = append(segs[k].sums, stackSum{uint64(i), int64(1 + i%7)})
		lv[k] = append(lv[k], l)
	}
	b.Run("history", func(b *testing.B) {
		for range b.N {
			v := view(0, 0)
			h := historyOf(v, "fn_42_[p]", segs, lv)
			all := make([]int, len(segs))
			for j := range all {
				all[j] = j
			}
			h.add(all)
			for j := range segs {
				h.add([]int{j})
			}
			v.Release()
		}
	})
}
