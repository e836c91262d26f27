package flame

import (
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"strings"
	"sync/atomic"
	"unsafe"
)

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

// shape is the structure of a prefix tree of frames, without any count: the
// interned frame names and the nodes. A Builder grows its own; a Trie grows
// one that its Views copy (the slice headers, not the arrays) when they are
// made.
type shape struct {
	// Frame interning: names[id] is the name of frame id and nameTab an
	// open addressing table of nameSlot values keyed by the maphash of the
	// name.
	names   []string
	nameTab []uint64
	seed    maphash.Seed

	// The nodes. Node 0 is the root; every other node has a parent with a
	// smaller id, so iterating ids downwards visits children before their
	// parents.
	nodes  [][]nodeRec
	nNodes int
	edges  []edge // children of hubs; nil until the first hub
	nEdges int
}

// init makes the root, once.
func (t *shape) init() {
	if t.nNodes != 0 {
		return
	}
	t.seed = maphash.MakeSeed()
	t.nameTab = make([]uint64, 64)
	t.newNode(0, 0) // the root
}

func (t *shape) node(n uint32) *nodeRec { return &t.nodes[n>>chunkBits][n&chunkMask] }

func (t *shape) frameOf(n uint32) uint32 { return t.node(n).frame &^ hubBit }

// newNode appends a node and returns its id; it does not link it. The
// counts of a Builder follow the new chunks lazily (see Builder.count).
func (t *shape) newNode(parent, frame uint32) uint32 {
	id := t.nNodes
	if uint64(id) >= hubBit {
		panic("flame: too many tree nodes")
	}
	if id&chunkMask == 0 {
		t.nodes = append(t.nodes, make([]nodeRec, chunkSize))
	}
	t.nodes[id>>chunkBits][id&chunkMask] = nodeRec{parent: parent, frame: frame}
	t.nNodes++
	return uint32(id)
}

// merger is the state of merging stacks into a shape one at a time: the
// previous stack and its path, whose shared prefix a sorted stack reuses
// without any lookup, and how many bytes recent stacks shared with their
// predecessor (shared) out of their length (seen), by which a Builder picks
// its merge mode.
type merger struct {
	// prev is the previous stack and prevPath[d] its node at depth d+1.
	prev     string
	prevPath []uint32
	shared   int
	seen     int
}

// Trie is a prefix tree of stacks without counts, shared by many Views: Leaf
// adds stacks to it, and each View counts samples on its nodes without
// merging any text. A server that builds many trees over the same stacks
// merges each stack once, and then builds a tree from counts per leaf in
// time linear in the size of the trie, whatever the order in which the
// counts arrive. Make one with NewTrie.
//
// Leaf must not run at the same time as any other method of the trie or of
// its views; views may be used concurrently with each other.
type Trie struct {
	shape
	merger
	// ranks is the byte order of the names, shared by the views while the
	// names do not change (see graph.nameRanks).
	ranks atomic.Pointer[ranks]
}

// NewTrie returns an empty Trie.
func NewTrie() *Trie {
	t := &Trie{}
	t.init() // now, so that View, which may run concurrently, never writes to the trie
	return t
}

// Leaf returns the node of stack, adding the nodes it lacks, and 0 for an
// empty stack. Stacks are merged fastest in byte-wise order.
func (t *Trie) Leaf(stack string) uint32 {
	if stack == "" {
		return 0
	}
	t.init()
	return t.insert(&t.merger, stack)
}

// Nodes returns the number of nodes of the trie, root included.
func (t *Trie) Nodes() int { return max(t.nNodes, 1) }

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
func (t *shape) insert(mp *merger, s string) uint32 {
	cur := uint32(0)
	pos := 0
	mp.seen += len(s)
	if len(mp.prevPath) > 0 {
		// Reuse the path of the previous stack for the frames the two
		// stacks share. Every ';' inside the common byte prefix ends a
		// frame of both; the frame that the common prefix ends in is
		// shared too if both stacks end it there.
		m := commonPrefix(s, mp.prev)
		mp.shared += m
		d := strings.Count(s[:m], ";")
		if d > 0 {
			pos = strings.LastIndexByte(s[:m], ';') + 1
		}
		if (m == len(s) || s[m] == ';') && (m == len(mp.prev) || mp.prev[m] == ';') {
			cur = mp.prevPath[d]
			mp.prevPath = mp.prevPath[:d+1]
			if m == len(s) {
				mp.prev = s
				return cur
			}
			pos = m + 1
		} else {
			if d > 0 {
				cur = mp.prevPath[d-1]
			}
			mp.prevPath = mp.prevPath[:d]
		}
	}
	mp.prev = s
	for {
		end := strings.IndexByte(s[pos:], ';')
		if end < 0 {
			end = len(s)
		} else {
			end += pos
		}
		cur = t.child(cur, t.intern(s[pos:end]))
		mp.prevPath = append(mp.prevPath, cur)
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
func (t *shape) intern(f string) uint32 {
	h := maphash.String(t.seed, f)
	mask := uint64(len(t.nameTab) - 1)
	i := h & mask
	for {
		v := t.nameTab[i]
		if v == 0 {
			break
		}
		if (v^h)>>32 == 0 {
			if id := uint32(v) - 1; t.names[id] == f {
				return id
			}
		}
		i = (i + 1) & mask
	}
	id := uint32(len(t.names))
	if id >= hubBit-1 {
		panic("flame: too many distinct frame names")
	}
	// Clone so that the trie never pins the caller's stack string.
	t.names = append(t.names, strings.Clone(f))
	t.nameTab[i] = nameSlot(h, id)
	if len(t.names)*4 > len(t.nameTab)*3 {
		t.rehashNames(len(t.nameTab) * 2)
	}
	return id
}

func (t *shape) rehashNames(size int) {
	tab := make([]uint64, size)
	mask := uint64(size - 1)
	for id, name := range t.names {
		h := maphash.String(t.seed, name)
		i := h & mask
		for tab[i] != 0 {
			i = (i + 1) & mask
		}
		tab[i] = nameSlot(h, uint32(id))
	}
	t.nameTab = tab
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
func (t *shape) child(parent, frame uint32) uint32 {
	pr := t.node(parent)
	if pr.frame&hubBit != 0 {
		slot := t.findEdge(parent, frame)
		if e := &t.edges[slot]; e.child != 0 {
			return e.child
		}
		id := t.link(parent, pr, frame)
		t.edges[slot] = edge{parent: parent, frame: frame, child: id}
		t.nEdges++
		if t.nEdges*4 > len(t.edges)*3 {
			t.growEdges(len(t.edges) * 2)
		}
		return id
	}
	k := 0
	for c := pr.first; c != 0; k++ {
		cr := t.node(c)
		if cr.frame&^hubBit == frame {
			return c
		}
		c = cr.next
	}
	id := t.link(parent, pr, frame)
	if k+1 > hubFanout {
		t.makeHub(parent, pr)
	}
	return id
}

// link creates a child of parent (whose record is pr) for frame and puts it
// first in the parent's child list.
func (t *shape) link(parent uint32, pr *nodeRec, frame uint32) uint32 {
	id := t.newNode(parent, frame)
	// Chunks never move, so pr is still valid.
	t.node(id).next = pr.first
	pr.first = id
	return id
}

// makeHub indexes the children of parent in the edge table.
func (t *shape) makeHub(parent uint32, pr *nodeRec) {
	pr.frame |= hubBit
	for c := pr.first; c != 0; c = t.node(c).next {
		if t.nEdges*4 >= len(t.edges)*3 {
			t.growEdges(max(2*len(t.edges), 64))
		}
		slot := t.findEdge(parent, t.frameOf(c))
		t.edges[slot] = edge{parent: parent, frame: t.frameOf(c), child: c}
		t.nEdges++
	}
}

// findEdge returns the slot of (parent, frame) in the edge table, or the
// empty slot where it belongs.
func (t *shape) findEdge(parent, frame uint32) uint64 {
	mask := uint64(len(t.edges) - 1)
	i := edgeHash(parent, frame) & mask
	for {
		e := &t.edges[i]
		if e.child == 0 || (e.parent == parent && e.frame == frame) {
			return i
		}
		i = (i + 1) & mask
	}
}

func (t *shape) growEdges(size int) {
	old := t.edges
	t.edges = make([]edge, size)
	for _, e := range old {
		if e.child != 0 {
			t.edges[t.findEdge(e.parent, e.frame)] = e
		}
	}
}

// ranks is the rank of each frame id in the byte order of the first n names.
type ranks struct {
	n    int
	rank []uint32
}
