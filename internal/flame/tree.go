package flame

import (
	"cmp"
	"math"
	"slices"
	"strings"
)

// derived holds the data computed from the trie for trees, tables and
// exports. It is dropped when a stack is added.
type derived struct {
	value []uint64 // inclusive comparison count per node
	base  []uint64 // inclusive baseline count per node; nil without a baseline
	rank  []uint32 // rank of each frame id in the byte order of the names
}

// derive returns the derived data, computing it if needed.
func (b *Builder) derive() *derived {
	b.flush()
	if b.cache != nil {
		return b.cache
	}
	b.init()
	n := b.nNodes
	// A view's arrays are overwritten whole below: its self chunks cover every node.
	alloc := func() []uint64 {
		if b.view {
			return getSlice(n)
		}
		return make([]uint64, n)
	}
	d := &derived{value: alloc()}
	for c := range b.selfs {
		copy(d.value[c<<chunkBits:], b.selfs[c])
	}
	if b.hasBase {
		d.base = alloc()
		for c := range b.baseSelfs {
			copy(d.base[c<<chunkBits:], b.baseSelfs[c])
		}
	}
	// Children have larger ids than their parents, so one downward pass
	// sums every subtree.
	for c := len(b.nodes) - 1; c >= 0; c-- {
		chunk := b.nodes[c]
		lo := c << chunkBits
		for i := min(n-lo, chunkSize) - 1; i >= 0; i-- {
			if lo+i == 0 {
				break
			}
			p := chunk[i].parent
			d.value[p] += d.value[lo+i]
			if d.base != nil {
				d.base[p] += d.base[lo+i]
			}
		}
	}
	d.rank = b.nameRanks()
	b.cache = d
	return d
}

// ranks is the rank of each frame id in the byte order of the first n names.
type ranks struct {
	n    int
	rank []uint32
}

// nameRanks returns the rank of each frame name in byte order. The views of a trie share it through the
// trie while its names do not change, instead of sorting them per view.
func (b *Builder) nameRanks() []uint32 {
	if b.trie != nil {
		if r := b.trie.ranks.Load(); r != nil && r.n == len(b.names) {
			return r.rank
		}
	}
	order := make([]uint32, len(b.names))
	for i := range order {
		order[i] = uint32(i)
	}
	slices.SortFunc(order, func(x, y uint32) int { return strings.Compare(b.names[x], b.names[y]) })
	rank := make([]uint32, len(b.names))
	for r, id := range order {
		rank[id] = uint32(r)
	}
	if b.trie != nil {
		if old := b.trie.ranks.Load(); old == nil || old.n < len(b.names) {
			b.trie.ranks.CompareAndSwap(old, &ranks{len(b.names), rank})
		}
	}
	return rank
}

// live reports whether node n has samples on either side. Every node of a
// Builder fed by Add has; a node of a view has only when a stack under it
// was counted.
// Nodes added to a trie after a view was made are not the view's.
func (d *derived) live(n uint32) bool {
	if int(n) >= len(d.value) {
		return false
	}
	return d.value[n] != 0 || (d.base != nil && d.base[n] != 0)
}

// hasKids reports whether node n has a live child.
func (b *Builder) hasKids(d *derived, n uint32) bool {
	for c := b.node(n).first; c != 0; c = b.node(c).next {
		if d.live(c) {
			return true
		}
	}
	return false
}

// kidsOf appends the live children of node n, sorted by frame name, to dst.
func (b *Builder) kidsOf(d *derived, dst []uint32, n uint32) []uint32 {
	start := len(dst)
	for c := b.node(n).first; c != 0; c = b.node(c).next {
		if d.live(c) {
			dst = append(dst, c)
		}
	}
	if k := dst[start:]; len(k) > 1 {
		slices.SortFunc(k, func(x, y uint32) int {
			return cmp.Compare(d.rank[b.frameOf(x)], d.rank[b.frameOf(y)])
		})
	}
	return dst
}

// weight is the truncation priority of node n: its comparison plus its
// baseline value. It never grows from a parent to a child, so keeping the
// heaviest nodes keeps a connected tree.
func (d *derived) weight(n uint32) uint64 {
	w := d.value[n]
	if d.base != nil {
		s := w + d.base[n]
		if s < w {
			return ^uint64(0)
		}
		w = s
	}
	return w
}

// Tree returns the flame-graph tree of everything that was added, with a
// root named "root" whose Value is the total count.
//
// Children are sorted by frame name (byte-wise), and the synthetic "other"
// child, when there is one, comes last. When maxNodes > 0 and the tree has
// more than maxNodes nodes, Tree keeps the heaviest nodes: it grows the tree
// from the root, always adding the candidate with the largest Value (plus
// Base in a diff; ties go to the candidate seen first in name order, so the
// result depends only on the data) while the result, "other" nodes
// included, stays within maxNodes nodes. The children that a node loses are
// merged into one child named "other" with Other set, whose Value, Self,
// Base and BaseSelf are the exact sums of what was cut, so every node still
// has Value == Self + sum of its children's Values and the root's Value is
// exact. The result never has more than max(maxNodes, 2) nodes.
//
// When the Builder holds a baseline (see AddBase), nodes carry Base and
// BaseSelf and the root carries Total and BaseTotal.
func (b *Builder) Tree(maxNodes int) *Node {
	return b.tree(0, rootName, maxNodes)
}

// Focus returns the tree under the node reached by path, a frame path from
// the root whose first element is the process name, with the same shape
// and truncation rules as Tree. The returned root is named after the last
// frame of path and holds the inclusive counts of that node. An empty path
// is the same as Tree. Focus returns nil when no added stack starts with
// path.
func (b *Builder) Focus(path []string, maxNodes int) *Node {
	if len(path) == 0 {
		return b.Tree(maxNodes)
	}
	n, ok := b.find(path)
	if !ok || !b.derive().live(n) {
		return nil
	}
	return b.tree(n, path[len(path)-1], maxNodes)
}

// find returns the node of a frame path.
func (b *Builder) find(path []string) (uint32, bool) {
	b.flush()
	cur := uint32(0)
	for _, f := range path {
		id, ok := b.lookupName(f)
		if !ok {
			return 0, false
		}
		if cur, ok = b.lookupChild(cur, id); !ok {
			return 0, false
		}
	}
	return cur, true
}

func (b *Builder) tree(root uint32, name string, maxNodes int) *Node {
	d := b.derive()
	var keep map[uint32]int32
	if maxNodes > 0 && !b.fits(d, root, maxNodes) {
		keep = b.selectNodes(d, root, maxNodes)
	}
	out := b.build(d, root, keep)
	out.Name = name
	if d.base != nil {
		out.Total = out.Value
		out.BaseTotal = out.Base
		b.shares(out)
	}
	return out
}

// fits reports whether the subtree of root has at most limit live nodes.
func (b *Builder) fits(d *derived, root uint32, limit int) bool {
	if root == 0 && !b.view && !b.trieOnly {
		return b.Nodes() <= limit
	}
	count := 0
	stack := []uint32{root}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		count++
		if count > limit {
			return false
		}
		for c := b.node(n).first; c != 0; c = b.node(c).next {
			if d.live(c) {
				stack = append(stack, c)
			}
		}
	}
	return true
}

// candidate is an entry of the truncation heap.
type candidate struct {
	weight uint64
	seq    uint32
	node   uint32
}

// before reports whether x must be taken before y.
func (x candidate) before(y candidate) bool {
	if x.weight != y.weight {
		return x.weight > y.weight
	}
	return x.seq < y.seq
}

// candHeap is a binary max-heap of candidates.
type candHeap []candidate

func (h *candHeap) push(c candidate) {
	*h = append(*h, c)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !s[i].before(s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *candHeap) pop() candidate {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(s) {
			break
		}
		m := l
		if r := l + 1; r < len(s) && s[r].before(s[l]) {
			m = r
		}
		if !s[m].before(s[i]) {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}

// selectNodes picks the nodes of a truncated tree under root. The result
// maps every kept node to the number of its children that were not kept.
func (b *Builder) selectNodes(d *derived, root uint32, maxNodes int) map[uint32]int32 {
	keep := make(map[uint32]int32, maxNodes)
	var h candHeap
	seq := uint32(0)
	var scratch []uint32
	expand := func(n uint32) int32 {
		scratch = b.kidsOf(d, scratch[:0], n)
		k := scratch
		for _, c := range k {
			h.push(candidate{weight: d.weight(c), seq: seq, node: c})
			seq++
		}
		return int32(len(k))
	}
	keep[root] = expand(root)
	used := 1
	if keep[root] > 0 {
		used++ // the root's "other"
	}
	for len(h) > 0 {
		c := h.pop()
		p := b.node(c.node).parent
		cost := 1
		if b.hasKids(d, c.node) {
			cost++ // its own "other" until all its children are kept
		}
		if keep[p] == 1 {
			cost-- // the parent's "other" goes away
		}
		if used+cost > maxNodes {
			break
		}
		used += cost
		keep[p]--
		keep[c.node] = expand(c.node)
	}
	return keep
}

// build converts the subtree of root to Nodes. With a nil keep everything
// is converted; otherwise only the kept nodes, plus one "other" child per
// node that lost children.
func (b *Builder) build(d *derived, root uint32, keep map[uint32]int32) *Node {
	out := b.outNode(d, root)
	type item struct {
		n   uint32
		out *Node
	}
	stack := []item{{root, out}}
	var kids []uint32
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		kids = b.kidsOf(d, kids[:0], it.n)
		if len(kids) == 0 {
			continue
		}
		var other *Node
		nChildren := len(kids)
		if keep != nil {
			nChildren -= int(keep[it.n])
			if keep[it.n] > 0 {
				other = &Node{Name: otherName, Other: true}
				nChildren++
			}
		}
		it.out.Children = make([]*Node, 0, nChildren)
		for _, c := range kids {
			if keep != nil {
				if _, ok := keep[c]; !ok {
					other.Value += d.value[c]
					if d.base != nil {
						other.Base += d.base[c]
					}
					continue
				}
			}
			cn := b.outNode(d, c)
			it.out.Children = append(it.out.Children, cn)
			stack = append(stack, item{c, cn})
		}
		if other != nil {
			other.Self = other.Value
			other.BaseSelf = other.Base
			it.out.Children = append(it.out.Children, other)
		}
	}
	return out
}

func (b *Builder) outNode(d *derived, n uint32) *Node {
	out := &Node{Value: d.value[n], Self: b.selfOf(n)}
	if n != 0 {
		out.Name = b.names[b.frameOf(n)]
	}
	if d.base != nil {
		out.Base = d.base[n]
		out.BaseSelf = b.baseSelfOf(n)
	}
	return out
}

// shares sets Share, BaseShare and Delta on every node of a diff tree, to six significant digits: they are
// for display and sorting (the exact counts are in the node), and shorter numbers keep a diff's JSON small.
func (b *Builder) shares(root *Node) {
	stack := []*Node{root}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		var share, baseShare float64
		if b.total > 0 {
			share = float64(n.Value) / float64(b.total)
		}
		if b.baseTotal > 0 {
			baseShare = float64(n.Base) / float64(b.baseTotal)
		}
		n.Share, n.BaseShare, n.Delta = sixDigits(share), sixDigits(baseShare), sixDigits(share-baseShare)
		stack = append(stack, n.Children...)
	}
}

// pow10 holds the powers of ten that float64 represents exactly.
var pow10 = func() (t [23]float64) {
	t[0] = 1
	for i := 1; i < len(t); i++ {
		t[i] = t[i-1] * 10
	}
	return t
}()

// sixDigits rounds x to six significant digits.
func sixDigits(x float64) float64 {
	a := math.Abs(x)
	if x == 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	// a is in [10^e, 10^(e+1)); shares and deltas are below 1, so look down from there.
	var e int
	if a >= 1 || a < 1e-16 {
		e = int(math.Floor(math.Log10(a)))
	} else {
		for e = -1; a < 1/pow10[-e]; e-- {
		}
	}
	var r float64
	if k := 5 - e; k >= 0 && k < len(pow10) {
		r = math.Round(x*pow10[k]) / pow10[k]
	} else {
		p := math.Pow(10, float64(k))
		r = math.Round(x*p) / p
	}
	if math.IsInf(r, 0) || math.IsNaN(r) {
		return x
	}
	return r
}
