package ingest

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// ttlCache remembers values for a while; it spares PostgreSQL a token lookup and a service upsert on
// every upload of a fleet. A zero TTL disables it.
type ttlCache[V any] struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]ttlEntry[V]
	// loads shares one load among the concurrent misses of a key: when an entry expires (or at start)
	// under hundreds of uploads in flight, PostgreSQL sees one query, not one per upload all at once (on
	// one service's row, an upsert each, one after the other).
	loads singleflight.Group
}

// cacheLoadTimeout bounds a load shared by several requests (none of their contexts is its own).
const cacheLoadTimeout = 5 * time.Second

type ttlEntry[V any] struct {
	v       V
	expires time.Time
}

func newTTLCache[V any](ttl time.Duration) *ttlCache[V] {
	return &ttlCache[V]{ttl: ttl, m: map[string]ttlEntry[V]{}}
}

func (c *ttlCache[V]) get(key string, now time.Time) (V, bool) {
	var zero V
	if c.ttl <= 0 {
		return zero, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || now.After(e.expires) {
		return zero, false
	}
	return e.v, true
}

// getOrLoad returns key's value, from the cache or from load (whose result is then remembered, unless it
// failed). Concurrent misses of key wait for the same load, each no longer than its ctx.
func (c *ttlCache[V]) getOrLoad(ctx context.Context, key string, now time.Time, load func(context.Context) (V, error)) (V, error) {
	if v, ok := c.get(key, now); ok {
		return v, nil
	}
	if c.ttl <= 0 {
		return load(ctx)
	}
	ch := c.loads.DoChan(key, func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cacheLoadTimeout)
		defer cancel()
		v, err := load(lctx)
		if err == nil {
			c.put(key, v, now)
		}
		return v, err
	})
	select {
	case r := <-ch:
		v, _ := r.Val.(V)
		return v, r.Err
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}

func (c *ttlCache[V]) put(key string, v V, now time.Time) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Bound the memory: a flood of bad keys must not grow the map forever.
	if len(c.m) >= 10000 {
		for k, e := range c.m {
			if now.After(e.expires) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= 10000 {
			clear(c.m)
		}
	}
	c.m[key] = ttlEntry[V]{v: v, expires: now.Add(c.ttl)}
}
