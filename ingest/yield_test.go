package ingest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// scriptedBacklog answers the backlog ages of script one read at a time (an error where err is set), then
// ends the run.
type scriptedBacklog struct {
	mu     sync.Mutex
	script []any // time.Duration or error
	cancel context.CancelFunc
}

func (s *scriptedBacklog) read(context.Context) (time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.script) == 0 {
		s.cancel()
		return 0, errors.New("script over")
	}
	next := s.script[0]
	s.script = s.script[1:]
	if err, ok := next.(error); ok {
		return 0, err
	}
	return next.(time.Duration), nil
}

func runYieldScript(t *testing.T, lag time.Duration, script []any, setErr func(n int) error) ([]int, *prometheus.Registry) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := &scriptedBacklog{script: script, cancel: cancel}
	var calls []int
	set := func(n int) error {
		calls = append(calls, n)
		if setErr != nil {
			return setErr(n)
		}
		return nil
	}
	reg := prometheus.NewRegistry()
	done := make(chan error, 1)
	go func() {
		done <- RunYield(ctx, YieldConfig{Lag: lag, Interval: time.Millisecond}, b.read, set, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RunYield did not end")
	}
	return calls, reg
}

// TestYieldFollowsTheBacklogWithHysteresis: ingest yields once the backlog is older than the lag, stays
// yielded until it is under half of it, keeps its state when the backlog cannot be read, and takes its
// priority back when it stops.
func TestYieldFollowsTheBacklogWithHysteresis(t *testing.T) {
	s := time.Second
	read := errors.New("nats: timeout")
	script := []any{1 * s, 5 * s, 6 * s, 9 * s, 4 * s, 3 * s, 2 * s, 1 * s, 7 * s, read, 1 * s, 8 * s}
	calls, reg := runYieldScript(t, 5*s, script, nil)
	// 5 s is not above the lag; 4 s and 3 s are not under half of it; the read error changes nothing; the
	// last yield is undone as RunYield ends.
	want := []int{YieldNice, 0, YieldNice, 0, YieldNice, 0}
	if !slices.Equal(calls, want) {
		t.Errorf("setNice calls %v, want %v", calls, want)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		got[mf.GetName()] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	// The last age read was 8 s.
	if got["flamestream_ingest_yielding_seconds_total"] <= 0 {
		t.Errorf("no time counted while yielding: %v", got)
	}
	if got["flamestream_ingest_yields_total"] != 3 || got["flamestream_ingest_indexer_backlog_seconds"] != 8 || got["flamestream_ingest_yielding"] != 0 {
		t.Errorf("metrics %v, want 3 yields, a backlog of 8 s, not yielding after the end", got)
	}
}

// TestYieldStopsWhenThePriorityCannotBeTakenBack: a process that may not lower its nice value again stops
// governing at once instead of trying on every read.
func TestYieldStopsWhenThePriorityCannotBeTakenBack(t *testing.T) {
	s := time.Second
	calls, _ := runYieldScript(t, 5*s, []any{9 * s, 1 * s, 9 * s, 1 * s}, func(n int) error {
		if n == 0 {
			return errors.New("operation not permitted")
		}
		return nil
	})
	if want := []int{YieldNice, 0}; !slices.Equal(calls, want) {
		t.Errorf("setNice calls %v, want %v", calls, want)
	}
}
