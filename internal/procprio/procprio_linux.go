package procprio

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Set gives every thread of the process the nice value n (-20 highest … 19 lowest). A thread started later
// inherits the value of the thread that starts it, so after Set every thread has n. Raising the value is
// always allowed; lowering it needs CAP_SYS_NICE or a high enough RLIMIT_NICE (see CanLower).
func Set(n int) error {
	// A thread started while the list is read may have inherited the old value: go round until a pass
	// finds every thread at n.
	for range 10 {
		tids, err := threads()
		if err != nil {
			return err
		}
		changed := false
		for _, tid := range tids {
			cur, err := get(tid)
			if errors.Is(err, unix.ESRCH) {
				continue // ended meanwhile
			}
			if err != nil {
				return err
			}
			if cur == n {
				continue
			}
			if err := unix.Setpriority(unix.PRIO_PROCESS, tid, n); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("set nice %d of thread %d: %w", n, tid, err)
			}
			changed = true
		}
		if !changed {
			return nil
		}
	}
	return fmt.Errorf("set nice %d: threads kept starting with another value", n)
}

// Get returns the nice value of every thread of the process, by thread id.
func Get() (map[int]int, error) {
	tids, err := threads()
	if err != nil {
		return nil, err
	}
	out := make(map[int]int, len(tids))
	for _, tid := range tids {
		n, err := get(tid)
		if errors.Is(err, unix.ESRCH) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[tid] = n
	}
	return out, nil
}

// CanLower reports whether the process may set its threads' nice value back down to 0 after raising it:
// with CAP_SYS_NICE, or when RLIMIT_NICE allows nice 0 (a limit of 20 or more).
func CanLower() bool {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NICE, &lim); err == nil && lim.Cur >= 20 {
		return true
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<unix.CAP_SYS_NICE) != 0
		}
	}
	return false
}

// get returns the nice value of thread tid. The system call answers 20 - nice (1 … 40), never negative.
func get(tid int) (int, error) {
	p, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil {
		return 0, err
	}
	return 20 - p, nil
}

// threads lists the thread ids of the process.
func threads() ([]int, error) {
	entries, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, fmt.Errorf("list threads: %w", err)
	}
	tids := make([]int, 0, len(entries))
	for _, e := range entries {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}
