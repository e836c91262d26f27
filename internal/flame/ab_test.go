package flame

import (
	"os"
	"testing"
	"time"
)

func TestABTmp(t *testing.T) {
	if os.Getenv("FLAME_AB") == "" {
		t.Skip()
	}
	in := genStacks(300_000, 42, 60)
	for round := range 3 {
		start := time.Now()
		b := &Builder{}
		for _, s := range in {
			b.Add(s.stack, s.count)
			b.batching = false
			b.nRecent = 0
		}
		b.Nodes()
		seq := time.Since(start)
		start = time.Now()
		b = &Builder{batching: true}
		for _, s := range in {
			b.Add(s.stack, s.count)
		}
		b.Nodes()
		bat := time.Since(start)
		t.Logf("round %d: sequential %v batched %v (nodes %d)", round, seq, bat, b.Nodes())
	}
}
