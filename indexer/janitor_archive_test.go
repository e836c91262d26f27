package indexer_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flamestream/flamestream/indexer"
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
