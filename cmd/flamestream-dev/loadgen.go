package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flamestream/flamestream/cmd/internal/cli"
	"github.com/flamestream/flamestream/internal/demo"
)

type loadgenOptions struct {
	url, token, service, jsonOut *string
	agents, workers, stacks      *int
	lines, pool                  *int
	rate                         *float64
	duration                     *time.Duration
	seed                         *uint64
}

// loadgenFlags declares the loadgen command's flags next to the configuration flags.
func loadgenFlags(fs *flag.FlagSet) *loadgenOptions {
	return &loadgenOptions{
		url:      fs.String("url", "http://127.0.0.1:8080", "ingest base URL"),
		token:    fs.String("token", "", "agent token (required)"),
		service:  fs.String("service", "loadgen", "service name"),
		agents:   fs.Int("agents", 1000, "agents (hosts) to emulate; each sends successive minutes of profiles"),
		rate:     fs.Float64("rate", 500, "profiles per second offered, across all agents"),
		duration: fs.Duration("duration", 30*time.Second, "how long to offer load"),
		workers:  fs.Int("workers", 128, "concurrent HTTP requests at most"),
		stacks:   fs.Int("stacks", 5000, "distinct stacks of the service"),
		lines:    fs.Int("lines", 60, "stack lines per profile (the real agent sample has 74)"),
		pool:     fs.Int("pool", 64, "distinct stack-line sets drawn once and reused"),
		seed:     fs.Uint64("seed", 1, "random seed (the same seed sends the same profiles)"),
		jsonOut:  fs.String("json", "", "also write the final report as JSON to this file (- for stdout)"),
	}
}

// loadReport is the result of a loadgen run.
type loadReport struct {
	Service          string         `json:"service"`
	Agents           int            `json:"agents"`
	Workers          int            `json:"workers"`
	DurationSeconds  float64        `json:"duration_seconds"`
	TargetRate       float64        `json:"target_rate"`
	Offered          int64          `json:"offered"`
	Sent             int64          `json:"sent"`
	Accepted         int64          `json:"accepted"`
	Missed           int64          `json:"missed"`
	OfferedPerSecond float64        `json:"offered_per_second"`
	AcceptedPerSec   float64        `json:"accepted_per_second"`
	AcceptedMBPerSec float64        `json:"accepted_mb_per_second"`
	PlainMBPerSec    float64        `json:"decompressed_mb_per_second"`
	MeanBodyBytes    float64        `json:"mean_body_bytes"`
	LatencyMS        map[string]any `json:"ack_latency_ms"`
	Errors           map[string]int `json:"errors"`
}

type loadResult struct {
	code    int // 0: transport error
	latency time.Duration
	bytes   int
}

// runLoadgen offers profiles at a fixed rate (an open loop: a slow server does not slow the offer down)
// from many emulated agents, and reports what was accepted and how fast the acks came.
func runLoadgen(ctx context.Context, o *loadgenOptions, out, progress io.Writer) error {
	if *o.token == "" {
		return cli.Usagef("-token is required")
	}
	if *o.agents < 1 || *o.rate <= 0 || *o.workers < 1 || *o.duration <= 0 {
		return cli.Usagef("-agents, -rate, -workers and -duration must be positive")
	}
	fleet := demo.NewFleet(*o.seed, *o.service, demo.Shape{Stacks: *o.stacks, Lines: *o.lines, MinDepth: 20, MaxDepth: 60})
	lf := demo.NewLoadFleet(*o.seed, fleet, *o.agents, *o.pool)
	tr := &http.Transport{MaxIdleConns: *o.workers, MaxIdleConnsPerHost: *o.workers,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	client := &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	base := *o.url + "/api/v2/profiles?"

	gpids := make([]atomic.Int64, *o.agents)
	sent := make([]atomic.Int64, *o.agents) // uploads so far per agent: its next minute
	// Minutes count back from now, so every run of the same seed sends the same profiles of the past.
	now := time.Now().UTC().Truncate(time.Minute)

	jobs := make(chan int64, *o.workers)
	results := make(chan loadResult, 4096)
	var inflight sync.WaitGroup
	for range *o.workers {
		inflight.Go(func() {
			for i := range jobs {
				a := int(i % int64(*o.agents))
				k := sent[a].Add(1)
				start := now.Add(-time.Duration(k) * time.Minute)
				gp := ""
				if g := gpids[a].Load(); g > 0 {
					gp = strconv.FormatInt(g, 10)
				}
				body := lf.Body(a, int(i%int64(*o.pool)), start, gp)
				res := loadResult{bytes: len(body)}
				q := url.Values{"key": {*o.token}, "service": {*o.service}, "hostname": {lf.Agents[a].Host},
					"timestamp": {time.Now().UTC().Format(time.RFC3339)}, "version": {"1.35.0"}}
				req, _ := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, base+q.Encode(), bytes.NewReader(body))
				req.Header.Set("Content-Encoding", "gzip")
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("GPROFILER-API-KEY", *o.token)
				req.Header.Set("GPROFILER-SERVICE-NAME", *o.service)
				t0 := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					res.code = resp.StatusCode
					if resp.StatusCode == http.StatusOK {
						var r struct {
							GPID int64 `json:"gpid"`
						}
						if json.Unmarshal(b, &r) == nil && r.GPID > 0 {
							gpids[a].Store(r.GPID)
						}
					}
				}
				res.latency = time.Since(t0)
				results <- res
			}
		})
	}

	// Collect results and print a progress line each second.
	var (
		latencies           []time.Duration
		accepted, nSent     int64
		acceptedBytes       int64
		errs                = map[string]int{}
		offered, missed     atomic.Int64
		secAcc, secN, secOf int64
		secLat              []time.Duration
	)
	collected := make(chan struct{})
	t0 := time.Now()
	go func() {
		defer close(collected)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case r, ok := <-results:
				if !ok {
					return
				}
				nSent++
				secN++
				if r.code == http.StatusOK {
					accepted++
					secAcc++
					acceptedBytes += int64(r.bytes)
					latencies = append(latencies, r.latency)
					secLat = append(secLat, r.latency)
				} else {
					key := strconv.Itoa(r.code)
					if r.code == 0 {
						key = "transport"
					}
					errs[key]++
				}
			case <-tick.C:
				of := offered.Load()
				slices.Sort(secLat)
				fmt.Fprintf(progress, "loadgen %4.0fs  offered %5d/s  done %5d/s  accepted %5d/s  p50 %6.1f ms  p99 %6.1f ms  errors %v  missed %d\n",
					time.Since(t0).Seconds(), of-secOf, secN, secAcc, ms(pct(secLat, 0.5)), ms(pct(secLat, 0.99)), errs, missed.Load())
				secOf, secN, secAcc, secLat = of, 0, 0, secLat[:0]
			}
		}
	}()

	// The offer: request i is due at t0 + i/rate. A request that finds every worker busy is missed and
	// counted, not queued, so the offer stays what was asked.
	interval := time.Duration(float64(time.Second) / *o.rate)
	end := t0.Add(*o.duration)
	var i int64
offer:
	for {
		due := t0.Add(time.Duration(i) * interval)
		if !due.Before(end) {
			break
		}
		if d := time.Until(due); d > 0 {
			select {
			case <-ctx.Done():
				break offer
			case <-time.After(d):
			}
		}
		offered.Add(1)
		select {
		case jobs <- i:
		default:
			missed.Add(1)
		}
		i++
	}
	elapsed := time.Since(t0).Seconds()
	close(jobs)
	inflight.Wait()
	close(results)
	<-collected

	slices.Sort(latencies)
	rep := loadReport{Service: *o.service, Agents: *o.agents, Workers: *o.workers, DurationSeconds: elapsed,
		TargetRate: *o.rate, Offered: offered.Load(), Sent: nSent, Accepted: accepted, Missed: missed.Load(),
		OfferedPerSecond: float64(offered.Load()) / elapsed, AcceptedPerSec: float64(accepted) / elapsed,
		AcceptedMBPerSec: float64(acceptedBytes) / elapsed / 1e6,
		PlainMBPerSec:    float64(accepted) * float64(lf.PlainBytes) / elapsed / 1e6,
		LatencyMS: map[string]any{"p50": ms(pct(latencies, 0.5)), "p95": ms(pct(latencies, 0.95)),
			"p99": ms(pct(latencies, 0.99)), "max": ms(pct(latencies, 1))},
		Errors: errs}
	if accepted > 0 {
		rep.MeanBodyBytes = float64(acceptedBytes) / float64(accepted)
	}
	fmt.Fprintf(out, "loadgen: %d agents, %d workers, %.1fs, target %.0f/s\n", rep.Agents, rep.Workers, elapsed, rep.TargetRate)
	fmt.Fprintf(out, "  offered   %8.1f profiles/s (%d, %d missed: every worker busy)\n", rep.OfferedPerSecond, rep.Offered, rep.Missed)
	fmt.Fprintf(out, "  accepted  %8.1f profiles/s (%d of %d sent)\n", rep.AcceptedPerSec, rep.Accepted, rep.Sent)
	fmt.Fprintf(out, "  bytes     %8.2f MB/s compressed, %.2f MB/s decompressed (mean body %.0f B)\n", rep.AcceptedMBPerSec, rep.PlainMBPerSec, rep.MeanBodyBytes)
	fmt.Fprintf(out, "  ack       p50 %.1f ms  p95 %.1f ms  p99 %.1f ms  max %.1f ms\n", rep.LatencyMS["p50"], rep.LatencyMS["p95"], rep.LatencyMS["p99"], rep.LatencyMS["max"])
	fmt.Fprintf(out, "  errors    %v\n", rep.Errors)
	if *o.jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		b = append(b, '\n')
		if *o.jsonOut == "-" {
			_, err := out.Write(b)
			return err
		}
		if err := os.WriteFile(*o.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
