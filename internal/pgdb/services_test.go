package pgdb_test

import (
	"strings"
	"testing"

	"github.com/flamestream/flamestream/internal/pgdb"
)

func TestCheckRetentionDaysAllowsOnlyShorterThanTheRawRetention(t *testing.T) {
	days := func(n int) *int { return &n }
	for _, tc := range []struct {
		days    *int
		max     int
		wantErr string
	}{
		{nil, 30, ""},
		{days(1), 30, ""},
		{days(30), 30, ""},
		{days(31), 30, "at most 30"},
		{days(0), 30, "at least 1"},
		{days(-2), 30, "at least 1"},
		{days(5000), 0, ""}, // raw data kept forever: no maximum
		{days(0), 0, "at least 1"},
	} {
		err := pgdb.CheckRetentionDays(tc.days, tc.max)
		if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("CheckRetentionDays(%v, %d) = %v, want %q", tc.days, tc.max, err, tc.wantErr)
		}
	}
}
