// Package flame turns aggregated stack samples into flame-graph trees,
// top-function tables and export files (folded text, speedscope JSON and
// gzipped pprof).
//
// A stack is a string of frames joined by ';', root first: the first frame is
// the process name (comm) and the last one is the leaf that was running when
// the sample was taken, for example "python3;main_[p];handle_[p];read_[k]".
// A Builder merges such stacks, each with a sample count, into a prefix tree
// (a trie of frames). All values it reports are exact sums of the counts that
// were added: nothing is sampled, scaled or approximated, and truncation of a
// large tree moves the cut values into synthetic "other" nodes instead of
// dropping them.
//
// The trie is stored compactly: frame names are interned once and nodes
// live in chunked arrays indexed by a 32-bit id, 24 bytes per node (parent,
// frame id, first child, next sibling, self count), which never move or get
// copied as they grow. The children of a node form a linked list, and the
// children of a node with many of them are also indexed in an open
// addressing hash table keyed by (parent id, frame id).
//
// Merging is fastest when stacks arrive in lexicographic order (for
// example with ORDER BY stack in SQL): a new stack first skips the bytes it
// shares with the previous one and reuses that stack's path without any
// lookup. In random order each frame of a large input costs a cache miss;
// the Builder detects that case and merges stacks in batches that walk down
// the tree together, which overlaps the misses of different stacks, but
// sorted input remains several times faster.
//
// A server that builds many trees over the same stacks keeps a trie made by
// NewTrie instead, merges each stack into it once (Leaf), and builds each
// tree in a View of it from counts per leaf (AddLeaf, AddBaseLeaf): no text
// is merged per tree, the order of the counts does not matter, and a view of
// a trie of 1M stacks builds its tree in tens of milliseconds.
//
// A Builder is not safe for concurrent use; the views of one trie are, as
// long as no Leaf runs at the same time.
package flame

import (
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
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

// Node storage is chunked so that growing never copies.
const (
	chunkBits = 16
	chunkSize = 1 << chunkBits
	chunkMask = chunkSize - 1
)

// hubFanout is the number of children above which the children of a node
// are indexed in the edge table instead of being found by walking the list.
const hubFanout = 8

// hubBit marks, in nodeRec.frame, a node whose children are indexed in the
// edge table.
const hubBit = 1 << 31

// nodeRec is the trie record of a node.
type nodeRec struct {
	parent uint32
	frame  uint32 // frame id, plus hubBit for a hub
	first  uint32 // first child, 0 for none (the root is nobody's child)
	next   uint32 // next sibling, 0 for none
}

// edge is one slot of the hub child table: the child of parent for frame.
// A zero child marks an empty slot.
type edge struct {
	parent uint32
	frame  uint32
	child  uint32
}

// Builder accumulates stacks and their counts into a prefix tree of frames,
// optionally with a second set of counts for the baseline of a diff.
// The zero value is ready to use.
type Builder struct {
	// Frame interning: names[id] is the name of frame id and nameTab an
	// open addressing table of nameSlot values keyed by the maphash of the
	// name.
	names   []string
	nameTab []uint64
	seed    maphash.Seed

	// The trie. Node 0 is the root; every other node has a parent with a
	// smaller id, so iterating ids downwards visits children before their
	// parents.
	nodes     [][]nodeRec
	selfs     [][]uint64 // samples whose leaf is the node (comparison side)
	baseSelfs [][]uint64 // same for the baseline side; nil until AddBase
	nNodes    int
	edges     []edge // children of hubs; nil until the first hub
	nEdges    int

	// prev is the previous stack and prevPath[d] its node at depth d+1.
	prev     string
	prevPath []uint32

	// Mode selection: while stacks arrive sorted they are merged one by
	// one along the previous path; in random order they are queued in
	// pending and merged a batch at a time (see flush). shared and seen
	// count the bytes that recent stacks shared with their predecessor
	// and their total length.
	batching bool
	pending  []pendingStack
	shared   int
	seen     int
	nRecent  int
	// Scratch space of flush.
	ids  []uint32
	offs []int
	curs []uint32

	total     uint64
	baseTotal uint64
	hasBase   bool

	// trieOnly marks a Builder made by NewTrie, which holds no counts, and
	// view one made by View, which shares another Builder's trie.
	trieOnly bool
	view     bool
	// trie is the trie a view reads, and ranks, on a trie, the name ranks its views share.
	trie  *Builder
	ranks atomic.Pointer[ranks]

	// Derived data, dropped when a stack is added.
	cache *derived
}

func (b *Builder) init() {
	if b.nNodes != 0 {
		return
	}
	b.seed = maphash.MakeSeed()
	b.nameTab = make([]uint64, 64)
	b.newNode(0, 0) // the root
}

func (b *Builder) node(n uint32) *nodeRec { return &b.nodes[n>>chunkBits][n&chunkMask] }

func (b *Builder) selfOf(n uint32) uint64 { return b.selfs[n>>chunkBits][n&chunkMask] }

func (b *Builder) baseSelfOf(n uint32) uint64 {
	if b.baseSelfs == nil {
		return 0
	}
	return b.baseSelfs[n>>chunkBits][n&chunkMask]
}

func (b *Builder) frameOf(n uint32) uint32 { return b.node(n).frame &^ hubBit }

// newNode appends a node and returns its id; it does not link it.
func (b *Builder) newNode(parent, frame uint32) uint32 {
	id := b.nNodes
	if uint64(id) >= hubBit {
		panic("flame: too many tree nodes")
	}
	if id&chunkMask == 0 {
		b.nodes = append(b.nodes, make([]nodeRec, chunkSize))
		if !b.trieOnly {
			b.selfs = append(b.selfs, make([]uint64, chunkSize))
		}
		if b.baseSelfs != nil {
			b.baseSelfs = append(b.baseSelfs, make([]uint64, chunkSize))
		}
	}
	b.nodes[id>>chunkBits][id&chunkMask] = nodeRec{parent: parent, frame: frame}
	b.nNodes++
	return uint32(id)
}

// Add adds count samples of stack, whose frames are joined by ';' with the
// process name first. Frame names may contain any byte but ';' and may be
// empty ("a;;b" has an empty middle frame). An empty stack or a zero count
// is ignored. The sums are kept in uint64 and are exact as long as the total
// of all counts fits in a uint64. The Builder keeps references to the last
// few stacks it was given (Go strings are immutable, so this is invisible
// to callers).
func (b *Builder) Add(stack string, count uint64) {
	if count == 0 || stack == "" {
		return
	}
	b.total += count
	b.add(stack, count, false)
}

// AddBase adds count samples of stack to the baseline side of a diff, with
// the same rules as Add. Once AddBase has been called with a non-zero count,
// trees carry Base and BaseSelf next to Value and Self.
func (b *Builder) AddBase(stack string, count uint64) {
	if count == 0 || stack == "" {
		return
	}
	b.baseTotal += count
	b.hasBase = true
	b.add(stack, count, true)
}

// pendingStack is a stack queued for the next batch.
type pendingStack struct {
	s     string
	count uint64
	base  bool
}

// batchSize is the number of stacks merged together in random-order mode.
const batchSize = 64

func (b *Builder) add(s string, count uint64, base bool) {
	if b.trieOnly || b.view {
		panic("flame: Add on a trie or a view; use Leaf and AddLeaf")
	}
	b.init()
	b.cache = nil
	if b.batching {
		b.pending = append(b.pending, pendingStack{s, count, base})
		if len(b.pending) == batchSize {
			b.flush()
		}
		return
	}
	b.count(b.insert(s), count, base)
	// Switch to batches when stacks stop sharing most of their bytes
	// with their predecessor.
	if b.nRecent++; b.nRecent == batchSize {
		if 2*b.shared < b.seen {
			b.batching = true
		}
		b.shared, b.seen, b.nRecent = 0, 0, 0
	}
}

// count adds count to the self count of node n.
func (b *Builder) count(n uint32, count uint64, base bool) {
	if !base {
		b.selfs[n>>chunkBits][n&chunkMask] += count
		return
	}
	if b.baseSelfs == nil {
		b.baseSelfs = make([][]uint64, len(b.nodes))
		for i := range b.baseSelfs {
			if b.view {
				b.baseSelfs[i] = getChunk()
			} else {
				b.baseSelfs[i] = make([]uint64, chunkSize)
			}
		}
	}
	b.baseSelfs[n>>chunkBits][n&chunkMask] += count
}

// A query server makes a view per request: the views' count chunks and derived arrays come from pools, and
// Release gives them back, so that a busy server does not allocate (and collect) megabytes per request.
var (
	chunkPool = sync.Pool{New: func() any { return new([chunkSize]uint64) }}
	slicePool sync.Pool // of *[]uint64
)

// getChunk returns a zeroed count chunk.
func getChunk() []uint64 { return chunkPool.Get().(*[chunkSize]uint64)[:] }

func putChunk(c []uint64) {
	clear(c)
	chunkPool.Put((*[chunkSize]uint64)(c))
}

// getSlice returns a slice of n values that are not zeroed.
func getSlice(n int) []uint64 {
	if p, ok := slicePool.Get().(*[]uint64); ok && cap(*p) >= n {
		return (*p)[:n]
	}
	return make([]uint64, n)
}

func putSlice(s []uint64) {
	if s != nil {
		slicePool.Put(&s)
	}
}

// Release gives the memory of a view back for other views to reuse. Trees and tables already returned
// stay valid; the view itself must not be used again. Release does nothing on other Builders.
func (b *Builder) Release() {
	if !b.view {
		return
	}
	for _, c := range b.selfs {
		putChunk(c)
	}
	for _, c := range b.baseSelfs {
		putChunk(c)
	}
	if d := b.cache; d != nil {
		putSlice(d.value)
		putSlice(d.base)
	}
	// Using the view again now panics instead of reading reused memory.
	b.selfs, b.baseSelfs, b.cache, b.nodes = nil, nil, nil, nil
}

// flush merges the queued stacks.
//
// Merging a stack in random order costs a cache miss per frame, each
// depending on the previous one. A batch hides most of that latency: the
// frames of all its stacks are interned first, then the stacks walk down
// the tree together one level at a time, so that the lookups of different
// stacks are independent and the processor overlaps their misses.
func (b *Builder) flush() {
	p := b.pending
	if len(p) == 0 {
		return
	}
	b.pending = p[:0]
	// Go back to one by one merging when the batch looks sorted.
	shared, seen := 0, 0
	prev := b.prev
	for _, ps := range p {
		shared += commonPrefix(ps.s, prev)
		seen += len(ps.s)
		prev = ps.s
	}
	if 2*shared >= seen {
		b.batching = false
		for _, ps := range p {
			b.count(b.insert(ps.s), ps.count, ps.base)
		}
		clear(p)
		return
	}

	ids, offs := b.ids[:0], b.offs[:0]
	for _, ps := range p {
		offs = append(offs, len(ids))
		s := ps.s
		for pos := 0; ; {
			end := strings.IndexByte(s[pos:], ';')
			if end < 0 {
				end = len(s)
			} else {
				end += pos
			}
			ids = append(ids, b.intern(s[pos:end]))
			if end == len(s) {
				break
			}
			pos = end + 1
		}
	}
	offs = append(offs, len(ids))
	curs := append(b.curs[:0], make([]uint32, len(p))...)
	last := len(p) - 1
	b.prevPath = b.prevPath[:0]
	for depth, active := 0, true; active; depth++ {
		active = false
		for i := range p {
			k := offs[i] + depth
			if k >= offs[i+1] {
				continue
			}
			curs[i] = b.child(curs[i], ids[k])
			active = true
		}
		if offs[last]+depth < offs[last+1] {
			b.prevPath = append(b.prevPath, curs[last])
		}
	}
	for i, ps := range p {
		b.count(curs[i], ps.count, ps.base)
	}
	b.prev = p[last].s
	b.ids, b.offs, b.curs = ids, offs, curs
	clear(p) // drop the references to the stacks
}

// NewTrie returns a Builder that holds only a trie of stacks, to be shared
// by many Views: Leaf adds stacks to it, and each View counts samples on its
// nodes without merging any text. A server that builds many trees over the
// same stacks merges each stack once, and then builds a tree from counts
// per leaf in time linear in the size of the trie, whatever the order in
// which the counts arrive. Add and AddBase panic on a trie.
func NewTrie() *Builder {
	b := &Builder{trieOnly: true}
	b.init() // now, so that View, which may run concurrently, never writes to the trie
	return b
}

// Leaf returns the node of stack in a trie made by NewTrie, adding the
// nodes it lacks, and 0 for an empty stack. Stacks are merged fastest in
// byte-wise order. Leaf must not run at the same time as any other method
// of the trie or of its views.
func (b *Builder) Leaf(stack string) uint32 {
	if !b.trieOnly {
		panic("flame: Leaf on a Builder not made by NewTrie")
	}
	if stack == "" {
		return 0
	}
	b.init()
	return b.insert(stack)
}

// View returns a Builder that shares the trie's nodes as they are now and
// holds its own counts, added with AddLeaf and AddBaseLeaf. Nodes without
// a count in the view are left out of everything it returns, as if the
// stacks under them had not been added. Views may be used concurrently
// with each other, but not while Leaf adds to the trie. Add and AddBase
// panic on a view.
func (b *Builder) View() *Builder {
	if !b.trieOnly {
		panic("flame: View of a Builder not made by NewTrie")
	}
	v := &Builder{
		names: b.names, nameTab: b.nameTab, seed: b.seed,
		nodes: b.nodes, nNodes: b.nNodes, edges: b.edges, nEdges: b.nEdges,
		view: true, trie: b,
	}
	v.selfs = make([][]uint64, len(b.nodes))
	for i := range v.selfs {
		v.selfs[i] = getChunk()
	}
	return v
}

// AddLeaf adds count samples of the stack whose node, returned by the
// trie's Leaf, is n, to a view. It panics when n is not a node of the view.
func (b *Builder) AddLeaf(n uint32, count uint64) {
	b.addLeaf(n, count, false)
}

// AddBaseLeaf is AddLeaf for the baseline side of a diff (see AddBase).
func (b *Builder) AddBaseLeaf(n uint32, count uint64) {
	b.addLeaf(n, count, true)
}

func (b *Builder) addLeaf(n uint32, count uint64, base bool) {
	if !b.view {
		panic("flame: AddLeaf on a Builder not made by View")
	}
	if int(n) >= b.nNodes {
		panic("flame: AddLeaf with a node the view does not have")
	}
	if count == 0 || n == 0 {
		return
	}
	b.cache = nil
	if base {
		b.baseTotal += count
		b.hasBase = true
	} else {
		b.total += count
	}
	b.count(n, count, base)
}

// AddLeafDelta adds a signed count to the leaf n of a view, on the comparison side or (base) the
// baseline. Counts are kept modulo 2^64, so a sum over segments, some of them subtracted, is exact whatever
// the order of the terms, as long as it ends at zero or above; DropNegative must follow the last delta.
func (b *Builder) AddLeafDelta(n uint32, delta int64, base bool) {
	b.addLeaf(n, uint64(delta), base)
}

// DropNegative zeroes the leaf counts of a view that ended below zero (read as signed) after
// AddLeafDelta, takes them out of the totals and returns how many there were.
func (b *Builder) DropNegative() int {
	dropped := 0
	fix := func(chunks [][]uint64, total *uint64) {
		for _, c := range chunks {
			for i, v := range c {
				if int64(v) < 0 {
					*total -= v
					c[i] = 0
					dropped++
				}
			}
		}
	}
	fix(b.selfs, &b.total)
	fix(b.baseSelfs, &b.baseTotal)
	b.cache = nil
	return dropped
}

// Total returns the sum of the counts given to Add.
func (b *Builder) Total() uint64 { return b.total }

// BaseTotal returns the sum of the counts given to AddBase.
func (b *Builder) BaseTotal() uint64 { return b.baseTotal }

// HasBase reports whether the Builder holds a baseline, that is whether
// AddBase was called with a non-zero count.
func (b *Builder) HasBase() bool { return b.hasBase }

// Nodes returns the number of nodes of the full tree, root included: for a
// view those with samples in it, for a trie all of them.
func (b *Builder) Nodes() int {
	b.flush()
	if b.view {
		d := b.derive()
		n := 1
		for i := 1; i < b.nNodes; i++ {
			if d.live(uint32(i)) {
				n++
			}
		}
		return n
	}
	return max(b.nNodes, 1)
}

// commonPrefix returns the length of the longest common prefix of a and b.
func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	i := 0
	// Skip equal 64-byte blocks with the vectorized string comparison,
	// then find the first differing byte eight bytes at a time.
	for i+64 <= n && a[i:i+64] == b[i:i+64] {
		i += 64
	}
	if i+8 <= n {
		ab := unsafe.Slice(unsafe.StringData(a), n)
		bb := unsafe.Slice(unsafe.StringData(b), n)
		for ; i+8 <= n; i += 8 {
			if x := binary.LittleEndian.Uint64(ab[i:]) ^ binary.LittleEndian.Uint64(bb[i:]); x != 0 {
				return i + bits.TrailingZeros64(x)>>3
			}
		}
	}
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

// insert returns the trie node of stack s, creating the missing nodes.
func (b *Builder) insert(s string) uint32 {
	cur := uint32(0)
	pos := 0
	b.seen += len(s)
	if len(b.prevPath) > 0 {
		// Reuse the path of the previous stack for the frames the two
		// stacks share. Every ';' inside the common byte prefix ends a
		// frame of both; the frame that the common prefix ends in is
		// shared too if both stacks end it there.
		m := commonPrefix(s, b.prev)
		b.shared += m
		d := strings.Count(s[:m], ";")
		if d > 0 {
			pos = strings.LastIndexByte(s[:m], ';') + 1
		}
		if (m == len(s) || s[m] == ';') && (m == len(b.prev) || b.prev[m] == ';') {
			cur = b.prevPath[d]
			b.prevPath = b.prevPath[:d+1]
			if m == len(s) {
				b.prev = s
				return cur
			}
			pos = m + 1
		} else {
			if d > 0 {
				cur = b.prevPath[d-1]
			}
			b.prevPath = b.prevPath[:d]
		}
	}
	b.prev = s
	for {
		end := strings.IndexByte(s[pos:], ';')
		if end < 0 {
			end = len(s)
		} else {
			end += pos
		}
		cur = b.child(cur, b.intern(s[pos:end]))
		b.prevPath = append(b.prevPath, cur)
		if end == len(s) {
			return cur
		}
		pos = end + 1
	}
}

// nameSlot packs a name table slot: the high 32 bits of the name's hash
// and the frame id + 1 (0 marks an empty slot).
func nameSlot(h uint64, id uint32) uint64 { return h&^0xffffffff | uint64(id+1) }

// intern returns the id of frame name f, adding it if it is new.
func (b *Builder) intern(f string) uint32 {
	h := maphash.String(b.seed, f)
	mask := uint64(len(b.nameTab) - 1)
	i := h & mask
	for {
		v := b.nameTab[i]
		if v == 0 {
			break
		}
		if (v^h)>>32 == 0 {
			if id := uint32(v) - 1; b.names[id] == f {
				return id
			}
		}
		i = (i + 1) & mask
	}
	id := uint32(len(b.names))
	if id >= hubBit-1 {
		panic("flame: too many distinct frame names")
	}
	// Clone so that the Builder never pins the caller's stack string.
	b.names = append(b.names, strings.Clone(f))
	b.nameTab[i] = nameSlot(h, id)
	if len(b.names)*4 > len(b.nameTab)*3 {
		b.rehashNames(len(b.nameTab) * 2)
	}
	return id
}

func (b *Builder) rehashNames(size int) {
	tab := make([]uint64, size)
	mask := uint64(size - 1)
	for id, name := range b.names {
		h := maphash.String(b.seed, name)
		i := h & mask
		for tab[i] != 0 {
			i = (i + 1) & mask
		}
		tab[i] = nameSlot(h, uint32(id))
	}
	b.nameTab = tab
}

// lookupName returns the id of frame name f and whether it is known.
func (b *Builder) lookupName(f string) (uint32, bool) {
	if b.nameTab == nil {
		return 0, false
	}
	h := maphash.String(b.seed, f)
	mask := uint64(len(b.nameTab) - 1)
	i := h & mask
	for {
		v := b.nameTab[i]
		if v == 0 {
			return 0, false
		}
		// A view does not know the names added to its trie after it.
		if (v^h)>>32 == 0 {
			if id := uint32(v) - 1; int(id) < len(b.names) && b.names[id] == f {
				return id, true
			}
		}
		i = (i + 1) & mask
	}
}

// edgeHash mixes a (parent, frame) key (the murmur3 finalizer).
func edgeHash(parent, frame uint32) uint64 {
	k := uint64(parent)<<32 | uint64(frame)
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}

// child returns the child of parent for frame, creating it if needed.
func (b *Builder) child(parent, frame uint32) uint32 {
	pr := b.node(parent)
	if pr.frame&hubBit != 0 {
		slot := b.findEdge(parent, frame)
		if e := &b.edges[slot]; e.child != 0 {
			return e.child
		}
		id := b.link(parent, pr, frame)
		b.edges[slot] = edge{parent: parent, frame: frame, child: id}
		b.nEdges++
		if b.nEdges*4 > len(b.edges)*3 {
			b.growEdges(len(b.edges) * 2)
		}
		return id
	}
	k := 0
	for c := pr.first; c != 0; k++ {
		cr := b.node(c)
		if cr.frame&^hubBit == frame {
			return c
		}
		c = cr.next
	}
	id := b.link(parent, pr, frame)
	if k+1 > hubFanout {
		b.makeHub(parent, pr)
	}
	return id
}

// link creates a child of parent (whose record is pr) for frame and puts it
// first in the parent's child list.
func (b *Builder) link(parent uint32, pr *nodeRec, frame uint32) uint32 {
	id := b.newNode(parent, frame)
	// Chunks never move, so pr is still valid.
	b.node(id).next = pr.first
	pr.first = id
	return id
}

// makeHub indexes the children of parent in the edge table.
func (b *Builder) makeHub(parent uint32, pr *nodeRec) {
	pr.frame |= hubBit
	for c := pr.first; c != 0; c = b.node(c).next {
		if b.nEdges*4 >= len(b.edges)*3 {
			b.growEdges(max(2*len(b.edges), 64))
		}
		slot := b.findEdge(parent, b.frameOf(c))
		b.edges[slot] = edge{parent: parent, frame: b.frameOf(c), child: c}
		b.nEdges++
	}
}

// findEdge returns the slot of (parent, frame) in the edge table, or the
// empty slot where it belongs.
func (b *Builder) findEdge(parent, frame uint32) uint64 {
	mask := uint64(len(b.edges) - 1)
	i := edgeHash(parent, frame) & mask
	for {
		e := &b.edges[i]
		if e.child == 0 || (e.parent == parent && e.frame == frame) {
			return i
		}
		i = (i + 1) & mask
	}
}

func (b *Builder) growEdges(size int) {
	old := b.edges
	b.edges = make([]edge, size)
	for _, e := range old {
		if e.child != 0 {
			b.edges[b.findEdge(e.parent, e.frame)] = e
		}
	}
}

// lookupChild returns the child of parent for frame and whether it exists.
func (b *Builder) lookupChild(parent, frame uint32) (uint32, bool) {
	pr := b.node(parent)
	// A view walks the list: its trie may have made a hub after it.
	if pr.frame&hubBit != 0 && !b.view {
		e := b.edges[b.findEdge(parent, frame)]
		return e.child, e.child != 0
	}
	for c := pr.first; c != 0; c = b.node(c).next {
		if b.frameOf(c) == frame {
			return c, true
		}
	}
	return 0, false
}
