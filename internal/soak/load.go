package soak

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flamestream/flamestream/internal/demo"
)

// Upload states.
const (
	pending  int32 = iota // not answered 200 yet
	acked                 // answered 200: must be counted exactly once
	rejected              // answered 4xx: a bug of the soak or of ingest, never retried
)

// upload is one profile of the soak: agent host's minute starting at start, with the stack lines of pool
// entry k. Every upload has its own (host, start), which is how the check finds its rows.
type upload struct {
	host  string
	start time.Time
	k     int
	count uint64 // the sum of its stack counts: what the flame graph must gain once it is indexed
	state atomic.Int32
	tries atomic.Int32
}

// load offers agent-shaped uploads at a fixed rate and retries each one answered 5xx (or not answered) as
// the agent does, until it is accepted or the retries stop.
type load struct {
	cfg        Config
	fleet      *demo.LoadFleet
	poolCounts []uint64
	base       time.Time
	url        string
	token      string
	client     *http.Client

	uploads  []*upload // index i is the i-th upload offered; filled up to offered
	offerEnd time.Time // when the offer stopped (set before run waits for the retries)
	offered  atomic.Int64
	missed   atomic.Int64 // found the queue full: never sent, not expected
	ackedN   atomic.Int64
	tries    atomic.Int64
	gpids    []atomic.Int64

	mu       sync.Mutex
	statuses map[string]int64 // answers by status code ("transport" for none)
	rejects  []string         // the first few 4xx answers
}

func newLoad(cfg Config, ingestURL, token string) (*load, error) {
	fleet := demo.NewFleet(cfg.Seed, cfg.Service, demo.Shape{Stacks: cfg.Stacks, Lines: cfg.Lines, MinDepth: 20, MaxDepth: 60})
	lf := demo.NewLoadFleet(cfg.Seed, fleet, cfg.Agents, cfg.Pool)
	l := &load{cfg: cfg, fleet: lf, url: ingestURL + "/api/v2/profiles?", token: token,
		base:     time.Now().UTC().Truncate(time.Minute),
		uploads:  make([]*upload, int(cfg.Duration.Seconds()*cfg.Rate)+16),
		gpids:    make([]atomic.Int64, cfg.Agents),
		statuses: map[string]int64{},
		// Few idle connections, closed soon: a burst of retries after a fault must not leave dozens of
		// keep-alive connections (each a goroutine in ingest) that would read as goroutine growth.
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4,
			IdleConnTimeout: 5 * time.Second, DialContext: (&net.Dialer{Timeout: 3 * time.Second}).DialContext}},
	}
	// What each pool entry adds to the flame graph, read back from the very body that is sent (not from the
	// generator's own bookkeeping), so the expectation is independent of the code under test.
	for k := range cfg.Pool {
		n, err := bodyCount(lf.Body(0, k, l.base, ""))
		if err != nil {
			return nil, fmt.Errorf("pool entry %d: %w", k, err)
		}
		l.poolCounts = append(l.poolCounts, n)
	}
	return l, nil
}

// bodyCount returns the sum of the counts of an upload body's stack lines.
func bodyCount(body []byte) (uint64, error) {
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		return 0, err
	}
	var up demo.Upload
	if err := json.Unmarshal(plain, &up); err != nil {
		return 0, err
	}
	var sum uint64
	for _, line := range bytes.Split([]byte(up.Profile), []byte("\n")) {
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		i := bytes.LastIndexByte(line, ' ')
		if i < 0 {
			return 0, fmt.Errorf("stack line without a count: %.80q", line)
		}
		n, err := strconv.ParseUint(string(line[i+1:]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("stack line without a count: %.80q", line)
		}
		sum += n
	}
	return sum, nil
}

// uploadAt returns the i-th upload: agent i mod agents, its (i div agents)+1-th minute back from the start.
func (l *load) uploadAt(i int) *upload {
	a := i % l.cfg.Agents
	k := i % l.cfg.Pool
	return &upload{host: l.fleet.Agents[a].Host, start: l.base.Add(-time.Duration(i/l.cfg.Agents+1) * time.Minute),
		k: k, count: l.poolCounts[k]}
}

// run offers uploads until offerCtx ends, then lets the workers finish: each upload in hand is retried
// until it is accepted or retryCtx ends.
func (l *load) run(offerCtx, retryCtx context.Context) {
	jobs := make(chan int, max(int(l.cfg.Rate*60), l.cfg.Workers))
	var wg sync.WaitGroup
	for range l.cfg.Workers {
		wg.Go(func() {
			for i := range jobs {
				l.send(retryCtx, i)
			}
		})
	}
	interval := time.Duration(float64(time.Second) / l.cfg.Rate)
	t0 := time.Now()
offer:
	for i := 0; i < len(l.uploads); i++ {
		if d := time.Until(t0.Add(time.Duration(i) * interval)); d > 0 {
			select {
			case <-offerCtx.Done():
				break offer
			case <-time.After(d):
			}
		}
		if offerCtx.Err() != nil {
			break
		}
		l.uploads[i] = l.uploadAt(i)
		l.offered.Store(int64(i + 1))
		select {
		case jobs <- i:
		default:
			l.missed.Add(1)
		}
	}
	l.offerEnd = time.Now()
	close(jobs)
	wg.Wait()
}

// send posts upload i until it is answered 200 or 4xx, or ctx ends. Like the agent, it retries a 5xx or a
// failed connection with the same body after a pause.
func (l *load) send(ctx context.Context, i int) {
	u := l.uploads[i]
	a := i % l.cfg.Agents
	gp := ""
	if g := l.gpids[a].Load(); g > 0 {
		gp = strconv.FormatInt(g, 10)
	}
	body := l.fleet.Body(a, u.k, u.start, gp)
	q := url.Values{"key": {l.token}, "service": {l.cfg.Service}, "hostname": {u.host}, "version": {"1.35.0"}}
	for attempt := 0; ctx.Err() == nil; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(min(time.Duration(attempt)*time.Second, 5*time.Second)):
			}
		}
		u.tries.Add(1)
		l.tries.Add(1)
		q.Set("timestamp", time.Now().UTC().Format(time.RFC3339))
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, l.url+q.Encode(), bytes.NewReader(body))
		req.Header.Set("Content-Encoding", "gzip")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("GPROFILER-API-KEY", l.token)
		req.Header.Set("GPROFILER-SERVICE-NAME", l.cfg.Service)
		resp, err := l.client.Do(req)
		if err != nil {
			l.count("transport")
			continue
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		l.count(strconv.Itoa(resp.StatusCode))
		switch {
		case resp.StatusCode == http.StatusOK:
			var r struct {
				GPID int64 `json:"gpid"`
			}
			if json.Unmarshal(b, &r) == nil && r.GPID > 0 {
				l.gpids[a].Store(r.GPID)
			}
			u.state.Store(acked)
			l.ackedN.Add(1)
			return
		case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests:
			u.state.Store(rejected)
			l.mu.Lock()
			if len(l.rejects) < 10 {
				l.rejects = append(l.rejects, fmt.Sprintf("%s %s: %d %s", u.host, u.start.Format(time.RFC3339), resp.StatusCode, bytes.TrimSpace(b)))
			}
			l.mu.Unlock()
			return
		}
	}
}

func (l *load) count(status string) {
	l.mu.Lock()
	l.statuses[status]++
	l.mu.Unlock()
}

// sent returns the uploads offered so far (some maybe still pending).
func (l *load) sent() []*upload {
	n := int(l.offered.Load())
	var out []*upload
	for _, u := range l.uploads[:n] {
		if u != nil {
			out = append(out, u)
		}
	}
	return out
}
