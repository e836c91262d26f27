package profile

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func addText(t testing.TB, a *Aggregate, text []byte) {
	t.Helper()
	if _, err := Parse(text, a.Add); err != nil {
		t.Fatal(err)
	}
}

func TestAggregateSumsPerContainerAndStack(t *testing.T) {
	var a Aggregate
	addText(t, &a, []byte(hdrV2+`
web;comm;a 1
web;comm;b 2
db;comm;a 4
web;comm;a 8
;comm;a 16
db;comm;;a 32
`))
	ha, hb := StackHash([]byte("comm;a")), StackHash([]byte("comm;b"))
	want := []Entry{
		{Container: "web", Hash: ha, Count: 9},
		{Container: "web", Hash: hb, Count: 2},
		{Container: "db", Hash: ha, Count: 36},
		{Container: "", Hash: ha, Count: 16},
	}
	if got := a.Entries(); !slices.Equal(got, want) {
		t.Errorf("Entries() = %v, want %v", got, want)
	}
	if a.NumStacks() != 2 || a.Lines() != 6 || a.Samples() != 63 {
		t.Errorf("NumStacks, Lines, Samples = %d, %d, %d; want 2, 6, 63", a.NumStacks(), a.Lines(), a.Samples())
	}
	var order []string
	for h, s := range a.Stacks() {
		if h != StackHash(s) {
			t.Errorf("stack %q listed with hash %#x", s, h)
		}
		order = append(order, string(s))
	}
	if strings.Join(order, " ") != "comm;a comm;b" {
		t.Errorf("Stacks() order = %q", order)
	}
	if s, ok := a.Stack(hb); !ok || string(s) != "comm;b" {
		t.Errorf("Stack(hb) = %q, %v", s, ok)
	}
	if _, ok := a.Stack(12345); ok {
		t.Error("Stack of an unknown hash is present")
	}
}

func TestAggregateCopiesWhatItKeeps(t *testing.T) {
	var a Aggregate
	stack := []byte("comm;a")
	cont := []byte("web")
	a.Add(&Line{Container: cont, Stack: stack, Count: 1})
	copy(stack, "XXXXXX")
	copy(cont, "YYY")
	s, _ := a.Stack(StackHash([]byte("comm;a")))
	if string(s) != "comm;a" || a.Entries()[0].Container != "web" {
		t.Errorf("kept data changed with the line: %q %q", s, a.Entries()[0].Container)
	}
}

func TestAggregateStopsStacksIterationEarly(t *testing.T) {
	var a Aggregate
	addText(t, &a, []byte(hdrV1+"\nc;a 1\nc;b 1\nc;c 1\n"))
	n := 0
	for range a.Stacks() {
		n++
		break
	}
	if n != 1 {
		t.Errorf("iterated %d times after break", n)
	}
}

func TestAggregateResetEmptiesAndReusesMemory(t *testing.T) {
	var a Aggregate
	text := readRealProfile(t)
	addText(t, &a, text)
	first := fmt.Sprint(a.Entries())
	firstStacks := a.NumStacks()

	a.Reset()
	if len(a.Entries()) != 0 || a.NumStacks() != 0 || a.Lines() != 0 || a.Samples() != 0 {
		t.Fatal("Reset left data behind")
	}
	for range a.Stacks() {
		t.Fatal("Reset left stacks behind")
	}

	addText(t, &a, text)
	if fmt.Sprint(a.Entries()) != first || a.NumStacks() != firstStacks {
		t.Error("the same profile aggregates differently after Reset")
	}

	// A profile aggregated again after Reset does not allocate in Add.
	var lines []Line
	if _, err := Parse(text, func(l *Line) error {
		lines = append(lines, Line{Container: slices.Clone(l.Container), Stack: slices.Clone(l.Stack), Count: l.Count})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(20, func() {
		a.Reset()
		for i := range lines {
			a.Add(&lines[i])
		}
	})
	// Container names are interned once per profile: 5 distinct names.
	if allocs > 5 {
		t.Errorf("re-aggregating after Reset allocates %.1f times", allocs)
	}
}

func TestAggregateAddDoesNotAllocateForKnownStacks(t *testing.T) {
	var a Aggregate
	lines := []Line{
		{Container: []byte("web"), Stack: []byte("comm;a;b;c"), Count: 1},
		{Container: []byte("db"), Stack: []byte("comm;a;b;c"), Count: 1},
		{Container: []byte("web"), Stack: []byte("comm;a;b;d"), Count: 1},
	}
	for i := range lines {
		a.Add(&lines[i])
	}
	allocs := testing.AllocsPerRun(100, func() {
		for i := range lines {
			a.Add(&lines[i])
		}
	})
	if allocs != 0 {
		t.Errorf("Add of known stacks allocates %.1f times", allocs)
	}
}

func TestAggregateMatchesAMapOverTheRealProfile(t *testing.T) {
	text := readRealProfile(t)
	type key struct{ container, stack string }
	want := map[key]uint64{}
	if _, err := Parse(text, func(l *Line) error {
		want[key{string(l.Container), string(l.Stack)}] += l.Count
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var a Aggregate
	addText(t, &a, text)
	got := map[key]uint64{}
	for _, e := range a.Entries() {
		s, ok := a.Stack(e.Hash)
		if !ok {
			t.Fatalf("no stack for hash %#x", e.Hash)
		}
		got[key{e.Container, string(s)}] += e.Count
	}
	if !maps.Equal(got, want) {
		t.Errorf("aggregate differs from a plain map:\n got %v\nwant %v", got, want)
	}
	if len(a.Entries()) != len(want) {
		t.Errorf("%d entries for %d distinct (container, stack) pairs", len(a.Entries()), len(want))
	}
}

// TestAggregateMatchesAMapAcrossContainerCounts checks entries and their order against plain maps for
// profiles of 1 to 40 containers: the few containers whose entries are found by walking a stack's chain,
// the switch to the index when one more appears mid-profile (with entries already there), and the many.
// Each Aggregate is reused after Reset, as the indexer does, so a stale index or chain would show.
func TestAggregateMatchesAMapAcrossContainerCounts(t *testing.T) {
	var a Aggregate
	for _, containers := range []int{1, 2, fewContainers, fewContainers + 1, fewContainers + 2, 40, 3} {
		r := rand.New(rand.NewPCG(uint64(containers), 7))
		type key struct {
			container string
			hash      uint64
		}
		var b strings.Builder
		b.WriteString(hdrV2 + "\n")
		for range 3000 {
			fmt.Fprintf(&b, "c%d;comm;f%d;g%d %d\n", r.IntN(containers), r.IntN(30), r.IntN(3), 1+r.IntN(9))
		}
		a.Reset()
		want := map[key]uint64{}
		var order []key
		if _, err := Parse([]byte(b.String()), func(l *Line) error {
			k := key{string(l.Container), StackHash(l.Stack)}
			if _, ok := want[k]; !ok {
				order = append(order, k)
			}
			want[k] += l.Count
			return a.Add(l)
		}); err != nil {
			t.Fatal(err)
		}
		got := a.Entries()
		if len(got) != len(order) {
			t.Fatalf("%d containers: %d entries, want %d", containers, len(got), len(order))
		}
		for i, e := range got {
			if k := (key{e.Container, e.Hash}); k != order[i] || e.Count != want[k] {
				t.Fatalf("%d containers: entry %d = %+v, want %+v with count %d", containers, i, e, order[i], want[order[i]])
			}
		}
	}
}

// TestAggregateFindsEveryStackAsItsTableGrows adds 100,000 distinct stacks twice (the table of stacks by
// hash grows from its smallest size past the largest that Reset keeps) and checks that each is stored
// once, found again, and listed with its text; then again after Reset, and with a small profile after that.
func TestAggregateFindsEveryStackAsItsTableGrows(t *testing.T) {
	var a Aggregate
	for round, n := range []int{100000, 100000, 50} {
		a.Reset()
		if round == 1 {
			a.Reserve(n, 0)
		}
		for pass := range 2 {
			for i := range n {
				l := Line{Container: []byte("c"), Stack: fmt.Appendf(nil, "comm;f%d", i), Count: 1, Number: i + 2}
				if err := a.Add(&l); err != nil {
					t.Fatal(err)
				}
			}
			if a.NumStacks() != n || len(a.Entries()) != n || a.Samples() != uint64(n*(pass+1)) {
				t.Fatalf("round %d pass %d: %d stacks, %d entries, %d samples for %d lines", round, pass,
					a.NumStacks(), len(a.Entries()), a.Samples(), n)
			}
		}
		for i, e := range a.Entries() {
			s, ok := a.Stack(e.Hash)
			if want := fmt.Sprintf("comm;f%d", i); !ok || string(s) != want || e.Count != 2 {
				t.Fatalf("round %d: entry %d = %+v, stack %q %v; want %q counted twice", round, i, e, s, ok, want)
			}
		}
	}
	if len(a.slots) > maxKeptSlots {
		t.Errorf("a small profile after a big one has a table of %d slots", len(a.slots))
	}
}
