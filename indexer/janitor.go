package indexer

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/flamestream/flamestream/internal/chdb"
)

// Retention is how many days of each kind of table are kept; 0 keeps everything. ClickHouse 18.16 has no
// TTL, so the Janitor drops whole partitions instead.
type Retention struct {
	// RawDays applies to samples and totals_1m, HourDays to the hour rollups (all partitioned by day),
	// DayDays to the day rollups (partitioned by month).
	RawDays, HourDays, DayDays int
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
	{"samples", byDay, func(r Retention) int { return r.RawDays }},
	{"totals_1m", byDay, func(r Retention) int { return r.RawDays }},
	{MinuteRollup, byDay, func(r Retention) int { return r.RawDays }},
	{"samples_1h", byDay, func(r Retention) int { return r.HourDays }},
	{"samples_1h_all", byDay, func(r Retention) int { return r.HourDays }},
	{"samples_1d", byMonth, func(r Retention) int { return r.DayDays }},
	{"samples_1d_all", byMonth, func(r Retention) int { return r.DayDays }},
}

// Janitor drops the partitions that fell out of retention. The stacks table is not partitioned and keeps
// every stack ever seen (it is small next to the samples: a stack is stored once).
type Janitor struct {
	db        *chdb.DB
	retention Retention
	log       *slog.Logger
	// Now is the clock; tests move it.
	Now func() time.Time
}

// NewJanitor returns a janitor for db's tables.
func NewJanitor(db *chdb.DB, r Retention, log *slog.Logger) *Janitor {
	return &Janitor{db: db, retention: r, log: log.With("role", "janitor"), Now: time.Now}
}

// Run sweeps at start and then every interval until ctx ends. Errors are logged: the next sweep retries.
// Several indexers may run it at once; dropping a partition twice is harmless.
func (j *Janitor) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = time.Hour
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if dropped, err := j.Sweep(ctx); err != nil {
			j.log.Warn("retention sweep failed", "err", err)
		} else if len(dropped) > 0 {
			j.log.Info("retention sweep dropped partitions", "partitions", dropped)
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
			if err := j.db.Exec(ctx, "ALTER TABLE "+j.db.Table(t.name)+" DROP PARTITION "+chdb.Uint(n)); err != nil {
				return dropped, fmt.Errorf("drop partition %s of %s: %w", p, t.name, err)
			}
			dropped = append(dropped, t.name+"/"+p)
		}
	}
	return dropped, nil
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
