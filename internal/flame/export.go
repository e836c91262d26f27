package flame

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/google/pprof/profile"
)

// walk calls fn, in canonical order, for every unique stack of the
// comparison side (the stacks given to Add) with the frame ids of the stack,
// root first, and its count. The order is depth-first with children sorted
// by name, which is the lexicographic order of the stacks compared frame by
// frame; a stack comes before the longer stacks it is a prefix of. The
// slice passed to fn is reused between calls.
func (g *graph) walk(fn func(path []uint32, count uint64) error) error {
	d := g.derive()
	type item struct {
		n     uint32
		depth int
	}
	var stack []item
	var k []uint32
	pushKids := func(n uint32, depth int) {
		k = g.kidsOf(d, k[:0], n)
		for i := len(k) - 1; i >= 0; i-- {
			stack = append(stack, item{k[i], depth})
		}
	}
	pushKids(0, 0)
	path := make([]uint32, 0, 64)
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if d.value[it.n] == 0 {
			continue // baseline-only subtree
		}
		path = append(path[:it.depth], g.frameOf(it.n))
		if s := g.selfOf(it.n); s > 0 {
			if err := fn(path, s); err != nil {
				return err
			}
		}
		pushKids(it.n, it.depth+1)
	}
	return nil
}

// writeFolded writes the comparison side (see Builder.WriteFolded).
func (g *graph) writeFolded(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var line []byte
	err := g.walk(func(path []uint32, count uint64) error {
		line = line[:0]
		for i, f := range path {
			if i > 0 {
				line = append(line, ';')
			}
			line = append(line, g.names[f]...)
		}
		line = append(line, ' ')
		line = strconv.AppendUint(line, count, 10)
		line = append(line, '\n')
		_, err := bw.Write(line)
		return err
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

// maxFoldedLine is the longest line ParseFolded accepts.
const maxFoldedLine = 64 << 20

// ParseFolded reads stacks in the folded format, one "stack count" line per
// stack where the count is a decimal integer separated from the stack by
// the last space or tab of the line, and returns a Builder holding them on
// its comparison side. Blank lines are skipped, leading and trailing white
// space of a line is ignored, and a stack that occurs on several lines is
// summed. It fails on a line without a count or with an empty stack, and
// when the counts add up to more than a uint64 holds.
func ParseFolded(r io.Reader) (*Builder, error) {
	b := &Builder{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxFoldedLine)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		i := bytes.LastIndexAny(line, " \t")
		if i < 0 {
			return nil, fmt.Errorf("flame: folded line %d: missing count", lineNo)
		}
		count, err := strconv.ParseUint(string(line[i+1:]), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("flame: folded line %d: bad count: %w", lineNo, err)
		}
		stack := bytes.TrimRight(line[:i], " \t")
		if len(stack) == 0 {
			return nil, fmt.Errorf("flame: folded line %d: empty stack", lineNo)
		}
		if b.total+count < b.total {
			return nil, fmt.Errorf("flame: folded line %d: total count overflows uint64", lineNo)
		}
		b.Add(string(stack), count)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("flame: reading folded stacks: %w", err)
	}
	return b, nil
}

// speedscopeSchema is the $schema value of a speedscope file.
const speedscopeSchema = "https://www.speedscope.app/file-format-schema.json"

// writeSpeedscope writes the comparison side (see Builder.WriteSpeedscope).
func (g *graph) writeSpeedscope(w io.Writer, name string) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	jname, err := json.Marshal(name)
	if err != nil {
		return err
	}
	bw.WriteString(`{"$schema":"` + speedscopeSchema + `","exporter":"flamestream","name":`)
	bw.Write(jname)
	bw.WriteString(`,"activeProfileIndex":0,"profiles":[{"type":"sampled","name":`)
	bw.Write(jname)
	bw.WriteString(`,"unit":"none","startValue":0,"endValue":`)
	bw.WriteString(strconv.FormatUint(g.total, 10))
	bw.WriteString(`,"samples":[`)
	index := make([]int32, len(g.names)) // frame id -> speedscope index + 1
	var used []uint32                    // speedscope index -> frame id
	var weights []uint64
	var buf []byte
	err = g.walk(func(path []uint32, count uint64) error {
		buf = buf[:0]
		if len(weights) > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, '[')
		for i, f := range path {
			if index[f] == 0 {
				used = append(used, f)
				index[f] = int32(len(used))
			}
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = strconv.AppendInt(buf, int64(index[f]-1), 10)
		}
		buf = append(buf, ']')
		weights = append(weights, count)
		_, err := bw.Write(buf)
		return err
	})
	if err != nil {
		return err
	}
	bw.WriteString(`],"weights":[`)
	for i, c := range weights {
		buf = buf[:0]
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = strconv.AppendUint(buf, c, 10)
		bw.Write(buf)
	}
	bw.WriteString(`]}],"shared":{"frames":[`)
	for i, f := range used {
		if i > 0 {
			bw.WriteByte(',')
		}
		jf, err := json.Marshal(g.names[f])
		if err != nil {
			return err
		}
		bw.WriteString(`{"name":`)
		bw.Write(jf)
		bw.WriteByte('}')
	}
	bw.WriteString("]}}\n")
	return bw.Flush()
}

// errCountRange is returned by WritePprof for a count that pprof's int64
// values cannot hold.
var errCountRange = errors.New("flame: count does not fit in a pprof int64 value")

// writePprof writes the comparison side (see Builder.WritePprof).
func (g *graph) writePprof(w io.Writer, start time.Time, duration time.Duration) error {
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}},
		PeriodType: &profile.ValueType{Type: "samples", Unit: "count"},
		Period:     1,
	}
	if !start.IsZero() {
		p.TimeNanos = start.UnixNano()
	}
	p.DurationNanos = int64(duration)
	locs := make([]*profile.Location, len(g.names))
	var chunk []*profile.Location
	err := g.walk(func(path []uint32, count uint64) error {
		if count > math.MaxInt64 {
			return errCountRange
		}
		if len(chunk) < len(path) {
			chunk = make([]*profile.Location, max(len(path), 1<<16))
		}
		sl := chunk[:len(path):len(path)]
		chunk = chunk[len(path):]
		for i, f := range path {
			loc := locs[f]
			if loc == nil {
				fn := &profile.Function{
					ID:         uint64(len(p.Function) + 1),
					Name:       g.names[f],
					SystemName: g.names[f],
				}
				p.Function = append(p.Function, fn)
				loc = &profile.Location{
					ID:   uint64(len(p.Location) + 1),
					Line: []profile.Line{{Function: fn}},
				}
				p.Location = append(p.Location, loc)
				locs[f] = loc
			}
			sl[len(path)-1-i] = loc
		}
		p.Sample = append(p.Sample, &profile.Sample{Location: sl, Value: []int64{int64(count)}})
		return nil
	})
	if err != nil {
		return err
	}
	return p.Write(w)
}
