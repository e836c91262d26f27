// Package stream defines Flamestream's JetStream topology — every stream, subject and consumer name lives
// here — the event an upload becomes, and the helpers to publish and consume it.
package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Names of the streams, subjects and the default consumer.
const (
	// ProfilesStream holds one event per accepted upload; it is the replay log.
	ProfilesStream = "PROFILES"
	// ProfilesSubjectPrefix starts every profile subject: profiles.<service token>.
	ProfilesSubjectPrefix = "profiles."
	// DeadLetterStream keeps events the indexer gave up on, with the reason in headers.
	DeadLetterStream = "PROFILES_DLQ"
	// DeadLetterSubjectPrefix starts every dead-letter subject: dlq.profiles.<service token>.
	DeadLetterSubjectPrefix = "dlq.profiles."
	// IndexerConsumer is the durable pull consumer the indexers share.
	IndexerConsumer = "indexer"
	// DuplicateWindow is how long JetStream remembers a Nats-Msg-Id: an agent retrying the same upload
	// within it is stored once. Later duplicates are caught by the indexer's profile-id guard.
	DuplicateWindow = 20 * time.Minute
)

// Event is what ingest publishes for one accepted profile. It is small JSON so that an operator can read
// and re-publish it with the nats CLI; the profile itself is in the object store under Key.
type Event struct {
	ID           string    `json:"id"`
	Service      string    `json:"service"`
	Host         string    `json:"host"`
	GPID         int64     `json:"gpid,omitempty"`
	Start        time.Time `json:"start"`
	End          time.Time `json:"end"`
	Key          string    `json:"key"`
	Size         int64     `json:"size"`
	Received     time.Time `json:"received"`
	AgentVersion string    `json:"agent_version,omitempty"`
	InstanceType string    `json:"instance_type,omitempty"`
	// Format is the layout of the profile's stack lines, which only the endpoint the agent posted to tells:
	// "v1" for /api/v1/profiles (no prefix fields, whatever the header says); empty for /api/v2/profiles,
	// whose header decides (events published before this field existed are all v2). The indexer re-parses
	// the stored object with it.
	Format string `json:"format,omitempty"`
}

// Subject returns the subject an event for service is published on. Characters NATS reserves in subjects
// become '_'; the event body keeps the exact name.
func Subject(service string) string {
	return ProfilesSubjectPrefix + SubjectToken(service)
}

// SubjectToken maps a service name to one subject token.
func SubjectToken(service string) string {
	if service == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, service)
}

// Config sets the stream's limits.
type Config struct {
	Replicas int
	MaxAge   time.Duration
	MaxBytes int64
}

// Ensure creates or updates the streams so they match cfg.
func Ensure(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	if cfg.Replicas < 1 {
		cfg.Replicas = 1
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = -1
	}
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        ProfilesStream,
		Description: "one event per accepted profile upload; the replay log of the indexer",
		Subjects:    []string{ProfilesSubjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      cfg.MaxAge,
		MaxBytes:    cfg.MaxBytes,
		Replicas:    cfg.Replicas,
		Duplicates:  DuplicateWindow,
	})
	if err != nil {
		return fmt.Errorf("ensure stream %s: %w", ProfilesStream, err)
	}
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        DeadLetterStream,
		Description: "profile events the indexer could not index, with the reason in headers",
		Subjects:    []string{DeadLetterSubjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		MaxAge:      30 * 24 * time.Hour,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("ensure stream %s: %w", DeadLetterStream, err)
	}
	return nil
}

// EnsureConsumer creates the durable pull consumer the indexers share, if it does not exist. ackWait is how
// long an event may stay unacknowledged before JetStream redelivers it; the indexer bounds each batch to a
// share of the consumer's ack wait, whatever created it.
func EnsureConsumer(ctx context.Context, js jetstream.JetStream, name string, ackWait time.Duration) (jetstream.Consumer, error) {
	c, err := js.Consumer(ctx, ProfilesStream, name)
	if err == nil {
		// The indexer consumer follows the ack wait of this version; an operator's replay consumers keep theirs.
		if info := c.CachedInfo(); name == IndexerConsumer && info != nil && info.Config.AckWait != ackWait {
			cfg := info.Config
			cfg.AckWait = ackWait
			if c, err = js.CreateOrUpdateConsumer(ctx, ProfilesStream, cfg); err != nil {
				return nil, fmt.Errorf("consumer %s: update ack wait: %w", name, err)
			}
		}
		return c, nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("consumer %s: %w", name, err)
	}
	if name != IndexerConsumer {
		return nil, fmt.Errorf("consumer %s does not exist on %s (create it with the nats CLI first): %w", name, ProfilesStream, err)
	}
	c, err = js.CreateOrUpdateConsumer(ctx, ProfilesStream, jetstream.ConsumerConfig{
		Durable:   name,
		AckPolicy: jetstream.AckExplicitPolicy,
		AckWait:   ackWait,
		// Unbounded on purpose: JetStream would silently stop delivering an event past MaxDeliver, even
		// when only ClickHouse was down. The indexer counts the deliveries of the events ClickHouse refuses
		// (indexer.Config.MaxDeliveries) and dead-letters those, with the reason.
		MaxDeliver:    -1,
		MaxAckPending: 20000,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("create consumer %s: %w", name, err)
	}
	return c, nil
}

// Publish sends ev and waits for JetStream's acknowledgement. The message id is the profile id, so a
// retried upload inside the duplicate window is stored once.
func Publish(ctx context.Context, js jetstream.JetStream, ev Event) (*jetstream.PubAck, error) {
	body, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	msg := &nats.Msg{Subject: Subject(ev.Service), Data: body, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, ev.ID)
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", ev.ID, err)
	}
	return ack, nil
}

// Decode reads an event from a message body.
func Decode(data []byte) (Event, error) {
	var ev Event
	if err := json.Unmarshal(data, &ev); err != nil {
		return ev, fmt.Errorf("decode event: %w", err)
	}
	if ev.ID == "" || ev.Key == "" || ev.Service == "" {
		return ev, errors.New("decode event: id, key and service are required")
	}
	return ev, nil
}

// Headers of a dead-lettered message.
const (
	HeaderReason      = "Flamestream-Reason"
	HeaderOrigSubject = "Flamestream-Original-Subject"
	HeaderOrigSeq     = "Flamestream-Original-Sequence"
)

// DeadLetter copies msg to the dead-letter stream with the reason in its headers.
func DeadLetter(ctx context.Context, js jetstream.JetStream, msg jetstream.Msg, reason string) error {
	out := &nats.Msg{Subject: DeadLetterSubjectPrefix + strings.TrimPrefix(msg.Subject(), ProfilesSubjectPrefix),
		Data: msg.Data(), Header: nats.Header{}}
	out.Header.Set(HeaderReason, reason)
	out.Header.Set(HeaderOrigSubject, msg.Subject())
	if md, err := msg.Metadata(); err == nil {
		out.Header.Set(HeaderOrigSeq, fmt.Sprint(md.Sequence.Stream))
		out.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("dlq-%d", md.Sequence.Stream))
	}
	if _, err := js.PublishMsg(ctx, out); err != nil {
		return fmt.Errorf("dead-letter: %w", err)
	}
	return nil
}
