package testenv

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy forwards TCP connections to a real server and breaks them on demand, for fault tests of the code
// that talks to it: a server down (Refuse), one that hangs on new connections (Hang), one stalled in the
// middle of its answers (Pause), answers cut short (CutReplies). Heal forwards normally again. Everything it
// holds is closed when the test ends.
type Proxy struct {
	ln     net.Listener
	target string
	mode   atomic.Int32
	cut    atomic.Int64
	mu     sync.Mutex
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

const (
	proxyForward int32 = iota
	proxyRefuse
	proxyHang
	proxyPause
)

// NewProxy starts a proxy to target (host:port) on a free local port.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(func() {
		_ = ln.Close()
		p.mode.Store(proxyForward) // paused pipes go on, to their closed ends
		p.closeAll()
		p.wg.Wait()
	})
	p.wg.Go(p.accept)
	return p
}

// Addr is the proxy's host:port, to use in place of the server's.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Refuse closes the open connections and every new one at once, as a server that is down.
func (p *Proxy) Refuse() { p.mode.Store(proxyRefuse); p.closeAll() }

// Hang closes the open connections and accepts new ones without ever answering them, as a server that
// hangs. Those connections stay unanswered after Heal too (until the test ends).
func (p *Proxy) Hang() { p.mode.Store(proxyHang); p.closeAll() }

// Pause stops forwarding bytes either way on every connection, open or new, without closing any, as a
// server stalled in the middle of an answer. Heal lets the held bytes through.
func (p *Proxy) Pause() { p.mode.Store(proxyPause) }

// CutReplies makes every connection accepted from now on end once n bytes of the server's answers went
// through (0: never).
func (p *Proxy) CutReplies(n int64) { p.cut.Store(n) }

// Heal forwards new connections (and paused ones) normally again.
func (p *Proxy) Heal() { p.mode.Store(proxyForward) }

func (p *Proxy) accept() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		switch p.mode.Load() {
		case proxyRefuse:
			_ = in.Close()
			continue
		case proxyHang:
			p.track(in)
			continue
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		p.track(in)
		p.track(out)
		limit := p.cut.Load()
		closeBoth := func() { p.close(in); p.close(out) }
		p.wg.Go(func() { p.pipe(out, in, 0); closeBoth() })
		p.wg.Go(func() { p.pipe(in, out, limit); closeBoth() })
	}
}

// pipe copies src to dst until either ends, at most limit bytes when limit > 0, holding the bytes while
// the proxy is paused.
func (p *Proxy) pipe(dst, src net.Conn, limit int64) {
	buf := make([]byte, 32<<10)
	var sent int64
	for {
		n, err := src.Read(buf)
		for p.mode.Load() == proxyPause {
			time.Sleep(5 * time.Millisecond)
		}
		if n > 0 {
			b := buf[:n]
			if limit > 0 && sent+int64(n) >= limit {
				_, _ = dst.Write(b[:limit-sent])
				return
			}
			if _, err := dst.Write(b); err != nil {
				return
			}
			sent += int64(n)
		}
		if err != nil {
			return
		}
	}
}

func (p *Proxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns[c] = true
	p.mu.Unlock()
}

func (p *Proxy) close(c net.Conn) {
	_ = c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func (p *Proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}
