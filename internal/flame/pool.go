package flame

import "sync"

// A query server makes a view per request: the views' count chunks and derived arrays come from pools, and
// Release gives them back, so that a busy server does not allocate (and collect) megabytes per request.
var (
	chunkPool = sync.Pool{New: func() any { return new([chunkSize]uint64) }}
	slicePool sync.Pool // of *[]uint64
)

// getChunk returns a zeroed count chunk.
func getChunk() []uint64 { return chunkPool.Get().(*[chunkSize]uint64)[:] }

func putChunk(c []uint64) {
	clear(c)
	chunkPool.Put((*[chunkSize]uint64)(c))
}

// getSlice returns a slice of n values that are not zeroed.
func getSlice(n int) []uint64 {
	if p, ok := slicePool.Get().(*[]uint64); ok && cap(*p) >= n {
		return (*p)[:n]
	}
	return make([]uint64, n)
}

func putSlice(s []uint64) {
	if s != nil {
		slicePool.Put(&s)
	}
}
