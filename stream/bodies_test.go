package stream_test

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flamestream/flamestream/internal/testenv"
	"github.com/flamestream/flamestream/stream"
)

func bodiesServer(t *testing.T) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	_, nc, js := testenv.JetStream(t)
	return nc, js
}

func id(i int) string { return fmt.Sprintf("%032x", i) }

func body(i, n int) []byte { return bytes.Repeat([]byte{byte('a' + i%26)}, n+i%7) }

// waitStored waits until the cache stream holds n messages: Put does not wait for the server.
func waitStored(t *testing.T, js jetstream.JetStream, n uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, err := js.Stream(context.Background(), stream.BodiesStream)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.CachedInfo().State.Msgs; got == n {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("the body cache holds %d bodies, want %d", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestBodyCacheReturnsWhatWasPutInBatches(t *testing.T) {
	nc, js := bodiesServer(t)
	ctx := context.Background()
	if err := stream.EnsureBodies(ctx, js, 64<<20); err != nil {
		t.Fatal(err)
	}
	c := stream.NewBodyCache(nc)
	const n = 600 // three direct-get requests
	for i := range n {
		if !c.Put(id(i), fmt.Sprintf("profiles/s/%d.json.gz", i), body(i, 3000)) {
			t.Fatalf("Put %d refused", i)
		}
	}
	// A retry of upload 5 replaces its body (one per id).
	if !c.Put(id(5), "profiles/s/5-retry.json.gz", []byte("retried")) {
		t.Fatal("Put of the retry refused")
	}
	if c.Put(id(n), "profiles/s/huge.json.gz", make([]byte, stream.MaxCachedBody+1)) {
		t.Fatal("a body over MaxCachedBody was taken")
	}
	waitStored(t, js, n)

	ids := []string{id(n + 1)} // never put
	for i := range n + 1 {
		ids = append(ids, id(i))
	}
	got, err := c.Get(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("Get returned %d bodies, want %d", len(got), n)
	}
	for i := range n {
		want, key := body(i, 3000), fmt.Sprintf("profiles/s/%d.json.gz", i)
		if i == 5 {
			want, key = []byte("retried"), "profiles/s/5-retry.json.gz"
		}
		if g := got[id(i)]; !bytes.Equal(g.Body, want) || g.Key != key {
			t.Fatalf("body %d: %d bytes under key %q, want %d bytes under %q", i, len(g.Body), g.Key, len(want), key)
		}
	}
	if _, ok := got[id(n)]; ok {
		t.Error("the refused huge body came back")
	}
}

func TestBodyCacheBoundsWhatItHoldsAndReturns(t *testing.T) {
	nc, js := bodiesServer(t)
	ctx := context.Background()
	const limit = 1 << 20
	if err := stream.EnsureBodies(ctx, js, limit); err != nil {
		t.Fatal(err)
	}
	c := stream.NewBodyCache(nc)
	// 100 bodies of 30 KiB: 3 MB offered, the stream keeps the newest 1 MiB.
	const n, size = 100, 30 << 10
	for i := range n {
		c.Put(id(i), "k", bytes.Repeat([]byte{byte(i)}, size))
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, err := js.Stream(ctx, stream.BodiesStream)
		if err != nil {
			t.Fatal(err)
		}
		st := s.CachedInfo().State
		if st.LastSeq == n {
			if st.Bytes > limit {
				t.Fatalf("the cache holds %d bytes, over its %d", st.Bytes, limit)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("last sequence %d, want %d", st.LastSeq, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ids := make([]string, n)
	for i := range n {
		ids[i] = id(i)
	}
	got, err := c.Get(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || len(got) > limit/size {
		t.Fatalf("Get returned %d bodies; the cache can hold at most %d", len(got), limit/size)
	}
	if _, ok := got[id(n-1)]; !ok {
		t.Error("the newest body was evicted")
	}
	if _, ok := got[id(0)]; ok {
		t.Error("the oldest body is still there")
	}
	for k, v := range got {
		i, err := strconv.ParseUint(k, 16, 64)
		if err != nil || len(v.Body) != size || v.Body[0] != byte(i) {
			t.Fatalf("body of %s is not the one put", k)
		}
	}
}

// Without the stream (turned off, or a server that refused it) Get fails fast with nothing: the indexer
// reads the object store.
func TestBodyCacheWithoutItsStream(t *testing.T) {
	nc, js := bodiesServer(t)
	ctx := context.Background()
	if err := stream.EnsureBodies(ctx, js, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := stream.EnsureBodies(ctx, js, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(ctx, stream.BodiesStream); err == nil {
		t.Fatal("EnsureBodies(0) left the stream")
	}
	c := stream.NewBodyCache(nc)
	c.Put(id(1), "k", []byte("x")) // goes nowhere
	t0 := time.Now()
	got, err := c.Get(ctx, []string{id(1)})
	if err == nil || len(got) != 0 {
		t.Fatalf("Get without the stream: %d bodies, err %v; want none and an error", len(got), err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("Get took %s to fail", d)
	}
}

// A request's answer stops at 4 MiB; Get asks again for the rest, so a batch of big bodies comes back whole.
func TestBodyCacheGetsBatchesOverOneAnswer(t *testing.T) {
	nc, js := bodiesServer(t)
	ctx := context.Background()
	if err := stream.EnsureBodies(ctx, js, 64<<20); err != nil {
		t.Fatal(err)
	}
	c := stream.NewBodyCache(nc)
	const n, size = 250, 30 << 10 // 7.7 MB in one request: two answers at least
	ids := make([]string, n)
	for i := range n {
		ids[i] = id(i)
		c.Put(ids[i], "k", bytes.Repeat([]byte{byte(i)}, size))
	}
	waitStored(t, js, n)
	got, err := c.Get(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("Get returned %d of the %d bodies", len(got), n)
	}
	for i := range n {
		if b := got[id(i)].Body; len(b) != size || b[0] != byte(i) {
			t.Fatalf("body %d is not the one put", i)
		}
	}
}

// A NATS server restarted without the stream (memory streams live in memory): the indexer's cache creates
// it again on the first request that finds none, and is a cache again from then on.
func TestBodyCacheIsCreatedAgainWhenTheServerLostIt(t *testing.T) {
	nc, js := bodiesServer(t)
	ctx := context.Background()
	if err := stream.EnsureBodies(ctx, js, 1<<20); err != nil {
		t.Fatal(err)
	}
	c := stream.NewBodyCache(nc).Recreating(js, 1<<20)
	if err := js.DeleteStream(ctx, stream.BodiesStream); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, []string{id(1)}); err == nil {
		t.Fatal("Get found a stream that was deleted")
	}
	if _, err := js.Stream(ctx, stream.BodiesStream); err != nil {
		t.Fatalf("the stream was not created again: %v", err)
	}
	c.Put(id(1), "k", []byte("body"))
	waitStored(t, js, 1)
	got, err := c.Get(ctx, []string{id(1)})
	if err != nil || string(got[id(1)].Body) != "body" {
		t.Fatalf("after it was created again: %v, %v", got, err)
	}
}
