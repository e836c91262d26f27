package main

import (
	"fmt"
	"io"

	"github.com/flamestream/flamestream/cmd/internal/cli"
	"github.com/flamestream/flamestream/internal/profile"
)

// runRules checks a frame rules file the way the indexer loads it at start: every regexp compiles and
// every test passes.
func runRules(args []string, out io.Writer) error {
	if len(args) != 2 || args[0] != "check" {
		return cli.Usagef("usage: flamestream rules check FILE")
	}
	r, err := profile.LoadRules(args[1])
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: %d rules, every test passes\n", args[1], r.Len())
	return nil
}
