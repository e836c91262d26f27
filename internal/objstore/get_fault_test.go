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

// A GET whose connection ends in the middle of the body is an error, never a short object; the next GET,
// on a new connection, reads the whole object. A GET that stalls ends with its context.
func TestGetCutInTheBodyIsAnError(t *testing.T) {
	cfg := testenv.Servers(t)
	direct, err := objstore.Open(objstore.Options{Endpoint: cfg.S3Endpoint, AccessKey: cfg.S3AccessKey,
		SecretKey: cfg.S3SecretKey, Bucket: cfg.S3Bucket, Region: cfg.S3Region, Secure: cfg.S3Secure})
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := direct.EnsureBucket(ctx); err != nil {
		t.Fatal(err)
	}
	// A 2,000-line profile's stored size, of bytes that do not compress.
	body := make([]byte, 52<<10)
	r := rand.New(rand.NewPCG(5, 2))
	for i := range body {
		body[i] = byte(r.Uint32())
	}
	key := fmt.Sprintf("objstore-cut-%d/obj", time.Now().UnixNano())
	if err := direct.Put(ctx, key, body, "application/octet-stream"); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = direct.Delete(context.Background(), []string{key}) }()

	p := testenv.NewProxy(t, cfg.S3Endpoint)
	// Each GET below has a store of its own, so that it dials anew instead of reusing a connection the
	// proxy let through whole.
	open := func(endpoint string) *objstore.Store {
		s, err := objstore.Open(objstore.Options{Endpoint: endpoint, AccessKey: cfg.S3AccessKey,
			SecretKey: cfg.S3SecretKey, Bucket: cfg.S3Bucket, Region: cfg.S3Region, Secure: cfg.S3Secure})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	// The answer's head is a few hundred bytes: every cut below falls in the body, from its first bytes to
	// its last.
	for _, cut := range []int64{600, 900, 4 << 10, 8<<10 + 1, 30 << 10, 52<<10 - 10} {
		p.CutReplies(cut)
		got, err := open(p.Addr()).Get(ctx, key)
		if err == nil {
			t.Errorf("cut after %d bytes: no error, %d of %d bytes", cut, len(got), len(body))
		}
		p.CutReplies(0)
		if got, err := open(p.Addr()).Get(ctx, key); err != nil || !bytes.Equal(got, body) {
			t.Fatalf("after a cut at %d: %d bytes, %v", cut, len(got), err)
		}
	}

	// A server that answers nothing: the GET ends when its context does.
	p.Hang()
	hung := open(p.Addr())
	sctx, scancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer scancel()
	t0 := time.Now()
	if _, err := hung.Get(sctx, key); err == nil {
		t.Error("GET from a server that never answers: no error")
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("GET from a server that never answers took %s with a 300 ms context", d)
	}
}
