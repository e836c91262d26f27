package main

import (
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/flamestream/flamestream/cmd/internal/cli"
)

// The tree shape of backfill: services with the stack variety of a real fleet. Each service's stacks are
// the paths of one random call tree over a shared vocabulary of frame names shaped like the agent's (Java
// "com/acme/billing/InvoiceService.computeTotals_[j]", Python "get_queryset (/app/orders/views.py)_[p]",
// native "_[pe]" and kernel "_[k]" frames), so stacks share long prefixes as real programs do. A profile
// holds the service's hot stacks (the first ones grown, the trunks of the tree) with Zipf-skewed counts,
// plus a window of the long tail that moves on with every profile of the fleet: over a day the fleet's
// profiles cover min(distinct, hot + profiles×tail) distinct stacks, a number the flags fix in advance.

// treeShape says what the tree generator makes for one service.
type treeShape struct {
	Distinct   int // stacks of the service's population (the distinct stacks of a day when profiles cover it)
	PerProfile int // distinct stacks in one profile
	Hot        int // stacks in every profile; the other PerProfile-Hot rotate through the tail
	DepthMin   int // frames per stack below the process name, at least
	DepthMax   int // and at most
}

func (s treeShape) check() error {
	switch {
	case s.Distinct <= 0 || s.PerProfile <= 0:
		return cli.Usagef("-distinct-per-day and -stacks-per-profile must be positive")
	case s.PerProfile > s.Distinct:
		return cli.Usagef("-stacks-per-profile %d is more than -distinct-per-day %d", s.PerProfile, s.Distinct)
	case s.Hot < 0 || s.Hot > s.PerProfile:
		return cli.Usagef("-hot %d must be within 0…-stacks-per-profile", s.Hot)
	case s.DepthMin < 2 || s.DepthMax < s.DepthMin || s.DepthMax > 250:
		return cli.Usagef("-depth-min/-depth-max must satisfy 2 ≤ min ≤ max ≤ 250")
	}
	return nil
}

// Frame kinds of the vocabulary, in the order their names are laid out in it.
const (
	kindJava = iota
	kindPython
	kindNative
	kindKernel
	numKinds
)

// vocabulary is the frame names every tree service draws from: a range of names per kind.
type vocabulary struct {
	names []string
	start [numKinds + 1]int // names of kind k are names[start[k]:start[k+1]]
}

// Word lists the frame names are made of. Combinations give tens of thousands of distinct names.
var (
	vJavaOrgs = []string{"com/acme", "com/globex", "org/apache", "io/netty", "org/springframework", "com/fasterxml",
		"org/hibernate", "io/grpc", "com/google/common", "org/eclipse/jetty", "io/micrometer", "reactor/core", "java/util",
		"java/lang", "java/io", "sun/nio", "jdk/internal", "kotlin/coroutines", "com/zaxxer/hikari", "org/postgresql"}
	vModules = []string{"billing", "orders", "catalog", "search", "auth", "users", "payments", "inventory", "shipping",
		"pricing", "cart", "checkout", "reports", "notify", "gateway", "session", "cache", "storage", "metrics",
		"config", "scheduler", "ledger", "fraud", "tax", "audit", "export", "imports", "media", "feed", "recs"}
	vNouns = []string{"Invoice", "Order", "Item", "Query", "Request", "Response", "Session", "User", "Account",
		"Payment", "Price", "Cart", "Event", "Message", "Record", "Batch", "Index", "Document", "Token", "Channel",
		"Buffer", "Stream", "Connection", "Pool", "Task", "Job", "Rule", "Policy", "Report", "Schema", "Row",
		"Column", "Page", "Cursor", "Header", "Route", "Filter", "Codec", "Frame", "Block"}
	vRoles = []string{"Service", "Handler", "Impl", "Factory", "Repository", "Controller", "Manager", "Processor",
		"Resolver", "Mapper", "Encoder", "Decoder", "Executor", "Client", "Reader", "Writer", "Builder", "Validator"}
	vVerbs = []string{"get", "set", "compute", "load", "save", "find", "handle", "process", "apply", "build", "parse",
		"encode", "decode", "read", "write", "flush", "validate", "resolve", "map", "filter", "merge", "sort",
		"invoke", "dispatch", "execute", "submit", "await", "lookup", "update", "render", "serialize", "fetch"}
	vPyRoots = []string{"/app", "/usr/lib/python3.11", "/usr/local/lib/python3.11/site-packages/django",
		"/usr/local/lib/python3.11/site-packages/requests", "/usr/local/lib/python3.11/site-packages/sqlalchemy",
		"/usr/local/lib/python3.11/site-packages/celery", "/usr/local/lib/python3.11/site-packages/urllib3",
		"/usr/local/lib/python3.11/site-packages/numpy", "/usr/local/lib/python3.11/site-packages/pandas",
		"/usr/local/lib/python3.11/site-packages/gunicorn"}
	vPyFiles = []string{"views", "models", "serializers", "utils", "base", "core", "query", "handlers", "client",
		"session", "connection", "pool", "tasks", "encoder", "decoder", "fields", "forms", "middleware", "router", "cache"}
	vNativeLibs = []string{"libc", "libpthread", "libjvm", "libpython3.11", "libssl", "libcrypto", "libz", "libstdc++",
		"envoy", "libprotobuf", "libgrpc", "libjemalloc", "libnghttp2", "libuv"}
	vNativeParts = []string{"malloc", "free", "memcpy", "mutex_lock", "cond_wait", "epoll_wait", "read", "write",
		"SSL_read", "SSL_write", "inflate", "deflate", "hash_insert", "gc_mark", "gc_sweep", "compile_method",
		"interpreter_loop", "call_stub", "vtable_dispatch", "parse_frame", "encode_varint", "arena_alloc"}
	vKernelSubs = []string{"tcp", "udp", "ip", "sock", "vfs", "ext4", "xfs", "blk", "mm", "sched", "futex", "epoll",
		"irq", "softirq", "page", "skb", "net", "nvme", "virtio", "cgroup", "rcu", "hrtimer", "do", "sys"}
	vKernelOps = []string{"sendmsg", "recvmsg", "read", "write", "poll", "wait", "wake_up", "alloc", "free", "fault",
		"map", "unmap", "lock", "unlock", "rcv", "xmit", "enqueue", "dequeue", "flush", "submit", "complete", "switch"}
)

// newVocabulary makes size distinct frame names (at least a few hundred), about 40% Java, 30% Python, 20%
// native and 10% kernel, deterministically for a seed.
func newVocabulary(seed uint64, size int) *vocabulary {
	size = max(size, 400)
	rng := rand.New(rand.NewPCG(seed, 0x70cab))
	v := &vocabulary{names: make([]string, 0, size)}
	seen := make(map[string]struct{}, size)
	share := [numKinds]float64{0.4, 0.3, 0.2, 0.1}
	pick := func(ws []string) string { return ws[rng.IntN(len(ws))] }
	for k := range numKinds {
		v.start[k] = len(v.names)
		want := int(math.Round(share[k] * float64(size)))
		if k == numKinds-1 {
			want = size - len(v.names)
		}
		for got, tries := 0, 0; got < want; tries++ {
			var name string
			switch k {
			case kindJava:
				name = pick(vJavaOrgs) + "/" + pick(vModules) + "/" + pick(vNouns) + pick(vRoles) + "." + pick(vVerbs) + pick(vNouns) + "_[j]"
			case kindPython:
				name = pick(vVerbs) + "_" + lower(pick(vNouns)) + " (" + pick(vPyRoots) + "/" + pick(vModules) + "/" + pick(vPyFiles) + ".py)_[p]"
			case kindNative:
				name = pick(vNativeLibs) + "::" + pick(vNativeParts) + "_" + lower(pick(vNouns)) + "_[pe]"
			case kindKernel:
				name = pick(vKernelSubs) + "_" + pick(vKernelOps) + "_" + lower(pick(vNouns)) + "_[k]"
			}
			if tries > 50*want {
				// The word lists ran out of combinations: number the names instead.
				name = name[:len(name)-len("_[x]")] + strconv.Itoa(tries) + name[len(name)-len("_[x]"):]
			}
			if _, dup := seen[name]; dup {
				continue
			}
			seen[name] = struct{}{}
			v.names = append(v.names, name)
			got++
		}
	}
	v.start[numKinds] = len(v.names)
	return v
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// kind returns the kind of name f.
func (v *vocabulary) kind(f int32) int {
	k := 0
	for k < numKinds-1 && int(f) >= v.start[k+1] {
		k++
	}
	return k
}

// draw picks a name of kind k, skewed towards the first names of the kind (hot functions are called from
// many places).
func (v *vocabulary) draw(rng *rand.Rand, k int) int32 {
	n := v.start[k+1] - v.start[k]
	u := rng.Float64()
	return int32(v.start[k] + int(u*u*float64(n)))
}

// Process names (the first element of a stack) per main kind of a service.
var treeComms = [numKinds][]string{
	kindJava:   {"java"},
	kindPython: {"python3", "gunicorn", "celery"},
	kindNative: {"envoy", "nginx", "postgres"},
}

// treeService is one service's stack population: a call tree stored as parent links. Node 0… are nodes;
// a stack is a node (the path from its root), and stacks are numbered in the order they were grown, so the
// first ones are the trunks every later stack branches from: the hot ones.
type treeService struct {
	name  string
	hosts int
	seed  uint64
	shape treeShape
	vocab *vocabulary
	comms []string // process names: root nodes carry -1-index into comms as their frame

	parent []int32
	frame  []int32
	depth  []uint8
	stacks []int32  // node of each stack
	hashes []uint64 // xxhash of each stack's text, as the indexer computes it
	// tailMul and tailAdd shuffle the tail of the population (an affine bijection modulo its length), so
	// that a profile's tail window is a scattered set of stacks rather than neighbours in the tree.
	tailMul, tailAdd uint64
}

// newTreeService grows the population of a service: first a few root paths (the process's entry points),
// then each new stack copies the prefix of a random earlier stack up to a little before its end and adds
// new frames down to a depth near the earlier one's. Stacks whose text repeats an earlier one are drawn
// again, so the population has exactly shape.Distinct distinct stacks.
func newTreeService(name string, seed uint64, hosts int, shape treeShape, vocab *vocabulary, main int) *treeService {
	rng := rand.New(rand.NewPCG(seed, 0x7ee))
	s := &treeService{name: name, hosts: hosts, seed: seed, shape: shape, vocab: vocab, comms: treeComms[main]}
	n := shape.Distinct
	s.stacks = make([]int32, 0, n)
	s.hashes = make([]uint64, 0, n)
	seen := make(map[uint64]struct{}, n)
	var buf []byte
	addNode := func(parent int32, frame int32, depth int) int32 {
		s.parent = append(s.parent, parent)
		s.frame = append(s.frame, frame)
		s.depth = append(s.depth, uint8(depth))
		return int32(len(s.parent) - 1)
	}
	roots := make([]int32, len(s.comms))
	for i := range s.comms {
		roots[i] = addNode(-1, int32(-1-i), 0)
	}
	// frames appends frames below node at down to depth total, ending in native and, for a third of the
	// stacks, kernel frames (a call into libc and a system call).
	frames := func(at int32, total int) int32 {
		kernel := 0
		if rng.IntN(3) == 0 {
			kernel = 2 + rng.IntN(7)
		}
		native := rng.IntN(3)
		for d := int(s.depth[at]) + 1; d <= total; d++ {
			k := main
			switch {
			case d > total-kernel:
				k = kindKernel
			case d > total-kernel-native:
				k = kindNative
			}
			at = addNode(at, vocab.draw(rng, k), d)
		}
		return at
	}
	seeds := min(n, 16)
	for len(s.stacks) < n {
		mark := len(s.parent)
		var leaf int32
		if len(s.stacks) < seeds {
			total := shape.DepthMin + rng.IntN(shape.DepthMax-shape.DepthMin+1)
			leaf = frames(roots[rng.IntN(len(roots))], total)
		} else {
			from := s.stacks[rng.IntN(len(s.stacks))]
			fd := int(s.depth[from])
			// A depth near the earlier stack's, reflected at the bounds so that depths spread over the
			// whole range instead of piling up at its ends.
			total := fd + rng.IntN(9) - 4
			if total < shape.DepthMin {
				total = min(shape.DepthMax, 2*shape.DepthMin-total)
			}
			if total > shape.DepthMax {
				total = max(shape.DepthMin, 2*shape.DepthMax-total)
			}
			// Keep the prefix up to a few frames above the end of the shorter of the two stacks
			// (geometric), and never inside the native and kernel tail of the earlier stack.
			keep := min(fd, total-1)
			for keep > 1 && rng.IntN(3) != 0 {
				keep--
			}
			at := from
			for int(s.depth[at]) > keep {
				at = s.parent[at]
			}
			for s.depth[at] > 1 && vocab.kind(s.frame[at]) != main {
				at = s.parent[at]
			}
			leaf = frames(at, total)
		}
		buf = s.appendText(buf[:0], leaf)
		h := xxhash.Sum64(buf)
		if _, dup := seen[h]; dup {
			s.parent, s.frame, s.depth = s.parent[:mark], s.frame[:mark], s.depth[:mark]
			continue
		}
		seen[h] = struct{}{}
		s.stacks = append(s.stacks, leaf)
		s.hashes = append(s.hashes, h)
	}
	if tail := uint64(n - shape.Hot); tail > 0 {
		s.tailMul = 2654435761 % tail
		for gcd(s.tailMul, tail) != 1 || s.tailMul == 0 {
			s.tailMul = (s.tailMul + 1) % tail
		}
		s.tailAdd = seed % tail
	}
	return s
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// appendText appends the text of the stack ending at node: "comm;frame;…;leaf".
func (s *treeService) appendText(b []byte, node int32) []byte {
	var path [256]int32
	n := 0
	for at := node; at >= 0; at = s.parent[at] {
		path[n] = s.frame[at]
		n++
	}
	for i := n - 1; i >= 0; i-- {
		f := path[i]
		if f < 0 {
			b = append(b, s.comms[-1-f]...)
			continue
		}
		b = append(b, ';')
		b = append(b, s.vocab.names[f]...)
	}
	return b
}

// stackText returns the text of stack i.
func (s *treeService) stackText(i int) string { return string(s.appendText(nil, s.stacks[i])) }

// profileStacks calls add for every stack of the profile of host at step (the interval's number since the
// epoch) with its count: the hot stacks, ranked, with counts falling as a Zipf law of exponent 1.1 (jittered
// per host and step), then this profile's window of the tail with counts of 1 to 3. The window of the k-th
// profile of the fleet (k = step×hosts + host) starts where the previous one ended, so consecutive profiles
// cover the tail in turn.
func (s *treeService) profileStacks(host int, step int64, add func(stack int, count uint32)) {
	rng := rand.New(rand.NewPCG(s.seed^uint64(host)<<20, uint64(step)))
	for r := range s.shape.Hot {
		c := 1 + int(4000*(0.5+rng.Float64())/math.Pow(float64(r+1), 1.1))
		add(r, uint32(c))
	}
	tail := uint64(s.shape.Distinct - s.shape.Hot)
	per := uint64(s.shape.PerProfile - s.shape.Hot)
	if tail == 0 || per == 0 {
		return
	}
	k := uint64(step)*uint64(s.hosts) + uint64(host)
	first := (k % tail) * (per % tail) % tail // (k×per) mod tail without overflow
	for j := range per {
		p := (first + j) % tail
		idx := (p*s.tailMul%tail + s.tailAdd) % tail
		add(s.shape.Hot+int(idx), uint32(1+rng.IntN(3)))
	}
}

// distinctPerDay is how many distinct stacks the service's profiles of one day hold, given the profiles a
// host sends per day.
func (s *treeService) distinctPerDay(interval time.Duration) int {
	profiles := s.hosts * int(24*time.Hour/interval)
	return min(s.shape.Distinct, s.shape.Hot+profiles*(s.shape.PerProfile-s.shape.Hot))
}
