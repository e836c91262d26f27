package archive_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/flamestream/flamestream/internal/archive"
	"github.com/flamestream/flamestream/internal/demo"
	"github.com/flamestream/flamestream/internal/objstore"
	"github.com/flamestream/flamestream/internal/testenv"
)

func openStore(t *testing.T) *objstore.Store {
	t.Helper()
	cfg := testenv.Servers(t)
	s, err := objstore.Open(objstore.Options{Endpoint: cfg.S3Endpoint, AccessKey: cfg.S3AccessKey,
		SecretKey: cfg.S3SecretKey, Bucket: cfg.S3Bucket, Region: cfg.S3Region, Secure: cfg.S3Secure})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func inflate(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Through the real S3 server, a Reader with the smallest caches finds every upload of two bundles of one
// folder (index and frames evicted in turn), and a bundle cut short in the bucket is refused, not misread.
func TestReaderFindsUploadsInBundlesAndRefusesBrokenOnes(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	dir := fmt.Sprintf("profiles/archive-test-%d/2026-12-01/10/", time.Now().UnixNano())
	want := map[string][]byte{}
	for part := range 2 {
		w := archive.NewWriter(archive.Options{FrameBytes: 8 << 10})
		var keys []string
		for i := range 30 {
			host := fmt.Sprintf("host-%d", i%5)
			k := fmt.Sprintf("%s20261201T10%02d00Z_%d_%d.json.gz", dir, i, part, i)
			body := demo.NewUpload(demo.Restamp(host, float64(1+i+part)), host, time.Date(2026, 12, 1, 10, i, 0, 0, time.UTC), "").Gzip()
			if _, err := w.Add(k, body); err != nil {
				t.Fatal(err)
			}
			want[k] = inflate(t, body)
			keys = append(keys, k)
		}
		data, err := w.Finish()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, archive.BundleKey(keys), data, "application/octet-stream"); err != nil {
			t.Fatal(err)
		}
	}
	r := archive.NewReader()
	r.MaxIndexBytes, r.MaxFrames = 1, 1
	for k, plain := range want {
		got, err := r.Get(ctx, s, k)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		if !bytes.Equal(inflate(t, got), plain) {
			t.Fatalf("%s: other content", k)
		}
	}
	if _, err := r.Get(ctx, s, dir+"missing.json.gz"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("a key in no bundle: %v, want ErrNotFound", err)
	}

	// A bundle cut short (a broken copy in the bucket) is refused.
	broken := dir[:len(dir)-3] + "11/"
	w := archive.NewWriter(archive.Options{})
	k := broken + "20261201T110000Z_x_y.json.gz"
	if _, err := w.Add(k, demo.NewUpload(demo.Restamp("h", 1), "h", time.Now(), "").Gzip()); err != nil {
		t.Fatal(err)
	}
	data, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{len(data) - 1, len(data) / 2} {
		if err := s.Put(ctx, archive.BundleKey([]string{k}), data[:cut], "application/octet-stream"); err != nil {
			t.Fatal(err)
		}
		fresh := archive.NewReader()
		if got, err := fresh.Get(ctx, s, k); !errors.Is(err, archive.ErrCorrupt) {
			t.Errorf("bundle cut to %d of %d bytes: %d bytes, %v; want ErrCorrupt", cut, len(data), len(got), err)
		}
	}
	if _, err := s.DeletePrefix(ctx, dir[:len(dir)-len("2026-12-01/10/")], 1000); err != nil {
		t.Error(err)
	}
}
