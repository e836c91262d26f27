package flame

import "testing"

// TestLeafDeltasSumInAnyOrderAndNegativesAreDropped adds signed counts to a view in an order where the
// running sums go below zero: the ends that are not negative are exact, and the leaf that ends below
// zero is dropped from its side's total.
func TestLeafDeltasSumInAnyOrderAndNegativesAreDropped(t *testing.T) {
	trie := NewTrie()
	a, b, c := trie.Leaf("p;a"), trie.Leaf("p;b"), trie.Leaf("p;c")
	v := trie.View()
	defer v.Release()
	v.AddLeafDelta(a, -5, false) // a subtracted edge before the whole bucket it belongs to
	v.AddLeafDelta(a, 8, false)
	v.AddLeafDelta(b, 4, false)
	v.AddLeafDelta(c, 2, false)
	v.AddLeafDelta(c, -3, false) // a row that arrived after the bucket was read
	v.AddLeafDelta(b, -1, true)
	v.AddLeafDelta(a, 6, true)
	if n := v.DropNegative(); n != 2 {
		t.Fatalf("DropNegative dropped %d leaves, want 2 (c on the comparison side, b on the baseline)", n)
	}
	if v.Total() != 7 || v.BaseTotal() != 6 {
		t.Fatalf("totals %d and %d, want 7 (3 + 4) and 6", v.Total(), v.BaseTotal())
	}
	if got := v.selfOf(a); got != 3 {
		t.Errorf("a: %d, want 3", got)
	}
	if got := v.selfOf(c); got != 0 {
		t.Errorf("c: %d, want 0", got)
	}
}
