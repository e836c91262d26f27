package soak

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// userHZ is the unit of the CPU times in /proc/PID/stat. The kernel reports them in USER_HZ, which is
// 100 on every Linux ABI Go supports (it is not the kernel's HZ), and Go has no sysconf without cgo.
const userHZ = 100

// cpuTicks returns utime+stime of /proc/PID/stat text: the CPU a process (all its threads) used, in ticks
// of 1/userHZ s. Children are not counted: the servers the pipeline bench measures do their work in their
// own threads.
func cpuTicks(stat string) (uint64, error) {
	// The command name (field 2) is in parentheses and may hold spaces and parentheses itself: the fields
	// that follow start after the last ')'.
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("proc stat: no command name")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("proc stat: %d fields after the command name", len(f))
	}
	u, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("proc stat utime: %w", err)
	}
	s, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("proc stat stime: %w", err)
	}
	return u + s, nil
}

// cpuMillis reads the CPU a process used so far, in milliseconds.
func cpuMillis(pid int) (float64, error) {
	if pid <= 0 {
		return 0, errors.New("no process")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	t, err := cpuTicks(string(b))
	if err != nil {
		return 0, fmt.Errorf("pid %d: %w", pid, err)
	}
	return float64(t) * 1000 / userHZ, nil
}

// cpuUse is the CPU a process used between two readings of the same pid.
type cpuUse struct {
	pid        int
	start, end float64 // milliseconds
	// restarted is set when the pid changed in between: what the earlier process used is lost.
	restarted bool
}

func (c cpuUse) millis() float64 {
	if c.restarted {
		return c.end // at least what the new process used
	}
	return max(c.end-c.start, 0)
}

// percentile returns the p-th percentile (0 < p ≤ 100) of xs by the nearest-rank method: the smallest
// value with at least p% of the values at or below it. xs is sorted in place; NaN when it is empty.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	slices.Sort(xs)
	rank := int(math.Ceil(p / 100 * float64(len(xs))))
	return xs[min(max(rank, 1), len(xs))-1]
}

// machineTicks returns the busy and total ticks of all CPUs from /proc/stat text (its "cpu " line):
// busy is every column but idle and iowait.
func machineTicks(stat string) (busy, total uint64, err error) {
	for _, line := range strings.Split(stat, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[0] != "cpu" {
			continue
		}
		for i, v := range f[1:] {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("proc stat cpu column %d: %w", i+1, err)
			}
			// guest and guest_nice (columns 9 and 10) are already counted in user and nice.
			if i >= 8 {
				break
			}
			total += n
			if i != 3 && i != 4 { // idle, iowait
				busy += n
			}
		}
		return busy, total, nil
	}
	return 0, 0, errors.New("proc stat: no cpu line")
}

// machineBusy reads the machine's busy CPU time so far, in milliseconds.
func machineBusy() (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	busy, _, err := machineTicks(string(b))
	return float64(busy) * 1000 / userHZ, err
}

// loadAverage returns the one-minute load average from /proc/loadavg (-1 when unreadable).
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}
