package indexer_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flamestream/flamestream/cmd/flamestream/testenv"
	"github.com/flamestream/flamestream/indexer"
	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/config"
	"github.com/flamestream/flamestream/internal/demo"
	"github.com/flamestream/flamestream/internal/objstore"
	"github.com/flamestream/flamestream/internal/schema"
	itestenv "github.com/flamestream/flamestream/internal/testenv"
	"github.com/flamestream/flamestream/stream"
)

// rig is an ingest role on the real local servers with its own embedded NATS server, and no indexer: each
// test runs the indexers it needs, on the consumers it needs.
type rig struct {
	st      *testenv.Stack
	natsURL string
	js      jetstream.JetStream
	store   *objstore.Store
	token   string
	log     *slog.Logger
	fleet   *demo.Fleet
	rng     *rand.Rand
	sent    map[string]uint64 // samples sent per service
}

func newRig(t *testing.T) *rig {
	t.Helper()
	testenv.Servers(t)
	natsURL, _, js := itestenv.JetStream(t)
	st := testenv.Start(t, testenv.Options{Role: "ingest", Edit: func(c *config.Config) { c.NATSURL = natsURL }})
	ctx := context.Background()
	if _, err := schema.Migrate(ctx, st.CH); err != nil {
		t.Fatal(err)
	}
	cfg := st.Config
	store, err := objstore.Open(objstore.Options{Endpoint: cfg.S3Endpoint, AccessKey: cfg.S3AccessKey,
		SecretKey: cfg.S3SecretKey, Bucket: cfg.S3Bucket, Region: cfg.S3Region, Secure: cfg.S3Secure})
	if err != nil {
		t.Fatal(err)
	}
	return &rig{st: st, natsURL: natsURL, js: js, store: store, token: st.Token(t, "agent", ""),
		log:   slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		fleet: demo.NewFleet(7, "svc", demo.Shape{Stacks: 400, Lines: 60, MinDepth: 5, MaxDepth: 20}),
		rng:   rand.New(rand.NewPCG(1, 2)), sent: map[string]uint64{}}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// upload sends n profiles of service through the ingest API, host i%hosts at start+i/hosts minutes, and
// adds their counts, summed from the text independently of the parser, to r.sent.
func (r *rig) upload(t *testing.T, service string, n, hosts int, start time.Time) {
	t.Helper()
	for i := range n {
		host := fmt.Sprintf("host-%02d", i%hosts)
		text := r.fleet.Profile(r.rng, host, "m5.large")
		ts := start.Add(time.Duration(i/hosts) * time.Minute)
		body := demo.NewUpload(text, host, ts, "").Gzip()
		r.st.Upload(t, r.token, service, body)
		for _, line := range strings.Split(string(text), "\n")[1:] {
			if sp := strings.LastIndexByte(line, ' '); sp > 0 {
				c, err := strconv.ParseUint(line[sp+1:], 10, 64)
				if err != nil {
					t.Fatalf("profile line %q: %v", line, err)
				}
				r.sent[service] += c
			}
		}
	}
}

// consumer creates a durable pull consumer on PROFILES; a short ack wait makes unacknowledged events come
// back quickly.
func (r *rig) consumer(t *testing.T, name string, ackWait time.Duration) jetstream.Consumer {
	t.Helper()
	c, err := r.js.CreateOrUpdateConsumer(context.Background(), stream.ProfilesStream, jetstream.ConsumerConfig{
		Durable: name, AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait, MaxDeliver: -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (r *rig) indexerConfig() indexer.Config {
	return indexer.Config{BatchSize: 16, BatchWait: 100 * time.Millisecond, FetchParallel: 4}
}

// run starts an indexer on cons writing to db until the test ends, and returns its metrics registry.
func (r *rig) run(t *testing.T, db *chdb.DB, cons jetstream.Consumer) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	ix := indexer.New(r.indexerConfig(), db, r.store, r.js, cons, r.log, reg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = ix.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return reg
}

// drained waits until cons has nothing pending nor unacknowledged.
func drained(t *testing.T, cons jetstream.Consumer, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		info, err := cons.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if info.NumPending == 0 && info.NumAckPending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer %s not drained after %s: %d pending, %d unacknowledged", info.Name, within, info.NumPending, info.NumAckPending)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tables are samples and every rollup.
var tables = []string{"samples", "totals_1m", schema.MinuteRollup, "samples_1h", "samples_1h_all", "samples_1d", "samples_1d_all"}

// fingerprint is, per table, the total count of a service and a count-weighted hash of (ts, stack): two
// fingerprints are equal when the query results (what every flame graph and timeline sums) are equal.
type fingerprint map[string][2]uint64

func fingerprintOf(t *testing.T, db *chdb.DB, service string) fingerprint {
	t.Helper()
	buildRollupsNow(t, db)
	fp := fingerprint{}
	for _, tb := range tables {
		key := "cityHash64(ts, stack)"
		if tb == "totals_1m" {
			key = "cityHash64(ts, host)"
		}
		var sum, weighted proto.ColUInt64
		err := db.Do(context.Background(), ch.Query{
			Body: "SELECT toUInt64(sum(count)) AS s, toUInt64(sum(count * (" + key + " % 1000003))) AS w FROM " + db.Table(tb) +
				" WHERE service = " + chdb.String(service),
			Result: proto.Results{{Name: "s", Data: &sum}, {Name: "w", Data: &weighted}},
		})
		if err != nil {
			t.Fatal(err)
		}
		fp[tb] = [2]uint64{sum[0], weighted[0]}
	}
	return fp
}

// checkTotals fails unless every table holds exactly want samples for service.
func checkTotals(t *testing.T, fp fingerprint, want uint64) {
	t.Helper()
	for _, tb := range tables {
		if got := fp[tb][0]; got != want {
			t.Errorf("%s: sum(count) = %d, want %d (sent)", tb, got, want)
		}
	}
}

// waitSamples waits until samples hold want counts for service.
func waitSamples(t *testing.T, db *chdb.DB, service string, want uint64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := fingerprintOf(t, db, service)["samples"][0]
		if got == want {
			return
		}
		if got > want {
			t.Fatalf("samples hold %d, more than the %d sent", got, want)
		}
		if time.Now().After(deadline) {
			t.Fatalf("samples hold %d after %s, want %d", got, within, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// metric reads a counter or the sample count of a histogram from reg.
func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// httptestServer serves reg's /metrics the way every role does, and returns its base URL.
func httptestServer(t *testing.T, reg *prometheus.Registry) string {
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
