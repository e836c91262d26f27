package roles

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/flamestream/flamestream/cmd/internal/cli"
)

// consumerInfo is what the replay progress reads of a consumer (a jetstream.Consumer).
type consumerInfo interface {
	Info(ctx context.Context) (*jetstream.ConsumerInfo, error)
}

// replayEvery is how often the replay progress asks JetStream where the consumer is.
const replayEvery = time.Second

// replayProgress returns the task of an indexer run on an operator's replay consumer (--consumer NAME):
// the command's progress line, as on the other long commands, with the events done and pending in the
// consumer, the rate of this run and the time left at that rate. On a terminal the line is redrawn every
// second; elsewhere (a log file) only the summaries are written: when the consumer has caught up (nothing
// pending), and when the indexer stops before that. The task never fails the role: a JetStream that does
// not answer is the indexer's to report, the progress line just waits.
func replayProgress(name string, c consumerInfo, w io.Writer, log *slog.Logger) func(context.Context) error {
	return func(ctx context.Context) error {
		watchReplay(ctx, name, c, cli.NewProgress(w), replayEvery, time.Now, log)
		return nil
	}
}

// replayState is where a replay consumer is: done are the events it delivered that were settled (acked or
// terminated; an event delivered again counts again, which only a failed batch causes), pending the ones
// still to deliver plus those delivered and not acked yet.
type replayState struct {
	done, pending int64
}

func replayStateOf(info *jetstream.ConsumerInfo) replayState {
	return replayState{done: int64(info.Delivered.Consumer) - int64(info.NumAckPending),
		pending: int64(info.NumPending) + int64(info.NumAckPending)}
}

// replayWatch is the progress line of one replay consumer.
type replayWatch struct {
	name     string
	line     *cli.Progress
	began    time.Time
	first    replayState // at began: the rate is of this run, not of the consumer's life
	last     replayState
	known    bool // a state was read
	caughtUp bool // the caught-up summary was written and nothing is pending since
}

// observe draws the line for the consumer's state at now.
func (r *replayWatch) observe(info *jetstream.ConsumerInfo, now time.Time) {
	r.last = replayStateOf(info)
	if !r.known {
		r.began, r.first, r.known = now, r.last, true
	}
	ran, took := r.last.done-r.first.done, now.Sub(r.began)
	rate := cli.Rate(ran, took)
	switch {
	case r.last.pending > 0:
		r.caughtUp = false
		r.line.Update("replay %s: %d events done, %d pending (%.0f%%), %.0f events/s, ETA %s", r.name, r.last.done,
			r.last.pending, 100*float64(r.last.done)/float64(max(r.last.done+r.last.pending, 1)), rate, cli.ETA(r.last.pending, rate))
	case !r.caughtUp:
		r.caughtUp = true
		r.line.Done("replay %s: caught up, %d events done (%d in %v, %.0f events/s)", r.name, r.last.done, ran,
			took.Round(time.Second), rate)
	}
}

// stop writes the summary of a replay that ends before it caught up.
func (r *replayWatch) stop() {
	if r.known && !r.caughtUp {
		r.line.Done("replay %s: stopped with %d events done, %d pending", r.name, r.last.done, r.last.pending)
	}
}

// watchReplay draws the progress line of replay consumer name every `every` until ctx ends.
func watchReplay(ctx context.Context, name string, c consumerInfo, line *cli.Progress, every time.Duration,
	now func() time.Time, log *slog.Logger) {
	r := replayWatch{name: name, line: line}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if info, err := c.Info(ctx); err == nil {
			r.observe(info, now())
		} else if ctx.Err() == nil {
			log.Debug("replay progress: consumer info", "consumer", name, "err", err)
		}
		select {
		case <-ctx.Done():
			r.stop()
			return
		case <-t.C:
		}
	}
}
