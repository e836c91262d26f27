package pgdb_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/flamestream/flamestream/internal/pgdb"
)

// TestLoginComparesOneHashOfTheSameCostForUnknownUsers: whether the user exists or not, and whatever the
// name holds, a login compares exactly one bcrypt hash of the stored passwords' cost, so that its time does
// not tell which user names exist. The comparer is counted rather than the time measured, which would flake;
// the times are logged for the record.
func TestLoginComparesOneHashOfTheSameCostForUnknownUsers(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	if err := db.SetUser(ctx, "alice", "correct horse"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, user, password string
		ok                   bool
	}{
		{"known user, right password", "alice", "correct horse", true},
		{"known user, wrong password", "alice", "wrong", false},
		{"unknown user", "bob", "correct horse", false},
		{"empty name", "", "x", false},
		{"NUL in the name", "ali\x00ce", "correct horse", false},
		{"invalid UTF-8 in the name", "ali\xffce", "correct horse", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var costs []int
			compare := func(hash, password []byte) error {
				c, err := bcrypt.Cost(hash)
				if err != nil {
					t.Errorf("compared a non-bcrypt hash %q", hash)
				}
				costs = append(costs, c)
				return bcrypt.CompareHashAndPassword(hash, password)
			}
			secret, _, err := db.LoginWith(ctx, tc.user, tc.password, compare)
			if tc.ok && (err != nil || secret == "") {
				t.Fatalf("login: %v", err)
			}
			if !tc.ok && !errors.Is(err, pgdb.ErrBadLogin) {
				t.Fatalf("login: %v, want ErrBadLogin", err)
			}
			if !slices.Equal(costs, []int{pgdb.PasswordCost}) {
				t.Fatalf("compared hashes of costs %v, want exactly one of cost %d", costs, pgdb.PasswordCost)
			}
		})
	}
	// For the record: the times of both failing paths (the first stand-in compare also makes the hash).
	_, _, _ = db.Login(ctx, "warm-up", "x")
	median := func(user string) time.Duration {
		var ds []time.Duration
		for range 7 {
			t0 := time.Now()
			_, _, _ = db.Login(ctx, user, "wrong")
			ds = append(ds, time.Since(t0))
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	t.Logf("login median of 7: known user %v, unknown user %v", median("alice"), median("nobody"))
}

// TestSetUserRefusesNamesPostgreSQLCannotStore: a NUL byte or invalid UTF-8 gets a plain error, not
// PostgreSQL's.
func TestSetUserRefusesNamesPostgreSQLCannotStore(t *testing.T) {
	db := openDB(t)
	for _, name := range []string{"a\x00b", "a\xffb"} {
		err := db.SetUser(context.Background(), name, "password")
		if err == nil || errors.Is(err, context.Canceled) || containsAny(err.Error(), "SQLSTATE", "UTF8") {
			t.Errorf("SetUser(%q) = %v, want a plain refusal", name, err)
		}
	}
}

func containsAny(s string, subs ...string) bool {
	return slices.ContainsFunc(subs, func(sub string) bool { return strings.Contains(s, sub) })
}
