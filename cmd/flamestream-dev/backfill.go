package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/cespare/xxhash/v2"

	"github.com/flamestream/flamestream/cmd/internal/cli"
	"github.com/flamestream/flamestream/internal/config"
	"github.com/flamestream/flamestream/internal/demo"
	"github.com/flamestream/flamestream/internal/schema"
)

type backfillOptions struct {
	days, hosts, stacks, perProfile, noise *int
	interval                               *time.Duration
	service, end, shape                    *string
	seed                                   *uint64
	// The tree shape's own flags.
	services, stacksPerProfile, distinct, hot, depthMin, depthMax, vocabulary *int
}

// backfillFlags declares the backfill command's own flags next to the configuration flags.
func backfillFlags(fs *flag.FlagSet) *backfillOptions {
	return &backfillOptions{
		days:       fs.Int("days", 30, "days of history to write, ending at -end"),
		hosts:      fs.Int("hosts", 500, "hosts of the main service (of each with -services)"),
		stacks:     fs.Int("stacks", 5000, "demo shape: distinct stacks of the main service"),
		perProfile: fs.Int("per-profile", 100, "demo shape: stack draws per profile (the distinct stacks of one profile are fewer)"),
		noise:      fs.Int("noise", 3, "noise services (20 hosts, 500 stacks each, demo shape) written alongside"),
		interval:   fs.Duration("interval", 30*time.Minute, "one profile per host per interval"),
		service:    fs.String("service", "bench", "name of the main service (with -services N > 1: the prefix of NAME-01…NAME-N)"),
		end:        fs.String("end", "", "end of the history (RFC 3339; default: now, truncated to the interval)"),
		seed:       fs.Uint64("seed", 1, "random seed: the same flags write the same rows"),
		shape: fs.String("shape", "demo", "demo: a few thousand stacks drawn like the demo agent's; "+
			"tree: a real fleet's variety (stacks are paths of a random call tree over -vocabulary frame names, Zipf-skewed counts)"),
		services:         fs.Int("services", 1, "tree shape: main services written, each with its own call tree"),
		stacksPerProfile: fs.Int("stacks-per-profile", 5000, "tree shape: distinct stacks in one profile"),
		distinct:         fs.Int("distinct-per-day", 1_000_000, "tree shape: stacks of each service; a day's profiles hold min(this, hot + profiles×(stacks-per-profile − hot))"),
		hot:              fs.Int("hot", -1, "tree shape: stacks in every profile, with Zipf counts (default: a fifth of -stacks-per-profile)"),
		depthMin:         fs.Int("depth-min", 20, "tree shape: fewest frames of a stack"),
		depthMax:         fs.Int("depth-max", 60, "tree shape: most frames of a stack"),
		vocabulary:       fs.Int("vocabulary", 40_000, "tree shape: distinct frame names (Java, Python, native and kernel)"),
	}
}

// bfSource is one generated service as backfill writes it: its stacks, and the stacks and counts of the
// profile of a host at a step (the interval's number since the epoch).
type bfSource interface {
	serviceName() string
	hostCount() int
	stackCount() int
	stackHash(i int) uint64
	appendStack(b []byte, i int) []byte
	profileStacks(host int, step int64, add func(stack int, count uint32))
}

// bfService is one generated service of the demo shape: its stack population and hosts.
type bfService struct {
	name   string
	hosts  int
	draws  int
	stacks []string
	hashes []uint64
	seed   uint64
	// scratch and touched sum the draws of one profile per stack; reused from profile to profile.
	scratch map[int]uint32
	touched []int
}

// newBFService draws the stack texts of a service with the demo generator (the same shape as the demo
// agent's profiles) and keeps the distinct ones.
func newBFService(name string, seed uint64, hosts, stacks, draws int) *bfService {
	fleet := demo.NewFleet(seed, name, demo.Shape{Stacks: stacks, Lines: stacks * 4, MinDepth: 15, MaxDepth: 45})
	s := &bfService{name: name, hosts: hosts, draws: draws, seed: seed, scratch: map[int]uint32{}}
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

func (s *bfService) serviceName() string                { return s.name }
func (s *bfService) hostCount() int                     { return s.hosts }
func (s *bfService) stackCount() int                    { return len(s.stacks) }
func (s *bfService) stackHash(i int) uint64             { return s.hashes[i] }
func (s *bfService) appendStack(b []byte, i int) []byte { return append(b, s.stacks[i]...) }

// profileStacks draws the profile's stacks skewed towards the hot ones (a few hot stacks, a long tail, like
// a real CPU profile), summed per stack as the indexer does.
func (s *bfService) profileStacks(host int, step int64, add func(stack int, count uint32)) {
	rng := rand.New(rand.NewPCG(s.seed^uint64(host)<<20, uint64(step)))
	s.touched = s.touched[:0]
	for range s.draws {
		u := rng.Float64()
		idx := int(u * u * float64(len(s.stacks)))
		if _, ok := s.scratch[idx]; !ok {
			s.touched = append(s.touched, idx)
		}
		s.scratch[idx] += uint32(1 + int(float64(rng.IntN(50))*(1-u)))
	}
	for _, idx := range s.touched {
		add(idx, s.scratch[idx])
		delete(s.scratch, idx)
	}
}

func (s *treeService) serviceName() string                { return s.name }
func (s *treeService) hostCount() int                     { return s.hosts }
func (s *treeService) stackCount() int                    { return len(s.stacks) }
func (s *treeService) stackHash(i int) uint64             { return s.hashes[i] }
func (s *treeService) appendStack(b []byte, i int) []byte { return s.appendText(b, s.stacks[i]) }

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
}

func (b *bfBlock) reset() {
	b.ts.Data = b.ts.Data[:0]
	for _, c := range []*proto.ColStr{&b.service, &b.host, &b.cont, &b.inst, &b.k8s} {
		c.Reset()
	}
	b.profile, b.stack, b.count = b.profile[:0], b.stack[:0], b.count[:0]
}

// input is the block as the indexer's writer inserts it: the same columns of the same table.
func (b *bfBlock) input() proto.Input {
	return proto.Input{{Name: "ts", Data: &b.ts}, {Name: "service", Data: &b.service}, {Name: "host", Data: &b.host},
		{Name: "container", Data: &b.cont}, {Name: "instance_type", Data: &b.inst}, {Name: "k8s_object", Data: &b.k8s},
		{Name: "profile", Data: &b.profile}, {Name: "stack", Data: &b.stack}, {Name: "count", Data: &b.count}}
}

// addProfile appends the rows of one profile, one per stack.
func (b *bfBlock) addProfile(s bfSource, host int, step int64, ts time.Time) {
	name := s.serviceName()
	hostName := fmt.Sprintf("%s-host-%04d", name, host)
	pid := xxhash.Sum64String(fmt.Sprintf("%s/%d/%d", name, host, ts.Unix()))
	s.profileStacks(host, step, func(idx int, count uint32) {
		c := idx % len(bfContainers)
		b.ts.Append(ts)
		b.service.Append(name)
		b.host.Append(hostName)
		b.cont.Append(bfContainers[c])
		b.inst.Append(bfInstances[host%len(bfInstances)])
		b.k8s.Append(bfK8s[c])
		b.profile.Append(pid)
		b.stack.Append(s.stackHash(idx))
		b.count.Append(count)
	})
}

// bfStackBlock is how many stack texts go into one INSERT into stacks (about 25 MB of the tree shape's).
const bfStackBlock = 16384

// backfillSources makes the services the flags describe: the main ones, then the noise ones.
func backfillSources(o *backfillOptions, interval time.Duration, log *slog.Logger, out io.Writer) ([]bfSource, error) {
	var sources []bfSource
	switch *o.shape {
	case "demo":
		if *o.perProfile <= 0 || *o.stacks <= 0 {
			return nil, cli.Usagef("-stacks and -per-profile must be positive")
		}
		sources = append(sources, newBFService(*o.service, *o.seed, *o.hosts, *o.stacks, *o.perProfile))
	case "tree":
		shape := treeShape{Distinct: *o.distinct, PerProfile: *o.stacksPerProfile, Hot: *o.hot,
			DepthMin: *o.depthMin, DepthMax: *o.depthMax}
		if shape.Hot < 0 {
			shape.Hot = shape.PerProfile / 5
		}
		if err := shape.check(); err != nil {
			return nil, err
		}
		if *o.services <= 0 || *o.services > 1000 {
			return nil, cli.Usagef("-services must be within 1…1000")
		}
		t0 := time.Now()
		vocab := newVocabulary(*o.seed, *o.vocabulary)
		for i := range *o.services {
			name := *o.service
			if *o.services > 1 {
				name = fmt.Sprintf("%s-%02d", *o.service, i+1)
			}
			// Services differ in their main runtime: Java, Python and native in turn.
			s := newTreeService(name, *o.seed+uint64(i)*7919, *o.hosts, shape, vocab, []int{kindJava, kindPython, kindNative}[i%3])
			sources = append(sources, s)
			if i == 0 {
				fmt.Fprintf(out, "backfill: tree shape: %d stacks per service over %d frame names, depth %d…%d, %d per profile (%d hot), "+
					"%d distinct per day; %d tree nodes; grown in %v\n", shape.Distinct, len(vocab.names), shape.DepthMin, shape.DepthMax,
					shape.PerProfile, shape.Hot, s.distinctPerDay(interval), len(s.parent), time.Since(t0).Round(time.Millisecond))
			}
		}
		log.Info("backfill services grown", "services", *o.services, "took", time.Since(t0).Round(time.Millisecond))
	default:
		return nil, cli.Usagef("-shape %q: want demo or tree", *o.shape)
	}
	for i := range *o.noise {
		sources = append(sources, newBFService(fmt.Sprintf("noise-%d", i+1), *o.seed+uint64(i)+1, 20, 500, *o.perProfile))
	}
	return sources, nil
}

// runBackfill writes a deterministic history of profiles straight into ClickHouse, as the indexer's writer
// does: stack texts into stacks and sample rows into samples with native columnar inserts (the SQL text is
// the same whatever the data; the materialized views fill the rollups). It also marks the services seen in
// PostgreSQL at the end of the history, as ingest would, so the UI lists them and a query server's warm-up
// learns them.
// runBackfill writes the rows; prog shows how far it got (stacks, then days of samples) and ends with a
// summary line.
func runBackfill(ctx context.Context, cfg config.Config, log *slog.Logger, o *backfillOptions, out io.Writer, prog *cli.Progress) error {
	if *o.days <= 0 || *o.hosts <= 0 || *o.interval < time.Minute || *o.noise < 0 {
		return cli.Usagef("-days and -hosts must be positive, -noise not negative and -interval at least 1m")
	}
	end := time.Now().UTC().Truncate(*o.interval)
	if *o.end != "" {
		t, err := time.Parse(time.RFC3339, *o.end)
		if err != nil {
			return cli.Usagef("-end: %v", err)
		}
		end = t.UTC()
	}
	start := end.Add(-time.Duration(*o.days) * 24 * time.Hour)
	services, err := backfillSources(o, *o.interval, log, out)
	if err != nil {
		return err
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

	defer prog.Clear() // an error is printed on a clean line
	began := time.Now()
	allStacks := 0
	for _, s := range services {
		allStacks += s.stackCount()
	}
	var hash proto.ColUInt64
	var frames, service proto.ColStr
	var buf []byte
	stacks := 0
	for _, s := range services {
		for i := 0; i < s.stackCount(); i += bfStackBlock {
			hash.Reset()
			frames.Reset()
			service.Reset()
			for j := i; j < min(i+bfStackBlock, s.stackCount()); j++ {
				buf = s.appendStack(buf[:0], j)
				service.Append(s.serviceName())
				hash.Append(s.stackHash(j))
				frames.AppendBytes(buf)
			}
			if err := ch.Insert(ctx, schema.Stacks, proto.Input{{Name: "service", Data: &service}, {Name: "hash", Data: &hash}, {Name: "frames", Data: &frames}}); err != nil {
				return fmt.Errorf("backfill stacks of %s: %w", s.serviceName(), err)
			}
			stacks += hash.Rows()
			prog.Update("backfill: stacks %d/%d (%.0f%%) %s, %v", stacks, allStacks, 100*float64(stacks)/float64(max(allStacks, 1)),
				s.serviceName(), time.Since(began).Round(time.Second))
		}
		if _, err := pg.TouchService(ctx, s.serviceName(), end); err != nil {
			return fmt.Errorf("backfill: register service %s: %w", s.serviceName(), err)
		}
	}
	stacksTook := time.Since(began)
	log.Info("backfill stacks written", "stacks", stacks, "took", stacksTook.Round(time.Millisecond))

	began = time.Now()
	var b bfBlock
	var rows, profiles int
	flush := func() error {
		if b.ts.Rows() == 0 {
			return nil
		}
		n := b.ts.Rows()
		if err := ch.Insert(ctx, schema.Samples, b.input()); err != nil {
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
			for h := range s.hostCount() {
				// Each host reports at its own offset inside the interval, at an odd second.
				ts := t.Add(time.Duration(h*7919%int(*o.interval/time.Second)) * time.Second)
				if !ts.Before(end) || ts.Truncate(24*time.Hour) != day {
					ts = t
				}
				b.addProfile(s, h, step, ts)
				profiles++
				if b.ts.Rows() >= blockRows {
					if err := flush(); err != nil {
						return err
					}
				}
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		el := time.Since(began)
		prog.Update("backfill: samples up to %s (%.0f%% of the range), %d profiles, %d rows, %.0f rows/s, %v",
			t.Format(time.DateTime), 100*float64(t.Sub(start))/float64(end.Sub(start)), profiles, rows+b.ts.Rows(),
			float64(rows)/max(el.Seconds(), 0.001), el.Round(time.Second))
	}
	if err := flush(); err != nil {
		return err
	}
	took := time.Since(began)
	prog.Done("backfill: done, %d stacks, %d profiles, %d sample rows in %v", stacks, profiles, rows, (stacksTook + took).Round(time.Millisecond))
	if *o.shape == "tree" {
		fmt.Fprintf(out, "backfill: database %s, %d tree services (%s…), %d hosts each, %d noise services, %d days to %s, one profile per host per %v\n",
			ch.Database, *o.services, services[0].serviceName(), *o.hosts, *o.noise, *o.days, end.Format(time.RFC3339), *o.interval)
	} else {
		fmt.Fprintf(out, "backfill: database %s, service %s: %d hosts, %d noise services, %d days to %s, one profile per host per %v, %d draws per profile\n",
			ch.Database, *o.service, *o.hosts, *o.noise, *o.days, end.Format(time.RFC3339), *o.interval, *o.perProfile)
	}
	fmt.Fprintf(out, "backfill: %d stacks in %v; %d profiles, %d sample rows in %v (%.0f rows/s)\n", stacks, stacksTook.Round(time.Millisecond),
		profiles, rows, took.Round(time.Millisecond), float64(rows)/took.Seconds())
	return nil
}
