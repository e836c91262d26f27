package flame

import (
	"cmp"
	"hash/maphash"
	"math"
	"slices"
	"strings"
	"sync/atomic"
)

// rootName is the name of the root node of a full tree.
const rootName = "root"

// otherName is the name of the synthetic node that holds the values of
// the children that were cut by truncation.
const otherName = "other"

// Node is one node of a flame-graph tree as it is served by the query API.
//
// Value is the inclusive count of the node (its own samples plus those of
// all its descendants) and Self the count of the samples whose leaf is this
// node, so Value always equals Self plus the sum of the children's values.
// Base and BaseSelf carry the same two sums for the baseline side of a diff
// and are zero when the Builder holds no baseline. Other marks the synthetic
// child named "other" that holds the children cut by truncation. Total and
// BaseTotal are set on the root of a diff tree only; they repeat the root's
// Value and Base as the API's top-level "total" and "base_total" fields.
// Zero Base, BaseSelf, Total and BaseTotal, a false Other and empty Children
// are left out of the JSON encoding.
type Node struct {
	Name      string `json:"name"`
	Value     uint64 `json:"value"`
	Self      uint64 `json:"self"`
	Base      uint64 `json:"base,omitempty"`
	BaseSelf  uint64 `json:"base_self,omitempty"`
	Other     bool   `json:"other,omitempty"`
	Total     uint64 `json:"total,omitempty"`
	BaseTotal uint64 `json:"base_total,omitempty"`
	// Share and BaseShare are, in a diff, Value and Base as fractions of their side's total (the whole
	// graph's, also in a Focus subtree), and Delta is Share minus BaseShare: the normalized change a diff
	// view colours by, positive where the comparison spends a larger part of its samples; all three to six
	// significant digits. Zero ones are left out of the JSON encoding.
	Share     float64 `json:"share,omitempty"`
	BaseShare float64 `json:"base_share,omitempty"`
	Delta     float64 `json:"delta,omitempty"`
	Children  []*Node `json:"children,omitempty"`
}

// graph is what trees, tables and exports are read from: a shape and counts
// on its nodes. A Builder's graph counts on every node of its own shape. A
// View's is a snapshot of its trie's shape (see snapshot), counts on the
// nodes of the stacks given to it only, and takes its memory from pools.
type graph struct {
	shape
	selfs     [][]uint64 // samples whose leaf is the node (comparison side)
	baseSelfs [][]uint64 // same for the baseline side; nil until the first baseline count
	total     uint64
	baseTotal uint64
	hasBase   bool

	// snapshot marks the graph of a View. Its trie may have grown since:
	// nodes past the view's nNodes are not its own, and a node that became
	// a hub later has children its copy of the edge table does not index.
	snapshot bool
	// ranks, in a View, is the name order its trie shares with its other
	// views (see nameRanks); nil in a Builder.
	ranks *atomic.Pointer[ranks]

	// Derived data, dropped when a count is added.
	cache *derived
}

func (g *graph) selfOf(n uint32) uint64 { return g.selfs[n>>chunkBits][n&chunkMask] }

func (g *graph) baseSelfOf(n uint32) uint64 {
	if g.baseSelfs == nil {
		return 0
	}
	return g.baseSelfs[n>>chunkBits][n&chunkMask]
}

// count adds count to the self count of node n, whose chunk of counts
// exists.
func (g *graph) count(n uint32, count uint64, base bool) {
	if !base {
		g.selfs[n>>chunkBits][n&chunkMask] += count
		return
	}
	if g.baseSelfs == nil {
		g.baseSelfs = make([][]uint64, len(g.nodes))
		for i := range g.baseSelfs {
			if g.snapshot {
				g.baseSelfs[i] = getChunk()
			} else {
				g.baseSelfs[i] = make([]uint64, chunkSize)
			}
		}
	}
	g.baseSelfs[n>>chunkBits][n&chunkMask] += count
}

// liveNodes returns the number of nodes of the full tree, root included:
// in a view those with samples in it.
func (g *graph) liveNodes() int {
	if !g.snapshot {
		return max(g.nNodes, 1)
	}
	d := g.derive()
	n := 1
	for i := 1; i < g.nNodes; i++ {
		if d.live(uint32(i)) {
			n++
		}
	}
	return n
}

// derived holds the data computed from the trie for trees, tables and
// exports. It is dropped when a stack is added.
type derived struct {
	value []uint64 // inclusive comparison count per node
	base  []uint64 // inclusive baseline count per node; nil without a baseline
	rank  []uint32 // rank of each frame id in the byte order of the names
}

// derive returns the derived data, computing it if needed.
func (g *graph) derive() *derived {
	if g.cache != nil {
		return g.cache
	}
	n := g.nNodes
	// A view's arrays are overwritten whole below: its self chunks cover every node.
	alloc := func() []uint64 {
		if g.snapshot {
			return getSlice(n)
		}
		return make([]uint64, n)
	}
	d := &derived{value: alloc()}
	for c := range g.selfs {
		copy(d.value[c<<chunkBits:], g.selfs[c])
	}
	if g.hasBase {
		d.base = alloc()
		for c := range g.baseSelfs {
			copy(d.base[c<<chunkBits:], g.baseSelfs[c])
		}
	}
	// Children have larger ids than their parents, so one downward pass
	// sums every subtree.
	for c := len(g.nodes) - 1; c >= 0; c-- {
		chunk := g.nodes[c]
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
	d.rank = g.nameRanks()
	g.cache = d
	return d
}

// nameRanks returns the rank of each frame name in byte order. The views of a trie share it through the
// trie while its names do not change, instead of sorting them per view.
func (g *graph) nameRanks() []uint32 {
	if g.ranks != nil {
		if r := g.ranks.Load(); r != nil && r.n == len(g.names) {
			return r.rank
		}
	}
	order := make([]uint32, len(g.names))
	for i := range order {
		order[i] = uint32(i)
	}
	slices.SortFunc(order, func(x, y uint32) int { return strings.Compare(g.names[x], g.names[y]) })
	rank := make([]uint32, len(g.names))
	for r, id := range order {
		rank[id] = uint32(r)
	}
	if g.ranks != nil {
		if old := g.ranks.Load(); old == nil || old.n < len(g.names) {
			g.ranks.CompareAndSwap(old, &ranks{len(g.names), rank})
		}
	}
	return rank
}

// live reports whether node n has samples on either side. Every node of a
// Builder has; a node of a view has only when a stack under it was counted.
// Nodes added to a trie after a view was made are not the view's.
func (d *derived) live(n uint32) bool {
	if int(n) >= len(d.value) {
		return false
	}
	return d.value[n] != 0 || (d.base != nil && d.base[n] != 0)
}

// hasKids reports whether node n has a live child.
func (g *graph) hasKids(d *derived, n uint32) bool {
	for c := g.node(n).first; c != 0; c = g.node(c).next {
		if d.live(c) {
			return true
		}
	}
	return false
}

// kidsOf appends the live children of node n, sorted by frame name, to dst.
func (g *graph) kidsOf(d *derived, dst []uint32, n uint32) []uint32 {
	start := len(dst)
	for c := g.node(n).first; c != 0; c = g.node(c).next {
		if d.live(c) {
			dst = append(dst, c)
		}
	}
	if k := dst[start:]; len(k) > 1 {
		slices.SortFunc(k, func(x, y uint32) int {
			return cmp.Compare(d.rank[g.frameOf(x)], d.rank[g.frameOf(y)])
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

// focus returns the tree under the node of path (see Builder.Focus).
func (g *graph) focus(path []string, maxNodes int) *Node {
	if len(path) == 0 {
		return g.tree(0, rootName, maxNodes)
	}
	n, ok := g.find(path)
	if !ok || !g.derive().live(n) {
		return nil
	}
	return g.tree(n, path[len(path)-1], maxNodes)
}

// find returns the node of a frame path.
func (g *graph) find(path []string) (uint32, bool) {
	cur := uint32(0)
	for _, f := range path {
		id, ok := g.lookupName(f)
		if !ok {
			return 0, false
		}
		if cur, ok = g.lookupChild(cur, id); !ok {
			return 0, false
		}
	}
	return cur, true
}

// tree returns the tree under root, named name (see Builder.Tree).
func (g *graph) tree(root uint32, name string, maxNodes int) *Node {
	d := g.derive()
	var keep map[uint32]int32
	if maxNodes > 0 && !g.fits(d, root, maxNodes) {
		keep = g.selectNodes(d, root, maxNodes)
	}
	out := g.build(d, root, keep)
	out.Name = name
	if d.base != nil {
		out.Total = out.Value
		out.BaseTotal = out.Base
		g.shares(out)
	}
	return out
}

// fits reports whether the subtree of root has at most limit live nodes.
func (g *graph) fits(d *derived, root uint32, limit int) bool {
	if root == 0 && !g.snapshot {
		return g.liveNodes() <= limit // every node of a Builder is live
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
		for c := g.node(n).first; c != 0; c = g.node(c).next {
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
func (g *graph) selectNodes(d *derived, root uint32, maxNodes int) map[uint32]int32 {
	keep := make(map[uint32]int32, maxNodes)
	var h candHeap
	seq := uint32(0)
	var scratch []uint32
	expand := func(n uint32) int32 {
		scratch = g.kidsOf(d, scratch[:0], n)
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
		p := g.node(c.node).parent
		cost := 1
		if g.hasKids(d, c.node) {
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
func (g *graph) build(d *derived, root uint32, keep map[uint32]int32) *Node {
	out := g.outNode(d, root)
	type item struct {
		n   uint32
		out *Node
	}
	stack := []item{{root, out}}
	var kids []uint32
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		kids = g.kidsOf(d, kids[:0], it.n)
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
			cn := g.outNode(d, c)
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

func (g *graph) outNode(d *derived, n uint32) *Node {
	out := &Node{Value: d.value[n], Self: g.selfOf(n)}
	if n != 0 {
		out.Name = g.names[g.frameOf(n)]
	}
	if d.base != nil {
		out.Base = d.base[n]
		out.BaseSelf = g.baseSelfOf(n)
	}
	return out
}

// shares sets Share, BaseShare and Delta on every node of a diff tree, to six significant digits: they are
// for display and sorting (the exact counts are in the node), and shorter numbers keep a diff's JSON small.
func (g *graph) shares(root *Node) {
	stack := []*Node{root}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		var share, baseShare float64
		if g.total > 0 {
			share = float64(n.Value) / float64(g.total)
		}
		if g.baseTotal > 0 {
			baseShare = float64(n.Base) / float64(g.baseTotal)
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

// lookupName returns the id of frame name f and whether it is known.
func (g *graph) lookupName(f string) (uint32, bool) {
	if g.nameTab == nil {
		return 0, false
	}
	h := maphash.String(g.seed, f)
	mask := uint64(len(g.nameTab) - 1)
	i := h & mask
	for {
		v := g.nameTab[i]
		if v == 0 {
			return 0, false
		}
		// A view does not know the names added to its trie after it.
		if (v^h)>>32 == 0 {
			if id := uint32(v) - 1; int(id) < len(g.names) && g.names[id] == f {
				return id, true
			}
		}
		i = (i + 1) & mask
	}
}

// lookupChild returns the child of parent for frame and whether it exists.
func (g *graph) lookupChild(parent, frame uint32) (uint32, bool) {
	pr := g.node(parent)
	// A view walks the list: its trie may have made a hub after it.
	if pr.frame&hubBit != 0 && !g.snapshot {
		e := g.edges[g.findEdge(parent, frame)]
		return e.child, e.child != 0
	}
	for c := pr.first; c != 0; c = g.node(c).next {
		if g.frameOf(c) == frame {
			return c, true
		}
	}
	return 0, false
}
