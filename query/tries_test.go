package query

import (
	"strconv"
	"testing"
)

// TestTriesCyclingThroughMoreServicesThanFitStillHit cycles through 10 services whose tries together are
// 30% over the bound, as a dashboard of many services does. Least-recently-used eviction would miss on
// every read; the tries must keep enough of them to hit often (random victims: about half the time), stay within the bound after
// each eviction, and never let go of the trie being asked for.
func TestTriesCyclingThroughMoreServicesThanFitStillHit(t *testing.T) {
	tr := newTries(1000)
	hits, reads := 0, 0
	for round := range 20 {
		for i := range 10 {
			name := "svc-" + strconv.Itoa(i)
			st := tr.of(name)
			if tr.m[name] != st {
				t.Fatalf("round %d: the trie asked for is not kept", round)
			}
			if st.nodes.Load() > 0 {
				if round > 0 {
					hits++
				}
			} else {
				st.nodes.Store(130)
			}
			if round > 0 {
				reads++
			}
			if total := tr.total(); total > 1000+130 {
				t.Fatalf("round %d: %d nodes held, bound 1000", round, total)
			}
		}
	}
	if hits*10 < reads*4 {
		t.Errorf("%d of %d reads hit a kept trie; want at least 40%%", hits, reads)
	}
	t.Logf("%d of %d reads hit, %d tries let go", hits, reads, tr.resets.Load())
}
