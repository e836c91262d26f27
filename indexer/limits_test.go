package indexer_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/demo"
	"github.com/flamestream/flamestream/internal/schema"
	"github.com/flamestream/flamestream/stream"
)

// TestIndexerDeadLettersWhatItCannotStoreExactly publishes events for archived objects that ingest refuses
// today (counts above UInt32, per line or summed per stack; a start outside ClickHouse's DateTime) and an
// event of an unknown format: each is dead-lettered with its reason, nothing of them is stored, clamped or
// wrapped; a v1 event in the same batches is indexed with its process names.
func TestIndexerDeadLettersWhatItCannotStoreExactly(t *testing.T) {
	r := newRig(t)
	const service = "limits"
	start := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	body := func(text string) []byte {
		return demo.NewUpload([]byte(`#{"metadata": {"hostname": "h"}}`+"\n"+text), "h", start, "").Gzip()
	}
	event := func(id, key string, start time.Time, format string) []byte {
		b, err := json.Marshal(stream.Event{ID: id, Service: service, Host: "h", Start: start, End: start, Key: key, Format: format})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	v1Text, err := os.ReadFile("../internal/profile/testdata/agent-merge-v1.collapsed")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, id, key string
		body, event   []byte
		reason        string
	}{
		{"count above UInt32", "00000000000000b1", "profiles/limits/b1.gz", body(";comm;u1 5000000000\n"), nil,
			"profile: line 2: sample count 5000000000 is over the limit of 4294967295"},
		{"a sum that used to wrap", "00000000000000b2", "profiles/limits/b2.gz", body(";comm;a 4294967295\n;comm;a 2\n"), nil,
			"profile: line 3: the stack's total count in this profile, 4294967295 + 2, is over the limit of 4294967295"},
		{"start before 1970", "00000000000000b3", "profiles/limits/b3.gz", body(";comm;a 1\n"), nil,
			"start 1969-12-31T23:59:59Z is outside the range of a ClickHouse DateTime"},
		{"start in 2200", "00000000000000b4", "profiles/limits/b4.gz", body(";comm;a 1\n"), nil,
			"start 2200-01-01T00:00:00Z is outside the range of a ClickHouse DateTime"},
		{"unknown format", "00000000000000b5", "profiles/limits/b5.gz", body(";comm;a 1\n"), nil, `profile: unknown profile format "v3"`},
	}
	tests[0].event = event(tests[0].id, tests[0].key, start, "")
	tests[1].event = event(tests[1].id, tests[1].key, start, "")
	tests[2].event = event(tests[2].id, tests[2].key, time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC), "")
	tests[3].event = event(tests[3].id, tests[3].key, time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC), "")
	tests[4].event = event(tests[4].id, tests[4].key, start, "v3")
	for _, tt := range tests {
		publishRaw(t, r, tt.id, tt.key, tt.body, tt.event)
	}
	publishRaw(t, r, "00000000000000c1", "profiles/limits/c1.gz", demo.NewUpload(v1Text, "h", start, "").Gzip(),
		event("00000000000000c1", "profiles/limits/c1.gz", start, "v1"))

	cons := r.consumer(t, "indexer", 2*time.Second)
	reg := r.run(t, r.st.CH, cons)
	drained(t, cons, 60*time.Second)
	if got := metric(t, reg, "flamestream_indexer_dead_letters_total"); got != float64(len(tests)) {
		t.Errorf("dead letters metric %v, want %d", got, len(tests))
	}

	ctx := context.Background()
	dlq, err := r.js.Stream(ctx, stream.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{}
	for seq := uint64(1); seq <= uint64(len(tests)); seq++ {
		m, err := dlq.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("dead-letter %d: %v", seq, err)
		}
		reasons[string(m.Data)] = m.Header.Get(stream.HeaderReason)
	}
	for _, tt := range tests {
		if reason, ok := reasons[string(tt.event)]; !ok || !strings.Contains(reason, tt.reason) {
			t.Errorf("%s: dead-lettered %v with reason %q, want %q", tt.name, ok, reason, tt.reason)
		}
	}

	// Only the v1 profile is stored, with its process names and no container.
	var stack proto.ColStr
	var cont proto.ColStr
	var count proto.ColUInt64
	got := map[string]uint64{}
	err = r.st.CH.Do(ctx, ch.Query{
		Body: "SELECT frames, container, toUInt64(count) AS n FROM " + r.st.CH.Table("samples") + " AS s ALL INNER JOIN (SELECT hash AS stack, frames FROM " +
			r.st.CH.Table(schema.Stacks) + " WHERE service = " + chdb.String(service) + ") USING stack WHERE service = " + chdb.String(service),
		Result: proto.Results{{Name: "frames", Data: &stack}, {Name: "container", Data: &cont}, {Name: "n", Data: &count}},
		OnResult: func(context.Context, proto.Block) error {
			for i := range stack.Rows() {
				got[cont.Row(i)+"|"+stack.Row(i)] += count.Row(i)
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{
		"|java;appid: java: app.jar;Main.main_[j];Work.run_[j]": 40,
		"|java;appid: java: app.jar;Main.main_[j]":              2,
		"|bash;[unknown];read_[k]":                              3,
	}
	if len(got) != len(want) {
		t.Errorf("stored %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("stored %v, want %v", got, want)
			break
		}
	}
}
