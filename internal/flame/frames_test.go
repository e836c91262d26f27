package flame

import (
	"strings"
	"testing"
)

// TestViewFramesSpellsTheLeafsStack: each leaf's frames are its stack, whatever was merged around it; a node
// added to the trie after the view was made is not the view's.
func TestViewFramesSpellsTheLeafsStack(t *testing.T) {
	tr := NewTrie()
	stacks := []string{"a;b;c", "a;b", "a;x;b;b", "z", "a;b;c;d;e"}
	leaves := make([]uint32, len(stacks))
	for i, s := range stacks {
		leaves[i] = tr.Leaf(s)
	}
	v := tr.View()
	defer v.Release()
	later := tr.Leaf("q;r")
	for i, s := range stacks {
		if got := strings.Join(v.Frames(leaves[i], nil), ";"); got != s {
			t.Errorf("Frames(leaf of %q) = %q", s, got)
		}
	}
	if got := v.Frames(leaves[0], []string{"keep"}); strings.Join(got, ";") != "keep;a;b;c" {
		t.Errorf("Frames appends: %q", got)
	}
	if got := v.Frames(later, nil); len(got) != 0 {
		t.Errorf("Frames of a node newer than the view: %q", got)
	}
	if got := v.Frames(0, nil); len(got) != 0 {
		t.Errorf("Frames of the root: %q", got)
	}
}
