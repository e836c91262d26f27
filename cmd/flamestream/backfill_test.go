package main

import (
	"reflect"
	"testing"
	"time"
)

func TestBackfillProfilesAreDeterministic(t *testing.T) {
	ts := time.Date(2026, 1, 5, 10, 17, 3, 0, time.UTC)
	gen := func(seed uint64, host int) *bfBlock {
		s := newBFService("svc", seed, 10, 300)
		var b bfBlock
		b.addProfile(s, host, 42, ts, 60)
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
