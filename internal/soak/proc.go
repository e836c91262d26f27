package soak

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one child process the soak owns: a server (ClickHouse, NATS, versitygw) or a Flamestream role.
// It can be killed with SIGKILL and started again with the same arguments, port and data directory. An exit
// the soak did not cause is counted and, when restart is set, the process is started again after a pause,
// as a supervisor (systemd, Kubernetes) would: the soak then reports the exit instead of stalling on it.
type proc struct {
	name    string
	path    string
	args    []string
	env     []string
	logPath string
	// ready reports nil once the process serves requests.
	ready   func(ctx context.Context) error
	restart bool

	mu         sync.Mutex
	cmd        *exec.Cmd
	exited     chan struct{} // closed when cmd ends
	down       bool          // stopped by the soak: an exit now is expected
	closed     bool          // the run is over: never start again
	starts     int
	unexpected []string // how each unexpected exit ended
}

// start starts the process; the caller waits for ready.
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.startLocked()
}

func (p *proc) startLocked() error {
	if p.closed {
		return errors.New("soak is over")
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.path, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = logf, logf
	// Pdeathsig: a soak that dies (a test timeout, a kill) takes its servers with it instead of leaving them
	// on their ports.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.cmd, p.down, p.exited = cmd, false, make(chan struct{})
	p.starts++
	exited := p.exited
	go func() {
		err := cmd.Wait()
		logf.Close()
		close(exited)
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.down || p.closed || p.cmd != cmd {
			return
		}
		p.unexpected = append(p.unexpected, fmt.Sprintf("%v (start %d)", err, p.starts))
		if p.restart {
			go func() {
				time.Sleep(time.Second)
				p.mu.Lock()
				defer p.mu.Unlock()
				if !p.down && !p.closed && p.cmd == cmd {
					_ = p.startLocked()
				}
			}()
		}
	}()
	return nil
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.down = true
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// stop ends the process for good: SIGTERM, then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	p.mu.Lock()
	p.closed, p.down = true, true
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(grace):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	}
}

// pid is the id of the running process, 0 when there is none.
func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	select {
	case <-p.exited:
		return 0
	default:
	}
	return p.cmd.Process.Pid
}

// restarts is how many times the process was started after the first.
func (p *proc) restarts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return max(p.starts-1, 0)
}

// unexpectedExits returns how the process ended each time the soak did not stop it.
func (p *proc) unexpectedExits() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.unexpected...)
}

// waitReady polls ready until it succeeds or bound passes.
func (p *proc) waitReady(ctx context.Context, bound time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	var last error
	for {
		cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
		last = p.ready(cctx)
		ccancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %w", p.name, bound, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// freePort returns a port of 127.0.0.1 nobody listens on right now, below the kernel's ephemeral range
// when it can: a server the soak kills must get its port back when it restarts seconds later, and the
// ephemeral range is where other tests' listeners (port 0) and every outgoing connection take theirs.
func freePort() (int, error) {
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				lo = n
			}
		}
	}
	if lo > 12000 {
		for range 50 {
			port := 10000 + rand.IntN(lo-12000)
			if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
				l.Close()
				return port, nil
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
