package archive

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/flamestream/flamestream/internal/objstore"
)

// Store is what reading bundles needs from the object store (objstore.Store implements it).
type Store interface {
	Get(ctx context.Context, key string) ([]byte, error)
	// GetRange reads n bytes from off; n < 0 reads the last -n bytes.
	GetRange(ctx context.Context, key string, off, n int64) ([]byte, error)
	// List lists the objects right under prefix, at most max.
	List(ctx context.Context, prefix string, max int) ([]objstore.Object, error)
}

// BundleDir is the folder of a raw object's bundles: "bundles/" in the object's own folder, so a bundle
// lives and expires with the day folder of the uploads it holds.
func BundleDir(key string) string {
	i := strings.LastIndexByte(key, '/')
	return key[:i+1] + "bundles/"
}

// IsBundleKey reports whether key is a bundle's.
func IsBundleKey(key string) bool {
	return strings.Contains(key, "/bundles/") && strings.HasSuffix(key, ".fsb")
}

// BundleKey is the deterministic key of the bundle of keys (sorted): two janitors bundling the same
// objects write the same object, and a bundle of other objects never overwrites it.
func BundleKey(keys []string) string {
	h := sha256.New()
	for _, k := range keys {
		h.Write([]byte(k))
		h.Write([]byte{'\n'})
	}
	return BundleDir(keys[0]) + hex.EncodeToString(h.Sum(nil)[:16]) + ".fsb"
}

// maxBundlesPerDir bounds the bundles a reader looks at in one folder.
const maxBundlesPerDir = 1000

// Reader finds raw objects in their bundles once the originals are gone. It caches the bundles' indexes
// (up to MaxIndexBytes), the listings of bundle folders (refreshed after ListTTL) and a few inflated frames
// (a replay reads neighbouring objects in turn). It is safe for concurrent use.
type Reader struct {
	// MaxIndexBytes bounds the cached indexes (default 64 MiB), MaxFrames the cached frames (default 8).
	MaxIndexBytes, MaxFrames int
	// ListTTL is how long a folder's listing is trusted before a miss lists it again (default 10 s).
	ListTTL time.Duration

	mu        sync.Mutex
	indexes   map[string]*list.Element // bundle key → *cachedIndex
	lru       *list.List
	idxBytes  int
	listings  map[string]listing // bundle folder → its bundles
	frames    map[frameKey][]byte
	frameLRU  []frameKey
	fetchLock sync.Map // bundle key → *sync.Mutex: one index load per bundle at a time
}

type cachedIndex struct {
	key string
	x   *Index
}

type listing struct {
	at   time.Time
	keys []string
}

type frameKey struct {
	bundle string
	frame  uint32
}

// NewReader returns a Reader with the default bounds.
func NewReader() *Reader {
	return &Reader{indexes: map[string]*list.Element{}, lru: list.New(), listings: map[string]listing{}, frames: map[frameKey][]byte{}}
}

var defaultReader = NewReader()

// Get reads the object at key from s, or, when it is gone, from the bundle holding it; an object in neither
// gives an error wrapping objstore.ErrNotFound. It uses a process-wide Reader.
func Get(ctx context.Context, s Store, key string) ([]byte, error) {
	return defaultReader.Get(ctx, s, key)
}

// Get: see the package function Get.
func (r *Reader) Get(ctx context.Context, s Store, key string) ([]byte, error) {
	body, err := s.Get(ctx, key)
	if err == nil || !errors.Is(err, objstore.ErrNotFound) || IsBundleKey(key) {
		return body, err
	}
	body, found, berr := r.FromBundle(ctx, s, key)
	if berr != nil {
		return nil, berr
	}
	if !found {
		return nil, err
	}
	return body, nil
}

// FromBundle reads key from the bundles of its folder.
func (r *Reader) FromBundle(ctx context.Context, s Store, key string) ([]byte, bool, error) {
	dir := BundleDir(key)
	for attempt := 0; attempt < 2; attempt++ {
		bundles, fresh, err := r.bundles(ctx, s, dir, attempt > 0)
		if err != nil {
			return nil, false, err
		}
		for _, bk := range bundles {
			x, err := r.index(ctx, s, bk)
			if errors.Is(err, objstore.ErrNotFound) {
				continue // deleted since the listing (retention)
			}
			if err != nil {
				return nil, false, err
			}
			e, ok := x.Find(key)
			if !ok {
				continue
			}
			plain, err := r.frame(ctx, s, bk, x, e)
			if err != nil {
				return nil, true, err
			}
			obj, err := x.Object(e, plain)
			return obj, true, err
		}
		if fresh {
			break // the listing was just made: the key is in no bundle
		}
	}
	return nil, false, nil
}

// bundles lists the bundle keys of dir, from the cache unless it is older than ListTTL or refresh is set.
func (r *Reader) bundles(ctx context.Context, s Store, dir string, refresh bool) (keys []string, fresh bool, err error) {
	ttl := r.ListTTL
	if ttl <= 0 {
		ttl = 10 * time.Second
	}
	r.mu.Lock()
	l, ok := r.listings[dir]
	r.mu.Unlock()
	if ok && !refresh && time.Since(l.at) < ttl {
		return l.keys, false, nil
	}
	objs, err := s.List(ctx, dir, maxBundlesPerDir)
	if err != nil {
		return nil, false, fmt.Errorf("archive: list bundles of %s: %w", dir, err)
	}
	keys = keys[:0]
	for _, o := range objs {
		if IsBundleKey(o.Key) {
			keys = append(keys, o.Key)
		}
	}
	r.mu.Lock()
	if len(r.listings) >= 4096 { // bounded: forget them all, they are cheap to make again
		clear(r.listings)
	}
	r.listings[dir] = listing{at: time.Now(), keys: keys}
	r.mu.Unlock()
	return keys, true, nil
}

// index returns the index of bundle bk, from the cache or read with two range reads.
func (r *Reader) index(ctx context.Context, s Store, bk string) (*Index, error) {
	if x := r.cachedIndex(bk); x != nil {
		return x, nil
	}
	lk, _ := r.fetchLock.LoadOrStore(bk, new(sync.Mutex))
	mu := lk.(*sync.Mutex)
	mu.Lock()
	defer mu.Unlock()
	if x := r.cachedIndex(bk); x != nil {
		return x, nil
	}
	x, err := ReadIndex(ctx, s, bk)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	max := r.MaxIndexBytes
	if max <= 0 {
		max = 64 << 20
	}
	r.indexes[bk] = r.lru.PushFront(&cachedIndex{key: bk, x: x})
	r.idxBytes += x.Bytes()
	for r.idxBytes > max && r.lru.Len() > 1 {
		old := r.lru.Remove(r.lru.Back()).(*cachedIndex)
		delete(r.indexes, old.key)
		r.fetchLock.Delete(old.key)
		r.idxBytes -= old.x.Bytes()
		// The decoder is not closed: a reader may still be using it; the GC reclaims it.
	}
	return x, nil
}

func (r *Reader) cachedIndex(bk string) *Index {
	r.mu.Lock()
	defer r.mu.Unlock()
	if el, ok := r.indexes[bk]; ok {
		r.lru.MoveToFront(el)
		return el.Value.(*cachedIndex).x
	}
	return nil
}

// ReadIndex reads the index of the bundle at bk: its trailer, then its dictionary and index.
func ReadIndex(ctx context.Context, s Store, bk string) (*Index, error) {
	// One read of the tail usually holds the trailer, the index and the dictionary.
	const guess = 256 << 10
	tail, err := s.GetRange(ctx, bk, 0, -guess)
	if err != nil {
		return nil, err
	}
	if len(tail) < trailerSize {
		return nil, fmt.Errorf("%w: %s is %d bytes", ErrCorrupt, bk, len(tail))
	}
	trailer := tail[len(tail)-trailerSize:]
	ti, err := parseTrailerUnsized(trailer)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", bk, err)
	}
	size := ti.indexOff + ti.indexLen + trailerSize
	if int64(len(tail)) < guess && int64(len(tail)) != size {
		return nil, fmt.Errorf("%w: %s is %d bytes, its trailer says %d", ErrCorrupt, bk, len(tail), size)
	}
	need := ti.dictLen + ti.indexLen
	var dictIdx []byte
	if have := int64(len(tail)) - trailerSize; have >= need {
		dictIdx = tail[have-need : have]
	} else if dictIdx, err = s.GetRange(ctx, bk, ti.dictOff, need); err != nil {
		return nil, err
	}
	x, err := ParseIndex(dictIdx, trailer, size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", bk, err)
	}
	return x, nil
}

// parseTrailerUnsized checks a trailer whose bundle size is not known yet (it is deduced from it).
func parseTrailerUnsized(t []byte) (trailerInfo, error) {
	if len(t) != trailerSize || string(t[32:]) != magic {
		return trailerInfo{}, fmt.Errorf("%w: no trailer (truncated?)", ErrCorrupt)
	}
	// The size is the index's end plus the trailer: parseTrailer then checks the rest against it.
	size := int64(binary.LittleEndian.Uint64(t[12:])) + int64(binary.LittleEndian.Uint32(t[20:]))
	if size < 0 || size > 1<<40 {
		return trailerInfo{}, fmt.Errorf("%w: trailer gives a size of %d", ErrCorrupt, size)
	}
	return parseTrailer(t, size+trailerSize)
}

// frame returns the inflated frame of e, from the cache or read and inflated.
func (r *Reader) frame(ctx context.Context, s Store, bk string, x *Index, e Entry) ([]byte, error) {
	fk := frameKey{bk, e.frame}
	r.mu.Lock()
	plain, ok := r.frames[fk]
	r.mu.Unlock()
	if ok {
		return plain, nil
	}
	off, n := x.FrameRange(e)
	raw, err := s.GetRange(ctx, bk, off, n)
	if err != nil {
		return nil, err
	}
	plain, err = x.Inflate(e, raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", bk, err)
	}
	max := r.MaxFrames
	if max <= 0 {
		max = 8
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.frames[fk]; !ok {
		r.frames[fk] = plain
		r.frameLRU = append(r.frameLRU, fk)
		for len(r.frameLRU) > max {
			delete(r.frames, r.frameLRU[0])
			r.frameLRU = r.frameLRU[1:]
		}
	}
	return plain, nil
}
