package flame

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// sample is one stack and its count; base marks the baseline side.
type sample struct {
	stack string
	count uint64
	base  bool
}

func build(samples []sample) *Builder {
	b := &Builder{}
	for _, s := range samples {
		if s.base {
			b.AddBase(s.stack, s.count)
		} else {
			b.Add(s.stack, s.count)
		}
	}
	return b
}

// render prints a tree compactly: name=value(self), then |base(baseSelf) in
// a diff, a '*' after the name of an "other" node and the children in
// braces.
func render(n *Node) string {
	var sb strings.Builder
	var rec func(n *Node)
	rec = func(n *Node) {
		sb.WriteString(n.Name)
		if n.Other {
			sb.WriteByte('*')
		}
		fmt.Fprintf(&sb, "=%d(%d)", n.Value, n.Self)
		if n.Base != 0 || n.BaseSelf != 0 {
			fmt.Fprintf(&sb, "|%d(%d)", n.Base, n.BaseSelf)
		}
		if len(n.Children) > 0 {
			sb.WriteByte('{')
			for i, c := range n.Children {
				if i > 0 {
					sb.WriteByte(' ')
				}
				rec(c)
			}
			sb.WriteByte('}')
		}
	}
	rec(n)
	return sb.String()
}

// checkTree verifies the invariants of every tree: each node's value and
// base equal its self counts plus its children's, "other" nodes are leaves,
// and the size bound of truncation.
func checkTree(t *testing.T, root *Node, maxNodes int) {
	t.Helper()
	count := 0
	var rec func(n *Node)
	rec = func(n *Node) {
		count++
		var v, bv uint64
		for _, c := range n.Children {
			v += c.Value
			bv += c.Base
			rec(c)
		}
		if n.Value != n.Self+v {
			t.Errorf("node %q: value %d != self %d + children %d", n.Name, n.Value, n.Self, v)
		}
		if n.Base != n.BaseSelf+bv {
			t.Errorf("node %q: base %d != base_self %d + children %d", n.Name, n.Base, n.BaseSelf, bv)
		}
		if n.Other && len(n.Children) > 0 {
			t.Errorf("other node has children")
		}
		if n.Value == 0 && n.Base == 0 && n.Name != rootName {
			t.Errorf("node %q is empty", n.Name)
		}
	}
	rec(root)
	if maxNodes > 0 && count > max(maxNodes, 2) {
		t.Errorf("tree has %d nodes, more than maxNodes %d", count, maxNodes)
	}
}

func TestTree(t *testing.T) {
	tests := []struct {
		name    string
		samples []sample
		want    string
	}{
		{"empty", nil, "root=0(0)"},
		{"single", []sample{{"p;a;b", 3, false}}, "root=3(0){p=3(0){a=3(0){b=3(3)}}}"},
		{
			"shared prefixes",
			[]sample{{"p;a;b", 3, false}, {"p;a;c", 2, false}, {"p;a", 1, false}, {"q;x", 4, false}},
			"root=10(0){p=6(0){a=6(1){b=3(3) c=2(2)}} q=4(0){x=4(4)}}",
		},
		{"duplicates summed", []sample{{"p;a", 1, false}, {"q", 5, false}, {"p;a", 2, false}}, "root=8(0){p=3(0){a=3(3)} q=5(5)}"},
		{"children sorted by name", []sample{{"p;z", 1, false}, {"p;b", 2, false}, {"p;a", 3, false}, {"p;B", 4, false}}, "root=10(0){p=10(0){B=4(4) a=3(3) b=2(2) z=1(1)}}"},
		{"empty frames", []sample{{"p;;x", 1, false}, {"p;", 2, false}}, "root=3(0){p=3(0){=3(2){x=1(1)}}}"},
		{"zero count and empty stack ignored", []sample{{"p;a", 0, false}, {"", 7, false}, {"q", 1, false}}, "root=1(0){q=1(1)}"},
		{
			"frame names that are prefixes of each other",
			[]sample{{"p;ab;c", 1, false}, {"p;a;c", 2, false}, {"p;ab", 4, false}, {"p;a", 8, false}, {"p;abc", 16, false}},
			"root=31(0){p=31(0){a=10(8){c=2(2)} ab=5(4){c=1(1)} abc=16(16)}}",
		},
		{
			"stack that is a prefix of the previous one",
			[]sample{{"p;a;b;c", 1, false}, {"p;a", 2, false}, {"p;a;b", 4, false}, {"p;a;b;c;d", 8, false}},
			"root=15(0){p=15(0){a=15(2){b=13(4){c=9(1){d=8(8)}}}}}",
		},
		{
			"recursion",
			[]sample{{"p;f;g;f;g", 2, false}, {"p;f", 1, false}},
			"root=3(0){p=3(0){f=3(1){g=2(0){f=2(0){g=2(2)}}}}}",
		},
		{
			"diff",
			[]sample{{"p;a", 3, false}, {"p;b", 2, false}, {"p;a", 1, true}, {"p;c", 4, true}},
			"root=5(0)|5(0){p=5(0)|5(0){a=3(3)|1(1) b=2(2) c=0(0)|4(4)}}",
		},
		{"baseline only", []sample{{"p;a", 3, true}}, "root=0(0)|3(0){p=0(0)|3(0){a=0(0)|3(3)}}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := build(tt.samples)
			got := b.Tree(0)
			checkTree(t, got, 0)
			if s := render(got); s != tt.want {
				t.Errorf("Tree(0) =\n%s\nwant\n%s", s, tt.want)
			}
			if got.Value != b.Total() || got.Base != b.BaseTotal() {
				t.Errorf("root value/base %d/%d, totals %d/%d", got.Value, got.Base, b.Total(), b.BaseTotal())
			}
			// The same stacks in reverse order give the same tree.
			rev := make([]sample, len(tt.samples))
			for i, s := range tt.samples {
				rev[len(rev)-1-i] = s
			}
			if s := render(build(rev).Tree(0)); s != tt.want {
				t.Errorf("reversed input: Tree(0) =\n%s\nwant\n%s", s, tt.want)
			}
		})
	}
}

func TestTreeTruncation(t *testing.T) {
	base := []sample{{"p;a;x", 10, false}, {"p;a;y", 5, false}, {"p;b", 3, false}, {"p;c", 2, false}, {"p;d", 1, false}}
	ties := []sample{{"p;c", 1, false}, {"p;a", 1, false}, {"p;b", 1, false}}
	diff := []sample{{"p;a", 3, false}, {"p;b", 2, false}, {"p;a", 1, true}, {"p;c", 4, true}}
	baseHeavy := []sample{{"p;a", 1, false}, {"p;b", 2, false}, {"p;c", 5, true}}
	tests := []struct {
		name     string
		samples  []sample
		maxNodes int
		want     string
	}{
		{"no limit", base, 0, "root=21(0){p=21(0){a=15(0){x=10(10) y=5(5)} b=3(3) c=2(2) d=1(1)}}"},
		{"limit equals size", base, 8, "root=21(0){p=21(0){a=15(0){x=10(10) y=5(5)} b=3(3) c=2(2) d=1(1)}}"},
		{"limit 7", base, 7, "root=21(0){p=21(0){a=15(0){x=10(10) y=5(5)} b=3(3) other*=3(3)}}"},
		{"limit 6: y replaces the other of a at no cost", base, 6, "root=21(0){p=21(0){a=15(0){x=10(10) y=5(5)} other*=6(6)}}"},
		{"limit 5", base, 5, "root=21(0){p=21(0){a=15(0){other*=15(15)} other*=6(6)}}"},
		{"limit 3", base, 3, "root=21(0){p=21(0){other*=21(21)}}"},
		{"limit 2", base, 2, "root=21(0){other*=21(21)}"},
		{"limit 1 still keeps root and other", base, 1, "root=21(0){other*=21(21)}"},
		{"ties go to the first name", ties, 4, "root=3(0){p=3(0){a=1(1) other*=2(2)}}"},
		{"diff keeps both sums", diff, 4, "root=5(0)|5(0){p=5(0)|5(0){a=3(3)|1(1) other*=2(2)|4(4)}}"},
		{"diff weight counts base", baseHeavy, 4, "root=3(0)|5(0){p=3(0)|5(0){c=0(0)|5(5) other*=3(3)}}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := build(tt.samples).Tree(tt.maxNodes)
			checkTree(t, got, tt.maxNodes)
			if s := render(got); s != tt.want {
				t.Errorf("Tree(%d) =\n%s\nwant\n%s", tt.maxNodes, s, tt.want)
			}
		})
	}
}

func TestFocus(t *testing.T) {
	b := build([]sample{
		{"p;a;b", 3, false}, {"p;a;c", 2, false}, {"p;a", 1, false}, {"q;a;b", 4, false},
		{"p;a;b", 5, true}, {"p;x", 1, true},
	})
	tests := []struct {
		name     string
		path     []string
		maxNodes int
		want     string // "" for a nil result
	}{
		{"frame path", []string{"p", "a"}, 0, "a=6(1)|5(0){b=3(3)|5(5) c=2(2)}"},
		{"leaf", []string{"p", "a", "b"}, 0, "b=3(3)|5(5)"},
		{"process", []string{"q"}, 0, "q=4(0){a=4(0){b=4(4)}}"},
		{"fits", []string{"p", "a"}, 3, "a=6(1)|5(0){b=3(3)|5(5) c=2(2)}"},
		{"truncated", []string{"p"}, 4, "p=6(0)|6(0){a=6(1)|5(0){other*=5(5)|5(5)} other*=0(0)|1(1)}"},
		{"truncated to the minimum", []string{"p", "a"}, 1, "a=6(1)|5(0){other*=5(5)|5(5)}"},
		{"baseline only node", []string{"p", "x"}, 0, "x=0(0)|1(1)"},
		{"missing frame", []string{"p", "zzz"}, 0, ""},
		{"frame exists elsewhere", []string{"q", "c"}, 0, ""},
		{"path is not a prefix", []string{"a"}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := b.Focus(tt.path, tt.maxNodes)
			if tt.want == "" {
				if got != nil {
					t.Fatalf("Focus(%q) = %s, want nil", tt.path, render(got))
				}
				return
			}
			if got == nil {
				t.Fatalf("Focus(%q) = nil, want %s", tt.path, tt.want)
			}
			checkTree(t, got, tt.maxNodes)
			if s := render(got); s != tt.want {
				t.Errorf("Focus(%q) =\n%s\nwant\n%s", tt.path, s, tt.want)
			}
			if got.Total != got.Value || got.BaseTotal != got.Base {
				t.Errorf("diff focus root totals %d/%d, want %d/%d", got.Total, got.BaseTotal, got.Value, got.Base)
			}
		})
	}
	if s := render(b.Focus(nil, 0)); s != render(b.Tree(0)) {
		t.Errorf("Focus(nil) = %s, want the whole tree", s)
	}
}

func TestTreeJSON(t *testing.T) {
	b := build([]sample{{"p;a", 3, false}, {"p;b", 1, false}, {"p;c", 1, false}})
	got, err := json.Marshal(b.Tree(4))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"root","value":5,"self":0,"children":[{"name":"p","value":5,"self":0,"children":[` +
		`{"name":"a","value":3,"self":3},{"name":"other","value":2,"self":2,"other":true}]}]}`
	if string(got) != want {
		t.Errorf("JSON\n%s\nwant\n%s", got, want)
	}

	d := build([]sample{{"p;a", 3, false}, {"p;b", 1, false}, {"p;a", 1, true}, {"p;b", 3, true}})
	got, err = json.Marshal(d.Tree(0))
	if err != nil {
		t.Fatal(err)
	}
	want = `{"name":"root","value":4,"self":0,"base":4,"total":4,"base_total":4,"share":1,"base_share":1,"children":[` +
		`{"name":"p","value":4,"self":0,"base":4,"share":1,"base_share":1,"children":[` +
		`{"name":"a","value":3,"self":3,"base":1,"base_self":1,"share":0.75,"base_share":0.25,"delta":0.5},` +
		`{"name":"b","value":1,"self":1,"base":3,"base_self":3,"share":0.25,"base_share":0.75,"delta":-0.5}]}]}`
	if string(got) != want {
		t.Errorf("diff JSON\n%s\nwant\n%s", got, want)
	}
}

func TestTopFunctions(t *testing.T) {
	samples := []sample{
		{"p;f;g;f;g", 2, false}, // f and g recurse: each counted once
		{"p;f", 1, false},
		{"p;h;f", 3, false},
		{"q;f;f;f", 5, false},
		{"p;zzz", 7, true}, // baseline only: left out
	}
	b := build(samples)
	tests := []struct {
		sortBy string
		limit  int
		want   []Function
	}{
		{"self", 0, []Function{{"f", 9, 11}, {"g", 2, 2}, {"p", 0, 6}, {"q", 0, 5}, {"h", 0, 3}}},
		{"total", 0, []Function{{"f", 9, 11}, {"p", 0, 6}, {"q", 0, 5}, {"h", 0, 3}, {"g", 2, 2}}},
		{"total", 2, []Function{{"f", 9, 11}, {"p", 0, 6}}},
		{"", 1, []Function{{"f", 9, 11}}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d", tt.sortBy, tt.limit), func(t *testing.T) {
			got := b.TopFunctions(tt.sortBy, tt.limit)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("TopFunctions(%q, %d) = %v, want %v", tt.sortBy, tt.limit, got, tt.want)
			}
		})
	}
	ties := build([]sample{{"p;b", 1, false}, {"p;a", 1, false}})
	want := []Function{{"a", 1, 1}, {"b", 1, 1}, {"p", 0, 2}}
	if got := ties.TopFunctions("self", 0); !reflect.DeepEqual(got, want) {
		t.Errorf("ties: %v, want %v", got, want)
	}
	if got := new(Builder).TopFunctions("self", 10); len(got) != 0 {
		t.Errorf("empty builder: %v", got)
	}
}

func TestAddAfterTree(t *testing.T) {
	b := &Builder{}
	b.Add("p;a", 1)
	if s := render(b.Tree(0)); s != "root=1(0){p=1(0){a=1(1)}}" {
		t.Fatalf("first tree %s", s)
	}
	b.Add("p;b", 2)
	b.AddBase("p;a", 4)
	if s := render(b.Tree(0)); s != "root=3(0)|4(0){p=3(0)|4(0){a=1(1)|4(4) b=2(2)}}" {
		t.Errorf("tree after more stacks %s", s)
	}
	if got := b.TopFunctions("total", 1); !reflect.DeepEqual(got, []Function{{"p", 0, 3}}) {
		t.Errorf("top after more stacks %v", got)
	}
}

// TestTruncationRandom checks the invariants on generated data for many
// limits, and that the heaviest nodes are the ones kept.
func TestTruncationRandom(t *testing.T) {
	stacks := genStacks(2000, 7, 60)
	b := &Builder{}
	for i, s := range stacks {
		b.Add(s.stack, s.count)
		if i%3 == 0 {
			b.AddBase(s.stack, s.count*2+1)
		}
	}
	full := b.Tree(0)
	checkTree(t, full, 0)
	n := b.Nodes()
	for _, limit := range []int{1, 2, 3, 10, 100, 1000, n - 1, n, n + 1} {
		tr := b.Tree(limit)
		checkTree(t, tr, limit)
		if tr.Value != b.Total() || tr.Base != b.BaseTotal() {
			t.Errorf("limit %d: root %d/%d, totals %d/%d", limit, tr.Value, tr.Base, b.Total(), b.BaseTotal())
		}
		if limit >= n && render(tr) != render(full) {
			t.Errorf("limit %d >= %d nodes changed the tree", limit, n)
		}
	}
}

func TestRoundTripFolded(t *testing.T) {
	stacks := genStacks(3000, 11, 40)
	b := &Builder{}
	for _, s := range stacks {
		b.Add(s.stack, s.count)
	}
	var buf bytes.Buffer
	if err := b.WriteFolded(&buf); err != nil {
		t.Fatal(err)
	}
	folded := buf.String()
	if n := strings.Count(folded, "\n"); n != len(stacks) {
		t.Errorf("%d folded lines, want %d", n, len(stacks))
	}
	// Lines are sorted frame by frame.
	lines := strings.Split(strings.TrimSuffix(folded, "\n"), "\n")
	for i := 1; i < len(lines); i++ {
		prev := strings.Split(lines[i-1][:strings.LastIndexByte(lines[i-1], ' ')], ";")
		cur := strings.Split(lines[i][:strings.LastIndexByte(lines[i], ' ')], ";")
		if slicesCompare(prev, cur) >= 0 {
			t.Fatalf("lines %d and %d out of order:\n%s\n%s", i, i+1, lines[i-1], lines[i])
		}
	}
	p, err := ParseFolded(strings.NewReader(folded))
	if err != nil {
		t.Fatal(err)
	}
	if p.Total() != b.Total() || p.Nodes() != b.Nodes() {
		t.Errorf("re-imported total/nodes %d/%d, want %d/%d", p.Total(), p.Nodes(), b.Total(), b.Nodes())
	}
	for _, limit := range []int{0, 50} {
		if got, want := render(p.Tree(limit)), render(b.Tree(limit)); got != want {
			t.Errorf("Tree(%d) differs after the round trip", limit)
		}
	}
	if !reflect.DeepEqual(p.TopFunctions("total", 0), b.TopFunctions("total", 0)) {
		t.Errorf("TopFunctions differ after the round trip")
	}
	buf.Reset()
	if err := p.WriteFolded(&buf); err != nil {
		t.Fatal(err)
	}
	if buf.String() != folded {
		t.Errorf("second export differs from the first")
	}
}

func slicesCompare(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if c := strings.Compare(a[i], b[i]); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}

func TestWriteFolded(t *testing.T) {
	b := build([]sample{{"p;b", 1, false}, {"p;a;x", 2, false}, {"p;a", 3, false}, {"p;a-z", 4, false}, {"q", 5, true}})
	var buf bytes.Buffer
	if err := b.WriteFolded(&buf); err != nil {
		t.Fatal(err)
	}
	want := "p;a 3\np;a;x 2\np;a-z 4\np;b 1\n"
	if buf.String() != want {
		t.Errorf("folded\n%s\nwant\n%s", buf.String(), want)
	}
}

func TestParseFolded(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  string // rendered tree, or "error"
	}{
		{"simple", "p;a 1\np;b 2\n", "root=3(0){p=3(0){a=1(1) b=2(2)}}"},
		{"crlf, tabs, blanks, duplicates", "\r\n  p;a\t1\r\n\n\tp;a  2 \r\np;b 3", "root=6(0){p=6(0){a=3(3) b=3(3)}}"},
		{"spaces inside frames", "java;Foo.bar(int x) 7\n", "root=7(0){java=7(0){Foo.bar(int x)=7(7)}}"},
		{"zero count", "p;a 0\np;b 1\n", "root=1(0){p=1(0){b=1(1)}}"},
		{"empty input", "", "root=0(0)"},
		{"missing count", "p;a\n", "error"},
		{"bad count", "p;a x\n", "error"},
		{"negative count", "p;a -1\n", "error"},
		{"empty stack", "p;a 1\n 2\n\t 3\n", "error"},
		{"overflow", "p 18446744073709551615\nq 1\n", "error"},
		{"count too large", "p 18446744073709551616\n", "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := ParseFolded(strings.NewReader(tt.input))
			if tt.want == "error" {
				if err == nil {
					t.Fatalf("no error, tree %s", render(b.Tree(0)))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := render(b.Tree(0)); s != tt.want {
				t.Errorf("tree %s, want %s", s, tt.want)
			}
		})
	}
}

// TestAgainstReference compares the Builder with a naive map-based model on
// random stacks over a tiny alphabet that makes frames prefixes of one
// another, empty frames, repeated and prefix stacks, and hubs likely.
func TestAgainstReference(t *testing.T) {
	alphabet := []string{"", "a", "ab", "abc", "b", "a-b", "c", "d", "e", "f", "g", "h", "i", "j", "k"}
	r := rand.New(rand.NewPCG(3, 4))
	for round := range 50 {
		b := &Builder{}
		ref := map[string]uint64{}
		for range 1 + r.IntN(400) {
			depth := 1 + r.IntN(6)
			frames := make([]string, depth)
			for i := range frames {
				frames[i] = alphabet[r.IntN(len(alphabet)-r.IntN(10))]
			}
			stack := strings.Join(frames, ";")
			if stack == "" {
				continue
			}
			count := uint64(1 + r.IntN(5))
			b.Add(stack, count)
			ref[stack] += count
		}
		// Expected folded output.
		keys := make([][]string, 0, len(ref))
		for k := range ref {
			keys = append(keys, strings.Split(k, ";"))
		}
		slices.SortFunc(keys, slicesCompare)
		var want strings.Builder
		var total uint64
		self := map[string]uint64{}
		inclusive := map[string]uint64{}
		for _, k := range keys {
			c := ref[strings.Join(k, ";")]
			fmt.Fprintf(&want, "%s %d\n", strings.Join(k, ";"), c)
			total += c
			self[k[len(k)-1]] += c
			seen := map[string]bool{}
			for _, f := range k {
				if !seen[f] {
					seen[f] = true
					inclusive[f] += c
				}
			}
		}
		var got bytes.Buffer
		if err := b.WriteFolded(&got); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Fatalf("round %d: folded\n%s\nwant\n%s", round, got.String(), want.String())
		}
		if b.Total() != total {
			t.Fatalf("round %d: total %d, want %d", round, b.Total(), total)
		}
		for _, fn := range b.TopFunctions("total", 0) {
			if fn.Self != self[fn.Name] || fn.Total != inclusive[fn.Name] {
				t.Fatalf("round %d: %+v, want self %d total %d", round, fn, self[fn.Name], inclusive[fn.Name])
			}
			delete(inclusive, fn.Name)
		}
		if len(inclusive) != 0 {
			t.Fatalf("round %d: functions missing from TopFunctions: %v", round, inclusive)
		}
		for _, limit := range []int{0, 5, 30} {
			tr := b.Tree(limit)
			checkTree(t, tr, limit)
			if tr.Value != total {
				t.Fatalf("round %d: Tree(%d) root %d, want %d", round, limit, tr.Value, total)
			}
		}
		// Every stack can be focused on and holds at least its own count.
		for _, k := range keys {
			n := b.Focus(k, 0)
			if n == nil || n.Self != ref[strings.Join(k, ";")] || n.Name != k[len(k)-1] {
				t.Fatalf("round %d: Focus(%q) = %+v", round, k, n)
			}
		}
	}
}

func TestHub(t *testing.T) {
	// A node with more children than hubFanout gets them indexed; adding
	// to and looking up its children must keep working either way.
	b := &Builder{}
	var want []string
	for i := range 3 * hubFanout {
		name := fmt.Sprintf("f%02d", i)
		want = append(want, name)
		b.Add("p;"+name+";x", 1)
		b.Add("q", 1) // break the shared-prefix path
	}
	for i := range 3 * hubFanout {
		b.Add(fmt.Sprintf("p;f%02d;y", i), 2)
		b.Add("q", 1)
	}
	tr := b.Tree(0)
	checkTree(t, tr, 0)
	p := tr.Children[0]
	if p.Name != "p" || len(p.Children) != len(want) {
		t.Fatalf("p has %d children", len(p.Children))
	}
	for i, c := range p.Children {
		if c.Name != want[i] || c.Value != 3 || len(c.Children) != 2 {
			t.Errorf("child %d: %s", i, render(c))
		}
	}
	if n := b.Focus([]string{"p", "f17", "y"}, 0); n == nil || n.Value != 2 {
		t.Errorf("focus through a hub: %v", n)
	}
	if n := b.Focus([]string{"p", "f99"}, 0); n != nil {
		t.Errorf("focus on a missing hub child: %v", render(n))
	}
}

// TestOrderIndependence merges the same stacks in sorted, random and mixed
// orders, which exercises both merge modes and the switches between them,
// and expects identical results.
func TestOrderIndependence(t *testing.T) {
	stacks := genStacks(5000, 5, 30)
	r := rand.New(rand.NewPCG(9, 9))
	sorted := slices.Clone(stacks)
	slices.SortFunc(sorted, func(x, y genStack) int { return strings.Compare(x.stack, y.stack) })
	random := slices.Clone(stacks)
	r.Shuffle(len(random), func(i, j int) { random[i], random[j] = random[j], random[i] })
	mixed := slices.Clone(sorted)
	r.Shuffle(2000, func(i, j int) { mixed[1500+i], mixed[1500+j] = mixed[1500+j], mixed[1500+i] })
	var text strings.Builder
	for _, s := range stacks {
		fmt.Fprintf(&text, "%s %d\n", s.stack, s.count)
	}
	wantFolded := referenceFolded(text.String())

	var wantTree, wantTop string
	for _, order := range []struct {
		name     string
		in       []genStack
		batching bool // whether the batch mode must have been used
	}{{"sorted", sorted, false}, {"random", random, true}, {"mixed", mixed, true}} {
		b := &Builder{}
		usedBatches := false
		for _, s := range order.in {
			b.Add(s.stack, s.count)
			if len(s.stack)%7 == 0 {
				b.AddBase(s.stack, 1)
			}
			usedBatches = usedBatches || b.batching
		}
		if usedBatches != order.batching {
			t.Errorf("%s: batch mode used = %v", order.name, usedBatches)
		}
		var folded bytes.Buffer
		if err := b.WriteFolded(&folded); err != nil {
			t.Fatal(err)
		}
		if folded.String() != wantFolded {
			t.Errorf("%s: folded output differs from the reference", order.name)
		}
		tree := render(b.Tree(0)) + render(b.Tree(300))
		top := fmt.Sprint(b.TopFunctions("total", 0))
		if wantTree == "" {
			wantTree, wantTop = tree, top
			continue
		}
		if tree != wantTree {
			t.Errorf("%s: trees differ from the sorted order's", order.name)
		}
		if top != wantTop {
			t.Errorf("%s: top functions differ from the sorted order's", order.name)
		}
	}
}
