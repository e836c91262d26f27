package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/flamestream/flamestream/internal/pgdb"
	"github.com/flamestream/flamestream/internal/testenv"
)

// TestServiceSetChangesDownsamplingAndRetention drives `flamestream service set` against a fresh database.
func TestServiceSetChangesDownsamplingAndRetention(t *testing.T) {
	cfg := testenv.Servers(t)
	url := testenv.NewPostgres(t, cfg.PostgresURL)
	t.Setenv("FLAMESTREAM_PG_URL", url)
	var out, errb bytes.Buffer
	steps := []struct {
		args          []string
		code          int
		threshold     float64
		retentionDays int // 0: default
	}{
		{[]string{"service", "set", "checkout", "--sample-threshold", "0.25", "--retention-days", "7"}, 0, 0.25, 7},
		{[]string{"service", "set", "checkout", "--retention-days", "14"}, 0, 0.25, 14},
		{[]string{"service", "set", "checkout", "--sample-threshold", "0", "--retention-days", "0"}, 0, 0, 0},
		{[]string{"service", "set", "checkout", "--sample-threshold", "1.5"}, 1, 0, 0},
		{[]string{"service", "set"}, 2, 0, 0}, // a usage error
		// At most the global raw retention (30 days by default): the janitor cannot keep one service longer.
		{[]string{"service", "set", "checkout", "--retention-days", "30"}, 0, 0, 30},
		{[]string{"service", "set", "checkout", "--retention-days", "31"}, 1, 0, 30},
		{[]string{"service", "set", "checkout", "--retention-days", "-5"}, 2, 0, 30}, // refused before connecting
	}
	pg, err := pgdb.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	for _, s := range steps {
		out.Reset()
		errb.Reset()
		if code := run(s.args, &out, &errb); code != s.code {
			t.Fatalf("%v: exit %d (%s%s), want %d", s.args, code, out.String(), errb.String(), s.code)
		}
		if slices.Contains(s.args, "31") && !strings.Contains(errb.String(), "at most 30") {
			t.Errorf("%v: error %q does not say the maximum", s.args, errb.String())
		}
		svc, err := pg.GetService(context.Background(), "checkout")
		if err != nil {
			t.Fatal(err)
		}
		ret := 0
		if svc.RetentionDays != nil {
			ret = *svc.RetentionDays
		}
		if svc.SampleThreshold != s.threshold || ret != s.retentionDays {
			t.Errorf("after %v: threshold %v retention %d, want %v %d", s.args, svc.SampleThreshold, ret, s.threshold, s.retentionDays)
		}
	}
	out.Reset()
	if code := run([]string{"service", "list"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "checkout") {
		t.Errorf("service list: %d %q %q", code, out.String(), errb.String())
	}
}
