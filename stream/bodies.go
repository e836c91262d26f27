package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The body cache: ingest also hands each upload's stored bytes to a small in-memory stream, from which the
// indexer takes them in one request per batch instead of one GET per profile from the object store. It is
// only a cache. The object store stays the copy of record: a body that is not in the cache (evicted, too
// big, the stream missing, a NATS server without batched direct gets) is read from the object store as
// before. On this machine a versitygw GET of a 60-line upload cost its server ≈ 0.36 ms of CPU, and the
// publish and the batched read from a memory stream ≈ 0.03 ms.
const (
	// BodiesStream is the memory stream of recent upload bodies.
	BodiesStream = "PROFILE_BODIES"
	// BodiesSubjectPrefix starts every body's subject: bodies.<profile id>.
	BodiesSubjectPrefix = "bodies."
	// HeaderObjectKey is the object key a cached body was stored under; the indexer uses a body only for
	// the event with that key.
	HeaderObjectKey = "Flamestream-Object-Key"
	// MaxCachedBody is the largest body the cache takes. The cache's cost grows with the bytes and a GET's
	// hardly does: on this machine a 2.8 KB body cost NATS 0.06 ms of CPU (publish and read) against 0.36 ms
	// for the S3 server's GET, a 52 KB one 0.37 ms against 0.33 ms. Bigger bodies are read from the store.
	MaxCachedBody = 32 << 10
	// bodiesMaxAge drops a body the indexer never asked for (its event indexed elsewhere, or skipped).
	bodiesMaxAge = time.Hour
	// bodyBatch is how many bodies one direct-get request asks for; the server answers at most 1,024.
	bodyBatch = 256
	// bodyBatchBytes bounds the bytes one request returns; Get asks again for the rest.
	bodyBatchBytes = 4 << 20
	// maxGetBytes bounds the bytes one Get returns: the rest of a batch of big uploads is read from the
	// object store, a few at a time, instead of all held at once.
	maxGetBytes = 64 << 20
	// numPendingHeader counts, in the end-of-batch answer, the bodies that matched but were not sent.
	numPendingHeader = "Nats-Num-Pending"
)

// EnsureBodies creates or updates the body cache's stream, holding at most maxBytes in memory (oldest
// bodies go first). maxBytes <= 0 deletes it, if it exists.
func EnsureBodies(ctx context.Context, js jetstream.JetStream, maxBytes int64) error {
	if maxBytes <= 0 {
		err := js.DeleteStream(ctx, BodiesStream)
		if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("delete stream %s: %w", BodiesStream, err)
		}
		return nil
	}
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        BodiesStream,
		Description: "recent upload bodies, a cache in front of the object store for the indexer",
		Subjects:    []string{BodiesSubjectPrefix + ">"},
		Storage:     jetstream.MemoryStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      bodiesMaxAge,
		MaxBytes:    maxBytes,
		// A retry of an upload has the same id: keep only the newest body of an id.
		MaxMsgsPerSubject: 1,
		MaxMsgSize:        MaxCachedBody + 1024,
		// A cache: losing it with a server costs only object-store reads.
		Replicas:    1,
		AllowDirect: true,
	})
	if err != nil {
		return fmt.Errorf("ensure stream %s: %w", BodiesStream, err)
	}
	return nil
}

// BodySubject is the subject of the body of profile id.
func BodySubject(id string) string { return BodiesSubjectPrefix + SubjectToken(id) }

// BodyCache puts upload bodies into the cache stream and takes them out again.
type BodyCache struct {
	nc *nats.Conn

	// js and maxBytes, when set (Recreating), create the stream again when it is gone.
	js       jetstream.JetStream
	maxBytes int64
	mu       sync.Mutex
	ensured  time.Time
}

// NewBodyCache returns the cache on nc.
func NewBodyCache(nc *nats.Conn) *BodyCache { return &BodyCache{nc: nc} }

// Recreating makes Get create the stream again (EnsureBodies with maxBytes, at most once a minute) when
// the server answers that it has none: a NATS server restarted without it keeps its memory streams only
// in memory, and the cache would otherwise stay off until the roles restart.
func (c *BodyCache) Recreating(js jetstream.JetStream, maxBytes int64) *BodyCache {
	c.js, c.maxBytes = js, maxBytes
	return c
}

// recreate is Recreating's work after a Get found no stream.
func (c *BodyCache) recreate(ctx context.Context) error {
	if c.js == nil || c.maxBytes <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.ensured) < time.Minute {
		return nil
	}
	c.ensured = time.Now()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return EnsureBodies(ctx, c.js, c.maxBytes)
}

// Put hands the body stored under key to the cache, without waiting for anything: a body the server did not
// keep is read from the object store later. It returns false when the body is too big to cache or the
// connection refused it.
func (c *BodyCache) Put(id, key string, body []byte) bool {
	if len(body) > MaxCachedBody {
		return false
	}
	m := &nats.Msg{Subject: BodySubject(id), Data: body, Header: nats.Header{}}
	m.Header.Set(HeaderObjectKey, key)
	return c.nc.PublishMsg(m) == nil
}

// Cached is one body the cache returned.
type Cached struct {
	Key  string
	Body []byte
}

// directGet is the request of a batched direct get.
type directGet struct {
	MultiLast []string `json:"multi_last"`
	Batch     int      `json:"batch"`
	MaxBytes  int      `json:"max_bytes"`
}

// Get asks the cache for the bodies of ids and returns those it holds, by id, up to about maxGetBytes in
// all. An id missing from the result is a miss, and so is everything after an error (which Get returns with
// what it got until then): either way the caller reads the object store.
func (c *BodyCache) Get(ctx context.Context, ids []string) (map[string]Cached, error) {
	out := make(map[string]Cached, len(ids))
	var got int
	for len(ids) > 0 && got < maxGetBytes {
		n := min(len(ids), bodyBatch)
		before := len(out)
		more, bytes, err := c.get(ctx, ids[:n], out)
		got += bytes
		if errors.Is(err, nats.ErrNoResponders) {
			if rerr := c.recreate(ctx); rerr != nil {
				err = fmt.Errorf("%w; creating it again: %w", err, rerr)
			}
		}
		if err != nil {
			return out, err
		}
		if more && len(out) > before {
			// The server stopped at bodyBatchBytes: ask again for the bodies of this chunk it did not send.
			rest := make([]string, 0, len(ids))
			for _, id := range ids[:n] {
				if _, ok := out[id]; !ok {
					rest = append(rest, id)
				}
			}
			ids = append(rest, ids[n:]...)
			continue
		}
		ids = ids[n:]
	}
	return out, nil
}

// get asks for one chunk of ids and adds what the server holds to out. more is whether the server stopped
// before the end (at bodyBatchBytes); n is the bytes of the bodies it sent.
func (c *BodyCache) get(ctx context.Context, ids []string, out map[string]Cached) (more bool, n int, err error) {
	req := directGet{MultiLast: make([]string, len(ids)), Batch: len(ids), MaxBytes: bodyBatchBytes}
	asked := make(map[string]string, len(ids)) // subject → id
	for i, id := range ids {
		req.MultiLast[i] = BodySubject(id)
		asked[req.MultiLast[i]] = id
	}
	data, err := json.Marshal(req)
	if err != nil {
		return false, 0, err
	}
	// A bounded wait: a server that does not answer costs this batch its cache, not its deadline.
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	inbox := c.nc.NewRespInbox()
	sub, err := c.nc.SubscribeSync(inbox)
	if err != nil {
		return false, 0, fmt.Errorf("body cache: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := c.nc.PublishRequest("$JS.API.DIRECT.GET."+BodiesStream, inbox, data); err != nil {
		return false, 0, fmt.Errorf("body cache: %w", err)
	}
	for range len(ids) + 1 {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return false, n, fmt.Errorf("body cache: %w", err)
		}
		if status := m.Header.Get("Status"); status != "" {
			switch status {
			case "204": // end of the batch; Nats-Num-Pending is what matched but was not sent
				return m.Header.Get(numPendingHeader) != "0", n, nil
			case "404": // none of them
				return false, n, nil
			case "503":
				return false, n, fmt.Errorf("body cache: stream %s: %w", BodiesStream, nats.ErrNoResponders) // no such stream
			}
			return false, n, fmt.Errorf("body cache: status %s %s", status, m.Header.Get("Description"))
		}
		id, ok := asked[m.Header.Get(jetstream.SubjectHeader)]
		if !ok {
			return false, n, fmt.Errorf("body cache: answer for subject %q, which was not asked for", m.Header.Get(jetstream.SubjectHeader))
		}
		out[id] = Cached{Key: m.Header.Get(HeaderObjectKey), Body: m.Data}
		n += len(m.Data)
	}
	return false, n, errors.New("body cache: more answers than asked for")
}
