package ingest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCacheMissesOfOneKeyShareOneLoad: uploads in flight when an entry is missing wait for one load (one
// PostgreSQL query), then read the remembered value; a failed load is shared but not remembered.
func TestCacheMissesOfOneKeyShareOneLoad(t *testing.T) {
	c := newTTLCache[int](time.Minute)
	now := time.Now()
	var loads atomic.Int32
	release := make(chan struct{})
	load := func(context.Context) (int, error) {
		loads.Add(1)
		<-release
		return 42, nil
	}
	const n = 64
	var wg sync.WaitGroup
	got := make([]int, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { got[i], errs[i] = c.getOrLoad(context.Background(), "k", now, load) })
	}
	time.Sleep(50 * time.Millisecond) // let every caller join the load before it ends
	close(release)
	wg.Wait()
	for i := range n {
		if got[i] != 42 || errs[i] != nil {
			t.Fatalf("caller %d: %d %v", i, got[i], errs[i])
		}
	}
	if l := loads.Load(); l != 1 {
		t.Errorf("%d loads for %d concurrent misses, want 1", l, n)
	}
	if v, err := c.getOrLoad(context.Background(), "k", now, func(context.Context) (int, error) {
		return 0, errors.New("must not load: remembered")
	}); v != 42 || err != nil {
		t.Errorf("after the load: %d %v", v, err)
	}

	boom := errors.New("database down")
	if _, err := c.getOrLoad(context.Background(), "bad", now, func(context.Context) (int, error) { return 0, boom }); !errors.Is(err, boom) {
		t.Errorf("failed load: %v", err)
	}
	if v, err := c.getOrLoad(context.Background(), "bad", now, func(context.Context) (int, error) { return 7, nil }); v != 7 || err != nil {
		t.Errorf("after a failed load: %d %v, want a new load", v, err)
	}
}

// TestCacheWaiterLeavesWithItsContext: a caller whose request ends stops waiting; the load it started goes
// on for the others, under its own deadline, and its value is remembered.
func TestCacheWaiterLeavesWithItsContext(t *testing.T) {
	c := newTTLCache[int](time.Minute)
	now := time.Now()
	release := make(chan struct{})
	var loadCtxErr error
	done := make(chan struct{})
	load := func(ctx context.Context) (int, error) {
		<-release
		loadCtxErr = ctx.Err()
		close(done)
		return 5, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := c.getOrLoad(ctx, "k", now, load); errc <- err }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v", err)
	}
	close(release)
	<-done
	if loadCtxErr != nil {
		t.Errorf("the load's context ended with its first caller: %v", loadCtxErr)
	}
	if v, ok := c.get("k", now); !ok || v != 5 {
		t.Errorf("value of the load: %d %v", v, ok)
	}
}

// TestCacheOffLoadsEveryTime: with a zero TTL every call loads.
func TestCacheOffLoadsEveryTime(t *testing.T) {
	c := newTTLCache[int](0)
	var loads int
	for range 3 {
		if _, err := c.getOrLoad(context.Background(), "k", time.Now(), func(context.Context) (int, error) { loads++; return 1, nil }); err != nil {
			t.Fatal(err)
		}
	}
	if loads != 3 {
		t.Errorf("%d loads, want 3", loads)
	}
}
