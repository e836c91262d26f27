package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"
)

func testProgram() Program {
	noFlags := func(r Runner) func(*flag.FlagSet) Runner { return func(*flag.FlagSet) Runner { return r } }
	return Program{Name: "prog", Usage: "usage: prog <command>\n", Commands: []Command{
		{Name: "ok", Summary: "succeeds", Flags: func(fs *flag.FlagSet) Runner {
			fs.Int("n", 1, "a number")
			return func(context.Context, Invocation) error { return nil }
		}},
		{Name: "fail", Summary: "fails", Flags: noFlags(func(context.Context, Invocation) error { return errors.New("server down") })},
		{Name: "usage", Summary: "a missing argument", Flags: noFlags(func(context.Context, Invocation) error {
			return fmt.Errorf("checking: %w", Usagef("usage: prog usage NAME"))
		})},
		{Name: "sub", Summary: "a subcommand with its own flag set", Flags: noFlags(func(_ context.Context, in Invocation) error {
			fs := flag.NewFlagSet("sub", flag.ContinueOnError)
			fs.SetOutput(in.Diag)
			fs.Bool("x", false, "x")
			return FlagError(fs.Parse(in.Args[1:])) // after its verb, as in "token create -kind read"
		})},
	}}
}

// TestRunExitCodes: 0 for success and for help asked for, 1 for a command that failed, 2 for every
// error of the command line, whether cli finds it (no command, an unknown one, a bad flag) or the command
// does (Usagef, a sub flag set's error). The README's "Commands" section documents these codes.
func TestRunExitCodes(t *testing.T) {
	tests := []struct {
		args      []string
		code      int
		out, diag string // a substring of stdout and stderr ("" for nothing asked)
		emptyDiag bool
	}{
		{args: nil, code: ExitUsage, diag: "usage: prog"},
		{args: []string{"-h"}, code: ExitOK, out: "usage: prog", emptyDiag: true},
		{args: []string{"help"}, code: ExitOK, out: "usage: prog", emptyDiag: true},
		{args: []string{"--help"}, code: ExitOK, out: "usage: prog"},
		{args: []string{"help", "ok"}, code: ExitOK, diag: "usage: prog ok [flags]"},
		{args: []string{"help", "frobnicate"}, code: ExitUsage, diag: `unknown command "frobnicate"`},
		{args: []string{"frobnicate"}, code: ExitUsage, diag: `unknown command "frobnicate"`},
		{args: []string{"ok"}, code: ExitOK, emptyDiag: true},
		{args: []string{"ok", "-h"}, code: ExitOK, diag: "usage: prog ok"},
		{args: []string{"ok", "-n", "many"}, code: ExitUsage, diag: "invalid value"},
		{args: []string{"ok", "--bogus"}, code: ExitUsage, diag: "bogus"},
		{args: []string{"fail"}, code: ExitFailure, diag: "prog fail: server down"},
		{args: []string{"usage"}, code: ExitUsage, diag: `run "prog usage -h"`},
		{args: []string{"sub", "create", "--y"}, code: ExitUsage, diag: "flag provided but not defined: -y"},
		{args: []string{"sub", "create", "-h"}, code: ExitOK},
		{args: []string{"sub", "create", "-x"}, code: ExitOK, emptyDiag: true},
	}
	for _, tt := range tests {
		var out, diag bytes.Buffer
		code := testProgram().Run(tt.args, &out, &diag)
		if code != tt.code {
			t.Errorf("%q: exit %d, want %d (stdout %q, stderr %q)", tt.args, code, tt.code, out.String(), diag.String())
		}
		if !strings.Contains(out.String(), tt.out) || !strings.Contains(diag.String(), tt.diag) {
			t.Errorf("%q: stdout %q, stderr %q; want them to hold %q and %q", tt.args, out.String(), diag.String(), tt.out, tt.diag)
		}
		if tt.emptyDiag && diag.Len() > 0 {
			t.Errorf("%q: stderr %q, want nothing", tt.args, diag.String())
		}
	}
}

func TestUsageErrorsAreErrUsageOnlyWhenMarked(t *testing.T) {
	if !errors.Is(fmt.Errorf("x: %w", Usagef("y %d", 1)), ErrUsage) {
		t.Error("a wrapped Usagef is not ErrUsage")
	}
	if errors.Is(errors.New("usage: looks like one"), ErrUsage) {
		t.Error("a plain error is ErrUsage")
	}
	if FlagError(nil) != nil || FlagError(flag.ErrHelp) != flag.ErrHelp || !errors.Is(FlagError(errors.New("bad flag")), ErrUsage) {
		t.Error("FlagError: nil and ErrHelp must pass through, any other error must become a usage error")
	}
}

// fakeClock returns a clock moved by hand.
func fakeClock() (func() time.Time, func(time.Duration)) {
	t := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	return func() time.Time { return t }, func(d time.Duration) { t = t.Add(d) }
}

func TestProgressOnATerminalRedrawsAtMostOnceASecond(t *testing.T) {
	var w bytes.Buffer
	now, advance := fakeClock()
	p := newProgress(&w, true, time.Second, now)
	// Updates at 0, 0.3, 0.9, 1.0, 1.5 and 2.1 s: drawn at 0, 1.0 and 2.1 only.
	for i, d := range []time.Duration{0, 300, 600, 100, 500, 600} {
		advance(d * time.Millisecond)
		p.Update("step %d", i)
	}
	if got, want := w.String(), "\r\x1b[Kstep 0\r\x1b[Kstep 3\r\x1b[Kstep 5"; got != want {
		t.Fatalf("drawn %q, want %q", got, want)
	}
	w.Reset()
	p.Done("done: %d steps", 6)
	if got, want := w.String(), "\r\x1b[Kdone: 6 steps\n"; got != want {
		t.Fatalf("summary %q, want %q", got, want)
	}
}

func TestProgressElsewhereWritesOnlyTheSummary(t *testing.T) {
	var w bytes.Buffer
	now, advance := fakeClock()
	p := newProgress(&w, false, time.Second, now)
	for i := range 50 {
		advance(time.Second)
		p.Update("step %d", i)
		fmt.Fprintf(p, "line %d\n", i)
	}
	p.Clear()
	p.Done("done\nin 50 s") // a newline inside stays on one line
	if got, want := w.String(), "done in 50 s\n"; got != want {
		t.Fatalf("wrote %q, want only %q", got, want)
	}
	if IsTerminal(&w) {
		t.Fatal("a buffer is not a terminal")
	}
}

func TestProgressWriteTakesCompleteLines(t *testing.T) {
	var w bytes.Buffer
	now, advance := fakeClock()
	p := newProgress(&w, true, time.Second, now)
	fmt.Fprint(p, "fault 1: clickhouse killed\nsample ")
	advance(2 * time.Second)
	fmt.Fprint(p, "12: rss 80 MiB\n\n")
	if got, want := w.String(), "\r\x1b[Kfault 1: clickhouse killed\r\x1b[Ksample 12: rss 80 MiB"; got != want {
		t.Fatalf("drawn %q, want %q", got, want)
	}
	w.Reset()
	p.Clear()
	p.Clear() // nothing left to clear
	if got := w.String(); got != "\r\x1b[K" {
		t.Fatalf("Clear wrote %q", got)
	}
}
