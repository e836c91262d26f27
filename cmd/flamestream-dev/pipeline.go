package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // the role command's -pprof address serves /debug/pprof/
	"os"
	"time"

	"github.com/flamestream/flamestream/cmd/flamestream/roles"
	"github.com/flamestream/flamestream/cmd/internal/cli"
	"github.com/flamestream/flamestream/indexer"
	"github.com/flamestream/flamestream/internal/config"
	"github.com/flamestream/flamestream/internal/soak"
)

type pipelineOptions struct {
	shape                                  *string
	lines, stacks, depthMin, depthMax      *int
	pool, agents, workers                  *int
	rate                                   *float64
	duration, drain, poll, settle          *time.Duration
	seed                                   *uint64
	jsonOut, dir, profileRole, profileOut  *string
	natsServer, versitygw, clickhouse, srv *string
	keep                                   *bool
}

// pipelineFlags declares the pipeline command's flags next to the configuration flags.
func pipelineFlags(fs *flag.FlagSet) *pipelineOptions {
	return &pipelineOptions{
		shape:       fs.String("shape", "60", "profile shape preset: 60 (agent-shaped, 60 lines) or 2000 (≈ 830 KB of text); the flags below override it"),
		lines:       fs.Int("lines", 0, "stack lines per profile (0: the preset's)"),
		stacks:      fs.Int("stacks", 0, "distinct stacks of the service (0: the preset's)"),
		depthMin:    fs.Int("depth-min", 0, "fewest frames per stack (0: the preset's)"),
		depthMax:    fs.Int("depth-max", 0, "most frames per stack (0: the preset's)"),
		pool:        fs.Int("pool", 0, "different stack-line sets the uploads cycle through (0: the preset's)"),
		agents:      fs.Int("agents", 0, "hosts sending (0: the preset's)"),
		rate:        fs.Float64("rate", 0, "uploads per second offered (0: saturation, -workers always in flight)"),
		workers:     fs.Int("workers", 32, "uploads in flight at most"),
		duration:    fs.Duration("duration", time.Minute, "how long uploads are offered"),
		drain:       fs.Duration("drain", 3*time.Minute, "longest wait after the load for every accepted profile to be queryable"),
		poll:        fs.Duration("poll", 500*time.Millisecond, "how often ClickHouse is polled for newly queryable batches (the lag's resolution)"),
		settle:      fs.Duration("settle", time.Minute, "longest time the CPU window goes on after the drain, until ClickHouse's merges are done (negative: none)"),
		seed:        fs.Uint64("seed", 1, "random seed of the profiles"),
		jsonOut:     fs.String("json", "", "also write the report as JSON to this file (- for stdout)"),
		dir:         fs.String("dir", "", "directory for the servers' data and logs (default: a temporary one, removed after)"),
		keep:        fs.Bool("keep", false, "keep the directory"),
		profileRole: fs.String("pprof-role", "", "take a CPU profile of this role (ingest, indexer, query) over the load"),
		profileOut:  fs.String("pprof-out", "pipeline.pprof", "where -pprof-role's profile goes"),
		natsServer:  fs.String("nats-server", "", "nats-server binary (default: PATH, then .bin/)"),
		versitygw:   fs.String("versitygw", "", "versitygw binary (default: PATH, then .bin/)"),
		clickhouse:  fs.String("clickhouse-server", "", "clickhouse-server binary (default: PATH, then /usr/sbin)"),
		srv:         serverFlag(fs),
	}
}

// pipelineShape returns the preset named by -shape with the shape flags that were set applied.
func pipelineShape(o *pipelineOptions) (soak.PipelineShape, error) {
	sh, ok := soak.PipelineShapes[*o.shape]
	if !ok {
		return sh, cli.Usagef("unknown -shape %q (want 60 or 2000)", *o.shape)
	}
	for _, f := range []struct {
		v   *int
		dst *int
	}{{o.lines, &sh.Lines}, {o.stacks, &sh.Stacks}, {o.depthMin, &sh.MinDepth}, {o.depthMax, &sh.MaxDepth},
		{o.pool, &sh.Pool}, {o.agents, &sh.Agents}} {
		if *f.v < 0 {
			return sh, cli.Usagef("shape flags must not be negative")
		}
		if *f.v > 0 {
			*f.dst = *f.v
		}
	}
	if *o.lines > 0 {
		sh.Name = fmt.Sprint(*o.lines)
	}
	return sh, nil
}

// runPipeline runs the pipeline bench on its own servers and roles and prints the table (and JSON).
func runPipeline(ctx context.Context, cfg config.Config, o *pipelineOptions, out, diag io.Writer) error {
	server, err := serverBinary(*o.srv)
	if err != nil {
		return err
	}
	sh, err := pipelineShape(o)
	if err != nil {
		return err
	}
	prog := func(flagValue, name string) string {
		if flagValue != "" {
			return flagValue
		}
		return soak.FindProgram(name)
	}
	self, _ := os.Executable()
	rep, err := soak.RunPipeline(ctx, soak.PipelineConfig{Shape: sh, Rate: *o.rate, Workers: *o.workers,
		Duration: *o.duration, Drain: *o.drain, PollEvery: *o.poll, Settle: *o.settle, Seed: *o.seed,
		Binary: server, NATSServer: prog(*o.natsServer, "nats-server"), VersityGW: prog(*o.versitygw, "versitygw"),
		ClickHouseServer: prog(*o.clickhouse, "clickhouse-server"), PostgresURL: cfg.PostgresURL,
		Dir: *o.dir, Keep: *o.keep, ProfileRole: *o.profileRole, RoleBinary: self, ProfileOut: *o.profileOut,
		Progress: diag, BuildRollups: indexer.BuildEverything})
	if rep != nil {
		rep.WriteTable(out)
		if *o.jsonOut != "" {
			b, _ := json.MarshalIndent(rep, "", "  ")
			b = append(b, '\n')
			if *o.jsonOut == "-" {
				_, _ = out.Write(b)
			} else if werr := os.WriteFile(*o.jsonOut, b, 0o644); werr != nil {
				return werr
			}
		}
	}
	return err
}

// roleFlags declares the role command's flag: it runs one server role in this process, as `flamestream
// <role>` does, with /debug/pprof/ served on an address of its own, so that the pipeline bench can profile
// a role under load without the server binary carrying pprof.
func roleFlags(fs *flag.FlagSet) func(context.Context, []string, *slog.Logger, config.Config) error {
	addr := fs.String("pprof", "", "address serving /debug/pprof/ (empty: none)")
	return func(ctx context.Context, args []string, log *slog.Logger, cfg config.Config) error {
		if len(args) != 1 {
			return cli.Usagef("usage: flamestream-dev role [-pprof ADDR] ROLE")
		}
		if _, ok := roles.Lookup(args[0]); !ok {
			return cli.Usagef("unknown role %q", args[0])
		}
		if *addr != "" {
			l, err := net.Listen("tcp", *addr)
			if err != nil {
				return err
			}
			srv := &http.Server{Handler: http.DefaultServeMux, ReadHeaderTimeout: 10 * time.Second}
			go func() { _ = srv.Serve(l) }()
			defer srv.Close()
		}
		return roles.Run(ctx, cfg, log, args[0])
	}
}
