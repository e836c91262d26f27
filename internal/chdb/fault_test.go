package chdb_test

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/testenv"
)

// faultKind is what the faulty proxy does to a connection once its byte budget is spent.
type faultKind int

const (
	faultNone   faultKind = iota
	faultCut              // close both sides
	faultStall            // stop forwarding (the peer waits until its deadline)
	faultGarble           // flip the bits of the next bytes
)

func (k faultKind) String() string {
	return [...]string{"none", "cut", "stall", "garble"}[k]
}

// fault is one planned fault: after budget more bytes in one direction (toServer or not), do kind.
type fault struct {
	kind     faultKind
	toServer bool
	budget   atomic.Int64
	fired    atomic.Bool
}

// faultProxy forwards TCP connections to a server and injects the planned fault into whatever
// connection carries the bytes that spend its budget.
type faultProxy struct {
	ln     net.Listener
	plan   atomic.Pointer[fault]
	mu     sync.Mutex
	conns  map[net.Conn]bool
	accept atomic.Int64
}

func newFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { _ = ln.Close(); p.cut() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				_ = in.Close()
				continue
			}
			p.accept.Add(1)
			p.mu.Lock()
			p.conns[in], p.conns[out] = true, true
			p.mu.Unlock()
			closeBoth := func() {
				_ = in.Close()
				_ = out.Close()
				p.mu.Lock()
				delete(p.conns, in)
				delete(p.conns, out)
				p.mu.Unlock()
			}
			go func() { p.pipe(out, in, true); closeBoth() }()
			go func() { p.pipe(in, out, false); closeBoth() }()
		}
	}()
	return p
}

// pipe copies src to dst, applying the plan to the bytes that go toServer (or back).
func (p *faultProxy) pipe(dst, src net.Conn, toServer bool) {
	buf := make([]byte, 16<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			b := buf[:n]
			if f := p.plan.Load(); f != nil && f.toServer == toServer && f.kind != faultNone {
				left := f.budget.Add(-int64(n))
				if left < 0 {
					at := max(0, n+int(left)) // the first byte past the budget
					switch f.kind {
					case faultCut:
						{
							f.fired.Store(true)
							_, _ = dst.Write(b[:at])
							return
						}
					case faultStall:
						f.fired.Store(true)
						_, _ = dst.Write(b[:at])
						// Hold the connection until the client gives up on it (closes its side).
						_ = src.SetReadDeadline(time.Time{})
						_, _ = io.Copy(io.Discard, src)
						return
					case faultGarble:
						if !f.fired.Swap(true) {
							for i := at; i < min(n, at+8); i++ {
								b[i] ^= 0xA5
							}
						}
					}
				}
			}
			if _, werr := dst.Write(b); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *faultProxy) set(f *fault) { p.plan.Store(f) }

// cut closes every connection the proxy holds.
func (p *faultProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
}

// dials is how many connections the proxy accepted.
func (p *faultProxy) dials() int { return int(p.accept.Load()) }

// openAt opens a DB on addr (the local server or a proxy in front of it) with the local server's
// credentials; it is closed at the end of the test.
func openAt(t *testing.T, ctx context.Context, addr string, o chdb.Options) *chdb.DB {
	t.Helper()
	cfg := testenv.Servers(t)
	o.Addr, o.User, o.Password, o.Database = addr, cfg.ClickHouseUser, cfg.ClickHousePassword, "default"
	db, err := chdb.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

// TestConnectionThatSawAnErrorIsNeverReused drives hundreds of queries and inserts through a proxy that
// cuts, stalls or garbles the traffic at a random byte in either direction, and cancels others at random
// points. Whatever each faulty call returns, the next queries and inserts on the same DB must succeed and
// read back exactly what was written, and the pools must stay within their bound.
func TestConnectionThatSawAnErrorIsNeverReused(t *testing.T) {
	cfg := testenv.Servers(t)
	proxy := newFaultProxy(t, cfg.ClickHouseAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const maxConns = 3
	db := openAt(t, ctx, proxy.ln.Addr().String(), chdb.Options{MaxConns: maxConns})
	table := testenv.Name("fault")
	if err := db.Exec(ctx, "CREATE TABLE default."+table+" (k UInt64, v String) ENGINE = MergeTree ORDER BY k"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Exec(context.Background(), "DROP TABLE IF EXISTS default."+table) })

	rng := rand.New(rand.NewPCG(11, 7))
	var written uint64 // rows the checks wrote and read back
	// numbers reads 0..n-1 into the returned slice.
	numbers := func(n int) (ch.Query, *[]uint64) {
		var col proto.ColUInt64
		out := new([]uint64)
		return ch.Query{Body: "SELECT number FROM system.numbers LIMIT " + strconv.Itoa(n),
			Result:   proto.Results{{Name: "number", Data: &col}},
			OnResult: func(context.Context, proto.Block) error { *out = append(*out, col...); return nil }}, out
	}
	// insert writes n rows tagged tag (a faulty insert may still land after its call failed: rows are
	// counted by tag).
	insert := func(ctx context.Context, n int, tag string) error {
		var k proto.ColUInt64
		var v proto.ColStr
		for i := range n {
			k.Append(uint64(i))
			v.Append(tag + strings.Repeat("x", i%50))
		}
		return db.Insert(ctx, table, proto.Input{{Name: "k", Data: &k}, {Name: "v", Data: &v}})
	}
	count := func(ctx context.Context, tag string) (uint64, error) {
		var c proto.ColUInt64
		err := db.Do(ctx, ch.Query{Body: "SELECT count() AS c FROM default." + table + " WHERE startsWith(v, " + chdb.String(tag) + ")",
			Result: proto.Results{{Name: "c", Data: &c}}})
		if err != nil || len(c) != 1 {
			return 0, err
		}
		return c[0], nil
	}
	limits := chdb.Limits{MaxResultRows: 1 << 20}
	// check runs healthy work through a clean proxy: queries on both pools, an insert, and the count.
	check := func(round int, what string) {
		t.Helper()
		proxy.set(nil)
		cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
		defer ccancel()
		tag := "check" + strconv.Itoa(round) + "/"
		q, col := numbers(70000)
		if err := db.Do(cctx, q); err != nil {
			t.Fatalf("round %d after %s: query: %v", round, what, err)
		}
		if len(*col) != 70000 || (*col)[69999] != 69999 {
			t.Fatalf("round %d after %s: query read %d rows", round, what, len(*col))
		}
		q, col = numbers(5000)
		if err := db.DoLimited(cctx, limits, q); err != nil || len(*col) != 5000 {
			t.Fatalf("round %d after %s: limited query: %v (%d rows)", round, what, err, len(*col))
		}
		if err := insert(cctx, 100, tag); err != nil {
			t.Fatalf("round %d after %s: insert: %v", round, what, err)
		}
		n, err := count(cctx, tag)
		if err != nil {
			t.Fatalf("round %d after %s: count: %v", round, what, err)
		}
		if n != 100 {
			t.Fatalf("round %d after %s: %d rows read back after inserting 100", round, what, n)
		}
		written += n
		plain, lim := db.Stats()
		if plain.Open > maxConns || lim.Open > maxConns || plain.Idle > maxConns || lim.Idle > maxConns {
			t.Fatalf("round %d: pools past their bound: %+v %+v", round, plain, lim)
		}
	}
	check(0, "start")

	kinds := map[string]int{}
	const rounds = 200
	for round := 1; round <= rounds; round++ {
		f := &fault{kind: faultKind(1 + rng.IntN(3)), toServer: rng.IntN(2) == 0}
		f.budget.Store(int64(rng.IntN(4000)))
		cancelAt := time.Duration(0)
		if rng.IntN(4) == 0 {
			f = &fault{kind: faultNone}
			cancelAt = time.Duration(rng.IntN(30_000)) * time.Microsecond
		}
		op := rng.IntN(3)
		what := f.kind.String() + map[bool]string{true: " to server", false: " to client"}[f.toServer] +
			" in " + [...]string{"query", "limited query", "insert"}[op]
		if cancelAt > 0 {
			what = "cancel after " + cancelAt.String() + " in " + [...]string{"query", "limited query", "insert"}[op]
		}
		kinds[strings.Fields(what)[0]]++
		proxy.set(f)
		fctx, fcancel := context.WithTimeout(ctx, 700*time.Millisecond)
		if cancelAt > 0 {
			time.AfterFunc(cancelAt, fcancel)
		}
		var err error
		switch op {
		case 0:
			q, _ := numbers(200000)
			err = db.Do(fctx, q)
		case 1:
			q, _ := numbers(200000)
			err = db.DoLimited(fctx, limits, q)
		case 2:
			err = insert(fctx, 3000, "faulty/")
		}
		fcancel()
		_ = err // anything may happen to the faulty call itself; what follows must not suffer
		check(round, what)
	}
	t.Logf("%d faulty rounds %v, %d connections dialled through the proxy, %d rows written and read back by the checks",
		rounds, kinds, proxy.accept.Load(), written)
}

// TestQueryRejectedWhileSentLeavesThePoolClean sends a query over ClickHouse's default max_query_size
// (the server answers with an exception before it has read the whole query), then runs queries and
// inserts on the same DB.
func TestQueryRejectedWhileSentLeavesThePoolClean(t *testing.T) {
	cfg := testenv.Servers(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := openAt(t, ctx, cfg.ClickHouseAddr, chdb.Options{MaxConns: 1})
	var sb strings.Builder
	sb.WriteString("SELECT count() AS c FROM system.one WHERE dummy IN (")
	for i := range 60000 {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.Itoa(1_000_000 + i))
	}
	sb.WriteString(")")
	for i := range 5 {
		var c proto.ColUInt64
		err := db.Do(ctx, ch.Query{Body: sb.String(), Result: proto.Results{{Name: "c", Data: &c}}})
		var e *ch.Exception
		if !errors.As(err, &e) {
			t.Fatalf("a %d KiB query: %v, want the server's exception", sb.Len()>>10, err)
		}
		for j := range 3 {
			var n proto.ColUInt64
			if err := db.Do(ctx, ch.Query{Body: "SELECT number FROM system.numbers LIMIT 1000",
				Result: proto.Results{{Name: "number", Data: &n}}}); err != nil || len(n) != 1000 {
				t.Fatalf("query %d after rejected query %d: %v (%d rows)", j, i, err, len(n))
			}
		}
	}
	if plain, _ := db.Stats(); plain.Discards < 5 {
		t.Errorf("%d connections discarded after 5 rejected queries", plain.Discards)
	}
}

// TestPoolsStayWithinMaxConnsUnderConcurrency runs 24 concurrent queries on each pool of a DB bounded to
// 2 connections: no more than 2 are ever dialled per pool, the others wait for them, and idle ones are
// closed after the idle timeout.
func TestPoolsStayWithinMaxConnsUnderConcurrency(t *testing.T) {
	cfg := testenv.Servers(t)
	proxy := newCutter(t, cfg.ClickHouseAddr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := openAt(t, ctx, proxy.ln.Addr().String(), chdb.Options{MaxConns: 2, IdleTimeout: 300 * time.Millisecond})
	probe := proxy.dials() // Open's probe of the server revision
	var wg sync.WaitGroup
	errs := make(chan error, 48)
	for i := range 48 {
		wg.Go(func() {
			var c proto.ColUInt64
			q := ch.Query{Body: "SELECT count() AS c FROM numbers(300000)", Result: proto.Results{{Name: "c", Data: &c}}}
			if i%2 == 0 {
				errs <- db.Do(ctx, q)
			} else {
				errs <- db.DoLimited(ctx, chdb.Limits{MaxResultRows: 10}, q)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if d := proxy.dials() - probe; d > 4 {
		t.Errorf("%d connections dialled for 48 concurrent queries on two pools of 2", d)
	}
	plain, limited := db.Stats()
	if plain.Idle > 2 || limited.Idle > 2 || plain.Open != 0 || limited.Open != 0 {
		t.Errorf("after the queries: %+v %+v", plain, limited)
	}
	time.Sleep(time.Second)
	if plain, limited = db.Stats(); plain.Idle+limited.Idle != 0 {
		t.Errorf("idle connections past the idle timeout: %+v %+v", plain, limited)
	}
}

// TestServerGoneIsErrUnavailable: when no connection to the server can be opened, calls fail with
// ErrUnavailable (a passing outage, answered 503), not with an error a caller would take for its own.
func TestServerGoneIsErrUnavailable(t *testing.T) {
	cfg := testenv.Servers(t)
	proxy := newCutter(t, cfg.ClickHouseAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db := openAt(t, ctx, proxy.ln.Addr().String(), chdb.Options{MaxConns: 2})
	if err := db.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	_ = proxy.ln.Close()
	proxy.cut()
	for _, err := range []error{db.Exec(ctx, "SELECT 1"), db.Ping(ctx), db.DoLimited(ctx, chdb.Limits{MaxResultRows: 5}, ch.Query{Body: "SELECT 1"})} {
		if !errors.Is(err, chdb.ErrUnavailable) {
			t.Errorf("with the server gone: %v, want ErrUnavailable", err)
		}
	}
}
