package query

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/flame"
	"github.com/flamestream/flamestream/internal/schema"
)

// tries keeps, per service, a flame trie of every stack its queries have named, and the trie leaf of each
// stack hash. A query then builds its tree in a view of the trie from counts per leaf, without merging any
// stack text: a stack's text is read from ClickHouse and merged once per query server, not once per query.
// The tries are bounded by their number of nodes together; past it the least recently used services'
// tries are let go (queries still holding one finish with it).
type tries struct {
	mu       sync.Mutex
	m        map[string]*serviceTrie
	maxNodes int
	clock    atomic.Int64 // a use counter: serviceTrie.used orders the tries by their last use
	ids      atomic.Uint64
	rng      *rand.Rand // picks the tries let go; under mu
	// hits, misses and resets count for TrieStats: views whose stacks were all known, views that had to
	// learn stacks first, and tries let go to stay within the bound.
	hits, misses, resets atomic.Int64
}

// TrieStats counts the reads of a query server's stack tries since it started.
type TrieStats struct {
	Hits   int64 // reads whose stacks were all in the service's trie already
	Misses int64 // reads that first learned stacks from ClickHouse
	Resets int64 // service tries let go because all of them outgrew their bound (Config.TrieNodes)
	Nodes  int64 // nodes and leaves the tries hold now
}

// TrieStats returns the counts of the stack tries, for benchmarks and monitoring.
func (s *Server) TrieStats() TrieStats {
	return TrieStats{Hits: s.tries.hits.Load(), Misses: s.tries.misses.Load(), Resets: s.tries.resets.Load(), Nodes: s.tries.total()}
}

// serviceTrie is the trie of one service. Views are made and used under the read lock; stacks are added
// under the write lock, in chunks, so that views go on between them. One learner at a time reads stack
// texts for the trie (learning holds its token), so that concurrent queries and the warm-up never read
// and hold the same texts twice.
type serviceTrie struct {
	service  string
	id       uint64 // unique among the tries of the process: segment leaf memos name their trie by it
	mu       sync.RWMutex
	trie     *flame.Trie
	leaf     map[uint64]uint32
	nodes    atomic.Int64
	used     atomic.Int64
	learning chan struct{}
}

func newTries(maxNodes int) *tries {
	return &tries{m: map[string]*serviceTrie{}, maxNodes: maxNodes, rng: rand.New(rand.NewPCG(uint64(maxNodes), 0x5eed))}
}

// total is the number of nodes (and leaves) of all the tries.
func (t *tries) total() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.totalLocked()
}

func (t *tries) totalLocked() int64 {
	var total int64
	for _, st := range t.m {
		total += st.nodes.Load()
	}
	return total
}

// of returns the trie of a service. When all of them together are past the bound, tries of other
// services, picked at random, are let go until they are within it. Least recently used first would thrash
// when a dashboard cycles through more services than fit (every read would miss); random victims keep
// most of them, and a service read often is soon back if it goes.
func (t *tries) of(service string) *serviceTrie {
	t.mu.Lock()
	defer t.mu.Unlock()
	if total := t.totalLocked(); total > int64(t.maxNodes) {
		var others []string
		for name := range t.m {
			if name != service {
				others = append(others, name)
			}
		}
		for total > int64(t.maxNodes) && len(others) > 0 {
			i := t.rng.IntN(len(others))
			total -= t.m[others[i]].nodes.Load()
			delete(t.m, others[i])
			t.resets.Add(1)
			others[i] = others[len(others)-1]
			others = others[:len(others)-1]
		}
	}
	st := t.m[service]
	if st == nil {
		st = &serviceTrie{service: service, id: t.ids.Add(1), trie: flame.NewTrie(), leaf: map[uint64]uint32{}, learning: make(chan struct{}, 1)}
		t.m[service] = st
	}
	st.used.Store(t.clock.Add(1))
	return st
}

// view returns a view of the service's trie with the sums of segs merged into their stacks' leaves. The view
// holds the trie's read lock: it must be used before release is called, and release should come as soon as
// the answer is built (before it is written to a client that may be slow). Release may be called more than
// once. Stacks the trie does not know yet are learned first (see learn).
func (s *Server) view(ctx context.Context, service string, segs []segmentSums) (v *flame.View, release func(), err error) {
	v, _, release, err = s.viewLeaves(ctx, service, segs)
	return v, release, err
}

// viewLeaves is view that also returns the trie leaf of every stack of segs: leaves[i][k] is the leaf of
// segs[i].sums[k] (a function's history classifies the leaves instead of building a tree per bucket).
func (s *Server) viewLeaves(ctx context.Context, service string, segs []segmentSums) (v *flame.View, leaves [][]uint32, release func(), err error) {
	st := s.tries.of(service)
	leaves = make([][]uint32, len(segs))
	for learned := false; ; learned = true {
		st.mu.RLock()
		if missing := st.leavesOf(segs, leaves); len(missing) > 0 {
			st.mu.RUnlock()
			if err := s.learn(ctx, st, missing); err != nil {
				return nil, nil, nil, err
			}
			continue
		}
		if learned {
			s.tries.misses.Add(1)
		} else {
			s.tries.hits.Add(1)
		}
		v := st.trie.View()
		if n := merge(v, segs, leaves); n > 0 {
			// Only rows written into a settled bucket while the query read it can do this.
			s.log.Warn("stack counts below zero, left out", "stacks", n, "service", service)
		}
		var once sync.Once // release may be called early and again by a defer
		return v, leaves, func() { once.Do(func() { v.Release(); st.mu.RUnlock() }) }, nil
	}
}

// leavesOf sets leaves[i], where it is nil, to the trie leaves of the stacks of segs[i], unless the trie
// lacks some of them: it returns the stacks it lacks. Segments remember the leaves of their stacks (see
// segEntry.leaves), so a repeated view costs array additions, not a map lookup per stack. The caller holds
// the read lock.
func (st *serviceTrie) leavesOf(segs []segmentSums, leaves [][]uint32) (missing []uint64) {
	for i, sg := range segs {
		if leaves[i] != nil {
			continue
		}
		if sg.entry != nil {
			if m := sg.entry.leaves.Load(); m != nil && m.trie == st.id {
				leaves[i] = m.leaves
				continue
			}
		}
		ls := make([]uint32, len(sg.sums))
		complete := true
		for k, x := range sg.sums {
			n, ok := st.leaf[x.stack]
			if !ok {
				missing = append(missing, x.stack)
				complete = false
			}
			ls[k] = n
		}
		if complete {
			leaves[i] = ls
			if sg.entry != nil {
				sg.entry.leaves.Store(&leafMemo{trie: st.id, leaves: ls})
			}
		}
	}
	return missing
}

// merge adds the signed sums of segs, on their side, to the leaves of their stacks in v (leaves[i][k] is
// the leaf of segs[i].sums[k]), and returns how many leaves ended below zero and were left out.
func merge(v *flame.View, segs []segmentSums, leaves [][]uint32) int {
	for i, sg := range segs {
		base := sg.side == baseline
		for k, x := range sg.sums {
			v.AddLeafDelta(leaves[i][k], sg.sign*x.sum, base)
		}
	}
	return v.DropNegative()
}

// learnChunk is how many stack texts learn holds at once: it sorts them (the trie merges sorted stacks
// fastest) and adds them under the trie's write lock, then reads on. With the deepest stacks (a few KB
// each) that is a few hundred MB at most, whatever the number of stacks learned.
const learnChunk = 1 << 16

// learn adds the stacks of hashes to a service trie. The hashes go to ClickHouse as an external table (a
// million of them are 8 MB of native data, while an IN list of them would be 20 MB of SQL, far past
// max_query_size), and the texts stream back and are merged chunk by chunk, so that memory does not grow
// with the number of stacks. A hash that ClickHouse does not know gets a stack of its own, so its samples
// still count.
func (s *Server) learn(ctx context.Context, st *serviceTrie, hashes []uint64) error {
	select {
	case st.learning <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-st.learning }()
	// Another learner may have added some of them meanwhile.
	st.mu.RLock()
	missing := make(proto.ColUInt64, 0, len(hashes))
	for _, h := range hashes {
		if _, ok := st.leaf[h]; !ok {
			missing = append(missing, h)
		}
	}
	st.mu.RUnlock()
	if len(missing) == 0 {
		return nil
	}
	slices.Sort(missing)
	missing = slices.Compact(missing)

	type stackText struct {
		hash uint64
		text string
	}
	chunk := make([]stackText, 0, min(len(missing), learnChunk))
	merge := func() {
		slices.SortFunc(chunk, func(a, b stackText) int { return strings.Compare(a.text, b.text) })
		st.mu.Lock()
		for _, x := range chunk {
			if _, ok := st.leaf[x.hash]; !ok {
				st.leaf[x.hash] = st.trie.Leaf(x.text)
			}
		}
		st.nodes.Store(int64(st.trie.Nodes() + len(st.leaf)))
		st.mu.Unlock()
		clear(chunk)
		chunk = chunk[:0]
	}
	var hash proto.ColUInt64
	var frames proto.ColStr
	read := func(body string, hashes *proto.ColUInt64) error {
		return s.ch.Do(ctx, ch.Query{
			Body:           body,
			ExternalTables: []ch.ExternalTable{{Name: "_hashes", Data: proto.Input{{Name: "hash", Data: hashes}}}},
			Result:         proto.Results{{Name: "hash", Data: &hash}, {Name: "frames", Data: &frames}},
			OnResult: func(ctx context.Context, b proto.Block) error {
				for i := range hash.Rows() {
					// frames.Row copies out of the block's buffer, which the next block reuses.
					if t := frames.Row(i); t != "" {
						chunk = append(chunk, stackText{hash[i], t})
					}
					if len(chunk) == learnChunk {
						merge()
					}
				}
				return nil
			},
		})
	}
	// GLOBAL: on a cluster the tables are Distributed, and the shards need the hashes too. PREWHERE reads the
	// texts of the matching rows only, within the service's range of the sort key.
	err := read("SELECT hash, frames FROM "+s.ch.Table(schema.Stacks)+
		" PREWHERE service = "+chdb.String(st.service)+" AND hash GLOBAL IN (SELECT hash FROM _hashes)", &missing)
	if err != nil {
		return fmt.Errorf("resolve stacks: %w", err)
	}
	merge()
	// Stacks written before the table by service existed are in the legacy table.
	st.mu.RLock()
	var old proto.ColUInt64
	for _, h := range missing {
		if _, ok := st.leaf[h]; !ok {
			old = append(old, h)
		}
	}
	st.mu.RUnlock()
	if len(old) > 0 {
		err := read("SELECT hash, frames FROM "+s.ch.Table(schema.LegacyStacks)+
			" PREWHERE hash GLOBAL IN (SELECT hash FROM _hashes)", &old)
		if err != nil {
			return fmt.Errorf("resolve stacks: %w", err)
		}
	}
	merge()
	st.mu.RLock()
	for _, h := range missing {
		if _, ok := st.leaf[h]; !ok {
			chunk = append(chunk, stackText{h, "[unknown stack " + strconv.FormatUint(h, 16) + "]"})
		}
	}
	st.mu.RUnlock()
	merge()
	return nil
}

// rollupsFor learns once whether the server buckets rollups on UTC boundaries (see Rollups) and from when
// the minute rollup is complete (its epoch in rollup_epochs; without one it is not used).
func (s *Server) rollupsFor(ctx context.Context) (Rollups, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rollups != nil {
		return *s.rollups, nil
	}
	const probe = 100*86400 + 5*3600 + 123
	var m, h, d proto.ColUInt32
	err := s.ch.Do(ctx, ch.Query{
		Body: fmt.Sprintf("SELECT toUInt32(toStartOfMinute(toDateTime(%d))) AS m, toUInt32(toStartOfHour(toDateTime(%d))) AS h, toUInt32(toStartOfDay(toDateTime(%d))) AS d",
			probe, probe, probe),
		Result: proto.Results{{Name: "m", Data: &m}, {Name: "h", Data: &h}, {Name: "d", Data: &d}},
	})
	if err != nil {
		return Rollups{}, fmt.Errorf("probe server time zone: %w", err)
	}
	r := Rollups{Hour: len(h) == 1 && h[0] == probe-probe%3600, Day: len(d) == 1 && d[0] == probe-probe%86400}
	minute := len(m) == 1 && m[0] == probe-probe%60
	if !r.Hour || !r.Day || !minute {
		s.log.Warn("ClickHouse server time zone is not UTC-aligned: some rollups are not used", "minute", minute, "hour", r.Hour, "day", r.Day)
	}
	if minute {
		r.MinuteSince = s.minuteEpoch(ctx)
	}
	if r.builtSince, err = s.builtEpochs(ctx); err != nil {
		return Rollups{}, err
	}
	r.utcDays = r.Day
	s.cacheable = s.localTables(ctx)
	s.rollups = &r
	return r, nil
}

// localTables reports whether the tables are plain MergeTree tables of this server, whose parts
// system.parts lists (see segCache); Distributed tables of a cluster are not.
func (s *Server) localTables(ctx context.Context) bool {
	if s.cache == nil {
		return false
	}
	var n proto.ColUInt64
	err := s.ch.Do(ctx, ch.Query{
		Body: "SELECT count() AS n FROM system.tables WHERE database = " + chdb.String(s.ch.Database) +
			" AND name = 'samples' AND engine LIKE '%MergeTree'",
		Result: proto.Results{{Name: "n", Data: &n}},
	})
	if err != nil || len(n) != 1 || n[0] != 1 {
		s.log.Warn("samples is not a local MergeTree table: the segment cache is off", "err", err)
		return false
	}
	return true
}

// minuteEpoch reads the epoch of the minute rollup: the smallest since recorded for it, or zero (no minute
// rollup) when there is none or it cannot be read.
func (s *Server) minuteEpoch(ctx context.Context) time.Time {
	var n, since proto.ColUInt64
	err := s.ch.Do(ctx, ch.Query{
		Body: "SELECT count() AS n, toUInt64(min(toUInt32(since))) AS since FROM " + s.ch.Table(schema.Epochs) +
			" WHERE name = " + chdb.String(schema.MinuteRollup),
		Result: proto.Results{{Name: "n", Data: &n}, {Name: "since", Data: &since}},
	})
	if err != nil {
		s.log.Warn("minute rollup epoch unreadable: the minute rollup is not used", "err", err)
		return time.Time{}
	}
	if len(n) != 1 || n[0] == 0 {
		s.log.Warn("minute rollup has no epoch: it is not used")
		return time.Time{}
	}
	t := time.Unix(int64(since[0]), 0).UTC()
	s.log.Info("minute rollup in use", "since", t)
	return t
}

// warmWindow is how far back Warm looks for the services and stacks to learn.
const warmWindow = 24 * time.Hour

// Warm learns, for every service seen in the last day, the stacks of its last day, so that the first
// queries after a start do not wait for their stack texts (about 0.3 s for 5,000 stacks on ClickHouse
// 18.16). It stops when the tries hold half their bound, and returns how many stacks it learned. Queries
// run meanwhile as usual; Warm only adds what they would learn themselves.
func (s *Server) Warm(ctx context.Context) (int, error) {
	svcs, err := s.meta.ListServices(ctx)
	if err != nil {
		return 0, fmt.Errorf("warm: list services: %w", err)
	}
	since := time.Now().UTC().Add(-warmWindow).Truncate(time.Hour)
	learned := 0
	for _, svc := range svcs {
		if svc.LastSeen == nil || svc.LastSeen.Before(since) {
			continue
		}
		if s.tries.total() > int64(s.tries.maxNodes/2) {
			break
		}
		var hash proto.ColUInt64
		var hashes []uint64
		err := s.ch.DoLimited(ctx, s.limits(), ch.Query{
			Body: "SELECT DISTINCT stack FROM " + s.ch.Table(schema.HourAll) +
				" WHERE service = " + chdb.String(svc.Name) + " AND ts >= " + chdb.Time(since),
			Result: proto.Results{{Name: "stack", Data: &hash}},
			OnResult: func(ctx context.Context, b proto.Block) error {
				hashes = append(hashes, hash...)
				return nil
			},
		})
		if err != nil {
			return learned, fmt.Errorf("warm %s: %w", svc.Name, err)
		}
		st := s.tries.of(svc.Name)
		st.mu.RLock()
		missing := hashes[:0]
		for _, h := range hashes {
			if _, ok := st.leaf[h]; !ok {
				missing = append(missing, h)
			}
		}
		st.mu.RUnlock()
		if len(missing) == 0 {
			continue
		}
		if err := s.learn(ctx, st, missing); err != nil {
			return learned, fmt.Errorf("warm %s: %w", svc.Name, err)
		}
		learned += len(missing)
	}
	return learned, nil
}
