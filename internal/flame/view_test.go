package flame

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// graphReader is what a Builder and a View both read.
type graphReader interface {
	Tree(maxNodes int) *Node
	Focus(path []string, maxNodes int) *Node
	TopFunctions(sortBy string, limit int) []Function
	Nodes() int
	Total() uint64
	BaseTotal() uint64
	HasBase() bool
	WriteFolded(w io.Writer) error
	WriteSpeedscope(w io.Writer, name string) error
	WritePprof(w io.Writer, start time.Time, duration time.Duration) error
}

// builderOutputs renders everything a Builder (or a View) returns, for comparisons.
func builderOutputs(t *testing.T, b graphReader, focus [][]string) string {
	t.Helper()
	var out strings.Builder
	for _, limit := range []int{0, 7, 50} {
		tr := b.Tree(limit)
		checkTree(t, tr, limit)
		fmt.Fprintf(&out, "tree %d: %s\n", limit, render(tr))
	}
	fmt.Fprintf(&out, "top total %v\ntop self %v\n", b.TopFunctions("total", 0), b.TopFunctions("self", 5))
	fmt.Fprintf(&out, "nodes %d total %d base %d hasBase %v\n", b.Nodes(), b.Total(), b.BaseTotal(), b.HasBase())
	for _, f := range focus {
		n := b.Focus(f, 5)
		if n == nil {
			fmt.Fprintf(&out, "focus %q: nil\n", f)
			continue
		}
		fmt.Fprintf(&out, "focus %q: %s\n", f, render(n))
	}
	var buf bytes.Buffer
	if err := b.WriteFolded(&buf); err != nil {
		t.Fatal(err)
	}
	out.WriteString(buf.String())
	buf.Reset()
	if err := b.WriteSpeedscope(&buf, "x"); err != nil {
		t.Fatal(err)
	}
	out.WriteString(buf.String())
	buf.Reset()
	if err := b.WritePprof(&buf, time.Unix(1700000000, 0), time.Minute); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&out, "\npprof %x\n", buf.Bytes())
	return out.String()
}

// TestViewEqualsBuilder counts random subsets of a trie's stacks in views
// and expects every output to equal that of a Builder given the same
// stacks with Add and AddBase.
func TestViewEqualsBuilder(t *testing.T) {
	alphabet := []string{"", "a", "ab", "abc", "b", "a-b", "c", "d", "e", "f", "g", "h", "i", "j", "k"}
	r := rand.New(rand.NewPCG(11, 12))
	for round := range 40 {
		var all []string
		seen := map[string]bool{}
		for range 1 + r.IntN(300) {
			frames := make([]string, 1+r.IntN(6))
			for i := range frames {
				frames[i] = alphabet[r.IntN(len(alphabet)-r.IntN(10))]
			}
			if s := strings.Join(frames, ";"); s != "" && !seen[s] {
				seen[s] = true
				all = append(all, s)
			}
		}
		trie := NewTrie()
		leaf := map[string]uint32{}
		order := slices.Clone(all)
		if round%2 == 0 {
			slices.Sort(order)
		}
		for _, s := range order {
			leaf[s] = trie.Leaf(s)
		}
		for i, s := range all { // a second Leaf of a known stack finds the same node
			if i%5 == 0 && trie.Leaf(s) != leaf[s] {
				t.Fatalf("round %d: Leaf(%q) moved", round, s)
			}
		}
		for sub := range 3 {
			b, v := &Builder{}, trie.View()
			var focus [][]string
			for _, s := range all {
				switch r.IntN(4) {
				case 0: // not in this query
					focus = append(focus, strings.Split(s, ";"))
					continue
				case 1:
					c := uint64(1 + r.IntN(9))
					b.AddBase(s, c)
					v.AddBaseLeaf(leaf[s], c)
					if sub == 0 {
						continue // sub 0 also has baseline-only stacks
					}
				}
				c := uint64(1 + r.IntN(9))
				b.Add(s, c)
				v.AddLeaf(leaf[s], c)
				if r.IntN(3) == 0 {
					focus = append(focus, strings.Split(s, ";")[:1])
				}
			}
			want, got := builderOutputs(t, b, focus), builderOutputs(t, v, focus)
			if got != want {
				t.Fatalf("round %d subset %d: view differs from a Builder\nview:\n%s\nbuilder:\n%s", round, sub, got, want)
			}
		}
	}
}

// TestViewsAreIndependentAndConcurrent counts different stacks in several
// views of one trie at once (run with -race) and checks that none sees
// another's counts.
func TestViewsAreIndependentAndConcurrent(t *testing.T) {
	stacks := genStacks(3000, 21, 20)
	trie := NewTrie()
	leaves := make([]uint32, len(stacks))
	for i, s := range stacks {
		leaves[i] = trie.Leaf(s.stack)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 4 {
		wg.Go(func() {
			v := trie.View()
			b := &Builder{}
			for i, s := range stacks {
				if i%4 == w {
					v.AddLeaf(leaves[i], s.count)
					b.Add(s.stack, s.count)
				}
			}
			if got, want := render(v.Tree(100)), render(b.Tree(100)); got != want {
				errs <- fmt.Errorf("view %d differs from its Builder", w)
			}
		})
	}
	// Views of a trie that never got a stack (a query with no samples) are made concurrently too.
	empty := NewTrie()
	for range 4 {
		wg.Go(func() {
			v := empty.View()
			if tr := v.Tree(10); tr.Value != 0 || len(tr.Children) != 0 {
				errs <- fmt.Errorf("view of an empty trie: %s", render(tr))
			}
			v.Release()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestTrieAndViewMisuse(t *testing.T) {
	mustPanic := func(name string, fn func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		fn()
	}
	// Adding text to a trie or a view, leaves to a Builder, or asking a Builder for a leaf or a view does
	// not compile: each type lacks the method.
	for _, m := range []struct {
		typ    any
		method string
	}{
		{(*Trie)(nil), "Add"}, {(*Trie)(nil), "AddBase"}, {(*Trie)(nil), "Tree"}, {(*Trie)(nil), "AddLeaf"},
		{(*View)(nil), "Add"}, {(*View)(nil), "AddBase"}, {(*View)(nil), "Leaf"}, {(*View)(nil), "View"},
		{(*Builder)(nil), "Leaf"}, {(*Builder)(nil), "View"}, {(*Builder)(nil), "AddLeaf"},
		{(*Builder)(nil), "AddBaseLeaf"}, {(*Builder)(nil), "AddLeafDelta"}, {(*Builder)(nil), "Release"},
	} {
		if _, ok := reflect.TypeOf(m.typ).MethodByName(m.method); ok {
			t.Errorf("%T has a method %s", m.typ, m.method)
		}
	}
	trie := NewTrie()
	n := trie.Leaf("p;a")
	v := trie.View()
	mustPanic("AddLeaf past the view", func() { v.AddLeaf(n+1, 1) })
	trie.Leaf("q") // a node the view was made before
	mustPanic("AddLeaf of a newer node", func() { v.AddLeaf(n+1, 1) })
	if trie.Leaf("") != 0 {
		t.Error("empty stack has a leaf")
	}
	if tr := v.Tree(0); tr.Value != 0 || len(tr.Children) != 0 {
		t.Errorf("empty view: %s", render(tr))
	}
	// A view made before a Leaf keeps seeing the trie as it was.
	v = trie.View()
	v.AddLeaf(n, 2)
	for i := range 20 { // p becomes a hub
		trie.Leaf(fmt.Sprintf("p;b%d", i))
	}
	trie.Leaf("0")
	if got, want := render(v.Tree(0)), render(mustParse(t, "p;a 2\n").Tree(0)); got != want {
		t.Errorf("older view %s, want %s", got, want)
	}
	if v.Focus([]string{"p", "b7"}, 0) != nil {
		t.Error("older view focuses on a newer node")
	}
	if n := v.Focus([]string{"p", "a"}, 0); n == nil || n.Value != 2 {
		t.Errorf("older view focus through a newer hub: %v", n)
	}
}

func mustParse(t *testing.T, folded string) *Builder {
	t.Helper()
	b, err := ParseFolded(strings.NewReader(folded))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDiffNodesCarrySharesAndDelta checks the normalized values of every node of a truncated diff tree and
// of a focused one, "other" nodes included.
func TestDiffNodesCarrySharesAndDelta(t *testing.T) {
	b := &Builder{}
	for i, s := range genStacks(400, 3, 8) {
		b.Add(s.stack, s.count)
		if i%3 != 0 {
			b.AddBase(s.stack, s.count*uint64(1+i%4))
		}
	}
	check := func(root *Node) {
		t.Helper()
		others := 0
		var walk func(n *Node)
		walk = func(n *Node) {
			share, baseShare := float64(n.Value)/float64(b.Total()), float64(n.Base)/float64(b.BaseTotal())
			near := func(got, want float64) bool { return math.Abs(got-want) <= 5e-6*math.Abs(want) }
			if !near(n.Share, share) || !near(n.BaseShare, baseShare) || !near(n.Delta, share-baseShare) {
				t.Errorf("%s: share/base_share/delta %g/%g/%g, want %g/%g/%g", n.Name, n.Share, n.BaseShare, n.Delta, share, baseShare, share-baseShare)
			}
			if n.Other {
				others++
			}
			for _, c := range n.Children {
				walk(c)
			}
		}
		walk(root)
		if others == 0 {
			t.Error("no truncated node was checked")
		}
	}
	tr := b.Tree(40)
	if tr.Share != 1 || tr.BaseShare != 1 || tr.Delta != 0 {
		t.Errorf("root %g/%g/%g", tr.Share, tr.BaseShare, tr.Delta)
	}
	check(tr)
	check(b.Focus([]string{tr.Children[0].Name}, 10))
	if n := (&Builder{}); n.Tree(0).Share != 0 {
		t.Error("a single graph has shares")
	}
}

func TestSixDigits(t *testing.T) {
	for _, tc := range []struct{ in, want float64 }{
		{0, 0}, {1, 1}, {0.123456789, 0.123457}, {-0.000123456789, -0.000123457}, {123456789, 123457000},
		{2.5e-9, 2.5e-9}, {0.1, 0.1}, {1.0 / 3, 0.333333}, {-1, -1}, {0.00999999999, 0.01}, {0.01, 0.01},
		{1e-20 / 3, 3.33333e-21}, {9.999995e-7, 1e-6},
	} {
		if got := sixDigits(tc.in); got != tc.want {
			t.Errorf("sixDigits(%g) = %g, want %g", tc.in, got, tc.want)
		}
	}
	// Every rounding is within half a unit of the sixth digit.
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		x := (r.Float64() - 0.5) * math.Pow(10, float64(r.IntN(30)-20))
		if got := sixDigits(x); math.Abs(got-x) > 5.000001e-6*math.Abs(x) {
			t.Fatalf("sixDigits(%g) = %g", x, got)
		}
	}
}

// TestReleasedViewMemoryComesBackZeroed releases views with counts on both sides and checks that the views
// made next, which reuse their memory, see only their own counts, and that a released view is not usable.
func TestReleasedViewMemoryComesBackZeroed(t *testing.T) {
	stacks := genStacks(5000, 17, 20)
	trie := NewTrie()
	leaves := make([]uint32, len(stacks))
	for i, s := range stacks {
		leaves[i] = trie.Leaf(s.stack)
	}
	for round := range 6 {
		v, b := trie.View(), &Builder{}
		for i, s := range stacks {
			if (i+round)%3 == 0 {
				v.AddLeaf(leaves[i], s.count)
				b.Add(s.stack, s.count)
			}
			if round%2 == 1 && (i+round)%4 == 0 {
				v.AddBaseLeaf(leaves[i], 2)
				b.AddBase(s.stack, 2)
			}
		}
		got := render(v.Tree(50)) + fmt.Sprint(v.TopFunctions("total", 10))
		want := render(b.Tree(50)) + fmt.Sprint(b.TopFunctions("total", 10))
		if got != want {
			t.Fatalf("round %d: view with reused memory differs from a Builder", round)
		}
		v.Release()
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("round %d: a released view still builds trees", round)
				}
			}()
			v.Tree(10)
		}()
	}
}
