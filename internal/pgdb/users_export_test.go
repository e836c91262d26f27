package pgdb

import (
	"context"
	"time"
)

// LoginWith is Login with the password comparer given, for tests outside the package.
func (d *DB) LoginWith(ctx context.Context, username, password string, compare func(hash, password []byte) error) (string, Session, error) {
	return d.login(ctx, username, password, compare)
}

// RecordNewAgentsTogether allocates the gpids of agents as one burst of first uploads does: all queued
// before the inserter commits, then committed as it commits them (maxNewAgentsPerCommit to a transaction).
func (d *DB) RecordNewAgentsTogether(agents []Agent, at time.Time) ([]int64, []error) {
	ins := &agentInserter{running: true}
	for _, a := range agents {
		if a.Containers == nil {
			a.Containers = []string{}
		}
		if a.K8sObjects == nil {
			a.K8sObjects = []string{}
		}
		ins.queue = append(ins.queue, &newAgent{a: a, at: at, done: make(chan struct{})})
	}
	queued := ins.queue
	ins.flush(d.pool)
	gpids, errs := make([]int64, len(queued)), make([]error, len(queued))
	for i, n := range queued {
		<-n.done
		gpids[i], errs[i] = n.gpid, n.err
	}
	return gpids, errs
}
