package chcompat

import (
	"os"
	"strings"
	"testing"

	"github.com/flamestream/flamestream/internal/chcompat/libchdb"
)

// engine is the one chDB session of this test binary (chDB allows one per process).
var engine *Engine

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "chcompat-")
	if err != nil {
		panic(err)
	}
	if engine, err = Open(dir); err != nil {
		panic(err)
	}
	code := m.Run()
	engine.Close()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func TestLibraryFoundAndCurrent(t *testing.T) {
	if libchdb.Path == "" || os.Getenv(libchdb.Env) != libchdb.Path {
		t.Fatalf("library path %q, %s=%q", libchdb.Path, libchdb.Env, os.Getenv(libchdb.Env))
	}
	v, err := engine.Query("SELECT version()", "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v, "26.") {
		t.Fatalf("chDB runs ClickHouse %q, want 26.x", v)
	}
	t.Logf("chDB: ClickHouse %s from %s", strings.TrimSpace(v), libchdb.Path)
}
