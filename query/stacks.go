package query

import (
	"context"
	"fmt"
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
)

// tries keeps, per service, a flame trie of every stack its queries have named, and the trie leaf of each
// stack hash. A query then builds its tree in a view of the trie from counts per leaf, without merging any
// stack text: a stack's text is read from ClickHouse and merged once per query server, not once per query.
// The tries are bounded by their number of nodes together; past it they start over.
type tries struct {
	mu       sync.Mutex
	m        map[string]*serviceTrie
	maxNodes int
}

// serviceTrie is the trie of one service. Views are made and used under the read lock; stacks are added
// under the write lock.
type serviceTrie struct {
	mu    sync.RWMutex
	trie  *flame.Builder
	leaf  map[uint64]uint32
	nodes atomic.Int64
}

func newTries(maxNodes int) *tries {
	return &tries{m: map[string]*serviceTrie{}, maxNodes: maxNodes}
}

// of returns the trie of a service, starting over when all of them together are past the bound.
func (t *tries) of(service string) *serviceTrie {
	t.mu.Lock()
	defer t.mu.Unlock()
	var total int64
	for _, st := range t.m {
		total += st.nodes.Load()
	}
	if total > int64(t.maxNodes) {
		t.m = map[string]*serviceTrie{} // queries still holding a trie finish with it
	}
	st := t.m[service]
	if st == nil {
		st = &serviceTrie{trie: flame.NewTrie(), leaf: map[uint64]uint32{}}
		t.m[service] = st
	}
	return st
}

// resolveBatch is how many hashes go into one IN list.
const resolveBatch = 20000

// resolve returns the text of every hash in hashes (missing ones are absent from the result).
func (s *Server) resolve(ctx context.Context, hashes []uint64) (map[uint64]string, error) {
	out := make(map[uint64]string, len(hashes))
	for len(hashes) > 0 {
		n := min(len(hashes), resolveBatch)
		part := hashes[:n]
		hashes = hashes[n:]
		var hash proto.ColUInt64
		var frames proto.ColStr
		err := s.ch.Do(ctx, ch.Query{
			Body: "SELECT hash, any(frames) AS frames FROM " + s.ch.Table("stacks") +
				" WHERE hash IN " + chdb.Uints(part) + " GROUP BY hash",
			Result: proto.Results{{Name: "hash", Data: &hash}, {Name: "frames", Data: &frames}},
			OnResult: func(ctx context.Context, b proto.Block) error {
				for i := 0; i < hash.Rows(); i++ {
					out[hash[i]] = frames.Row(i)
				}
				return nil
			},
		})
		if err != nil {
			return nil, fmt.Errorf("resolve stacks: %w", err)
		}
	}
	return out, nil
}

// view returns a view of the service's trie that has a leaf for every hash of counts, with counts[h][side]
// added on the comparison side (0) and, with two sides, the baseline (1). The view must be used before
// release is called.
func (s *Server) view(ctx context.Context, service string, counts map[uint64][2]uint64) (v *flame.Builder, release func(), err error) {
	st := s.tries.of(service)
	for {
		st.mu.RLock()
		var missing []uint64
		for h := range counts {
			if _, ok := st.leaf[h]; !ok {
				missing = append(missing, h)
			}
		}
		if len(missing) == 0 {
			v := st.trie.View()
			for h, c := range counts {
				n := st.leaf[h]
				v.AddLeaf(n, c[0])
				v.AddBaseLeaf(n, c[1])
			}
			return v, st.mu.RUnlock, nil
		}
		st.mu.RUnlock()
		if err := s.learn(ctx, st, missing); err != nil {
			return nil, nil, err
		}
	}
}

// learn adds the stacks of hashes to a service trie, in text order (the trie merges sorted stacks fastest).
// A hash that ClickHouse does not know gets a stack of its own, so its samples still count.
func (s *Server) learn(ctx context.Context, st *serviceTrie, hashes []uint64) error {
	texts, err := s.resolve(ctx, hashes)
	if err != nil {
		return err
	}
	type stackText struct {
		hash uint64
		text string
	}
	in := make([]stackText, len(hashes))
	for i, h := range hashes {
		t, ok := texts[h]
		if !ok || t == "" {
			t = "[unknown stack " + strconv.FormatUint(h, 16) + "]"
		}
		in[i] = stackText{h, t}
	}
	slices.SortFunc(in, func(a, b stackText) int { return strings.Compare(a.text, b.text) })
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, x := range in {
		if _, ok := st.leaf[x.hash]; !ok {
			st.leaf[x.hash] = st.trie.Leaf(x.text)
		}
	}
	st.nodes.Store(int64(st.trie.Nodes() + len(st.leaf)))
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
	s.rollups = &r
	return r, nil
}

// minuteEpoch reads the epoch of the minute rollup: the smallest since recorded for it, or zero (no minute
// rollup) when there is none or it cannot be read.
func (s *Server) minuteEpoch(ctx context.Context) time.Time {
	var n, since proto.ColUInt64
	err := s.ch.Do(ctx, ch.Query{
		Body: "SELECT count() AS n, toUInt64(min(toUInt32(since))) AS since FROM " + s.ch.Table("rollup_epochs") +
			" WHERE name = " + chdb.String("samples_1m_all"),
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

// stackCounts sums the samples of a selection per stack hash, reading the rollups where they are exact.
// The counts are in [0], as diffCounts returns the comparison side.
func (s *Server) stackCounts(ctx context.Context, sel Selection) (map[uint64][2]uint64, error) {
	r, err := s.rollupsFor(ctx)
	if err != nil {
		return nil, err
	}
	out := map[uint64][2]uint64{}
	var hash, count proto.ColUInt64
	err = s.ch.DoLimited(ctx, s.limits(), ch.Query{
		Body:   s.stackCountsSQL(sel, r),
		Result: proto.Results{{Name: "stack", Data: &hash}, {Name: "c", Data: &count}},
		OnResult: func(ctx context.Context, b proto.Block) error {
			for i, h := range hash {
				v := out[h]
				v[0] += count[i]
				out[h] = v
			}
			return nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("stack counts: %w", err)
	}
	return out, nil
}

// diffCounts sums both sides of a diff per stack hash in one query: [0] is the comparison, [1] the baseline.
func (s *Server) diffCounts(ctx context.Context, sel, base Selection) (map[uint64][2]uint64, error) {
	r, err := s.rollupsFor(ctx)
	if err != nil {
		return nil, err
	}
	out := map[uint64][2]uint64{}
	var hash, c, b proto.ColUInt64
	err = s.ch.DoLimited(ctx, s.limits(), ch.Query{
		Body:   s.diffSQL(sel, base, r),
		Result: proto.Results{{Name: "stack", Data: &hash}, {Name: "c", Data: &c}, {Name: "b", Data: &b}},
		OnResult: func(ctx context.Context, _ proto.Block) error {
			for i, h := range hash {
				v := out[h]
				v[0] += c[i]
				v[1] += b[i]
				out[h] = v
			}
			return nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("diff counts: %w", err)
	}
	return out, nil
}
