package ingest

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/flamestream/flamestream/internal/pgdb"
)

// agentCounter is what the agent book needs besides Metadata: the batched write of known agents' uploads.
// A Metadata without it (the unit tests' fakes) records every upload synchronously.
type agentCounter interface {
	AddAgentProfiles(ctx context.Context, batch []pgdb.AgentProfiles) ([]pgdb.AgentProfiles, error)
}

// Defaults of the agent book.
const (
	// defaultAgentFlushInterval is how often the counters of known agents are written: the Agents page's
	// last_seen and profile counts lag by at most this much.
	defaultAgentFlushInterval = 2 * time.Second
	// agentVerifyAfter is how long a row written by RecordProfile is trusted as it is: after it the next
	// upload of the agent writes its record again (another ingest replica may have written other values).
	agentVerifyAfter = 10 * time.Minute
	// maxBookAgents bounds the agents remembered; the agents beyond it are recorded synchronously.
	maxBookAgents = 100_000
	// agentFlushTimeout bounds one flush.
	agentFlushTimeout = 10 * time.Second
)

// agentBook spares PostgreSQL one UPDATE per upload. The first upload of an agent (no gpid, or a gpid
// unknown to the book), and any upload whose record differs from what was written last (a new hostname,
// version, containers…), goes through RecordProfile as before: a new agent gets its gpid synchronously
// and a changed record is written before the agent is answered. The uploads of an agent whose record is
// unchanged only add to a counter, and the counters go to PostgreSQL in one statement per flush interval
// (AddAgentProfiles), and once more when the server stops.
//
// What a crash loses: the counters of the last interval at most (the agents' profile counts run short by
// those uploads, their last_seen and last_profile_at lag by up to an interval). Never profile data: the
// upload is in the bucket and the stream before the agent hears ok, whatever happens to the counters.
// A flush that fails keeps its counters for the next one; a flush that timed out after PostgreSQL applied
// it may count its uploads twice (as an agent's retry of a 503 always did).
//
// Coalescing is on only while Run runs (ingest.Server.Run): before and after it every upload is recorded
// synchronously, so a server nobody runs (tests) and a server draining its last requests stay exact.
type agentBook struct {
	meta    Metadata
	counter agentCounter
	log     *slog.Logger

	mu      sync.Mutex
	running bool
	agents  map[bookKey]*bookEntry
	max     int
}

type bookKey struct {
	service string
	gpid    int64
}

type bookEntry struct {
	agent    pgdb.Agent // as RecordProfile last wrote it (times and counts aside)
	verified time.Time  // when RecordProfile wrote it
	pending  int64      // uploads not yet written
	last     time.Time  // the latest of their times
}

func newAgentBook(meta Metadata, log *slog.Logger) *agentBook {
	b := &agentBook{meta: meta, log: log, agents: map[bookKey]*bookEntry{}, max: maxBookAgents}
	b.counter, _ = meta.(agentCounter)
	return b
}

// sameAgent tells whether two records of an agent write the same columns.
func sameAgent(a, b pgdb.Agent) bool {
	return a.Service == b.Service && a.Hostname == b.Hostname && a.AgentVersion == b.AgentVersion &&
		a.InstanceType == b.InstanceType && a.CloudProvider == b.CloudProvider &&
		string(a.RunArguments) == string(b.RunArguments) && slices.Equal(a.Containers, b.Containers) &&
		slices.Equal(a.K8sObjects, b.K8sObjects)
}

// record records an upload of agent a at at and returns the agent's gpid.
func (b *agentBook) record(ctx context.Context, gpid int64, a pgdb.Agent, at time.Time) (int64, error) {
	now := time.Now()
	if gpid > 0 {
		b.mu.Lock()
		if e := b.agents[bookKey{a.Service, gpid}]; b.running && e != nil && now.Sub(e.verified) < agentVerifyAfter && sameAgent(e.agent, a) {
			e.pending++
			if at.After(e.last) {
				e.last = at
			}
			b.mu.Unlock()
			return gpid, nil
		}
		b.mu.Unlock()
	}
	got, err := b.meta.RecordProfile(ctx, gpid, a, at)
	if err != nil {
		return 0, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.running {
		return got, nil
	}
	k := bookKey{a.Service, got}
	if e := b.agents[k]; e != nil {
		e.agent, e.verified = a, now
	} else if len(b.agents) < b.max {
		b.agents[k] = &bookEntry{agent: a, verified: now}
	}
	return got, nil
}

// run flushes every interval until ctx ends, then stops coalescing and flushes what is left.
func (b *agentBook) run(ctx context.Context, interval time.Duration) {
	if b.counter == nil {
		return
	}
	b.mu.Lock()
	b.running = true
	b.mu.Unlock()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			b.flush(ctx)
		case <-ctx.Done():
			// From now on uploads (the requests the HTTP server drains) are recorded synchronously.
			b.mu.Lock()
			b.running = false
			b.mu.Unlock()
			b.flush(context.WithoutCancel(ctx))
			return
		}
	}
}

// flush writes the pending counters in one statement and forgets the agents not to be trusted any more.
func (b *agentBook) flush(ctx context.Context) {
	now := time.Now()
	var batch []pgdb.AgentProfiles
	b.mu.Lock()
	for k, e := range b.agents {
		if e.pending > 0 {
			batch = append(batch, pgdb.AgentProfiles{GPID: k.gpid, Service: k.service, Last: e.last, Count: e.pending})
			e.pending = 0
		} else if now.Sub(e.verified) >= agentVerifyAfter || !b.running {
			delete(b.agents, k)
		}
	}
	b.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	fctx, cancel := context.WithTimeout(ctx, agentFlushTimeout)
	defer cancel()
	missing, err := b.counter.AddAgentProfiles(fctx, batch)
	if err != nil {
		b.log.Warn("agent counters not written; kept for the next flush", "agents", len(batch), "err", err)
		b.mu.Lock()
		for _, p := range batch {
			k := bookKey{p.Service, p.GPID}
			e := b.agents[k]
			if e == nil {
				if len(b.agents) >= b.max {
					continue
				}
				e = &bookEntry{} // zero verified: the agent's next upload writes its record again
				b.agents[k] = e
			}
			e.pending += p.Count
			if p.Last.After(e.last) {
				e.last = p.Last
			}
		}
		b.mu.Unlock()
		return
	}
	if len(missing) > 0 {
		// The rows are gone (deleted meanwhile): the agents' next uploads go through RecordProfile, which
		// gives them new gpids.
		b.log.Warn("agent rows gone; their next uploads get new gpids", "agents", len(missing))
		b.mu.Lock()
		for _, p := range missing {
			delete(b.agents, bookKey{p.Service, p.GPID})
		}
		b.mu.Unlock()
	}
}
