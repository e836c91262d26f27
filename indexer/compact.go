package indexer

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/flamestream/flamestream/internal/archive"
	"github.com/flamestream/flamestream/internal/objstore"
)

// CompactStore is what archive compaction needs from the object store (objstore.Store implements it).
type CompactStore interface {
	Archive
	archive.Store
	Put(ctx context.Context, key string, body []byte, contentType string) error
	Delete(ctx context.Context, keys []string) error
}

// The janitor role hands the bucket to Janitor.Archive: compaction runs because it is a CompactStore.
var _ CompactStore = (*objstore.Store)(nil)

// Compaction tunes CompactArchive; the zero value takes the defaults.
type Compaction struct {
	// After is how long after an hour ends its uploads are bundled (default 2h): late uploads and an
	// indexer lagging behind still find the originals. Negative turns compaction off.
	After time.Duration
	// Settle is how long the newest upload of an hour must have been stored before the hour is bundled
	// (default 10 minutes): an hour that still receives uploads (a backfill, an agent sending what it kept
	// while the server was away, a retry) is left until it is quiet rather than cut into many small
	// bundles while it is written. Negative bundles at once.
	Settle time.Duration
	// MaxBundles bounds the bundles one run writes (default 200); the next run goes on.
	MaxBundles int
	// PartBytes bounds the stored bytes of the objects of one bundle (default 64 MiB), PartObjects their
	// number (default 20,000): a bigger hour is cut into several bundles, and the janitor's memory stays
	// about one bundle.
	PartBytes   int64
	PartObjects int
	// StepTimeout bounds each step: listing a folder, bundling one part (reading its objects, writing,
	// verifying), deleting its originals (default 5 minutes).
	StepTimeout time.Duration
	// Options tune the bundles.
	Options archive.Options
}

// CompactResult says what a compaction run did.
type CompactResult struct {
	// Bundles is how many bundles were written and verified, Objects how many originals they replaced,
	// RawBytes the originals' stored bytes and BundleBytes the bundles'.
	Bundles, Objects      int
	RawBytes, BundleBytes int64
}

// compactHour is one hour folder that may hold uploads to bundle.
type compactHour struct {
	dir string    // profiles/<service>/<day>/<HH>/
	end time.Time // the end of the hour
}

// CompactArchive bundles the raw uploads of every service's closed hours older than Compaction.After:
// one or more bundles per hour (see package archive), each written, read back and checked against the
// originals' content before the originals are deleted.
//
// Every step is idempotent and crash-safe: a bundle's key is derived from the keys it holds, so a run cut
// short, or two janitors at once, write the same bundle again rather than another; originals are deleted
// only once a bundle holding them has been read back whole; an original that vanished meanwhile (another
// janitor finished first) stops that hour until the next run. An upload that arrives in an hour already
// bundled is bundled on its own by a later run; readers look through every bundle of the folder.
//
// Hours of days past the archive retention are left to SweepArchive. A run looks at every hour folder of
// every service; the janitor's in-memory watermark per service skips the hours found bundled already,
// and is forgotten once a day so that late uploads behind it are found.
func (j *Janitor) CompactArchive(ctx context.Context) (CompactResult, error) {
	var res CompactResult
	store, ok := j.Archive.(CompactStore)
	if !ok || j.Compaction.After < 0 {
		return res, nil
	}
	c := j.Compaction
	after := cmp.Or(c.After, 2*time.Hour)
	budget := cmp.Or(c.MaxBundles, 200)
	step := cmp.Or(c.StepTimeout, 5*time.Minute)
	now := j.Now().UTC()
	if j.compactedBefore == nil || now.Sub(j.watermarksAt) > 24*time.Hour {
		j.compactedBefore, j.watermarksAt = map[string]time.Time{}, now
	}
	var retentionCutoff time.Time
	if j.retention.ArchiveDays > 0 {
		retentionCutoff = now.Truncate(24*time.Hour).AddDate(0, 0, -j.retention.ArchiveDays)
	}
	list := func(prefix string) ([]string, error) {
		lctx, cancel := context.WithTimeout(ctx, step)
		defer cancel()
		return j.Archive.Prefixes(lctx, prefix, 100_000)
	}
	services, err := list("profiles/")
	if err != nil {
		return res, err
	}
	var errs []error
	for _, svc := range services {
		days, err := list(svc)
		if err != nil {
			return res, errors.Join(append(errs, err)...)
		}
		mark := j.compactedBefore[svc]
		clean := true // every hour so far is bundled: the watermark may move past it
		stop := false // the hours still open were reached, or this service failed
		for _, d := range days {
			day, perr := time.Parse("2006-01-02", strings.TrimSuffix(strings.TrimPrefix(d, svc), "/"))
			if perr != nil || day.Before(retentionCutoff) || !day.Add(24*time.Hour).After(mark) {
				continue // not a day folder, expiring, or bundled already
			}
			if !day.Add(time.Hour + after).Before(now) {
				break // days are listed in order: no hour of this day or later is closed long enough
			}
			hours, err := list(d)
			if err != nil {
				return res, errors.Join(append(errs, err)...)
			}
			for _, h := range hours {
				hh := strings.TrimSuffix(strings.TrimPrefix(h, d), "/")
				if len(hh) != 2 || hh[0] < '0' || hh[0] > '2' || hh[1] < '0' || hh[1] > '9' {
					continue
				}
				end := day.Add(time.Duration((int(hh[0]-'0')*10+int(hh[1]-'0'))+1) * time.Hour)
				if !end.After(mark) {
					continue
				}
				if end.Add(after).After(now) {
					stop = true
					break
				}
				if budget <= 0 {
					return res, errors.Join(errs...)
				}
				n, err := j.compactHour(ctx, store, compactHour{dir: h, end: end}, &res, &budget, step)
				if err != nil {
					if ctx.Err() != nil {
						return res, errors.Join(append(errs, ctx.Err())...)
					}
					// One hour that fails (an S3 error, a bundle that does not verify) stops its service
					// until the next run, not the others.
					j.log.Warn("archive compaction failed", "hour", h, "err", err)
					errs = append(errs, err)
					stop = true
					break
				}
				if n == 0 && clean {
					j.compactedBefore[svc] = end
				} else if n > 0 {
					clean = false // bundled now but the budget may have cut it: look again next run
				}
			}
			if stop {
				break
			}
		}
		if len(j.compactedBefore) > maxArchiveServices {
			clear(j.compactedBefore)
		}
	}
	return res, errors.Join(errs...)
}

// compactHour bundles the uploads left in one hour folder and returns how many it found.
func (j *Janitor) compactHour(ctx context.Context, store CompactStore, h compactHour, res *CompactResult, budget *int, step time.Duration) (int, error) {
	lctx, cancel := context.WithTimeout(ctx, step)
	objs, err := store.List(lctx, h.dir, 1_000_000)
	cancel()
	if err != nil {
		return 0, err
	}
	var raw []objstore.Object
	for _, o := range objs {
		if strings.HasSuffix(o.Key, ".json.gz") { // an upload (bundles lie in a folder of their own)
			raw = append(raw, o)
		}
	}
	found := len(raw)
	if found == 0 {
		return 0, nil
	}
	settle := cmp.Or(j.Compaction.Settle, 10*time.Minute)
	for _, o := range raw {
		if settle > 0 && o.Modified.After(j.Now().Add(-settle)) {
			return found, nil // still being written: the next run looks again
		}
	}
	sort.Slice(raw, func(a, b int) bool { return raw[a].Key < raw[b].Key })
	partBytes := cmp.Or(j.Compaction.PartBytes, 64<<20)
	partObjects := cmp.Or(j.Compaction.PartObjects, 20_000)
	for len(raw) > 0 && *budget > 0 {
		n, size := 0, int64(0)
		for n < len(raw) && n < partObjects && (n == 0 || size+raw[n].Size <= partBytes) {
			size += raw[n].Size
			n++
		}
		part := raw[:n]
		raw = raw[n:]
		pctx, cancel := context.WithTimeout(ctx, step)
		written, err := j.compactPart(pctx, store, part)
		cancel()
		if errors.Is(err, errVanished) {
			j.log.Info("archive compaction: an original vanished meanwhile, leaving the hour to the next run", "hour", h.dir)
			return found, nil
		}
		if err != nil {
			return found, fmt.Errorf("compact %s: %w", h.dir, err)
		}
		*budget--
		res.Bundles++
		res.Objects += len(part)
		res.RawBytes += size
		res.BundleBytes += int64(written)
	}
	return found, nil
}

// errVanished stops an hour whose originals changed under a run (another janitor bundled them).
var errVanished = errors.New("an original vanished meanwhile")

// compactPart writes, verifies and then deletes the originals of one bundle. It returns the bundle's size.
func (j *Janitor) compactPart(ctx context.Context, store CompactStore, part []objstore.Object) (int, error) {
	keys := make([]string, len(part))
	for i, o := range part {
		keys[i] = o.Key
	}
	bk := archive.BundleKey(keys)
	w := archive.NewWriter(j.Compaction.Options)
	sums := make([][sha256.Size]byte, len(keys))
	pf := prefetch(ctx, store, keys, compactFetchWindow)
	defer pf.stop()
	for i, k := range keys {
		f := pf.take(ctx, i)
		body, err := f.body, f.err
		if errors.Is(err, objstore.ErrNotFound) {
			return 0, errVanished
		}
		if err != nil {
			return 0, err
		}
		content, err := w.Add(k, body)
		if err != nil {
			return 0, err
		}
		sums[i] = sha256.Sum256(content)
	}
	data, err := w.Finish()
	if err != nil {
		return 0, err
	}
	if err := store.Put(ctx, bk, data, "application/x-flamestream-bundle"); err != nil {
		return 0, err
	}
	// Read the bundle back from the store: what another reader will get, not what we meant to write.
	back, err := store.Get(ctx, bk)
	if err != nil {
		return 0, fmt.Errorf("read back %s: %w", bk, err)
	}
	if err := verifyBundle(back, keys, sums); err != nil {
		// Another janitor may have written the same key from other bodies of the same uploads (an agent's
		// retry overwrote one): keep the originals, the next run tries again.
		return 0, fmt.Errorf("verify %s: %w", bk, err)
	}
	if err := store.Delete(ctx, keys); err != nil {
		return 0, fmt.Errorf("delete the originals of %s: %w", bk, err)
	}
	return len(data), nil
}

// compactFetchWindow is how many originals a compaction reads ahead: S3 round trips overlap, and at most
// this many bodies wait in memory.
const compactFetchWindow = 8

type fetched struct {
	body []byte
	err  error
}

// prefetcher reads keys in order, at most its window ahead of the consumer: each take frees a place.
type prefetcher struct {
	out    []chan fetched
	sem    chan struct{}
	cancel context.CancelFunc
}

func prefetch(ctx context.Context, store CompactStore, keys []string, window int) *prefetcher {
	ctx, cancel := context.WithCancel(ctx)
	p := &prefetcher{out: make([]chan fetched, len(keys)), sem: make(chan struct{}, window), cancel: cancel}
	for i := range p.out {
		p.out[i] = make(chan fetched, 1) // buffered: a read never waits on a consumer that left
	}
	go func() {
		for i, k := range keys {
			select {
			case p.sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			go func() {
				b, err := store.Get(ctx, k)
				p.out[i] <- fetched{b, err}
			}()
		}
	}()
	return p
}

// take waits for the i-th body; call it for 0, 1, 2… in turn.
func (p *prefetcher) take(ctx context.Context, i int) fetched {
	select {
	case f := <-p.out[i]:
		<-p.sem
		return f
	case <-ctx.Done():
		return fetched{err: ctx.Err()}
	}
}

// stop ends the reading (reads in flight finish into their buffers).
func (p *prefetcher) stop() { p.cancel() }

// verifyBundle checks that the bundle holds exactly keys, each with the content whose SHA-256 is sums[i].
func verifyBundle(data []byte, keys []string, sums [][sha256.Size]byte) error {
	b, err := archive.Open(data)
	if err != nil {
		return err
	}
	defer b.Close()
	if len(b.Entries) != len(keys) {
		return fmt.Errorf("%d entries, want %d", len(b.Entries), len(keys))
	}
	want := make(map[string][sha256.Size]byte, len(keys))
	for i, k := range keys {
		want[k] = sums[i]
	}
	seen := 0
	err = b.Each(func(e archive.Entry, content []byte) error {
		s, ok := want[e.Key]
		if !ok {
			return fmt.Errorf("%s is not one of the originals", e.Key)
		}
		if got := sha256.Sum256(content); !bytes.Equal(got[:], s[:]) {
			return fmt.Errorf("%s reads back other content", e.Key)
		}
		seen++
		return nil
	})
	if err != nil {
		return err
	}
	if seen != len(keys) {
		return fmt.Errorf("%d entries read, want %d", seen, len(keys))
	}
	return nil
}
