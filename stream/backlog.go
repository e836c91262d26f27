package stream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Backlog tells how far a consumer of the PROFILES stream is behind: the events not delivered to it yet,
// and how long the oldest of them has waited. An event being worked on (delivered, not acked yet) does
// not count: a slow or stuck batch shows in the indexer's own metrics, not here.
type Backlog struct {
	js       jetstream.JetStream
	consumer string

	mu     sync.Mutex
	cons   jetstream.Consumer
	stream jetstream.Stream
}

// NewBacklog measures the backlog of the consumer named consumer.
func NewBacklog(js jetstream.JetStream, consumer string) *Backlog {
	return &Backlog{js: js, consumer: consumer}
}

// Age returns how long the oldest event not yet delivered to the consumer has been in the stream (0 when
// there is none) and how many such events there are: two requests to the server.
func (b *Backlog) Age(ctx context.Context) (time.Duration, uint64, error) {
	cons, str, err := b.handles(ctx)
	if err != nil {
		return 0, 0, err
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("consumer %s: %w", b.consumer, err)
	}
	if info.NumPending == 0 {
		return 0, 0, nil
	}
	// The first event after the last one delivered (the next one may have been deleted: the first after it).
	msg, err := str.GetMsg(ctx, info.Delivered.Stream+1, jetstream.WithGetMsgSubject(ProfilesSubjectPrefix+">"))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, info.NumPending, nil // delivered meanwhile
	}
	if err != nil {
		return 0, info.NumPending, fmt.Errorf("oldest pending event of %s: %w", b.consumer, err)
	}
	return max(time.Since(msg.Time), 0), info.NumPending, nil
}

func (b *Backlog) handles(ctx context.Context) (jetstream.Consumer, jetstream.Stream, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stream == nil {
		s, err := b.js.Stream(ctx, ProfilesStream)
		if err != nil {
			return nil, nil, fmt.Errorf("stream %s: %w", ProfilesStream, err)
		}
		b.stream = s
	}
	if b.cons == nil {
		c, err := b.stream.Consumer(ctx, b.consumer)
		if err != nil {
			return nil, nil, fmt.Errorf("consumer %s: %w", b.consumer, err)
		}
		b.cons = c
	}
	return b.cons, b.stream, nil
}
