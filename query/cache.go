package query

import (
	"container/list"
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
)

// stackSum is one stack's sum in a segment.
type stackSum struct {
	stack uint64
	sum   int64
}

// segCache keeps the per-stack sums of settled segments (see Rollups.Settled), which dashboards, diffs and
// the views of one range (graph, top table, export) read again and again. An entry is keyed by the
// segment's SQL (table, service, filters and range) and carries the version of the data it was read from:
// the names of the active ClickHouse parts whose time range meets the segment. A late row makes a new part
// there, so the version changes and the entry is not used again: what the cache returns is always what
// ClickHouse holds. Entries are evicted least recently used first past maxBytes.
type segCache struct {
	mu       sync.Mutex
	m        map[string]*list.Element
	lru      list.List // of *segEntry, most recent first
	bytes    int
	maxBytes int

	hits, misses atomic.Int64
}

type segEntry struct {
	key, version string
	sums         []stackSum
	// leaves remembers the trie leaf of each stack of sums, for the service trie that found them, so
	// that the next view of the same segment adds counts to leaves without a map lookup per stack.
	leaves atomic.Pointer[leafMemo]
}

// leafMemo is the trie leaf of each stack of a segment, in a given service trie.
type leafMemo struct {
	trie   uint64 // serviceTrie.id
	leaves []uint32
}

// size counts 20 bytes per stack: 16 for its sum and 4 for its leaf once known.
func (e *segEntry) size() int { return len(e.key) + len(e.version) + 20*len(e.sums) + 96 }

func newSegCache(maxBytes int) *segCache {
	return &segCache{m: map[string]*list.Element{}, maxBytes: maxBytes}
}

func (c *segCache) get(key, version string) (*segEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[key]
	if !ok || el.Value.(*segEntry).version != version {
		c.misses.Add(1)
		return nil, false
	}
	c.lru.MoveToFront(el)
	c.hits.Add(1)
	return el.Value.(*segEntry), true
}

// put keeps the sums of a segment and returns its entry.
func (c *segCache) put(key, version string, sums []stackSum) *segEntry {
	e := &segEntry{key: key, version: version, sums: sums}
	if e.size() > c.maxBytes/4 {
		return e // one huge segment would flush everything else: the caller uses it once
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[key]; ok {
		c.bytes -= el.Value.(*segEntry).size()
		c.lru.Remove(el)
	}
	c.m[key] = c.lru.PushFront(e)
	c.bytes += e.size()
	for c.bytes > c.maxBytes {
		old := c.lru.Remove(c.lru.Back()).(*segEntry)
		delete(c.m, old.key)
		c.bytes -= old.size()
	}
	return e
}

// part is an active ClickHouse part and the time range of its rows.
type part struct {
	table, name string
	lo, hi      uint32 // min and max ts, inclusive
}

// parts lists the active parts of tables that hold rows in [from, to).
func (s *Server) parts(ctx context.Context, tables []string, from, to time.Time) ([]part, error) {
	quoted := make([]string, len(tables))
	for i, t := range tables {
		quoted[i] = chdb.String(t)
	}
	var table, name proto.ColStr
	var lo, hi proto.ColUInt32
	var out []part
	err := s.ch.DoLimited(ctx, s.limits(), ch.Query{
		Body: "SELECT table, name, toUInt32(min_time) AS lo, toUInt32(max_time) AS hi FROM system.parts" +
			" WHERE active AND database = " + chdb.String(s.ch.Database) + " AND table IN (" + strings.Join(quoted, ", ") + ")" +
			" AND max_time >= toDateTime(" + strconv.FormatInt(from.Unix(), 10) + ")" +
			" AND min_time < toDateTime(" + strconv.FormatInt(to.Unix(), 10) + ")",
		Result: proto.Results{{Name: "table", Data: &table}, {Name: "name", Data: &name}, {Name: "lo", Data: &lo}, {Name: "hi", Data: &hi}},
		OnResult: func(ctx context.Context, b proto.Block) error {
			for i := range lo.Rows() {
				out = append(out, part{table.Row(i), name.Row(i), lo[i], hi[i]})
			}
			return nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("list parts: %w", err)
	}
	return out, nil
}

// version names the data a segment of table reads: the sorted names of the parts that meet [from, to).
func version(parts []part, table string, from, to time.Time) string {
	var names []string
	lo, hi := uint32(from.Unix()), uint32(to.Unix())
	for _, p := range parts {
		if p.table == table && p.hi >= lo && p.lo < hi {
			names = append(names, p.name)
		}
	}
	slices.Sort(names)
	return strings.Join(names, ",")
}

// CacheStats returns how many settled segments were served from the segment cache and how many were read
// from ClickHouse since the server started (both zero when the cache is off).
func (s *Server) CacheStats() (hits, misses int64) {
	if s.cache == nil {
		return 0, 0
	}
	return s.cache.hits.Load(), s.cache.misses.Load()
}
