package flame

import "slices"

// Frames appends to dst the frame names of the stack that ends at node n of the view (a node the trie's Leaf
// returned before the view was made), the process name first, and returns the extended slice; a node the
// view does not have appends nothing. It lets a caller that holds counts per leaf classify the leaves by
// their frames (which stacks hold a function, which end in it) without building a tree per set of counts.
func (v *View) Frames(n uint32, dst []string) []string {
	if int(n) >= v.nNodes {
		return dst
	}
	start := len(dst)
	for ; n != 0; n = v.node(n).parent {
		dst = append(dst, v.names[v.frameOf(n)])
	}
	slices.Reverse(dst[start:])
	return dst
}
