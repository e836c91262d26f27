package flame

import (
	"io"
	"time"
)

// View holds counts on the nodes of a Trie as the trie was when Trie.View
// made it: AddLeaf and AddBaseLeaf add samples to the leaves that Leaf
// returned, and the view reads trees, tables and exports exactly as a
// Builder given the same stacks with Add and AddBase would. Nodes without a
// count in the view are left out of everything it returns, as if the stacks
// under them had not been added; nodes added to the trie after the view was
// made are not the view's.
//
// A view is not safe for concurrent use, but the views of one trie may be
// used concurrently with each other (not while Leaf adds to the trie).
// Release gives its memory back once its answers are built.
type View struct {
	graph
}

// View returns a View that shares the trie's nodes as they are now and holds
// its own counts, added with AddLeaf and AddBaseLeaf. Its count memory comes
// from a pool: Release gives it back.
func (t *Trie) View() *View {
	v := &View{}
	v.shape = t.shape
	v.snapshot = true
	v.ranks = &t.ranks
	v.selfs = make([][]uint64, len(t.nodes))
	for i := range v.selfs {
		v.selfs[i] = getChunk()
	}
	return v
}

// AddLeaf adds count samples of the stack whose node, returned by the
// trie's Leaf, is n. It panics when n is not a node of the view.
func (v *View) AddLeaf(n uint32, count uint64) {
	v.addLeaf(n, count, false)
}

// AddBaseLeaf is AddLeaf for the baseline side of a diff (see
// Builder.AddBase).
func (v *View) AddBaseLeaf(n uint32, count uint64) {
	v.addLeaf(n, count, true)
}

// AddLeafDelta adds a signed count to the leaf n, on the comparison side or (base) the baseline. Counts are
// kept modulo 2^64, so a sum over segments, some of them subtracted, is exact whatever the order of the
// terms, as long as it ends at zero or above; DropNegative must follow the last delta.
func (v *View) AddLeafDelta(n uint32, delta int64, base bool) {
	v.addLeaf(n, uint64(delta), base)
}

func (v *View) addLeaf(n uint32, count uint64, base bool) {
	if int(n) >= v.nNodes {
		panic("flame: AddLeaf with a node the view does not have")
	}
	if count == 0 || n == 0 {
		return
	}
	v.cache = nil
	if base {
		v.baseTotal += count
		v.hasBase = true
	} else {
		v.total += count
	}
	v.count(n, count, base)
}

// DropNegative zeroes the leaf counts that ended below zero (read as signed) after AddLeafDelta, takes them
// out of the totals and returns how many there were.
func (v *View) DropNegative() int {
	dropped := 0
	fix := func(chunks [][]uint64, total *uint64) {
		for _, c := range chunks {
			for i, x := range c {
				if int64(x) < 0 {
					*total -= x
					c[i] = 0
					dropped++
				}
			}
		}
	}
	fix(v.selfs, &v.total)
	fix(v.baseSelfs, &v.baseTotal)
	v.cache = nil
	return dropped
}

// Release gives the memory of the view back for other views to reuse. Trees and tables already returned
// stay valid; the view itself must not be used again.
func (v *View) Release() {
	for _, c := range v.selfs {
		putChunk(c)
	}
	for _, c := range v.baseSelfs {
		putChunk(c)
	}
	if d := v.cache; d != nil {
		putSlice(d.value)
		putSlice(d.base)
	}
	// Using the view again now panics instead of reading reused memory.
	v.selfs, v.baseSelfs, v.cache, v.nodes = nil, nil, nil, nil
}

// Total returns the sum of the comparison counts.
func (v *View) Total() uint64 { return v.total }

// BaseTotal returns the sum of the baseline counts.
func (v *View) BaseTotal() uint64 { return v.baseTotal }

// HasBase reports whether the view holds a baseline count.
func (v *View) HasBase() bool { return v.hasBase }

// Nodes returns the number of nodes with samples in the view, root included.
func (v *View) Nodes() int { return v.liveNodes() }

// Tree is Builder.Tree for the counts of the view.
func (v *View) Tree(maxNodes int) *Node { return v.tree(0, rootName, maxNodes) }

// Focus is Builder.Focus for the counts of the view.
func (v *View) Focus(path []string, maxNodes int) *Node { return v.focus(path, maxNodes) }

// TopFunctions is Builder.TopFunctions for the counts of the view.
func (v *View) TopFunctions(sortBy string, limit int) []Function {
	return v.topFunctions(sortBy, limit)
}

// WriteFolded is Builder.WriteFolded for the comparison counts of the view.
func (v *View) WriteFolded(w io.Writer) error { return v.writeFolded(w) }

// WriteSpeedscope is Builder.WriteSpeedscope for the comparison counts of the view.
func (v *View) WriteSpeedscope(w io.Writer, name string) error { return v.writeSpeedscope(w, name) }

// WritePprof is Builder.WritePprof for the comparison counts of the view.
func (v *View) WritePprof(w io.Writer, start time.Time, duration time.Duration) error {
	return v.writePprof(w, start, duration)
}
