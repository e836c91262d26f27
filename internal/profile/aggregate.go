package profile

import (
	"fmt"
	"iter"
	"math/bits"
	"math/rand/v2"
)

// Entry is the total sample count of one stack in one container of a
// profile.
type Entry struct {
	// Container is the raw container name (Line.Container), often empty.
	Container string
	// Hash is StackHash of the stack.
	Hash uint64
	// Count is the sum of the counts of the lines with this container and
	// stack; Add keeps it at most MaxCount.
	Count uint64
}

// stackRef locates the text of a unique stack in the arena, and the first of
// its entries (one per container it appears in, chained by entryLink.next).
type stackRef struct {
	hash     uint64
	off, end int
	first    int
}

// entryKey identifies an Entry: its stack hash and interned container.
type entryKey struct {
	hash      uint64
	container uint32
}

// entryLink is the private half of an Entry: its interned container and the
// next entry of the same stack (-1 at the end of the chain).
type entryLink struct {
	container uint32
	next      int
}

// Aggregate sums the lines of one profile per (container, stack) and keeps
// the text of every distinct stack once. Stacks are identified by StackHash;
// two different stacks with the same 64-bit hash would be merged.
//
// The zero value is ready to use. Reset empties an Aggregate but keeps its
// memory for the next profile. Add copies what it keeps, so lines from Parse
// can be passed as they are; it allocates only for a container name or a
// stack not seen before in the profile, and when its tables grow. An
// Aggregate is not safe for concurrent use.
type Aggregate struct {
	containerIDs map[string]uint32
	names        []string
	lastID       uint32
	lastName     string
	haveLast     bool

	// One map lookup per line: while the profile names at most
	// fewContainers containers, a stack's entries are found by walking its
	// chain (at most one entry per container). Past that, index finds them
	// (indexed is set), so that a stack in very many containers costs no
	// more per line than one in a few.
	entries []Entry
	links   []entryLink
	index   map[entryKey]int
	indexed bool

	// slots is an open-addressing table of the stacks by hash: 1 + an index
	// into stacks, or 0 for a free slot; its length is a power of two, at
	// least twice the stacks. A stack's slot is the top bits of its hash
	// times mult, an odd number drawn for each Aggregate: one multiplication
	// and one or two reads per lookup, where a Go map hashed the hash again
	// and probed its groups (10 % of Parse and Add on 2,000-line profiles).
	// XXH64 is public and unseeded, so an upload could be made of stacks whose
	// hashes share their low bits; with a secret multiplier, no set of hashes
	// shares a slot more often than chance has them do.
	slots  []int
	mult   uint64
	shift  uint8
	stacks []stackRef
	arena  []byte

	lines   int
	samples uint64
}

// fewContainers is the number of distinct containers up to which Add finds a
// container by comparing names rather than hashing the name into
// containerIDs: a profile names a handful of containers, its lines switch
// between them all the time, and comparing a few short strings is cheaper
// than hashing one.
const fewContainers = 8

// Add adds one line: its count goes to the entry of its container and stack,
// and the stack text is stored if this is its first occurrence.
//
// When the line's count, or the entry's total with it, would exceed MaxCount
// (one sample row holds one entry, in a UInt32 column), Add returns a
// *LineError naming l.Number and adds nothing: the profile cannot be stored
// exactly. Since every count is at most MaxCount, the totals cannot overflow
// 64 bits before that.
func (a *Aggregate) Add(l *Line) error {
	if l.Count > MaxCount {
		return &LineError{Line: l.Number, Reason: fmt.Sprintf("sample count %d is over the limit of %d", l.Count, uint64(MaxCount))}
	}
	if a.containerIDs == nil {
		a.containerIDs = make(map[string]uint32)
	}
	var cid uint32
	if a.haveLast && string(l.Container) == a.lastName {
		cid = a.lastID
	} else {
		cid = a.containerID(l.Container)
		a.lastName, a.lastID, a.haveLast = a.names[cid], cid, true
	}

	h := StackHash(l.Stack)
	si, slot := a.lookup(h)
	if si >= 0 {
		if i := a.find(si, h, cid); i >= 0 {
			e := &a.entries[i]
			if e.Count > MaxCount-l.Count {
				return &LineError{Line: l.Number, Reason: fmt.Sprintf(
					"the stack's total count in this profile, %d + %d, is over the limit of %d",
					e.Count, l.Count, uint64(MaxCount))}
			}
			e.Count += l.Count
			a.lines++
			a.samples += l.Count
			return nil
		}
		// A new container of a known stack: its entry goes first in the chain.
		s := &a.stacks[si]
		a.links = append(a.links, entryLink{container: cid, next: s.first})
		s.first = len(a.entries)
	} else {
		// A new stack: store its text; its entry is necessarily new.
		off := len(a.arena)
		a.arena = append(a.arena, l.Stack...)
		a.stacks = append(a.stacks, stackRef{hash: h, off: off, end: len(a.arena), first: len(a.entries)})
		a.slots[slot] = len(a.stacks)
		if 2*len(a.stacks) > len(a.slots) {
			a.rehash(2 * len(a.slots))
		}
		a.links = append(a.links, entryLink{container: cid, next: -1})
	}
	if a.indexed {
		a.index[entryKey{hash: h, container: cid}] = len(a.entries)
	}
	a.entries = append(a.entries, Entry{Container: a.lastName, Hash: h, Count: l.Count})
	a.lines++
	a.samples += l.Count
	return nil
}

// lookup returns the index in a.stacks of the stack of hash h, or -1 and
// the free slot where it goes.
func (a *Aggregate) lookup(h uint64) (si, slot int) {
	if len(a.slots) == 0 {
		a.rehash(minSlots)
	}
	mask := len(a.slots) - 1
	for i := int(h * a.mult >> a.shift); ; i = (i + 1) & mask {
		s := a.slots[i]
		if s == 0 {
			return -1, i
		}
		if a.stacks[s-1].hash == h {
			return s - 1, i
		}
	}
}

// minSlots is the smallest length of Aggregate.slots, and maxKeptSlots the
// largest that Reset keeps (1 MiB) rather than clearing it for every profile.
const (
	minSlots     = 64
	maxKeptSlots = 1 << 17
)

// rehash makes a.slots n long (a power of two) and puts every stack in it.
func (a *Aggregate) rehash(n int) {
	if cap(a.slots) >= n {
		a.slots = a.slots[:n]
		clear(a.slots)
	} else {
		a.slots = make([]int, n)
	}
	if a.mult == 0 {
		a.mult = rand.Uint64() | 1
	}
	a.shift = uint8(64 - bits.Len(uint(n-1)))
	mask := n - 1
	for si, s := range a.stacks {
		i := int(s.hash * a.mult >> a.shift)
		for a.slots[i] != 0 {
			i = (i + 1) & mask
		}
		a.slots[i] = si + 1
	}
}

// find returns the index of the entry of stack si (of hash h) in container
// cid, or -1.
func (a *Aggregate) find(si int, h uint64, cid uint32) int {
	if a.indexed {
		if i, ok := a.index[entryKey{hash: h, container: cid}]; ok {
			return i
		}
		return -1
	}
	for i := a.stacks[si].first; i >= 0; i = a.links[i].next {
		if a.links[i].container == cid {
			return i
		}
	}
	return -1
}

// containerID returns the id of the container name c, interning it when it
// is new.
func (a *Aggregate) containerID(c []byte) uint32 {
	if len(a.names) <= fewContainers {
		for i, name := range a.names {
			if string(c) == name {
				return uint32(i)
			}
		}
	} else if cid, ok := a.containerIDs[string(c)]; ok {
		return cid
	}
	name := string(c)
	cid := uint32(len(a.names))
	a.containerIDs[name] = cid
	a.names = append(a.names, name)
	if len(a.names) > fewContainers && !a.indexed {
		// From now on the chains may grow long: index the entries so far.
		if a.index == nil {
			a.index = make(map[entryKey]int, len(a.entries))
		}
		for i, e := range a.entries {
			a.index[entryKey{hash: e.Hash, container: a.links[i].container}] = i
		}
		a.indexed = true
	}
	return cid
}

// Reserve makes room for a profile of about lines lines and textBytes bytes of stack text, so that Add
// does not grow its tables (and copy them) again and again on a fresh Aggregate. It is only a hint.
func (a *Aggregate) Reserve(lines, textBytes int) {
	if a.containerIDs == nil {
		a.containerIDs = make(map[string]uint32)
	}
	if n := minSlots; len(a.slots) < 2*lines {
		for n < 2*lines {
			n *= 2
		}
		a.rehash(n)
	}
	if cap(a.entries) < lines {
		a.entries = make([]Entry, 0, lines)
	}
	if cap(a.links) < lines {
		a.links = make([]entryLink, 0, lines)
	}
	if cap(a.stacks) < lines {
		a.stacks = make([]stackRef, 0, lines)
	}
	if cap(a.arena) < textBytes {
		a.arena = make([]byte, 0, textBytes)
	}
}

// Reset empties the Aggregate, keeping its memory for reuse.
func (a *Aggregate) Reset() {
	clear(a.containerIDs)
	clear(a.names)
	a.names = a.names[:0]
	a.lastName, a.lastID, a.haveLast = "", 0, false
	clear(a.entries) // drop the container strings
	a.entries = a.entries[:0]
	a.links = a.links[:0]
	clear(a.index)
	a.indexed = false
	if len(a.slots) > maxKeptSlots {
		a.slots = nil // an outsized profile's table: the next one sizes its own (Reserve, or as it grows)
	} else {
		clear(a.slots)
	}
	a.stacks = a.stacks[:0]
	a.arena = a.arena[:0]
	a.lines, a.samples = 0, 0
}

// Entries returns the (container, stack hash, count) entries in the order
// they were first seen. The slice belongs to the Aggregate and is valid until
// the next Add or Reset.
func (a *Aggregate) Entries() []Entry {
	return a.entries
}

// Stacks iterates over the distinct stacks in the order they were first
// seen, yielding each one's hash and normalized text. The text belongs to the
// Aggregate and is valid until the next Add or Reset.
func (a *Aggregate) Stacks() iter.Seq2[uint64, []byte] {
	return func(yield func(uint64, []byte) bool) {
		for _, s := range a.stacks {
			if !yield(s.hash, a.arena[s.off:s.end:s.end]) {
				return
			}
		}
	}
}

// Stack returns the text of the stack with the given hash, valid until the
// next Add or Reset, and whether it is present.
func (a *Aggregate) Stack(hash uint64) ([]byte, bool) {
	if len(a.slots) == 0 {
		return nil, false
	}
	i, _ := a.lookup(hash)
	if i < 0 {
		return nil, false
	}
	s := a.stacks[i]
	return a.arena[s.off:s.end:s.end], true
}

// NumStacks returns the number of distinct stacks.
func (a *Aggregate) NumStacks() int {
	return len(a.stacks)
}

// Lines returns the number of lines added since the last Reset.
func (a *Aggregate) Lines() int {
	return a.lines
}

// Samples returns the sum of the counts of the lines added since the last
// Reset.
func (a *Aggregate) Samples() uint64 {
	return a.samples
}
