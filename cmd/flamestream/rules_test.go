package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRulesCheckRunsTheFilesTests(t *testing.T) {
	var out bytes.Buffer
	if err := runRules([]string{"check", "../../deploy/frame-rules.yaml"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "every test passes") {
		t.Errorf("output %q", out.String())
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("rules:\n  - regexp: \"[0-9]+\"\n    replace: N\n    tests:\n      - input: a1\n        output: a1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := runRules([]string{"check", bad}, &out)
	if err == nil || !strings.Contains(err.Error(), `"a1" gives "aN", want "a1"`) {
		t.Errorf("a failing test: err = %v", err)
	}
	if err := runRules([]string{"check"}, &out); err == nil {
		t.Error("no file: no usage error")
	}
}
