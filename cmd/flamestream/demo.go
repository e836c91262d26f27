package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/flamestream/flamestream/cmd/internal/cli"
	"github.com/flamestream/flamestream/internal/demo"
)

// agentClient posts profiles the way the gProfiler agent does: token and service in headers and in the
// query string, gzip JSON body.
type agentClient struct {
	base, token, service string
	http                 *http.Client
}

func (c *agentClient) post(ctx context.Context, host string, body []byte) (int64, error) {
	q := url.Values{"key": {c.token}, "service": {c.service}, "hostname": {host},
		"timestamp": {time.Now().UTC().Format(time.RFC3339)}, "version": {"1.35.0"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/api/v2/profiles?"+q.Encode(), bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("GPROFILER-API-KEY", c.token)
	req.Header.Set("GPROFILER-SERVICE-NAME", c.service)
	resp, err := c.http.Do(req)
	if err != nil {
		// The URL carries the token (the agent sends it in the query string too): keep it out of messages.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, fmt.Errorf("post %s/api/v2/profiles: %w", c.base, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b))
	}
	var out struct {
		GPID int64 `json:"gpid"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return 0, fmt.Errorf("reply %q: %w", b, err)
	}
	return out.GPID, nil
}

type demoOptions struct {
	url, token, service *string
	hosts, minutes      *int
	seed                *uint64
}

// demoFlags declares the demo command's own flags next to the configuration flags.
func demoFlags(fs *flag.FlagSet) *demoOptions {
	return &demoOptions{
		url:     fs.String("url", "http://127.0.0.1:8080", "ingest base URL"),
		token:   fs.String("token", "", "agent token (required)"),
		service: fs.String("service", "demo", "service name"),
		hosts:   fs.Int("hosts", 3, "hosts to emulate"),
		minutes: fs.Int("minutes", 60, "minutes of history to send, one profile per host per minute"),
		seed:    fs.Uint64("seed", 1, "random seed"),
	}
}

// runDemo sends an hour of profiles from a few hosts: the first host replays the real agent profile,
// the others a synthetic service.
func runDemo(ctx context.Context, o *demoOptions, out io.Writer) error {
	addr, token, service, hosts, minutes, seed := o.url, o.token, o.service, o.hosts, o.minutes, o.seed
	if *token == "" {
		return cli.Usagef("-token is required")
	}
	c := &agentClient{base: *addr, token: *token, service: *service, http: &http.Client{Timeout: 2 * time.Minute}}
	rng := rand.New(rand.NewPCG(*seed, 7))
	fleet := demo.NewFleet(*seed, *service, demo.Shape{Stacks: 2000, Lines: 300, MinDepth: 20, MaxDepth: 60})
	now := time.Now().UTC().Truncate(time.Minute)
	gpids := make([]string, *hosts)
	sent := 0
	for m := *minutes; m >= 1; m-- {
		start := now.Add(-time.Duration(m) * time.Minute)
		for h := 0; h < *hosts; h++ {
			host := fmt.Sprintf("demo-host-%d", h+1)
			var text []byte
			if h == 0 {
				text = demo.Restamp(host, 0.5+rng.Float64())
			} else {
				itype := []string{"m5.xlarge", "c5.2xlarge"}[h%2]
				text = fleet.Profile(rng, host, itype)
			}
			gpid, err := c.post(ctx, host, demo.NewUpload(text, host, start, gpids[h]).Gzip())
			if err != nil {
				return fmt.Errorf("upload %d: %w", sent+1, err)
			}
			gpids[h] = strconv.FormatInt(gpid, 10)
			sent++
		}
	}
	fmt.Fprintf(out, "sent %d demo profiles for service %q (%d hosts, %d minutes)\n", sent, *service, *hosts, *minutes)
	return nil
}
