package query_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/flamestream/flamestream/internal/pgdb"
	"github.com/flamestream/flamestream/query"
)

// session logs user in on e and returns its cookies and the CSRF header unsafe methods need.
func (e *authEnv) session(t *testing.T, user, password string) ([]*http.Cookie, map[string]string) {
	t.Helper()
	resp, body := e.do(t, "POST", "/api/v1/login", fmt.Sprintf(`{"username":%q,"password":%q}`, user, password), nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login %s: %d %s", user, resp.StatusCode, body)
	}
	hdr := map[string]string{}
	for _, c := range resp.Cookies() {
		if c.Name == query.CSRFCookie {
			hdr[query.CSRFHeader] = c.Value
		}
	}
	return resp.Cookies(), hdr
}

func listViews(t *testing.T, e *authEnv, cookies []*http.Cookie) []pgdb.SavedView {
	t.Helper()
	resp, body := e.do(t, "GET", "/api/v1/views", "", nil, cookies...)
	var out struct {
		Views []pgdb.SavedView `json:"views"`
		Max   int              `json:"max"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &out) != nil || out.Views == nil || out.Max != query.MaxViewsPerUser {
		t.Fatalf("list views: %d %s", resp.StatusCode, body)
	}
	return out.Views
}

// TestSavedViewsArePrivateToTheirUser: a view saved by alice comes back to her as stored (its query string
// in canonical form, its service read from it), bob neither lists nor deletes it, a second view of the same
// name is a 409 unless it replaces the first (same id, new state), and a delete removes it once.
func TestSavedViewsArePrivateToTheirUser(t *testing.T) {
	e := newAuthEnv(t)
	if err := e.st.PG.SetUser(context.Background(), "bob", "battery staple"); err != nil {
		t.Fatal(err)
	}
	alice, aliceCSRF := e.session(t, "alice", "correct horse")
	bob, bobCSRF := e.session(t, "bob", "battery staple")

	state := "?view=table&service=checkout&range=6h&host=web-1&host_not=web%202&tsort=occurrences"
	resp, body := e.do(t, "POST", "/api/v1/views", fmt.Sprintf(`{"name":"  Checkout, web-1  ","path":"/profile","query":%q}`, state), aliceCSRF, alice...)
	var saved pgdb.SavedView
	if resp.StatusCode != http.StatusCreated || json.Unmarshal([]byte(body), &saved) != nil {
		t.Fatalf("save: %d %s", resp.StatusCode, body)
	}
	want, _ := url.ParseQuery(strings.TrimPrefix(state, "?"))
	got, err := url.ParseQuery(saved.Query)
	if err != nil || saved.Name != "Checkout, web-1" || saved.Path != "/profile" || saved.Service != "checkout" || got.Encode() != want.Encode() || saved.ID <= 0 {
		t.Fatalf("saved %+v, want name trimmed, service checkout and the query %s", saved, want.Encode())
	}
	if got.Get("host_not") != "web 2" {
		t.Errorf("host_not %q, want the decoded value", got.Get("host_not"))
	}
	if l := listViews(t, e, alice); len(l) != 1 || l[0].ID != saved.ID || l[0].Query != saved.Query {
		t.Errorf("alice's views %+v, want the saved one", l)
	}
	if l := listViews(t, e, bob); len(l) != 0 {
		t.Errorf("bob sees %+v, want none", l)
	}
	if resp, body := e.do(t, "DELETE", fmt.Sprintf("/api/v1/views/%d", saved.ID), "", bobCSRF, bob...); resp.StatusCode != http.StatusNotFound {
		t.Errorf("bob deletes alice's view: %d %s, want 404", resp.StatusCode, body)
	}
	// Bob may use the same name for his own view.
	if resp, body := e.do(t, "POST", "/api/v1/views", `{"name":"Checkout, web-1","path":"/diff","query":"service=checkout"}`, bobCSRF, bob...); resp.StatusCode != http.StatusCreated {
		t.Errorf("bob saves the same name: %d %s", resp.StatusCode, body)
	}

	dup := `{"name":"Checkout, web-1","path":"/diff","query":"service=checkout&base=7d"}`
	resp, body = e.do(t, "POST", "/api/v1/views", dup, aliceCSRF, alice...)
	var msg struct{ Message, Detail string }
	if resp.StatusCode != http.StatusConflict || json.Unmarshal([]byte(body), &msg) != nil || !strings.Contains(msg.Message, "exists") {
		t.Errorf("same name again: %d %s, want 409 saying it exists", resp.StatusCode, body)
	}
	resp, body = e.do(t, "POST", "/api/v1/views", strings.Replace(dup, "{", `{"replace":true,`, 1), aliceCSRF, alice...)
	var replaced pgdb.SavedView
	if resp.StatusCode != http.StatusCreated || json.Unmarshal([]byte(body), &replaced) != nil || replaced.ID != saved.ID ||
		replaced.Path != "/diff" || replaced.Query != "base=7d&service=checkout" {
		t.Errorf("replace: %d %s, want id %d with the new path and query", resp.StatusCode, body, saved.ID)
	}
	if l := listViews(t, e, alice); len(l) != 1 || l[0].Query != "base=7d&service=checkout" {
		t.Errorf("after replace: %+v", l)
	}

	// Without the CSRF header a session cannot save or delete; a read token has no user and no views.
	if resp, _ := e.do(t, "POST", "/api/v1/views", dup, nil, alice...); resp.StatusCode != http.StatusForbidden {
		t.Errorf("save without CSRF: %d, want 403", resp.StatusCode)
	}
	read := e.st.Token(t, pgdb.KindRead, "")
	if resp, _ := e.do(t, "GET", "/api/v1/views", "", map[string]string{"Authorization": "Bearer " + read}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("list with a read token: %d, want 403", resp.StatusCode)
	}

	path := fmt.Sprintf("/api/v1/views/%d", saved.ID)
	if resp, body := e.do(t, "DELETE", path, "", aliceCSRF, alice...); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d %s", resp.StatusCode, body)
	}
	if resp, _ := e.do(t, "DELETE", path, "", aliceCSRF, alice...); resp.StatusCode != http.StatusNotFound {
		t.Errorf("delete twice: %d, want 404", resp.StatusCode)
	}
	if l := listViews(t, e, alice); len(l) != 0 {
		t.Errorf("after delete: %+v", l)
	}
	if l := listViews(t, e, bob); len(l) != 1 {
		t.Errorf("bob's view went with alice's: %+v", l)
	}
}

// TestSavedViewsRefuseBadInputWithAMessage: every malformed view is a 400 whose message names the field,
// and nothing is stored.
func TestSavedViewsRefuseBadInputWithAMessage(t *testing.T) {
	e := newAuthEnv(t)
	alice, csrf := e.session(t, "alice", "correct horse")
	for _, tc := range []struct{ name, body, message string }{
		{"not JSON", `{"name":`, "body is not the expected JSON"},
		{"unknown field", `{"name":"a","path":"/profile","query":"service=s","owner":"bob"}`, "body is not the expected JSON"},
		{"empty name", `{"name":"  ","path":"/profile","query":"service=s"}`, "bad name"},
		{"long name", `{"name":"` + strings.Repeat("é", 101) + `","path":"/profile","query":"service=s"}`, "bad name"},
		{"NUL in the name", `{"name":"a\u0000b","path":"/profile","query":"service=s"}`, "bad name"},
		{"newline in the name", `{"name":"a\nb","path":"/profile","query":"service=s"}`, "bad name"},
		{"other page", `{"name":"a","path":"/admin/tokens","query":"service=s"}`, "bad path"},
		{"absolute URL", `{"name":"a","path":"https://evil.example/profile","query":"service=s"}`, "bad path"},
		{"no service", `{"name":"a","path":"/profile","query":"range=1h"}`, "bad query"},
		{"two services", `{"name":"a","path":"/profile","query":"service=a&service=b"}`, "bad query"},
		{"bad escape", `{"name":"a","path":"/profile","query":"service=%zz"}`, "bad query"},
		{"NUL in a value", `{"name":"a","path":"/profile","query":"service=s&host=%00"}`, "bad query"},
		{"long query", `{"name":"a","path":"/profile","query":"service=s&host=` + strings.Repeat("h", 4096) + `"}`, "bad query"},
	} {
		resp, body := e.do(t, "POST", "/api/v1/views", tc.body, csrf, alice...)
		var msg struct{ Message string }
		if resp.StatusCode != http.StatusBadRequest || json.Unmarshal([]byte(body), &msg) != nil || !strings.Contains(msg.Message, tc.message) {
			t.Errorf("%s: %d %s, want 400 with %q", tc.name, resp.StatusCode, body, tc.message)
		}
	}
	for _, id := range []string{"abc", "0", "-1", "99999999999999999999"} {
		if resp, body := e.do(t, "DELETE", "/api/v1/views/"+id, "", csrf, alice...); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("delete %s: %d %s, want 400", id, resp.StatusCode, body)
		}
	}
	if l := listViews(t, e, alice); len(l) != 0 {
		t.Errorf("bad input stored %+v", l)
	}
}

// TestSavedViewsAreCappedPerUserEvenUnderConcurrentSaves: a user keeps at most MaxViewsPerUser views; at
// the cap a new name is a 409 (replacing one still works), and several saves racing for the last free
// slot store exactly one.
func TestSavedViewsAreCappedPerUserEvenUnderConcurrentSaves(t *testing.T) {
	e := newAuthEnv(t)
	alice, csrf := e.session(t, "alice", "correct horse")
	save := func(name string, replace bool) int {
		resp, body := e.do(t, "POST", "/api/v1/views", fmt.Sprintf(`{"name":%q,"path":"/profile","query":"service=s","replace":%v}`, name, replace), csrf, alice...)
		if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusConflict {
			t.Errorf("save %s: %d %s", name, resp.StatusCode, body)
		}
		return resp.StatusCode
	}
	for i := range query.MaxViewsPerUser - 1 {
		if code := save(fmt.Sprintf("v%03d", i), false); code != http.StatusCreated {
			t.Fatalf("view %d: %d", i, code)
		}
	}
	var wg sync.WaitGroup
	codes := make([]int, 6)
	for i := range codes {
		wg.Add(1)
		go func() { defer wg.Done(); codes[i] = save(fmt.Sprintf("race %d", i), false) }()
	}
	wg.Wait()
	created := 0
	for _, c := range codes {
		if c == http.StatusCreated {
			created++
		}
	}
	if created != 1 {
		t.Errorf("racing for the last slot: codes %v, want exactly one 201", codes)
	}
	if n := len(listViews(t, e, alice)); n != query.MaxViewsPerUser {
		t.Fatalf("%d views stored, want the cap %d", n, query.MaxViewsPerUser)
	}
	resp, body := e.do(t, "POST", "/api/v1/views", `{"name":"one more","path":"/profile","query":"service=s"}`, csrf, alice...)
	var msg struct{ Message string }
	if resp.StatusCode != http.StatusConflict || json.Unmarshal([]byte(body), &msg) != nil || msg.Message != "too many saved views" {
		t.Errorf("past the cap: %d %s, want 409 too many saved views", resp.StatusCode, body)
	}
	if code := save("v000", true); code != http.StatusCreated {
		t.Errorf("replace at the cap: %d, want 201", code)
	}
}
