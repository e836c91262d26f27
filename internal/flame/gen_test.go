package flame

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// genStack is one generated stack and its count.
type genStack struct {
	stack string
	count uint64
}

// genStacks deterministically generates n unique stacks of depth
// maxDepth/3 to maxDepth over a few thousand frame names, shaped like real
// profiles: a process name, then a walk over a random call graph, with most
// stacks sharing a long prefix with an earlier stack and differing only in
// their last frames. Counts are small and skewed (mostly 1 to 10).
func genStacks(n int, seed uint64, maxDepth int) []genStack {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	minDepth := max(maxDepth/3, 3)
	words := []string{"read", "write", "poll", "handle", "serve", "parse", "encode", "decode", "lock",
		"alloc", "hash", "query", "flush", "send", "recv", "dispatch", "load", "store", "scan", "merge"}
	const nFrames = 4000
	names := make([]string, nFrames)
	for i := range names {
		w := words[r.IntN(len(words))]
		switch r.IntN(5) {
		case 0:
			names[i] = fmt.Sprintf("%s_sys_%d_[k]", w, i)
		case 1:
			names[i] = fmt.Sprintf("%s_%d_[p]", w, i)
		case 2:
			names[i] = fmt.Sprintf("com/acme/%s/Svc.%s%d_[j]", words[r.IntN(len(words))], w, i)
		case 3:
			names[i] = fmt.Sprintf("github.com/acme/app/%s.(*T).%s%d", words[r.IntN(len(words))], w, i)
		default:
			names[i] = fmt.Sprintf("%s%d", w, i)
		}
	}
	callees := make([][]int32, nFrames)
	for i := range callees {
		for range 2 + r.IntN(6) {
			callees[i] = append(callees[i], int32(r.IntN(nFrames)))
		}
	}
	comms := []string{"python3", "java", "nginx", "postgres", "api-server", "node", "envoy", "redis-server"}

	seen := make(map[string]struct{}, n)
	out := make([]genStack, 0, n)
	pool := make([][]int32, 0, n)
	var sb strings.Builder
	for len(out) < n {
		var st []int32
		var target int
		if len(pool) < 200 || r.IntN(100) == 0 {
			st = []int32{int32(-1 - r.IntN(len(comms))), int32(r.IntN(64))}
			target = minDepth + r.IntN(maxDepth-minDepth+1)
		} else {
			p := pool[r.IntN(len(pool))]
			target = min(max(len(p)+r.IntN(17)-8, minDepth), maxDepth)
			keep := max(min(len(p), target)-1-r.IntN(8), 2)
			st = append(make([]int32, 0, maxDepth), p[:keep]...)
		}
		for len(st) < target {
			c := callees[st[len(st)-1]] // st[0] is the only process frame
			st = append(st, c[r.IntN(len(c))])
		}
		sb.Reset()
		for i, f := range st {
			if i > 0 {
				sb.WriteByte(';')
			}
			if f < 0 {
				sb.WriteString(comms[-1-f])
			} else {
				sb.WriteString(names[f])
			}
		}
		s := sb.String()
		if _, dup := seen[s]; dup {
			continue
		}
		seen[s] = struct{}{}
		out = append(out, genStack{stack: s, count: 1 + uint64(r.ExpFloat64()*3)})
		pool = append(pool, st)
	}
	return out
}
