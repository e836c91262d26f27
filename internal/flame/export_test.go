package flame

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
)

func TestWritePprof(t *testing.T) {
	b := build([]sample{
		{"p;a;b", 3, false}, {"p;a;c", 2, false}, {"p;a", 1, false}, {"q;b;b", 4, false},
		{"p;zzz", 9, true}, // baseline only: not exported
	})
	start := time.Unix(1700000000, 0)
	var buf bytes.Buffer
	if err := b.WritePprof(&buf, start, time.Minute); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(buf.Bytes(), []byte{0x1f, 0x8b}) {
		t.Errorf("output is not gzipped")
	}
	p, err := profile.Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CheckValid(); err != nil {
		t.Fatal(err)
	}
	if len(p.SampleType) != 1 || p.SampleType[0].Type != "samples" || p.SampleType[0].Unit != "count" {
		t.Errorf("sample types %v", p.SampleType)
	}
	if p.TimeNanos != start.UnixNano() || p.DurationNanos != int64(time.Minute) {
		t.Errorf("time %d duration %d", p.TimeNanos, p.DurationNanos)
	}
	// One function and one location per frame name: p a b c q.
	if len(p.Function) != 5 || len(p.Location) != 5 {
		t.Errorf("%d functions, %d locations, want 5 each", len(p.Function), len(p.Location))
	}
	stacks := map[string]int64{}
	var total int64
	for _, s := range p.Sample {
		var names []string
		for _, loc := range s.Location {
			if len(loc.Line) != 1 {
				t.Fatalf("location %d has %d lines", loc.ID, len(loc.Line))
			}
			names = append(names, loc.Line[0].Function.Name)
		}
		stacks[strings.Join(names, ";")] += s.Value[0]
		total += s.Value[0]
	}
	if total != int64(b.Total()) {
		t.Errorf("pprof total %d, want %d", total, b.Total())
	}
	// Leaf first.
	want := map[string]int64{"b;a;p": 3, "c;a;p": 2, "a;p": 1, "b;b;q": 4}
	if !reflect.DeepEqual(stacks, want) {
		t.Errorf("pprof stacks %v, want %v", stacks, want)
	}

	big := &Builder{}
	big.Add("p", math.MaxInt64+1)
	if err := big.WritePprof(&buf, time.Time{}, 0); !errors.Is(err, errCountRange) {
		t.Errorf("count above MaxInt64: err %v", err)
	}
}

// speedscopeFile is the part of the speedscope format that the test reads.
type speedscopeFile struct {
	Schema             string `json:"$schema"`
	Name               string `json:"name"`
	ActiveProfileIndex int    `json:"activeProfileIndex"`
	Shared             struct {
		Frames []struct {
			Name string `json:"name"`
		} `json:"frames"`
	} `json:"shared"`
	Profiles []struct {
		Type       string    `json:"type"`
		Name       string    `json:"name"`
		Unit       string    `json:"unit"`
		StartValue uint64    `json:"startValue"`
		EndValue   uint64    `json:"endValue"`
		Samples    [][]int   `json:"samples"`
		Weights    []float64 `json:"weights"`
	} `json:"profiles"`
}

func TestWriteSpeedscope(t *testing.T) {
	b := build([]sample{
		{"p;a;b", 3, false}, {"p;a;c", 2, false}, {"p;a", 1, false}, {`q;"quoted"\;b`, 4, false},
		{"p;zzz", 9, true},
	})
	var buf bytes.Buffer
	if err := b.WriteSpeedscope(&buf, `svc "x"`); err != nil {
		t.Fatal(err)
	}
	var f speedscopeFile
	if err := json.Unmarshal(buf.Bytes(), &f); err != nil {
		t.Fatalf("invalid JSON: %v\n%s", err, buf.String())
	}
	if f.Schema != "https://www.speedscope.app/file-format-schema.json" || f.Name != `svc "x"` || f.ActiveProfileIndex != 0 {
		t.Errorf("header %q %q %d", f.Schema, f.Name, f.ActiveProfileIndex)
	}
	if len(f.Profiles) != 1 {
		t.Fatalf("%d profiles", len(f.Profiles))
	}
	pr := f.Profiles[0]
	if pr.Type != "sampled" || pr.Unit != "none" || pr.Name != `svc "x"` || pr.StartValue != 0 || pr.EndValue != b.Total() {
		t.Errorf("profile header %+v", pr)
	}
	if len(pr.Samples) != len(pr.Weights) || len(pr.Samples) != 4 {
		t.Fatalf("%d samples, %d weights, want 4", len(pr.Samples), len(pr.Weights))
	}
	names := map[string]bool{}
	for _, fr := range f.Shared.Frames {
		if names[fr.Name] {
			t.Errorf("frame %q twice", fr.Name)
		}
		names[fr.Name] = true
	}
	if len(names) != 6 { // p a b c q "quoted"\ ... b is shared
		t.Errorf("frames %v", f.Shared.Frames)
	}
	got := map[string]float64{}
	var total float64
	for i, s := range pr.Samples {
		var path []string
		for _, idx := range s {
			if idx < 0 || idx >= len(f.Shared.Frames) {
				t.Fatalf("frame index %d out of range", idx)
			}
			path = append(path, f.Shared.Frames[idx].Name)
		}
		got[strings.Join(path, ";")] = pr.Weights[i]
		total += pr.Weights[i]
	}
	want := map[string]float64{"p;a": 1, "p;a;b": 3, "p;a;c": 2, `q;"quoted"\;b`: 4}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("samples %v, want %v", got, want)
	}
	if total != float64(b.Total()) {
		t.Errorf("weights sum %v, want %d", total, b.Total())
	}
}

func TestExportsEmpty(t *testing.T) {
	b := &Builder{}
	var buf bytes.Buffer
	if err := b.WriteFolded(&buf); err != nil || buf.Len() != 0 {
		t.Errorf("folded %q %v", buf.String(), err)
	}
	buf.Reset()
	if err := b.WriteSpeedscope(&buf, "x"); err != nil || !json.Valid(buf.Bytes()) {
		t.Errorf("speedscope %q %v", buf.String(), err)
	}
	buf.Reset()
	if err := b.WritePprof(&buf, time.Time{}, 0); err != nil {
		t.Fatal(err)
	}
	if p, err := profile.Parse(&buf); err != nil || len(p.Sample) != 0 {
		t.Errorf("pprof %v %v", p, err)
	}
}

// errWriter fails every write.
type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestExportWriteErrors(t *testing.T) {
	b := build([]sample{{"p;a", 1, false}})
	if err := b.WriteFolded(errWriter{}); err == nil {
		t.Error("WriteFolded ignored a write error")
	}
	if err := b.WriteSpeedscope(errWriter{}, "x"); err == nil {
		t.Error("WriteSpeedscope ignored a write error")
	}
	if err := b.WritePprof(errWriter{}, time.Time{}, 0); err == nil {
		t.Error("WritePprof ignored a write error")
	}
}

func FuzzParseFolded(f *testing.F) {
	for _, seed := range []string{
		"p;a;b 3\np;a;c 2\np;a 1\nq;x 4\n",
		"p;a 1\r\n\r\n  p;a\t2 \n",
		"p;;x 1\np; 2\n;p 3\n",
		"java;Foo.bar(int x) 7\n",
		"p 18446744073709551615\n",
		"p;f;g;f;g 2\np;f 1\n",
		"a 1\na;b 2\na;b;c 3\nab 4\na-b 5\n",
		"x\x00y;\xff\xfe 9\n",
		"p;a x\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		b, err := ParseFolded(strings.NewReader(in))
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := b.WriteFolded(&out); err != nil {
			t.Fatal(err)
		}
		if want := referenceFolded(in); out.String() != want {
			t.Fatalf("folded output\n%q\nwant\n%q", out.String(), want)
		}
		// The same stacks merged in batch mode give the same result.
		bb := &Builder{batching: true}
		for _, line := range strings.Split(in, "\n") {
			if line = strings.TrimSpace(line); line != "" {
				i := strings.LastIndexAny(line, " \t")
				count, _ := strconv.ParseUint(line[i+1:], 10, 64)
				bb.Add(strings.TrimRight(line[:i], " \t"), count)
			}
		}
		var outBatch bytes.Buffer
		if err := bb.WriteFolded(&outBatch); err != nil {
			t.Fatal(err)
		}
		if outBatch.String() != out.String() {
			t.Fatalf("batch mode folded output\n%q\nwant\n%q", outBatch.String(), out.String())
		}
		if render(bb.Tree(3)) != render(b.Tree(3)) {
			t.Fatalf("batch mode tree differs")
		}
		b2, err := ParseFolded(bytes.NewReader(out.Bytes()))
		if err != nil {
			t.Fatalf("re-parsing our own output: %v\n%q", err, out.String())
		}
		if b2.Total() != b.Total() || b2.Nodes() != b.Nodes() {
			t.Fatalf("round trip: total/nodes %d/%d, want %d/%d", b2.Total(), b2.Nodes(), b.Total(), b.Nodes())
		}
		var out2 bytes.Buffer
		if err := b2.WriteFolded(&out2); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), out2.Bytes()) {
			t.Fatalf("export not stable:\n%q\n%q", out.String(), out2.String())
		}
		for _, limit := range []int{0, 3} {
			tr := b.Tree(limit)
			checkTree(t, tr, limit)
			if tr.Value != b.Total() {
				t.Fatalf("Tree(%d) root %d, total %d", limit, tr.Value, b.Total())
			}
			if render(tr) != render(b2.Tree(limit)) {
				t.Fatalf("Tree(%d) differs after the round trip", limit)
			}
		}
		for _, fn := range b.TopFunctions("total", 0) {
			if fn.Total > b.Total() || fn.Self > fn.Total {
				t.Fatalf("function %+v, total %d", fn, b.Total())
			}
		}
		var sp bytes.Buffer
		if err := b.WriteSpeedscope(&sp, in); err != nil || !json.Valid(sp.Bytes()) {
			t.Fatalf("speedscope: %v valid=%v", err, json.Valid(sp.Bytes()))
		}
	})
}

// referenceFolded is a naive model of ParseFolded followed by WriteFolded
// for input that ParseFolded accepts: sum the counts of each stack, then
// print the non-zero ones sorted frame by frame.
func referenceFolded(in string) string {
	counts := map[string]uint64{}
	for _, line := range strings.Split(in, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		i := strings.LastIndexAny(line, " \t")
		count, _ := strconv.ParseUint(line[i+1:], 10, 64)
		counts[strings.TrimRight(line[:i], " \t")] += count
	}
	var stacks [][]string
	for k, c := range counts {
		if c > 0 {
			stacks = append(stacks, strings.Split(k, ";"))
		}
	}
	slices.SortFunc(stacks, slicesCompare)
	var sb strings.Builder
	for _, k := range stacks {
		s := strings.Join(k, ";")
		sb.WriteString(s + " " + strconv.FormatUint(counts[s], 10) + "\n")
	}
	return sb.String()
}

// TestExportsFlushPending exports a Builder whose last stacks, with new frame
// names, are still queued for a batch.
func TestExportsFlushPending(t *testing.T) {
	b := &Builder{batching: true}
	b.Add("p;a", 1)
	b.Add("q;b;c", 2)
	if len(b.pending) == 0 {
		t.Fatal("stacks were not queued")
	}
	var buf bytes.Buffer
	if err := b.WriteSpeedscope(&buf, "x"); err != nil || !json.Valid(buf.Bytes()) {
		t.Fatalf("speedscope: %v", err)
	}
	buf.Reset()
	b.Add("r", 3)
	if err := b.WritePprof(&buf, time.Time{}, 0); err != nil {
		t.Fatal(err)
	}
	p, err := profile.Parse(&buf)
	if err != nil || len(p.Sample) != 3 || len(p.Function) != 6 {
		t.Fatalf("pprof: %v, %d samples, %d functions", err, len(p.Sample), len(p.Function))
	}
	b.Add("s;t", 4)
	if got := b.TopFunctions("total", 1); !reflect.DeepEqual(got, []Function{{"t", 4, 4}}) {
		t.Errorf("top %v", got)
	}
	b.Add("u", 5)
	if n := b.Focus([]string{"u"}, 0); n == nil || n.Value != 5 {
		t.Errorf("focus %v", n)
	}
	b.Add("v", 6)
	if b.Nodes() != 11 {
		t.Errorf("nodes %d", b.Nodes())
	}
}
