package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// agentCommand is one gProfiler agent invocation found in the repository: where it is and its words.
type agentCommand struct {
	file, where string
	args        []string
}

// agentOrigins returns the values of --server-host and --api-server (or its alias --glogger-server) in
// args, in either the "--flag value" or the "--flag=value" form ("" when absent).
func agentOrigins(args []string) (serverHost, apiServer string) {
	for i, a := range args {
		name, val, inline := strings.Cut(a, "=")
		if !inline && i+1 < len(args) {
			val = args[i+1]
		}
		switch name {
		case "--server-host":
			serverHost = val
		case "--api-server", "--glogger-server":
			apiServer = val
		}
	}
	return serverHost, apiServer
}

// checkAgentCommand fails when an agent command lets the agent's own logs (and token) go anywhere but
// the Flamestream it uploads to: --api-server must be set, to the origin of --server-host.
func checkAgentCommand(args []string) error {
	host, api := agentOrigins(args)
	norm := func(s string) string { return strings.TrimRight(strings.Trim(s, `"'`), "/") }
	switch {
	case host == "":
		return errors.New("no --server-host")
	case api == "":
		return fmt.Errorf("no --api-server: the agent would send its logs and token to the vendor's SaaS instead of %s", host)
	case norm(api) != norm(host):
		return fmt.Errorf("--api-server %s is not the --server-host origin %s", api, host)
	}
	return nil
}

// isAgentLine reports whether a shell line starts the gProfiler agent (its image or its binary) or
// passes it the upload flag.
func isAgentLine(s string) bool {
	return strings.Contains(s, "granulate/gprofiler") || strings.Contains(s, "intel/gprofiler:") ||
		strings.Contains(s, "--server-host") || strings.HasPrefix(strings.TrimSpace(s), "gprofiler ")
}

// markdownAgentCommands returns the agent commands in the fenced code blocks of a Markdown file, with
// backslash-continued lines joined.
func markdownAgentCommands(t *testing.T, path string) []agentCommand {
	t.Helper()
	var out []agentCommand
	inFence := false
	var cur strings.Builder
	start := 0
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, path)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
			cur.Reset()
			continue
		}
		if !inFence {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if cont, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(cont + " ")
			continue
		}
		cur.WriteString(line)
		cmd := cur.String()
		cur.Reset()
		if i := strings.Index(cmd, " #"); i >= 0 {
			cmd = cmd[:i] // a trailing shell comment
		}
		if isAgentLine(cmd) {
			out = append(out, agentCommand{path, fmt.Sprintf("%s:%d", path, start), strings.Fields(cmd)})
		}
	}
	return out
}

// manifestAgentCommands returns the args of every container running a gProfiler image in a YAML file.
func manifestAgentCommands(t *testing.T, path string) []agentCommand {
	t.Helper()
	var out []agentCommand
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, path)))
	for k := 0; ; k++ {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, c := range asList(dig(doc, "spec", "template", "spec", "containers")) {
			img, _ := dig(c, "image").(string)
			if !strings.Contains(img, "gprofiler") {
				continue
			}
			var args []string
			for _, a := range append(asList(dig(c, "command")), asList(dig(c, "args"))...) {
				args = append(args, fmt.Sprint(a))
			}
			out = append(out, agentCommand{path, fmt.Sprintf("%s document %d container %v", path, k+1, dig(c, "name")), args})
		}
	}
	return out
}

// TestEveryAgentCommandSendsLogsToFlamestream finds every agent command the repository documents or
// ships — the fenced shell blocks of every Markdown file and every manifest with a gProfiler container —
// and fails if one lacks --api-server pointing at the same origin as --server-host. (The commands the
// install page generates are checked by webui's TestBrowserInstallCommandsSendLogsToFlamestream.)
func TestEveryAgentCommandSendsLogsToFlamestream(t *testing.T) {
	var cmds []agentCommand
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != ".." && (strings.HasPrefix(n, ".") || n == "node_modules" || n == "dist" || n == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".md":
			cmds = append(cmds, markdownAgentCommands(t, path)...)
		case ".yaml", ".yml":
			cmds = append(cmds, manifestAgentCommands(t, path)...)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The commands a newcomer copies must be among them, or the walk is looking in the wrong place.
	seen := map[string]int{}
	for _, c := range cmds {
		seen[filepath.ToSlash(c.file)]++
		if err := checkAgentCommand(c.args); err != nil {
			t.Errorf("%s: %v\n\t%s", c.where, err, strings.Join(c.args, " "))
		}
	}
	for _, want := range []string{"../README.md", "../deploy/README.md", "../deploy/k8s/agent/gprofiler.yaml"} {
		if seen[want] == 0 {
			t.Errorf("no agent command found in %s (found %d in all: %v)", want, len(cmds), seen)
		}
	}
	t.Logf("%d agent commands checked", len(cmds))
}

// TestAgentCommandCheckCatchesLeaks keeps the checker honest: commands that leak are caught.
func TestAgentCommandCheckCatchesLeaks(t *testing.T) {
	for _, tc := range []struct {
		cmd string
		ok  bool
	}{
		{"gprofiler -cu --token=T --service-name=s --server-host https://h --api-server https://h", true},
		{"gprofiler -cu --token=T --server-host=https://h/ --glogger-server=https://h", true},
		{"gprofiler -cu --token=T --service-name=s --server-host https://h", false},
		{"gprofiler -cu --token=T --server-host https://h --api-server https://api.granulate.io", false},
		{"gprofiler -cu --token=T --api-server https://h", false},
	} {
		if err := checkAgentCommand(strings.Fields(tc.cmd)); (err == nil) != tc.ok {
			t.Errorf("%q: err %v, want ok=%v", tc.cmd, err, tc.ok)
		}
	}
	f := filepath.Join(t.TempDir(), "leak.md")
	if err := os.WriteFile(f, []byte("text\n```sh\ndocker run -d --privileged \\\n  granulate/gprofiler:latest -cu --token=<T> \\\n  --server-host http://x:8080\n```\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmds := markdownAgentCommands(t, f)
	if len(cmds) != 1 || checkAgentCommand(cmds[0].args) == nil {
		t.Errorf("a continued command without --api-server was not caught: %+v", cmds)
	}
}
