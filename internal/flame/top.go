package flame

import (
	"cmp"
	"slices"
)

// Function is one row of the top-functions table.
//
// Self is the number of samples whose leaf frame is the function and Total
// the number of samples whose stack contains the function at least once: a
// recursive function is counted once per stack, so Total never exceeds the
// Builder's total.
type Function struct {
	Name  string `json:"name"`
	Self  uint64 `json:"self"`
	Total uint64 `json:"total"`
}

// topFunctions returns the top-functions table (see Builder.TopFunctions).
func (g *graph) topFunctions(sortBy string, limit int) []Function {
	d := g.derive()
	self := make([]uint64, len(g.names))
	total := make([]uint64, len(g.names))
	onPath := make([]uint32, len(g.names))
	// Depth-first walk that adds a node's inclusive value to its frame's
	// total only at the outermost occurrence of the frame on the path.
	// Entries >= 0 enter a node; entries < 0 leave node ^entry.
	stack := make([]int64, 0, 256)
	if g.nNodes > 0 {
		for c := g.node(0).first; c != 0; c = g.node(c).next {
			stack = append(stack, int64(c))
		}
	}
	for len(stack) > 0 {
		e := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if e < 0 {
			onPath[g.frameOf(uint32(^e))]--
			continue
		}
		n := uint32(e)
		if int(n) >= len(d.value) || d.value[n] == 0 {
			continue // baseline-only subtree, or newer than a view
		}
		r := g.node(n)
		f := r.frame &^ hubBit
		self[f] += g.selfOf(n)
		if onPath[f] == 0 {
			total[f] += d.value[n]
		}
		if r.first == 0 {
			continue
		}
		onPath[f]++
		stack = append(stack, ^e)
		for c := r.first; c != 0; c = g.node(c).next {
			stack = append(stack, int64(c))
		}
	}
	byTotal := sortBy == "total"
	out := make([]Function, 0, 64)
	for id, name := range g.names {
		if total[id] == 0 {
			continue // only in the baseline
		}
		out = append(out, Function{Name: name, Self: self[id], Total: total[id]})
	}
	slices.SortFunc(out, func(x, y Function) int {
		if byTotal {
			if c := cmp.Compare(y.Total, x.Total); c != 0 {
				return c
			}
			if c := cmp.Compare(y.Self, x.Self); c != 0 {
				return c
			}
		} else {
			if c := cmp.Compare(y.Self, x.Self); c != 0 {
				return c
			}
			if c := cmp.Compare(y.Total, x.Total); c != 0 {
				return c
			}
		}
		return cmp.Compare(x.Name, y.Name)
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}
