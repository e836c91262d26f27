// Command flamestream is the one Flamestream binary: every role and every operator tool is a subcommand.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
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
  service    list | set NAME --sample-threshold X --retention-days N
  config     print every configuration variable (markdown)

Every flag can also be set by its environment variable; run "flamestream <command> -h" for the list.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd := args[0]
	fs := flag.NewFlagSet("flamestream "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var demoOpts *demoOptions
	if cmd == "demo" {
		demoOpts = demoFlags(fs)
	}
	var reindexOpts *reindexOptions
	if cmd == "reindex" {
		reindexOpts = reindexFlags(fs)
	}
	var loadgenOpts *loadgenOptions
	if cmd == "loadgen" {
		loadgenOpts = loadgenFlags(fs)
	}
	var migrateOpts *migrateOptions
	if cmd == "migrate" {
		migrateOpts = migrateFlags(fs)
	}
	var backfillOpts *backfillOptions
	if cmd == "backfill" {
		backfillOpts = backfillFlags(fs)
	}
	var benchOpts *benchOptions
	if cmd == "bench" {
		benchOpts = benchFlags(fs)
		if len(args) > 1 && args[1] == "query" { // "bench query" is the only benchmark so far
			args = append([]string{cmd}, args[2:]...)
		}
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
	rest := fs.Args()
	switch cmd {
	case "all", "ingest", "indexer", "query":
		err = app.Run(ctx, cfg, log, cmd)
	case "loadgen":
		err = runLoadgen(ctx, loadgenOpts, stdout, stderr)
	case "service":
		err = runService(ctx, cfg, rest, stdout)
	case "migrate":
		err = runMigrate(ctx, cfg, log, migrateOpts, stdout)
	case "reindex":
		err = runReindex(ctx, cfg, log, reindexOpts, stdout)
	case "token":
		err = runToken(ctx, cfg, rest, stdout)
	case "user":
		err = runUser(ctx, cfg, rest, stdout)
	case "demo":
		err = runDemo(ctx, demoOpts, stdout)
	case "backfill":
		err = runBackfill(ctx, cfg, log, backfillOpts, stdout)
	case "bench":
		err = runBench(ctx, cfg, log, benchOpts, stdout)
	case "config":
		err = config.WriteMarkdown(stdout)
	default:
		fmt.Fprintf(stderr, "flamestream: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "flamestream "+cmd+":", err)
		return 1
	}
	return 0
}
