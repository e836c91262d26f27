package indexer_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flamestream/flamestream/indexer"
	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/stream"
)

func TestTwoIndexersOnOneConsumerShareTheWorkWithExactTotals(t *testing.T) {
	r := newRig(t)
	base := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	r.upload(t, "shared", 200, 10, base)
	cons := r.consumer(t, "indexer", time.Minute)
	a := r.run(t, r.st.CH, cons)
	b := r.run(t, r.st.CH, cons)
	drained(t, cons, 90*time.Second)
	waitSamples(t, r.st.CH, "shared", r.sent["shared"], 10*time.Second)
	checkTotals(t, fingerprintOf(t, r.st.CH, "shared"), r.sent["shared"])
	pa, pb := metric(t, a, "flamestream_indexer_profiles_total"), metric(t, b, "flamestream_indexer_profiles_total")
	if pa+pb != 200 {
		t.Errorf("indexers wrote %v + %v profiles, want 200", pa, pb)
	}
	if pa == 0 || pb == 0 {
		t.Errorf("one indexer did all the work: %v and %v profiles", pa, pb)
	}
	t.Logf("indexer A %v profiles, B %v profiles, %d samples", pa, pb, r.sent["shared"])
}

// republish sends every event of the stream again under a new message id, as an operator re-publishing
// with the nats CLI would.
func republish(t *testing.T, r *rig) int {
	t.Helper()
	ctx := context.Background()
	s, err := r.js.Stream(ctx, stream.ProfilesStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		out := &nats.Msg{Subject: m.Subject, Data: m.Data, Header: nats.Header{}}
		out.Header.Set(jetstream.MsgIDHeader, "again-"+m.Header.Get(jetstream.MsgIDHeader))
		if _, err := r.js.PublishMsg(ctx, out); err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

func TestIndexingTheSameEventsTwiceChangesNoQueryResult(t *testing.T) {
	r := newRig(t)
	base := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	r.upload(t, "twice", 40, 4, base)
	cons := r.consumer(t, "indexer", 2*time.Second)
	reg := r.run(t, r.st.CH, cons)
	drained(t, cons, 60*time.Second)
	before := fingerprintOf(t, r.st.CH, "twice")
	checkTotals(t, before, r.sent["twice"])

	if n := republish(t, r); n != 40 {
		t.Fatalf("republished %d events, want 40", n)
	}
	drained(t, cons, 60*time.Second)
	if after := fingerprintOf(t, r.st.CH, "twice"); !equal(after, before) {
		t.Errorf("re-published events changed the results:\nbefore %v\nafter  %v", before, after)
	}
	if got := metric(t, reg, "flamestream_indexer_profiles_total"); got != 40 {
		t.Errorf("%v profiles indexed over 80 events, want 40", got)
	}
}

func equal(a, b fingerprint) bool {
	for _, tb := range tables {
		if a[tb] != b[tb] {
			return false
		}
	}
	return true
}

func TestRedeliveryAfterACrashBetweenInsertAndAckCountsOnce(t *testing.T) {
	r := newRig(t)
	base := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	r.upload(t, "crash", 12, 3, base)
	cons := r.consumer(t, "indexer", 2*time.Second)

	// The "crashed" indexer inserts a batch and dies before acking it.
	ctx := context.Background()
	crashed := indexer.New(r.indexerConfig(), r.st.CH, r.store, r.js, cons, r.log, nil)
	batch, err := cons.Fetch(12, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	if len(msgs) == 0 {
		t.Fatal("no events fetched")
	}
	b, err := crashed.Index(ctx, msgs)
	if err != nil {
		t.Fatal(err)
	}
	if b.Indexed != len(msgs) {
		t.Fatalf("crashed indexer wrote %d of %d profiles", b.Indexed, len(msgs))
	}
	// No ack: after the ack wait JetStream redelivers the batch to the next indexer.
	reg := r.run(t, r.st.CH, cons)
	drained(t, cons, 60*time.Second)
	checkTotals(t, fingerprintOf(t, r.st.CH, "crash"), r.sent["crash"])
	if got, want := metric(t, reg, "flamestream_indexer_profiles_total"), float64(12-len(msgs)); got != want {
		t.Errorf("the second indexer wrote %v profiles, want %v (the redelivered ones are skipped)", got, want)
	}
}

// publishRaw stores body under key (unless body is nil) and publishes an event for it.
func publishRaw(t *testing.T, r *rig, id, key string, body []byte, event []byte) {
	t.Helper()
	ctx := context.Background()
	if body != nil {
		if err := r.store.Put(ctx, key, body, "application/gzip"); err != nil {
			t.Fatal(err)
		}
	}
	if event == nil {
		ev := stream.Event{ID: id, Service: "poison", Host: "h", Start: time.Now().Add(-time.Hour), Key: key}
		var err error
		if event, err = json.Marshal(ev); err != nil {
			t.Fatal(err)
		}
	}
	msg := &nats.Msg{Subject: stream.Subject("poison"), Data: event, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, id)
	if _, err := r.js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
}

func gzipJSON(t *testing.T, v any) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(v); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	return buf.Bytes()
}

func TestPoisonEventsAreDeadLetteredWithTheReasonAndTerminated(t *testing.T) {
	r := newRig(t)
	tests := []struct {
		name, id, key string
		body, event   []byte
		reason        string
	}{
		{"object missing", "00000000000000a1", "profiles/poison/missing.gz", nil, nil, "object missing: profiles/poison/missing.gz"},
		{"unparseable profile", "00000000000000a2", "profiles/poison/garbage.gz", gzipJSON(t, map[string]string{"profile": "no header\nnot a stack\n"}), nil, "profile:"},
		{"not gzip", "00000000000000a3", "profiles/poison/plain.gz", []byte("plain text"), nil, "object is not gzip"},
		{"undecodable event", "00000000000000a4", "", nil, []byte("{not json"), "decode event"},
	}
	for _, tt := range tests {
		publishRaw(t, r, tt.id, tt.key, tt.body, tt.event)
	}
	// A good profile in the same batches is indexed.
	r.upload(t, "poison", 2, 1, time.Now().UTC().Add(-time.Hour))
	cons := r.consumer(t, "indexer", 2*time.Second)
	reg := r.run(t, r.st.CH, cons)
	drained(t, cons, 60*time.Second)
	checkTotals(t, fingerprintOf(t, r.st.CH, "poison"), r.sent["poison"])
	if got := metric(t, reg, "flamestream_indexer_dead_letters_total"); got != float64(len(tests)) {
		t.Errorf("dead letters metric %v, want %d", got, len(tests))
	}
	if info, _ := cons.Info(context.Background()); info.NumRedelivered != 0 {
		t.Errorf("%d events were redelivered: poison must be terminated, not retried", info.NumRedelivered)
	}

	ctx := context.Background()
	dlq, err := r.js.Stream(ctx, stream.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{} // original subject+body -> reason
	for seq := uint64(1); seq <= uint64(len(tests)); seq++ {
		m, err := dlq.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("dead-letter %d: %v", seq, err)
		}
		if m.Subject != stream.DeadLetterSubjectPrefix+"poison" || m.Header.Get(stream.HeaderOrigSubject) != "profiles.poison" || m.Header.Get(stream.HeaderOrigSeq) == "" {
			t.Errorf("dead-letter %d: subject %s headers %v", seq, m.Subject, m.Header)
		}
		reasons[string(m.Data)] = m.Header.Get(stream.HeaderReason)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for body, reason := range reasons {
				if (tt.event != nil && body == string(tt.event)) || (tt.event == nil && strings.Contains(body, tt.id)) {
					if !strings.Contains(reason, tt.reason) {
						t.Errorf("reason %q, want it to contain %q", reason, tt.reason)
					}
					return
				}
			}
			t.Errorf("not in %s", stream.DeadLetterStream)
		})
	}
	if _, err := dlq.GetMsg(ctx, uint64(len(tests))+1); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Errorf("more dead letters than poison events (err %v)", err)
	}
}

// proxy forwards TCP connections to ClickHouse until it is closed; reopen listens again on the same
// address. It stands for a ClickHouse outage without stopping the shared server.
type proxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	p := &proxy{target: target}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.close)
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
}

// close refuses new connections and cuts the open ones.
func (p *proxy) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) reopen(t *testing.T) {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.serve(ln)
}

func TestClickHouseOutageNaksWithBackoffAndTheBacklogDrainsWhenItReturns(t *testing.T) {
	r := newRig(t)
	cfg := r.st.Config
	px := newProxy(t, cfg.ClickHouseAddr)
	viaProxy, err := chdb.Open(context.Background(), chdb.Options{Addr: px.addr, User: cfg.ClickHouseUser,
		Password: cfg.ClickHousePassword, Database: cfg.ClickHouseDatabase})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(viaProxy.Close)
	cons := r.consumer(t, "indexer", time.Minute)
	reg := r.run(t, viaProxy, cons)
	base := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	r.upload(t, "outage", 5, 5, base)
	drained(t, cons, 60*time.Second)
	waitSamples(t, r.st.CH, "outage", r.sent["outage"], 10*time.Second)
	indexedBefore := r.sent["outage"]

	px.close() // ClickHouse is down for the indexer
	r.upload(t, "outage", 20, 5, base.Add(10*time.Minute))
	deadline := time.Now().Add(20 * time.Second)
	for metric(t, reg, "flamestream_indexer_batch_failures_total") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the indexer did not fail twice while ClickHouse was unreachable")
		}
		time.Sleep(100 * time.Millisecond)
	}
	info, err := cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumPending+uint64(info.NumAckPending) != 20 {
		t.Errorf("backlog during the outage: %d pending + %d unacknowledged, want 20", info.NumPending, info.NumAckPending)
	}
	if got := fingerprintOf(t, r.st.CH, "outage")["samples"][0]; got != indexedBefore {
		t.Errorf("samples changed during the outage: %d, want %d", got, indexedBefore)
	}

	px.reopen(t)
	drained(t, cons, 90*time.Second)
	waitSamples(t, r.st.CH, "outage", r.sent["outage"], 10*time.Second)
	checkTotals(t, fingerprintOf(t, r.st.CH, "outage"), r.sent["outage"])
	if got := metric(t, reg, "flamestream_indexer_dead_letters_total"); got != 0 {
		t.Errorf("%v events dead-lettered during an outage; they must wait", got)
	}
}

func TestMetricsEndpointExposesTheIndexerMetrics(t *testing.T) {
	r := newRig(t)
	r.upload(t, "metrics", 3, 3, time.Now().UTC().Add(-time.Hour))
	cons := r.consumer(t, "indexer", time.Minute)
	reg := r.run(t, r.st.CH, cons)
	drained(t, cons, 60*time.Second)
	// The pending gauge is sampled every 5 s.
	time.Sleep(5500 * time.Millisecond)
	srv := httptestServer(t, reg)
	resp, err := http.Get(srv + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"flamestream_indexer_consumer_pending 0",
		"flamestream_indexer_batch_events_count ",
		"flamestream_indexer_insert_seconds_count ",
		"flamestream_indexer_rows_total ",
		"flamestream_indexer_profiles_total 3",
		"flamestream_indexer_dead_letters_total 0",
		"flamestream_indexer_batch_failures_total 0",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if metric(t, reg, "flamestream_indexer_rows_total") == 0 || metric(t, reg, "flamestream_indexer_insert_seconds") == 0 {
		t.Error("rows or insert latency not recorded")
	}
}
