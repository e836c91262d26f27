package pgdb

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// Agent is one agent process, identified by the gpid the server gave it.
type Agent struct {
	GPID          int64           `json:"gpid"`
	Service       string          `json:"service"`
	Hostname      string          `json:"hostname"`
	AgentVersion  string          `json:"agent_version"`
	InstanceType  string          `json:"instance_type"`
	CloudProvider string          `json:"cloud_provider"`
	RunArguments  json.RawMessage `json:"run_arguments,omitempty"`
	Containers    []string        `json:"containers"`
	K8sObjects    []string        `json:"k8s_objects"`
	FirstSeen     time.Time       `json:"first_seen"`
	LastSeen      time.Time       `json:"last_seen"`
	LastProfileAt *time.Time      `json:"last_profile_at,omitempty"`
	Profiles      int64           `json:"profiles"`
}

// RecordProfile remembers the agent behind an upload and returns its gpid: the gpid the agent sent when it
// is known for this service, a newly allocated one otherwise (first upload, or an unknown or foreign gpid).
func (d *DB) RecordProfile(ctx context.Context, gpid int64, a Agent, at time.Time) (int64, error) {
	if a.Containers == nil {
		a.Containers = []string{}
	}
	if a.K8sObjects == nil {
		a.K8sObjects = []string{}
	}
	if gpid > 0 {
		var got int64
		err := d.async.QueryRow(ctx, `UPDATE agents SET hostname = $3, agent_version = $4, instance_type = $5,
			cloud_provider = $6, run_arguments = $7, containers = $8, k8s_objects = $9,
			last_seen = greatest(last_seen, $10), last_profile_at = greatest(last_profile_at, $10),
			profiles = profiles + 1
			WHERE gpid = $1 AND service = $2 RETURNING gpid`,
			gpid, a.Service, a.Hostname, a.AgentVersion, a.InstanceType, a.CloudProvider, nullJSON(a.RunArguments),
			a.Containers, a.K8sObjects, at).Scan(&got)
		if err == nil {
			return got, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return 0, fmt.Errorf("record agent %d: %w", gpid, err)
		}
	}
	err := d.pool.QueryRow(ctx, `INSERT INTO agents (service, hostname, agent_version, instance_type,
		cloud_provider, run_arguments, containers, k8s_objects, first_seen, last_seen, last_profile_at, profiles)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $9, 1) RETURNING gpid`,
		a.Service, a.Hostname, a.AgentVersion, a.InstanceType, a.CloudProvider, nullJSON(a.RunArguments),
		a.Containers, a.K8sObjects, at).Scan(&gpid)
	if err != nil {
		return 0, fmt.Errorf("allocate gpid: %w", err)
	}
	return gpid, nil
}

func nullJSON(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// ListAgents returns the agents of a service (all services when service is empty), most recent first.
func (d *DB) ListAgents(ctx context.Context, service string) ([]Agent, error) {
	rows, err := d.pool.Query(ctx, `SELECT gpid, service, hostname, agent_version, instance_type, cloud_provider,
		run_arguments, containers, k8s_objects, first_seen, last_seen, last_profile_at, profiles
		FROM agents WHERE $1 = '' OR service = $1 ORDER BY last_seen DESC LIMIT 10000`, service)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Agent, error) {
		var a Agent
		var args []byte
		err := r.Scan(&a.GPID, &a.Service, &a.Hostname, &a.AgentVersion, &a.InstanceType, &a.CloudProvider,
			&args, &a.Containers, &a.K8sObjects, &a.FirstSeen, &a.LastSeen, &a.LastProfileAt, &a.Profiles)
		a.RunArguments = args
		return a, err
	})
}

// AgentProfiles is a number of uploads of one known agent, for AddAgentProfiles.
type AgentProfiles struct {
	GPID    int64
	Service string
	// Last is the time of the latest of the uploads.
	Last  time.Time
	Count int64
}

// maxAgentProfilesPerStatement bounds one statement of AddAgentProfiles (its arrays are sent as
// parameters, so the SQL text stays the same; the bound keeps one statement's locks and time small).
const maxAgentProfilesPerStatement = 2000

// AddAgentProfiles records uploads of agents that already have a row, in one UPDATE per
// maxAgentProfilesPerStatement agents instead of one per upload: profiles grows by each Count, last_seen
// and last_profile_at move to each Last (never back). The other columns are left alone (RecordProfile
// writes them). Entries of the same agent are summed. It returns the agents it found no row for (deleted
// meanwhile, or of another service), whose counts were not recorded.
func (d *DB) AddAgentProfiles(ctx context.Context, batch []AgentProfiles) (missing []AgentProfiles, err error) {
	type key struct {
		gpid    int64
		service string
	}
	merged := make(map[key]*AgentProfiles, len(batch))
	list := make([]*AgentProfiles, 0, len(batch))
	for _, b := range batch {
		k := key{b.GPID, b.Service}
		if m, ok := merged[k]; ok {
			m.Count += b.Count
			if b.Last.After(m.Last) {
				m.Last = b.Last
			}
			continue
		}
		c := b
		merged[k] = &c
		list = append(list, &c)
	}
	// One order for every writer: two ingest replicas flushing the same agents lock their rows in the same
	// order rather than deadlock.
	slices.SortFunc(list, func(a, b *AgentProfiles) int { return cmp.Compare(a.GPID, b.GPID) })
	// One transaction: an error leaves every count unrecorded, so the caller may add them again.
	err = pgx.BeginFunc(ctx, d.async, func(tx pgx.Tx) error {
		missing = missing[:0]
		for rest := list; len(rest) > 0; {
			part := rest[:min(len(rest), maxAgentProfilesPerStatement)]
			rest = rest[len(part):]
			gpids, services := make([]int64, len(part)), make([]string, len(part))
			lasts, counts := make([]time.Time, len(part)), make([]int64, len(part))
			for i, p := range part {
				gpids[i], services[i], lasts[i], counts[i] = p.GPID, p.Service, p.Last, p.Count
			}
			rows, err := tx.Query(ctx, `UPDATE agents a SET last_seen = greatest(a.last_seen, u.at),
				last_profile_at = greatest(a.last_profile_at, u.at), profiles = a.profiles + u.n
				FROM (SELECT * FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::bigint[]) AS t(gpid, service, at, n)
					ORDER BY gpid) u
				WHERE a.gpid = u.gpid AND a.service = u.service RETURNING a.gpid, a.service`, gpids, services, lasts, counts)
			if err != nil {
				return err
			}
			seen := make(map[key]bool, len(part))
			var k key
			if _, err := pgx.ForEachRow(rows, []any{&k.gpid, &k.service}, func() error { seen[k] = true; return nil }); err != nil {
				return err
			}
			for _, p := range part {
				if !seen[key{p.GPID, p.Service}] {
					missing = append(missing, *p)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("add agent profiles: %w", err)
	}
	return missing, nil
}
