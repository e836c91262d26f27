package query

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"
	"github.com/cespare/xxhash/v2"

	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/schema"
	"github.com/flamestream/flamestream/internal/testenv"
)

// builtRow is one raw sample row of builtFixture.
type builtRow struct {
	ts         time.Time
	host, cont string
	stack      string
	count      uint32
}

// builtFixture is a query server on a fresh, migrated ClickHouse database holding three and a half days of
// samples of service "svc" from three hosts (and a noise service), five days ago, with the built rollups'
// epochs moved back before them: every bucket of the data needs a record to be read.
type builtFixture struct {
	db   *chdb.DB
	s    *Server
	rows []builtRow
	day0 time.Time
	pool []string
	next uint64 // the next profile id
}

func newBuiltFixture(t testing.TB) *builtFixture {
	t.Helper()
	cfg := testenv.Servers(t)
	ctx := context.Background()
	db, err := chdb.Open(ctx, chdb.Options{Addr: cfg.ClickHouseAddr, User: cfg.ClickHouseUser, Password: cfg.ClickHousePassword, Database: testenv.Name("fs_built")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = db.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db.Database)
		db.Close()
	})
	if _, err := schema.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	f := &builtFixture{db: db, day0: time.Now().UTC().Truncate(24 * time.Hour).Add(-5 * 24 * time.Hour)}
	for i := range 20 {
		f.pool = append(f.pool, "python3;main_[p];fn"+strconv.Itoa(i%5)+"_[p];leaf"+strconv.Itoa(i)+"_[k]")
	}
	// The migration recorded the epochs at the current hour and day; the smallest since counts.
	name, since := new(proto.ColStr), proto.ColDateTime{}
	for _, b := range []string{schema.Hour, schema.Day} {
		name.Append(schema.BuiltEpoch(b))
		since.Append(f.day0.Add(-2 * 24 * time.Hour))
	}
	if err := db.Insert(ctx, schema.Epochs, proto.Input{{Name: "name", Data: name}, {Name: "since", Data: &since}}); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 9))
	var rows []builtRow
	for i, h := range []string{"web-1", "web-2", "db-1"} {
		for ts := f.day0.Add(-6*time.Hour + time.Duration(i*13+1)*time.Second); ts.Before(f.day0.Add(3*24*time.Hour + 5*time.Hour)); ts = ts.Add(7*time.Minute + time.Duration(rng.IntN(30))*time.Second) {
			for j := range 2 + rng.IntN(4) {
				rows = append(rows, builtRow{ts, h, "c" + strconv.Itoa(j%2), f.pool[rng.IntN(len(f.pool))], uint32(1 + rng.IntN(50))})
			}
		}
	}
	f.insert(t, "svc", rows)
	var noise []builtRow
	for ts := f.day0.Add(-6 * time.Hour); ts.Before(f.day0.Add(80 * time.Hour)); ts = ts.Add(time.Hour) {
		noise = append(noise, builtRow{ts, "web-1", "c0", f.pool[0], 1000})
	}
	f.insert(t, "noise", noise)
	f.s = New(Config{}, db, nil, testenv.Logger(t))
	return f
}

// insert writes rows of service into samples (and the stack texts), as one profile per row.
func (f *builtFixture) insert(t testing.TB, service string, rows []builtRow) {
	t.Helper()
	var (
		ts                         proto.ColDateTime
		svc, host, cont, inst, k8s proto.ColStr
		profile, stack             proto.ColUInt64
		count                      proto.ColUInt32
		hash                       proto.ColUInt64
		frames                     proto.ColStr
	)
	for _, p := range f.pool {
		hash.Append(xxhash.Sum64String(p))
		frames.Append(p)
	}
	for _, r := range rows {
		ts.Append(r.ts)
		svc.Append(service)
		host.Append(r.host)
		cont.Append(r.cont)
		inst.Append("m5.large")
		k8s.Append("")
		f.next++
		profile.Append(f.next)
		stack.Append(xxhash.Sum64String(r.stack))
		count.Append(r.count)
	}
	ctx := context.Background()
	if err := f.db.Insert(ctx, schema.LegacyStacks, proto.Input{{Name: "hash", Data: &hash}, {Name: "frames", Data: &frames}}); err != nil {
		t.Fatal(err)
	}
	if err := f.db.Insert(ctx, schema.Samples, proto.Input{{Name: "ts", Data: &ts}, {Name: "service", Data: &svc},
		{Name: "host", Data: &host}, {Name: "container", Data: &cont}, {Name: "instance_type", Data: &inst},
		{Name: "k8s_object", Data: &k8s}, {Name: "profile", Data: &profile}, {Name: "stack", Data: &stack},
		{Name: "count", Data: &count}}); err != nil {
		t.Fatal(err)
	}
	if service == "svc" {
		f.rows = append(f.rows, rows...)
	}
}

// build does what the janitor's builder does for service "svc" and the whole buckets of b in [from, to):
// inserts the delta of the rollup (see schema.BuiltRollup.DeltaQuery), then records each bucket whose
// rollup total equals its Check table's.
func (f *builtFixture) build(t testing.TB, b schema.BuiltRollup, from, to time.Time) {
	t.Helper()
	ctx := context.Background()
	if err := f.db.Exec(ctx, "INSERT INTO "+f.db.Table(b.Table)+" (ts, "+b.Keys()+", count) "+b.DeltaQuery(f.db.Table, "svc", from, to)); err != nil {
		t.Fatalf("build %s: %v", b.Table, err)
	}
	totals := func(table string) map[uint32]uint64 {
		var ts proto.ColUInt32
		var c proto.ColUInt64
		out := map[uint32]uint64{}
		if err := f.db.Do(ctx, ch.Query{
			Body: "SELECT toUInt32(ts) AS t, toUInt64(sum(count)) AS c FROM " + f.db.Table(table) +
				" WHERE service = 'svc' AND ts >= " + chdb.Time(from) + " AND ts < " + chdb.Time(to) + " GROUP BY ts",
			Result: proto.Results{{Name: "t", Data: &ts}, {Name: "c", Data: &c}},
			OnResult: func(context.Context, proto.Block) error {
				for i := range ts {
					out[ts[i]] = c[i]
				}
				return nil
			},
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	got, want := totals(b.Table), totals(b.Check)
	rollup, svc, total, version := new(proto.ColStr), new(proto.ColStr), proto.ColUInt64{}, proto.ColUInt64{}
	var ts proto.ColDateTime
	for bucket, c := range want {
		if got[bucket] != c {
			t.Fatalf("%s bucket %v: total %d after the build, check %d", b.Table, time.Unix(int64(bucket), 0).UTC(), got[bucket], c)
		}
		rollup.Append(b.Table)
		svc.Append("svc")
		ts.Append(time.Unix(int64(bucket), 0))
		total.Append(c)
		version.Append(uint64(time.Now().UnixNano()))
	}
	if err := f.db.Insert(ctx, schema.Builds, proto.Input{{Name: "rollup_table", Data: rollup}, {Name: "service", Data: svc},
		{Name: "ts", Data: &ts}, {Name: "total", Data: &total}, {Name: "version", Data: &version}}); err != nil {
		t.Fatal(err)
	}
}

// rollups are the server's rollups as a reader sees them now.
func (f *builtFixture) rollups(t testing.TB) Rollups {
	t.Helper()
	r, err := f.s.rollupsFor(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return f.s.horizons(r, time.Now())
}

// rawSum is the sum of counts of the fixture's rows in [from, to) that match host (any when empty),
// per stack hash.
func (f *builtFixture) rawSum(from, to time.Time, host string) map[uint64]int64 {
	out := map[uint64]int64{}
	for _, r := range f.rows {
		if !r.ts.Before(from) && r.ts.Before(to) && (host == "" || r.host == host) {
			out[xxhash.Sum64String(r.stack)] += int64(r.count)
		}
	}
	return out
}

// get calls a handler with the query and decodes its JSON reply into v.
func (f *builtFixture) get(t testing.TB, h func(http.ResponseWriter, *http.Request) error, q url.Values, v any) {
	t.Helper()
	w := httptest.NewRecorder()
	if err := h(w, httptest.NewRequest(http.MethodGet, "/?"+q.Encode(), nil)); err != nil || w.Code != http.StatusOK {
		t.Fatalf("%s: %v %d %s", q.Encode(), err, w.Code, w.Body.Bytes())
	}
	if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
		t.Fatal(err)
	}
}

// check reads a filtered selection (host web-1) over each range as a flame graph's sums, a functions
// table and a function's history, compares every number with the raw rows, and returns the plans of the
// flame graph reads.
func (f *builtFixture) check(t *testing.T, ranges [][2]time.Time) []string {
	t.Helper()
	ctx := context.Background()
	var plans []string
	for _, rg := range ranges {
		sel := Selection{Service: "svc", From: rg[0], To: rg[1], Include: map[string][]string{"host": {"web-1"}}}
		sums, err := f.s.sums(ctx, sel)
		if err != nil {
			t.Fatal(err)
		}
		got := map[uint64]int64{}
		for _, sg := range sums {
			for _, x := range sg.sums {
				got[x.stack] += sg.sign * x.sum
			}
		}
		for k, v := range got {
			if v == 0 {
				delete(got, k)
			}
		}
		want := f.rawSum(rg[0], rg[1], "web-1")
		if len(want) == 0 || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%v..%v: stacks %v, want %v", rg[0], rg[1], got, want)
		}
		var segs []Segment // the last plan read
		if err := f.s.planChecked(ctx, sel, f.rollups(t).ForSelection(sel), func(s []Segment) error { segs = s; return nil }); err != nil {
			t.Fatal(err)
		}
		plans = append(plans, segsString(segs))

		// The functions table and a history read by bucket (bucketSums, bucketTotals).
		q := url.Values{"service": {"svc"}, "from": {strconv.FormatInt(rg[0].Unix(), 10)}, "to": {strconv.FormatInt(rg[1].Unix(), 10)}, "host": {"web-1"}}
		var tb struct {
			Step    int64    `json:"step"`
			Samples []uint64 `json:"samples"`
		}
		f.get(t, f.s.functions, q, &tb)
		q.Set("name", "fn1_[p]")
		var h struct {
			Step   int64 `json:"step"`
			Points []struct {
				Samples uint64 `json:"samples"`
				Total   uint64 `json:"total"`
			} `json:"points"`
		}
		f.get(t, f.s.function, q, &h)
		fn1 := map[uint64]bool{}
		for _, p := range f.pool {
			if strings.Contains(p, ";fn1_[p];") {
				fn1[xxhash.Sum64String(p)] = true
			}
		}
		perBucket := func(step int64, i int) (all, ofFn1 uint64) {
			a := time.Unix((rg[0].Unix()/step+int64(i))*step, 0).UTC()
			b := a.Add(time.Duration(step) * time.Second)
			if a.Before(rg[0]) {
				a = rg[0]
			}
			if b.After(rg[1]) {
				b = rg[1]
			}
			for stack, c := range f.rawSum(a, b, "web-1") {
				all += uint64(c)
				if fn1[stack] {
					ofFn1 += uint64(c)
				}
			}
			return all, ofFn1
		}
		for i, n := range tb.Samples {
			if all, _ := perBucket(tb.Step, i); n != all {
				t.Errorf("%v..%v: functions table bucket %d of %d s: %d samples, want %d", rg[0], rg[1], i, tb.Step, n, all)
			}
		}
		for i, p := range h.Points {
			if all, fn := perBucket(h.Step, i); p.Samples != all || p.Total != fn {
				t.Errorf("%v..%v: history point %d of %d s: %d samples, %d of fn1; want %d, %d", rg[0], rg[1], i, h.Step, p.Samples, p.Total, all, fn)
			}
		}
		if len(tb.Samples) == 0 || len(h.Points) == 0 {
			t.Errorf("%v..%v: %d table buckets, %d history points", rg[0], rg[1], len(tb.Samples), len(h.Points))
		}
	}
	return plans
}

// segsString is segs of plan_test.go with the year, for messages.
func segsString(s []Segment) string {
	var parts []string
	for _, x := range s {
		parts = append(parts, fmt.Sprintf("%+d%s[%s,%s)", x.Sign, x.Gran, x.From.Format("01-02 15:04:05"), x.To.Format("01-02 15:04:05")))
	}
	return strings.Join(parts, " ")
}

// TestFilteredReadsUseBuiltBucketsOnlyWhenComplete reads a filtered selection over ranges of whole days
// and hours (and unaligned, and subtracted edges) when nothing is built yet, when the hours and then the
// days are built and recorded (the reads then come from them: the plans hold hour and day segments), after
// a late profile reached a built hour (its record is stale: that hour is read raw and its day as hours),
// and after the rebuild. Every read must equal the raw rows; the rollups hold nothing until built, so a
// bucket read while incomplete shows as missing samples.
func TestFilteredReadsUseBuiltBucketsOnlyWhenComplete(t *testing.T) {
	f := newBuiltFixture(t)
	d := f.day0
	ranges := [][2]time.Time{
		{d, d.Add(3 * 24 * time.Hour)}, // whole days
		{d.Add(-4*time.Hour - 31*time.Minute - time.Second), d.Add(74*time.Hour + 13*time.Minute + 5*time.Second)},   // raw, hours, days
		{d.Add(9*time.Hour + 17*time.Minute + 3*time.Second), d.Add(15*time.Hour + 41*time.Minute + 59*time.Second)}, // raw and hours
		{d.Add(5 * time.Second), d.Add(3*24*time.Hour - 10*time.Second)},                                             // days minus raw seconds
		{d.Add(24*time.Hour + 10*time.Hour), d.Add(24*time.Hour + 12*time.Hour)},                                     // two whole hours
	}
	r := f.rollups(t)
	if r.builtSince[0].IsZero() || r.builtSince[0].After(d.Add(-48*time.Hour)) || r.builtSince[1].IsZero() || r.builtSince[1].After(d.Add(-48*time.Hour)) {
		t.Fatalf("built epochs %v, want %v at the latest", r.builtSince, d.Add(-48*time.Hour))
	}
	unchecked := func(rg [2]time.Time) string {
		return segsString(Plan(rg[0], rg[1], r.ForSelection(Selection{Include: map[string][]string{"host": {"x"}}})))
	}
	reads := func(plan, gran string) bool { return strings.Contains(plan, gran+"[") }

	// (a) Nothing built: every bucket with samples is incomplete, so everything is read raw.
	for i, p := range f.check(t, ranges) {
		if reads(p, "hour") || reads(p, "day") {
			t.Errorf("nothing built, range %d planned %s", i, p)
		}
		if u := unchecked(ranges[i]); !reads(u, "hour") && !reads(u, "day") {
			t.Fatalf("range %d: the plan without the check %s reads no rollup: the test shows nothing", i, u)
		}
	}

	// (b) The hours built and recorded, then the days: the reads come from them.
	f.build(t, schema.Built[0], d.Add(-24*time.Hour), d.Add(4*24*time.Hour))
	for i, p := range f.check(t, ranges) {
		if reads(p, "day") || !reads(p, "hour") {
			t.Errorf("hours built, range %d planned %s", i, p)
		}
	}
	f.build(t, schema.Built[1], d.Add(-24*time.Hour), d.Add(4*24*time.Hour))
	for i, p := range f.check(t, ranges) {
		if u := unchecked(ranges[i]); p != u {
			t.Errorf("all built, range %d planned %s, want the plan of complete rollups %s", i, p, u)
		}
	}
	if p := f.check(t, ranges[:1])[0]; p != "+1day["+d.Format("01-02 15:04:05")+","+d.Add(72*time.Hour).Format("01-02 15:04:05")+")" {
		t.Errorf("whole days planned %s, want the day rollup alone", p)
	}

	// (c) A late profile in a built hour: that hour's record is stale, and so is its day's.
	late := d.Add(24*time.Hour + 10*time.Hour + 20*time.Minute + 3*time.Second)
	f.insert(t, "svc", []builtRow{{late, "web-1", "c0", f.pool[3], 777}, {late, "web-2", "c1", f.pool[4], 5}})
	plans := f.check(t, ranges)
	hour := "raw[" + late.Truncate(time.Hour).Format("01-02 15:04:05") + "," + late.Truncate(time.Hour).Add(time.Hour).Format("01-02 15:04:05") + ")"
	for _, i := range []int{0, 4} {
		if !strings.Contains(plans[i], hour) || (i == 0 && !reads(plans[i], "hour")) {
			t.Errorf("late profile, range %d planned %s, want the late hour %s raw and its day as hours", i, plans[i], hour)
		}
	}

	// The janitor's next pass rebuilds the hour and the day: the rollups are read again.
	f.build(t, schema.Built[0], late.Truncate(time.Hour), late.Truncate(time.Hour).Add(time.Hour))
	f.build(t, schema.Built[1], late.Truncate(24*time.Hour), late.Truncate(24*time.Hour).Add(24*time.Hour))
	for i, p := range f.check(t, ranges) {
		if u := unchecked(ranges[i]); p != u {
			t.Errorf("rebuilt, range %d planned %s, want %s", i, p, u)
		}
	}
}

// TestIncompleteBuiltBuckets checks which buckets the completeness check finds: every bucket with samples
// and no record, none before a built rollup's epoch or past the retention of the table a plan would read
// instead (there the rollup is all that is left), none without samples or record, and, once built, the
// hours and days whose newest record is short, whether the hours are asked about at once (the range's last
// day is not settled), after the day totals, or one by one (no UTC days).
func TestIncompleteBuiltBuckets(t *testing.T) {
	f := newBuiltFixture(t)
	ctx := context.Background()
	d := f.day0
	r := f.rollups(t)
	inc, err := f.s.incompleteBuilt(ctx, "svc", r, d, d.Add(2*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(inc[0]) != 48 || len(inc[1]) != 2 {
		t.Fatalf("nothing built: %d incomplete hours, %d days; want 48, 2", len(inc[0]), len(inc[1]))
	}
	// Days without samples, long before the data, but after the epoch.
	if inc, err := f.s.incompleteBuilt(ctx, "svc", r, d.Add(-47*time.Hour), d.Add(-24*time.Hour)); err != nil || len(inc[0])+len(inc[1]) != 0 {
		t.Fatalf("empty days: %v incomplete, %v", inc, err)
	}
	early := r
	early.builtSince = [2]time.Time{d.Add(24 * time.Hour), d.Add(24 * time.Hour)}
	if inc, err := f.s.incompleteBuilt(ctx, "svc", early, d, d.Add(2*24*time.Hour)); err != nil || len(inc[0]) != 24 || len(inc[1]) != 1 ||
		inc[0][0] != d.Add(24*time.Hour) || inc[1][0] != d.Add(24*time.Hour) {
		t.Fatalf("epoch after the first day: %v incomplete, %v; want the second day and its hours", inc, err)
	}
	past := r
	past.RawSince, past.HourSince = d.Add(24*time.Hour), d.Add(24*time.Hour)
	if inc, err := f.s.incompleteBuilt(ctx, "svc", past, d, d.Add(2*24*time.Hour)); err != nil || len(inc[0]) != 24 || len(inc[1]) != 1 {
		t.Fatalf("retention after the first day: %v incomplete, %v; want the second day and its hours", inc, err)
	}
	none := r
	none.builtSince = [2]time.Time{}
	if inc, err := f.s.incompleteBuilt(ctx, "svc", none, d, d.Add(2*24*time.Hour)); err != nil || len(inc[0])+len(inc[1]) != 0 {
		t.Fatalf("no epochs: %v incomplete, %v", inc, err)
	}

	// All built, then a newer record with a short total (as a slower builder may write) for an hour of the
	// second day and one of the first: those hours are incomplete, their days are not. The hours' records
	// of those days no longer sum to the day's total, so their hours are asked about, and no others are.
	f.build(t, schema.Built[0], d.Add(-24*time.Hour), d.Add(4*24*time.Hour))
	f.build(t, schema.Built[1], d.Add(-24*time.Hour), d.Add(4*24*time.Hour))
	rollup, svc, total, version := new(proto.ColStr), new(proto.ColStr), proto.ColUInt64{1, 1}, proto.ColUInt64{uint64(time.Now().UnixNano()), uint64(time.Now().UnixNano())}
	var ts proto.ColDateTime
	for _, h := range []time.Time{d.Add(30 * time.Hour), d.Add(3 * time.Hour)} {
		rollup.Append(schema.Hour)
		svc.Append("svc")
		ts.Append(h)
	}
	if err := f.db.Insert(ctx, schema.Builds, proto.Input{{Name: "rollup_table", Data: rollup}, {Name: "service", Data: svc},
		{Name: "ts", Data: &ts}, {Name: "total", Data: &total}, {Name: "version", Data: &version}}); err != nil {
		t.Fatal(err)
	}
	// Asked about at once as the last day of a range that is not settled, in a second query after the
	// day's totals, or one by one without UTC days, the same hours are found.
	recent := r
	recent.Settled = d
	noUTC := r
	noUTC.Day, noUTC.utcDays = false, false
	check := func(name string, from, to time.Time, hours []time.Time, days []time.Time) {
		t.Helper()
		for _, rr := range []struct {
			name string
			r    Rollups
		}{{"settled", r}, {"recent", recent}, {"no UTC days", noUTC}} {
			want := builtBuckets{hours, days}
			if !rr.r.utcDays {
				want[1] = nil
			}
			inc, err := f.s.incompleteBuilt(ctx, "svc", rr.r, from, to)
			if err != nil || fmt.Sprint(inc) != fmt.Sprint(want) {
				t.Errorf("%s, %s: incomplete %v, %v; want %v", name, rr.name, inc, err, want)
			}
		}
	}
	check("whole days", d, d.Add(3*24*time.Hour), []time.Time{d.Add(3 * time.Hour), d.Add(30 * time.Hour)}, nil)
	check("a partial first day", d.Add(time.Hour), d.Add(3*24*time.Hour), []time.Time{d.Add(3 * time.Hour), d.Add(30 * time.Hour)}, nil)
	check("a partial last day", d.Add(24*time.Hour), d.Add(47*time.Hour), []time.Time{d.Add(30 * time.Hour)}, nil)
	check("a day whose hours' records make its total", d.Add(48*time.Hour), d.Add(72*time.Hour), nil, nil)

	// The second day's record goes stale too.
	rollup, svc, ts = new(proto.ColStr), new(proto.ColStr), proto.ColDateTime{}
	rollup.Append(schema.Day)
	svc.Append("svc")
	ts.Append(d.Add(24 * time.Hour))
	if err := f.db.Insert(ctx, schema.Builds, proto.Input{{Name: "rollup_table", Data: rollup}, {Name: "service", Data: svc},
		{Name: "ts", Data: &ts}, {Name: "total", Data: &proto.ColUInt64{1}}, {Name: "version", Data: &proto.ColUInt64{uint64(time.Now().UnixNano())}}}); err != nil {
		t.Fatal(err)
	}
	check("whole days, one incomplete", d, d.Add(3*24*time.Hour), []time.Time{d.Add(3 * time.Hour), d.Add(30 * time.Hour)}, []time.Time{d.Add(24 * time.Hour)})
	check("the incomplete day alone", d.Add(24*time.Hour), d.Add(48*time.Hour), []time.Time{d.Add(30 * time.Hour)}, []time.Time{d.Add(24 * time.Hour)})
}

// BenchmarkBuiltCheck measures what the completeness check costs a filtered read of 7 days (top of one
// host of 10, unaligned edges: raw, hours and days), all of it built and recorded: "checked" reads the
// built rollups' epochs and pays the check (one query beside the read, the same plan), "unchecked" is the
// same server with no epochs (every bucket counts as complete: no check), with the segment cache off and
// on; "functions" is the functions table of the same selection (12-hour buckets read from hours); "check"
// is the check query of the top read alone, "roundtrip" a trivial query (the floor of any query on this
// server). Data: 8.5 days of 10 hosts, one profile every 10 minutes with 40 of 2,000 stacks (about 490,000
// rows).
//
// Medians of 5 (-benchtime 20x, shared 2-core machine, load average 2.5-3.5), unchecked -> checked: top
// without the segment cache 15.2 -> 19.6 ms/op, with it 5.2 -> 14.7, functions table 33.9 -> 46.6 (runs of
// 30-61 ms); the check alone 8.4 ms, a trivial query 2.6 ms (ClickHouse's query_log: 6-9 ms server-side
// for the check's 18,000 rows of day totals and records, 1-3 ms for a trivial one). With the check before
// the read instead of beside it (load 2-4): top 16.8 -> 25.4 without the cache, 7.0 -> 21.5 with it. When
// the check asked about every hour of the range's days it read 273,000 rows of the hour Check table: 24-34
// ms server-side.
//
//	go test ./query -run X -bench BuiltCheck -benchtime 20x -count 5
func BenchmarkBuiltCheck(b *testing.B) {
	f := newBuiltFixture(b)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(8, 1))
	f.pool = f.pool[:0]
	for i := range 2000 {
		frames := []string{"python3"}
		for range 5 + rng.IntN(10) {
			frames = append(frames, "fn_"+strconv.Itoa(rng.IntN(300))+"_[p]")
		}
		f.pool = append(f.pool, strings.Join(frames, ";")+";leaf"+strconv.Itoa(i))
	}
	d := f.day0.Add(-4 * 24 * time.Hour) // 9 days ago: everything is settled
	var rows []builtRow
	for ts := d; ts.Before(d.Add(8*24*time.Hour + 12*time.Hour)); ts = ts.Add(10 * time.Minute) {
		for h := range 10 {
			for k := range 40 {
				rows = append(rows, builtRow{ts.Add(time.Duration(h) * time.Second), "host-" + strconv.Itoa(h), "", f.pool[(int(ts.Unix()/600)*7+h*131+k*37)%len(f.pool)], uint32(1 + rng.IntN(9))})
			}
		}
	}
	f.insert(b, "svc", rows)
	f.build(b, schema.Built[0], d.Add(-24*time.Hour), d.Add(10*24*time.Hour))
	f.build(b, schema.Built[1], d.Add(-24*time.Hour), d.Add(10*24*time.Hour))
	from, to := d.Add(3*time.Hour+17*time.Minute), d.Add(7*24*time.Hour+3*time.Hour+17*time.Minute)
	q := url.Values{"service": {"svc"}, "from": {strconv.FormatInt(from.Unix(), 10)}, "to": {strconv.FormatInt(to.Unix(), 10)}, "host": {"host-3"}}
	servers := func(cache int) (checked, unchecked *Server) {
		checked = New(Config{CacheBytes: cache}, f.db, nil, testenv.Logger(b))
		unchecked = New(Config{CacheBytes: cache}, f.db, nil, testenv.Logger(b))
		r, err := unchecked.rollupsFor(ctx)
		if err != nil {
			b.Fatal(err)
		}
		r.builtSince = [2]time.Time{}
		unchecked.rollups = &r
		return checked, unchecked
	}
	sel := Selection{Service: "svc", From: from, To: to, Include: map[string][]string{"host": {"host-3"}}}
	for _, cache := range []int{-1, 0} {
		checked, unchecked := servers(cache)
		var plans [2]string
		for i, s := range []*Server{checked, unchecked} {
			r, err := s.rollupsFor(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if err := s.planChecked(ctx, sel, s.horizons(r, time.Now()).ForSelection(sel), func(segs []Segment) error {
				plans[i] = segsString(segs)
				return nil
			}); err != nil {
				b.Fatal(err)
			}
		}
		if plans[0] != plans[1] || !strings.Contains(plans[0], "day[") {
			b.Fatalf("plans differ or read no day: checked %s, unchecked %s", plans[0], plans[1])
		}
		name := map[int]string{-1: "nocache", 0: "cache"}[cache]
		for _, s := range []struct {
			name string
			s    *Server
		}{{"checked", checked}, {"unchecked", unchecked}} {
			b.Run("top/"+name+"/"+s.name, func(b *testing.B) {
				var v any
				f.get(b, s.s.top, q, &v) // learns the stacks once
				b.ResetTimer()
				for range b.N {
					f.get(b, s.s.top, q, &v)
				}
			})
			if cache == 0 {
				continue // the functions table reads by bucket, never from the cache
			}
			b.Run("functions/"+s.name, func(b *testing.B) {
				var v any
				f.get(b, s.s.functions, q, &v)
				b.ResetTimer()
				for range b.N {
					f.get(b, s.s.functions, q, &v)
				}
			})
		}
	}
	b.Run("roundtrip", func(b *testing.B) { // the floor: one trivial query on the same connections
		s, _ := servers(-1)
		var one proto.ColUInt8
		for range b.N {
			if err := s.ch.DoLimited(ctx, s.limits(), ch.Query{Body: "SELECT toUInt8(1) AS one", Result: proto.Results{{Name: "one", Data: &one}}}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("check", func(b *testing.B) {
		s, _ := servers(-1)
		r, err := s.rollupsFor(ctx)
		if err != nil {
			b.Fatal(err)
		}
		r = s.horizons(r, time.Now())
		b.ResetTimer()
		for range b.N {
			if inc, err := s.incompleteBuilt(ctx, "svc", r, from, to); err != nil || len(inc[0])+len(inc[1]) != 0 {
				b.Fatalf("%v incomplete, %v", inc, err)
			}
		}
	})
}
