package ingest

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// YieldNice is the nice value of an ingest process yielding to the indexer: a thread at nice 10 weighs
// about a tenth of one at 0 (110 against 1,024), so on a contended core ingest gets about a tenth of
// the time and the indexer and ClickHouse the rest.
const YieldNice = 10

// YieldConfig configures RunYield.
type YieldConfig struct {
	// Lag: ingest yields while the indexer's backlog (the oldest event it has not taken) is older than
	// this, and takes its priority back once the backlog is under half of it.
	Lag time.Duration
	// Interval is how often the backlog is read (default 1 s).
	Interval time.Duration
}

// RunYield keeps indexing ahead of accepting when ingest shares its cores with the indexer and ClickHouse.
// Flat out, each takes what the scheduler gives it, and ingest can accept faster than the indexer can
// index: on this 2-core machine, 2,000-line profiles were accepted at 367/s and indexed at 170–235/s,
// and the lag grew for as long as the load lasted. While the backlog is older than cfg.Lag, RunYield
// lowers the process's CPU priority (setNice(YieldNice)): contended CPU goes to indexing, uploads are
// answered more slowly (none is refused) and the agents, each waiting for its answer, send at the pace
// indexing holds. On a machine with CPU to spare the priority changes nothing. backlog reads the
// indexer's backlog age; setNice sets the process's nice value. It returns when ctx ends.
func RunYield(ctx context.Context, cfg YieldConfig, backlog func(context.Context) (time.Duration, error), setNice func(int) error, log *slog.Logger, reg prometheus.Registerer) error {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	yielding := prometheus.NewGauge(prometheus.GaugeOpts{Name: "flamestream_ingest_yielding",
		Help: "1 while ingest runs at a lower CPU priority because the indexer is behind."})
	yields := prometheus.NewCounter(prometheus.CounterOpts{Name: "flamestream_ingest_yields_total",
		Help: "Times ingest lowered its CPU priority because the indexer was behind."})
	yieldSeconds := prometheus.NewCounter(prometheus.CounterOpts{Name: "flamestream_ingest_yielding_seconds_total",
		Help: "Seconds ingest ran at a lower CPU priority because the indexer was behind."})
	age := prometheus.NewGauge(prometheus.GaugeOpts{Name: "flamestream_ingest_indexer_backlog_seconds",
		Help: "Age of the oldest event the indexer has not taken yet, as ingest last read it."})
	if reg != nil {
		reg.MustRegister(yielding, yields, yieldSeconds, age)
	}
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	yielded := false
	var lastWarn time.Time
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			if yielded && setNice(0) == nil {
				yielding.Set(0)
			}
			return nil
		case now := <-t.C:
			if yielded {
				yieldSeconds.Add(now.Sub(last).Seconds())
			}
			last = now
		}
		rctx, cancel := context.WithTimeout(ctx, max(cfg.Interval, 2*time.Second))
		a, err := backlog(rctx)
		cancel()
		if err != nil {
			// Unknown: keep the current priority. A NATS outage shows in ingest's 503s, not here.
			if time.Since(lastWarn) > time.Minute && ctx.Err() == nil {
				log.Warn("indexer backlog unknown; ingest priority unchanged", "yielding", yielded, "err", err)
				lastWarn = time.Now()
			}
			continue
		}
		age.Set(a.Seconds())
		switch {
		case !yielded && a > cfg.Lag:
			if err := setNice(YieldNice); err != nil {
				log.Warn("ingest could not lower its priority; yielding off", "err", err)
				return nil
			}
			yielded = true
			yielding.Set(1)
			yields.Inc()
			log.Info("indexer behind: ingest lowers its CPU priority", "backlog", a.Round(time.Millisecond), "nice", YieldNice)
		case yielded && a < cfg.Lag/2:
			if err := setNice(0); err != nil {
				// Stuck at the lower priority would starve ingest for good whenever the machine is busy.
				log.Error("ingest could not take its CPU priority back; it stays lowered until restarted", "err", err)
				return nil
			}
			yielded = false
			yielding.Set(0)
			log.Info("indexer caught up: ingest takes its CPU priority back", "backlog", a.Round(time.Millisecond))
		}
	}
}
