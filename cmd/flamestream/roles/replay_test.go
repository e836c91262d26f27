package roles

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/flamestream/flamestream/cmd/internal/cli"
	"github.com/flamestream/flamestream/internal/testenv"
	"github.com/flamestream/flamestream/stream"
)

// replayStream starts an embedded JetStream with the PROFILES stream holding n events and an operator's
// replay consumer on it, made as with the nats CLI.
func replayStream(t *testing.T, n int) (jetstream.JetStream, jetstream.Consumer) {
	t.Helper()
	_, _, js := testenv.JetStream(t)
	ctx := context.Background()
	if err := stream.Ensure(ctx, js, stream.Config{}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		publishEvent(t, js, i)
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, stream.ProfilesStream, jetstream.ConsumerConfig{Durable: "replay-1",
		AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy}); err != nil {
		t.Fatal(err)
	}
	c, err := stream.EnsureConsumer(ctx, js, "replay-1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return js, c
}

func publishEvent(t *testing.T, js jetstream.JetStream, i int) {
	t.Helper()
	ev := stream.Event{ID: fmt.Sprintf("ev-%d", i), Service: "svc", Host: "h", Start: time.Unix(1_700_000_000, 0), Key: "k"}
	if _, err := stream.Publish(context.Background(), js, ev); err != nil {
		t.Fatal(err)
	}
}

// take fetches n events of c, acks the first ack of them (waiting for JetStream to take each ack) and
// returns the others, delivered and not acked.
func take(t *testing.T, c jetstream.Consumer, n, ack int) []jetstream.Msg {
	t.Helper()
	batch, err := c.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var held []jetstream.Msg
	for m := range batch.Messages() {
		if ack > 0 {
			ack--
			if err := m.DoubleAck(context.Background()); err != nil {
				t.Fatal(err)
			}
			continue
		}
		held = append(held, m)
	}
	return held
}

func info(t *testing.T, c jetstream.Consumer) *jetstream.ConsumerInfo {
	t.Helper()
	i, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// screen is what a terminal shows of progress output: each \r\x1b[K clears the line being drawn, a
// newline ends one; the line being drawn is last.
func screen(out string) []string {
	var done []string
	cur := ""
	for _, seg := range strings.SplitAfter(out, "\n") {
		for _, part := range strings.Split(seg, "\r\x1b[K") {
			if part != "" {
				cur = part
			} else {
				cur = ""
			}
		}
		if strings.HasSuffix(cur, "\n") {
			done = append(done, strings.TrimSuffix(cur, "\n"))
			cur = ""
		}
	}
	if cur != "" {
		done = append(done, cur)
	}
	return done
}

// drawn is every line a progress output drew, in order (redraws included).
func drawn(out string) []string {
	var lines []string
	for _, seg := range strings.Split(strings.ReplaceAll(out, "\n", "\r\x1b[K"), "\r\x1b[K") {
		if seg != "" {
			lines = append(lines, seg)
		}
	}
	return lines
}

// TestReplayProgressLine replays ten events of a real JetStream consumer: the progress line counts the
// events done and pending (those delivered and not acked yet are pending), the rate of this run and the
// time left at it, says once that the consumer caught up, comes back when new events arrive, and a stop
// before catching up says what was left. Off a terminal only the summaries are written.
func TestReplayProgressLine(t *testing.T) {
	js, c := replayStream(t, 10)
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var tty, file bytes.Buffer
	now := func() time.Time { return clock }
	watches := []*replayWatch{{name: "replay-1", line: cli.NewProgressAt(&tty, true, now)},
		{name: "replay-1", line: cli.NewProgressAt(&file, false, now)}}
	observe := func() {
		i := info(t, c)
		for _, w := range watches {
			w.observe(i, clock)
		}
	}
	held := take(t, c, 6, 4) // 4 acked, 2 in the indexer's hands
	observe()
	clock = clock.Add(2 * time.Second)
	take(t, c, 4, 4) // 8 done, the 2 held still pending
	observe()
	clock = clock.Add(2 * time.Second)
	for _, m := range held {
		if err := m.DoubleAck(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	observe()
	clock = clock.Add(time.Second)
	observe() // still caught up: said once
	clock = clock.Add(time.Second)
	publishEvent(t, js, 10) // a new event: the line is back
	// The consumer counts a new event shortly after the stream acknowledged it: wait for it (bounded).
	for deadline := time.Now().Add(5 * time.Second); info(t, c).NumPending == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	observe()
	for _, w := range watches {
		w.stop()
	}
	want := []string{
		"replay replay-1: 4 events done, 6 pending (40%), 0 events/s, ETA ?",
		"replay replay-1: 8 events done, 2 pending (80%), 2 events/s, ETA 1s",
		"replay replay-1: caught up, 10 events done (6 in 4s, 2 events/s)",
		"replay replay-1: 10 events done, 1 pending (91%), 1 events/s, ETA 1s",
		"replay replay-1: stopped with 10 events done, 1 pending",
	}
	if got := drawn(tty.String()); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("terminal drew\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := screen(tty.String()); len(got) != 2 || got[0] != want[2] || got[1] != want[4] {
		t.Errorf("terminal keeps %q, want the two summaries", got)
	}
	if got := file.String(); got != want[2]+"\n"+want[4]+"\n" {
		t.Errorf("log file got %q, want the two summaries", got)
	}
}

// TestReplayProgressTask runs the role's task on a consumer that has nothing pending: one caught-up line
// however many times it looks, nothing more when it stops, and a JetStream that stops answering does not
// end it (only its context does).
func TestReplayProgressTask(t *testing.T) {
	_, c := replayStream(t, 3)
	take(t, c, 3, 3)
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	watchReplay(ctx, "replay-1", c, cli.NewProgressFor(&out, false), 10*time.Millisecond, time.Now, slog.New(slog.DiscardHandler))
	if !strings.HasPrefix(out.String(), "replay replay-1: caught up, 3 events done (0 in 0s") || strings.Count(out.String(), "\n") != 1 {
		t.Errorf("got %q, want one caught-up line", out.String())
	}
	out.Reset()
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	watchReplay(ctx, "replay-1", failingInfo{}, cli.NewProgressFor(&out, true), 10*time.Millisecond, time.Now, slog.New(slog.DiscardHandler))
	if ctx.Err() == nil || out.Len() != 0 {
		t.Errorf("with JetStream not answering: returned before its context ended or wrote %q", out.String())
	}
}

type failingInfo struct{}

func (failingInfo) Info(context.Context) (*jetstream.ConsumerInfo, error) {
	return nil, fmt.Errorf("nats: timeout")
}
