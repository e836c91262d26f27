package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flamestream/flamestream/cmd/flamestream/roles"
	"github.com/flamestream/flamestream/cmd/internal/cli"
	"github.com/flamestream/flamestream/indexer"
	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/config"
	"github.com/flamestream/flamestream/internal/objstore"
	"github.com/flamestream/flamestream/internal/schema"
)

type reindexOptions struct {
	service, from, to *string
	slack             *time.Duration
}

func reindexFlags(fs *flag.FlagSet) *reindexOptions {
	return &reindexOptions{
		service: fs.String("service", "", "service to rebuild"),
		from:    fs.String("from", "", "range start, RFC 3339 or unix seconds (widened to the start of its UTC day)"),
		to:      fs.String("to", "", "range end, RFC 3339 or unix seconds (widened to the end of its UTC day)"),
		slack:   fs.Duration("slack", time.Hour, "how late after its start a profile's event may have reached the stream"),
	}
}

// parseTime reads RFC 3339 or unix seconds.
func parseTime(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return t, fmt.Errorf("time %q: want RFC 3339 or unix seconds", s)
	}
	return t, nil
}

// runReindex rebuilds the range; prog shows the phase and the events replayed so far, and ends with a
// summary line.
func runReindex(ctx context.Context, cfg config.Config, log *slog.Logger, o *reindexOptions, out io.Writer, prog *cli.Progress) error {
	if *o.service == "" || *o.from == "" || *o.to == "" {
		return cli.Usagef("usage: flamestream reindex --service S --from T1 --to T2 [--slack 1h]")
	}
	from, err := parseTime(*o.from)
	if err != nil {
		return cli.Usagef("--from: %v", err)
	}
	to, err := parseTime(*o.to)
	if err != nil {
		return cli.Usagef("--to: %v", err)
	}
	if !from.Before(to) {
		return cli.Usagef("--from %s is not before --to %s", *o.from, *o.to)
	}
	db, err := roles.OpenCH(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer db.Close()
	store, err := objstore.Open(objstore.Options{Endpoint: cfg.S3Endpoint, AccessKey: cfg.S3AccessKey,
		SecretKey: cfg.S3SecretKey, Bucket: cfg.S3Bucket, Region: cfg.S3Region, Secure: cfg.S3Secure})
	if err != nil {
		return err
	}
	url := cfg.NATSURL
	if url == "" {
		url = nats.DefaultURL
	}
	nc, err := nats.Connect(url, nats.Name("flamestream-reindex"))
	if err != nil {
		return fmt.Errorf("connect nats %s: %w", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	icfg, err := indexer.ConfigOf(cfg) // the frame rules of the day, as the indexer applies them
	if err != nil {
		return err
	}
	defer prog.Clear() // an error is printed on a clean line
	began := time.Now()
	res, err := indexer.Reindex(ctx, icfg,
		indexer.Range{Service: *o.service, From: from, To: to, Slack: *o.slack, Progress: reindexProgress(prog, began)},
		db, store, js, log)
	if err != nil {
		return err
	}
	prog.Done("reindex: done in %v, %d events read, %d profiles indexed, %d rows", time.Since(began).Round(time.Millisecond),
		res.Events, res.Indexed, res.Rows)
	fmt.Fprintf(out, "reindexed %s from %s to %s: %d events read, %d profiles indexed, %d rows\n", *o.service,
		res.From.Format(time.RFC3339), res.To.Format(time.RFC3339), res.Events, res.Indexed, res.Rows)
	return nil
}

type migrateOptions struct {
	cluster *string
	print   *bool
	storage *string
}

func migrateFlags(fs *flag.FlagSet) *migrateOptions {
	return &migrateOptions{
		cluster: fs.String("cluster", "", "ClickHouse cluster name: create Replicated tables ON CLUSTER behind Distributed ones"),
		print:   fs.Bool("print", false, "print the ClickHouse schema SQL and exit without connecting"),
		storage: fs.String("storage", "auto", "ClickHouse column storage of new tables: auto (what the server supports; plain with --print), "+
			"plain (ClickHouse 18.16's types), codecs (column codecs, ClickHouse 20.3+) or compact (codecs and LowCardinality); existing tables are not rewritten"),
	}
}

// printSchema writes the ClickHouse statements of the layout, one per paragraph.
func printSchema(cfg config.Config, o *migrateOptions, out io.Writer) error {
	storage, err := schema.ParseStorage(*o.storage)
	if err != nil {
		return cli.Usagef("%v", err)
	}
	stmts, err := schema.Layout{Database: cfg.ClickHouseDatabase, Cluster: *o.cluster, Storage: storage}.SQL()
	if err != nil {
		return err
	}
	fmt.Fprintln(out, strings.Join(stmts, ";\n\n")+";")
	return nil
}

// migrateCluster applies the PostgreSQL migrations and the ClickHouse schema in the layout the options
// say: the cluster variant, or one server in a storage of the operator's choice.
func migrateCluster(ctx context.Context, cfg config.Config, log *slog.Logger, o *migrateOptions, out io.Writer) error {
	cluster := *o.cluster
	storage, err := schema.ParseStorage(*o.storage)
	if err != nil {
		return cli.Usagef("%v", err)
	}
	pg, err := roles.OpenPG(ctx, cfg, log)
	if err != nil {
		return err
	}
	pg.Close()
	db, err := chdb.Open(ctx, chdb.Options{Addr: cfg.ClickHouseAddr, User: cfg.ClickHouseUser,
		Password: cfg.ClickHousePassword, Database: cfg.ClickHouseDatabase})
	if err != nil {
		return err
	}
	defer db.Close()
	applied, err := schema.MigrateLayout(ctx, db, schema.Layout{Database: cfg.ClickHouseDatabase, Cluster: cluster, Storage: storage})
	if err != nil {
		return err
	}
	if cluster == "" {
		fmt.Fprintf(out, "migrated postgres and clickhouse, %s storage (applied %v)\n", storage, applied)
		return nil
	}
	fmt.Fprintf(out, "migrated postgres and clickhouse cluster %s (applied %v)\n", cluster, applied)
	return nil
}

// reindexProgress draws the progress line of a reindex from indexer.Range.Progress.
func reindexProgress(prog *cli.Progress, began time.Time) func(string, indexer.ReindexResult, uint64) {
	return func(phase string, res indexer.ReindexResult, pending uint64) {
		el := time.Since(began).Round(time.Second)
		if phase == "deleting" {
			prog.Update("reindex: deleting %s … %s and waiting for the mutations, %v", res.From.Format(time.DateOnly),
				res.To.Format(time.DateOnly), el)
			return
		}
		prog.Update("reindex: %s, %d events read (%d pending in the stream), %d profiles, %d rows, %v", phase,
			res.Events, pending, res.Indexed, res.Rows, el)
	}
}
