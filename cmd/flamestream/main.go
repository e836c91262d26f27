// Command flamestream is the one Flamestream binary: every role and every operator tool is a subcommand.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/flamestream/flamestream/internal/app"
	"github.com/flamestream/flamestream/internal/config"
	"github.com/flamestream/flamestream/internal/logging"
)

const usage = `usage: flamestream <command> [flags]

roles:
  all        every role in one process (NATS embedded unless NATS_URL is set)
  ingest     the agent-facing API
  indexer    the JetStream consumer that writes ClickHouse
  query      the query API and the web UI

tools:
  migrate    create or upgrade the PostgreSQL and ClickHouse schemas (--cluster NAME, --print)
  reindex    rebuild one service's time range from the stream (--service S --from T1 --to T2)
  token      create | list | revoke API tokens
  user       add a UI user (or change a password)
  demo       send demo profiles to an ingest address
  backfill   write a deterministic month of profiles straight into ClickHouse (for bench)
  bench      bench query: p50/p95 of flame graph, diff, top and timeline queries
  loadgen    offer agent-shaped load to an ingest address and report throughput and ack latency
  soak       steady load while indexer, ClickHouse, NATS and S3 are killed at random; checks exact totals and flat memory
  service    list | set NAME --sample-threshold X --retention-days N
  config     print every configuration variable (markdown)

Every flag can also be set by its environment variable; run "flamestream <command> -h" for the list.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// invocation is what a command runs with: the configuration, the logger, the arguments left after the
// flags, and where to write.
type invocation struct {
	cfg       config.Config
	log       *slog.Logger
	rest      []string
	out, diag io.Writer
}

// runner runs a command once its flags are parsed.
type runner func(ctx context.Context, in invocation) error

// command declares a command's own flags on fs, next to the configuration flags, and returns how to run it.
// It reports false for an unknown name.
func command(name string, fs *flag.FlagSet) (runner, bool) {
	switch name {
	case "all", "ingest", "indexer", "query":
		return func(ctx context.Context, in invocation) error { return app.Run(ctx, in.cfg, in.log, name) }, true
	case "loadgen":
		o := loadgenFlags(fs)
		return func(ctx context.Context, in invocation) error { return runLoadgen(ctx, o, in.out, in.diag) }, true
	case "soak":
		o := soakFlags(fs)
		return func(ctx context.Context, in invocation) error { return runSoak(ctx, in.cfg, o, in.out, in.diag) }, true
	case "service":
		return func(ctx context.Context, in invocation) error { return runService(ctx, in.cfg, in.rest, in.out) }, true
	case "migrate":
		o := migrateFlags(fs)
		return func(ctx context.Context, in invocation) error { return runMigrate(ctx, in.cfg, in.log, o, in.out) }, true
	case "reindex":
		o := reindexFlags(fs)
		return func(ctx context.Context, in invocation) error { return runReindex(ctx, in.cfg, in.log, o, in.out) }, true
	case "token":
		return func(ctx context.Context, in invocation) error { return runToken(ctx, in.cfg, in.rest, in.out) }, true
	case "user":
		return func(ctx context.Context, in invocation) error { return runUser(ctx, in.cfg, in.rest, in.out) }, true
	case "demo":
		o := demoFlags(fs)
		return func(ctx context.Context, in invocation) error { return runDemo(ctx, o, in.out) }, true
	case "backfill":
		o := backfillFlags(fs)
		return func(ctx context.Context, in invocation) error { return runBackfill(ctx, in.cfg, in.log, o, in.out) }, true
	case "bench":
		o := benchFlags(fs)
		return func(ctx context.Context, in invocation) error { return runBench(ctx, in.cfg, in.log, o, in.out) }, true
	case "config":
		return func(ctx context.Context, in invocation) error { return config.WriteMarkdown(in.out) }, true
	}
	return nil, false
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd := args[0]
	if cmd == "bench" && len(args) > 1 && args[1] == "query" { // "bench query" is the only benchmark so far
		args = append([]string{cmd}, args[2:]...)
	}
	fs := flag.NewFlagSet("flamestream "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	runCmd, ok := command(cmd, fs)
	if !ok {
		fmt.Fprintf(stderr, "flamestream: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	cfg, err := config.Load(fs, args[1:], nil)
	if errors.Is(err, flag.ErrHelp) {
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "flamestream:", err)
		return 2
	}
	log := logging.New(os.Stderr, cfg.LogLevel, cfg.LogFormat).With("cmd", cmd)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runCmd(ctx, invocation{cfg: cfg, log: log, rest: fs.Args(), out: stdout, diag: stderr}); err != nil {
		fmt.Fprintln(stderr, "flamestream "+cmd+":", err)
		return 1
	}
	return 0
}
