// Command gen rebuilds webui/dist from webui/src. Run it from the webui
// directory, normally through `go generate ./webui`.
package main

import (
	"flag"
	"log"

	"github.com/flamestream/flamestream/webui/internal/bundle"
)

func main() {
	src := flag.String("src", "src", "TypeScript/CSS source directory")
	out := flag.String("out", "dist", "output directory (embedded by package webui)")
	flag.Parse()
	if err := bundle.Build(*src, *out); err != nil {
		log.Fatal(err)
	}
}
