package flame

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSortTmp(t *testing.T) {
	if os.Getenv("FLAME_CPU") == "" {
		t.Skip()
	}
	var b testing.B
	benchInput(&b)
	for round := range 2 {
		in := slices.Clone(benchRandom)
		w, cpu := time.Now(), cpuNow()
		slices.SortFunc(in, func(x, y genStack) int { return strings.Compare(x.stack, y.stack) })
		t.Logf("round %d sort: wall %v cpu %v", round, time.Since(w), cpuNow()-cpu)
		w, cpu = time.Now(), cpuNow()
		fb := &Builder{}
		for _, s := range in {
			fb.Add(s.stack, s.count)
		}
		fb.Tree(2048)
		t.Logf("round %d sorted-after-sort merge: wall %v cpu %v", round, time.Since(w), cpuNow()-cpu)
	}
}
