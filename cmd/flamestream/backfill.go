package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/cespare/xxhash/v2"

	"github.com/flamestream/flamestream/internal/app"
	"github.com/flamestream/flamestream/internal/config"
	"github.com/flamestream/flamestream/internal/demo"
)

type backfillOptions struct {
	days, hosts, stacks, perProfile, noise *int
	interval                               *time.Duration
	service, end                           *string
	seed                                   *uint64
}

// backfillFlags declares the backfill command's own flags next to the configuration flags.
func backfillFlags(fs *flag.FlagSet) *backfillOptions {
	return &backfillOptions{
		days:       fs.Int("days", 30, "days of history to write, ending at -end"),
		hosts:      fs.Int("hosts", 500, "hosts of the main service"),
		stacks:     fs.Int("stacks", 5000, "distinct stacks of the main service"),
		perProfile: fs.Int("per-profile", 100, "stack draws per profile (the distinct stacks of one profile are fewer)"),
		noise:      fs.Int("noise", 3, "noise services (20 hosts, 500 stacks each) written alongside"),
		interval:   fs.Duration("interval", 30*time.Minute, "one profile per host per interval"),
		service:    fs.String("service", "bench", "name of the main service"),
		end:        fs.String("end", "", "end of the history (RFC 3339; default: now, truncated to the interval)"),
		seed:       fs.Uint64("seed", 1, "random seed: the same flags write the same rows"),
	}
}

// bfService is one generated service: its stack population and hosts.
type bfService struct {
	name   string
	hosts  int
	stacks []string
	hashes []uint64
	seed   uint64
}

// newBFService draws the stack texts of a service with the demo generator (the same shape as the demo
// agent's profiles) and keeps the distinct ones.
func newBFService(name string, seed uint64, hosts, stacks int) *bfService {
	fleet := demo.NewFleet(seed, name, demo.Shape{Stacks: stacks, Lines: stacks * 4, MinDepth: 15, MaxDepth: 45})
	s := &bfService{name: name, hosts: hosts, seed: seed}
	seen := map[uint64]bool{}
	sc := bufio.NewScanner(bytes.NewReader(fleet.Lines(rand.New(rand.NewPCG(seed, 1)))))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		_, rest, _ := strings.Cut(line, ";") // container
		stack := rest[:strings.LastIndexByte(rest, ' ')]
		h := xxhash.Sum64String(stack)
		if !seen[h] {
			seen[h] = true
			s.stacks = append(s.stacks, stack)
			s.hashes = append(s.hashes, h)
		}
	}
	return s
}

var (
	bfContainers = []string{"api-7f9c8d6b5-x2x9k", "worker-5d8f7c9b4-q8w7e", ""}
	bfK8s        = []string{"deployment/api", "deployment/worker", ""}
	bfInstances  = []string{"m5.xlarge", "c5.2xlarge", "r5.large"}
)

// bfBlock is the columns of one INSERT into samples, reused across blocks.
type bfBlock struct {
	ts                             proto.ColDateTime
	service, host, cont, inst, k8s proto.ColStr
	profile, stack                 proto.ColUInt64
	count                          proto.ColUInt32
	scratch                        map[int]uint32
	touched                        []int
}

func (b *bfBlock) reset() {
	b.ts.Data = b.ts.Data[:0]
	for _, c := range []*proto.ColStr{&b.service, &b.host, &b.cont, &b.inst, &b.k8s} {
		c.Reset()
	}
	b.profile, b.stack, b.count = b.profile[:0], b.stack[:0], b.count[:0]
}

func (b *bfBlock) input() proto.Input {
	return proto.Input{{Name: "ts", Data: &b.ts}, {Name: "service", Data: &b.service}, {Name: "host", Data: &b.host},
		{Name: "container", Data: &b.cont}, {Name: "instance_type", Data: &b.inst}, {Name: "k8s_object", Data: &b.k8s},
		{Name: "profile", Data: &b.profile}, {Name: "stack", Data: &b.stack}, {Name: "count", Data: &b.count}}
}

// addProfile appends the rows of one profile: draws stacks skewed towards the hot ones (a few hot stacks, a
// long tail, like a real CPU profile), summed per stack as the indexer does.
func (b *bfBlock) addProfile(s *bfService, host int, step int64, ts time.Time, draws int) {
	rng := rand.New(rand.NewPCG(s.seed^uint64(host)<<20, uint64(step)))
	if b.scratch == nil {
		b.scratch = map[int]uint32{}
	}
	b.touched = b.touched[:0]
	for range draws {
		u := rng.Float64()
		idx := int(u * u * float64(len(s.stacks)))
		if _, ok := b.scratch[idx]; !ok {
			b.touched = append(b.touched, idx)
		}
		b.scratch[idx] += uint32(1 + int(float64(rng.IntN(50))*(1-u)))
	}
	hostName := fmt.Sprintf("%s-host-%04d", s.name, host)
	pid := xxhash.Sum64String(fmt.Sprintf("%s/%d/%d", s.name, host, ts.Unix()))
	for _, idx := range b.touched {
		c := idx % len(bfContainers)
		b.ts.Append(ts)
		b.service.Append(s.name)
		b.host.Append(hostName)
		b.cont.Append(bfContainers[c])
		b.inst.Append(bfInstances[host%len(bfInstances)])
		b.k8s.Append(bfK8s[c])
		b.profile.Append(pid)
		b.stack.Append(s.hashes[idx])
		b.count.Append(b.scratch[idx])
		delete(b.scratch, idx)
	}
}

// runBackfill writes a deterministic history of profiles straight into ClickHouse (samples and stacks,
// with native columnar inserts; the materialized views fill the rollups), for benchmarks.
func runBackfill(ctx context.Context, cfg config.Config, log *slog.Logger, o *backfillOptions, out io.Writer) error {
	if *o.days <= 0 || *o.hosts <= 0 || *o.interval < time.Minute || *o.perProfile <= 0 || *o.stacks <= 0 {
		return errors.New("-days, -hosts, -stacks, -per-profile must be positive and -interval at least 1m")
	}
	end := time.Now().UTC().Truncate(*o.interval)
	if *o.end != "" {
		t, err := time.Parse(time.RFC3339, *o.end)
		if err != nil {
			return fmt.Errorf("-end: %w", err)
		}
		end = t.UTC()
	}
	start := end.Add(-time.Duration(*o.days) * 24 * time.Hour)
	ch, err := app.OpenCH(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer ch.Close()

	services := []*bfService{newBFService(*o.service, *o.seed, *o.hosts, *o.stacks)}
	for i := range *o.noise {
		services = append(services, newBFService(fmt.Sprintf("noise-%d", i+1), *o.seed+uint64(i)+1, 20, 500))
	}
	for _, s := range services {
		var hash proto.ColUInt64
		var frames proto.ColStr
		for i, t := range s.stacks {
			hash.Append(s.hashes[i])
			frames.Append(t)
		}
		if err := ch.Insert(ctx, "stacks", proto.Input{{Name: "hash", Data: &hash}, {Name: "frames", Data: &frames}}); err != nil {
			return fmt.Errorf("backfill stacks of %s: %w", s.name, err)
		}
	}

	began := time.Now()
	var b bfBlock
	var rows, profiles int
	flush := func() error {
		if b.ts.Rows() == 0 {
			return nil
		}
		n := b.ts.Rows()
		if err := ch.Insert(ctx, "samples", b.input()); err != nil {
			return fmt.Errorf("backfill samples: %w", err)
		}
		rows += n
		b.reset()
		return nil
	}
	const blockRows = 1 << 20
	day := start.Truncate(24 * time.Hour)
	for t := start; t.Before(end); t = t.Add(*o.interval) {
		// One block never spans two days: a day is one partition, so each INSERT writes one part.
		if d := t.Truncate(24 * time.Hour); !d.Equal(day) {
			if err := flush(); err != nil {
				return err
			}
			day = d
			log.Info("backfill day written", "day", d.AddDate(0, 0, -1).Format(time.DateOnly), "rows", rows, "took", time.Since(began).Round(time.Millisecond))
		}
		step := t.Unix() / int64(*o.interval/time.Second)
		for _, s := range services {
			for h := range s.hosts {
				// Each host reports at its own offset inside the interval, at an odd second.
				ts := t.Add(time.Duration(h*7919%int(*o.interval/time.Second)) * time.Second)
				if !ts.Before(end) || ts.Truncate(24*time.Hour) != day {
					ts = t
				}
				b.addProfile(s, h, step, ts, *o.perProfile)
				profiles++
			}
		}
		if b.ts.Rows() >= blockRows {
			if err := flush(); err != nil {
				return err
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if err := flush(); err != nil {
		return err
	}
	took := time.Since(began)
	fmt.Fprintf(out, "backfill: database %s, service %s: %d hosts, %d noise services, %d days to %s, one profile per host per %v, %d draws per profile\n",
		ch.Database, *o.service, *o.hosts, *o.noise, *o.days, end.Format(time.RFC3339), *o.interval, *o.perProfile)
	fmt.Fprintf(out, "backfill: %d profiles, %d sample rows in %v (%.0f rows/s)\n", profiles, rows, took.Round(time.Millisecond), float64(rows)/took.Seconds())
	return nil
}
