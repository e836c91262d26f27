package query

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/flamestream/flamestream/internal/chdb"
)

// stackCache keeps stack texts by hash: stacks never change, and the same few thousand stacks come back in
// every query of a service. It is bounded in bytes and simply starts over when full.
type stackCache struct {
	mu       sync.RWMutex
	m        map[uint64]string
	bytes    int
	maxBytes int
}

func newStackCache(maxBytes int) *stackCache {
	return &stackCache{m: map[uint64]string{}, maxBytes: maxBytes}
}

func (c *stackCache) get(h uint64) (string, bool) {
	c.mu.RLock()
	s, ok := c.m[h]
	c.mu.RUnlock()
	return s, ok
}

func (c *stackCache) put(h uint64, s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bytes+len(s) > c.maxBytes {
		c.m = map[uint64]string{}
		c.bytes = 0
	}
	if _, ok := c.m[h]; !ok {
		c.m[h] = s
		c.bytes += len(s) + 16
	}
}

// resolveBatch is how many hashes go into one IN list.
const resolveBatch = 20000

// resolve returns the text of every hash in hashes (missing ones are absent from the result).
func (s *Server) resolve(ctx context.Context, hashes []uint64) (map[uint64]string, error) {
	out := make(map[uint64]string, len(hashes))
	var missing []uint64
	for _, h := range hashes {
		if t, ok := s.stacks.get(h); ok {
			out[h] = t
		} else {
			missing = append(missing, h)
		}
	}
	for len(missing) > 0 {
		n := min(len(missing), resolveBatch)
		part := missing[:n]
		missing = missing[n:]
		var hash proto.ColUInt64
		var frames proto.ColStr
		err := s.ch.Do(ctx, ch.Query{
			Body: "SELECT hash, any(frames) AS frames FROM " + s.ch.Table("stacks") +
				" WHERE hash IN " + chdb.Uints(part) + " GROUP BY hash",
			Result: proto.Results{{Name: "hash", Data: &hash}, {Name: "frames", Data: &frames}},
			OnResult: func(ctx context.Context, b proto.Block) error {
				for i := 0; i < hash.Rows(); i++ {
					t := frames.Row(i)
					out[hash[i]] = t
					s.stacks.put(hash[i], t)
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
func (s *Server) stackCounts(ctx context.Context, sel Selection) (map[uint64]uint64, error) {
	r, err := s.rollupsFor(ctx)
	if err != nil {
		return nil, err
	}
	out := map[uint64]uint64{}
	var hash, count proto.ColUInt64
	err = s.ch.DoLimited(ctx, s.limits(), ch.Query{
		Body:   s.stackCountsSQL(sel, r),
		Result: proto.Results{{Name: "stack", Data: &hash}, {Name: "c", Data: &count}},
		OnResult: func(ctx context.Context, b proto.Block) error {
			for i, h := range hash {
				out[h] += count[i]
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

// stackText names the stacks of hashes, sorted by text: a flame.Builder merges sorted stacks fastest.
type stackText struct {
	hash uint64
	text string
}

func (s *Server) sortedTexts(ctx context.Context, hashes []uint64) ([]stackText, error) {
	texts, err := s.resolve(ctx, hashes)
	if err != nil {
		return nil, err
	}
	out := make([]stackText, len(hashes))
	for i, h := range hashes {
		t, ok := texts[h]
		if !ok {
			t = "[unknown stack " + strconv.FormatUint(h, 16) + "]"
		}
		out[i] = stackText{h, t}
	}
	slices.SortFunc(out, func(a, b stackText) int { return strings.Compare(a.text, b.text) })
	return out, nil
}
