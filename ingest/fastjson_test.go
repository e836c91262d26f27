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
)

// reference decodes with encoding/json alone.
func reference(b []byte) (upload, error) {
	var up upload
	err := json.Unmarshal(b, &up)
	if err == nil && up.Profile != nil {
		up.ProfileBytes = []byte(*up.Profile)
	}
	return up, err
}

func sameUpload(a, b upload) bool {
	return a.StartTime == b.StartTime && a.EndTime == b.EndTime && a.Hostname == b.Hostname &&
		a.SpawnTime == b.SpawnTime && (a.CPUAvg == b.CPUAvg || a.CPUAvg != a.CPUAvg && b.CPUAvg != b.CPUAvg) &&
		a.MemAvg == b.MemAvg && bytes.Equal(a.GPID, b.GPID) && (a.Profile == nil) == (b.Profile == nil) &&
		bytes.Equal(a.ProfileBytes, b.ProfileBytes)
}

var uploadSeeds = []string{
	`{"start_time": "2023-12-03T16:41:00.123456", "end_time": "2023-12-03T16:42:00", "hostname": "h", "profile": "#{\"metadata\": {}}\nmain;f\\u00e9 1\n\ta\\\\b\\/c", "cpu_avg": 8.8, "mem_avg": 39.8, "spawn_time": "x", "gpid": ""}`,
	`{"gpid": 12, "profile": "plain", "extra": {"nested": [1, 2, {"a": null}]}, "flag": true}`,
	`{"profile": null, "gpid": null}`,
	`{"Profile": "case", "START_TIME": "k"}`,
	`{"profile": "a", "profile": "b"}`,
	`{"profile": "bad \x01 control"}`,
	`{"profile": "bad utf8 \xff"}`,
	`{"cpu_avg": "8.8"}`,
	`{"cpu_avg": 1e999}`,
	`{"cpu_avg": -0.5e-3, "mem_avg": 01}`,
	`{"profile": "x"} trailing`,
	`{"profile": "x",}`,
	`[]`, ``, `{}`, ` { } `, `{"a":1`, `{"hostname": "\ud83d\ude00"}`, `{"hostname": "\q"}`,
	`{"ſtart_time": "kelvin"}`, `{"gpid": tru}`, `{"end_time": false}`,
	// Long strings, scanned eight bytes at a time: special bytes at several offsets of a word.
	"{\"profile\": \"0123456789abcdef0123456789abcdef\\n0123456789abcdef01234567\\\"89abcdef\\\\x\"}",
	"{\"profile\": \"0123456789abcdef0123456789abcdé0123456789abcdef\\u00e90123456789abcdefghij\"}",
	"{\"profile\": \"0123456789abcdef0123456789abcde\x010123456789abcdef\"}",
	"{\"profile\": \"0123456789abcdef0123456789abcdefghi\xff0123456789abcdef\"}",
	"{\"profile\": \"0123456789abcdef0123456789abcdefghi\xe2\x82\"}",
	"{\"profile\": \"0123456789abcdef0123456789abcdefghi",
	"{\"hostname\": \"0123456789abcdef01234\x7f56789abcdef~~~~~~~~\"}",
}

func TestDecodeUploadMatchesEncodingJSON(t *testing.T) {
	for _, in := range uploadSeeds {
		checkDecode(t, []byte(in))
	}
}

func FuzzDecodeUpload(f *testing.F) {
	for _, s := range uploadSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkDecode(t, b) })
}

func checkDecode(t *testing.T, in []byte) {
	t.Helper()
	want, werr := reference(in)
	var got upload
	gerr := decodeUpload(in, &got)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%q: error %v, encoding/json says %v", in, gerr, werr)
	}
	if werr == nil && !sameUpload(got, want) {
		t.Fatalf("%q:\n got %+v\nwant %+v", in, got, want)
	}
	// The same with the profile unescaped into a reused buffer, too small or big enough.
	for _, size := range []int{0, 8, len(in)} {
		scratch := make([]byte, 0, size)
		var got2 upload
		if err := decodeUploadTo(in, &got2, &scratch); (err == nil) != (werr == nil) || werr == nil && !sameUpload(got2, want) {
			t.Fatalf("%q with a scratch buffer of %d: %+v, %v; want %+v, %v", in, size, got2, err, want, werr)
		}
	}
}

// TestFastDecodeTakesTheUsualBodies: the agent's bodies, escapes and non-ASCII included, stay on the fast
// path instead of falling back to encoding/json.
func TestFastDecodeTakesTheUsualBodies(t *testing.T) {
	bodies := []string{uploadSeeds[0], uploadSeeds[22], uploadSeeds[23], `{"profile": "é\n\"q\"\u00e9\t"}`}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fleet := demo.NewFleet(1, "bench", demo.Shape{Stacks: 5000, Lines: 2000, MinDepth: 4, MaxDepth: 16})
	for _, text := range [][]byte{demo.Restamp("h", 1), fleet.Profile(rand.New(rand.NewPCG(1, 1)), "h", "m5.xlarge")} {
		b, err := json.Marshal(demo.NewUpload(text, "h", start, ""))
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, string(b))
	}
	for _, b := range bodies {
		var up upload
		if !fastDecodeUpload([]byte(b), &up, nil) {
			t.Errorf("%.80q… left to encoding/json", b)
		}
	}
}

// BenchmarkDecodeUpload is the decoding of an inflated agent body, the profile unescaped into a reused
// buffer as the upload handler does.
func BenchmarkDecodeUpload(b *testing.B) {
	for name, gz := range benchUploads(b) {
		plain, err := io.ReadAll(must(gzip.NewReader(bytes.NewReader(gz))))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			var scratch []byte
			b.SetBytes(int64(len(plain)))
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				var up upload
				if err := decodeUploadTo(plain, &up, &scratch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
