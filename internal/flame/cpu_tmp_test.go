package flame

import (
	"os"
	"syscall"
	"testing"
	"time"
)

func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestCPUTmp(t *testing.T) {
	if os.Getenv("FLAME_CPU") == "" {
		t.Skip()
	}
	var b testing.B
	benchInput(&b)
	for round := range 3 {
		for _, c := range []struct {
			name string
			in   []genStack
		}{{"sorted", benchSorted}, {"random", benchRandom}} {
			w, cpu := time.Now(), cpuNow()
			fb := &Builder{}
			for _, s := range c.in {
				fb.Add(s.stack, s.count)
			}
			fb.Tree(2048)
			t.Logf("round %d %s: wall %v cpu %v", round, c.name, time.Since(w), cpuNow()-cpu)
		}
	}
}
