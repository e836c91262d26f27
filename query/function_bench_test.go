package query

import (
	"context"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/cespare/xxhash/v2"

	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/flame"
	"github.com/flamestream/flamestream/internal/schema"
	"github.com/flamestream/flamestream/internal/testenv"
)

// BenchmarkFunctionViews measures the in-process part of the functions table and of a function history
// (everything after the one ClickHouse query) over a service trie of 50,000 stacks (20 frames deep over
// 5,000 names) in 60 segments: the table's functions over the whole range and the rows of each leaf for
// the sparklines of 24 buckets; the history's classification of the leaves and 60 buckets' counts.
//
//	go test ./query -run X -bench FunctionViews -benchtime 5x
func BenchmarkFunctionViews(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	tr := flame.NewTrie()
	var leaves []uint32
	seen := map[string]bool{}
	for len(leaves) < 50000 {
		frames := make([]string, 20)
		for i := range frames {
			frames[i] = "fn_" + strconv.Itoa(rng.IntN(5000)) + "_[p]"
		}
		s := strings.Join(frames, ";")
		if !seen[s] {
			seen[s] = true
			leaves = append(leaves, tr.Leaf(s))
		}
	}
	// One segment per bucket, each holding a 60th of the stacks.
	segs := make([]segmentSums, maxHistoryPoints)
	lv := make([][]uint32, maxHistoryPoints)
	for i, l := range leaves {
		k := i % maxHistoryPoints
		segs[k].sign = 1
		segs[k].sums = append(segs[k].sums, stackSum{uint64(i), int64(1 + i%7)})
		lv[k] = append(lv[k], l)
	}
	all := make([]int, len(segs))
	for j := range all {
		all[j] = j
	}
	b.Run("table", func(b *testing.B) {
		for range b.N {
			v := tr.View()
			counts := &leafCounts{sums: segs, leaves: lv, net: map[uint32]int64{}, v: v}
			stats, _ := tableStats(counts, all)
			if len(stats) == 0 {
				b.Fatal("no functions")
			}
			// The sparklines of the 500 functions listed, 24 buckets of 2 or 3 segments.
			listed := map[string]bool{}
			for name := range stats {
				if len(listed) < 500 {
					listed[name] = true
				}
			}
			var frames []string
			rowsOf := map[uint32]int{}
			for k := range maxTrendPoints {
				var mine []int
				for j := k; j < len(segs); j += maxTrendPoints {
					mine = append(mine, j)
				}
				counts.each(mine, func(leaf uint32, n uint64) {
					if _, ok := rowsOf[leaf]; !ok {
						frames = v.Frames(leaf, frames[:0])
						c := 0
						for _, f := range frames {
							if listed[f] {
								c++
							}
						}
						rowsOf[leaf] = c
					}
				})
			}
			v.Release()
		}
	})
	b.Run("history", func(b *testing.B) {
		for range b.N {
			v := tr.View()
			h := &history{name: "fn_42_[p]", counts: &leafCounts{sums: segs, leaves: lv, net: map[uint32]int64{}, v: v}, class: map[uint32]leafClass{}}
			h.add(all)
			for j := range segs {
				h.add([]int{j})
			}
			v.Release()
		}
	})
}

// BenchmarkFunctionReads measures whole calls of the function endpoints against the local ClickHouse, next
// to a top table of the same selection: an hour of recent data (unsettled, so nothing comes from the
// segment cache) of 20 hosts, one profile a minute each, 300 of 3,000 stacks per profile (360,000 rows).
// Before the one-scan read, a history read each of its 60 buckets in its own part of the query. Medians of
// 6 runs each, before and after interleaved on the shared 2-core machine (-benchtime 3x): history 1075 →
// 149 ms/op (11.6 MB → 0.7 MB, 2161 → 431 allocs), history with a host filter 341 → 49 ms/op, table 360 →
// 285 ms/op (noise), top 42 and 56 ms/op (unchanged code). With the sparklines summed straight into the
// listed rows instead of a map per leaf and bucket, the table's Go CPU went from about 15 to 11 ms a call
// (CPU profile): under load (load average 5–7) table 60.7 → 49.9 ms/op (medians of 9, interleaved, faster
// in each of 3 rounds), on a quiet machine 49.0 → 48.8 (medians of 6; top 13–20 ms/op). The rest is the
// ClickHouse read by bucket and stack (about 34 ms against top's 13). Reading the range's stacks first as
// top does, then the listed rows' trends by a join of (stack, row) pairs, measured slower (table 60–65
// against 46 ms/op): on unsettled data it adds a scan, and the join costs about what the read by bucket and
// stack did.
//
//	go test ./query -run X -bench FunctionReads -benchtime 3x -count 5
func BenchmarkFunctionReads(b *testing.B) {
	cfg := testenv.Servers(b)
	ctx := context.Background()
	db, err := chdb.Open(ctx, chdb.Options{Addr: cfg.ClickHouseAddr, User: cfg.ClickHouseUser, Password: cfg.ClickHousePassword, Database: testenv.Name("fs_bench")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = db.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db.Database)
		db.Close()
	})
	if _, err := schema.Migrate(ctx, db); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	pool := make([]string, 3000)
	for i := range pool {
		frames := []string{"python3"}
		for range 5 + rng.IntN(15) {
			frames = append(frames, "fn_"+strconv.Itoa(rng.IntN(500))+"_[p]")
		}
		pool[i] = strings.Join(frames, ";")
	}
	to := time.Now().UTC().Truncate(time.Minute)
	from := to.Add(-time.Hour)
	var (
		ts                         proto.ColDateTime
		svc, host, cont, inst, k8s proto.ColStr
		profile, stack             proto.ColUInt64
		count                      proto.ColUInt32
		hash                       proto.ColUInt64
		texts                      proto.ColStr
	)
	for _, p := range pool {
		hash.Append(xxhash.Sum64String(p))
		texts.Append(p)
	}
	for m := range 60 {
		for hst := range 20 {
			for k := range 300 {
				ts.Append(from.Add(time.Duration(m)*time.Minute + time.Duration(hst)*time.Second))
				svc.Append("bench")
				host.Append("host-" + strconv.Itoa(hst))
				cont.Append("")
				inst.Append("m5.large")
				k8s.Append("")
				profile.Append(uint64(m*20 + hst))
				stack.Append(hash[(m*7+hst*13+k*10)%len(pool)])
				count.Append(uint32(1 + rng.IntN(9)))
			}
		}
	}
	if err := db.Insert(ctx, "stacks", proto.Input{{Name: "hash", Data: &hash}, {Name: "frames", Data: &texts}}); err != nil {
		b.Fatal(err)
	}
	if err := db.Insert(ctx, "samples", proto.Input{{Name: "ts", Data: &ts}, {Name: "service", Data: &svc},
		{Name: "host", Data: &host}, {Name: "container", Data: &cont}, {Name: "instance_type", Data: &inst},
		{Name: "k8s_object", Data: &k8s}, {Name: "profile", Data: &profile}, {Name: "stack", Data: &stack},
		{Name: "count", Data: &count}}); err != nil {
		b.Fatal(err)
	}
	s := New(Config{}, db, nil, testenv.Logger(b))
	q := url.Values{"service": {"bench"}, "from": {strconv.FormatInt(from.Unix(), 10)}, "to": {strconv.FormatInt(to.Unix(), 10)}}
	call := func(b *testing.B, h func(http.ResponseWriter, *http.Request) error, extra url.Values) {
		v := url.Values{}
		for k, vs := range q {
			v[k] = vs
		}
		for k, vs := range extra {
			v[k] = vs
		}
		req := httptest.NewRequest(http.MethodGet, "/?"+v.Encode(), nil)
		w := httptest.NewRecorder()
		if err := h(w, req); err != nil || w.Code != http.StatusOK {
			b.Fatalf("%v %d %s", err, w.Code, w.Body.Bytes())
		}
	}
	for _, bc := range []struct {
		name  string
		h     func(http.ResponseWriter, *http.Request) error
		extra url.Values
	}{
		{"top", s.top, nil},
		{"history", s.function, url.Values{"name": {"fn_42_[p]"}}},
		{"table", s.functions, nil},
		{"history_host", s.function, url.Values{"name": {"fn_42_[p]"}, "host": {"host-3", "host-4"}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			call(b, bc.h, bc.extra) // learns the stacks once
			b.ResetTimer()
			for range b.N {
				call(b, bc.h, bc.extra)
			}
		})
	}
}
