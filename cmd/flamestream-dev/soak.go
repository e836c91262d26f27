package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/flamestream/flamestream/cmd/internal/cli"
	"github.com/flamestream/flamestream/indexer"
	"github.com/flamestream/flamestream/internal/config"
	"github.com/flamestream/flamestream/internal/soak"
)

type soakOptions struct {
	duration, minDown, maxDown, minGap, maxGap *time.Duration
	sampleEvery, queryEvery, drain             *time.Duration
	seed                                       *uint64
	rate                                       *float64
	agents, lines                              *int
	targets, jsonOut, dir                      *string
	natsServer, versitygw, clickhouse          *string
	keep                                       *bool
	server                                     *string
}

// soakFlags declares the soak command's flags next to the configuration flags.
func soakFlags(fs *flag.FlagSet) *soakOptions {
	return &soakOptions{
		duration:    fs.Duration("duration", 30*time.Minute, "how long to offer load (faults stop shortly before the end)"),
		seed:        fs.Uint64("seed", 1, "random seed of the uploads and of the fault schedule"),
		rate:        fs.Float64("rate", 20, "uploads per second"),
		agents:      fs.Int("agents", 50, "hosts to emulate"),
		lines:       fs.Int("lines", 60, "stack lines per profile"),
		targets:     fs.String("targets", strings.Join(soak.Targets, ","), "what may be killed, comma-separated (empty: no faults)"),
		minDown:     fs.Duration("min-down", 2*time.Second, "shortest time a killed process stays down"),
		maxDown:     fs.Duration("max-down", 10*time.Second, "longest time a killed process stays down"),
		minGap:      fs.Duration("min-gap", 10*time.Second, "shortest fault-free time between two faults"),
		maxGap:      fs.Duration("max-gap", 60*time.Second, "longest fault-free time between two faults"),
		sampleEvery: fs.Duration("sample-every", 10*time.Second, "how often RSS, goroutines and lag are sampled"),
		queryEvery:  fs.Duration("query-every", 15*time.Second, "how often a flame graph is read during the load (0: never)"),
		drain:       fs.Duration("drain", 3*time.Minute, "longest wait after the load for every accepted profile to be indexed"),
		jsonOut:     fs.String("json", "", "also write the report as JSON to this file (- for stdout)"),
		dir:         fs.String("dir", "", "directory for the soak's servers and logs (default: a temporary one, kept on failure)"),
		keep:        fs.Bool("keep", false, "keep the directory even when the soak passes"),
		natsServer:  fs.String("nats-server", "", "nats-server binary (default: PATH, then .bin/)"),
		versitygw:   fs.String("versitygw", "", "versitygw binary (default: PATH, then .bin/)"),
		clickhouse:  fs.String("clickhouse-server", "", "clickhouse-server binary (default: PATH, then /usr/sbin)"),
		server:      serverFlag(fs),
	}
}

// runSoak runs the soak with its own ClickHouse, NATS, versitygw and Flamestream roles (the flamestream binary, see serverBinary),
// prints the table and fails when the soak found anything.
func runSoak(ctx context.Context, cfg config.Config, o *soakOptions, out, diag io.Writer) error {
	self, err := serverBinary(*o.server)
	if err != nil {
		return err
	}
	prog := func(flagValue, name string) string {
		if flagValue != "" {
			return flagValue
		}
		return soak.FindProgram(name)
	}
	// soak.Run writes a line per sample and per fault: on a terminal the latest is the progress line,
	// elsewhere only the summary is written (the report table lists the faults and samples).
	line := cli.NewProgress(diag)
	var targets []string
	for _, t := range strings.Split(*o.targets, ",") {
		if t = strings.TrimSpace(t); t != "" {
			targets = append(targets, t)
		}
	}
	if targets == nil {
		targets = []string{}
	}
	sc := soak.Config{Duration: *o.duration, Seed: *o.seed, Rate: *o.rate, Agents: *o.agents, Lines: *o.lines,
		Targets: targets, MinDown: *o.minDown, MaxDown: *o.maxDown, MinGap: *o.minGap, MaxGap: *o.maxGap,
		SampleEvery: *o.sampleEvery, QueryEvery: *o.queryEvery, Drain: *o.drain,
		Binary: self, NATSServer: prog(*o.natsServer, "nats-server"), VersityGW: prog(*o.versitygw, "versitygw"),
		ClickHouseServer: prog(*o.clickhouse, "clickhouse-server"),
		PostgresURL:      cfg.PostgresURL, Dir: *o.dir, Progress: line, BuildRollups: indexer.BuildEverything}
	rep, err := soak.Run(ctx, sc)
	if rep != nil {
		line.Done("soak: %d profiles offered, %d acked, %d rejected, %d faults, %d findings in %v", rep.Offered, rep.Acked,
			rep.Rejected, len(rep.Faults), len(rep.Failures), time.Duration(rep.DurationSeconds*float64(time.Second)).Round(time.Second))
	} else {
		line.Clear()
	}
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
	if err != nil {
		return err
	}
	// A temporary directory goes once the report is out, unless it holds the logs of a failure.
	if *o.dir == "" && !*o.keep && rep.OK() {
		_ = os.RemoveAll(rep.Dir)
	}
	if !rep.OK() {
		return fmt.Errorf("soak failed: %d findings (logs in %s)", len(rep.Failures), rep.Dir)
	}
	return nil
}
