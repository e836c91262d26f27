package query

import (
	"context"
	"fmt"
	"sync"

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

// stackCounts sums the samples of a selection per stack hash.
func (s *Server) stackCounts(ctx context.Context, sel Selection) (map[uint64]uint64, error) {
	out := map[uint64]uint64{}
	var hash, count proto.ColUInt64
	err := s.ch.Do(ctx, ch.Query{
		Body: "SELECT stack, toUInt64(sum(count)) AS c FROM " + s.ch.Table("samples") +
			" WHERE " + sel.Where("ts", sel.From, sel.To) + " GROUP BY stack",
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
