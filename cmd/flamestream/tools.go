package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/flamestream/flamestream/cmd/flamestream/roles"
	"github.com/flamestream/flamestream/cmd/internal/cli"
	"github.com/flamestream/flamestream/internal/config"
	"github.com/flamestream/flamestream/internal/pgdb"
)

func runMigrate(ctx context.Context, cfg config.Config, log *slog.Logger, o *migrateOptions, out io.Writer) error {
	if *o.print {
		return printSchema(cfg, o, out)
	}
	if *o.cluster != "" || *o.storage != "auto" {
		return migrateCluster(ctx, cfg, log, o, out)
	}
	pg, err := roles.OpenPG(ctx, cfg, log)
	if err != nil {
		return err
	}
	pg.Close()
	ch, err := roles.OpenCH(ctx, cfg, log)
	if err != nil {
		return err
	}
	ch.Close()
	fmt.Fprintln(out, "migrated postgres and clickhouse")
	return nil
}

func runToken(ctx context.Context, cfg config.Config, args []string, out io.Writer) error {
	if len(args) == 0 {
		return cli.Usagef("usage: flamestream token create|list|revoke")
	}
	pg, err := openMeta(ctx, cfg)
	if err != nil {
		return err
	}
	defer pg.Close()
	fs := flag.NewFlagSet("token "+args[0], flag.ContinueOnError)
	switch args[0] {
	case "create":
		service := fs.String("service", "", "service the token is valid for (empty: every service)")
		name := fs.String("name", "", "a label for the token")
		kind := fs.String("kind", pgdb.KindAgent, "agent (uploads profiles) or read (query API)")
		if err := fs.Parse(args[1:]); err != nil {
			return cli.FlagError(err)
		}
		tok, secret, err := pg.CreateToken(ctx, *name, *kind, *service)
		if err != nil {
			return err
		}
		scope := tok.Service
		if scope == "" {
			scope = "all services"
		}
		fmt.Fprintf(out, "created %s token %d for %s; it is shown only once:\n%s\n", tok.Kind, tok.ID, scope, secret)
		return nil
	case "list":
		list, err := pg.ListTokens(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tKIND\tSERVICE\tNAME\tPREFIX\tCREATED\tREVOKED")
		for _, t := range list {
			svc := t.Service
			if svc == "" {
				svc = "*"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s…\t%s\t%v\n", t.ID, t.Kind, svc, t.Name, t.Prefix, t.CreatedAt.Format(time.RFC3339), t.Revoked)
		}
		return tw.Flush()
	case "revoke":
		if len(args) != 2 {
			return cli.Usagef("usage: flamestream token revoke ID")
		}
		id, err := strconv.ParseInt(args[1], 10, 64)
		if err != nil {
			return cli.Usagef("token id: %v", err)
		}
		ok, err := pg.RevokeToken(ctx, id)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("no live token %d", id)
		}
		fmt.Fprintf(out, "revoked token %d\n", id)
		return nil
	}
	return cli.Usagef("unknown token command %q (create, list or revoke)", args[0])
}

func runUser(ctx context.Context, cfg config.Config, args []string, out io.Writer) error {
	if len(args) != 3 || args[0] != "add" {
		return cli.Usagef("usage: flamestream user add USERNAME PASSWORD")
	}
	pg, err := openMeta(ctx, cfg)
	if err != nil {
		return err
	}
	defer pg.Close()
	if err := pg.SetUser(ctx, args[1], args[2]); err != nil {
		return err
	}
	fmt.Fprintf(out, "user %s saved\n", args[1])
	return nil
}

// openMeta opens PostgreSQL for an operator command, its schema migrated (the same path the roles take).
func openMeta(ctx context.Context, cfg config.Config) (*pgdb.DB, error) {
	return roles.OpenPG(ctx, cfg, slog.New(slog.DiscardHandler))
}
