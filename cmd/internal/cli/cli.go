// Package cli runs the subcommands of Flamestream's binaries (flamestream, flamestream-dev): each command
// declares its own flags and the configuration variables it reads, accepts only those, and prints its own
// flags first under -h.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/flamestream/flamestream/internal/config"
	"github.com/flamestream/flamestream/internal/logging"
)

// Invocation is what a command runs with: the configuration of its variables, the logger, the arguments
// left after the flags, and where to write.
type Invocation struct {
	Config    config.Config
	Log       *slog.Logger
	Args      []string
	Out, Diag io.Writer
}

// Runner runs a command once its flags are parsed.
type Runner func(ctx context.Context, in Invocation) error

// Command is one subcommand.
type Command struct {
	Name    string
	Summary string
	// Vars are the configuration variables the command reads (nil: none).
	Vars func() []config.Var
	// Flags declares the command's own flags on fs and returns how to run it.
	Flags func(fs *flag.FlagSet) Runner
}

// Program is a binary made of subcommands.
type Program struct {
	Name     string
	Usage    string // printed for -h, help, no command or an unknown one
	Commands []Command
	// Alias rewrites the arguments before the lookup ("bench query" is "bench").
	Alias func(args []string) []string
}

// Exit codes of every command of both binaries (the README's "Commands" section documents them).
const (
	// ExitOK: the command did what it was asked (help asked for with -h, --help or help is this too).
	ExitOK = 0
	// ExitFailure: the command ran and failed (a server unreachable, a soak finding, a refused reindex).
	ExitFailure = 1
	// ExitUsage: the command line is wrong (no or an unknown command, an unknown or malformed flag, a
	// missing or extra argument, a value out of range); nothing was done.
	ExitUsage = 2
)

// ErrUsage marks an error of the command line: a Runner returns it wrapped (see Usagef) and Run exits
// with ExitUsage instead of ExitFailure.
var ErrUsage = errors.New("usage error")

// usageError is an error of the command line; it Is ErrUsage.
type usageError struct{ msg string }

func (e usageError) Error() string        { return e.msg }
func (e usageError) Is(target error) bool { return target == ErrUsage }

// Usagef returns an error of the command line (a missing flag, a wrong argument): Run prints it with a
// hint to -h and exits with ExitUsage.
func Usagef(format string, args ...any) error {
	return usageError{msg: fmt.Sprintf(format, args...)}
}

// FlagError is what a subcommand's own flag set returns from Parse, as Run reads it: flag.ErrHelp stays
// (help was asked for: ExitOK), any other error is one of the command line (ExitUsage).
func FlagError(err error) error {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return usageError{msg: err.Error()}
}

// Run runs the command args name and returns the process exit code: ExitOK, ExitFailure when the command
// failed, ExitUsage for an error of the command line (nothing was run, or the Runner returned ErrUsage).
// Help asked for (-h, --help, help, "command -h") is ExitOK; the usage printed because the command line
// was wrong goes to stderr with ExitUsage.
func (p Program) Run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, p.Usage)
		return ExitUsage
	}
	if args[0] == "help" && len(args) == 2 {
		args = []string{args[1], "-h"} // "help reindex" is "reindex -h"
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, p.Usage)
		return ExitOK
	}
	if p.Alias != nil {
		args = p.Alias(args)
	}
	var cmd *Command
	for i := range p.Commands {
		if p.Commands[i].Name == args[0] {
			cmd = &p.Commands[i]
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "%s: unknown command %q\n\n%s", p.Name, args[0], p.Usage)
		return ExitUsage
	}
	fs := flag.NewFlagSet(p.Name+" "+cmd.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	run := cmd.Flags(fs)
	own := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { own[f.Name] = true })
	var vars []config.Var
	if cmd.Vars != nil {
		vars = cmd.Vars()
	}
	fs.Usage = func() { p.usage(stderr, cmd, fs, own) }
	cfg, err := config.Load(fs, args[1:], nil, vars)
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK // the flag package printed the usage, as asked
	}
	if err != nil {
		fmt.Fprintln(stderr, p.Name+":", err)
		return ExitUsage
	}
	log := logging.New(os.Stderr, cfg.LogLevel, cfg.LogFormat).With("cmd", cmd.Name)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, Invocation{Config: cfg, Log: log, Args: fs.Args(), Out: stdout, Diag: stderr}); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK // a subcommand's own flag set (token create -h) printed its usage, as asked
		}
		fmt.Fprintln(stderr, p.Name+" "+cmd.Name+":", err)
		if errors.Is(err, ErrUsage) {
			fmt.Fprintf(stderr, "run \"%s %s -h\" for its flags\n", p.Name, cmd.Name)
			return ExitUsage
		}
		return ExitFailure
	}
	return ExitOK
}

// usage prints the command's own flags first, then its configuration flags.
func (p Program) usage(w io.Writer, cmd *Command, fs *flag.FlagSet, own map[string]bool) {
	fmt.Fprintf(w, "usage: %s %s [flags]\n\n%s\n", p.Name, cmd.Name, cmd.Summary)
	print := func(title string, mine bool) {
		sub := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
		fs.VisitAll(func(f *flag.Flag) {
			if own[f.Name] == mine {
				sub.Var(f.Value, f.Name, f.Usage)
				sub.Lookup(f.Name).DefValue = f.DefValue
			}
		})
		n := 0
		sub.VisitAll(func(*flag.Flag) { n++ })
		if n == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s:\n", title)
		sub.SetOutput(w)
		sub.PrintDefaults()
	}
	print("flags of "+cmd.Name, true)
	print("configuration (each flag overrides its environment variable)", false)
}

// Usage formats the command list of a program's usage text: one line a command.
func Usage(cmds []Command) string {
	var b strings.Builder
	for _, c := range cmds {
		fmt.Fprintf(&b, "  %-10s %s\n", c.Name, c.Summary)
	}
	return b.String()
}
