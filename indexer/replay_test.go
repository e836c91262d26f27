package indexer_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/flamestream/flamestream/indexer"
	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/schema"
	"github.com/flamestream/flamestream/internal/testenv"
	"github.com/flamestream/flamestream/stream"
)

// natsCLI returns the nats binary of the local stack (.bin/nats), skipping like the servers do.
func natsCLI(t *testing.T) string {
	t.Helper()
	bin, err := filepath.Abs("../.bin/nats")
	if err == nil {
		if _, err = os.Stat(bin); err == nil {
			return bin
		}
	}
	if p, err := exec.LookPath("nats"); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("the nats CLI is not installed (.bin/nats)")
	}
	t.Skip("the nats CLI is not installed (.bin/nats); run `go tool task start`")
	return ""
}

// nats runs the real nats CLI against the rig's server, exactly as the README shows.
func (r *rig) nats(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(natsCLI(t), append([]string{"--server", r.natsURL}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("nats %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// freshDatabase migrates an empty ClickHouse database, dropped when the test ends.
func freshDatabase(t *testing.T, r *rig) *chdb.DB {
	t.Helper()
	cfg := r.st.Config
	db, err := chdb.Open(context.Background(), chdb.Options{Addr: cfg.ClickHouseAddr, User: cfg.ClickHouseUser,
		Password: cfg.ClickHousePassword, Database: testenv.Name("fs_test_replay")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = db.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db.Database)
		db.Close()
	})
	if _, err := schema.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	return db
}

func TestReplayConsumersMadeWithTheNatsCLIRebuildExactlyAndIndexNothingTwice(t *testing.T) {
	r := newRig(t)
	base := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	r.upload(t, "replay", 20, 4, base)
	live := r.consumer(t, "indexer", time.Minute)
	r.run(t, r.st.CH, live)
	drained(t, live, 60*time.Second)
	indexed := fingerprintOf(t, r.st.CH, "replay")
	checkTotals(t, indexed, r.sent["replay"])

	tests := []struct {
		name, deliver string
		fresh         bool // replay into an empty database (a rebuild) instead of the live one
	}{
		{"replay", "all", false},
		{"replay_seq", "1", false},
		{"replay_time", "3h", false},
		{"rebuild", "all", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r.nats(t, "consumer", "add", stream.ProfilesStream, tt.name, "--pull", "--deliver", tt.deliver,
				"--ack", "explicit", "--filter", "profiles.>", "--max-deliver=-1", "--defaults")
			cons, err := r.js.Consumer(context.Background(), stream.ProfilesStream, tt.name)
			if err != nil {
				t.Fatal(err)
			}
			db := r.st.CH
			if tt.fresh {
				db = freshDatabase(t, r)
			}
			reg := r.run(t, db, cons)
			drained(t, cons, 60*time.Second)
			info, err := cons.Info(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if info.Delivered.Consumer < 20 {
				t.Errorf("the replay consumer delivered %d events, want 20", info.Delivered.Consumer)
			}
			want := 0.0
			if tt.fresh {
				want = 20
			}
			if got := metric(t, reg, "flamestream_indexer_profiles_total"); got != want {
				t.Errorf("replay indexed %v profiles, want %v", got, want)
			}
			if got := fingerprintOf(t, db, "replay"); !equal(got, indexed) {
				t.Errorf("after the replay:\n got %v\nwant %v", got, indexed)
			}
			r.nats(t, "consumer", "rm", stream.ProfilesStream, tt.name, "--force")
		})
	}
}

// insertSamples writes sample rows of one fake profile straight into samples (and so into every rollup).
func insertSamples(t *testing.T, db *chdb.DB, service string, profile uint64, ts []time.Time, count uint32) {
	t.Helper()
	insertRawSamples(t, db, service, profile, ts, count)
	buildRollupsNow(t, db)
}

// insertRawSamples is insertSamples without the build of the per-dimension rollups.
func insertRawSamples(t *testing.T, db *chdb.DB, service string, profile uint64, ts []time.Time, count uint32) {
	t.Helper()
	var tsc proto.ColDateTime
	var svc, host, container, itype, k8s proto.ColStr
	var prof, stack proto.ColUInt64
	var cnt proto.ColUInt32
	for i, v := range ts {
		tsc.Append(v)
		svc.Append(service)
		host.Append("injected")
		container.Append("")
		itype.Append("")
		k8s.Append("")
		prof.Append(profile)
		stack.Append(uint64(1000 + i))
		cnt.Append(count)
	}
	err := db.Insert(context.Background(), "samples", proto.Input{
		{Name: "ts", Data: &tsc}, {Name: "service", Data: &svc}, {Name: "host", Data: &host},
		{Name: "container", Data: &container}, {Name: "instance_type", Data: &itype}, {Name: "k8s_object", Data: &k8s},
		{Name: "profile", Data: &prof}, {Name: "stack", Data: &stack}, {Name: "count", Data: &cnt},
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestReindexRebuildsOneServiceRangeExactly(t *testing.T) {
	r := newRig(t)
	base := time.Now().UTC().Truncate(time.Minute).Add(-90 * time.Minute)
	r.upload(t, "rebuilt", 20, 4, base)
	r.upload(t, "bystander", 10, 2, base)
	cons := r.consumer(t, "indexer", time.Minute)
	r.run(t, r.st.CH, cons)
	drained(t, cons, 60*time.Second)
	want, other := fingerprintOf(t, r.st.CH, "rebuilt"), fingerprintOf(t, r.st.CH, "bystander")
	checkTotals(t, want, r.sent["rebuilt"])

	// Damage the range: rows of a profile that never existed, counted in samples and every rollup.
	insertSamples(t, r.st.CH, "rebuilt", 42, []time.Time{base, base.Add(3 * time.Minute)}, 1000)
	if got := fingerprintOf(t, r.st.CH, "rebuilt"); equal(got, want) {
		t.Fatal("the damage did not change the results")
	}

	type step struct {
		phase   string
		res     indexer.ReindexResult
		pending uint64
	}
	var steps []step // what flamestream reindex draws its progress line from
	res, err := indexer.Reindex(context.Background(), r.indexerConfig(),
		indexer.Range{Service: "rebuilt", From: base, To: base.Add(5 * time.Minute), Slack: 3 * time.Hour,
			Progress: func(phase string, res indexer.ReindexResult, pending uint64) {
				steps = append(steps, step{phase, res, pending})
			}},
		r.st.CH, r.store, r.js, r.log)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) < 2 || steps[0].phase != "deleting" || steps[len(steps)-1].phase != "replaying" ||
		steps[len(steps)-1].res != res || steps[len(steps)-1].pending != 0 {
		t.Errorf("progress %+v: want deleting, then replaying ending at the result %+v with nothing pending", steps, res)
	}
	if res.Indexed != 20 || res.Events < 20 {
		t.Errorf("reindex read %d events and indexed %d profiles, want 20 profiles", res.Events, res.Indexed)
	}
	if !res.From.Equal(base.Truncate(24*time.Hour)) || res.To.Sub(res.From)%(24*time.Hour) != 0 {
		t.Errorf("reindexed range %s..%s is not whole UTC days around %s", res.From, res.To, base)
	}
	if got := fingerprintOf(t, r.st.CH, "rebuilt"); !equal(got, want) {
		t.Errorf("after reindex:\n got %v\nwant %v", got, want)
	}
	if got := fingerprintOf(t, r.st.CH, "bystander"); !equal(got, other) {
		t.Errorf("reindex changed another service:\n got %v\nwant %v", got, other)
	}
	st, err := r.js.Stream(context.Background(), stream.ProfilesStream)
	if err != nil {
		t.Fatal(err)
	}
	names := st.ConsumerNames(context.Background())
	for n := range names.Name() {
		if n != "indexer" {
			t.Errorf("reindex left its consumer %s behind", n)
		}
	}
}
