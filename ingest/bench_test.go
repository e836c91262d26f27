package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/flamestream/flamestream/internal/demo"
	"github.com/flamestream/flamestream/internal/pgdb"
	"github.com/flamestream/flamestream/internal/profile"
	"github.com/flamestream/flamestream/stream"
)

// benchUpload is a realistic agent upload: the real agent's profile (74 lines, 41 KB) and a synthetic
// one of 100 stacks of depth 20–60 (about 130 KB).
func benchUploads(b *testing.B) map[string][]byte {
	b.Helper()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fleet := demo.NewFleet(1, "bench", demo.Shape{Stacks: 5000, Lines: 100, MinDepth: 20, MaxDepth: 60})
	big := demo.NewFleet(1, "bench", demo.Shape{Stacks: 5000, Lines: 2000, MinDepth: 4, MaxDepth: 16})
	return map[string][]byte{
		"agent":     demo.NewUpload(demo.Restamp("h", 1), "h", start, "").Gzip(),
		"synthetic": demo.NewUpload(fleet.Profile(rand.New(rand.NewPCG(1, 1)), "h", "m5.xlarge"), "h", start, "").Gzip(),
		// The pipeline bench's big shape: 2,000 lines of depth 4–16, about 845 KB of text.
		"2000": demo.NewUpload(big.Profile(rand.New(rand.NewPCG(1, 1)), "h", "m5.xlarge"), "h", start, "").Gzip(),
	}
}

func BenchmarkGunzip(b *testing.B) {
	for name, body := range benchUploads(b) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := gunzip(body, 128<<20); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseUpload(b *testing.B) {
	for name, body := range benchUploads(b) {
		plain, _ := io.ReadAll(must(gzip.NewReader(bytes.NewReader(body))))
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(plain)))
			b.ReportAllocs()
			for b.Loop() {
				p, err := parseUpload(plain, profile.FormatV2, time.Now())
				if err != nil {
					b.Fatal(err)
				}
				_ = agentOf("bench", p)
			}
		})
	}
}

func BenchmarkProfileIDAndKey(b *testing.B) {
	for name, body := range benchUploads(b) {
		plain, _ := io.ReadAll(must(gzip.NewReader(bytes.NewReader(body))))
		p, err := parseUpload(plain, profile.FormatV2, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(p.text)))
			b.ReportAllocs()
			for b.Loop() {
				id := ProfileID("bench", p.start, p.host, p.text)
				_ = ObjectKey("bench", p.start, p.host, id)
			}
		})
	}
}

func BenchmarkEventEncode(b *testing.B) {
	now := time.Now()
	ev := stream.Event{ID: "ebc803e7c80f1474b11b97ef34f6d309", Service: "checkout", Host: "ip-10-0-0-1", GPID: 12345,
		Start: now, End: now.Add(time.Minute), Key: ObjectKey("checkout", now, "ip-10-0-0-1", "ebc803e7c80f1474b11b97ef34f6d309"),
		Size: 7812, Received: now, AgentVersion: "1.35.0", InstanceType: "m5.xlarge"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(ev); err != nil {
			b.Fatal(err)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// benchMeta is a metadata store that answers at once: BenchmarkPostProfile measures ingest's own work.
type benchMeta struct{ failingMeta }

func (benchMeta) TouchService(_ context.Context, name string, _ time.Time) (pgdb.Service, error) {
	return pgdb.Service{Name: name}, nil
}
func (benchMeta) RecordProfile(_ context.Context, gpid int64, _ pgdb.Agent, _ time.Time) (int64, error) {
	return max(gpid, 1), nil
}

// BenchmarkPostProfile is the whole upload handler (route, auth, read, gunzip, decode, check, id, agent
// record, object write, event), with the load generator's 60-line agent bodies and servers that answer at
// once (the object store and the publisher only encode what they are given).
func BenchmarkPostProfile(b *testing.B) {
	fleet := demo.NewFleet(1, "bench", demo.Shape{Stacks: 2000, Lines: 60, MinDepth: 4, MaxDepth: 16})
	lf := demo.NewLoadFleet(1, fleet, 64, 32)
	start := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	bodies := make([][]byte, 256)
	for i := range bodies {
		bodies[i] = lf.Body(i%64, i%32, start.Add(-time.Duration(i)*time.Minute), "7")
	}
	put := putFunc(func(_ context.Context, _ string, body []byte, _ string) error { _ = len(body); return nil })
	publish := func(_ context.Context, ev stream.Event) error { _, err := json.Marshal(ev); return err }
	s := New(Config{AuthCacheTTL: time.Hour, RateLimit: 0}, benchMeta{}, put, publish, slog.New(slog.DiscardHandler), nil)
	r := chi.NewRouter()
	s.Routes(r)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	var size int
	for _, body := range bodies {
		size += len(body)
	}
	b.SetBytes(int64(size / len(bodies)))
	b.ReportAllocs()
	i := 0
	cpu0 := cpuTime()
	for b.Loop() {
		body := bodies[i%len(bodies)]
		i++
		req := httptest.NewRequest(http.MethodPost, "/api/v2/profiles?key=k&service=bench&hostname=h", bytes.NewReader(body))
		req.Header.Set(HeaderAPIKey, "k")
		req.Header.Set(HeaderServiceName, "bench")
		req.Header.Set("Content-Encoding", "gzip")
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
	// The machine is shared: the process's CPU time per upload (GC included) varies less than ns/op.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(max(i, 1)), "cpu-ns/op")
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
