package query_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flamestream/flamestream/internal/testenv"
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

	t0 := time.Now()
	for i := range 5 {
		if code, _, body := login("alice", "wrong"); code != http.StatusUnauthorized {
			t.Fatalf("wrong password #%d: %d %s, want 401", i+1, code, body)
		}
	}
	code, h, body := login("alice", "correct horse")
	locked("right password after 5 failures", code, h, body, 30)
	code, h, body = login("alice", "wrong")
	locked("wrong password while locked", code, h, body, 30)
	// The lock is alice's, not everyone's: bob logs in from the same address.
	if code, _, body := login("bob", "correct horse"); code != http.StatusOK {
		t.Fatalf("another user: %d %s, want 200", code, body)
	}
	// The address has 5 failures: 15 more, over made-up names, lock it for everyone.
	for i := range 15 {
		if code, _, body := login(fmt.Sprintf("guess%d", i), "wrong"); code != http.StatusUnauthorized {
			t.Fatalf("failure %d of the address: %d %s, want 401", 6+i, code, body)
		}
	}
	code, h, body = login("bob", "correct horse")
	locked("any user after 20 failures from the address", code, h, body, 60)
	t.Logf("21 failed logins took %v", time.Since(t0).Round(time.Millisecond))
}
