package query

import (
	"fmt"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is the limiter's clock in tests.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newTestLimiter(entries int) (*loginLimiter, *fakeClock) {
	c := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	return newLoginLimiter(entries, c.now), c
}

// fail makes one failed attempt and fails the test if it was refused.
func fail(t *testing.T, l *loginLimiter, user, addr string) {
	t.Helper()
	if wait := l.admit(user, addr); wait != 0 {
		t.Fatalf("attempt of %s from %s refused for %v", user, addr, wait)
	}
}

func TestLoginLimiterLocksAUserAfterFiveFailuresForDoublingTimes(t *testing.T) {
	l, clock := newTestLimiter(100)
	for i := range 5 {
		fail(t, l, "alice", fmt.Sprintf("10.0.0.%d", i)) // from different addresses: the user limit alone
		clock.add(time.Second)
	}
	// The 5th failure locked alice for 30 s (one second of which has passed).
	if wait := l.admit("alice", "10.0.1.1"); wait != 29*time.Second {
		t.Fatalf("after 5 failures: locked for %v, want 29s", wait)
	}
	if wait := l.admit("bob", "10.0.1.1"); wait != 0 {
		t.Fatalf("another user is locked too: %v", wait)
	}
	// Each try a lock allows, failed, locks twice as long, up to 15 min.
	for _, want := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 15 * time.Minute, 15 * time.Minute} {
		clock.add(l.admit("alice", "10.0.1.1"))
		fail(t, l, "alice", "10.0.1.1")
		if wait := l.admit("alice", "10.0.1.1"); wait != want {
			t.Fatalf("locked for %v, want %v", wait, want)
		}
	}
	// The failures are forgotten 15 min after the end of the last lock: five free tries again.
	clock.add(15*time.Minute + 15*time.Minute)
	for range 4 {
		fail(t, l, "alice", "10.0.2.1")
	}
	if wait := l.admit("alice", "10.0.2.2"); wait != 0 {
		t.Fatalf("5th try after the failures were forgotten refused for %v", wait)
	}
}

func TestLoginLimiterSuccessForgetsTheUserButNotTheAddress(t *testing.T) {
	l, _ := newTestLimiter(100)
	for range 4 {
		fail(t, l, "alice", "192.0.2.1")
	}
	fail(t, l, "alice", "192.0.2.1")  // the 5th attempt, counted ahead…
	l.succeeded("alice", "192.0.2.1") // …was the right password
	for range 4 {
		fail(t, l, "alice", "192.0.2.1")
	}
	if wait := l.admit("alice", "192.0.2.1"); wait != 0 {
		t.Fatalf("a success did not forget the user's failures: locked for %v", wait)
	}
	// The address kept its 8 failures plus that one: 11 more make 20.
	for i := range 11 {
		fail(t, l, fmt.Sprintf("user%d", i), "192.0.2.1")
	}
	if wait := l.admit("someone", "192.0.2.1"); wait != time.Minute {
		t.Fatalf("after 20 failures of the address: locked for %v, want 1m", wait)
	}
}

func TestLoginLimiterLocksAnAddressThatTriesManyUsers(t *testing.T) {
	l, clock := newTestLimiter(100)
	for i := range 20 {
		fail(t, l, fmt.Sprintf("user%d", i), "198.51.100.7")
		clock.add(time.Second)
	}
	if wait := l.admit("fresh", "198.51.100.7"); wait != time.Minute-time.Second {
		t.Fatalf("after 20 failures: locked for %v, want 59s", wait)
	}
	if wait := l.admit("fresh", "198.51.100.8"); wait != 0 {
		t.Fatalf("another address is locked too: %v", wait)
	}
	clock.add(time.Minute)
	fail(t, l, "fresh2", "198.51.100.7")
	if wait := l.admit("fresh3", "198.51.100.7"); wait != 2*time.Minute {
		t.Fatalf("21st failure: locked for %v, want 2m", wait)
	}
}

func TestLoginLimiterAbortedAttemptsAreNotFailures(t *testing.T) {
	l, _ := newTestLimiter(100)
	for range 50 {
		fail(t, l, "alice", "192.0.2.1")
		l.aborted("alice", "192.0.2.1") // the metadata store was down
	}
	if wait := l.admit("alice", "192.0.2.1"); wait != 0 {
		t.Fatalf("locked for %v by attempts whose password was never checked", wait)
	}
}

// TestLoginLimiterConcurrentAttemptsCannotOvershoot: attempts are counted when admitted, so a burst of
// parallel guesses gets exactly the free tries, not one per goroutine.
func TestLoginLimiterConcurrentAttemptsCannotOvershoot(t *testing.T) {
	l, _ := newTestLimiter(100)
	var admitted atomic.Int32
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			if l.admit("alice", "2001:db8::1") == 0 {
				admitted.Add(1)
			}
		})
	}
	wg.Wait()
	if n := admitted.Load(); n != 5 {
		t.Fatalf("%d of 64 parallel attempts admitted, want 5", n)
	}
}

// TestLoginLimiterMemoryIsBounded: a flood of made-up names from made-up addresses keeps at most the
// capacity in each table, and the most recent failures are the ones kept.
func TestLoginLimiterMemoryIsBounded(t *testing.T) {
	l, clock := newTestLimiter(1000)
	for i := range 50_000 {
		l.admit(fmt.Sprintf("user-%d", i), fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
		clock.add(time.Millisecond)
	}
	for name, f := range map[string]*failures{"users": &l.users, "addrs": &l.addrs} {
		if len(f.entries) != 1000 || f.order.Len() != 1000 {
			t.Errorf("%s: %d entries, %d in order, want 1000", name, len(f.entries), f.order.Len())
		}
	}
	if l.users.get(l.key("u", "user-49999"), clock.now()) == nil || l.users.get(l.key("u", "user-0"), clock.now()) != nil {
		t.Errorf("the newest entry was pushed out or the oldest kept")
	}
}

func TestClientAddrIsThePeerIPOrItsIPv6Slash64(t *testing.T) {
	for _, tc := range []struct{ remote, want string }{
		{"192.0.2.1:5000", "192.0.2.1"},
		{"[::ffff:192.0.2.1]:5000", "192.0.2.1"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:443", "2001:db8:1:2::/64"},
		{"not-an-address", "not-an-address"},
	} {
		r := httptest.NewRequest("POST", "/api/v1/login", nil)
		r.RemoteAddr = tc.remote
		r.Header.Set("X-Forwarded-For", "203.0.113.9") // anyone can write it: ignored
		if got := clientAddr(r, nil); got != tc.want {
			t.Errorf("clientAddr(%s) = %s, want %s", tc.remote, got, tc.want)
		}
	}
}

// Behind trusted proxies the client is the rightmost forwarded address that is not one of them; a peer
// that is not trusted cannot name another client.
func TestClientAddrBelievesOnlyTrustedProxies(t *testing.T) {
	trusted, err := ParseTrustedProxies("10.0.0.0/8, 192.0.2.7 ,2001:db8:ffff::/48")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"untrusted peer", "198.51.100.4:1", []string{"203.0.113.9"}, "198.51.100.4"},
		{"one proxy", "10.1.2.3:1", []string{"203.0.113.9"}, "203.0.113.9"},
		{"client spoofs the left end", "10.1.2.3:1", []string{"1.1.1.1, 203.0.113.9"}, "203.0.113.9"},
		{"two proxies", "192.0.2.7:1", []string{"203.0.113.9, 10.9.9.9"}, "203.0.113.9"},
		{"headers joined in order", "10.1.2.3:1", []string{"1.1.1.1", "203.0.113.9, 10.0.0.1"}, "203.0.113.9"},
		{"only proxies", "10.1.2.3:1", []string{"10.0.0.5"}, "10.0.0.5"},
		{"no header", "10.1.2.3:1", nil, "10.1.2.3"},
		{"malformed hop stops the walk", "10.1.2.3:1", []string{"203.0.113.9, bogus"}, "10.1.2.3"},
		{"ipv6 client", "[2001:db8:ffff::1]:1", []string{"2001:db8:1:2:3:4:5:6"}, "2001:db8:1:2::/64"},
	} {
		r := httptest.NewRequest("POST", "/api/v1/login", nil)
		r.RemoteAddr = tc.remote
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := clientAddr(r, trusted); got != tc.want {
			t.Errorf("%s: clientAddr = %s, want %s", tc.name, got, tc.want)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "proxy.example", "10.0.0"} {
		if _, err := ParseTrustedProxies(bad); err == nil {
			t.Errorf("ParseTrustedProxies(%q) accepted it", bad)
		}
	}
}
