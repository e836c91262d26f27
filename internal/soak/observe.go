package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/schema"
)

// sample reads every role's RSS and goroutines, the indexer's pending count and how many profiles
// ClickHouse holds.
func (s *soaker) sample(ctx context.Context, t float64) Sample {
	sm := Sample{T: t, Roles: map[string]RoleSample{}, Acked: s.ld.ackedN.Load(), Indexed: -1, Pending: -1}
	s.mu.Lock()
	sm.Fault = s.down
	s.mu.Unlock()
	for _, role := range roles {
		rs := RoleSample{PID: s.st.roles[role].pid(), Goroutines: -1}
		if rs.PID > 0 {
			if b, err := rssBytes(rs.PID); err == nil {
				rs.RSSMiB = float64(b) / (1 << 20)
			}
		}
		mctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		m, err := metrics(mctx, "http://"+s.st.addrs[role]+"/metrics", "go_goroutines", "flamestream_indexer_consumer_pending")
		cancel()
		if err == nil {
			if g, ok := m["go_goroutines"]; ok {
				rs.Goroutines = g
			}
			if p, ok := m["flamestream_indexer_consumer_pending"]; ok && role == "indexer" {
				sm.Pending = p
			}
		}
		sm.Roles[role] = rs
	}
	if n, err := s.indexedCount(ctx); err == nil {
		sm.Indexed = n
	}
	return sm
}

func (s *soaker) sampleLoop(ctx context.Context) {
	tick := time.NewTicker(s.cfg.SampleEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		sm := s.sample(ctx, s.since())
		s.mu.Lock()
		s.rep.Samples = append(s.rep.Samples, sm)
		s.mu.Unlock()
		var b strings.Builder
		fmt.Fprintf(&b, "soak %5.0fs  acked %6d  indexed %6d  pending %5.0f ", sm.T, sm.Acked, sm.Indexed, sm.Pending)
		for _, role := range roles {
			r := sm.Roles[role]
			fmt.Fprintf(&b, " %s %4.0f MiB %4.0f g", role, r.RSSMiB, r.Goroutines)
		}
		if sm.Fault != "" {
			fmt.Fprintf(&b, "  [%s down]", sm.Fault)
		}
		fmt.Fprintln(s.progress, b.String())
	}
}

// queryLoop reads a flame graph of the service now and then, as a user would during the faults.
func (s *soaker) queryLoop(ctx context.Context) {
	tick := time.NewTicker(s.cfg.QueryEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		_, err := s.flameTotal(ctx, now.Add(-6*time.Hour), now)
		if ctx.Err() != nil {
			return // cut short by the end of the load, not a failure
		}
		s.mu.Lock()
		if err == nil {
			s.rep.Queries["ok"]++
		} else {
			s.rep.Queries["failed"]++
			if len(s.rep.QueryErrors) < 20 {
				s.rep.QueryErrors = append(s.rep.QueryErrors, fmt.Sprintf("%.0fs: %v", s.since(), err))
			}
		}
		s.mu.Unlock()
	}
}

// flameTotal returns the root value of the service's flame graph over [from, to).
func (s *soaker) flameTotal(ctx context.Context, from, to time.Time) (uint64, error) {
	q := url.Values{"service": {s.cfg.Service}, "from": {strconv.FormatInt(from.Unix(), 10)},
		"to": {strconv.FormatInt(to.Unix(), 10)}, "maxNodes": {"16"}}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.st.addrs["query"]+"/api/v1/flamegraph?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+s.readToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, fmt.Errorf("flame graph: %d %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	var root struct {
		Value uint64 `json:"value"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&root); err != nil {
		return 0, fmt.Errorf("flame graph: %w", err)
	}
	return root.Value, nil
}

// withCH runs f on a connection of its own to the soak's ClickHouse, so that the soak's own checks never
// depend on a pool that lived through a ClickHouse restart.
func (s *soaker) withCH(ctx context.Context, f func(*chdb.DB) error) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	db, err := chdb.Open(ctx, chdb.Options{Addr: s.st.chAddr, Database: chDB, MaxConns: 1})
	if err != nil {
		return err
	}
	defer db.Close()
	return f(db)
}

// indexedCount is how many profiles of the service ClickHouse holds.
func (s *soaker) indexedCount(ctx context.Context) (int64, error) {
	var n proto.ColUInt64
	err := s.withCH(ctx, func(db *chdb.DB) error {
		return db.Do(ctx, ch.Query{
			Body:   "SELECT toUInt64(uniqExact(host, ts)) AS n FROM " + db.Table(schema.Samples) + " WHERE service = " + chdb.String(s.cfg.Service),
			Result: proto.Results{{Name: "n", Data: &n}},
		})
	})
	if err != nil || len(n) != 1 {
		return -1, fmt.Errorf("count profiles: %v", err)
	}
	return int64(n[0]), nil
}

// profileRows is what samples hold for one (host, start).
type profileRows struct {
	sum, ids uint64
}

// profiles reads every profile of the service from samples, keyed by host and start.
func (s *soaker) profiles(ctx context.Context) (map[string]profileRows, error) {
	var host proto.ColStr
	var ts proto.ColUInt32
	var sum, ids proto.ColUInt64
	err := s.withCH(ctx, func(db *chdb.DB) error {
		return db.Do(ctx, ch.Query{
			Body: "SELECT host, toUInt32(ts) AS t, toUInt64(sum(count)) AS n, toUInt64(uniqExact(profile)) AS ids FROM " +
				db.Table(schema.Samples) + " WHERE service = " + chdb.String(s.cfg.Service) + " GROUP BY host, ts",
			Result: proto.Results{{Name: "host", Data: &host}, {Name: "t", Data: &ts}, {Name: "n", Data: &sum}, {Name: "ids", Data: &ids}},
		})
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]profileRows, len(ts))
	for i := range ts.Rows() {
		out[profileKey(host.Row(i), int64(ts[i]))] = profileRows{sum: sum[i], ids: ids[i]}
	}
	return out, nil
}

func profileKey(host string, start int64) string { return host + "|" + strconv.FormatInt(start, 10) }

// buildRollups runs the janitor's rollup builder as it will run once the soak's hours and day are closed,
// until it finds nothing left to build.
func (s *soaker) buildRollups(ctx context.Context) error {
	return s.withCH(ctx, func(db *chdb.DB) error { return s.cfg.BuildRollups(ctx, db) })
}

// tableTotals returns sum(count) of the service in every MergeTree table of the database that has both
// columns: samples and each rollup, whatever migrations added.
func (s *soaker) tableTotals(ctx context.Context) (map[string]uint64, error) {
	out := map[string]uint64{}
	err := s.withCH(ctx, func(db *chdb.DB) error {
		var names proto.ColStr
		if err := db.Do(ctx, ch.Query{
			Body: "SELECT table FROM system.columns WHERE database = " + chdb.String(chDB) +
				" AND name IN ('service', 'count') AND table IN (SELECT name FROM system.tables WHERE database = " +
				chdb.String(chDB) + " AND engine LIKE '%MergeTree') GROUP BY table HAVING count() = 2 ORDER BY table",
			Result: proto.Results{{Name: "table", Data: &names}},
		}); err != nil {
			return fmt.Errorf("list tables: %w", err)
		}
		for i := range names.Rows() {
			t := names.Row(i)
			if err := chdb.CheckIdent(t); err != nil {
				return err
			}
			var n proto.ColUInt64
			if err := db.Do(ctx, ch.Query{
				Body:   "SELECT toUInt64(sum(count)) AS n FROM " + db.Table(t) + " WHERE service = " + chdb.String(s.cfg.Service),
				Result: proto.Results{{Name: "n", Data: &n}},
			}); err != nil {
				return fmt.Errorf("sum %s: %w", t, err)
			}
			if len(n) == 1 {
				out[t] = n[0]
			}
		}
		return nil
	})
	return out, err
}

// verify waits until every accepted profile is in ClickHouse, then compares profile by profile, table by
// table and through the query API.
func (s *soaker) verify(ctx context.Context) {
	rep := &s.rep.Totals
	t0 := time.Now()
	deadline := t0.Add(s.cfg.Drain)
	sent := s.ld.sent()
	var rows map[string]profileRows
	var lastErr error
	for {
		r, err := s.profiles(ctx)
		lastErr = err
		if err == nil {
			rows = r
			missing := 0
			for _, u := range sent {
				if _, ok := r[profileKey(u.host, u.start.Unix())]; !ok && u.state.Load() == acked {
					missing++
				}
			}
			if missing == 0 {
				rep.IndexedAfter = time.Since(t0).Seconds()
				// A late redelivery would add rows after the last profile arrived: look once more after a
				// few of the indexer's batch waits.
				time.Sleep(3 * time.Second)
				if r, err := s.profiles(ctx); err == nil {
					rows = r
				}
				break
			}
			fmt.Fprintf(s.progress, "soak: waiting for the indexer (%d of the accepted profiles not in ClickHouse yet)\n", missing)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			rep.IndexedAfter = -1
			break
		}
		time.Sleep(2 * time.Second)
	}
	if rows == nil {
		s.rep.fail("read profiles from ClickHouse: %v", lastErr)
		return
	}
	lo, hi := rep.compare(sent, rows)
	// Double and wrong profiles were added to Expected with what was sent, so any of them also shows as a
	// difference in the tables and the API total.
	if rep.Missing+rep.Double+rep.Wrong+rep.Stray > 0 {
		s.rep.fail("profiles: %d accepted profiles missing, %d counted twice, %d with a wrong count, %d stray",
			rep.Missing, rep.Double, rep.Wrong, rep.Stray)
	}
	if rep.IndexedAfter < 0 {
		s.rep.fail("accepted profiles still missing %s after the load", s.cfg.Drain)
	}
	// The per-dimension rollups are built by the janitor once their hour and day are closed (schema step
	// 7): build them now as it will then, its clock moved past the day, so that they are checked too.
	built := s.cfg.BuildRollups != nil
	if built {
		if err := s.buildRollups(ctx); err != nil {
			s.rep.fail("build the per-dimension rollups: %v", err)
		}
	}
	tables, err := s.tableTotals(ctx)
	rep.Tables = tables
	if err != nil {
		s.rep.fail("table totals: %v", err)
	}
	names := make([]string, 0, len(tables))
	for t := range tables {
		names = append(names, t)
	}
	slices.Sort(names)
	for _, t := range names {
		if !built && slices.ContainsFunc(schema.Built, func(b schema.BuiltRollup) bool { return b.Table == t }) {
			continue // not built: not checked
		}
		if tables[t] != rep.Expected {
			s.rep.fail("table %s holds %d samples of the service, the accepted profiles %d (%+d)", t, tables[t], rep.Expected, int64(tables[t])-int64(rep.Expected))
		}
	}
	if len(tables) == 0 && err == nil {
		s.rep.fail("no table with service and count columns in %s", chDB)
	}
	if lo.IsZero() {
		s.rep.fail("no profile was accepted")
		return
	}
	for range 2 { // the second read may come from the query role's cache of settled ranges
		v, err := s.flameTotal(ctx, lo, hi.Add(time.Minute))
		if err != nil {
			s.rep.fail("flame graph: %v", err)
			break
		}
		rep.API = append(rep.API, v)
		if v != rep.Expected {
			s.rep.fail("flame graph total %d, the accepted profiles %d (%+d)", v, rep.Expected, int64(v)-int64(rep.Expected))
		}
	}
}

// compare checks the rows of every profile against what was sent: an accepted profile must have rows
// summing to its count under one profile id; a profile answered 4xx or never sent must have none; one
// never answered may have either. It adds up Expected and returns the range of the profiles' starts.
func (t *Totals) compare(sent []*upload, rows map[string]profileRows) (lo, hi time.Time) {
	example := func(format string, args ...any) {
		if len(t.Examples) < 12 {
			t.Examples = append(t.Examples, fmt.Sprintf(format, args...))
		}
	}
	t.Profiles = len(rows)
	seen := make(map[string]bool, len(rows))
	for _, u := range sent {
		k := profileKey(u.host, u.start.Unix())
		r, ok := rows[k]
		seen[k] = true
		state := u.state.Load()
		at := u.start.Format(time.RFC3339)
		switch {
		case state == acked && !ok:
			t.Missing++
			example("missing: %s %s (count %d, %d tries)", u.host, at, u.count, u.tries.Load())
			continue
		case !ok:
			continue
		case state == rejected || u.tries.Load() == 0:
			t.Stray++
			example("stray: %s %s was never accepted (state %d, %d tries) yet has %d", u.host, at, state, u.tries.Load(), r.sum)
			continue
		case r.sum == 2*u.count:
			t.Double++
			example("double: %s %s has %d, sent %d", u.host, at, r.sum, u.count)
		case r.sum != u.count || r.ids != 1:
			t.Wrong++
			example("wrong: %s %s has %d under %d profile ids, sent %d", u.host, at, r.sum, r.ids, u.count)
		}
		t.Expected += u.count
		if lo.IsZero() || u.start.Before(lo) {
			lo = u.start
		}
		if u.start.After(hi) {
			hi = u.start
		}
	}
	for k, r := range rows {
		if !seen[k] {
			t.Stray++
			example("stray: rows of no upload: %s (%d)", k, r.sum)
		}
	}
	return lo, hi
}

// summarize fills the report's counts and growth figures and judges them.
func (s *soaker) summarize(idleStart, idleEnd Sample) {
	rep, cfg := s.rep, s.cfg
	rep.Offered = s.ld.offered.Load()
	rep.Missed = s.ld.missed.Load()
	rep.Acked = s.ld.ackedN.Load()
	rep.Attempts = s.ld.tries.Load()
	for _, u := range s.ld.sent() {
		switch u.state.Load() {
		case rejected:
			rep.Rejected++
		case pending:
			if u.tries.Load() > 0 {
				rep.Unanswered++
			}
		}
	}
	s.ld.mu.Lock()
	rep.Statuses = s.ld.statuses
	rep.Rejects = s.ld.rejects
	s.ld.mu.Unlock()
	if rep.Rejected > 0 {
		s.rep.fail("%d uploads answered 4xx, e.g. %s", rep.Rejected, strings.Join(rep.Rejects, "; "))
	}
	if rep.Unanswered > 0 {
		s.rep.fail("%d uploads never accepted despite retries for %s after the load", rep.Unanswered, cfg.RetryGrace)
	}
	if rep.Missed > 0 {
		s.rep.fail("%d uploads not sent: every worker was busy and the queue full", rep.Missed)
	}
	killed := map[string]bool{}
	for _, f := range rep.Faults {
		killed[f.Target] = true
	}
	for _, t := range cfg.Targets {
		if !killed[t] {
			s.rep.fail("%s was never killed: the fault window is too short for every target", t)
		}
	}
	for _, name := range []string{ClickHouse, NATS, S3} {
		if ex := s.st.servers[name].unexpectedExits(); len(ex) > 0 {
			s.rep.fail("%s exited by itself %d times: %s", name, len(ex), strings.Join(ex, "; "))
		}
	}
	half := cfg.Duration.Seconds() / 2
	for _, role := range roles {
		p := s.st.roles[role]
		g := &Growth{Restarts: p.restarts(), UnexpectedExits: p.unexpectedExits(),
			GoroutinesIdleStart: idleStart.Roles[role].Goroutines, GoroutinesIdleEnd: idleEnd.Roles[role].Goroutines}
		rep.Growth[role] = g
		if len(g.UnexpectedExits) > 0 {
			s.rep.fail("%s exited by itself %d times: %s", role, len(g.UnexpectedExits), strings.Join(g.UnexpectedExits, "; "))
		}
		// The second half of the load, in the life of the process that is running at the end (a killed
		// indexer starts small again).
		for _, f := range g.judge(rep.Samples, role, idleEnd.Roles[role].PID, half, cfg.Duration.Seconds(), cfg) {
			s.rep.fail("%s", f)
		}
		if g.GoroutinesIdleStart > 0 && g.GoroutinesIdleEnd > g.GoroutinesIdleStart*(1+cfg.GrowthRatio)+cfg.GoroutineSlack {
			s.rep.fail("%s goroutines when idle: %.0f before the load, %.0f after it", role, g.GoroutinesIdleStart, g.GoroutinesIdleEnd)
		}
		if g.GoroutinesIdleEnd < 0 {
			s.rep.fail("%s /metrics does not answer after the load", role)
		}
	}
}

// judge fills the second-half figures of role from the samples of process pid taken between from and to
// (seconds), and says what grew past the tolerance of cfg. It needs six samples to judge.
func (g *Growth) judge(samples []Sample, role string, pid int, from, to float64, cfg Config) []string {
	var rss, gor []float64
	for _, sm := range samples {
		r := sm.Roles[role]
		if sm.T >= from && sm.T <= to && r.PID == pid && r.RSSMiB > 0 && r.Goroutines >= 0 {
			rss = append(rss, r.RSSMiB)
			gor = append(gor, r.Goroutines)
		}
	}
	g.Samples = len(rss)
	if len(rss) < 6 {
		return nil
	}
	var out []string
	n := len(rss) / 3
	g.RSSFirstMiB, g.RSSLastMiB = median(rss[:n]), median(rss[len(rss)-n:])
	g.GoroutinesFirst, g.GoroutinesLast = median(gor[:n]), median(gor[len(gor)-n:])
	if g.RSSLastMiB > g.RSSFirstMiB*(1+cfg.GrowthRatio)+cfg.RSSSlackMiB {
		out = append(out, fmt.Sprintf("%s RSS grew over the second half: %.0f MiB → %.0f MiB", role, g.RSSFirstMiB, g.RSSLastMiB))
	}
	if g.GoroutinesLast > g.GoroutinesFirst*(1+cfg.GrowthRatio)+cfg.GoroutineSlack {
		out = append(out, fmt.Sprintf("%s goroutines grew over the second half: %.0f → %.0f", role, g.GoroutinesFirst, g.GoroutinesLast))
	}
	return out
}

func median(v []float64) float64 {
	c := slices.Clone(v)
	slices.Sort(c)
	return c[len(c)/2]
}

// WriteTable prints the report for a person: samples over time, faults, totals, growth and the verdict.
func (r *Report) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "soak: seed %d, %.0fs, %.1f uploads/s from %d hosts; %d offered, %d accepted, %d attempts %v\n",
		r.Seed, r.DurationSeconds, r.Rate, r.Agents, r.Offered, r.Acked, r.Attempts, r.Statuses)
	fmt.Fprintf(w, "\n%7s %7s %7s %7s", "t(s)", "acked", "indexed", "pending")
	for _, role := range roles {
		fmt.Fprintf(w, " %9s %6s", role+" MiB", "gor")
	}
	fmt.Fprintln(w, "  down")
	for _, sm := range r.Samples {
		fmt.Fprintf(w, "%7.0f %7d %7d %7.0f", sm.T, sm.Acked, sm.Indexed, sm.Pending)
		for _, role := range roles {
			fmt.Fprintf(w, " %9.1f %6.0f", sm.Roles[role].RSSMiB, sm.Roles[role].Goroutines)
		}
		fmt.Fprintf(w, "  %s\n", sm.Fault)
	}
	fmt.Fprintf(w, "\n%-10s %7s %7s %7s %10s  %s\n", "fault", "at(s)", "down(s)", "back(s)", "ready(s)", "error")
	for _, f := range r.Faults {
		note := f.Err
		if len(f.Unready) > 0 {
			note = "(" + strings.Join(f.Unready, ", ") + " not ready before) " + note
		}
		fmt.Fprintf(w, "%-10s %7.0f %7.1f %7.1f %10.1f  %s\n", f.Target, f.At, f.Down, f.Back, f.Recovered, note)
	}
	t := r.Totals
	fmt.Fprintf(w, "\nprofiles in ClickHouse %d (missing %d, double %d, wrong %d, stray %d), all indexed %.1fs after the load\n",
		t.Profiles, t.Missing, t.Double, t.Wrong, t.Stray, t.IndexedAfter)
	fmt.Fprintf(w, "samples expected %d; flame graph %v; tables %v\n", t.Expected, t.API, t.Tables)
	for _, e := range t.Examples {
		fmt.Fprintf(w, "  %s\n", e)
	}
	fmt.Fprintf(w, "queries during the load %v\n", r.Queries)
	for _, e := range r.QueryErrors {
		fmt.Fprintf(w, "  %s\n", e)
	}
	fmt.Fprintf(w, "\n%-8s %8s %10s %10s %8s %8s %10s %10s %8s\n", "role", "samples", "rss first", "rss last", "gor 1st", "gor last", "idle gor0", "idle gor1", "restarts")
	for _, role := range roles {
		g := r.Growth[role]
		if g == nil {
			continue
		}
		fmt.Fprintf(w, "%-8s %8d %10.1f %10.1f %8.0f %8.0f %10.0f %10.0f %8d\n", role, g.Samples, g.RSSFirstMiB, g.RSSLastMiB,
			g.GoroutinesFirst, g.GoroutinesLast, g.GoroutinesIdleStart, g.GoroutinesIdleEnd, g.Restarts)
	}
	if r.OK() {
		fmt.Fprintln(w, "\nPASS")
		return
	}
	fmt.Fprintf(w, "\nFAIL (logs in %s)\n", r.Dir)
	for _, f := range r.Failures {
		fmt.Fprintf(w, "  - %s\n", f)
	}
}
