package objstore_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/flamestream/flamestream/internal/objstore"
	"github.com/flamestream/flamestream/internal/testenv"
)

// Get, which sizes its buffer from the object's announced size, returns every byte and nothing more, for
// an empty object and for sizes around a read's.
func TestGetReadsTheWholeObject(t *testing.T) {
	cfg := testenv.Servers(t)
	s, err := objstore.Open(objstore.Options{Endpoint: cfg.S3Endpoint, AccessKey: cfg.S3AccessKey,
		SecretKey: cfg.S3SecretKey, Bucket: cfg.S3Bucket, Region: cfg.S3Region, Secure: cfg.S3Secure})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.EnsureBucket(ctx); err != nil {
		t.Fatal(err)
	}
	dir := fmt.Sprintf("objstore-get-%d/", time.Now().UnixNano())
	for _, n := range []int{0, 1, 511, 512, 513, 8<<10 - 1, 8 << 10, 8<<10 + 1, 9000, 12 << 10, 16<<10 + 1, 32 << 10, 1<<20 + 3} {
		body := bytes.Repeat([]byte("0123456789abcdefghij"), n/20+1)[:n]
		key := fmt.Sprint(dir, n)
		if err := s.Put(ctx, key, body, "application/octet-stream"); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, key)
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("Get of %d bytes: %d bytes, %v", n, len(got), err)
		}
		if err := s.Delete(ctx, []string{key}); err != nil {
			t.Fatal(err)
		}
	}
}
