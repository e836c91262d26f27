package indexer_test

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flamestream/flamestream/indexer"
	"github.com/flamestream/flamestream/internal/profile"
	"github.com/flamestream/flamestream/internal/schema"
)

// Frames that differ only by a generated number (JVM lambdas, reflection accessors) are folded by the
// operator's rules before they are stored: the stacks add up into one, the counts stay exact, and the
// stored text is the rewritten one.
func TestFrameRulesFoldGeneratedFramesBeforeStorage(t *testing.T) {
	r := newRig(t)
	db := r.st.CH
	_, file, _, _ := runtime.Caller(0)
	rules, err := profile.LoadRules(filepath.Join(filepath.Dir(file), "..", "deploy", "frame-rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	uploadText(t, r, "jvm", "host-a", base, "java;Main.run;Orders$$Lambda$412/0x0000000801234c40.apply;Db.query 5\n"+
		"java;Main.run;jdk/internal/reflect/GeneratedMethodAccessor17.invoke 2\n")
	uploadText(t, r, "jvm", "host-b", base, "java;Main.run;Orders$$Lambda$977/0x00000008019ab000.apply;Db.query 7\n"+
		"java;Main.run;jdk/internal/reflect/GeneratedMethodAccessor3301.invoke 4\n")

	cons := r.consumer(t, "rules", 30*time.Second)
	cfg := r.indexerConfig()
	cfg.Rules = rules
	ix := indexer.New(cfg, db, r.store, r.js, cons, r.log, prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = ix.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	drained(t, cons, time.Minute)

	got := map[string]uint64{}
	var frames proto.ColStr
	var n proto.ColUInt64
	err = db.Do(context.Background(), ch.Query{
		Body: "SELECT s.frames AS frames, toUInt64(sum(x.count)) AS n FROM " + db.Table(schema.Samples) + " AS x ANY INNER JOIN (SELECT hash AS stack, frames FROM " +
			db.Table(schema.Stacks) + " WHERE service = 'jvm') AS s USING stack WHERE x.service = 'jvm' GROUP BY frames",
		Result: proto.Results{{Name: "frames", Data: &frames}, {Name: "n", Data: &n}},
		OnResult: func(ctx context.Context, b proto.Block) error {
			for i := range frames.Rows() {
				got[frames.Row(i)] = n[i]
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The first field of a v2 line is the container ("java" here), not a frame.
	want := map[string]uint64{
		"Main.run;Orders$$Lambda$[n].apply;Db.query":                      12,
		"Main.run;jdk/internal/reflect/GeneratedMethodAccessor[n].invoke": 6,
	}
	if len(got) != len(want) {
		t.Errorf("stored stacks %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %d samples, want %d (all stacks: %v)", k, got[k], v, got)
		}
	}
	checkTotals(t, fingerprintOf(t, db, "jvm"), 18)
}
