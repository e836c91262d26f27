package profile

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flamestream/flamestream/internal/demo"
)

// syntheticProfile returns a profile with application metadata enabled and
// the given number of lines, each a distinct stack of 20 to 60 frames drawn
// from a pool of frame names as long as real ones, spread over a few
// containers.
func syntheticProfile(lines int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	// Frame names of the real profile average 35 bytes; these average 36.
	pool := make([]string, 3000)
	for i := range pool {
		switch i % 4 {
		case 0:
			pool[i] = fmt.Sprintf("app.handler.process_%d (/app/module%d.py:%d)_[p]", i, i%50, 10+i%400)
		case 1:
			pool[i] = fmt.Sprintf("com.example.Service%d.handleRequest_[j]", i)
		case 2:
			pool[i] = fmt.Sprintf("kernel_function_%d_[k]", i)
		default:
			pool[i] = fmt.Sprintf("std::vector<Item%d>::push_back", i)
		}
	}
	comms := []string{"python", "java", "clickhouse-serv", "gunicorn: worke", "node"}
	containers := []string{"", "web", "k8s_api_api-7f9c8d6b5-x2x9k_default_uid_0", "ecs-task-3-worker-c0ffee", "db"}
	var b strings.Builder
	b.WriteString(`#{"metadata": {"hostname": "bench", "agent_version": "1.35.0"}, "application_metadata_enabled": true}` + "\n")
	for i := range lines {
		fmt.Fprintf(&b, "%d;%s;%s", i%7, containers[i%len(containers)], comms[i%len(comms)])
		depth := 20 + r.IntN(41)
		for d := range depth {
			b.WriteByte(';')
			if d == depth-1 {
				// The leaf makes every stack distinct.
				fmt.Fprintf(&b, "leaf_%d_[k]", i)
				continue
			}
			b.WriteString(pool[(d*97+r.IntN(8))%len(pool)])
		}
		fmt.Fprintf(&b, " %d\n", 1+r.IntN(20))
	}
	return []byte(b.String())
}

type benchProfile struct {
	name string
	text []byte
}

func benchProfiles(b *testing.B) []benchProfile {
	return []benchProfile{
		{"real", readRealProfile(b)},
		{"synthetic", syntheticProfile(5000)},
		{"2000", bigProfile()},
	}
}

// bigProfile is the pipeline bench's big shape (internal/soak.PipelineShapes): 2,000 lines of depth 4–16
// drawn from 5,000 stacks, about 845 KB of text.
func bigProfile() []byte {
	fleet := demo.NewFleet(1, "bench", demo.Shape{Stacks: 5000, Lines: 2000, MinDepth: 4, MaxDepth: 16})
	return fleet.Profile(rand.New(rand.NewPCG(3, 4)), "host-01", "m5.xlarge")
}

func countLines(b *testing.B, text []byte) int {
	n := 0
	if _, err := Parse(text, func(*Line) error { n++; return nil }); err != nil {
		b.Fatal(err)
	}
	return n
}

func BenchmarkParse(b *testing.B) {
	for _, p := range benchProfiles(b) {
		b.Run(p.name, func(b *testing.B) {
			lines := countLines(b, p.text)
			var sink uint64
			b.SetBytes(int64(len(p.text)))
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				if _, err := Parse(p.text, func(l *Line) error { sink += l.Count; return nil }); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu0)
			b.ReportMetric(float64(lines*b.N)/b.Elapsed().Seconds(), "lines/s")
			_ = sink
		})
	}
}

func BenchmarkParseAggregate(b *testing.B) {
	for _, p := range benchProfiles(b) {
		b.Run(p.name, func(b *testing.B) {
			lines := countLines(b, p.text)
			var a Aggregate
			add := a.Add
			b.SetBytes(int64(len(p.text)))
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				a.Reset()
				if _, err := Parse(p.text, add); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu0)
			b.ReportMetric(float64(lines*b.N)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the process's CPU time per op since cpu0 (GC included): on a shared machine it varies
// much less than ns/op, which counts the time other processes held the cores.
func reportCPU(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

func BenchmarkContainerInfo(b *testing.B) {
	names := []string{
		"k8s_api_api-7f9c8d6b5-x2x9k_default_0b1c2d3e-1111-2222-3333-444455556666_0",
		"ecs-my-task-12-web-server-e0a1b2c3d4e5f6a7b8c9",
		"gprofiler-ps-webapp",
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, n := range names {
			ContainerInfo(n)
		}
	}
}

func BenchmarkParseHeader(b *testing.B) {
	first, _, _ := strings.Cut(string(readRealProfile(b)), "\n")
	line := []byte(first)
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseHeader(line); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSyntheticProfileShape(t *testing.T) {
	text := syntheticProfile(2000)
	var frames, frameBytes, lines int
	minDepth, maxDepth := 1<<30, 0
	if _, err := Parse(text, func(l *Line) error {
		fs := SplitStack(string(l.Stack))
		d := len(fs) - 1 // without the process name
		minDepth, maxDepth = min(minDepth, d), max(maxDepth, d)
		for _, f := range fs[1:] {
			frames++
			frameBytes += len(f)
		}
		lines++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if lines != 2000 || minDepth != 20 || maxDepth != 60 {
		t.Errorf("lines %d, depth %d..%d; want 2000, 20..60", lines, minDepth, maxDepth)
	}
	t.Logf("average frame %d bytes, average line %d bytes", frameBytes/frames, len(text)/lines)
}

// BenchmarkCheck is ingest's check of an upload's profile before it is accepted.
func BenchmarkCheck(b *testing.B) {
	for _, p := range benchProfiles(b) {
		b.Run(p.name, func(b *testing.B) {
			b.SetBytes(int64(len(p.text)))
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				if _, err := Check(p.text, FormatV2); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu0)
		})
	}
}
