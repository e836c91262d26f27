package query

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/flamestream/flamestream/internal/flame"
	"github.com/flamestream/flamestream/internal/profile"
)

// Runtime and process views. A read of stacks may drop runtimes and processes before its tree or table is
// built (parameters runtimes_off, process and process_not on /flamegraph, /top, /diff and /export):
//
//   - runtimes_off=kernel,java drops the frames of those runtimes from every stack and merges the stacks
//     that become equal: their samples stay, and go to the nearest caller of another runtime (the process
//     frame when none is left). That is what Parca's "hide binaries" does and what a Pyroscope user who
//     hides kernel frames expects: the flame graph's total (the CPU the service used) does not change,
//     only where it shows: a Java method's time in the kernel on its behalf becomes that method's self
//     time. Dropping the whole stacks instead would make the service look idle whenever it is in the
//     kernel, and a user reading "Python 40 %" would no longer compare with the host's CPU.
//   - process=NAME (repeatable) keeps only the stacks whose first frame (the process, comm) is one of
//     them; process_not=NAME drops those stacks: that changes the totals, as a host filter does.
//
// Both change self counts, merge nodes and change totals, so they are applied on the server, before the
// tree is truncated to its node budget (the browser could not merge what it never received). Hiding nodes
// under a weight threshold changes neither totals nor selfs: the web UI does it in the renderer.

// runtimeSuffixes maps the runtime names of runtimes_off onto the frame suffixes gProfiler writes
// (see profile.Runtime and ../shared/contracts/agent-api.md). "native" is a frame without a suffix:
// C, C++, Rust and Go code (gProfiler's perf profiles of Go programs carry no suffix). Any other name of
// 1 to 16 letters or digits is taken as a suffix itself ("s" drops frames ending in "_[s]").
var runtimeSuffixes = map[string][]string{
	"kernel":     {"k"},
	"native":     {""},
	"python":     {"p"},
	"python_ext": {"pe", "pn"},
	"java":       {"j", "i"},
	"ruby":       {"rb"},
	"php":        {"php"},
	"dotnet":     {"net"},
	"perl":       {"pl"},
	"node":       {"js"},
	"erlang":     {"beam"},
}

// maxProcesses bounds the process names of one request.
const maxProcesses = 1000

// stackShape is what a read drops from its stacks before building (see the comment above).
type stackShape struct {
	dropSuffix  map[string]bool // runtime suffixes whose frames go ("" for native frames)
	runtimesOff []string        // the names asked for, sorted (for the reply)
	onlyProcess map[string]bool // nil: every process
	dropProcess map[string]bool
}

// active reports whether the shape changes anything.
func (sh stackShape) active() bool {
	return len(sh.dropSuffix) > 0 || sh.onlyProcess != nil || len(sh.dropProcess) > 0
}

// dropsProcesses reports whether the shape drops whole stacks (process, process_not), which changes the
// totals: turning runtimes off moves samples to callers and leaves every total as it is, so a timeline
// without process parameters is the plain one.
func (sh stackShape) dropsProcesses() bool {
	return sh.onlyProcess != nil || len(sh.dropProcess) > 0
}

// shapedTimeline serves a timeline with process parameters: the stacks of the range, read as a top table
// reads them, say which stacks the shape drops (by their first frame); then one scan of the range grouped
// by bucket sums the samples of the others (see bucketTotals), the dropped stacks going to ClickHouse as an
// external table.
func (s *Server) shapedTimeline(w http.ResponseWriter, rd *reading, sh stackShape, step int64) error {
	sums, err := s.sums(rd.ctx, rd.sel)
	if err != nil {
		return err
	}
	v, leaves, release, err := s.viewLeaves(rd.ctx, rd.sel.Service, sums)
	if err != nil {
		return err
	}
	var drop proto.ColUInt64
	kept := 0
	seen := map[uint64]bool{}
	keep := map[uint32]bool{} // by leaf
	var frames []string
	for j, sg := range sums {
		for k, x := range sg.sums {
			if seen[x.stack] {
				continue
			}
			seen[x.stack] = true
			leaf := leaves[j][k]
			ok, known := keep[leaf]
			if !known {
				frames = v.Frames(leaf, frames[:0])
				_, ok = sh.apply(frames, nil)
				keep[leaf] = ok
			}
			if ok {
				kept++
			} else {
				drop.Append(x.stack)
			}
		}
	}
	release()
	points := [][2]uint64{}
	if kept > 0 {
		first, to := rd.sel.From.Unix()/step, rd.sel.To.Unix()
		if rd.sel.To.After(time.Unix(to, 0)) {
			to++ // a sub-second end: its second has rows too
		}
		n := int((to+step-1)/step - first)
		per, err := s.bucketTotals(rd.ctx, rd.sel, rd.rollups, step, n, &drop)
		if err != nil {
			return err
		}
		for i, c := range per {
			if c[0] > 0 {
				points = append(points, [2]uint64{uint64((first + int64(i)) * step), uint64(c[0])})
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"step": step, "points": points})
	return nil
}

// parseStackShape reads runtimes_off (comma-separated or repeated), process and process_not.
func parseStackShape(q url.Values) (stackShape, error) {
	var sh stackShape
	for _, v := range q["runtimes_off"] {
		for _, name := range strings.Split(v, ",") {
			name = strings.TrimSpace(name)
			if name == "" {
				continue
			}
			sfx, ok := runtimeSuffixes[name]
			if !ok {
				if profile.Runtime("x_["+name+"]") != name {
					return sh, badRequest("bad runtimes_off", fmt.Errorf("%q is neither a runtime (%s) nor a frame suffix of 1 to 16 letters or digits", name, runtimeNames()))
				}
				sfx = []string{name}
			}
			if sh.dropSuffix == nil {
				sh.dropSuffix = map[string]bool{}
			}
			for _, s := range sfx {
				sh.dropSuffix[s] = true
			}
			if !slices.Contains(sh.runtimesOff, name) {
				sh.runtimesOff = append(sh.runtimesOff, name)
			}
		}
	}
	sort.Strings(sh.runtimesOff)
	if len(q["process"])+len(q["process_not"]) > maxProcesses {
		return sh, badRequest("too many processes", fmt.Errorf("process and process_not: at most %d names", maxProcesses))
	}
	for _, p := range q["process"] {
		if p == "" {
			return sh, badRequest("bad process", errors.New("empty process name"))
		}
		if sh.onlyProcess == nil {
			sh.onlyProcess = map[string]bool{}
		}
		sh.onlyProcess[p] = true
	}
	for _, p := range q["process_not"] {
		if p == "" {
			return sh, badRequest("bad process_not", errors.New("empty process name"))
		}
		if sh.dropProcess == nil {
			sh.dropProcess = map[string]bool{}
		}
		sh.dropProcess[p] = true
	}
	return sh, nil
}

func runtimeNames() string {
	names := make([]string, 0, len(runtimeSuffixes))
	for k := range runtimeSuffixes {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// apply returns the frames of a stack (process first) with the shape applied, reusing dst, and false when
// the whole stack is dropped.
func (sh stackShape) apply(frames, dst []string) ([]string, bool) {
	if len(frames) == 0 {
		return dst[:0], false
	}
	proc := frames[0]
	if sh.onlyProcess != nil && !sh.onlyProcess[proc] {
		return dst[:0], false
	}
	if sh.dropProcess[proc] {
		return dst[:0], false
	}
	dst = append(dst[:0], proc)
	for _, f := range frames[1:] {
		if len(sh.dropSuffix) > 0 && sh.dropSuffix[profile.Runtime(f)] {
			continue
		}
		dst = append(dst, f)
	}
	return dst, true
}

// stackCount is one distinct stack of a read with its counts on each side.
type stackCount struct {
	frames    []string
	cmp, base uint64
}

// stackCounts reads the stacks of a selection and, when base is given, of its baseline (which may be of
// another service), with their summed counts. It reads both sides' sums in one ClickHouse query and looks
// each side's stacks up in its own service's trie.
func (s *Server) stackCounts(ctx context.Context, sel Selection, base *Selection) ([]stackCount, error) {
	sels := []Selection{sel}
	if base != nil {
		sels = append(sels, *base)
	}
	segs, err := s.sums(ctx, sels...)
	if err != nil {
		return nil, err
	}
	var out []stackCount
	for i, svc := range sels {
		var mine []segmentSums
		for _, sg := range segs {
			if int(sg.side) == i {
				mine = append(mine, sg)
			}
		}
		if len(mine) == 0 {
			continue
		}
		v, leaves, release, err := s.viewLeaves(ctx, svc.Service, mine)
		if err != nil {
			return nil, err
		}
		out = leafStacks(v, mine, leaves, i == 1, out)
		release()
	}
	return out, nil
}

// leafStacks adds to out the stacks of segs (leaves[j][k] is the trie leaf of segs[j].sums[k]) with their
// net counts, on the baseline side when base is set. A stack of both sides may be in out twice, once with
// each side's count: the builder and the table sum by text and by function anyway.
func leafStacks(v *flame.View, segs []segmentSums, leaves [][]uint32, base bool, out []stackCount) []stackCount {
	perLeaf := map[uint32]int64{}
	for j, sg := range segs {
		for k, x := range sg.sums {
			perLeaf[leaves[j][k]] += sg.sign * x.sum
		}
	}
	for leaf, c := range perLeaf {
		if c <= 0 {
			continue // only rows written into a settled bucket while it was read (see view)
		}
		sc := stackCount{frames: v.Frames(leaf, nil)}
		if base {
			sc.base = uint64(c)
		} else {
			sc.cmp = uint64(c)
		}
		out = append(out, sc)
	}
	return out
}

// shapedGraph reads the stacks of a selection (and of a baseline) into a Builder with the shape applied.
func (s *Server) shapedGraph(ctx context.Context, sh stackShape, sel Selection, base *Selection) (*flame.Builder, error) {
	stacks, err := s.stackCounts(ctx, sel, base)
	if err != nil {
		return nil, err
	}
	return buildShaped(stacks, sh, base != nil), nil
}

// buildShaped merges stacks, shaped by sh, into a Builder (with their baseline counts when withBase).
func buildShaped(stacks []stackCount, sh stackShape, withBase bool) *flame.Builder {
	// Sorted stacks merge fastest into a Builder.
	texts := make([]string, 0, len(stacks))
	counts := make([][2]uint64, 0, len(stacks))
	var buf []string
	idx := map[string]int{}
	for _, st := range stacks {
		fr, ok := sh.apply(st.frames, buf)
		buf = fr
		if !ok {
			continue
		}
		key := strings.Join(fr, ";")
		if at, seen := idx[key]; seen {
			counts[at][0] += st.cmp
			counts[at][1] += st.base
			continue
		}
		idx[key] = len(texts)
		texts = append(texts, key)
		counts = append(counts, [2]uint64{st.cmp, st.base})
	}
	order := make([]int, len(texts))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return texts[order[a]] < texts[order[b]] })
	b := &flame.Builder{}
	for _, i := range order {
		b.Add(texts[i], counts[i][0])
		if withBase {
			b.AddBase(texts[i], counts[i][1])
		}
	}
	return b
}

// graphReader is what the flame graph, top, diff and export endpoints read a tree or a table from: a view of the
// service's trie, or a Builder when the stacks were reshaped or the sides are of two services.
type graphReader interface {
	Tree(maxNodes int) *flame.Node
	Focus(path []string, maxNodes int) *flame.Node
	TopFunctions(sortBy string, limit int) []flame.Function
	Total() uint64
	WriteFolded(w io.Writer) error
	WriteSpeedscope(w io.Writer, name string) error
	WritePprof(w io.Writer, start time.Time, duration time.Duration) error
}

// loadShaped is load with the runtime and process parameters of r applied (see stackShape), and a baseline
// that may be of another service. Without either it is load: the tree comes from the trie view directly.
func (s *Server) loadShaped(ctx context.Context, r *http.Request, sel Selection, base ...Selection) (graphReader, func(), error) {
	sh, err := parseStackShape(r.URL.Query())
	if err != nil {
		return nil, nil, err
	}
	cross := len(base) > 0 && base[0].Service != sel.Service
	if !sh.active() && !cross {
		v, release, err := s.load(ctx, sel, base...)
		if err != nil {
			return nil, nil, err
		}
		return v, release, nil
	}
	var bp *Selection
	if len(base) > 0 {
		bp = &base[0]
	}
	b, err := s.shapedGraph(ctx, sh, sel, bp)
	if err != nil {
		return nil, nil, err
	}
	return b, func() {}, nil
}

// baselineService sets the service of a diff's baseline from base_service (the comparison's service when
// absent), after checking that the caller may read it: authentication checked only `service`.
func baselineService(r *http.Request, base *Selection) error {
	v := r.URL.Query().Get("base_service")
	if v == "" {
		return nil
	}
	if p := principalOf(r.Context()); p.token != nil && !p.token.AllowsService(v) {
		return &Error{Status: http.StatusForbidden, Message: "token is not valid for the baseline service"}
	}
	base.Service = v
	return nil
}
