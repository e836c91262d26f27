// Command flamestream-dev holds the tools that measure and stress Flamestream rather than run it: query
// benchmarks, synthetic backfills, load generation and the soak. They share code with the tests, not with
// the server binary, which stays free of them; the roles they need run as `flamestream` processes.
package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/flamestream/flamestream/cmd/flamestream/roles"
	"github.com/flamestream/flamestream/cmd/internal/cli"
	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/config"
	"github.com/flamestream/flamestream/internal/pgdb"
	"github.com/flamestream/flamestream/internal/schema"
	"github.com/flamestream/flamestream/query"
)

// commands are the tools; each reads only the configuration variables it uses.
func commands() []cli.Command {
	stores := func() []config.Var {
		return config.Join(config.Postgres(), config.ClickHouse(), query.Vars(), config.Logging())
	}
	return []cli.Command{
		{Name: "backfill", Summary: "write deterministic profiles straight into ClickHouse (for bench)",
			Vars: func() []config.Var { return config.Join(config.Postgres(), config.ClickHouse(), config.Logging()) },
			Flags: func(fs *flag.FlagSet) cli.Runner {
				o := backfillFlags(fs)
				return func(ctx context.Context, in cli.Invocation) error {
					return runBackfill(ctx, in.Config, in.Log, o, in.Out, cli.NewProgress(in.Diag))
				}
			}},
		{Name: "bench", Summary: "bench query: p50/p95 of flame graph, diff, top and timeline queries; the goals of a real fleet",
			Vars: stores,
			Flags: func(fs *flag.FlagSet) cli.Runner {
				o := benchFlags(fs)
				return func(ctx context.Context, in cli.Invocation) error { return runBench(ctx, in.Config, in.Log, o, in.Out) }
			}},
		{Name: "loadgen", Summary: "offer agent-shaped load to an ingest address and report throughput and ack latency",
			Flags: func(fs *flag.FlagSet) cli.Runner {
				o := loadgenFlags(fs)
				return func(ctx context.Context, in cli.Invocation) error { return runLoadgen(ctx, o, in.Out, in.Diag) }
			}},
		{Name: "pipeline", Summary: "pipeline bench: accepted/s, indexed/s, lag upload → queryable, CPU per profile of every process (-shape 60 or 2000)",
			Vars: func() []config.Var { return config.Join(config.Postgres(), config.Logging()) },
			Flags: func(fs *flag.FlagSet) cli.Runner {
				o := pipelineFlags(fs)
				return func(ctx context.Context, in cli.Invocation) error {
					return runPipeline(ctx, in.Config, o, in.Out, in.Diag)
				}
			}},
		{Name: "role", Summary: "run one server role in this process with /debug/pprof/ on -pprof ADDR (used by pipeline -pprof-role)",
			Vars: roles.AllVars,
			Flags: func(fs *flag.FlagSet) cli.Runner {
				run := roleFlags(fs)
				return func(ctx context.Context, in cli.Invocation) error { return run(ctx, in.Args, in.Log, in.Config) }
			}},
		{Name: "soak", Summary: "steady load while indexer, ClickHouse, NATS and S3 are killed at random; checks exact totals and flat memory",
			Vars: func() []config.Var { return config.Join(config.Postgres(), config.Logging()) },
			Flags: func(fs *flag.FlagSet) cli.Runner {
				o := soakFlags(fs)
				return func(ctx context.Context, in cli.Invocation) error { return runSoak(ctx, in.Config, o, in.Out, in.Diag) }
			}},
	}
}

func program() cli.Program {
	cmds := commands()
	return cli.Program{Name: "flamestream-dev", Commands: cmds,
		Usage: "usage: flamestream-dev <command> [flags]\n\n" + cli.Usage(cmds) +
			"\nEvery configuration flag can also be set by its environment variable; run \"flamestream-dev <command> -h\" for the list.\n",
		Alias: func(args []string) []string {
			if args[0] == "bench" && len(args) > 1 && args[1] == "query" {
				return append([]string{"bench"}, args[2:]...)
			}
			if args[0] == "bench" && len(args) > 1 && args[1] == "pipeline" { // "bench pipeline" is "pipeline"
				return append([]string{"pipeline"}, args[2:]...)
			}
			return args
		}}
}

func main() {
	os.Exit(program().Run(os.Args[1:], os.Stdout, os.Stderr))
}

// openCH connects to ClickHouse and applies its migrations, as the server's roles do.
func openCH(ctx context.Context, cfg config.Config, log *slog.Logger) (*chdb.DB, error) {
	db, err := chdb.Open(ctx, chdb.Options{Addr: cfg.ClickHouseAddr, User: cfg.ClickHouseUser,
		Password: cfg.ClickHousePassword, Database: cfg.ClickHouseDatabase})
	if err != nil {
		return nil, err
	}
	if _, err := schema.Migrate(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// openPG connects to PostgreSQL and applies its migrations.
func openPG(ctx context.Context, cfg config.Config, log *slog.Logger) (*pgdb.DB, error) {
	pg, err := pgdb.Open(ctx, cfg.PostgresURL)
	if err != nil {
		return nil, err
	}
	if _, err := pg.Migrate(ctx); err != nil {
		pg.Close()
		return nil, err
	}
	return pg, nil
}

// serverFlag declares -server, the flamestream binary whose roles a tool starts as child processes.
func serverFlag(fs *flag.FlagSet) *string {
	return fs.String("server", "", "the flamestream binary to start roles from (default: flamestream beside this binary, then PATH)")
}

// serverBinary returns the flamestream binary: flag if set, else the one beside this executable (both are
// built into .bin/), else the one on PATH.
func serverBinary(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "flamestream")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	if p, err := exec.LookPath("flamestream"); err == nil {
		return p, nil
	}
	return "", errors.New("no flamestream binary beside this one or on PATH: build it (go tool task build) or pass -server")
}

// run runs the binary on args, as main does, and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int { return program().Run(args, stdout, stderr) }
