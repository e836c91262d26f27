package main

import (
	"bytes"
	"context"
	"flag"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flamestream/flamestream/cmd/flamestream/testenv"
	"github.com/flamestream/flamestream/cmd/internal/cli"
)

// TestBackfillWritesOneSummaryLineWhenStderrIsNotATerminal: run as from a script or CI (stderr a buffer,
// not a terminal), backfill writes no progress redraws, only its summary line, and that line's figures
// are the run's (one day hourly of 2 hosts: 48 profiles).
func TestBackfillWritesOneSummaryLineWhenStderrIsNotATerminal(t *testing.T) {
	st := testenv.Start(t, testenv.Options{Role: "query"})
	end := time.Now().UTC().Truncate(time.Hour).Format(time.RFC3339)
	var out, errb bytes.Buffer
	args := []string{"backfill", "--days", "1", "--hosts", "2", "--interval", "1h", "--stacks", "50", "--per-profile", "10",
		"--noise", "0", "--end", end, "--ch-database", st.Config.ClickHouseDatabase, "--pg-url", st.Config.PostgresURL, "--log-level", "error"}
	if code := run(args, &out, &errb); code != 0 {
		t.Fatalf("backfill: exit %d: %s", code, errb.String())
	}
	// stdout's report: "backfill: N stacks in …; P profiles, R sample rows in …".
	m := regexp.MustCompile(`backfill: (\d+) stacks in [^;]+; (48) profiles, (\d+) sample rows`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("stdout %q lacks the report of 48 profiles", out.String())
	}
	want := "backfill: done, " + m[1] + " stacks, 48 profiles, " + m[3] + " sample rows in "
	lines := strings.Split(strings.TrimSuffix(errb.String(), "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], want) || strings.ContainsAny(errb.String(), "\r\x1b") {
		t.Fatalf("stderr %q: want only the summary line %q… and no redraws", errb.String(), want)
	}
}

// TestBackfillDrawsItsProgressLineOnATerminal: on a terminal the progress line is drawn in place (\r, clear
// to the end of the line) and the summary line ends it.
func TestBackfillDrawsItsProgressLineOnATerminal(t *testing.T) {
	st := testenv.Start(t, testenv.Options{Role: "query"})
	fs := flag.NewFlagSet("backfill", flag.ContinueOnError)
	o := backfillFlags(fs)
	if err := fs.Parse([]string{"--days", "1", "--hosts", "2", "--interval", "1h", "--stacks", "50", "--per-profile", "10", "--noise", "0"}); err != nil {
		t.Fatal(err)
	}
	var out, tty bytes.Buffer
	log := slog.New(slog.DiscardHandler)
	if err := runBackfill(context.Background(), st.Config, log, o, &out, cli.NewProgressFor(&tty, true)); err != nil {
		t.Fatal(err)
	}
	got := tty.String()
	if !strings.HasPrefix(got, "\r\x1b[Kbackfill: stacks ") || !strings.Contains(got, "\r\x1b[Kbackfill: done, ") || !strings.HasSuffix(got, "\n") ||
		strings.Count(got, "\n") != 1 {
		t.Fatalf("terminal got %q: want a progress line drawn in place, then one summary line", got)
	}
}
