package objstore_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/flamestream/flamestream/internal/objstore"
	"github.com/flamestream/flamestream/internal/testenv"
)

// BenchmarkGet reads objects of a 60-line and a 2,000-line profile's stored size from the real S3
// server: the round trip dominates ns/op; B/op and allocs/op are the client's own.
func BenchmarkGet(b *testing.B) {
	cfg := testenv.Servers(b)
	s, err := objstore.Open(objstore.Options{Endpoint: cfg.S3Endpoint, AccessKey: cfg.S3AccessKey,
		SecretKey: cfg.S3SecretKey, Bucket: cfg.S3Bucket, Region: cfg.S3Region, Secure: cfg.S3Secure})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.EnsureBucket(ctx); err != nil {
		b.Fatal(err)
	}
	for _, size := range []int{3 << 10, 52 << 10} {
		b.Run(fmt.Sprint(size>>10, "KB"), func(b *testing.B) {
			body := make([]byte, size)
			r := rand.New(rand.NewPCG(uint64(size), 1))
			for i := range body {
				body[i] = byte(r.Uint32())
			}
			key := fmt.Sprintf("objstore-bench-%d/%d", time.Now().UnixNano(), size)
			if err := s.Put(ctx, key, body, "application/octet-stream"); err != nil {
				b.Fatal(err)
			}
			defer func() { _ = s.Delete(ctx, []string{key}) }()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				got, err := s.Get(ctx, key)
				if err != nil {
					b.Fatal(err)
				}
				if !bytes.Equal(got, body) {
					b.Fatalf("read %d bytes, not the %d stored", len(got), len(body))
				}
			}
		})
	}
}
