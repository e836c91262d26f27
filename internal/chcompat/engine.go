// Package chcompat proves Flamestream's ClickHouse schema and SQL on current ClickHouse: ClickHouse 26.5
// runs in-process through chDB (libchdb.so, see deploy/local/install.sh), and its tests replay every
// statement Flamestream's own code sends to the local 18.16 server there, comparing the answers.
//
// The package is for tests only: importing it loads a 560 MB library.
package chcompat

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"

	chdbpurego "github.com/chdb-io/chdb-go/chdb-purego"

	"github.com/flamestream/flamestream/internal/chcompat/libchdb"
)

// Engine is one chDB session: a ClickHouse server in this process, its data in a directory of its own.
// chDB allows one session per process at a time, so tests share one Engine (see Open).
type Engine struct {
	mu   sync.Mutex // chDB runs one query at a time per session
	conn chdbpurego.ChdbConn
}

// Open starts a chDB session keeping its data in dir.
func Open(dir string) (*Engine, error) {
	if libchdb.Path == "" {
		return nil, errors.New("libchdb.so not found: run `bash deploy/local/install.sh`")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	conn, err := chdbpurego.NewConnection(1, []string{"--path=" + dir})
	if err != nil {
		return nil, fmt.Errorf("chdb session in %s: %w", dir, err)
	}
	return &Engine{conn: conn}, nil
}

// Close ends the session.
func (e *Engine) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.conn.Close()
}

// Query runs one statement and returns its result in format (TabSeparated when empty).
func (e *Engine) Query(sql, format string) (string, error) {
	if format == "" {
		format = "TabSeparated"
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	res, err := e.conn.Query(sql, format)
	if err != nil {
		return "", err
	}
	if res == nil {
		return "", nil
	}
	defer res.Free()
	if err := res.Error(); err != nil {
		return "", err
	}
	return string(res.Buf()), nil
}

// Exec runs a statement whose result does not matter.
func (e *Engine) Exec(sql string) error {
	_, err := e.Query(sql, "")
	return err
}

// SortedLines splits a TabSeparated result into its rows, sorted: a query without ORDER BY may answer
// its rows in any order on either server.
func SortedLines(tsv string) []string {
	tsv = strings.TrimSuffix(tsv, "\n")
	if tsv == "" {
		return nil
	}
	lines := strings.Split(tsv, "\n")
	sort.Strings(lines)
	return lines
}
