package webui

import (
	"bufio"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fnode is a flame-graph node as the query API returns it (query/API.md).
type fnode struct {
	Name      string   `json:"name"`
	Value     int64    `json:"value"`
	Self      int64    `json:"self"`
	Base      *int64   `json:"base,omitempty"`
	Other     bool     `json:"other,omitempty"`
	Total     *int64   `json:"total,omitempty"`
	BaseTotal *int64   `json:"base_total,omitempty"`
	Children  []*fnode `json:"children,omitempty"`
}

// Fixture credentials and cookies.
const (
	fixtureUser    = "admin"
	fixturePass    = "s3cret"
	fixtureSession = "session-fixture"
	fixtureCSRF    = "csrf-fixture"
)

// parseCollapsed builds a tree from the agent sample (header line, then
// "APP_INDEX;CONTAINER;comm;frames… count" lines).
func parseCollapsed(t testing.TB, path string) *fnode {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	root := &fnode{Name: "root"}
	kids := map[*fnode]map[string]*fnode{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		n, err := strconv.ParseInt(line[sp+1:], 10, 64)
		if sp < 0 || err != nil || n <= 0 {
			continue
		}
		fields := strings.Split(line[:sp], ";")
		if len(fields) < 3 {
			continue
		}
		cur := root
		root.Value += n
		for _, fr := range fields[2:] {
			if fr == "" {
				continue
			}
			m := kids[cur]
			if m == nil {
				m = map[string]*fnode{}
				kids[cur] = m
			}
			c := m[fr]
			if c == nil {
				c = &fnode{Name: fr}
				m[fr] = c
				cur.Children = append(cur.Children, c)
			}
			c.Value += n
			cur = c
		}
		cur.Self += n
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return root
}

// syntheticTree makes a deterministic tree of exactly n nodes, up to 60 deep,
// children sorted by name as the query API sends them.
func syntheticTree(n int) *fnode {
	r := rand.New(rand.NewPCG(64, 1024))
	suffixes := []string{"", "", "", "_[k]", "_[p]", "_[j]", "_[pe]", "_[i]", "_[rb]", "_[net]", "_[zz]"}
	names := make([]string, 8000)
	for i := range names {
		names[i] = fmt.Sprintf("pkg%d/mod.Function%d%s", i%131, i, suffixes[i%len(suffixes)])
	}
	root := &fnode{Name: "root"}
	nodes := []*fnode{root}
	depth := []int{0}
	taken := map[[2]int]bool{}
	for len(nodes) < n {
		var p int
		if r.IntN(5) == 0 {
			p = r.IntN(len(nodes))
		} else {
			p = len(nodes) - 1 - r.IntN(min(len(nodes), 40))
		}
		if depth[p] >= 60 {
			continue
		}
		name := r.IntN(len(names))
		if taken[[2]int{p, name}] {
			continue
		}
		taken[[2]int{p, name}] = true
		c := &fnode{Name: names[name]}
		nodes[p].Children = append(nodes[p].Children, c)
		nodes = append(nodes, c)
		depth = append(depth, depth[p]+1)
	}
	var fill func(x *fnode) int64
	fill = func(x *fnode) int64 {
		// Like the query API (internal/flame), children come sorted by name.
		sort.Slice(x.Children, func(i, j int) bool { return x.Children[i].Name < x.Children[j].Name })
		if len(x.Children) == 0 {
			x.Self = 1 + r.Int64N(400)
		} else {
			x.Self = r.Int64N(30)
		}
		x.Value = x.Self
		for _, c := range x.Children {
			x.Value += fill(c)
		}
		return x.Value
	}
	fill(root)
	return root
}

func hash32(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}

// withBase returns a copy of t whose nodes carry a baseline that differs by frame.
func withBase(t *fnode) *fnode {
	c := *t
	c.Children = nil
	factor := 0.4 + float64(hash32(t.Name)%120)/100 // 0.4 .. 1.6
	b := int64(float64(t.Self) * factor)
	for _, k := range t.Children {
		kc := withBase(k)
		c.Children = append(c.Children, kc)
		b += *kc.Base
	}
	c.Base = &b
	return &c
}

// truncateWidest merges all but the two largest children of the process
// with the most children into an "other" node, like the API's maxNodes cut.
func truncateWidest(root *fnode) (*fnode, string) {
	cp := *root
	cp.Children = append([]*fnode(nil), root.Children...)
	best := -1
	for i, c := range cp.Children {
		if len(c.Children) > 3 && (best < 0 || len(c.Children) > len(cp.Children[best].Children)) {
			best = i
		}
	}
	if best < 0 {
		return &cp, ""
	}
	proc := *cp.Children[best]
	kids := append([]*fnode(nil), proc.Children...)
	sort.Slice(kids, func(i, j int) bool { return kids[i].Value > kids[j].Value })
	other := &fnode{Name: "other", Other: true}
	for _, k := range kids[2:] {
		other.Value += k.Value
		other.Self += k.Value
	}
	proc.Children = append(kids[:2:2], other)
	cp.Children[best] = &proc
	return &cp, proc.Name
}

type fixtureToken struct {
	ID        int    `json:"id"`
	Name      string `json:"name"`
	Service   string `json:"service"`
	CreatedAt string `json:"created_at"`
	Revoked   bool   `json:"revoked"`
}

// fixtureAPI is a tiny in-memory implementation of query/API.md for UI tests.
type fixtureAPI struct {
	demo      *fnode
	otherProc string // the process whose children the demo tree truncates

	benchOnce sync.Once
	benchJSON []byte

	deep deepService // the "deep" service: the demo stacks next to one 100,000-frame stack

	mu       sync.Mutex
	requests []string // "path?query" of every API call
	tokens   []fixtureToken
	settings map[string]map[string]any
}

func newFixtureAPI(t testing.TB) *fixtureAPI {
	return &fixtureAPI{
		demo:     parseCollapsed(t, "../internal/demo/agent-profile.collapsed"), // the one stored copy of the real agent profile,
		settings: map[string]map[string]any{},
		tokens:   []fixtureToken{{ID: 1, Name: "bootstrap", CreatedAt: time.Now().Add(-48 * time.Hour).UTC().Format(time.RFC3339)}},
	}
}

func (f *fixtureAPI) seen(prefix string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.requests {
		if strings.HasPrefix(r, prefix) {
			out = append(out, r)
		}
	}
	return out
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"message": msg, "detail": "fixture"})
}

func (f *fixtureAPI) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/login", f.login)
	auth := func(pattern string, h http.HandlerFunc) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			f.requests = append(f.requests, r.URL.Path+"?"+r.URL.RawQuery)
			f.mu.Unlock()
			if c, err := r.Cookie("fs_session"); err != nil || c.Value != fixtureSession {
				apiError(w, http.StatusUnauthorized, "not signed in")
				return
			}
			if r.Method != http.MethodGet && r.Header.Get("X-CSRF-Token") != fixtureCSRF {
				apiError(w, http.StatusForbidden, "bad CSRF token")
				return
			}
			h(w, r)
		})
	}
	auth("POST /api/v1/logout", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "fs_session", Value: "", Path: "/", MaxAge: -1})
		w.WriteHeader(http.StatusNoContent)
	})
	auth("GET /api/v1/me", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]string{"username": fixtureUser})
	})
	auth("GET /api/v1/services", f.services)
	auth("GET /api/v1/flamegraph", f.flamegraph)
	auth("GET /api/v1/diff", func(w http.ResponseWriter, r *http.Request) {
		d := withBase(f.demo)
		d.Total, d.BaseTotal = &d.Value, d.Base
		writeJSON(w, 200, d)
	})
	auth("GET /api/v1/timeline", f.timeline)
	auth("GET /api/v1/metrics", f.metrics)
	auth("GET /api/v1/top", f.top)
	auth("GET /api/v1/functions", f.functions)
	auth("GET /api/v1/function", f.function)
	auth("GET /api/v1/filters", func(w http.ResponseWriter, r *http.Request) {
		vals := func(pairs ...any) []map[string]any {
			var out []map[string]any
			for i := 0; i < len(pairs); i += 2 {
				out = append(out, map[string]any{"value": pairs[i], "samples": pairs[i+1]})
			}
			return out
		}
		writeJSON(w, 200, map[string]any{
			"host":          vals("ip-10-0-0-1", 5120, "ip-10-0-0-2", 2048),
			"container":     vals("webapp", 4000, "indexer", 1800),
			"instance_type": vals("m5.large", 7168),
			"k8s_object":    vals("webapp_default", 4000),
		})
	})
	auth("GET /api/v1/export", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Disposition", `attachment; filename="profile.`+r.URL.Query().Get("format")+`"`)
		_, _ = w.Write([]byte("root;main 1\n"))
	})
	auth("GET /api/v1/agents", func(w http.ResponseWriter, r *http.Request) {
		now := time.Now().UTC()
		writeJSON(w, 200, map[string]any{"agents": []map[string]any{
			{"service": "demo", "hostname": "ip-10-0-0-1", "agent_version": "1.35.0", "instance_type": "m5.large", "gpid": 1,
				"first_seen": now.Add(-time.Hour).Format(time.RFC3339), "last_seen": now.Add(-30 * time.Second).Format(time.RFC3339)},
			{"service": "demo", "hostname": "ip-10-0-0-2", "agent_version": "1.35.0", "instance_type": "m5.large", "gpid": 2,
				"first_seen": now.Add(-5 * time.Hour).Format(time.RFC3339), "last_seen": now.Add(-2 * time.Hour).Format(time.RFC3339)},
		}})
	})
	auth("GET /api/v1/tokens", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		writeJSON(w, 200, map[string]any{"tokens": f.tokens})
	})
	auth("POST /api/v1/tokens", func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Service, Name string }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Name == "" {
			apiError(w, 400, "name is required")
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		id := len(f.tokens) + 1
		f.tokens = append(f.tokens, fixtureToken{ID: id, Name: body.Name, Service: body.Service, CreatedAt: time.Now().UTC().Format(time.RFC3339)})
		writeJSON(w, 200, map[string]any{"id": id, "token": fmt.Sprintf("fs_tok_%d_abcdef", id)})
	})
	auth("DELETE /api/v1/tokens/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		for i := range f.tokens {
			if strconv.Itoa(f.tokens[i].ID) == r.PathValue("id") {
				f.tokens[i].Revoked = true
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		apiError(w, 404, "no such token")
	})
	auth("GET /api/v1/settings/{service}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		s := f.settings[r.PathValue("service")]
		if s == nil {
			s = map[string]any{"sample_threshold": 0, "retention_days": 30}
		}
		writeJSON(w, 200, s)
	})
	auth("PUT /api/v1/settings/{service}", func(w http.ResponseWriter, r *http.Request) {
		var s map[string]any
		if err := json.NewDecoder(r.Body).Decode(&s); err != nil {
			apiError(w, 400, "bad body")
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.settings[r.PathValue("service")] = s
		writeJSON(w, 200, s)
	})
	mux.Handle("/", Handler())
	return mux
}

func (f *fixtureAPI) login(w http.ResponseWriter, r *http.Request) {
	var body struct{ Username, Password string }
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Username != fixtureUser || body.Password != fixturePass {
		apiError(w, http.StatusUnauthorized, "invalid credentials")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: "fs_session", Value: fixtureSession, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.SetCookie(w, &http.Cookie{Name: "fs_csrf", Value: fixtureCSRF, Path: "/", SameSite: http.SameSiteLaxMode})
	writeJSON(w, 200, map[string]string{"username": body.Username})
}

func (f *fixtureAPI) services(w http.ResponseWriter, r *http.Request) {
	now := time.Now().UTC()
	trend := func(seed int) []int {
		out := make([]int, 24)
		for i := range out {
			out[i] = 100 + (i*seed*37)%90
		}
		return out
	}
	writeJSON(w, 200, map[string]any{"services": []map[string]any{
		{"name": "demo", "last_seen": now.Add(-20 * time.Second).Format(time.RFC3339), "samples": f.demo.Value, "hosts": 2, "trend": trend(3),
			"cpu_avg": 37.25, "mem_avg": 52.5},
		{"name": "bench", "last_seen": now.Add(-3 * time.Hour).Format(time.RFC3339), "samples": 123456789, "hosts": 40, "trend": trend(7)},
	}})
}

func (f *fixtureAPI) flamegraph(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	coverRange(w, q)
	if q.Get("service") == "deep" {
		f.deepGraph(w, q)
		return
	}
	if q.Get("service") == "bench" {
		f.benchOnce.Do(func() { f.benchJSON, _ = json.Marshal(syntheticTree(65536)) })
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(f.benchJSON)
		return
	}
	focus := q.Get("focus")
	if focus == "" {
		tree, _ := truncateWidest(f.demo)
		writeJSON(w, 200, tree)
		return
	}
	cur := f.demo
	for _, fr := range strings.Split(focus, ";") {
		var next *fnode
		for _, c := range cur.Children {
			if c.Name == fr {
				next = c
			}
		}
		if next == nil {
			apiError(w, 404, "focus path not found")
			return
		}
		cur = next
	}
	writeJSON(w, 200, cur)
}

func (f *fixtureAPI) timeline(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	from, _ := strconv.ParseInt(q.Get("from"), 10, 64)
	to, _ := strconv.ParseInt(q.Get("to"), 10, 64)
	step := max((to-from)/120, 60)
	var pts [][2]int64
	for t := from - from%step; t < to; t += step {
		pts = append(pts, [2]int64{t, 50 + (t/step*7919)%200})
	}
	writeJSON(w, 200, map[string]any{"step": step, "points": pts})
}

func (f *fixtureAPI) top(w http.ResponseWriter, r *http.Request) {
	self := map[string]int64{}
	total := map[string]int64{}
	var walk func(n *fnode, onPath map[string]bool)
	walk = func(n *fnode, onPath map[string]bool) {
		self[n.Name] += n.Self
		if !onPath[n.Name] {
			total[n.Name] += n.Value
			onPath[n.Name] = true
			defer delete(onPath, n.Name)
		}
		for _, c := range n.Children {
			walk(c, onPath)
		}
	}
	for _, c := range f.demo.Children {
		walk(c, map[string]bool{})
	}
	type fn struct {
		Name  string `json:"name"`
		Self  int64  `json:"self"`
		Total int64  `json:"total"`
	}
	var fns []fn
	for name := range total {
		fns = append(fns, fn{name, self[name], total[name]})
	}
	byTotal := r.URL.Query().Get("sort") == "total"
	sort.Slice(fns, func(i, j int) bool {
		if byTotal {
			return fns[i].Total > fns[j].Total || fns[i].Total == fns[j].Total && fns[i].Name < fns[j].Name
		}
		return fns[i].Self > fns[j].Self || fns[i].Self == fns[j].Self && fns[i].Name < fns[j].Name
	})
	if limit, _ := strconv.Atoi(r.URL.Query().Get("limit")); limit > 0 && len(fns) > limit {
		fns = fns[:limit]
	}
	writeJSON(w, 200, map[string]any{"total": f.demo.Value, "functions": fns})
}

// coverRange sets the headers of the range a reply covers as the real API does: ranges before 2021 stand
// for ranges past the raw retention, widened to whole UTC days.
func coverRange(w http.ResponseWriter, q url.Values) {
	from, err1 := strconv.ParseInt(q.Get("from"), 10, 64)
	to, err2 := strconv.ParseInt(q.Get("to"), 10, 64)
	if err1 != nil || err2 != nil {
		return
	}
	if from < 1609459200 {
		from -= from % 86400
		if to%86400 != 0 {
			to += 86400 - to%86400
		}
	}
	w.Header().Set("Flamestream-From", time.Unix(from, 0).UTC().Format(time.RFC3339))
	w.Header().Set("Flamestream-To", time.Unix(to, 0).UTC().Format(time.RFC3339))
}
