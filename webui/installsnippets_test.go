package webui

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// envRef is a "${NAME}" reference in a systemd command line.
var envRef = regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*\}`)

// systemdArgs returns the agent's arguments as systemd runs the unit of the systemd snippet: the
// environment file's values (double-quoted, \-escaped) substituted for the "${VAR}" words of ExecStart.
func systemdArgs(t *testing.T, snippet string) []string {
	t.Helper()
	env := map[string]string{}
	var exec string
	inEnv := false
	for _, line := range strings.Split(snippet, "\n") {
		switch {
		case strings.HasPrefix(line, "sudo tee /etc/gprofiler.env "):
			inEnv = true
		case inEnv && line == "END":
			inEnv = false
		case inEnv:
			k, v, ok := strings.Cut(line, "=")
			if !ok || len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
				t.Fatalf("environment file line %q is not KEY=\"value\"", line)
			}
			var out strings.Builder
			for i := 1; i < len(v)-1; i++ {
				c := v[i]
				if c == '\\' && i+1 < len(v)-1 && strings.IndexByte("\\\"`$", v[i+1]) >= 0 {
					// systemd's double quotes: a backslash makes the next \ " ` or $ literal, and only those.
					i++
					c = v[i]
				} else if c == '"' {
					t.Fatalf("unescaped quote in %q", line)
				}
				out.WriteByte(c)
			}
			env[k] = out.String()
		case strings.HasPrefix(line, "ExecStart="):
			exec = strings.TrimPrefix(line, "ExecStart=")
		}
	}
	if exec == "" || len(env) == 0 {
		t.Fatalf("no ExecStart or no environment file in the systemd snippet:\n%s", snippet)
	}
	if strings.ContainsAny(exec, `'"\`) {
		t.Fatalf("ExecStart quotes or escapes (systemd's rules differ from the shell's): %s", exec)
	}
	var args []string
	for _, w := range strings.Fields(exec)[1:] {
		// Every ${NAME} is replaced by its value, once (systemd does not expand the values again).
		w = envRef.ReplaceAllStringFunc(w, func(ref string) string {
			v, ok := env[ref[2:len(ref)-1]]
			if !ok {
				t.Fatalf("ExecStart names %s, which the environment file does not set", ref)
			}
			return v
		})
		args = append(args, w)
	}
	return args
}

// ecsArgs returns the command of the gProfiler container of the ECS task definition.
func ecsArgs(t *testing.T, snippet string) []string {
	t.Helper()
	var td struct {
		PidMode              string `json:"pidMode"`
		ContainerDefinitions []struct {
			Image      string   `json:"image"`
			Privileged bool     `json:"privileged"`
			Command    []string `json:"command"`
		} `json:"containerDefinitions"`
	}
	if err := json.Unmarshal([]byte(snippet), &td); err != nil {
		t.Fatalf("the ECS task definition is not JSON (%v):\n%s", err, snippet)
	}
	for _, c := range td.ContainerDefinitions {
		if strings.Contains(c.Image, "gprofiler") {
			if !c.Privileged || td.PidMode != "host" {
				t.Errorf("the ECS container must be privileged in the host's PID namespace: %s", snippet)
			}
			return c.Command
		}
	}
	t.Fatalf("the task definition runs no gProfiler container:\n%s", snippet)
	return nil
}

// nodeScriptArgs returns the arguments of the line of a node script that starts the agent.
func nodeScriptArgs(t *testing.T, snippet string) []string {
	t.Helper()
	for _, line := range strings.Split(snippet, "\n") {
		w := shellWords(line)
		for i, x := range w {
			if x == "/tmp/gprofiler" && i+1 < len(w) && w[i+1] == "-cu" {
				return w[i+1:]
			}
		}
	}
	t.Fatalf("the node script never starts /tmp/gprofiler -cu:\n%s", snippet)
	return nil
}

// TestSnippetParsersReadWhatTheAgentGets keeps the parsers of the install test honest on hand-written
// snippets, a wrong one included.
func TestSnippetParsersReadWhatTheAgentGets(t *testing.T) {
	unit := "sudo tee /etc/gprofiler.env > /dev/null <<'END'\nGPROFILER_TOKEN=\"a \\\"b\\\" \\\\c\"\nEND\n" +
		"ExecStart=/usr/local/bin/gprofiler -cu --token=${GPROFILER_TOKEN} --server-host https://x"
	if got := systemdArgs(t, unit); len(got) != 4 || got[1] != `--token=a "b" \c` {
		t.Errorf("systemd: %q", got)
	}
	ecs := `{"pidMode":"host","containerDefinitions":[{"image":"granulate/gprofiler:latest","privileged":true,"command":["-cu","--token=t"]}]}`
	if got := ecsArgs(t, ecs); len(got) != 2 || got[1] != "--token=t" {
		t.Errorf("ecs: %q", got)
	}
	script := "#!/bin/bash\nsudo setsid nohup /tmp/gprofiler -cu '--token=it'\\''s' --server-host h > /tmp/log 2>&1 &"
	if got := nodeScriptArgs(t, script); agentFlag(got, "--token") != "it's" || agentFlag(got, "--server-host") != "h" {
		t.Errorf("node script: %q", got)
	}
}
