package demo

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"testing"
	"time"
)

func TestLoadFleetBodyIsOneAgentUpload(t *testing.T) {
	fleet := NewFleet(3, "svc", Shape{Stacks: 500, Lines: 40, MinDepth: 20, MaxDepth: 60})
	lf := NewLoadFleet(3, fleet, 5, 4)
	start := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	body := lf.Body(2, 3, start, "17")
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var up Upload
	if err := json.Unmarshal(plain, &up); err != nil {
		t.Fatalf("body is not the agent's JSON: %v", err)
	}
	want := string(fleet.HeaderLine("load-host-0003", "r6i.large"))
	if up.GPID != "17" || up.Hostname != "load-host-0003" || up.StartTime != "2026-01-02T03:04:00.000000" {
		t.Errorf("upload fields: %+v", up)
	}
	if len(up.Profile) <= len(want) || up.Profile[:len(want)] != want {
		t.Errorf("profile does not start with the host's metadata line")
	}
	if n := bytes.Count([]byte(up.Profile), []byte("\n")); n != 41 {
		t.Errorf("profile has %d lines, want 41", n)
	}
	if !bytes.Equal(body, lf.Body(2, 3, start, "17")) {
		t.Error("the same request is not the same body")
	}
}

// BenchmarkLoadFleetBody is the load generator's work per request: what it takes from the cores it shares
// with the servers under measurement.
func BenchmarkLoadFleetBody(b *testing.B) {
	lf := NewLoadFleet(1, NewFleet(1, "bench", Shape{Stacks: 400, Lines: 60, MinDepth: 20, MaxDepth: 60}), 50, 8)
	start := time.Now().UTC().Truncate(time.Minute)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_ = lf.Body(i%50, i%8, start.Add(-time.Duration(i)*time.Minute), "123")
		i++
	}
}
