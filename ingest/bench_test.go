package ingest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/flamestream/flamestream/internal/demo"
	"github.com/flamestream/flamestream/internal/profile"
	"github.com/flamestream/flamestream/stream"
)

// benchUpload is a realistic agent upload: the real agent's profile (74 lines, 41 KB) and a synthetic
// one of 100 stacks of depth 20–60 (about 130 KB).
func benchUploads(b *testing.B) map[string][]byte {
	b.Helper()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fleet := demo.NewFleet(1, "bench", demo.Shape{Stacks: 5000, Lines: 100, MinDepth: 20, MaxDepth: 60})
	return map[string][]byte{
		"agent":     demo.NewUpload(demo.Restamp("h", 1), "h", start, "").Gzip(),
		"synthetic": demo.NewUpload(fleet.Profile(rand.New(rand.NewPCG(1, 1)), "h", "m5.xlarge"), "h", start, "").Gzip(),
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
