package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/flamestream/flamestream/cmd/internal/cli"
	"github.com/flamestream/flamestream/indexer"
)

func TestMigratePrintShowsTheClusterSchemaWithoutConnecting(t *testing.T) {
	var out, errb bytes.Buffer
	// A closed port: --print must not dial anything.
	code := run([]string{"migrate", "--cluster", "prod", "--print", "--ch-addr", "127.0.0.1:1", "--pg-url", "postgres://x@127.0.0.1:1/x"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{
		"CREATE DATABASE IF NOT EXISTS flamestream ON CLUSTER prod;",
		"ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/flamestream/samples_local', '{replica}')",
		"ENGINE = Distributed(prod, flamestream, samples_local, cityHash64(service));",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("migrate --print lacks %q", want)
		}
	}
}

func TestReindexRequiresAServiceAndARange(t *testing.T) {
	tests := [][]string{
		{"reindex"},
		{"reindex", "--service", "s", "--from", "2026-01-01T00:00:00Z"},
		{"reindex", "--service", "s", "--from", "yesterday", "--to", "2026-01-02T00:00:00Z"},
	}
	for _, args := range tests {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2, a usage error (%s)", args, code, errb.String())
		}
	}
}

func TestParseTimeAcceptsRFC3339AndUnixSeconds(t *testing.T) {
	want := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, s := range []string{"2026-01-02T03:04:05Z", "2026-01-02T05:04:05+02:00", "1767323045"} {
		got, err := parseTime(s)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
}

// TestReindexProgressLine: on a terminal the reindex's phases are drawn in place, at most once a second;
// elsewhere nothing is drawn and the summary line is all that is written.
func TestReindexProgressLine(t *testing.T) {
	day := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	res := indexer.ReindexResult{From: day, To: day.Add(48 * time.Hour)}
	var tty bytes.Buffer
	p := cli.NewProgressFor(&tty, true)
	f := reindexProgress(p, time.Now())
	f("deleting", res, 0)
	res.Events, res.Indexed, res.Rows = 10, 9, 900
	f("replaying", res, 5) // within the second: not drawn
	if got, want := tty.String(), "\r\x1b[Kreindex: deleting 2026-01-01 … 2026-01-03 and waiting for the mutations, 0s"; got != want {
		t.Fatalf("terminal %q, want %q", got, want)
	}
	time.Sleep(1100 * time.Millisecond)
	f("replaying", res, 5)
	if !strings.Contains(tty.String(), "\r\x1b[Kreindex: replaying, 10 events read (5 pending in the stream), 9 profiles, 900 rows, ") {
		t.Fatalf("terminal %q lacks the replay line", tty.String())
	}

	var log bytes.Buffer
	p = cli.NewProgressFor(&log, false)
	f = reindexProgress(p, time.Now())
	f("deleting", res, 0)
	f("replaying", res, 0)
	p.Done("reindex: done")
	if log.String() != "reindex: done\n" {
		t.Fatalf("not a terminal: wrote %q, want only the summary line", log.String())
	}
}
