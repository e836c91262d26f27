package indexer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/schema"
)

// Retention is how many days of each kind of table are kept; 0 keeps everything. ClickHouse 18.16 has no
// TTL, so the Janitor drops whole partitions instead.
type Retention struct {
	// RawDays applies to samples and totals_1m, HourDays to the hour rollups (all partitioned by day),
	// DayDays to the day rollups (partitioned by month).
	RawDays, HourDays, DayDays int
	// ArchiveDays is how many days of raw uploads the object store keeps (see Janitor.SweepArchive).
	ArchiveDays int
}

// partitionUnit is how a table is partitioned.
type partitionUnit int

const (
	byDay   partitionUnit = iota // toYYYYMMDD(ts)
	byMonth                      // toYYYYMM(ts)
)

// retentionTables lists every time-partitioned table with its partitioning and which retention applies.
var retentionTables = []struct {
	name string
	unit partitionUnit
	days func(Retention) int
}{
	{schema.Samples, byDay, func(r Retention) int { return r.RawDays }},
	{schema.Totals1m, byDay, func(r Retention) int { return r.RawDays }},
	{schema.MinuteRollup, byDay, func(r Retention) int { return r.RawDays }},
	{schema.Hour, byDay, func(r Retention) int { return r.HourDays }},
	{schema.HourAll, byDay, func(r Retention) int { return r.HourDays }},
	{schema.Day, byMonth, func(r Retention) int { return r.DayDays }},
	{schema.DayAll, byMonth, func(r Retention) int { return r.DayDays }},
	{schema.Batches, byDay, func(r Retention) int { return r.RawDays }},
	// Host metrics follow the samples: raw rows with the raw ones, sums with the rollups of their bucket.
	{schema.HostMetrics, byDay, func(r Retention) int { return r.RawDays }},
	{schema.HostMetricsHour, byDay, func(r Retention) int { return r.HourDays }},
	{schema.HostMetricsDay, byMonth, func(r Retention) int { return r.DayDays }},
	// The built rollups' records live as long as the longest of them (they are a few rows per bucket).
	{schema.Builds, byMonth, func(r Retention) int { return r.DayDays }},
}

// ServiceSettings is where the janitor reads the services' own retention (pgdb.DB implements it).
type ServiceSettings interface {
	// ServiceRetentions calls each for the services whose retention is set, in name order after the
	// service named after, at most limit of them, and returns the last name seen or "" at the end.
	ServiceRetentions(ctx context.Context, after string, limit int, each func(service string, days int)) (last string, err error)
}

// Deletion is one ALTER TABLE ... DELETE the janitor issued: the service's rows of Table before Before.
type Deletion struct {
	Table, Service string
	Before         time.Time
}

// Janitor drops the partitions that fell out of retention, deletes the rows of services whose own
// retention is shorter (see SweepServices), deletes the raw uploads past the archive retention
// (SweepArchive), bundles the others once their hour is closed (CompactArchive) and builds the
// per-dimension hour and day rollups of closed buckets (BuildRollups, every minute). The stacks table is not partitioned and keeps every stack ever
// seen (it is small next to the samples: a stack is stored once).
type Janitor struct {
	db        *chdb.DB
	retention Retention
	log       *slog.Logger
	// Now is the clock; tests move it.
	Now func() time.Time
	// Services gives the services' own retention; nil applies the global retention only.
	Services ServiceSettings
	// MaxServices is how many services with their own retention one sweep looks at (default 50); the
	// next sweep goes on from where this one stopped, so every service is reached in turn.
	MaxServices int
	// ServiceTimeout bounds the work on one service, deletions included (default 10 minutes).
	ServiceTimeout time.Duration
	// OnDelete, when set, is called for every deletion issued (tests count them).
	OnDelete func(Deletion)
	// Archive is the object store of the raw uploads; nil leaves them alone.
	Archive Archive
	// MaxArchiveDeletes bounds the objects one sweep deletes (default 100,000); the next sweep goes on.
	MaxArchiveDeletes int

	// Compaction tunes CompactArchive, which Run calls when Archive is a CompactStore.
	Compaction Compaction
	// Builds tunes BuildRollups, which Run calls on its own ticker (see RunBuilds).
	Builds RollupBuilds
	builds buildState

	next string // the service after which the next sweep's page of services starts
	// compactedBefore is, per service prefix, the end of the hours CompactArchive found bundled already;
	// watermarksAt is when it was last forgotten (once a day, so late uploads behind it are found).
	compactedBefore map[string]time.Time
	watermarksAt    time.Time
}

// NewJanitor returns a janitor for db's tables.
func NewJanitor(db *chdb.DB, r Retention, log *slog.Logger) *Janitor {
	return &Janitor{db: db, retention: r, log: log.With("role", "janitor"), Now: time.Now,
		MaxServices: 50, ServiceTimeout: 10 * time.Minute}
}

// Run sweeps at start and then every interval until ctx ends. Errors are logged: the next sweep retries.
// Several indexers may run it at once; dropping a partition twice is harmless.
func (j *Janitor) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = time.Hour
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	// The rollup builds run every minute or so, the sweeps hourly: a goroutine of their own, ended with Run.
	bctx, stopBuilds := context.WithCancel(ctx)
	built := make(chan struct{})
	go func() { defer close(built); j.RunBuilds(bctx) }()
	defer func() { stopBuilds(); <-built }()
	for {
		if dropped, err := j.Sweep(ctx); err != nil {
			j.log.Warn("retention sweep failed", "err", err)
		} else if len(dropped) > 0 {
			j.log.Info("retention sweep dropped partitions", "partitions", dropped)
		}
		// Failures are logged per service inside; the error only sums them up.
		if _, err := j.SweepServices(ctx); err != nil && ctx.Err() == nil {
			j.log.Warn("service retention sweep incomplete", "err", err)
		}
		if n, err := j.SweepArchive(ctx); err != nil && ctx.Err() == nil {
			j.log.Warn("archive retention sweep incomplete", "deleted", n, "err", err)
		} else if n > 0 {
			j.log.Info("archive retention sweep deleted raw uploads", "objects", n)
		}
		if r, err := j.CompactArchive(ctx); err != nil && ctx.Err() == nil {
			j.log.Warn("archive compaction incomplete", "bundles", r.Bundles, "err", err)
		} else if r.Bundles > 0 {
			j.log.Info("archive compaction bundled raw uploads", "bundles", r.Bundles, "objects", r.Objects,
				"raw_bytes", r.RawBytes, "bundle_bytes", r.BundleBytes)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// expired reports whether a partition ("20260102" by day, "202601" by month) lies wholly before cutoff.
func expired(unit partitionUnit, partition string, cutoff time.Time) (bool, error) {
	var first time.Time
	var err error
	switch unit {
	case byDay:
		first, err = time.Parse("20060102", partition)
		if err == nil && first.AddDate(0, 0, 1).After(cutoff) {
			return false, nil
		}
	case byMonth:
		first, err = time.Parse("200601", partition)
		if err == nil && first.AddDate(0, 1, 0).After(cutoff) {
			return false, nil
		}
	}
	if err != nil {
		return false, fmt.Errorf("partition %q: %w", partition, err)
	}
	return true, nil
}

// Sweep drops every expired partition once and returns them as "table/partition".
func (j *Janitor) Sweep(ctx context.Context) (dropped []string, err error) {
	now := j.Now().UTC()
	for _, t := range retentionTables {
		days := t.days(j.retention)
		if days <= 0 {
			continue
		}
		cutoff := now.AddDate(0, 0, -days)
		parts, err := j.partitions(ctx, t.name)
		if err != nil {
			return dropped, err
		}
		for _, p := range parts {
			old, err := expired(t.unit, p, cutoff)
			if err != nil {
				return dropped, fmt.Errorf("table %s: %w", t.name, err)
			}
			if !old {
				continue
			}
			// The partition value went through strconv: the statement holds only digits.
			n, err := strconv.ParseUint(p, 10, 32)
			if err != nil {
				return dropped, fmt.Errorf("table %s partition %q: %w", t.name, p, err)
			}
			if t.unit == byDay {
				unbuilt, err := j.unbuiltFrom(ctx, t.name, p)
				if err != nil {
					return dropped, err
				}
				if unbuilt != "" {
					j.log.Warn("partition past retention kept: a rollup built from it is not complete yet",
						"table", t.name, "partition", p, "rollup", unbuilt)
					continue
				}
			}
			if err := j.db.Exec(ctx, "ALTER TABLE "+j.db.Table(t.name)+" DROP PARTITION "+chdb.Uint(n)); err != nil {
				return dropped, fmt.Errorf("drop partition %s of %s: %w", p, t.name, err)
			}
			dropped = append(dropped, t.name+"/"+p)
		}
	}
	return dropped, nil
}

// unbuiltFrom returns the built rollup (schema.Built) that is built from table and still needs a build of
// a bucket in the day partition p (yyyymmdd), or "" when none does: that day's rows of table must stay
// until the rollup holds them, since nothing else could build it then. The window takes a day on either
// side, whatever the server's time zone.
func (j *Janitor) unbuiltFrom(ctx context.Context, table, p string) (string, error) {
	day, err := time.Parse("20060102", p)
	if err != nil {
		return "", fmt.Errorf("table %s partition %q: %w", table, p, err)
	}
	for _, b := range schema.Built {
		if b.Source != table {
			continue
		}
		pairs, err := j.buildPairs(ctx, b, day.AddDate(0, 0, -1), day.AddDate(0, 0, 2), "", 1)
		if err != nil {
			return "", fmt.Errorf("is %s built from %s %s: %w", b.Table, table, p, err)
		}
		if len(pairs) > 0 {
			return b.Table, nil
		}
	}
	return "", nil
}

// partitions lists the active partitions of one table from system.parts.
func (j *Janitor) partitions(ctx context.Context, name string) ([]string, error) {
	var out []string
	var col proto.ColStr
	err := j.db.Do(ctx, ch.Query{
		Body: "SELECT DISTINCT partition FROM system.parts WHERE active AND database = " + chdb.String(j.db.Database) +
			" AND table = " + chdb.String(name) + " ORDER BY partition",
		Result: proto.Results{{Name: "partition", Data: &col}},
		OnResult: func(ctx context.Context, b proto.Block) error {
			for i := 0; i < col.Rows(); i++ {
				out = append(out, col.Row(i))
			}
			return nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("list partitions of %s: %w", name, err)
	}
	return out, nil
}

// SweepServices applies the services' own retention once. A service's retention may only be shorter than
// the global raw one (pgdb.CheckRetentionDays): its days are shared with every other service in the same
// partitions, so they cannot be dropped; instead the service's rows older than its retention are deleted
// from samples and every rollup with ALTER TABLE ... DELETE, the mutation Reindex uses. The cutoff is the
// start of the UTC day that holds now minus the retention, the horizon of the partition drops, so whole
// hour and day rollup rows go and every kept rollup row still equals the sum of its samples.
//
// A mutation rewrites parts (on ClickHouse 18.16 every active part of the table, whatever it holds), so
// one is issued only when the table holds rows to delete (a LIMIT 1 read on the sort key) and no earlier
// deletion of that service is still running on it: with a cutoff that moves once a day, a service costs
// at most one mutation per table and day. The deletions of all the services are issued first and waited
// for afterwards, because the server applies the mutations queued on a part in one rewrite.
//
// One sweep looks at MaxServices services, each under ServiceTimeout (checks, deletions and the wait for
// its rows to be gone); a service that fails is logged and the others go on. It returns the deletions
// issued and the failures joined. Sweeps of one Janitor must not run concurrently (Run runs them in
// turn); several indexers may each run theirs, the worst case being a deletion issued twice.
func (j *Janitor) SweepServices(ctx context.Context) ([]Deletion, error) {
	if j.Services == nil {
		return nil, nil
	}
	type service struct {
		name  string
		days  int
		where string   // the rows to delete
		wait  []string // tables that still hold them
		ctx   context.Context
		start time.Time
	}
	var page []*service
	limit := j.MaxServices
	if limit <= 0 {
		limit = 50
	}
	last, err := j.Services.ServiceRetentions(ctx, j.next, limit, func(name string, days int) {
		page = append(page, &service{name: name, days: days})
	})
	if err == nil && len(page) == 0 && j.next != "" {
		// The previous page ended the list exactly: start over rather than spend a sweep on nothing.
		last, err = j.Services.ServiceRetentions(ctx, "", limit, func(name string, days int) {
			page = append(page, &service{name: name, days: days})
		})
	}
	if err != nil {
		return nil, err
	}
	j.next = last
	timeout := j.ServiceTimeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	now := j.Now().UTC()
	var deleted []Deletion
	var errs []error
	fail := func(s *service, err error) {
		if ctx.Err() == nil { // at shutdown every service stops: that is not a failure of one
			j.log.Warn("service retention failed", "service", s.name, "days", s.days, "err", err)
		}
		errs = append(errs, fmt.Errorf("service %s: %w", s.name, err))
		s.wait = nil
	}
	var waiting []*service
	for _, s := range page {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		var cancel context.CancelFunc
		s.ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
		s.start = time.Now()
		d, err := j.deleteExpired(s.ctx, s.name, s.days, now, &s.where, &s.wait)
		deleted = append(deleted, d...)
		if err != nil {
			fail(s, err)
			continue
		}
		if len(s.wait) > 0 {
			waiting = append(waiting, s)
		}
	}
	// Mutations run in the background: wait for the rows themselves to be gone rather than for every
	// mutation of the database, which may include a reindex's, or a stuck one.
	for pause := 100 * time.Millisecond; len(waiting) > 0; pause = min(2*pause, 2*time.Second) {
		sleep(ctx, pause)
		left := waiting[:0]
		for _, s := range waiting {
			if err := j.stillThere(s.ctx, s.where, &s.wait); err != nil {
				fail(s, err)
				continue
			}
			if len(s.wait) > 0 {
				left = append(left, s)
				continue
			}
			j.log.Info("service retention applied", "service", s.name, "days", s.days,
				"took", time.Since(s.start).Round(time.Millisecond))
		}
		waiting = left
	}
	return deleted, errors.Join(errs...)
}

// deleteExpired issues the deletions of one service's rows older than its retention of days from every
// table whose global retention is longer. It sets where to the rows' condition and wait to the tables
// that hold such rows, deleted now or by a deletion still running.
func (j *Janitor) deleteExpired(ctx context.Context, service string, days int, now time.Time, where *string, wait *[]string) ([]Deletion, error) {
	before := now.AddDate(0, 0, -days).Truncate(24 * time.Hour)
	*where = " WHERE service = " + chdb.String(service) + " AND ts < " + chdb.Time(before)
	var deleted []Deletion
	for _, t := range retentionTables {
		if t.name == schema.Batches {
			continue // no rows of the service's samples: a ledger row without them is never read
		}
		if global := t.days(j.retention); global > 0 && days >= global {
			continue // the partition drops already keep no more than this
		}
		has, err := j.hasRows(ctx, t.name, *where)
		if err != nil {
			return deleted, err
		}
		if !has {
			continue
		}
		*wait = append(*wait, t.name)
		running, err := j.deleting(ctx, t.name, service)
		if err != nil {
			return deleted, err
		}
		if running {
			continue // an earlier sweep's deletion is still at work: wait for it rather than queue another
		}
		if err := j.db.Exec(ctx, "ALTER TABLE "+j.db.Table(t.name)+" DELETE"+*where); err != nil {
			return deleted, fmt.Errorf("delete from %s: %w", t.name, err)
		}
		d := Deletion{Table: t.name, Service: service, Before: before}
		deleted = append(deleted, d)
		if j.OnDelete != nil {
			j.OnDelete(d)
		}
	}
	return deleted, nil
}

// stillThere keeps in tables those that still hold rows matching where.
func (j *Janitor) stillThere(ctx context.Context, where string, tables *[]string) error {
	left := (*tables)[:0]
	for _, name := range *tables {
		has, err := j.hasRows(ctx, name, where)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("rows still in %s: %w", name, ctx.Err())
			}
			return err
		}
		if has {
			left = append(left, name)
		}
	}
	*tables = left
	return nil
}

// hasRows reports whether the table holds a row matching where. The table's sort key starts with the
// service and its partitions carry their time bounds, so this reads a few granules at most.
func (j *Janitor) hasRows(ctx context.Context, table, where string) (bool, error) {
	var n proto.ColUInt64
	err := j.db.Do(ctx, ch.Query{
		Body:   "SELECT count() AS n FROM (SELECT 1 FROM " + j.db.Table(table) + where + " LIMIT 1)",
		Result: proto.Results{{Name: "n", Data: &n}},
	})
	if err != nil {
		return false, fmt.Errorf("look for expired rows in %s: %w", table, err)
	}
	return len(n) == 1 && n[0] > 0, nil
}

// deleting reports whether a mutation naming the service is still running on the table. ClickHouse keeps
// the command as it formatted it, with the service as a quoted literal: searching for that literal finds
// the janitor's and Reindex's deletions of the service and no other service's.
func (j *Janitor) deleting(ctx context.Context, table, service string) (bool, error) {
	var n proto.ColUInt64
	err := j.db.Do(ctx, ch.Query{
		Body: "SELECT count() AS n FROM system.mutations WHERE database = " + chdb.String(j.db.Database) +
			" AND table = " + chdb.String(table) + " AND is_done = 0 AND position(command, " + chdb.String(chdb.String(service)) + ") > 0",
		Result: proto.Results{{Name: "n", Data: &n}},
	})
	if err != nil {
		return false, fmt.Errorf("read mutations of %s: %w", table, err)
	}
	return len(n) == 1 && n[0] > 0, nil
}

// Archive is what the janitor needs from the object store (objstore.Store implements it).
type Archive interface {
	// Prefixes lists the folders right under prefix, at most max.
	Prefixes(ctx context.Context, prefix string, max int) ([]string, error)
	// DeletePrefix deletes at most max objects under prefix and says how many.
	DeletePrefix(ctx context.Context, prefix string, max int) (int, error)
}

// maxArchiveServices bounds the services one archive sweep lists.
const maxArchiveServices = 100_000

// SweepArchive deletes the raw uploads of the days wholly older than Retention.ArchiveDays, at most
// MaxArchiveDeletes objects per call. Uploads are stored as profiles/<service>/<YYYY-MM-DD>/..., by the
// UTC day of their start, so a day's folder goes as a whole, with the bundles CompactArchive made of its
// hours (they lie in the same folder); other keys are never touched. Once gone, a
// profile can no longer be replayed from the bucket or reindexed: keep ArchiveDays at least as long as
// the stream's replay window and as far back as a reindex may need to go.
func (j *Janitor) SweepArchive(ctx context.Context) (deleted int, err error) {
	if j.Archive == nil || j.retention.ArchiveDays <= 0 {
		return 0, nil
	}
	budget := cmp.Or(j.MaxArchiveDeletes, 100_000)
	cutoff := j.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -j.retention.ArchiveDays)
	services, err := j.Archive.Prefixes(ctx, "profiles/", maxArchiveServices)
	if err != nil {
		return 0, err
	}
	for _, svc := range services {
		days, err := j.Archive.Prefixes(ctx, svc, 100_000)
		if err != nil {
			return deleted, err
		}
		for _, d := range days {
			day, perr := time.Parse("2006-01-02", strings.TrimSuffix(strings.TrimPrefix(d, svc), "/"))
			if perr != nil || !day.Before(cutoff) {
				continue // not a day folder, or not wholly expired
			}
			n, err := j.Archive.DeletePrefix(ctx, d, budget-deleted)
			deleted += n
			if err != nil {
				return deleted, err
			}
			if deleted >= budget {
				return deleted, nil
			}
		}
	}
	return deleted, nil
}
