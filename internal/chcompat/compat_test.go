package chcompat

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flamestream/flamestream/cmd/flamestream/testenv"
	"github.com/flamestream/flamestream/indexer"
	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/config"
	"github.com/flamestream/flamestream/internal/demo"
	"github.com/flamestream/flamestream/internal/objstore"
	"github.com/flamestream/flamestream/internal/pgdb"
	"github.com/flamestream/flamestream/internal/schema"
	"github.com/flamestream/flamestream/query"
	"github.com/flamestream/flamestream/stream"
)

// TestCurrentClickHouseAnswersLikeTheOldServer drives Flamestream's real code (indexer.Migrate, the
// indexer consuming real ingest uploads, the query API's HTTP handlers, Reindex and the janitor) against
// the local ClickHouse 18.16 with every statement recorded, runs the same schema on ClickHouse 26.5
// (chDB) with the same rows, and replays every recorded statement there: a statement current ClickHouse
// refuses, or a read whose rows differ from 18.16's on the same data, fails the test.
//
// Shapes covered, and checked to have been recorded (see wantShapes): every migration statement; the
// indexer's exactly-once guard; flame graphs over raw samples, the minute rollup, the hour and day rollups
// (service-wide and per dimension) and a plan that subtracts the part of a rollup bucket outside the range;
// include and exclude filters; diff; top; timeline (also past the raw retention, from hour/day rollups);
// the filters list; focus; export; services; stack texts; the rollup epoch; Reindex's deletes; the
// janitor's partition drops and per-service deletes and its guard reads.
func TestCurrentClickHouseAnswersLikeTheOldServer(t *testing.T) {
	cfg := testenv.Servers(t)
	ctx := context.Background()
	h := newHarness(t, cfg)

	// Migrate: every statement of the schema runs on both, in the same order.
	h.rec.Phase("migrate")
	if _, err := schema.Migrate(ctx, h.db); err != nil {
		t.Fatal(err)
	}
	ddl, err := schema.Layout{Database: h.db.Database}.SQL()
	if err != nil {
		t.Fatal(err)
	}
	var ran []string
	for _, s := range h.rec.Of("migrate") {
		ran = append(ran, s.SQL)
	}
	for _, s := range ddl {
		if !slices.Contains(ran, s) {
			t.Errorf("Migrate did not send %q of `migrate --print`", s)
		}
	}
	// On chDB the same steps create the tables in the compact storage (codecs and LowCardinality, a
	// superset of the codecs storage Migrate chooses on current ClickHouse): every read below compares
	// 18.16's plain tables with those.
	h.replay(t, "migrate", false)
	if got, err := engine.Query("SELECT type FROM system.columns WHERE database = '"+h.db.Database+"' AND table = 'samples' AND name = 'host'", ""); err != nil ||
		strings.TrimSpace(got) != "LowCardinality(String)" {
		t.Fatalf("chDB's samples.host is %q (%v), want the compact storage's LowCardinality(String)", got, err)
	}
	// The minute rollup's view exists since Migrate, so every sample indexed from here on is in it:
	// moving its epoch back (what an operator does after backfilling it) lets plans read it.
	now := time.Now().UTC()
	base := now.Truncate(time.Hour)
	h.oldExec(t, "INSERT INTO "+h.db.Table(schema.Epochs)+" (name, since) SELECT '"+schema.MinuteRollup+"', toDateTime("+
		strconv.FormatInt(base.Add(-72*time.Hour).Unix(), 10)+")")

	// Index: uploads at raw, minute, hour and day distances from now, two services, three hosts.
	h.rec.Phase("index")
	times := []time.Duration{-49*time.Hour + 5*time.Minute, -30*time.Hour + 7*time.Minute, -26*time.Hour + 3*time.Minute,
		-5*time.Hour + 10*time.Minute, -3*time.Hour + 20*time.Minute, -2*time.Hour + 31*time.Minute, -40 * time.Minute}
	for _, svc := range []string{"alpha", "beta"} {
		for _, d := range times {
			for i := range 3 {
				h.upload(t, svc, fmt.Sprintf("host-%d", i), base.Add(d+time.Duration(i)*time.Minute))
			}
		}
	}
	recent := now.Add(-4 * time.Minute).Truncate(time.Minute)
	h.upload(t, "alpha", "host-0", recent)
	h.index(t)
	h.copyRows(t, "")
	h.sameTables(t)
	// The same rows on both: the reads of Migrate and the indexer's guard now answer alike.
	reads := h.replay(t, "migrate", true) + h.replay(t, "index", true)

	// Build: the janitor builds the per-dimension hour and day rollups (schema step 7), its clock moved
	// past every bucket. Its deltas (INSERT ... SELECT) run on both servers from the same rows; its records
	// (native blocks, with the time they were written) are copied. The query phase then reads built buckets.
	h.rec.Phase("build")
	jb := indexer.NewJanitor(h.db, indexer.Retention{}, h.log)
	jb.Now = func() time.Time { return now.Add(48 * time.Hour) }
	built, err := jb.BuildRollups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if built.Built == 0 || built.Deltas == 0 {
		t.Fatalf("the builder built nothing: %+v", built)
	}
	deltas := 0
	for _, s := range h.rec.Of("build") {
		if sql := h.standIns(t, s.SQL); KindOf(sql) == Insert && strings.Contains(sql, " SELECT ") {
			if _, err := engine.Query(sql, ""); err != nil {
				t.Errorf("ClickHouse 26.5 refuses a rollup build:\n%s\n%v", sql, err)
			}
			deltas++
		}
	}
	if deltas == 0 {
		t.Error("no rollup build statement recorded")
	}
	h.copyTable(t, schema.Builds)
	h.sameTables(t)
	reads += h.replay(t, "build", true)

	// Query: the API over every kind of range, through its HTTP handlers.
	h.rec.Phase("query")
	type call struct {
		name, path string
		q          url.Values
	}
	unix := func(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }
	span := func(from, to time.Time) url.Values {
		return url.Values{"service": {"alpha"}, "from": {unix(from)}, "to": {unix(to)}}
	}
	with := func(v url.Values, kv ...string) url.Values {
		out := url.Values{}
		for k, vs := range v {
			out[k] = slices.Clone(vs)
		}
		for i := 0; i < len(kv); i += 2 {
			out.Add(kv[i], kv[i+1])
		}
		return out
	}
	recentSpan := span(now.Add(-15*time.Minute+17*time.Second), now)
	hours := span(base.Add(-6*time.Hour+7*time.Minute+3*time.Second), base.Add(-time.Hour+13*time.Minute))
	days := span(base.Add(-50*time.Hour+13*time.Minute), base.Add(-2*time.Hour+20*time.Minute))
	calls := []call{
		{"graph raw+minute", "/api/v1/flamegraph", recentSpan},
		{"graph hours", "/api/v1/flamegraph", hours},
		{"graph days", "/api/v1/flamegraph", days},
		{"graph host", "/api/v1/flamegraph", with(days, "host", "host-1")},
		{"graph host_not container", "/api/v1/flamegraph", with(hours, "host_not", "host-2", "instance_type", "m5.large")},
		{"graph focus", "/api/v1/flamegraph", with(hours, "focus", "python")},
		{"diff", "/api/v1/diff", with(hours, "base_from", days.Get("from"), "base_to", days.Get("to"))},
		{"diff filtered", "/api/v1/diff", with(recentSpan, "base_from", hours.Get("from"), "base_to", hours.Get("to"), "base_host", "host-0")},
		{"top", "/api/v1/top", days},
		{"top filtered", "/api/v1/top", with(hours, "host", "host-0")},
		{"timeline", "/api/v1/timeline", days},
		{"timeline recent", "/api/v1/timeline", with(recentSpan, "host_not", "host-1")},
		{"timeline without a process", "/api/v1/timeline", with(hours, "process_not", "java")},
		{"functions table", "/api/v1/functions", with(hours, "runtimes_off", "kernel")},
		{"function history", "/api/v1/function", with(days, "name", "schedule_[k]")},
		{"function history of a process", "/api/v1/function", with(hours, "name", "schedule_[k]", "process", "python3")},
		{"function history recent", "/api/v1/function", with(recentSpan, "name", "do_syscall_64_[k]", "host", "host-0")},
		{"filters", "/api/v1/filters", days},
		{"filters recent", "/api/v1/filters", with(recentSpan, "host", "host-0")},
		{"export", "/api/v1/export", hours},
		{"services", "/api/v1/services", url.Values{"from": {days.Get("from")}, "to": {days.Get("to")}}},
		{"metrics", "/api/v1/metrics", days},
		{"metrics hours", "/api/v1/metrics", with(hours, "host_not", "host-2")},
		{"metrics recent filtered", "/api/v1/metrics", with(recentSpan, "instance_type", "m5.large", "k8s_object_not", "none")},
	}
	for _, c := range calls {
		h.get(t, c.name, c.path, c.q)
	}
	reads += h.replay(t, "query", true)
	checkShapes(t, h.rec.Of("query"), hours)

	// Maintenance: Reindex one day of alpha, then the janitor's retention (global and beta's own).
	h.rec.Phase("reindex")
	// Reindex replays the events published around its range (all of them just now), so the range is today.
	res, err := indexer.Reindex(ctx, indexer.Config{BatchSize: 64, BatchWait: 100 * time.Millisecond}, indexer.Range{Service: "alpha", From: base.Add(-time.Hour), To: now},
		h.db, h.store, h.js, h.log)
	if err != nil {
		t.Fatal(err)
	}
	if res.Indexed == 0 {
		t.Fatalf("reindex indexed nothing: %+v", res)
	}
	h.replay(t, "reindex", false)
	// Reindex's inserts are the same rows again: copy them to chDB as the indexer wrote them on 18.16.
	h.copyRows(t, " WHERE service = 'alpha' AND ts >= "+chdb.Time(res.From)+" AND ts < "+chdb.Time(res.To))
	h.sameTables(t)
	reads += h.replay(t, "reindex", true)

	h.rec.Phase("janitor")
	j := indexer.NewJanitor(h.db, indexer.Retention{RawDays: 1, HourDays: 2, DayDays: 400}, h.log)
	j.Services = oneRetention{"beta", 1}
	dropped, err := j.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(dropped) == 0 {
		t.Error("the janitor dropped no partition: retention drops not covered")
	}
	dels, err := j.SweepServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(dels) == 0 {
		t.Error("the janitor deleted nothing of beta: per-service deletes not covered")
	}
	h.replay(t, "janitor", false)
	h.sameTables(t)
	reads += h.replay(t, "janitor", true)
	t.Logf("coverage: %d reads compared on %d data sets, %d tables compared after each of 3 loads/changes", reads, 3, len(h.tables))
}

// oneRetention is the janitor's view of the services' settings: one service with its own retention.
type oneRetention struct {
	service string
	days    int
}

func (o oneRetention) ServiceRetentions(ctx context.Context, after string, limit int, each func(string, int)) (string, error) {
	if after < o.service {
		each(o.service, o.days)
		return o.service, nil
	}
	return "", nil
}

// harness is the local stack on 18.16 with a recording connection, and chDB beside it.
type harness struct {
	old    Old
	db     *chdb.DB
	rec    *Recorder
	st     *testenv.Stack
	js     jetstream.JetStream
	store  *objstore.Store
	log    *slog.Logger
	token  string
	read   string
	cons   jetstream.Consumer
	api    *httptest.Server
	fleet  *demo.Fleet
	rng    *rand.Rand
	sent   uint64
	tables []string // the tables that hold rows (not views)
	// replacing are the tables whose duplicate rows a merge removes, whenever each server merges: their
	// rows compare as sets (FINAL for a whole table, distinct rows for a read).
	replacing map[string]bool
	// compact maps each statement of the plain schema (what Migrate sends 18.16) to the same statement
	// in the compact storage (what Migrate sends current ClickHouse): the replay runs that one on chDB.
	compact map[string]string
}

func newHarness(t *testing.T, cfg config.Config) *harness {
	t.Helper()
	ctx := context.Background()
	ns, err := stream.StartEmbedded(t.TempDir(), -1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	st := testenv.Start(t, testenv.Options{Role: "ingest", Edit: func(c *config.Config) { c.NATSURL = ns.URL() }})
	h := &harness{st: st, rec: &Recorder{}, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		fleet: demo.NewFleet(3, "compat", demo.Shape{Stacks: 120, Lines: 40, MinDepth: 4, MaxDepth: 12}),
		rng:   rand.New(rand.NewPCG(5, 6))}
	host, _, _ := net.SplitHostPort(cfg.ClickHouseAddr)
	h.old = Old{URL: "http://" + net.JoinHostPort(host, "8123"), User: cfg.ClickHouseUser, Password: cfg.ClickHousePassword}
	if h.db, err = chdb.Open(ctx, chdb.Options{Addr: cfg.ClickHouseAddr, User: cfg.ClickHouseUser, Password: cfg.ClickHousePassword,
		Database: st.Config.ClickHouseDatabase, Observe: h.rec.Observe}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.db.Close)
	t.Cleanup(func() { _ = engine.Exec("DROP DATABASE IF EXISTS " + h.db.Database) })
	plain, err := schema.Layout{Database: h.db.Database, Storage: schema.StoragePlain}.SQL()
	if err != nil {
		t.Fatal(err)
	}
	compact, err := schema.Layout{Database: h.db.Database, Storage: schema.StorageCompact}.SQL()
	if err != nil {
		t.Fatal(err)
	}
	if len(plain) != len(compact) {
		t.Fatalf("plain schema has %d statements, compact %d", len(plain), len(compact))
	}
	h.compact = map[string]string{}
	for i := range plain {
		h.compact[plain[i]] = compact[i]
	}
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if h.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	c := st.Config
	if h.store, err = objstore.Open(objstore.Options{Endpoint: c.S3Endpoint, AccessKey: c.S3AccessKey, SecretKey: c.S3SecretKey,
		Bucket: c.S3Bucket, Region: c.S3Region, Secure: c.S3Secure}); err != nil {
		t.Fatal(err)
	}
	h.token = st.Token(t, pgdb.KindAgent, "")
	h.read = st.Token(t, pgdb.KindRead, "")
	srv := query.New(query.Config{CacheBytes: -1, RawDays: 1, HourDays: 2}, h.db, st.PG, h.log)
	r := chi.NewRouter()
	srv.Routes(r)
	h.api = httptest.NewServer(r)
	t.Cleanup(h.api.Close)
	return h
}

// upload sends one profile of service for host at ts through the ingest API.
func (h *harness) upload(t *testing.T, service, host string, ts time.Time) {
	t.Helper()
	text := h.fleet.Profile(h.rng, host, "m5.large")
	body := demo.NewUpload(text, host, ts, "").Gzip()
	h.st.Upload(t, h.token, service, body)
	for _, line := range strings.Split(string(text), "\n")[1:] {
		if sp := strings.LastIndexByte(line, ' '); sp > 0 {
			n, _ := strconv.ParseUint(line[sp+1:], 10, 64)
			h.sent += n
		}
	}
}

// index runs the indexer on the recording connection until every upload is in samples.
func (h *harness) index(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cons, err := h.js.CreateOrUpdateConsumer(ctx, stream.ProfilesStream, jetstream.ConsumerConfig{
		Durable: "compat", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, MaxDeliver: -1,
		DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		t.Fatal(err)
	}
	ix := indexer.New(indexer.Config{BatchSize: 64, BatchWait: 100 * time.Millisecond}, h.db, h.store, h.js, cons, h.log, nil)
	done := make(chan struct{})
	go func() { _ = ix.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		// Without the batches' marker rows (count 1 each, see schema.MarkerService).
		got, err := h.old.Query("SELECT sum(count) FROM " + h.db.Table("samples") + " WHERE service != " + chdb.String(schema.MarkerService))
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(got) == strconv.FormatUint(h.sent, 10) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("samples hold %s after 60 s, want %d", strings.TrimSpace(got), h.sent)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// get calls the query API and fails unless it answers 200.
func (h *harness) get(t *testing.T, name, path string, q url.Values) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.api.URL+path+"?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+h.read)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s %s", name, resp.Status, b)
	}
}

// external matches a read of an external table (sent beside the statement: the hashes the query API
// lacks stack texts for, the profile ids the indexer's guard asks about). A recording holds the
// statement, not the table, so a replay reads a stand-in of the same column from samples: every stack
// hash, every profile id.
var external = regexp.MustCompile(`\(SELECT (\w+) FROM (_\w+)\)`)

// externalStandIns maps an external table to the column of samples that stands in for it.
var externalStandIns = map[string]string{"_hashes": "stack", "_ids": "profile", "_set1": "stack", "_set2": "stack", "_drop": "stack"}

func (h *harness) standIns(t *testing.T, sql string) string {
	return external.ReplaceAllStringFunc(sql, func(m string) string {
		p := external.FindStringSubmatch(m)
		col, ok := externalStandIns[p[2]]
		if !ok {
			t.Fatalf("no stand-in for the external table %s of a recorded statement: add one to externalStandIns", p[2])
		}
		return "(SELECT DISTINCT " + col + " AS " + p[1] + " FROM " + h.db.Table("samples") + ")"
	})
}

// replay runs the statements recorded in phase on chDB and returns how many reads it compared with
// 18.16's answers to them now. With compare false, reads only have to run (they are compared later,
// once both servers hold the same rows).
func (h *harness) replay(t *testing.T, phase string, compare bool) int {
	t.Helper()
	reads := 0
	for _, s := range h.rec.Of(phase) {
		sql := h.standIns(t, s.SQL)
		if c, ok := h.compact[sql]; ok {
			sql = c
		}
		kind := KindOf(sql)
		if kind == Insert || (!compare && kind == Read) {
			if kind == Read {
				if _, err := engine.Query(sql, ""); err != nil {
					t.Errorf("ClickHouse 26.5 refuses a read of %s:\n%s\n%v", phase, sql, err)
				}
			}
			continue
		}
		switch kind {
		case Change, SystemRead:
			if compare && kind == Change {
				continue // already run
			}
			if _, err := engine.Query(sql, ""); err != nil {
				t.Errorf("ClickHouse 26.5 refuses a statement of %s:\n%s\n%v", phase, sql, err)
			}
		case Read:
			want, err := h.old.Query(sql)
			if err != nil {
				t.Fatalf("18.16 refuses a read of %s on replay:\n%s\n%v", phase, s.SQL, err)
			}
			got, err := engine.Query(sql, "")
			if err != nil {
				t.Errorf("ClickHouse 26.5 refuses a read of %s:\n%s\n%v", phase, sql, err)
				continue
			}
			reads++
			w, g := SortedLines(want), SortedLines(got)
			if h.readsReplacing(sql) {
				w, g = slices.Compact(w), slices.Compact(g)
			}
			if !slices.Equal(w, g) {
				t.Errorf("ClickHouse 26.5 answers a read of %s differently:\n%s\n18.16: %d rows %.300q\n26.5:  %d rows %.300q",
					phase, sql, len(w), strings.Join(w, "\n"), len(g), strings.Join(g, "\n"))
			}
		}
	}
	return reads
}

// readsReplacing tells whether sql reads a table whose duplicates only a merge removes.
func (h *harness) readsReplacing(sql string) bool {
	for name := range h.replacing {
		if strings.Contains(sql, h.db.Table(name)+" ") {
			return true
		}
	}
	return false
}

// mvTarget finds the table a materialized view writes to in a CREATE statement.
var mvTarget = regexp.MustCompile(`CREATE MATERIALIZED VIEW .* TO [a-zA-Z0-9_]+\.([a-zA-Z0-9_]+) AS `)

// copyRows copies the rows of every table that no materialized view writes from 18.16 to chDB (where
// filter, if set, selects them); on chDB the views then fill the rollups from the copied samples, as they
// did on 18.16 from the indexer's inserts.
func (h *harness) copyRows(t *testing.T, where string) {
	t.Helper()
	ddl, _ := schema.Layout{Database: h.db.Database}.SQL()
	fed := map[string]bool{}
	for _, s := range ddl {
		if m := mvTarget.FindStringSubmatch(s); m != nil {
			fed[m[1]] = true
		}
	}
	out, err := h.old.Query("SELECT name, engine FROM system.tables WHERE database = " + chdb.String(h.db.Database))
	if err != nil {
		t.Fatal(err)
	}
	h.tables = h.tables[:0]
	h.replacing = map[string]bool{}
	for _, line := range SortedLines(out) {
		name, engineName, _ := strings.Cut(line, "\t")
		if engineName == "MaterializedView" {
			continue
		}
		if strings.Contains(engineName, "Replacing") {
			h.replacing[name] = true
		}
		h.tables = append(h.tables, name)
		// A partial copy (after a reindex) takes the samples of the range, the batch ledger's rows of the
		// range (the reindex deleted the earlier ones on both servers) and the marker rows of those batches.
		if fed[name] || (where != "" && name != schema.Samples && name != schema.Batches && name != schema.HostMetrics) {
			continue
		}
		final := ""
		if h.replacing[name] {
			// Which duplicate a merge keeps depends on the order of the parts, which a copy in one block
			// loses: both servers get the merged rows.
			if err := h.old.Exec("OPTIMIZE TABLE " + h.db.Table(name) + " FINAL"); err != nil {
				t.Fatal(err)
			}
			final = " FINAL"
		}
		rows, err := h.old.Query("SELECT * FROM " + h.db.Table(name) + final + where)
		if err != nil {
			t.Fatal(err)
		}
		if where != "" && name == schema.Samples {
			markers, err := h.old.Query("SELECT * FROM " + h.db.Table(name) + " WHERE service = " + chdb.String(schema.MarkerService) +
				" AND stack IN (SELECT batch FROM " + h.db.Table(schema.Batches) + where + ")")
			if err != nil {
				t.Fatal(err)
			}
			rows += markers
		}
		if rows == "" {
			continue
		}
		if err := engine.Exec("INSERT INTO " + h.db.Table(name) + " FORMAT TabSeparated\n" + rows); err != nil {
			t.Fatalf("copy %s to chDB: %v", name, err)
		}
	}
}

// copyTable copies every row of one table from 18.16 to chDB.
func (h *harness) copyTable(t *testing.T, name string) {
	t.Helper()
	rows, err := h.old.Query("SELECT * FROM " + h.db.Table(name))
	if err != nil {
		t.Fatal(err)
	}
	if rows == "" {
		return
	}
	if err := engine.Exec("INSERT INTO " + h.db.Table(name) + " FORMAT TabSeparated\n" + rows); err != nil {
		t.Fatalf("copy %s to chDB: %v", name, err)
	}
}

// sameTables compares every table's rows on both servers; rows of summing tables are summed per key, as
// every reader does (unmerged parts differ between servers).
func (h *harness) sameTables(t *testing.T) {
	t.Helper()
	for _, name := range h.tables {
		cols, err := h.old.Query("SELECT name FROM system.columns WHERE database = " + chdb.String(h.db.Database) +
			" AND table = " + chdb.String(name))
		if err != nil {
			t.Fatal(err)
		}
		var keys, sums []string
		hasCount := false
		for _, c := range strings.Split(strings.TrimSpace(cols), "\n") {
			if c == "count" {
				hasCount = true
				continue
			}
			if c == "cpu_sum" || c == "mem_sum" || c == "n" { // the host metrics sums, summed per key like count
				sums = append(sums, c)
				continue
			}
			if c != "applied_at" && c != "" { // schema_migrations: when each server applied it
				keys = append(keys, c)
			}
		}
		final := ""
		if h.replacing[name] {
			final = " FINAL"
		}
		sel := "SELECT " + strings.Join(keys, ", ") + " FROM " + h.db.Table(name) + final + " GROUP BY " + strings.Join(keys, ", ")
		if len(sums) > 0 {
			// Floats summed in another order differ in the last bits: compared to a millionth.
			sel = "SELECT " + strings.Join(keys, ", ") + ", toInt64(round(sum(cpu_sum) * 1000000)), toInt64(round(sum(mem_sum) * 1000000)), sum(n) FROM " +
				h.db.Table(name) + " GROUP BY " + strings.Join(keys, ", ")
		}
		if hasCount {
			sel = "SELECT " + strings.Join(keys, ", ") + ", sum(count) FROM " + h.db.Table(name) + " GROUP BY " + strings.Join(keys, ", ") +
				" HAVING sum(count) != 0"
		}
		want, err := h.old.Query(sel)
		if err != nil {
			t.Fatal(err)
		}
		got, err := engine.Query(sel, "")
		if err != nil {
			t.Fatalf("chDB: %s: %v", sel, err)
		}
		if w, g := SortedLines(want), SortedLines(got); !slices.Equal(w, g) {
			t.Errorf("table %s differs: 18.16 %d rows, 26.5 %d rows", name, len(w), len(g))
		}
	}
}

// oldExec runs a statement on 18.16 (its rows reach chDB with the others, see copyRows).
func (h *harness) oldExec(t *testing.T, sql string) {
	t.Helper()
	if err := h.old.Exec(sql); err != nil {
		t.Fatal(err)
	}
}

// ranges reads the time ranges of a statement's segments.
var ranges = regexp.MustCompile(`ts >= toDateTime\((\d+)\) AND ts < toDateTime\((\d+)\)`)

// checkShapes fails unless the query phase sent every shape the harness claims to cover.
func checkShapes(t *testing.T, stmts []Statement, hours url.Values) {
	t.Helper()
	from, _ := strconv.ParseInt(hours.Get("from"), 10, 64)
	to, _ := strconv.ParseInt(hours.Get("to"), 10, 64)
	has := func(pred func(string) bool) bool {
		return slices.ContainsFunc(stmts, func(s Statement) bool { return KindOf(s.SQL) == Read && pred(s.SQL) })
	}
	reads := func(table string) func(string) bool {
		return func(s string) bool { return strings.Contains(s, "."+table+" PREWHERE") }
	}
	shapes := map[string]func(string) bool{
		"raw samples":              reads("samples"),
		"minute rollup":            reads("samples_1m_all"),
		"hour rollup":              reads("samples_1h_all"),
		"hour rollup by dimension": reads("samples_1h"),
		"day rollup":               reads("samples_1d_all"),
		"day rollup by dimension":  reads("samples_1d"),
		"minute totals":            reads("totals_1m"),
		"include filter":           func(s string) bool { return strings.Contains(s, "host IN (") },
		"exclude filter":           func(s string) bool { return strings.Contains(s, "host NOT IN (") },
		"stack texts":              func(s string) bool { return strings.Contains(s, "."+schema.Stacks) },
		"rollup epoch":             func(s string) bool { return strings.Contains(s, "."+schema.Epochs) },
		"union of segments":        func(s string) bool { return strings.Contains(s, " UNION ALL ") },
		// A bucket read whole past an edge of the hours range, whose outside part is subtracted.
		"subtraction": func(s string) bool {
			for _, m := range ranges.FindAllStringSubmatch(s, -1) {
				a, _ := strconv.ParseInt(m[1], 10, 64)
				b, _ := strconv.ParseInt(m[2], 10, 64)
				if (a < from && b > from) || (a < to && b > to) {
					return true
				}
			}
			return false
		},
	}
	for name, pred := range shapes {
		if !has(pred) {
			t.Errorf("no recorded read covers %s", name)
		}
	}
}
