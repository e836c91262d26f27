package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/flamestream/flamestream/cmd/internal/cli"
	"github.com/flamestream/flamestream/internal/config"
	"github.com/flamestream/flamestream/internal/pgdb"
)

// runService manages per-service settings: `service list` and
// `service set NAME [--sample-threshold X] [--retention-days N]` (the same settings as PUT
// /api/v1/settings/{service}). A flag left out keeps the current value.
func runService(ctx context.Context, cfg config.Config, args []string, out io.Writer) error {
	if len(args) == 0 {
		return cli.Usagef("usage: flamestream service list | set NAME [--sample-threshold X] [--retention-days N]")
	}
	pg, err := openMeta(ctx, cfg)
	if err != nil {
		return err
	}
	defer pg.Close()
	switch args[0] {
	case "list":
		list, err := pg.ListServices(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "SERVICE\tSAMPLE_THRESHOLD\tRETENTION_DAYS\tLAST_SEEN")
		for _, s := range list {
			ret, seen := "default", "-"
			if s.RetentionDays != nil {
				ret = strconv.Itoa(*s.RetentionDays)
			}
			if s.LastSeen != nil {
				seen = s.LastSeen.Format("2006-01-02T15:04:05Z07:00")
			}
			fmt.Fprintf(tw, "%s\t%g\t%s\t%s\n", s.Name, s.SampleThreshold, ret, seen)
		}
		return tw.Flush()
	case "set":
		if len(args) < 2 || args[1] == "" || args[1][0] == '-' {
			return cli.Usagef("usage: flamestream service set NAME [--sample-threshold X] [--retention-days N]")
		}
		name := args[1]
		fs := flag.NewFlagSet("service set", flag.ContinueOnError)
		threshold := fs.Float64("sample-threshold", -1, "fraction of uploads archived but not indexed, 0..1")
		retention := fs.Int("retention-days", -1, "days of data kept for this service, at most the global raw retention (0: the global default)")
		if err := fs.Parse(args[2:]); err != nil {
			return cli.FlagError(err)
		}
		cur, err := pg.GetService(ctx, name)
		if err != nil && !errors.Is(err, pgdb.ErrNotFound) {
			return err
		}
		if *threshold >= 0 {
			cur.SampleThreshold = *threshold
		}
		switch {
		case *retention == 0:
			cur.RetentionDays = nil
		case *retention > 0:
			// The same rule as PUT /api/v1/settings: a service's retention can only shorten the raw one.
			if err := pgdb.CheckRetentionDays(retention, cfg.RetentionRawDays); err != nil {
				return fmt.Errorf("--retention-days: %w", err) // a rule of the configuration: a failure, not a usage error
			}
			cur.RetentionDays = retention
		case *retention < -1:
			return cli.Usagef("--retention-days %d: must be at least 1, or 0 for the global retention", *retention)
		}
		if err := pg.SetServiceSettings(ctx, name, cur.SampleThreshold, cur.RetentionDays); err != nil {
			return err
		}
		ret := "default"
		if cur.RetentionDays != nil {
			ret = strconv.Itoa(*cur.RetentionDays) + " days"
		}
		fmt.Fprintf(out, "service %s: sample_threshold %g, retention %s\n", name, cur.SampleThreshold, ret)
		return nil
	}
	return fmt.Errorf("unknown service command %q", args[0])
}
