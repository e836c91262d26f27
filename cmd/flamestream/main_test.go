package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/flamestream/flamestream/cmd/flamestream/roles"
	"github.com/flamestream/flamestream/internal/config"
)

// TestREADMEConfigTableIsCurrent keeps the README's configuration table equal to what the binary reads.
func TestREADMEConfigTableIsCurrent(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	a := strings.Index(s, "<!-- config-table -->\n")
	b := strings.Index(s, "<!-- /config-table -->")
	if a < 0 || b < a {
		t.Fatal("README.md lacks the <!-- config-table --> markers")
	}
	var want bytes.Buffer
	if err := config.WriteMarkdown(&want, roles.AllVars()); err != nil {
		t.Fatal(err)
	}
	if os.Getenv("UPDATE_README") != "" {
		s = s[:a+len("<!-- config-table -->\n")] + want.String() + s[b:]
		if err := os.WriteFile("../../README.md", []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got := s[a+len("<!-- config-table -->\n") : b]; got != want.String() {
		t.Errorf("README config table is stale; regenerate it: go tool task docs\ngot:\n%s\nwant:\n%s", got, want.String())
	}
}

func TestRunRejectsUnknownCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"frobnicate"}, &out, &errb); code != 2 {
		t.Fatalf("exit code %d, want 2", code)
	}
	if !strings.Contains(errb.String(), `unknown command "frobnicate"`) {
		t.Errorf("stderr %q does not name the command", errb.String())
	}
}

func TestRunConfigPrintsEveryVariable(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"config"}, &out, &errb); code != 0 {
		t.Fatalf("exit code %d: %s", code, errb.String())
	}
	for _, v := range roles.AllVars() {
		if !strings.Contains(out.String(), "`"+v.Env+"`") {
			t.Errorf("config output lacks %s", v.Env)
		}
	}
}
