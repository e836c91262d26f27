package archive

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/flamestream/flamestream/internal/demo"
)

// uploads returns n agent uploads (gzip JSON) of the real agent profile, hosts in turn, counts varied per
// host and minute, about a tenth of the lines left out each time: what one service's hour looks like.
func uploads(n, hosts int) (keys []string, bodies [][]byte) {
	rng := rand.New(rand.NewPCG(3, 4))
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for i := range n {
		host := fmt.Sprintf("host-%03d", i%hosts)
		text := Vary(rng, demo.Restamp(host, 0.5+float64(i%hosts)/float64(hosts)))
		ts := start.Add(time.Duration(i/hosts) * time.Minute)
		keys = append(keys, fmt.Sprintf("profiles/svc/2026-12-01/10/%s_%08x_%032d.json.gz", ts.Format("20060102T150405Z"), i%hosts, i))
		bodies = append(bodies, demo.NewUpload(text, host, ts, "").Gzip())
	}
	return keys, bodies
}

func gunzip(t testing.TB, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func build(t testing.TB, o Options, keys []string, bodies [][]byte) []byte {
	t.Helper()
	w := NewWriter(o)
	for i, k := range keys {
		if _, err := w.Add(k, bodies[i]); err != nil {
			t.Fatal(err)
		}
	}
	b, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Every object reads back: a gzip object as a gzip of the same content, any other object byte for byte;
// keys not added are not found; the same input gives the same bundle.
func TestBundleRoundTrip(t *testing.T) {
	keys, bodies := uploads(120, 12)
	keys = append(keys, "profiles/svc/2026-12-01/10/odd.bin", "profiles/svc/2026-12-01/10/fake-gzip.bin", "profiles/svc/2026-12-01/10/empty")
	bodies = append(bodies, []byte("not gzip at all"), []byte{0x1f, 0x8b, 1, 2, 3}, nil)
	o := Options{FrameBytes: 256 << 10}
	data := build(t, o, keys, bodies)
	if again := build(t, o, keys, bodies); !bytes.Equal(again, data) {
		t.Error("the same uploads gave another bundle")
	}
	var raw int
	for _, b := range bodies {
		raw += len(b)
	}
	t.Logf("%d objects: %d bytes as objects, %d as a bundle (%.1fx)", len(keys), raw, len(data), float64(raw)/float64(len(data)))
	if len(data)*3 > raw {
		t.Errorf("bundle of %d bytes is not 3x smaller than the %d bytes of objects", len(data), raw)
	}
	b, err := Open(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Entries) != len(keys) || len(b.frames) < 2 {
		t.Fatalf("%d entries in %d frames, want %d entries in several frames", len(b.Entries), len(b.frames), len(keys))
	}
	for i, k := range keys {
		got, ok, err := b.Get(k)
		if err != nil || !ok {
			t.Fatalf("%s: found %v, %v", k, ok, err)
		}
		if i < 120 {
			if !bytes.Equal(gunzip(t, got), gunzip(t, bodies[i])) {
				t.Fatalf("%s: content differs", k)
			}
		} else if !bytes.Equal(got, bodies[i]) {
			t.Fatalf("%s: %q, want %q", k, got, bodies[i])
		}
	}
	if _, ok, _ := b.Get("profiles/svc/2026-12-01/10/nope"); ok {
		t.Error("a key never added was found")
	}
	n := 0
	if err := b.Each(func(e Entry, c []byte) error { n++; return nil }); err != nil || n != len(keys) {
		t.Errorf("Each saw %d entries (%v), want %d", n, err, len(keys))
	}
}

// A bundle cut short or with any byte changed is refused: Open fails, or every read of an entry whose bytes
// changed fails. No read returns other content than was added.
func TestBundleCorruptionIsRefused(t *testing.T) {
	keys, bodies := uploads(24, 8)
	data := build(t, Options{FrameBytes: 32 << 10}, keys, bodies)
	want := map[string][]byte{}
	for i, k := range keys {
		want[k] = gunzip(t, bodies[i])
	}
	for _, n := range []int{0, 3, 4, len(data) / 2, len(data) - TrailerSize, len(data) - 1} {
		if _, err := Open(data[:n]); !errors.Is(err, ErrCorrupt) {
			t.Errorf("truncated to %d of %d bytes: %v, want ErrCorrupt", n, len(data), err)
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	positions := []int{0, 4, 5, 100, len(data) - 1, len(data) - 5, len(data) - 20, len(data) - 30}
	for range 150 {
		positions = append(positions, rng.IntN(len(data)))
	}
	refused, misread := 0, 0
	for _, p := range positions {
		bad := bytes.Clone(data)
		bad[p] ^= byte(1 + rng.IntN(255))
		b, err := Open(bad)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("byte %d changed: %v, want ErrCorrupt", p, err)
			}
			refused++
			continue
		}
		// The index survived (the byte lies in a frame): reads of that frame fail, the others are right.
		for _, k := range keys {
			got, ok, err := b.Get(k)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Errorf("byte %d changed, %s: %v, want ErrCorrupt", p, k, err)
				}
				continue
			}
			if !ok || !bytes.Equal(gunzip(t, got), want[k]) {
				misread++
				t.Errorf("byte %d changed: %s read back other content", p, k)
			}
		}
		// A change zstd ignores (a bit no decoder reads) may leave every entry whole: that is no misread.
		if err := b.Each(func(Entry, []byte) error { return nil }); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Errorf("byte %d changed: reading every entry gave %v, want ErrCorrupt", p, err)
		}
	}
	t.Logf("%d changed bytes: %d refused at open, the rest on read; %d misread", len(positions), refused, misread)
}

// One of each kind of corruption is refused by ReadIndex from a store too (the path replay takes).
func TestBundleTrailerSizesAreChecked(t *testing.T) {
	keys, bodies := uploads(10, 5)
	data := build(t, Options{}, keys, bodies)
	trailer := data[len(data)-TrailerSize:]
	for _, size := range []int64{int64(len(data)) - 1, int64(len(data)) + 1} {
		if _, _, err := IndexRange(trailer, size); !errors.Is(err, ErrCorrupt) {
			t.Errorf("size %d of %d: %v, want ErrCorrupt", size, len(data), err)
		}
	}
}

func BenchmarkBundleWrite(b *testing.B) {
	keys, bodies := uploads(600, 60)
	var raw int
	for _, x := range bodies {
		raw += len(x)
	}
	b.SetBytes(int64(raw))
	b.ReportAllocs()
	var size int
	for b.Loop() {
		size = len(build(b, Options{}, keys, bodies))
	}
	b.ReportMetric(float64(raw)/float64(size), "ratio")
}

func BenchmarkBundleRead(b *testing.B) {
	keys, bodies := uploads(600, 60)
	data := build(b, Options{}, keys, bodies)
	bd, err := Open(data)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		// One object at a time, each inflating its frame: replay's worst case without the frame cache.
		if _, ok, err := bd.Get(keys[i%len(keys)]); !ok || err != nil {
			b.Fatal(ok, err)
		}
		i += 7
	}
}

// Vary returns text with every count scaled by a random factor near 1 and about a tenth of the stack lines
// left out: the same host's next minute.
func Vary(rng *rand.Rand, text []byte) []byte {
	lines := bytes.Split(text, []byte("\n"))
	out := make([]byte, 0, len(text))
	for i, l := range lines {
		if len(l) == 0 {
			continue
		}
		sp := bytes.LastIndexByte(l, ' ')
		if i == 0 || sp < 0 {
			out = append(append(out, l...), '\n')
			continue
		}
		if rng.IntN(10) == 0 {
			continue
		}
		n, err := strconv.Atoi(string(l[sp+1:]))
		if err != nil {
			continue
		}
		n = max(1, int(float64(n)*(0.7+0.6*rng.Float64())))
		out = append(append(out, l[:sp+1]...), strconv.Itoa(n)...)
		out = append(out, '\n')
	}
	return out
}
