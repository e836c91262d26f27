package webui

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"go.yaml.in/yaml/v3"
)

// shellWords splits a POSIX shell line into words, honouring the single quotes the install page uses.
func shellWords(s string) []string {
	var out []string
	var cur strings.Builder
	inWord, quoted := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quoted && c == '\'':
			quoted = false
		case quoted:
			cur.WriteByte(c)
		case c == '\'':
			quoted, inWord = true, true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}

// agentFlag returns the value of an agent flag in args ("--flag value" or "--flag=value"; "" when absent).
func agentFlag(args []string, names ...string) string {
	val := ""
	for i, a := range args {
		name, v, inline := strings.Cut(a, "=")
		if !inline && i+1 < len(args) {
			v = args[i+1]
		}
		for _, n := range names {
			if name == n {
				val = v
			}
		}
	}
	return val
}

// checkAgentArgs fails unless the agent uploads to origin and sends its own logs and metrics (with the
// token) to the same origin: --api-server defaults to the vendor's SaaS.
func checkAgentArgs(args []string, origin string) error {
	host := agentFlag(args, "--server-host")
	api := agentFlag(args, "--api-server", "--glogger-server")
	switch {
	case host != origin:
		return fmt.Errorf("--server-host %q, want %q", host, origin)
	case api == "":
		return errors.New("no --api-server: the agent would send its logs and token to the vendor's SaaS")
	case strings.TrimRight(api, "/") != strings.TrimRight(host, "/"):
		return fmt.Errorf("--api-server %q is not the --server-host origin %q", api, host)
	}
	return nil
}

// daemonSetArgs returns the args of the gProfiler container of the DaemonSet in a manifest.
func daemonSetArgs(t *testing.T, manifest string) []string {
	t.Helper()
	dec := yaml.NewDecoder(strings.NewReader(manifest))
	for {
		var doc struct {
			Kind string `yaml:"kind"`
			Spec struct {
				Template struct {
					Spec struct {
						Containers []struct {
							Image string   `yaml:"image"`
							Args  []string `yaml:"args"`
						} `yaml:"containers"`
					} `yaml:"spec"`
				} `yaml:"template"`
			} `yaml:"spec"`
		}
		if err := dec.Decode(&doc); err != nil {
			t.Fatalf("the manifest has no DaemonSet (%v):\n%s", err, manifest)
		}
		if doc.Kind != "DaemonSet" {
			continue
		}
		for _, c := range doc.Spec.Template.Spec.Containers {
			if strings.Contains(c.Image, "gprofiler") {
				return c.Args
			}
		}
		t.Fatalf("the DaemonSet runs no gProfiler container:\n%s", manifest)
	}
}

// TestAgentArgsCheckCatchesLeaks keeps the checker of the generated commands honest.
func TestAgentArgsCheckCatchesLeaks(t *testing.T) {
	const o = "https://fs.example:8443"
	for _, tc := range []struct {
		cmd string
		ok  bool
	}{
		{"gprofiler -cu --server-host " + o + " --api-server " + o, true},
		{"gprofiler -cu --server-host=" + o + " --glogger-server=" + o + "/", true},
		{"gprofiler -cu --server-host " + o, false},
		{"gprofiler -cu --server-host " + o + " --api-server https://api.gprofiler.io", false},
		{"gprofiler -cu --server-host https://other --api-server https://other", false},
	} {
		if err := checkAgentArgs(shellWords(tc.cmd), o); (err == nil) != tc.ok {
			t.Errorf("%q: err %v, want ok=%v", tc.cmd, err, tc.ok)
		}
	}
	if w := shellWords(`a --service-name='it'\''s x' b\ c`); len(w) != 3 || w[1] != "--service-name=it's x" || w[2] != "b c" {
		t.Errorf("shellWords: %q", w)
	}
}

// TestBrowserInstallCommandsSendLogsToFlamestream reads the docker command, the DaemonSet, the systemd
// install, the ECS task definition and the Databricks and EMR node scripts the install page generates, for
// several tokens, service names and the --no-verify switch, and checks that every one sets --api-server to
// the page's origin as well as --server-host, and passes the token and the service name intact.
func TestBrowserInstallCommandsSendLogsToFlamestream(t *testing.T) {
	b := newBrowser(t)
	b.do("open install", chromedp.Navigate(b.base+"/admin/install"))
	b.login()
	b.wait("install page", `window.__flamestream.view === 'install' && document.querySelector('[data-snippet=docker]').textContent !== ''`)
	origin := eval[string](b, `location.origin`)
	checked := 0
	for _, tc := range []struct{ token, service string }{
		{"", ""},
		{"fs_tok_1_abcdef", "checkout"},
		{"tok with 'quotes'", "svc name; rm -rf /"},
		{`tok$HOME"x\y`, "svc`id`"},
	} {
		for _, noVerify := range []bool{false, true} {
			b.do("fill install form", chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
				const set = (sel, v) => { const i = document.querySelector(sel); i.value = v; i.dispatchEvent(new Event('input')); };
				set('input[aria-label=token]', %q);
				set('input[aria-label="service name"]', %q);
				const nv = document.querySelector('label.check input[type=checkbox]');
				if (nv.checked !== %v) nv.click();
			})()`, tc.token, tc.service, noVerify)))
			snippet := func(name string) string {
				return eval[string](b, fmt.Sprintf(`document.querySelector('[data-snippet=%s]').textContent`, name))
			}
			docker := snippet("docker")
			all := map[string][]string{"docker": shellWords(docker), "DaemonSet": daemonSetArgs(t, snippet("k8s")),
				"systemd": systemdArgs(t, snippet("systemd")), "ECS": ecsArgs(t, snippet("ecs")),
				"Databricks": nodeScriptArgs(t, snippet("databricks")), "EMR": nodeScriptArgs(t, snippet("emr"))}
			for what, args := range all {
				if err := checkAgentArgs(args, origin); err != nil {
					t.Errorf("%s (token %q, service %q, no-verify %v): %v\n%q", what, tc.token, tc.service, noVerify, err, args)
				}
				if got := slices.Contains(args, "--no-verify"); got != noVerify {
					t.Errorf("%s: --no-verify present %v, want %v", what, got, noVerify)
				}
				// The DaemonSet takes the token from its Secret ($(GPROFILER_TOKEN)).
				if what != "DaemonSet" && tc.token != "" && agentFlag(args, "--token") != tc.token {
					t.Errorf("%s: --token %q, want %q", what, agentFlag(args, "--token"), tc.token)
				}
				if tc.service != "" && agentFlag(args, "--service-name") != tc.service {
					t.Errorf("%s: --service-name %q, want %q", what, agentFlag(args, "--service-name"), tc.service)
				}
				checked++
			}
			if want := tc.service; want != "" && agentFlag(shellWords(docker), "--service-name") != want {
				t.Errorf("docker --service-name %q, want %q", agentFlag(shellWords(docker), "--service-name"), want)
			}
		}
	}
	if checked != 48 {
		t.Fatalf("checked %d generated commands, want 48 (6 targets × 4 forms × --no-verify on and off)", checked)
	}
	b.shot("install-api-server")
}
