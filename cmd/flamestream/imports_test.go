package main

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// rolePackages are the packages of the roles and the web UI: only the wiring under cmd/ may import them.
var rolePackages = []string{"ingest", "indexer", "query", "webui"}

// TestNothingUnderInternalImportsARole keeps the import graph pointing down: the packages under internal/
// are shared pieces, and the roles build on them, never the reverse (the wiring that imports every role is
// cmd/flamestream/roles). It reads `go list -deps`, so an import through another package counts too; test
// files are not counted (an end-to-end test may start a whole role). A Go test rather than depguard in a
// linter: it runs with `go tool task test` on a fresh machine, with nothing more to install.
func TestNothingUnderInternalImportsARole(t *testing.T) {
	const mod = "github.com/flamestream/flamestream/"
	out, err := exec.Command("go", "list", "-e", "-json=ImportPath,Deps", "../../internal/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	n := 0
	for {
		var p struct {
			ImportPath string
			Deps       []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		n++
		for _, d := range p.Deps {
			for _, role := range rolePackages {
				if d == mod+role || strings.HasPrefix(d, mod+role+"/") {
					t.Errorf("%s imports %s (directly or through another package): only cmd/ may import a role", p.ImportPath, d)
				}
			}
		}
	}
	if n < 5 {
		t.Fatalf("go list found %d packages under internal/", n)
	}
}
