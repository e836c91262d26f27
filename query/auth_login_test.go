package query_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flamestream/flamestream/cmd/flamestream/testenv"
)

// TestFailedLoginsAreLimitedPerUserAndPerAddress runs against a whole stack's HTTP server: after 5 wrong
// passwords the user is locked (429, Retry-After, the right password refused too) while another user still
// logs in; after 20 failures from one address every login from it is locked.
func TestFailedLoginsAreLimitedPerUserAndPerAddress(t *testing.T) {
	st := testenv.Start(t, testenv.Options{})
	for _, u := range []string{"alice", "bob"} {
		if err := st.PG.SetUser(context.Background(), u, "correct horse"); err != nil {
			t.Fatal(err)
		}
	}
	login := func(user, password string) (int, http.Header, string) {
		t.Helper()
		body := fmt.Sprintf(`{"username":%q,"password":%q}`, user, password)
		resp, err := http.Post(st.URL+"/api/v1/login", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	locked := func(what string, code int, h http.Header, body string, maxWait int) {
		t.Helper()
		var msg struct{ Message, Detail string }
		wait, err := strconv.Atoi(h.Get("Retry-After"))
		if code != http.StatusTooManyRequests || err != nil || wait < 1 || wait > maxWait ||
			json.Unmarshal([]byte(body), &msg) != nil || msg.Message != "too many failed logins" || msg.Detail == "" {
			t.Fatalf("%s: %d Retry-After %q %s, want 429 with Retry-After 1..%d and a JSON message", what, code, h.Get("Retry-After"), body, maxWait)
		}
		t.Logf("%s: 429 Retry-After %d %s", what, wait, strings.TrimSpace(body))
	}

	// Each failure is timed: an unknown user must cost what a known one does (both compare one bcrypt hash
	// of the same cost, see pgdb's TestLoginComparesOneHashOfTheSameCostForUnknownUsers; the times are logged,
	// not asserted, as they vary with the machine's load).
	t0 := time.Now()
	fail := func(user string) time.Duration {
		t.Helper()
		start := time.Now()
		if code, _, body := login(user, "wrong"); code != http.StatusUnauthorized {
			t.Fatalf("wrong password of %s: %d %s, want 401", user, code, body)
		}
		return time.Since(start)
	}
	var known, unknown []time.Duration
	for range 5 {
		known = append(known, fail("alice"))
	}
	for range 4 {
		unknown = append(unknown, fail("nobody"))
	}
	slices.Sort(known)
	slices.Sort(unknown)
	t.Logf("login replies: known user %v, unknown user %v (sorted)", known, unknown)
	code, h, body := login("alice", "correct horse")
	locked("right password after 5 failures", code, h, body, 30)
	code, h, body = login("alice", "wrong")
	locked("wrong password while locked", code, h, body, 30)
	// The lock is alice's, not everyone's: bob logs in from the same address.
	if code, _, body := login("bob", "correct horse"); code != http.StatusOK {
		t.Fatalf("another user: %d %s, want 200", code, body)
	}
	// The address has 9 failures: 11 more, over made-up names, lock it for everyone.
	for i := range 11 {
		fail(fmt.Sprintf("guess%d", i))
	}
	code, h, body = login("bob", "correct horse")
	locked("any user after 20 failures from the address", code, h, body, 60)
	t.Logf("20 failed logins took %v", time.Since(t0).Round(time.Millisecond))
}
