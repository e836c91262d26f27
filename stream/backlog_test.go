package stream_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/flamestream/flamestream/internal/testenv"
	"github.com/flamestream/flamestream/stream"
)

// TestBacklogAgeIsTheWaitOfTheOldestUndeliveredEvent: nothing pending is 0; events not fetched yet count
// from the oldest of them; once it is delivered (even before its ack) the next one is the oldest.
func TestBacklogAgeIsTheWaitOfTheOldestUndeliveredEvent(t *testing.T) {
	_, _, js := testenv.JetStream(t)
	ctx := context.Background()
	if err := stream.Ensure(ctx, js, stream.Config{}); err != nil {
		t.Fatal(err)
	}
	cons, err := stream.EnsureConsumer(ctx, js, stream.IndexerConsumer, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	b := stream.NewBacklog(js, stream.IndexerConsumer)
	if age, n, err := b.Age(ctx); err != nil || age != 0 || n != 0 {
		t.Fatalf("empty stream: %v, %d pending, %v", age, n, err)
	}
	publish := func(id string) time.Time {
		t.Helper()
		ev := stream.Event{ID: id, Service: "svc", Host: "h", Start: time.Now().UTC(), End: time.Now().UTC(), Key: "k/" + id}
		if _, err := stream.Publish(ctx, js, ev); err != nil {
			t.Fatal(err)
		}
		return time.Now()
	}
	first := publish("e1")
	time.Sleep(300 * time.Millisecond)
	second := publish("e2")
	time.Sleep(200 * time.Millisecond)

	age, n, err := b.Age(ctx)
	if err != nil || n != 2 || age < time.Since(first)-50*time.Millisecond || age > time.Since(first)+50*time.Millisecond {
		t.Fatalf("two pending: age %v (first published %v ago), %d pending, %v", age, time.Since(first), n, err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for range batch.Messages() { // delivered, not acked
	}
	age, n, err = b.Age(ctx)
	if err != nil || n != 1 || age < time.Since(second)-50*time.Millisecond || age > time.Since(second)+50*time.Millisecond {
		t.Fatalf("after one delivery: age %v (second published %v ago), %d pending, %v", age, time.Since(second), n, err)
	}
}
