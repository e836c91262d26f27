package query

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"
	"github.com/go-chi/chi/v5"

	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/flame"
	"github.com/flamestream/flamestream/internal/pgdb"
	"github.com/flamestream/flamestream/internal/schema"
)

func (s *Server) bounded(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(r.Context(), s.cfg.Timeout, errTimeout)
}

// load returns a view of the service's trie holding the stacks of a selection and, for a diff, those of its
// baseline on the baseline side, all read by one ClickHouse query; it must be used before release is called.
func (s *Server) load(ctx context.Context, sel Selection, base ...Selection) (v *flame.View, release func(), err error) {
	sums, err := s.sums(ctx, append([]Selection{sel}, base...)...)
	if err != nil {
		return nil, nil, err
	}
	return s.view(ctx, sel.Service, sums)
}

// reading is a call of a read endpoint once it is open (see startReading): its selection, a context bounded
// by the API timeout, and the rollups as of the call, retention horizons included.
type reading struct {
	ctx     context.Context
	cancel  context.CancelFunc
	sel     Selection
	rollups Rollups
}

// startReading opens a call of a read endpoint, the same way for each. It parses the selection, then the
// endpoint's own parameters with params (nil for none), so that a bad request is a 400 before anything is
// read; then it bounds the call by the API timeout, reads the rollups and widens the selection (see widen).
// The caller must call cancel on the reading returned.
func (s *Server) startReading(w http.ResponseWriter, r *http.Request, params func(sel *Selection) error) (*reading, error) {
	sel, err := selectionOf(r)
	if err != nil {
		return nil, err
	}
	if params != nil {
		if err := params(&sel); err != nil {
			return nil, err
		}
	}
	ctx, cancel := s.bounded(r)
	ru, err := s.rollupsFor(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	rd := &reading{ctx: ctx, cancel: cancel, sel: sel, rollups: s.horizons(ru, time.Now())}
	rd.widen(w, &rd.sel, "")
	return rd, nil
}

// widen moves the edges of a selection that are older than the raw retention out to whole hours or days
// (see Rollups.Widen) and reports the range the answer covers in the response headers Flamestream-From and
// Flamestream-To (Flamestream-Base-From and -To for a diff's baseline, prefix "Base-").
func (rd *reading) widen(w http.ResponseWriter, sel *Selection, prefix string) {
	sel.From, sel.To = rd.rollups.Widen(sel.From, sel.To)
	w.Header().Set("Flamestream-"+prefix+"From", sel.From.UTC().Format(time.RFC3339Nano))
	w.Header().Set("Flamestream-"+prefix+"To", sel.To.UTC().Format(time.RFC3339Nano))
}

// settleTime is how long after its end a rollup bucket is read whole past the edge of a range (see
// Rollups.Settled): by then the indexer has written all its rows, unless it was far behind.
const settleTime = time.Hour

// horizons adds to r the retention horizons and the settled time as of now: the janitor drops a day's partition once the whole
// day is older than the retention, so the day that holds now minus the retention is always kept.
func (s *Server) horizons(r Rollups, now time.Time) Rollups {
	if d := s.cfg.RawDays; d > 0 {
		r.RawSince = now.UTC().AddDate(0, 0, -d).Truncate(24 * time.Hour)
	}
	if d := s.cfg.HourDays; d > 0 {
		r.HourSince = now.UTC().AddDate(0, 0, -d).Truncate(24 * time.Hour)
	}
	r.Settled = now.UTC().Add(-settleTime)
	return r
}

func intParam(r *http.Request, name string, def, lo, hi int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, badRequest("bad "+name, fmt.Errorf("want an integer in %d..%d", lo, hi))
	}
	return n, nil
}

func focusParam(r *http.Request) []string {
	f := r.URL.Query().Get("focus")
	if f == "" {
		return nil
	}
	return strings.Split(f, ";")
}

func (s *Server) flamegraph(w http.ResponseWriter, r *http.Request) error {
	var maxNodes int
	rd, err := s.startReading(w, r, func(*Selection) (err error) {
		maxNodes, err = intParam(r, "maxNodes", s.cfg.MaxNodes, 0, 1<<20)
		return err
	})
	if err != nil {
		return err
	}
	defer rd.cancel()
	b, release, err := s.loadShaped(rd.ctx, r, rd.sel)
	if err != nil {
		return err
	}
	defer release()
	var root *flame.Node
	if focus := focusParam(r); focus != nil {
		root = b.Focus(focus, maxNodes)
		if root == nil { // no sample under this path in the range: an empty subtree, not null
			root = &flame.Node{Name: focus[len(focus)-1]}
		}
	} else {
		root = b.Tree(maxNodes)
	}
	// The tree is the view's no more: let the service's trie go before a slow client reads the reply.
	release()
	writeTree(w, root, false)
	return nil
}

func (s *Server) diff(w http.ResponseWriter, r *http.Request) error {
	var base Selection
	var maxNodes int
	rd, err := s.startReading(w, r, func(sel *Selection) (err error) {
		q := r.URL.Query()
		// The baseline defaults to the same filters over the given base range.
		if base, err = parseSelection(q, "base_", time.Now().UTC()); err != nil {
			return err
		}
		if !hasAny(q, "base_", dimensions) {
			base.Include, base.Exclude = sel.Include, sel.Exclude
		}
		// The baseline may be of another service (base_service; see stackshape.go).
		if err = baselineService(r, &base); err != nil {
			return err
		}
		maxNodes, err = intParam(r, "maxNodes", s.cfg.MaxNodes, 0, 1<<20)
		return err
	})
	if err != nil {
		return err
	}
	defer rd.cancel()
	rd.widen(w, &base, "Base-")
	if table, err := diffTable(r); err != nil || table {
		if err != nil {
			return err
		}
		return s.compareTable(w, r, rd, base) // the side-by-side table (compare.go)
	}
	b, release, err := s.loadShaped(rd.ctx, r, rd.sel, base)
	if err != nil {
		return err
	}
	defer release()
	root := b.Tree(maxNodes)
	release()
	// The builder sets Total and BaseTotal only when a baseline was added; the root of a diff always
	// carries both, zero or not.
	root.Total, root.BaseTotal = root.Value, root.Base
	writeTree(w, root, true)
	return nil
}

func hasAny(q map[string][]string, prefix string, dims []string) bool {
	for _, d := range dims {
		if len(q[prefix+d]) > 0 || len(q[prefix+d+"_not"]) > 0 {
			return true
		}
	}
	return false
}

func (s *Server) top(w http.ResponseWriter, r *http.Request) error {
	var limit int
	var sortBy string
	rd, err := s.startReading(w, r, func(*Selection) (err error) {
		if limit, err = intParam(r, "limit", 100, 1, 100000); err != nil {
			return err
		}
		sortBy = r.URL.Query().Get("sort")
		if sortBy == "" {
			sortBy = "self"
		}
		if sortBy != "self" && sortBy != "total" {
			return badRequest("bad sort", errors.New("self or total"))
		}
		return nil
	})
	if err != nil {
		return err
	}
	defer rd.cancel()
	b, release, err := s.loadShaped(rd.ctx, r, rd.sel)
	if err != nil {
		return err
	}
	defer release()
	total, functions := b.Total(), b.TopFunctions(sortBy, limit)
	release()
	writeJSON(w, http.StatusOK, map[string]any{"total": total, "functions": functions})
	return nil
}

// timelineStep picks a bucket so a range has at most about 300 points.
func timelineStep(d time.Duration) int64 {
	for _, step := range []int64{60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 86400} {
		if d/time.Duration(step)/time.Second <= 300 {
			return step
		}
	}
	return 7 * 86400
}

func (s *Server) timeline(w http.ResponseWriter, r *http.Request) error {
	var sh stackShape
	rd, err := s.startReading(w, r, func(*Selection) (err error) {
		sh, err = parseStackShape(r.URL.Query()) // the runtime and process view (stackshape.go)
		return err
	})
	if err != nil {
		return err
	}
	defer rd.cancel()
	ctx, sel, ru := rd.ctx, rd.sel, rd.rollups
	// Past the raw retention only hours or days are kept: the step is at least that long.
	step := timelineStep(sel.To.Sub(sel.From))
	old, _ := ru.PastRaw(sel.From, sel.To)
	for _, seg := range old {
		switch {
		case seg.Gran == Day && step < 86400:
			step = 86400
		case seg.Gran == Hour && step < 3600:
			step = 3600
		}
	}
	if sh.dropsProcesses() {
		return s.shapedTimeline(w, rd, sh, step)
	}
	var t proto.ColUInt32
	var c proto.ColUInt64
	byT := map[uint32]uint64{}
	// Whole minutes come from totals_1m, the unaligned edges from samples; steps are whole minutes, so
	// every row falls in exactly one bucket.
	err = s.ch.DoLimited(ctx, s.limits(), ch.Query{
		Body:   s.totalsSQL(sel, ru, fmt.Sprintf("toUInt32(intDiv(toUInt32(ts), %d) * %d) AS t", step, step), "t"),
		Result: proto.Results{{Name: "t", Data: &t}, {Name: "c", Data: &c}},
		OnResult: func(ctx context.Context, b proto.Block) error {
			for i := range t {
				byT[t[i]] += c[i]
			}
			return nil
		},
	})
	if err != nil {
		return fmt.Errorf("timeline: %w", err)
	}
	points := make([][2]uint64, 0, len(byT))
	for k, v := range byT {
		points = append(points, [2]uint64{uint64(k), v})
	}
	sort.Slice(points, func(i, j int) bool { return points[i][0] < points[j][0] })
	writeJSON(w, http.StatusOK, map[string]any{"step": step, "points": points})
	return nil
}

// FilterValue is one value of a dimension with its sample count.
type FilterValue struct {
	Value   string `json:"value"`
	Samples uint64 `json:"samples"`
}

func (s *Server) filterOptions(w http.ResponseWriter, r *http.Request) error {
	rd, err := s.startReading(w, r, nil)
	if err != nil {
		return err
	}
	defer rd.cancel()
	ctx, sel, ru := rd.ctx, rd.sel, rd.rollups
	// Filter options ignore the selection's own filters: they list what can be picked.
	all := Selection{Service: sel.Service, From: sel.From, To: sel.To}
	out := make(map[string][]FilterValue, len(dimensions))
	errs := make([]error, len(dimensions))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, d := range dimensions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vals, err := s.dimensionValues(ctx, all, ru, d)
			mu.Lock()
			out[d], errs[i] = vals, err
			mu.Unlock()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// maxFilterValues is how many values of one dimension the filter options list (the most sampled first).
const maxFilterValues = 1000

// dimensionValues lists the values of dimension d (from the allow-list) in sel with their sample counts.
func (s *Server) dimensionValues(ctx context.Context, sel Selection, r Rollups, d string) ([]FilterValue, error) {
	var v proto.ColStr
	var c proto.ColUInt64
	vals := []FilterValue{}
	err := s.ch.DoLimited(ctx, s.limits(), ch.Query{
		Body:   s.totalsSQL(sel, r, d+" AS v", "v"),
		Result: proto.Results{{Name: "v", Data: &v}, {Name: "c", Data: &c}},
		OnResult: func(ctx context.Context, b proto.Block) error {
			for i := 0; i < v.Rows(); i++ {
				if s := v.Row(i); s != "" {
					vals = append(vals, FilterValue{s, c[i]})
				}
			}
			return nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("filter values of %s: %w", d, err)
	}
	// Rows of the raw edges and of totals_1m are already summed per value by totalsSQL.
	sort.Slice(vals, func(i, j int) bool {
		if vals[i].Samples != vals[j].Samples {
			return vals[i].Samples > vals[j].Samples
		}
		return vals[i].Value < vals[j].Value
	})
	if len(vals) > maxFilterValues {
		vals = vals[:maxFilterValues]
	}
	return vals, nil
}

// ServiceSummary is one row of the services overview.
type ServiceSummary struct {
	Name     string     `json:"name"`
	LastSeen *time.Time `json:"last_seen,omitempty"`
	Samples  uint64     `json:"samples"`
	Hosts    uint64     `json:"hosts"`
	Trend    []uint64   `json:"trend"`
	// CPUAvg and MemAvg are the average CPU and memory use (percent) the service's agents reported over
	// the same 24 hours; absent when none did.
	CPUAvg *float64 `json:"cpu_avg,omitempty"`
	MemAvg *float64 `json:"mem_avg,omitempty"`
}

func (s *Server) services(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := s.bounded(r)
	defer cancel()
	svcs, err := s.meta.ListServices(ctx)
	if err != nil {
		return err
	}
	p := principalOf(ctx)
	now := time.Now().UTC().Truncate(time.Hour).Add(time.Hour)
	from := now.Add(-24 * time.Hour)
	byName := map[string]*ServiceSummary{}
	out := []*ServiceSummary{}
	for _, sv := range svcs {
		if p.token != nil && !p.token.AllowsService(sv.Name) {
			continue
		}
		ss := &ServiceSummary{Name: sv.Name, LastSeen: sv.LastSeen, Trend: make([]uint64, 24)}
		byName[sv.Name] = ss
		out = append(out, ss)
	}
	var name proto.ColStr
	var hour proto.ColUInt32
	var samples, hosts proto.ColUInt64
	err = s.ch.Do(ctx, ch.Query{
		// The window is whole hours, so totals_1m alone is exact.
		Body: fmt.Sprintf("SELECT service, toUInt32(toStartOfHour(ts)) AS h, toUInt64(sum(count)) AS c, toUInt64(uniqExact(host)) AS hosts FROM %s WHERE ts >= %s AND ts < %s GROUP BY service, h",
			s.ch.Table(schema.Totals1m), chdb.Time(from), chdb.Time(now)),
		Result: proto.Results{{Name: "service", Data: &name}, {Name: "h", Data: &hour}, {Name: "c", Data: &samples}, {Name: "hosts", Data: &hosts}},
		OnResult: func(ctx context.Context, b proto.Block) error {
			for i := 0; i < name.Rows(); i++ {
				ss := byName[name.Row(i)]
				if ss == nil {
					continue
				}
				idx := (int64(hour[i]) - from.Unix()) / 3600
				if idx >= 0 && idx < 24 {
					ss.Trend[idx] += samples[i]
				}
				ss.Samples += samples[i]
				ss.Hosts = max(ss.Hosts, hosts[i])
			}
			return nil
		},
	})
	if err != nil {
		return err
	}
	var cpu, mem proto.ColFloat64
	err = s.ch.Do(ctx, ch.Query{
		// From the raw rows (one per profile; a day of a 1,000-host fleet is 1.4M rows): the hour sums are
		// merged in an order of the server's choosing, so their float sums differ in the last bits from
		// one server to the next, while a compensated sum of the rows does not.
		Body: fmt.Sprintf("SELECT service, sumKahan(cpu) / count() AS cpu, sumKahan(mem) / count() AS mem FROM %s WHERE ts >= %s AND ts < %s GROUP BY service",
			s.ch.Table(schema.HostMetrics), chdb.Time(from), chdb.Time(now)),
		Result: proto.Results{{Name: "service", Data: &name}, {Name: "cpu", Data: &cpu}, {Name: "mem", Data: &mem}},
		OnResult: func(ctx context.Context, b proto.Block) error {
			for i := 0; i < name.Rows(); i++ {
				if ss := byName[name.Row(i)]; ss != nil {
					c, m := cpu[i], mem[i]
					ss.CPUAvg, ss.MemAvg = &c, &m
				}
			}
			return nil
		},
	})
	if err != nil {
		return err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, http.StatusOK, map[string]any{"services": out})
	return nil
}

func (s *Server) agents(w http.ResponseWriter, r *http.Request) error {
	service := r.URL.Query().Get("service")
	if p := principalOf(r.Context()); p.token != nil && p.token.Service != "" {
		service = p.token.Service
	}
	list, err := s.meta.ListAgents(r.Context(), service)
	if err != nil {
		return err
	}
	if list == nil {
		list = []pgdb.Agent{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"agents": list})
	return nil
}

func (s *Server) export(w http.ResponseWriter, r *http.Request) error {
	rd, err := s.startReading(w, r, nil)
	if err != nil {
		return err
	}
	defer rd.cancel()
	sel, format := rd.sel, r.URL.Query().Get("format")
	b, release, err := s.loadShaped(rd.ctx, r, sel) // the runtime and process view too (stackshape.go)
	if err != nil {
		return err
	}
	// Exports stream from the view, so they hold the service trie's read lock while the client reads
	// (new stacks of the service wait for it); a whole export can be far too large to buffer.
	defer release()
	name := fmt.Sprintf("%s_%s_%s", sel.Service, sel.From.Format("20060102T150405Z"), sel.To.Format("20060102T150405Z"))
	name = strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r == '/' || r < 0x20 {
			return '_'
		}
		return r
	}, name)
	switch format {
	case "folded", "":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.folded"`)
		return b.WriteFolded(w)
	case "speedscope":
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.speedscope.json"`)
		return b.WriteSpeedscope(w, sel.Service)
	case "pprof":
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.pb.gz"`)
		return b.WritePprof(w, sel.From, sel.To.Sub(sel.From))
	}
	return badRequest("bad format", errors.New("folded, speedscope or pprof"))
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) error {
	list, err := s.meta.ListTokens(r.Context())
	if err != nil {
		return err
	}
	if list == nil {
		list = []pgdb.Token{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": list})
	return nil
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Service string `json:"service"`
		Name    string `json:"name"`
		Kind    string `json:"kind"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	if err := checkFields("name", in.Name, "service", in.Service, "kind", in.Kind); err != nil {
		return err
	}
	if in.Kind == "" {
		in.Kind = pgdb.KindAgent
	}
	tok, secret, err := s.meta.CreateToken(r.Context(), in.Name, in.Kind, in.Service)
	if err != nil {
		return badRequest("cannot create token", err)
	}
	writeJSON(w, http.StatusCreated, map[string]any{"id": tok.ID, "token": secret, "kind": tok.Kind, "service": tok.Service})
	return nil
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) error {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil {
		return badRequest("bad token id", err)
	}
	ok, err := s.meta.RevokeToken(r.Context(), id)
	if err != nil {
		return err
	}
	if !ok {
		return &Error{Status: http.StatusNotFound, Message: "no live token with this id"}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) getSettings(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.meta.GetService(r.Context(), chi.URLParam(r, "service"))
	if errors.Is(err, pgdb.ErrNotFound) {
		return &Error{Status: http.StatusNotFound, Message: "no such service"}
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, svc)
	return nil
}

func (s *Server) putSettings(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		SampleThreshold float64 `json:"sample_threshold"`
		RetentionDays   *int    `json:"retention_days"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	name := chi.URLParam(r, "service")
	// Only shorter than the raw retention: see pgdb.CheckRetentionDays.
	if err := pgdb.CheckRetentionDays(in.RetentionDays, s.cfg.RawDays); err != nil {
		return &Error{Status: http.StatusBadRequest, Message: err.Error()}
	}
	if err := s.meta.SetServiceSettings(r.Context(), name, in.SampleThreshold, in.RetentionDays); err != nil {
		return badRequest("bad settings", err)
	}
	return s.getSettings(w, r)
}
