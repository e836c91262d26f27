package procprio

import (
	"encoding/json"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"testing"
)

// The tests change the nice value of a child process (this test binary run again), never of the test
// process itself: a process without CAP_SYS_NICE could not undo it.
const childEnv = "PROCPRIO_TEST_CHILD"

type childReport struct {
	Before, AfterSet, NewThreads, AfterLower map[int]int
	CanLower                                 bool
	LowerErr                                 string
}

// TestChild is the child's work, run only when childEnv is set: it raises the nice value of the process,
// starts new threads, lowers it back when it may, and reports every thread's value at each step.
func TestChild(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("run by TestSetReachesEveryThreadAndThoseStartedLater")
	}
	var r childReport
	var err error
	must := func(m map[int]int, err error) map[int]int {
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	r.Before = must(Get())
	if err = Set(7); err != nil {
		t.Fatal(err)
	}
	r.AfterSet = must(Get())
	// Threads started from now on: each goroutine locked to its thread while others start.
	var wg, locked sync.WaitGroup
	release := make(chan struct{})
	for range 8 {
		locked.Add(1)
		wg.Go(func() {
			runtime.LockOSThread()
			locked.Done()
			<-release
		})
	}
	locked.Wait()
	r.NewThreads = must(Get())
	close(release)
	wg.Wait()
	r.CanLower = CanLower()
	if r.CanLower {
		if err := Set(0); err != nil {
			r.LowerErr = err.Error()
		}
		r.AfterLower = must(Get())
	}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		t.Fatal(err)
	}
}

// TestSetReachesEveryThreadAndThoseStartedLater: after Set(7) every thread of the process is at nice 7,
// the threads started afterwards too; where the process may lower it (root here), Set(0) brings all back.
func TestSetReachesEveryThreadAndThoseStartedLater(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var r childReport
	// The report is the first line the child writes (go test adds PASS after it).
	line := out
	for i, b := range out {
		if b == '\n' {
			line = out[:i]
			break
		}
	}
	if err := json.Unmarshal(line, &r); err != nil {
		t.Fatalf("child report: %v\n%s", err, out)
	}
	for tid, n := range r.Before {
		if n != 0 {
			t.Fatalf("thread %d started at nice %d, want 0 (the test runs at nice 0)", tid, n)
		}
	}
	// Eight goroutines each locked to a thread, and the test's own, need more threads than the process had
	// (an idle one may be reused, so not necessarily eight more).
	started := 0
	for tid := range r.NewThreads {
		if _, ok := r.AfterSet[tid]; !ok {
			started++
		}
	}
	if started == 0 {
		t.Errorf("no thread started after Set (%d threads before, %d after): nothing checked of new threads", len(r.AfterSet), len(r.NewThreads))
	}
	for step, m := range map[string]map[int]int{"after Set(7)": r.AfterSet, "threads started later": r.NewThreads} {
		for tid, n := range m {
			if n != 7 {
				t.Errorf("%s: thread %d at nice %d, want 7", step, tid, n)
			}
		}
	}
	if !r.CanLower {
		t.Logf("this process may not lower its nice value (no CAP_SYS_NICE, RLIMIT_NICE < 20): not checked")
		return
	}
	if r.LowerErr != "" {
		t.Fatalf("Set(0) with CanLower true: %s", r.LowerErr)
	}
	for tid, n := range r.AfterLower {
		if n != 0 {
			t.Errorf("after Set(0): thread %d at nice %d", tid, n)
		}
	}
}
