package main

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
)

func TestBackfillProfilesAreDeterministic(t *testing.T) {
	ts := time.Date(2026, 1, 5, 10, 17, 3, 0, time.UTC)
	gen := func(seed uint64, host int) *bfBlock {
		s := newBFService("svc", seed, 10, 300, 60)
		var b bfBlock
		b.addProfile(s, host, 42, ts)
		return &b
	}
	a, b := gen(7, 3), gen(7, 3)
	if a.ts.Rows() == 0 || a.ts.Rows() > 60 {
		t.Fatalf("%d rows from 60 draws", a.ts.Rows())
	}
	if !reflect.DeepEqual(a.stack, b.stack) || !reflect.DeepEqual(a.count, b.count) || !reflect.DeepEqual(a.profile, b.profile) {
		t.Fatal("the same seed, host and step gave different rows")
	}
	seen := map[uint64]bool{}
	for _, h := range a.stack {
		if seen[h] {
			t.Fatalf("stack %x twice in one profile: rows must be summed per stack", h)
		}
		seen[h] = true
	}
	if c := gen(8, 3); reflect.DeepEqual(a.stack, c.stack) {
		t.Error("another seed gave the same stacks")
	}
	if c := gen(7, 4); reflect.DeepEqual(a.count, c.count) {
		t.Error("another host gave the same profile")
	}
}

func TestBackfillTreeIsDeterministicWithThePromisedVariety(t *testing.T) {
	shape := treeShape{Distinct: 20000, PerProfile: 500, Hot: 100, DepthMin: 20, DepthMax: 60}
	if err := shape.check(); err != nil {
		t.Fatal(err)
	}
	vocab := newVocabulary(3, 20000)
	if len(vocab.names) != 20000 {
		t.Fatalf("vocabulary of %d names, want 20000", len(vocab.names))
	}
	suffix := map[int]string{kindJava: "_[j]", kindPython: ")_[p]", kindNative: "_[pe]", kindKernel: "_[k]"}
	for k := range numKinds {
		for _, name := range vocab.names[vocab.start[k]:vocab.start[k+1]] {
			if !strings.HasSuffix(name, suffix[k]) || strings.ContainsAny(name, ";\n") {
				t.Fatalf("frame %q of kind %d is not shaped like the agent's", name, k)
			}
		}
	}
	const hosts = 10
	interval := time.Hour
	a := newTreeService("svc", 5, hosts, shape, vocab, kindJava)
	b := newTreeService("svc", 5, hosts, shape, newVocabulary(3, 20000), kindJava)
	if !reflect.DeepEqual(a.hashes, b.hashes) {
		t.Fatal("the same seed grew different stacks")
	}
	if c := newTreeService("svc", 6, hosts, shape, vocab, kindJava); reflect.DeepEqual(a.hashes[:100], c.hashes[:100]) {
		t.Error("another seed grew the same stacks")
	}
	// Every stack is distinct text of the promised depth, hashed as the indexer hashes it.
	texts := map[string]bool{}
	for i := range a.stacks {
		text := a.stackText(i)
		if texts[text] {
			t.Fatalf("stack %d repeats an earlier one: %s", i, text)
		}
		texts[text] = true
		if xxhash.Sum64String(text) != a.hashes[i] {
			t.Fatalf("stack %d: hash is not xxhash of its text", i)
		}
		frames := strings.Split(text, ";")
		if d := len(frames) - 1; d < shape.DepthMin || d > shape.DepthMax {
			t.Fatalf("stack %d has %d frames, want %d…%d: %s", i, d, shape.DepthMin, shape.DepthMax, text)
		}
		if frames[0] != "java" {
			t.Fatalf("stack %d of a Java service starts with %q", i, frames[0])
		}
	}
	// Tree-shaped: the stacks share prefixes, so their trie has far fewer nodes than their frames.
	frames := 0
	prefixes := map[string]bool{}
	for text := range texts {
		for i := range len(text) {
			if text[i] == ';' {
				prefixes[text[:i]] = true
			}
		}
		frames += strings.Count(text, ";")
	}
	if len(prefixes)+len(texts) > frames/3 {
		t.Errorf("%d trie nodes for %d frames: the stacks share too little", len(prefixes)+len(texts), frames)
	}
	// A day of the fleet's profiles holds every stack of the population: hot ones in each profile, with
	// skewed counts, and each profile's stacks distinct.
	if want := a.distinctPerDay(interval); want != shape.Distinct {
		t.Fatalf("distinctPerDay = %d, want %d", want, shape.Distinct)
	}
	day := map[int]bool{}
	step0 := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC).Unix() / 3600
	for step := step0; step < step0+24; step++ {
		for h := range hosts {
			prof := map[int]uint32{}
			a.profileStacks(h, step, func(stack int, count uint32) {
				if _, dup := prof[stack]; dup {
					t.Fatalf("stack %d twice in the profile of host %d step %d", stack, h, step)
				}
				prof[stack] = count
				day[stack] = true
			})
			if len(prof) != shape.PerProfile {
				t.Fatalf("profile of %d stacks, want %d", len(prof), shape.PerProfile)
			}
			if prof[0] < 10*prof[shape.Hot-1] || prof[0] < 10*prof[shape.Hot+1] {
				t.Fatalf("counts are not skewed: hottest %d, coldest hot %d", prof[0], prof[shape.Hot-1])
			}
		}
	}
	if len(day) != shape.Distinct {
		t.Fatalf("a day holds %d distinct stacks, want %d", len(day), shape.Distinct)
	}
	// Profiles differ by host and step, and are the same for the same host and step.
	sum := func(h int, step int64) (s []uint32) {
		a.profileStacks(h, step, func(stack int, count uint32) { s = append(s, uint32(stack), count) })
		return s
	}
	if !reflect.DeepEqual(sum(3, step0), sum(3, step0)) {
		t.Fatal("the same host and step gave different profiles")
	}
	if reflect.DeepEqual(sum(3, step0), sum(4, step0)) || reflect.DeepEqual(sum(3, step0), sum(3, step0+1)) {
		t.Fatal("another host or step gave the same profile")
	}
}
