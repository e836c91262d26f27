package chcompat

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// Recorder keeps the statements a chdb.DB sent, in order, each tagged with the phase it was sent in. Its
// Observe method is a chdb.Options.Observe hook. It keeps at most MaxStatements (the harness's runs send a
// few hundred).
type Recorder struct {
	mu    sync.Mutex
	phase string
	stmts []Statement
}

// MaxStatements bounds a recording.
const MaxStatements = 100_000

// Statement is one recorded statement.
type Statement struct {
	Phase, SQL string
}

// Phase tags the statements recorded from now on.
func (r *Recorder) Phase(p string) {
	r.mu.Lock()
	r.phase = p
	r.mu.Unlock()
}

// Observe records one statement.
func (r *Recorder) Observe(sql string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.stmts) < MaxStatements {
		r.stmts = append(r.stmts, Statement{r.phase, sql})
	}
}

// Of returns the statements recorded in phase, in order.
func (r *Recorder) Of(phase string) []Statement {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Statement
	for _, s := range r.stmts {
		if s.Phase == phase {
			out = append(out, s)
		}
	}
	return out
}

// Kind sorts a statement by how the harness replays it.
type Kind int

// The kinds of statements.
const (
	// Read is a SELECT on Flamestream's tables: its answer must be the same on both servers.
	Read Kind = iota
	// SystemRead is a SELECT on system tables (parts, mutations, tables): their rows name parts and
	// mutations, which each version numbers and merges its own way, so it must only run.
	SystemRead
	// Insert carries its rows in a native block the recording does not hold: the harness copies rows.
	Insert
	// Change is DDL or a mutation (CREATE, ALTER ... DELETE, DROP PARTITION): it must run on both.
	Change
)

// KindOf tells how sql is replayed.
func KindOf(sql string) Kind {
	s := strings.TrimSpace(sql)
	up := strings.ToUpper(s[:min(len(s), 16)])
	switch {
	case strings.HasPrefix(up, "INSERT"):
		return Insert
	case strings.HasPrefix(up, "SELECT") || strings.HasPrefix(up, "WITH"):
		if strings.Contains(s, " system.") {
			return SystemRead
		}
		return Read
	}
	return Change
}

// Old is a ClickHouse server spoken to over its HTTP interface, where every answer comes as text in the
// same format as chDB's, so that the two compare line by line.
type Old struct {
	URL, User, Password string
	Client              *http.Client
}

// Query runs sql and returns its TabSeparated answer (sql must not name a format).
func (o Old) Query(sql string) (string, error) {
	if KindOf(sql) == Read || KindOf(sql) == SystemRead {
		sql += " FORMAT TabSeparated"
	}
	return o.post(sql)
}

// Exec runs a statement with inline data or none.
func (o Old) Exec(sql string) error {
	_, err := o.post(sql)
	return err
}

func (o Old) post(sql string) (string, error) {
	q := url.Values{"user": {o.User}}
	if o.Password != "" {
		q.Set("password", o.Password)
	}
	c := o.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Post(o.URL+"/?"+q.Encode(), "text/plain", strings.NewReader(sql))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return string(b), nil
}
