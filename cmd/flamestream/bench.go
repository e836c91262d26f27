package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"
	"github.com/go-chi/chi/v5"

	"github.com/flamestream/flamestream/internal/app"
	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/config"
	"github.com/flamestream/flamestream/internal/pgdb"
	"github.com/flamestream/flamestream/query"
)

type benchOptions struct {
	service, host, to *string
	runs              *int
	noCache           *bool
}

// benchFlags declares the bench command's own flags next to the configuration flags.
func benchFlags(fs *flag.FlagSet) *benchOptions {
	return &benchOptions{
		service: fs.String("service", "bench", "service to query (written by flamestream backfill)"),
		host:    fs.String("host", "", "host of the filtered queries (default: the service's busiest host)"),
		to:      fs.String("to", "", "end of every range (RFC 3339; default: one second after the service's last sample)"),
		runs:    fs.Int("runs", 30, "runs of each query"),
		noCache: fs.Bool("no-cache", false, "turn the query server's segment cache off, so that every call reads ClickHouse"),
	}
}

// benchCase is one API call of the benchmark.
type benchCase struct {
	name string
	path string
	q    url.Values
}

// runBench measures the query API the way a user sees it: it serves the real routes in-process over the
// configured ClickHouse and PostgreSQL, authenticates with a read token it creates (and revokes), and
// calls each query -runs times after one cold call, printing p50 and p95 of the warm calls.
func runBench(ctx context.Context, cfg config.Config, log *slog.Logger, o *benchOptions, out io.Writer) error {
	ch, err := app.OpenCH(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer ch.Close()
	pg, err := app.OpenPG(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer pg.Close()

	to, host, err := benchScope(ctx, ch, o)
	if err != nil {
		return err
	}
	tok, secret, err := pg.CreateToken(ctx, "bench", pgdb.KindRead, *o.service)
	if err != nil {
		return err
	}
	defer func() { _, _ = pg.RevokeToken(context.Background(), tok.ID) }()

	r := chi.NewRouter()
	qc := query.Config{}
	if *o.noCache {
		qc.CacheBytes = -1
	}
	query.New(qc, ch, pg, log).Routes(r)
	srv := httptest.NewServer(r)
	defer srv.Close()

	rng := func(d time.Duration, extra ...string) url.Values {
		q := url.Values{"service": {*o.service}, "from": {strconv.FormatInt(to.Add(-d).Unix(), 10)}, "to": {strconv.FormatInt(to.Unix(), 10)}}
		for i := 0; i+1 < len(extra); i += 2 {
			q.Add(extra[i], extra[i+1])
		}
		return q
	}
	day := 24 * time.Hour
	var cases []benchCase
	for _, r := range []struct {
		name string
		d    time.Duration
	}{{"1h", time.Hour}, {"24h", day}, {"7d", 7 * day}, {"30d", 30 * day}} {
		cases = append(cases,
			benchCase{"flamegraph " + r.name, "/api/v1/flamegraph", rng(r.d)},
			benchCase{"flamegraph " + r.name + " host", "/api/v1/flamegraph", rng(r.d, "host", host)})
	}
	diff := func(d time.Duration, extra ...string) url.Values {
		q := rng(d, extra...)
		q.Set("base_from", strconv.FormatInt(to.Add(-2*d).Unix(), 10))
		q.Set("base_to", strconv.FormatInt(to.Add(-d).Unix(), 10))
		return q
	}
	cases = append(cases,
		benchCase{"diff 24h vs previous 24h", "/api/v1/diff", diff(day)},
		benchCase{"diff 7d vs previous 7d", "/api/v1/diff", diff(7 * day)},
		benchCase{"diff 24h host vs host", "/api/v1/diff", diff(day, "host", host)},
		benchCase{"top 24h", "/api/v1/top", rng(day)},
		benchCase{"top 30d", "/api/v1/top", rng(30 * day)},
		benchCase{"timeline 30d", "/api/v1/timeline", rng(30 * day)},
		benchCase{"timeline 24h host", "/api/v1/timeline", rng(day, "host", host)},
		benchCase{"filters 24h", "/api/v1/filters", rng(day)},
	)

	cache := "segment cache on (warm calls reuse settled segments)"
	if *o.noCache {
		cache = "segment cache off"
	}
	fmt.Fprintf(out, "bench: service %s in %s, ranges end %s, host filter %s, %d runs each, %s\n",
		*o.service, ch.Database, to.Format(time.RFC3339), host, *o.runs, cache)
	fmt.Fprintf(out, "%-28s %9s %9s %9s %9s %14s %8s\n", "query", "cold", "p50", "p95", "max", "samples", "nodes")
	client := &http.Client{Timeout: 2 * time.Minute}
	if path := os.Getenv("FLAMESTREAM_BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	for _, c := range cases {
		call := func() (time.Duration, []byte, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+c.path+"?"+c.q.Encode(), nil)
			if err != nil {
				return 0, nil, err
			}
			req.Header.Set("Authorization", "Bearer "+secret)
			start := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				return 0, nil, err
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			took := time.Since(start)
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("%s: %s: %s", c.name, resp.Status, body)
			}
			return took, body, err
		}
		cold, body, err := call()
		if err != nil {
			return err
		}
		times := make([]time.Duration, 0, *o.runs)
		for range *o.runs {
			d, _, err := call()
			if err != nil {
				return err
			}
			times = append(times, d)
		}
		slices.Sort(times)
		samples, nodes := benchSummary(body)
		fmt.Fprintf(out, "%-28s %9s %9s %9s %9s %14s %8s\n", c.name, benchMs(cold), benchMs(benchPct(times, 50)), benchMs(benchPct(times, 95)),
			benchMs(times[len(times)-1]), samples, nodes)
	}
	return nil
}

func benchMs(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) + "ms"
}

// pct returns the p-th percentile (nearest rank) of sorted durations.
func benchPct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(0, min(len(sorted)-1, i-1))]
}

// benchSummary reads the sample total and node count of a reply, when it is a tree or a table.
func benchSummary(body []byte) (samples, nodes string) {
	var n struct {
		Value    uint64            `json:"value"`
		Base     uint64            `json:"base"`
		Total    uint64            `json:"total"`
		Children []json.RawMessage `json:"children"`
	}
	if json.Unmarshal(body, &n) != nil {
		return "-", "-"
	}
	if n.Value == 0 && n.Total == 0 {
		return "-", "-"
	}
	count := 0
	var walk func([]byte)
	walk = func(b []byte) {
		var x struct {
			Children []json.RawMessage `json:"children"`
		}
		_ = json.Unmarshal(b, &x)
		count++
		for _, c := range x.Children {
			walk(c)
		}
	}
	walk(body)
	if n.Value == 0 {
		return strconv.FormatUint(n.Total, 10), "-"
	}
	s := strconv.FormatUint(n.Value, 10)
	if n.Base > 0 {
		s += "/" + strconv.FormatUint(n.Base, 10)
	}
	return s, strconv.Itoa(count)
}

// benchScope finds the end of the ranges and the host of the filtered queries.
func benchScope(ctx context.Context, db *chdb.DB, o *benchOptions) (time.Time, string, error) {
	var last proto.ColUInt32
	var busiest proto.ColStr
	err := db.Do(ctx, ch.Query{
		Body:   "SELECT toUInt32(max(ts)) AS last FROM " + db.Table("totals_1m") + " WHERE service = " + chdb.String(*o.service),
		Result: proto.Results{{Name: "last", Data: &last}},
	})
	if err != nil {
		return time.Time{}, "", fmt.Errorf("bench: last sample: %w", err)
	}
	if len(last) == 0 || last[0] == 0 {
		return time.Time{}, "", fmt.Errorf("bench: no samples of service %q in %s (run flamestream backfill)", *o.service, db.Database)
	}
	to := time.Unix(int64(last[0]), 0).UTC().Add(time.Minute + time.Second)
	if *o.to != "" {
		t, err := time.Parse(time.RFC3339, *o.to)
		if err != nil {
			return time.Time{}, "", fmt.Errorf("-to: %w", err)
		}
		to = t
	}
	host := *o.host
	if host == "" {
		err := db.Do(ctx, ch.Query{
			Body: "SELECT host FROM " + db.Table("totals_1m") + " WHERE service = " + chdb.String(*o.service) +
				" AND ts >= " + chdb.Time(to.Add(-24*time.Hour)) + " GROUP BY host ORDER BY sum(count) DESC, host LIMIT 1",
			Result: proto.Results{{Name: "host", Data: &busiest}},
		})
		if err != nil {
			return time.Time{}, "", fmt.Errorf("bench: busiest host: %w", err)
		}
		if busiest.Rows() == 0 {
			return time.Time{}, "", fmt.Errorf("bench: no host of %q in the last day", *o.service)
		}
		host = busiest.Row(0)
	}
	return to, host, nil
}
