package main

import (
	"bytes"
	"flag"
	"strings"
	"testing"

	"github.com/flamestream/flamestream/cmd/internal/cli"
)

func TestPipelineShapeFlagsOverrideThePreset(t *testing.T) {
	fs := flag.NewFlagSet("pipeline", flag.ContinueOnError)
	o := pipelineFlags(fs)
	if err := fs.Parse([]string{"-shape", "2000", "-lines", "500", "-depth-max", "30"}); err != nil {
		t.Fatal(err)
	}
	sh, err := pipelineShape(o)
	if err != nil {
		t.Fatal(err)
	}
	if sh.Lines != 500 || sh.MaxDepth != 30 || sh.Stacks != 5000 || sh.MinDepth != 4 || sh.Name != "500" {
		t.Fatalf("shape %+v: want the 2000 preset with 500 lines and depth up to 30", sh)
	}
	for _, args := range [][]string{{"-shape", "70"}, {"-stacks", "-1"}} {
		fs := flag.NewFlagSet("pipeline", flag.ContinueOnError)
		o := pipelineFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		if _, err := pipelineShape(o); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

// TestBenchPipelineIsThePipelineCommand checks the alias and the role command's argument check without
// starting any server: both are errors of the command line.
func TestBenchPipelineIsThePipelineCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"bench", "pipeline", "-shape", "nope", "-server", "/bin/true"}, &out, &errb); code != cli.ExitUsage ||
		!strings.Contains(errb.String(), `unknown -shape "nope"`) {
		t.Fatalf("bench pipeline -shape nope: exit %d, %s", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"role", "janitorx"}, &out, &errb); code != cli.ExitUsage || !strings.Contains(errb.String(), `unknown role "janitorx"`) {
		t.Fatalf("role janitorx: exit %d, %s", code, errb.String())
	}
}
