// Command flamestream is the Flamestream server binary: each role (see package roles) and each operator
// tool is a subcommand. The tools that measure it (bench, backfill, loadgen, soak) are flamestream-dev's.
package main

import (
	"context"
	"flag"
	"io"
	"os"

	"github.com/flamestream/flamestream/cmd/flamestream/roles"
	"github.com/flamestream/flamestream/cmd/internal/cli"
	"github.com/flamestream/flamestream/indexer"
	"github.com/flamestream/flamestream/internal/config"
)

// noFlags is a command without flags of its own.
func noFlags(run cli.Runner) func(*flag.FlagSet) cli.Runner {
	return func(*flag.FlagSet) cli.Runner { return run }
}

// roleCommands are the server roles, from the role table.
func roleCommands() []cli.Command {
	var out []cli.Command
	for _, r := range roles.Table() {
		out = append(out, cli.Command{Name: r.Name, Summary: r.Summary + "; opens " + r.Opens.String(), Vars: r.Vars,
			Flags: noFlags(func(ctx context.Context, in cli.Invocation) error { return roles.Run(ctx, in.Config, in.Log, r.Name) })})
	}
	return out
}

// toolCommands are the operator tools; each reads only the configuration of what it opens.
func toolCommands() []cli.Command {
	meta := func() []config.Var { return config.Join(config.Postgres(), config.Logging()) }
	return []cli.Command{
		{Name: "migrate", Summary: "create or upgrade the PostgreSQL and ClickHouse schemas (--cluster NAME, --print)",
			Vars: func() []config.Var { return config.Join(config.Postgres(), config.ClickHouse(), config.Logging()) },
			Flags: func(fs *flag.FlagSet) cli.Runner {
				o := migrateFlags(fs)
				return func(ctx context.Context, in cli.Invocation) error {
					return runMigrate(ctx, in.Config, in.Log, o, in.Out)
				}
			}},
		{Name: "reindex", Summary: "rebuild one service's time range from the stream (--service S --from T1 --to T2)",
			Vars: func() []config.Var {
				return config.Join(config.ClickHouse(), config.S3(), config.NATS(), indexer.Vars(), config.Logging())
			},
			Flags: func(fs *flag.FlagSet) cli.Runner {
				o := reindexFlags(fs)
				return func(ctx context.Context, in cli.Invocation) error {
					return runReindex(ctx, in.Config, in.Log, o, in.Out, cli.NewProgress(in.Diag))
				}
			}},
		{Name: "token", Summary: "create | list | revoke API tokens", Vars: meta,
			Flags: noFlags(func(ctx context.Context, in cli.Invocation) error { return runToken(ctx, in.Config, in.Args, in.Out) })},
		{Name: "user", Summary: "add a UI user (or change a password): user add NAME PASSWORD", Vars: meta,
			Flags: noFlags(func(ctx context.Context, in cli.Invocation) error { return runUser(ctx, in.Config, in.Args, in.Out) })},
		{Name: "service", Summary: "list | set NAME --sample-threshold X --retention-days N",
			// A service's retention is bounded by the global raw retention.
			Vars:  func() []config.Var { return config.Join(config.Postgres(), indexer.RetentionVars(), config.Logging()) },
			Flags: noFlags(func(ctx context.Context, in cli.Invocation) error { return runService(ctx, in.Config, in.Args, in.Out) })},
		{Name: "rules", Summary: "rules check FILE: load frame rewrite rules and run their tests (FLAMESTREAM_FRAME_RULES)",
			Flags: noFlags(func(ctx context.Context, in cli.Invocation) error { return runRules(in.Args, in.Out) })},
		{Name: "demo", Summary: "send demo profiles to an ingest address",
			Flags: func(fs *flag.FlagSet) cli.Runner {
				o := demoFlags(fs)
				return func(ctx context.Context, in cli.Invocation) error { return runDemo(ctx, o, in.Out) }
			}},
		{Name: "config", Summary: "print every configuration variable (markdown)",
			Flags: noFlags(func(ctx context.Context, in cli.Invocation) error {
				return config.WriteMarkdown(in.Out, roles.AllVars())
			})},
	}
}

func program() cli.Program {
	rs, tools := roleCommands(), toolCommands()
	return cli.Program{Name: "flamestream", Commands: append(rs, tools...),
		Usage: "usage: flamestream <command> [flags]\n\nroles:\n" + cli.Usage(rs) + "\ntools:\n" + cli.Usage(tools) +
			"\nEach command reads only its own configuration; every flag can also be set by its environment variable.\n" +
			"Run \"flamestream <command> -h\" for the list. Benchmarks, backfill, loadgen and soak are flamestream-dev's.\n"}
}

func main() {
	os.Exit(program().Run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the binary on args, as main does, and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int { return program().Run(args, stdout, stderr) }
