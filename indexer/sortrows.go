package indexer

import (
	"cmp"
	"math/bits"
	"slices"

	"github.com/flamestream/flamestream/internal/profile"
)

// The sample rows of a batch are written in the order of the samples table's key (service, host, ts,
// container, stack). ClickHouse checks whether a block is already in key order before it sorts it, and
// skips the sort when it is: on this machine that sort was 37 % of ClickHouse's CPU under 2,000-line
// profiles (perf: stableGetPermutation and its memcmp of the string columns, in the samples part's
// write). Sorting here is cheap: the profiles of a batch by (service, host, ts), and within one profile
// its rows by (container, stack), where the container is usually the same for every row.

// sortedForSamples returns items ordered by (service, host, ts): the samples key of their rows. items
// itself is left as it is (its order is the caller's).
func sortedForSamples(items []*item) []*item {
	out := slices.Clone(items)
	slices.SortStableFunc(out, func(a, b *item) int {
		return cmp.Or(cmp.Compare(a.ev.Service, b.ev.Service), cmp.Compare(a.ev.Host, b.ev.Host),
			cmp.Compare(a.ev.Start.Unix(), b.ev.Start.Unix()))
	})
	return out
}

// rowSorter holds the buffers that order one profile's rows; they are reused from profile to profile.
type rowSorter struct {
	order           []int32
	keys            []uint64
	containers, k8s []string
	names           []string // the distinct container names of a profile, in order of appearance
	ranks           []uint64 // the rank of each of names in sorted order
}

// sort returns the indexes of entries in (container, stack) order, and fills r.containers and r.k8s with
// every entry's container name and Kubernetes object (profile.ContainerInfo of its raw container).
//
// A comparison sort through a function value cost more than the rows' own columns (0.35 ms per 2,000-line
// profile); this one sorts plain integers. An entry's key is, from the top bits down: the rank of its
// container name (when the profile has several), its stack hash, and its index in the low bits, which
// replace the hash's. Two hashes that differ only in the bits left out may come out of order, for a
// million rows and 256 containers about one profile in ten: then ClickHouse sorts the block itself, as it
// always did, and the rows are the same.
func (r *rowSorter) sort(w *writer, entries []profile.Entry) []int32 {
	n := len(entries)
	r.order = slices.Grow(r.order[:0], n)[:n]
	r.keys = slices.Grow(r.keys[:0], n)[:n]
	r.containers = slices.Grow(r.containers[:0], n)[:n]
	r.k8s = slices.Grow(r.k8s[:0], n)[:n]
	r.names = r.names[:0]
	// First pass: every entry's container, and in order[i] the index of its name in r.names.
	for i, e := range entries {
		if i > 0 && e.Container == entries[i-1].Container {
			r.containers[i], r.k8s[i], r.order[i] = r.containers[i-1], r.k8s[i-1], r.order[i-1]
			continue
		}
		r.containers[i], r.k8s[i] = w.containerInfo(e.Container)
		j := slices.Index(r.names, r.containers[i])
		if j < 0 {
			j = len(r.names)
			r.names = append(r.names, r.containers[i])
		}
		r.order[i] = int32(j)
	}
	low := bits.Len(uint(n))
	mask := uint64(1)<<low - 1
	if len(r.names) <= 1 {
		for i, e := range entries {
			r.keys[i] = e.Hash&^mask | uint64(i)
		}
	} else {
		top := bits.Len(uint(len(r.names) - 1))
		r.ranks = slices.Grow(r.ranks[:0], len(r.names))[:len(r.names)]
		for j, name := range r.names {
			var rank uint64
			for _, other := range r.names {
				if other < name {
					rank++
				}
			}
			r.ranks[j] = rank << (64 - top)
		}
		for i, e := range entries {
			r.keys[i] = r.ranks[r.order[i]] | (e.Hash>>top)&^mask | uint64(i)
		}
	}
	slices.Sort(r.keys)
	for i, k := range r.keys {
		r.order[i] = int32(k & mask)
	}
	return r.order
}
