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
// A server that builds many trees over the same stacks keeps a Trie
// instead, merges each stack into it once (Leaf), and builds each tree in a
// View of it from counts per leaf (AddLeaf, AddBaseLeaf): no text is merged
// per tree, the order of the counts does not matter, and a view of a trie of
// 1M stacks builds its tree in tens of milliseconds. Builder, Trie and View
// are three types so that each has only the methods that make sense for it:
// a trie holds no counts, and a view adds counts to known leaves, not text.
//
// A Builder is not safe for concurrent use; the views of one trie are, as
// long as no Leaf runs at the same time.
package flame

import (
	"io"
	"strings"
	"time"
)

// Builder accumulates stacks and their counts into a prefix tree of frames,
// optionally with a second set of counts for the baseline of a diff.
// The zero value is ready to use.
type Builder struct {
	graph
	merger

	// Mode selection: while stacks arrive sorted they are merged one by
	// one along the previous path; in random order they are queued in
	// pending and merged a batch at a time (see flush). The merger's
	// shared and seen count the bytes that the last nRecent stacks shared
	// with their predecessor and their total length.
	batching bool
	pending  []pendingStack
	nRecent  int
	// Scratch space of flush.
	ids  []uint32
	offs []int
	curs []uint32
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
	b.init()
	b.cache = nil
	if b.batching {
		b.pending = append(b.pending, pendingStack{s, count, base})
		if len(b.pending) == batchSize {
			b.flush()
		}
		return
	}
	b.count(b.insert(&b.merger, s), count, base)
	// Switch to batches when stacks stop sharing most of their bytes
	// with their predecessor.
	if b.nRecent++; b.nRecent == batchSize {
		if 2*b.shared < b.seen {
			b.batching = true
		}
		b.shared, b.seen, b.nRecent = 0, 0, 0
	}
}

// count adds count to the self count of node n, first giving the counts
// the chunks of the nodes made since the last count.
func (b *Builder) count(n uint32, count uint64, base bool) {
	if len(b.selfs) < len(b.nodes) {
		b.cover()
	}
	b.graph.count(n, count, base)
}

// cover gives every chunk of nodes its chunks of counts.
func (b *Builder) cover() {
	for len(b.selfs) < len(b.nodes) {
		b.selfs = append(b.selfs, make([]uint64, chunkSize))
	}
	for b.baseSelfs != nil && len(b.baseSelfs) < len(b.nodes) {
		b.baseSelfs = append(b.baseSelfs, make([]uint64, chunkSize))
	}
}

// ready merges the queued stacks and makes the graph readable: the root
// exists and every node has its counts.
func (b *Builder) ready() *graph {
	b.init()
	b.flush()
	b.cover()
	return &b.graph
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
			b.count(b.insert(&b.merger, ps.s), ps.count, ps.base)
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

// Total returns the sum of the counts given to Add.
func (b *Builder) Total() uint64 { return b.total }

// BaseTotal returns the sum of the counts given to AddBase.
func (b *Builder) BaseTotal() uint64 { return b.baseTotal }

// HasBase reports whether the Builder holds a baseline, that is whether
// AddBase was called with a non-zero count.
func (b *Builder) HasBase() bool { return b.hasBase }

// Nodes returns the number of nodes of the full tree, root included.
func (b *Builder) Nodes() int { return b.ready().liveNodes() }

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
func (b *Builder) Tree(maxNodes int) *Node { return b.ready().tree(0, rootName, maxNodes) }

// Focus returns the tree under the node reached by path, a frame path from
// the root whose first element is the process name, with the same shape
// and truncation rules as Tree. The returned root is named after the last
// frame of path and holds the inclusive counts of that node. An empty path
// is the same as Tree. Focus returns nil when no added stack starts with
// path.
func (b *Builder) Focus(path []string, maxNodes int) *Node { return b.ready().focus(path, maxNodes) }

// TopFunctions returns the functions (distinct frame names, process names
// included) of the comparison side, that is of the stacks given to Add,
// sorted by decreasing Total when sortBy is "total" and by decreasing Self
// otherwise, ties broken by the other count and then by name. Frames that
// occur only in the baseline are left out. A limit > 0 keeps only the first
// limit rows.
func (b *Builder) TopFunctions(sortBy string, limit int) []Function {
	return b.ready().topFunctions(sortBy, limit)
}

// WriteFolded writes the comparison side (the stacks given to Add) in the
// folded format of Brendan Gregg's FlameGraph tools: one
// "frame;frame;... count" line per unique stack. Lines are sorted by
// comparing stacks frame by frame (frame names byte-wise, a stack before the
// longer stacks that extend it), which ParseFolded reads back to the same
// Builder contents.
func (b *Builder) WriteFolded(w io.Writer) error { return b.ready().writeFolded(w) }

// WriteSpeedscope writes the comparison side (the stacks given to Add) as a
// speedscope JSON file (https://www.speedscope.app/file-format-schema.json)
// holding one "sampled" profile called name, with unit "none": one sample
// per unique stack, root frame first, whose weight is the stack's count,
// and a shared frames table with one entry per frame name used. Samples come
// in the order of WriteFolded and frames in the order they first appear in
// the samples.
func (b *Builder) WriteSpeedscope(w io.Writer, name string) error {
	return b.ready().writeSpeedscope(w, name)
}

// WritePprof writes the comparison side (the stacks given to Add) as a
// gzipped pprof profile (profile.proto) with one sample type, "samples" in
// unit "count": one Sample per unique stack whose value is its count, with
// its locations leaf first as pprof expects, and one Function and one
// Location per frame name used. start and duration fill the profile's
// time_nanos and duration_nanos and are left out when zero.
func (b *Builder) WritePprof(w io.Writer, start time.Time, duration time.Duration) error {
	return b.ready().writePprof(w, start, duration)
}
