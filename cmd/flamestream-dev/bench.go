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

	"github.com/flamestream/flamestream/cmd/internal/cli"
	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/config"
	"github.com/flamestream/flamestream/internal/pgdb"
	"github.com/flamestream/flamestream/internal/schema"
	"github.com/flamestream/flamestream/query"
)

type benchOptions struct {
	service, host, to, json, manyPrefix *string
	runs, many, manyRounds              *int
	noCache, fresh, goalsOnly           *bool
	server                              *string
}

// benchFlags declares the bench command's own flags next to the configuration flags.
func benchFlags(fs *flag.FlagSet) *benchOptions {
	return &benchOptions{
		service: fs.String("service", "bench", "service to query (written by flamestream-dev backfill)"),
		host:    fs.String("host", "", "host of the filtered queries (default: the service's busiest host)"),
		to:      fs.String("to", "", "end of every range (RFC 3339; default: one second after the service's last sample)"),
		runs:    fs.Int("runs", 30, "runs of each query"),
		server:  serverFlag(fs),
		noCache: fs.Bool("no-cache", false, "turn the query server's segment cache off, so that every call reads ClickHouse"),
		json:    fs.String("json", "", "also write the figures to this JSON file"),
		fresh: fs.Bool("fresh", true, "measure the goals on a freshly started `flamestream query` child process: "+
			"its first 24h graph, warm 1h and 24h graphs, and its memory (VmRSS/VmHWM)"),
		goalsOnly:  fs.Bool("goals-only", false, "skip the table of every query; measure only the goals"),
		many:       fs.Int("many", 0, "many-services mode: query the 24h graphs of this many services PREFIX-01… in turn (backfill --services N)"),
		manyPrefix: fs.String("many-prefix", "many", "name prefix of the many-services mode's services"),
		manyRounds: fs.Int("many-rounds", 3, "rounds over the many services (the first learns every trie)"),
	}
}

// benchCase is one API call of the benchmark.
type benchCase struct {
	name string
	path string
	q    url.Values
}

// benchRow is the figures of one query of the table.
type benchRow struct {
	Query   string  `json:"query"`
	ColdMs  float64 `json:"cold_ms"`
	P50Ms   float64 `json:"p50_ms"`
	P95Ms   float64 `json:"p95_ms"`
	MaxMs   float64 `json:"max_ms"`
	Samples string  `json:"samples"`
	Nodes   string  `json:"nodes"`
}

// benchGoal is one goal of issue 11 next to its measured figure.
type benchGoal struct {
	Goal     string  `json:"goal"`
	Measured float64 `json:"measured"`
	Limit    float64 `json:"limit"`
	Unit     string  `json:"unit"`
	Met      bool    `json:"met"`
	How      string  `json:"how"`
}

// benchReport is what --json writes.
type benchReport struct {
	Database string      `json:"database"`
	Service  string      `json:"service"`
	To       time.Time   `json:"to"`
	Runs     int         `json:"runs"`
	Cache    bool        `json:"segment_cache"`
	Stacks   uint64      `json:"stacks_24h"`
	Table    []benchRow  `json:"table,omitempty"`
	Fresh    *benchFresh `json:"fresh,omitempty"`
	Many     *benchMany  `json:"many,omitempty"`
	Goals    []benchGoal `json:"goals"`
}

// benchClient calls the query API of one server with a bearer token.
type benchClient struct {
	base, secret string
	http         *http.Client
}

// get calls path?q and returns how long the whole reply took.
func (c *benchClient) get(ctx context.Context, path string, q url.Values) (time.Duration, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path+"?"+q.Encode(), nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.secret)
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", resp.Status, body)
	}
	return took, body, err
}

// timed calls a query once cold then runs times, and returns the sorted warm times and the cold reply.
func (c *benchClient) timed(ctx context.Context, bc benchCase, runs int) (cold time.Duration, warm []time.Duration, body []byte, err error) {
	cold, body, err = c.get(ctx, bc.path, bc.q)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s: %w", bc.name, err)
	}
	warm = make([]time.Duration, 0, runs)
	for range runs {
		d, _, err := c.get(ctx, bc.path, bc.q)
		if err != nil {
			return 0, nil, nil, fmt.Errorf("%s: %w", bc.name, err)
		}
		warm = append(warm, d)
	}
	slices.Sort(warm)
	return cold, warm, body, nil
}

// benchRange is the query string of a range of length d ending at to, with extra parameters.
func benchRange(service string, to time.Time, d time.Duration, extra ...string) url.Values {
	q := url.Values{"service": {service}, "from": {strconv.FormatInt(to.Add(-d).Unix(), 10)}, "to": {strconv.FormatInt(to.Unix(), 10)}}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Add(extra[i], extra[i+1])
	}
	return q
}

// runBench measures the query API the way a user sees it. The table serves the real routes in-process over
// the configured ClickHouse and PostgreSQL, authenticates with a read token it creates (and revokes), and
// calls each query -runs times after one cold call, printing p50 and p95 of the warm calls. The goals of
// issue 11 are then measured on a freshly started `flamestream query` process (see benchFreshProcess) and,
// with -many, on the tries of an in-process server reading many services in turn (see benchManyServices).
func runBench(ctx context.Context, cfg config.Config, log *slog.Logger, o *benchOptions, out io.Writer) error {
	if *o.runs < 1 || *o.many < 0 || *o.many > 999 {
		return cli.Usagef("-runs must be positive and -many within 0…999")
	}
	ch, err := openCH(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer ch.Close()
	pg, err := openPG(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer pg.Close()

	to, host, err := benchScope(ctx, ch, o)
	if err != nil {
		return err
	}
	// One read token for every service, so the many-services mode can use it too.
	tok, secret, err := pg.CreateToken(ctx, "bench", pgdb.KindRead, "")
	if err != nil {
		return err
	}
	defer func() { _, _ = pg.RevokeToken(context.Background(), tok.ID) }()
	stacks, err := benchDistinctStacks(ctx, ch, *o.service, to)
	if err != nil {
		return err
	}

	qc := query.Config{TrieNodes: cfg.QueryTrieNodes}
	if *o.noCache {
		qc.CacheBytes = -1
	}
	report := benchReport{Database: ch.Database, Service: *o.service, To: to, Runs: *o.runs, Cache: !*o.noCache, Stacks: stacks}
	cache := "segment cache on (warm calls reuse settled segments)"
	if *o.noCache {
		cache = "segment cache off"
	}
	fmt.Fprintf(out, "bench: service %s in %s (%d distinct stacks in the last 24h), ranges end %s, host filter %s, %d runs each, %s\n",
		*o.service, ch.Database, stacks, to.Format(time.RFC3339), host, *o.runs, cache)
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

	if !*o.goalsOnly {
		r := chi.NewRouter()
		query.New(qc, ch, pg, log).Routes(r)
		srv := httptest.NewServer(r)
		c := &benchClient{base: srv.URL, secret: secret, http: &http.Client{Timeout: 5 * time.Minute}}
		report.Table, err = benchTable(ctx, c, o, to, host, out)
		srv.Close()
		if err != nil {
			return err
		}
	}
	var goals []benchGoal
	if *o.fresh {
		f, err := benchFreshProcess(ctx, cfg, o, to, secret, out)
		if err != nil {
			return err
		}
		report.Fresh = f
		goals = append(goals, f.goals()...)
	} else if report.Table != nil {
		// Without a child process, the warm goals come from the in-process table.
		for _, row := range report.Table {
			switch row.Query {
			case "flamegraph 1h":
				goals = append(goals, benchGoal{Goal: "1h flame graph p50 warm", Measured: row.P50Ms, Limit: 300, Unit: "ms", How: "in-process server"})
			case "flamegraph 24h":
				goals = append(goals, benchGoal{Goal: "24h flame graph p50 warm", Measured: row.P50Ms, Limit: 1000, Unit: "ms", How: "in-process server"})
			}
		}
	}
	if *o.many > 0 {
		m, err := benchManyServices(ctx, ch, pg, log, qc, o, to, secret, out)
		if err != nil {
			return err
		}
		report.Many = m
		goals = append(goals, m.goal())
	}
	for i := range goals {
		goals[i].Met = goals[i].Measured <= goals[i].Limit
		if goals[i].Unit == "hit rate" {
			goals[i].Met = goals[i].Measured >= goals[i].Limit
		}
	}
	report.Goals = goals
	if len(goals) > 0 {
		fmt.Fprintf(out, "\ngoals (issue 11; this machine, ClickHouse on the same box):\n")
		for _, g := range goals {
			verdict := "MISSED"
			if g.Met {
				verdict = "met"
			}
			cmp := "≤"
			if g.Unit == "hit rate" {
				cmp = "≥"
			}
			fmt.Fprintf(out, "  %-44s %12s  goal %s %-10s %-6s (%s)\n", g.Goal, benchFormat(g.Measured, g.Unit), cmp, benchFormat(g.Limit, g.Unit), verdict, g.How)
		}
	}
	if *o.json != "" {
		b, err := json.MarshalIndent(report, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*o.json, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("-json: %w", err)
		}
	}
	return nil
}

func benchFormat(v float64, unit string) string {
	switch unit {
	case "ms":
		return strconv.FormatFloat(v, 'f', 1, 64) + " ms"
	case "MiB":
		return strconv.FormatFloat(v, 'f', 0, 64) + " MiB"
	case "hit rate":
		return strconv.FormatFloat(100*v, 'f', 1, 64) + "%"
	}
	return strconv.FormatFloat(v, 'f', 2, 64) + " " + unit
}

// benchTable measures every query of the table on the in-process server.
func benchTable(ctx context.Context, c *benchClient, o *benchOptions, to time.Time, host string, out io.Writer) ([]benchRow, error) {
	rng := func(d time.Duration, extra ...string) url.Values { return benchRange(*o.service, to, d, extra...) }
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
	fmt.Fprintf(out, "%-28s %9s %9s %9s %9s %14s %8s\n", "query (in-process server)", "cold", "p50", "p95", "max", "samples", "nodes")
	var rows []benchRow
	for _, bc := range cases {
		cold, times, body, err := c.timed(ctx, bc, *o.runs)
		if err != nil {
			return nil, err
		}
		samples, nodes := benchSummary(body)
		row := benchRow{Query: bc.name, ColdMs: benchMsf(cold), P50Ms: benchMsf(benchPct(times, 50)), P95Ms: benchMsf(benchPct(times, 95)),
			MaxMs: benchMsf(times[len(times)-1]), Samples: samples, Nodes: nodes}
		rows = append(rows, row)
		fmt.Fprintf(out, "%-28s %9s %9s %9s %9s %14s %8s\n", bc.name, benchMs(cold), benchMs(benchPct(times, 50)), benchMs(benchPct(times, 95)),
			benchMs(times[len(times)-1]), samples, nodes)
	}
	return rows, nil
}

func benchMsf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

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
		Body:   "SELECT toUInt32(max(ts)) AS last FROM " + db.Table(schema.Totals1m) + " WHERE service = " + chdb.String(*o.service),
		Result: proto.Results{{Name: "last", Data: &last}},
	})
	if err != nil {
		return time.Time{}, "", fmt.Errorf("bench: last sample: %w", err)
	}
	if len(last) == 0 || last[0] == 0 {
		return time.Time{}, "", fmt.Errorf("bench: no samples of service %q in %s (run flamestream-dev backfill)", *o.service, db.Database)
	}
	to := time.Unix(int64(last[0]), 0).UTC().Add(time.Minute + time.Second)
	if *o.to != "" {
		t, err := time.Parse(time.RFC3339, *o.to)
		if err != nil {
			return time.Time{}, "", cli.Usagef("-to: %v", err)
		}
		to = t
	}
	host := *o.host
	if host == "" {
		err := db.Do(ctx, ch.Query{
			Body: "SELECT host FROM " + db.Table(schema.Totals1m) + " WHERE service = " + chdb.String(*o.service) +
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
