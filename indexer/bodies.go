package indexer

import (
	"context"
	"time"

	"github.com/flamestream/flamestream/stream"
)

// BodySource hands out the bodies of recent uploads that ingest cached (stream.BodyCache); a body it does
// not return is read from the object store.
type BodySource interface {
	Get(ctx context.Context, ids []string) (map[string]stream.Cached, error)
}

// cachedBodies asks the body cache for the bodies of a batch's events in one round trip. A cached body is
// used only for the event it was stored for (same object key, same size): the object store's copy is the
// one of record, and a retry whose body differs goes there. A failing cache costs only object-store reads;
// it is logged at most once a minute.
func (ix *Indexer) cachedBodies(ctx context.Context, items []*item) map[*item][]byte {
	if ix.cfg.Bodies == nil {
		return nil
	}
	ids := make([]string, 0, len(items))
	for _, it := range items {
		if it.poison == "" {
			ids = append(ids, it.ev.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	got, err := ix.cfg.Bodies.Get(ctx, ids)
	if err != nil {
		ix.metrics.bodyCacheErrors.Inc()
		ix.bodyWarnMu.Lock()
		if now := time.Now(); now.Sub(ix.bodyWarned) > time.Minute {
			ix.bodyWarned = now
			ix.log.Warn("body cache failed; reading bodies from the object store", "err", err)
		}
		ix.bodyWarnMu.Unlock()
	}
	out := make(map[*item][]byte, len(got))
	for _, it := range items {
		if it.poison != "" {
			continue
		}
		if c, ok := got[it.ev.ID]; ok && c.Key == it.ev.Key && int64(len(c.Body)) == it.ev.Size {
			out[it] = c.Body
			ix.metrics.bodyCache.WithLabelValues("hit").Inc()
		} else {
			ix.metrics.bodyCache.WithLabelValues("miss").Inc()
		}
	}
	return out
}
