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
	// pids, for a group of processes, holds each one's CPU so far (milliseconds) instead of pid and
	// start/end (see groupMillis).
	pids map[int]float64
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

// pgGroup names the PostgreSQL processes the pipeline bench measures on the shared server: "postgres",
// the backends connected to the bench's own database (ingest's pool, the bench's token setup), and
// "postgres-shared", the server's auxiliary processes (WAL writer, checkpointer, background writer,
// autovacuum, the postmaster), which work for every database on the machine at once.
const (
	PostgresBackends = "postgres"
	PostgresShared   = "postgres-shared"
)

// pgProcessGroup says which group a process with the given /proc/PID/cmdline text belongs to: backends
// rename themselves "postgres: CLUSTER: USER DATABASE HOST(PORT) STATE" (Debian) or "postgres: USER
// DATABASE HOST(PORT) STATE", auxiliary processes "postgres: CLUSTER: walwriter" and the like, and the
// postmaster keeps its command line (…/bin/postgres -D …). It returns "" for other processes and for the
// backends of other databases.
func pgProcessGroup(cmdline, database string) string {
	cmdline = strings.TrimRight(strings.ReplaceAll(cmdline, "\x00", " "), " ")
	rest, ok := strings.CutPrefix(cmdline, "postgres: ")
	if !ok {
		if f := strings.Fields(cmdline); len(f) > 0 && strings.HasSuffix(f[0], "/postgres") {
			return PostgresShared
		}
		return ""
	}
	f := strings.Fields(rest)
	if len(f) > 0 && strings.HasSuffix(f[0], ":") {
		f = f[1:] // the cluster name
	}
	// A backend: USER DATABASE HOST(PORT)|[local] …
	if len(f) >= 3 && (strings.HasSuffix(f[2], ")") || f[2] == "[local]") {
		if f[1] == database {
			return PostgresBackends
		}
		return ""
	}
	return PostgresShared
}

// pgCPU reads the CPU used so far by every process of the two PostgreSQL groups for database, by pid.
func pgCPU(database string) map[string]map[int]float64 {
	out := map[string]map[int]float64{PostgresBackends: {}, PostgresShared: {}}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		g := pgProcessGroup(string(cmd), database)
		if g == "" {
			continue
		}
		if ms, err := cpuMillis(pid); err == nil {
			out[g][pid] = ms
		}
	}
	return out
}

// groupMillis is the CPU a group of processes used between two readings: each process's growth, all of a
// process that started in between. A process that ended in between is lost (see the report's note).
func groupMillis(a, z map[int]float64) (ms float64, ended int) {
	for pid, end := range z {
		ms += max(end-a[pid], 0)
	}
	for pid := range a {
		if _, ok := z[pid]; !ok {
			ended++
		}
	}
	return ms, ended
}
