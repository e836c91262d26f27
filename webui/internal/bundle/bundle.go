// Package bundle builds the web studio's browser assets from webui/src into a
// dist directory with esbuild's Go API. It is used by `go generate` (through
// the gen command) and by the test that checks the committed dist/ is current;
// it is not linked into the server binary.
package bundle

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/evanw/esbuild/pkg/api"
	"github.com/flamestream/flamestream/webui/internal/assetver"
)

// Files lists the paths, relative to the dist directory, that Build writes.
var Files = []string{"index.html", "assets/app.js", "assets/app.css", "assets/favicon.svg"}

// tsconfigRaw holds the only tsconfig options that change esbuild's output.
// webui/tsconfig.json is for editors and type checking and must agree.
const tsconfigRaw = `{"compilerOptions": {"strict": true, "useDefineForClassFields": true, "target": "ES2020"}}`

// Build bundles srcDir/app.ts (and the CSS it imports) into outDir/assets and
// writes outDir/index.html from srcDir/index.html with the asset versions
// filled in. The output is deterministic for a given source tree.
func Build(srcDir, outDir string) error {
	srcDir, err := filepath.Abs(srcDir)
	if err != nil {
		return fmt.Errorf("resolve source dir: %w", err)
	}
	outDir, err = filepath.Abs(outDir)
	if err != nil {
		return fmt.Errorf("resolve output dir: %w", err)
	}
	res := api.Build(api.BuildOptions{
		AbsWorkingDir:     srcDir,
		EntryPoints:       []string{"app.ts"},
		Outdir:            filepath.Join(outDir, "assets"),
		Bundle:            true,
		Write:             false,
		Format:            api.FormatIIFE,
		Platform:          api.PlatformBrowser,
		Target:            api.ES2020,
		MinifyWhitespace:  true,
		MinifySyntax:      true,
		MinifyIdentifiers: true,
		LegalComments:     api.LegalCommentsNone,
		Charset:           api.CharsetUTF8,
		Sourcemap:         api.SourceMapNone,
		LogLevel:          api.LogLevelSilent,
		// Fixed here so the output never depends on which tsconfig.json files
		// happen to sit above the source directory.
		TsconfigRaw: tsconfigRaw,
	})
	if len(res.Errors) > 0 {
		msgs := api.FormatMessages(res.Errors, api.FormatMessagesOptions{Kind: api.ErrorMessage})
		return errors.New("esbuild: " + strings.Join(msgs, "\n"))
	}
	out := map[string][]byte{}
	for _, f := range res.OutputFiles {
		rel, err := filepath.Rel(outDir, f.Path)
		if err != nil {
			return fmt.Errorf("output path %s: %w", f.Path, err)
		}
		out[filepath.ToSlash(rel)] = f.Contents
	}
	js, css := out["assets/app.js"], out["assets/app.css"]
	if js == nil || css == nil {
		return fmt.Errorf("esbuild produced %d files, want assets/app.js and assets/app.css", len(out))
	}
	icon, err := os.ReadFile(filepath.Join(srcDir, "favicon.svg"))
	if err != nil {
		return fmt.Errorf("read favicon: %w", err)
	}
	out["assets/favicon.svg"] = icon
	tmpl, err := os.ReadFile(filepath.Join(srcDir, "index.html"))
	if err != nil {
		return fmt.Errorf("read index template: %w", err)
	}
	html := strings.NewReplacer(
		"{{JS_VERSION}}", assetver.Of(js),
		"{{CSS_VERSION}}", assetver.Of(css),
		"{{ICON_VERSION}}", assetver.Of(icon),
	).Replace(string(tmpl))
	out["index.html"] = []byte(html)

	for _, name := range Files {
		data, ok := out[name]
		if !ok {
			return fmt.Errorf("missing output %s", name)
		}
		p := filepath.Join(outDir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("create %s: %w", filepath.Dir(p), err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	return nil
}
