package indexer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/flamestream/flamestream/indexer"
	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/demo"
	"github.com/flamestream/flamestream/internal/schema"
)

// sentHost is what one uploaded header said about its host.
type sentHost struct {
	host     string
	ts       time.Time
	cpu, mem float64
	cores    uint32
}

// uploadWithMetrics sends n profiles of service, host i%hosts at start+i/hosts minutes, whose headers
// carry metrics that differ from profile to profile (and processors per host), and returns what each
// header said. Profile skip (if >= 0) has no metrics key at all and is not returned.
func (r *rig) uploadWithMetrics(t *testing.T, service string, n, hosts, skip int, start time.Time) []sentHost {
	t.Helper()
	var out []sentHost
	for i := range n {
		host := fmt.Sprintf("host-%02d", i%hosts)
		var hdr map[string]any
		line := r.fleet.HeaderLine(host, fmt.Sprintf("m5.%dxlarge", 1+i%hosts))
		if err := json.Unmarshal(bytes.TrimSpace(line[1:]), &hdr); err != nil {
			t.Fatal(err)
		}
		s := sentHost{host: host, ts: start.Add(time.Duration(i/hosts) * time.Minute),
			cpu: float64((i*37)%1000) / 10, mem: 20 + float64((i*53)%613)/7, cores: uint32(2 << (i % hosts))}
		hdr["metadata"].(map[string]any)["processors"] = s.cores
		if i == skip {
			delete(hdr, "metrics")
		} else {
			hdr["metrics"] = map[string]any{"cpu_avg": s.cpu, "mem_avg": s.mem}
			out = append(out, s)
		}
		h, _ := json.Marshal(hdr)
		text := append(append([]byte("#"), h...), '\n')
		text = append(text, r.fleet.Lines(r.rng)...)
		body := demo.NewUpload(text, host, s.ts, "").Gzip()
		r.st.Upload(t, r.token, service, body)
	}
	return out
}

// checkHostMetrics fails unless host_metrics holds exactly one row per sent header, with its numbers as
// sent, and the hour and day sums equal the sums of the sent numbers per host and bucket.
func checkHostMetrics(t *testing.T, db *chdb.DB, service string, sent []sentHost) {
	t.Helper()
	ctx := context.Background()
	type key struct {
		host string
		ts   int64
	}
	want := map[key]sentHost{}
	for _, s := range sent {
		want[key{s.host, s.ts.Unix()}] = s
	}
	var ts proto.ColDateTime
	var host proto.ColStr
	var cpu, mem proto.ColFloat64
	var cores proto.ColUInt32
	err := db.Do(ctx, ch.Query{
		Body: "SELECT ts, host, cpu, mem, cores FROM " + db.Table(schema.HostMetrics) + " WHERE service = " + chdb.String(service),
		Result: proto.Results{{Name: "ts", Data: &ts}, {Name: "host", Data: &host}, {Name: "cpu", Data: &cpu},
			{Name: "mem", Data: &mem}, {Name: "cores", Data: &cores}},
		OnResult: func(ctx context.Context, b proto.Block) error {
			for i := range cpu.Rows() {
				k := key{host.Row(i), ts.Row(i).Unix()}
				s, ok := want[k]
				if !ok {
					t.Errorf("host_metrics row %v not sent (or twice)", k)
					continue
				}
				delete(want, k)
				// Exact: the agent's number goes through JSON and a Float64 column unchanged.
				if cpu[i] != s.cpu || mem[i] != s.mem || cores[i] != s.cores {
					t.Errorf("%v: cpu %v mem %v cores %d, sent %v %v %d", k, cpu[i], mem[i], cores[i], s.cpu, s.mem, s.cores)
				}
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(want) > 0 {
		t.Errorf("%d headers missing from host_metrics", len(want))
	}
	for _, rl := range []struct {
		table string
		cut   time.Duration
	}{{schema.HostMetricsHour, time.Hour}, {schema.HostMetricsDay, 24 * time.Hour}} {
		type sum struct {
			cpu, mem float64
			n        uint64
		}
		exp := map[key]sum{}
		for _, s := range sent {
			k := key{s.host, s.ts.Truncate(rl.cut).Unix()}
			e := exp[k]
			e.cpu, e.mem, e.n = e.cpu+s.cpu, e.mem+s.mem, e.n+1
			exp[k] = e
		}
		var cs, ms proto.ColFloat64
		var n proto.ColUInt64
		ts.Reset()
		host.Reset()
		err := db.Do(ctx, ch.Query{
			Body: "SELECT ts, host, sum(cpu_sum) AS c, sum(mem_sum) AS m, sum(n) AS n FROM " + db.Table(rl.table) +
				" WHERE service = " + chdb.String(service) + " GROUP BY ts, host",
			Result: proto.Results{{Name: "ts", Data: &ts}, {Name: "host", Data: &host}, {Name: "c", Data: &cs},
				{Name: "m", Data: &ms}, {Name: "n", Data: &n}},
			OnResult: func(ctx context.Context, b proto.Block) error {
				for i := range n.Rows() {
					k := key{host.Row(i), ts.Row(i).Unix()}
					e, ok := exp[k]
					delete(exp, k)
					// Sums of floats in another order differ in the last bits only.
					if !ok || n[i] != e.n || math.Abs(cs[i]-e.cpu) > 1e-9 || math.Abs(ms[i]-e.mem) > 1e-9 {
						t.Errorf("%s %v: cpu_sum %v mem_sum %v n %d, want %v %v %d", rl.table, k, cs[i], ms[i], n[i], e.cpu, e.mem, e.n)
					}
				}
				return nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(exp) > 0 {
			t.Errorf("%s misses %d buckets", rl.table, len(exp))
		}
	}
}

// TestHostMetricsStoredOncePerProfileAndCompletedByTheGuard indexes profiles whose headers carry metrics
// (one has none, and is not stored), checks every row and the hour and day sums against the headers
// sent, then removes one host's rows, as a metrics insert that failed after its samples would have left
// them, and replays the whole stream: the guard completes exactly the missing rows and writes nothing else.
// Last, a reindex of the range rebuilds them exactly (its deletions cover the host metrics tables).
func TestHostMetricsStoredOncePerProfileAndCompletedByTheGuard(t *testing.T) {
	r := newRig(t)
	base := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour).Add(-30 * time.Minute)
	sent := r.uploadWithMetrics(t, "hm", 150, 3, 7, base) // 50 minutes of 3 hosts, across an hour boundary
	if len(sent) != 149 {
		t.Fatalf("%d headers with metrics", len(sent))
	}
	live := r.consumer(t, "indexer", time.Minute)
	r.run(t, r.st.CH, live)
	drained(t, live, 60*time.Second)
	checkHostMetrics(t, r.st.CH, "hm", sent)

	ctx := context.Background()
	for _, tb := range []string{schema.HostMetrics, schema.HostMetricsHour, schema.HostMetricsDay} {
		if err := r.st.CH.Exec(ctx, "ALTER TABLE "+r.st.CH.Table(tb)+" DELETE WHERE host = 'host-01'"); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var left proto.ColUInt64
		if err := r.st.CH.Do(ctx, ch.Query{
			Body:   "SELECT count() AS n FROM system.mutations WHERE database = " + chdb.String(r.st.CH.Database) + " AND is_done = 0",
			Result: proto.Results{{Name: "n", Data: &left}},
		}); err != nil {
			t.Fatal(err)
		}
		if left[0] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("mutations not done after 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	replay := r.consumer(t, "replay", time.Minute)
	r.run(t, r.st.CH, replay)
	drained(t, replay, 60*time.Second)
	checkHostMetrics(t, r.st.CH, "hm", sent)

	// Reindex deletes the range's host metrics with its samples and writes them again, once.
	res, err := indexer.Reindex(ctx, r.indexerConfig(), indexer.Range{Service: "hm", From: base, To: base.Add(50 * time.Minute), Slack: 3 * time.Hour},
		r.st.CH, r.store, r.js, r.log)
	if err != nil {
		t.Fatal(err)
	}
	if res.Indexed != 150 {
		t.Errorf("reindex indexed %d profiles, want 150", res.Indexed)
	}
	checkHostMetrics(t, r.st.CH, "hm", sent)
}
