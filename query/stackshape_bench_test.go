package query

import (
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/flamestream/flamestream/internal/flame"
)

// BenchmarkStackShape measures the in-process part of a reshaped read (everything after the ClickHouse
// query and the trie lookup) over 50,000 stacks 20 frames deep (5,000 names, a third of them kernel
// frames) in 60 segments: "view" is the unshaped path for reference (counts into the trie view, tree of
// 20,000 nodes); "kernel off" collects the stacks' texts, drops the kernel frames and builds the tree;
// "table" is the A vs B table of the same stacks against themselves.
//
//	go test ./query -run X -bench StackShape -benchtime 5x
func BenchmarkStackShape(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	tr := flame.NewTrie()
	var leaves []uint32
	seen := map[string]bool{}
	sfx := []string{"_[p]", "_[k]", ""}
	for len(leaves) < 50000 {
		frames := make([]string, 20)
		frames[0] = "proc" + strconv.Itoa(rng.IntN(20))
		for i := 1; i < len(frames); i++ {
			frames[i] = "fn_" + strconv.Itoa(rng.IntN(5000)) + sfx[rng.IntN(3)]
		}
		s := strings.Join(frames, ";")
		if !seen[s] {
			seen[s] = true
			leaves = append(leaves, tr.Leaf(s))
		}
	}
	segs := make([]segmentSums, 60)
	lv := make([][]uint32, 60)
	for i, l := range leaves {
		k := i % 60
		segs[k].sign = 1
		segs[k].sums = append(segs[k].sums, stackSum{uint64(i), int64(1 + i%7)})
		lv[k] = append(lv[k], l)
	}
	q, _ := url.ParseQuery("runtimes_off=kernel")
	sh, err := parseStackShape(q)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("view", func(b *testing.B) {
		for range b.N {
			v := tr.View()
			merge(v, segs, lv)
			if v.Tree(20000) == nil {
				b.Fatal("no tree")
			}
			v.Release()
		}
	})
	b.Run("kernel off", func(b *testing.B) {
		for range b.N {
			v := tr.View()
			stacks := leafStacks(v, segs, lv, false, nil)
			v.Release()
			if buildShaped(stacks, sh, false).Tree(20000) == nil {
				b.Fatal("no tree")
			}
		}
	})
	b.Run("table", func(b *testing.B) {
		for range b.N {
			v := tr.View()
			stacks := leafStacks(v, segs, lv, false, nil)
			stacks = leafStacks(v, segs, lv, true, stacks)
			v.Release()
			rows, _, _ := compareRows(stacks, stackShape{})
			sortCompare(rows, compareParams{sort: "change", limit: 1000})
			if len(rows) == 0 {
				b.Fatal("no rows")
			}
		}
	})
}
