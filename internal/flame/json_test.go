package flame

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// randomTree builds a tree with awkward names (quotes, backslashes, HTML characters, control bytes,
// invalid UTF-8, line and paragraph separators) and every field set or zero.
func randomTree(r *rand.Rand, depth int) *Node {
	pieces := []string{"a", "main", `"`, `\`, "<", ">", "&", "\x00", "\x1f", "\b", "\f", "\n", "\r", "\t",
		"\xff", "\xe2\x80", "\u2028", "\u2029", "é", "日本", "\x7f", " ", "_[k]", "java/lang/Object.<init>"}
	var name strings.Builder
	for range r.IntN(6) {
		name.WriteString(pieces[r.IntN(len(pieces))])
	}
	pick := func() uint64 {
		switch r.IntN(4) {
		case 0:
			return 0
		case 1:
			return math.MaxUint64 - uint64(r.IntN(3))
		}
		return r.Uint64N(1 << uint(r.IntN(63)+1))
	}
	fl := func() float64 {
		switch r.IntN(8) {
		case 6: // what diff trees carry
			return sixDigits((r.Float64() - 0.5) * math.Pow(10, float64(r.IntN(12)-8)))
		case 7:
			return sixDigits(float64(r.IntN(2000000)) / 1e6)
		case 0:
			return 0
		case 1:
			return -r.Float64() * 1e-7
		case 2:
			return r.Float64() * 1e22
		case 3:
			return 1
		}
		return r.NormFloat64() / float64(1+r.IntN(1000))
	}
	n := &Node{Name: name.String(), Value: pick(), Self: pick(), Base: pick(), BaseSelf: pick(), Other: r.IntN(5) == 0,
		Total: pick(), BaseTotal: pick(), Share: fl(), BaseShare: fl(), Delta: fl()}
	if depth > 0 {
		for range r.IntN(4) {
			n.Children = append(n.Children, randomTree(r, depth-1))
		}
	}
	return n
}

func TestAppendJSONEqualsEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 3000 {
		n := randomTree(r, 1+i%4)
		want, err := json.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		if got := n.AppendJSON(nil, false); !bytes.Equal(got, want) {
			t.Fatalf("tree %d:\n got %s\nwant %s", i, got, want)
		}
		var w bytes.Buffer
		if err := n.WriteJSON(&w, false); err != nil || !bytes.Equal(w.Bytes(), want) {
			t.Fatalf("tree %d: WriteJSON %v\n got %s\nwant %s", i, err, w.Bytes(), want)
		}
	}
	// A large diff tree goes through WriteJSON's buffer many times.
	b := &Builder{}
	for i, s := range genStacks(20000, 8, 20) {
		b.Add(s.stack, s.count)
		b.AddBase(s.stack, uint64(i%5))
	}
	big := b.Tree(0)
	want, err := json.Marshal(big)
	if err != nil {
		t.Fatal(err)
	}
	var w bytes.Buffer
	if err := big.WriteJSON(&w, false); err != nil || !bytes.Equal(w.Bytes(), want) || len(want) < 10*jsonChunk {
		t.Fatalf("large tree: WriteJSON %v, %d bytes, equal %v", err, len(want), bytes.Equal(w.Bytes(), want))
	}
	// With totals the root carries both even when they are zero, and nothing else changes.
	n := &Node{Name: "root", Children: []*Node{{Name: "p", Value: 1, Self: 1}}}
	wantTotals := `{"name":"root","value":0,"self":0,"total":0,"base_total":0,"children":[{"name":"p","value":1,"self":1}]}`
	if got := string(n.AppendJSON(nil, true)); got != wantTotals {
		t.Errorf("with totals\n got %s\nwant %s", got, wantTotals)
	}
}

// TestAppendSixDigitsIsShortest checks the fast float path against strconv on many rounded values, and
// that it declines values it cannot write.
func TestAppendSixDigitsIsShortest(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	fast := 0
	for i := range 300000 {
		x := (r.Float64() - 0.5) * math.Pow(10, float64(r.IntN(30)-12))
		if i%2 == 0 {
			x = sixDigits(x)
		}
		want := appendFloat(nil, "", 0) // empty: zero is left out
		if x != 0 {
			format := byte('f')
			if a := math.Abs(x); a < 1e-6 || a >= 1e21 {
				format = 'e'
			}
			want = strconv.AppendFloat(nil, x, format, -1, 64)
		}
		got, ok := appendSixDigits(nil, x)
		if ok {
			fast++
			if string(got) != string(want) {
				t.Fatalf("appendSixDigits(%v) = %s, strconv %s", x, got, want)
			}
		}
	}
	if fast < 100000 {
		t.Errorf("only %d of 300000 values took the fast path", fast)
	}
}

func FuzzAppendJSONName(f *testing.F) {
	for _, s := range []string{"", "a", `"<>&\`, "\xff\xfe", "\u2028", "\x00\x01\b\f"} {
		f.Add(s, 0.5)
	}
	f.Fuzz(func(t *testing.T, name string, share float64) {
		if math.IsNaN(share) || math.IsInf(share, 0) {
			return
		}
		n := &Node{Name: name, Value: 3, Share: share, Children: []*Node{{Name: name + ";x", Delta: -share}}}
		want, err := json.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		if got := n.AppendJSON(nil, false); !bytes.Equal(got, want) {
			t.Fatalf("got %s\nwant %s", got, want)
		}
	})
}

func BenchmarkTreeJSON(b *testing.B) {
	fb := builtBuilder(b)
	tr := fb.Tree(8192)
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(tr); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf = tr.AppendJSON(buf[:0], false)
		}
	})
	b.Run("WriteJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := tr.WriteJSON(io.Discard, false); err != nil {
				b.Fatal(err)
			}
		}
	})
}
