package indexer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/flamestream/flamestream/indexer"
	"github.com/flamestream/flamestream/internal/archive"
	"github.com/flamestream/flamestream/internal/objstore"
)

// The archive keeps ArchiveDays whole UTC days of raw uploads: older day folders of every service go,
// newer ones and keys outside profiles/<service>/<day>/ stay, and one sweep deletes at most its budget.
func TestJanitorArchiveRetentionDeletesWholeExpiredDays(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	prefix := fmt.Sprintf("profiles/arch-%d", time.Now().UnixNano()) // this test's services only
	put := func(key string) {
		t.Helper()
		if err := r.store.Put(ctx, key, []byte("x"), "application/octet-stream"); err != nil {
			t.Fatal(err)
		}
	}
	var keep, gone []string
	for _, svc := range []string{prefix + "-a", prefix + "-b%2Fslash"} {
		for _, day := range []string{"2026-10-01", "2026-11-02", "2026-11-03", "2026-12-03"} {
			for h := range 3 {
				k := fmt.Sprintf("%s/%s/%02d/obj-%d.json.gz", svc, day, h, h)
				put(k)
				// 30 days back from 2026-12-03 is 2026-11-03: that day and later stay whole.
				if day < "2026-11-03" {
					gone = append(gone, k)
				} else {
					keep = append(keep, k)
				}
			}
		}
		odd := svc + "/not-a-day/obj.json.gz"
		put(odd)
		keep = append(keep, odd)
	}
	j := indexer.NewJanitor(r.st.CH, indexer.Retention{ArchiveDays: 30}, r.log)
	j.Now = func() time.Time { return now }
	j.Archive = scoped{r.store, prefix}
	j.MaxArchiveDeletes = 5
	n, err := j.SweepArchive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 5 {
		t.Errorf("first sweep deleted %d objects, budget 5", n)
	}
	total := n
	for range 5 {
		n, err = j.SweepArchive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	if total != len(gone) {
		t.Errorf("deleted %d objects, want %d", total, len(gone))
	}
	for _, k := range gone {
		if _, err := r.store.Get(ctx, k); err == nil {
			t.Errorf("%s is still there", k)
		}
	}
	for _, k := range keep {
		if _, err := r.store.Get(ctx, k); err != nil {
			t.Errorf("%s: %v", k, err)
		}
	}
}

// scoped lists only the services of one test under profiles/, so that other tests' uploads in the shared
// bucket are neither seen nor deleted.
type scoped struct {
	s      *objstore.Store
	prefix string
}

func (a scoped) Prefixes(ctx context.Context, prefix string, max int) ([]string, error) {
	if prefix == "profiles/" {
		prefix = a.prefix
	}
	out, err := a.s.Prefixes(ctx, prefix, max)
	var mine []string
	for _, p := range out {
		if strings.HasPrefix(p, a.prefix) {
			mine = append(mine, p)
		}
	}
	return mine, err
}

func (a scoped) DeletePrefix(ctx context.Context, prefix string, max int) (int, error) {
	return a.s.DeletePrefix(ctx, prefix, max)
}

// scopedStore is the bucket as one test's compaction sees it: the services under its prefix only.
type scopedStore struct {
	*objstore.Store
	prefix string
}

func (a scopedStore) Prefixes(ctx context.Context, prefix string, max int) ([]string, error) {
	return scoped{a.Store, a.prefix}.Prefixes(ctx, prefix, max)
}

// corruptingStore flips one byte of every bundle of the services named with only it stores: a store that
// does not keep what it is given.
type corruptingStore struct {
	scopedStore
	only string
}

func (c corruptingStore) Put(ctx context.Context, key string, body []byte, ct string) error {
	if archive.IsBundleKey(key) && strings.Contains(key, c.only) {
		body = bytes.Clone(body)
		body[len(body)/2] ^= 0x55
	}
	return c.scopedStore.Put(ctx, key, body, ct)
}

// contents reads every upload under prefix (recursively, bundles excluded) and returns its inflated body.
func contents(t *testing.T, s *objstore.Store, keys []string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, k := range keys {
		b, err := archive.Get(context.Background(), s, k)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		plain, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		out[k] = plain
	}
	return out
}

func uploadKeysOf(m map[string][]byte) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// uploadKeys lists the uploads (not bundles) of service's hour folders.
func uploadKeys(t *testing.T, s *objstore.Store, service string) []string {
	t.Helper()
	var keys []string
	days, err := s.Prefixes(context.Background(), "profiles/"+service+"/", 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range days {
		hours, err := s.Prefixes(context.Background(), d, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hours {
			objs, err := s.List(context.Background(), h, 100_000)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range objs {
				if strings.HasSuffix(o.Key, ".json.gz") {
					keys = append(keys, o.Key)
				}
			}
		}
	}
	return keys
}

// Compaction bundles the closed hours' uploads and deletes the originals only once the bundle reads back;
// every upload still reads back with the same content, a second run has nothing to do, the current hour is
// left alone, and a reindex of the compacted range (which fetches every upload from its bundle) gives
// back exactly the rows the first indexing wrote, in samples and every rollup.
func TestArchiveCompactionKeepsUploadsAndReindexExact(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	svc := fmt.Sprintf("compact-%d", time.Now().UnixNano())
	now := time.Now().UTC()
	base := now.Truncate(time.Hour).Add(-4*time.Hour + 10*time.Minute)
	r.upload(t, svc, 40, 8, base)                 // one hour 4 hours ago: to bundle
	r.upload(t, svc, 4, 4, now.Add(-time.Minute)) // the current hour: too recent
	cons := r.consumer(t, "indexer", time.Minute)
	r.run(t, r.st.CH, cons)
	drained(t, cons, 60*time.Second)
	want := fingerprintOf(t, r.st.CH, svc)
	checkTotals(t, want, r.sent[svc])

	all := uploadKeys(t, r.store, svc)
	if len(all) != 44 {
		t.Fatalf("%d uploads stored, want 44", len(all))
	}
	before := contents(t, r.store, all)

	j := indexer.NewJanitor(r.st.CH, indexer.Retention{ArchiveDays: 30}, r.log)
	j.Archive = scopedStore{r.store, "profiles/" + svc}
	j.Compaction.PartObjects = 16 // three bundles for the hour
	// Uploads stored seconds ago are left until their hour is quiet (Compaction.Settle), however old the
	// hour they belong to: a backfill or an agent catching up may still be writing it.
	if res, err := j.CompactArchive(ctx); err != nil || res.Bundles != 0 {
		t.Errorf("uploads stored seconds ago: %+v, %v; want them left until they settle", res, err)
	}
	if left := uploadKeys(t, r.store, svc); len(left) != 44 {
		t.Errorf("%d originals left by a run that bundled nothing, want 44", len(left))
	}
	j.Compaction.Settle = -1 // bundle at once from here on
	j.Compaction.After = -1  // FLAMESTREAM_ARCHIVE_COMPACT_AFTER=0: compaction off
	if res, err := j.CompactArchive(ctx); err != nil || res.Bundles != 0 {
		t.Errorf("compaction turned off: %+v, %v; want nothing bundled", res, err)
	}
	j.Compaction.After = 0 // the default, 2h
	res, err := j.CompactArchive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Bundles != 3 || res.Objects != 40 || res.BundleBytes >= res.RawBytes {
		t.Errorf("compaction: %+v, want 3 bundles of 40 objects, smaller than they were", res)
	}
	t.Logf("compaction: %+v (%.1fx)", res, float64(res.RawBytes)/float64(res.BundleBytes))
	if left := uploadKeys(t, r.store, svc); len(left) != 4 {
		t.Errorf("%d originals left, want the 4 of the current hour", len(left))
	}
	after := contents(t, r.store, all)
	for k, b := range before {
		if !bytes.Equal(after[k], b) {
			t.Errorf("%s reads back other content after compaction", k)
		}
	}
	if res, err := j.CompactArchive(ctx); err != nil || res.Bundles != 0 {
		t.Errorf("second run: %+v, %v; want nothing to do", res, err)
	}
	if _, err := archive.Get(ctx, r.store, all[0][:len(all[0])-8]+"nope.json.gz"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("a key in no bundle: %v, want ErrNotFound", err)
	}

	// Damage the rows, then reindex: every upload comes from a bundle.
	insertSamples(t, r.st.CH, svc, 42, []time.Time{base}, 1000)
	rres, err := indexer.Reindex(ctx, r.indexerConfig(),
		indexer.Range{Service: svc, From: base, To: base.Add(time.Hour), Slack: 5 * time.Hour}, r.st.CH, r.store, r.js, r.log)
	if err != nil {
		t.Fatal(err)
	}
	if rres.Indexed < 40 {
		t.Errorf("reindex indexed %d profiles, want the 40 bundled (and the day's others)", rres.Indexed)
	}
	if got := fingerprintOf(t, r.st.CH, svc); !equal(got, want) {
		t.Errorf("after compaction and reindex:\n got %v\nwant %v", got, want)
	}
}

// A bundle that does not read back as written keeps the originals and stops only its service; one run
// bundles every closed hour of every day; a late upload into an hour already bundled gets a bundle of its
// own; two janitors at once lose nothing.
func TestArchiveCompactionIsSafe(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	run := fmt.Sprintf("compact-safe-%d", time.Now().UnixNano())
	svc, other := run+"-a", run+"-b"
	base := time.Now().UTC().Truncate(time.Hour).Add(-5 * time.Hour)
	r.upload(t, svc, 24, 6, base)
	r.upload(t, svc, 24, 6, base.Add(time.Hour))
	for _, back := range []time.Duration{50 * time.Hour, 26 * time.Hour, 5 * time.Hour} { // three days
		r.upload(t, other, 6, 3, base.Add(5*time.Hour-back))
	}
	all := uploadKeys(t, r.store, svc)
	before := contents(t, r.store, all)
	others := contents(t, r.store, uploadKeys(t, r.store, other))
	scope := scopedStore{r.store, "profiles/" + run}

	bad := indexer.NewJanitor(r.st.CH, indexer.Retention{}, r.log)
	bad.Compaction.Settle = -1 // this test's uploads are seconds old
	bad.Archive = corruptingStore{scope, svc + "/"}
	res, err := bad.CompactArchive(ctx)
	if err == nil || res.Bundles != 3 || res.Objects != 18 {
		t.Errorf("a store that alters one service's bundles: %+v, %v; want a verification error, and the other's 3 hours bundled", res, err)
	}
	if left := uploadKeys(t, r.store, svc); len(left) != len(all) {
		t.Fatalf("%d originals left of %d after a failed verification", len(left), len(all))
	}
	if left := uploadKeys(t, r.store, other); len(left) != 0 {
		t.Errorf("%d originals of the other service left", len(left))
	}
	for k, b := range contents(t, r.store, uploadKeysOf(others)) {
		if !bytes.Equal(others[k], b) {
			t.Errorf("%s reads back other content", k)
		}
	}

	// Two janitors at once (separate watermarks, as on two indexers).
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			j := indexer.NewJanitor(r.st.CH, indexer.Retention{}, r.log)
			j.Compaction.Settle = -1 // this test's uploads are seconds old
			j.Archive = scope
			_, err := j.CompactArchive(ctx)
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent compaction: %v", err)
		}
	}
	if left := uploadKeys(t, r.store, svc); len(left) != 0 {
		t.Errorf("%d originals left after compaction", len(left))
	}
	// A late upload into the first hour (an agent that was offline) is bundled by a later run, next to
	// the bundle already there.
	r.upload(t, svc, 1, 1, base.Add(59*time.Minute))
	late := uploadKeys(t, r.store, svc)
	if len(late) != 1 {
		t.Fatalf("%d originals after a late upload, want 1", len(late))
	}
	lateBody := contents(t, r.store, late)
	j := indexer.NewJanitor(r.st.CH, indexer.Retention{}, r.log)
	j.Compaction.Settle = -1 // this test's uploads are seconds old
	j.Archive = scope
	if res, err := j.CompactArchive(ctx); err != nil || res.Bundles != 1 || res.Objects != 1 {
		t.Errorf("late upload: %+v, %v; want one bundle of one object", res, err)
	}
	after := contents(t, r.store, append(all, late...))
	for k, b := range before {
		if !bytes.Equal(after[k], b) {
			t.Errorf("%s reads back other content", k)
		}
	}
	if !bytes.Equal(after[late[0]], lateBody[late[0]]) {
		t.Errorf("the late upload reads back other content")
	}
}
