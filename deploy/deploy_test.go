package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"go.yaml.in/yaml/v3"

	"github.com/flamestream/flamestream/cmd/flamestream/roles"
	"github.com/flamestream/flamestream/ingest"
	"github.com/flamestream/flamestream/internal/config"
)

// flamestreamServices are the compose services that run the Flamestream image.
var flamestreamServices = []string{"migrate", "ingest", "indexer", "janitor", "query"}

// composeDefaults lists the variables the compose file may leave at their built-in default, each with the
// reason that default is right inside compose. The rule the tests enforce:
//
//   - a variable whose default or help points at the local machine (127.0.0.1, localhost) must be set in
//     every Flamestream service, to a value that does not point at loopback (in a container, 127.0.0.1 is
//     the container itself);
//   - a credential (password, secret, access key, the PostgreSQL URL) must be set, and from deploy/.env
//     (a ${...} interpolation), never written in the compose file;
//   - every other variable is set, or listed here.
//
// A new configuration variable therefore fails the test until someone decides where it goes.
var composeDefaults = map[string]string{
	"FLAMESTREAM_AGENT_LOGS_MAX_ROWS":    "a retention bound, independent of the host",
	"FLAMESTREAM_AUTH_CACHE_TTL":         "a latency/staleness trade-off, independent of the host",
	"FLAMESTREAM_BODY_CACHE_BYTES":       "memory of a cache in the NATS server; 128 MiB suits one host",
	"FLAMESTREAM_BATCH_SIZE":             "indexer tuning; the default suits one host",
	"FLAMESTREAM_BATCH_WAIT":             "indexer tuning; the default suits one host",
	"FLAMESTREAM_CONSUMER":               "the shared durable consumer; only a replay uses another",
	"FLAMESTREAM_FETCH_PARALLEL":         "indexer tuning; the default suits one host",
	"FLAMESTREAM_INGEST_YIELD_LAG":       "each role is its own container, weighted by its cgroup first, and has no CAP_SYS_NICE: the yield is off there (OPERATIONS.md, Sizing)",
	"FLAMESTREAM_FRAME_RULES":            "no frame rules unless the operator mounts a file (deploy/frame-rules.yaml is a starting set)",
	"FLAMESTREAM_TRUSTED_PROXIES":        "the compose Caddy is the peer of the query role only through the Docker network, whose address varies: an operator lists it",
	"FLAMESTREAM_JANITOR_INTERVAL":       "how often retention runs, independent of the host",
	"FLAMESTREAM_ARCHIVE_COMPACT_AFTER":  "archive compaction delay, independent of the host",
	"FLAMESTREAM_MAX_BODY_BYTES":         "agent API limit, same everywhere",
	"FLAMESTREAM_MAX_DECOMPRESSED_BYTES": "agent API limit, same everywhere",
	"FLAMESTREAM_RATE_LIMIT":             "agent API limit, same everywhere",
	"FLAMESTREAM_QUERY_TIMEOUT":          "query API bound, same everywhere",
	"FLAMESTREAM_QUERY_MAX_MEMORY":       "per-query ClickHouse limit; the default suits the compose ClickHouse",
	"FLAMESTREAM_QUERY_MAX_ROWS":         "per-query ClickHouse limit, same everywhere",
	"FLAMESTREAM_QUERY_MAX_NODES":        "flame-graph default size, same everywhere",
	"FLAMESTREAM_QUERY_TRIE_NODES":       "memory bound of the query role, same on any host",
	"FLAMESTREAM_QUERY_CACHE_MB":         "memory bound of the query role, same on any host",
	"FLAMESTREAM_S3_REGION":              "MinIO accepts the default region",
	"FLAMESTREAM_STORE_TIMEOUT":          "agent API bound, same everywhere",
	"FLAMESTREAM_STREAM_MAX_BYTES":       "no byte limit; the replay window is FLAMESTREAM_STREAM_MAX_AGE",
}

// composeOnly are the .env settings of the compose file itself, not of the binary.
var composeOnly = map[string]bool{
	"FLAMESTREAM_HOST":  true, // Caddy's site address
	"FLAMESTREAM_IMAGE": true, // the image the Flamestream services run
}

var (
	loopback   = regexp.MustCompile(`127\.0\.0\.1|localhost`)
	credential = regexp.MustCompile(`PASSWORD|SECRET|ACCESS_KEY|PG_URL`)
	// interpolation matches ${NAME}, ${NAME:-default}, ${NAME:?message} and friends; $$ escapes.
	interpolation = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?+][^}]*)?\}`)
)

type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	EnvFile     any               `yaml:"env_file"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	Ports   []string `yaml:"ports"`
	Volumes []string `yaml:"volumes"`
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	var c composeFile
	if err := yaml.Unmarshal(readFile(t, "docker-compose.yml"), &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for _, name := range flamestreamServices {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("docker-compose.yml has no service %q", name)
		}
	}
	return c
}

// envExample reads deploy/.env.example as compose reads .env: KEY=VALUE lines, # comments.
func envExample(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, ".env.example")))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf(".env.example: line %q is not KEY=VALUE", line)
		}
		out[k] = v
	}
	return out
}

func schema() map[string]config.Var {
	out := map[string]config.Var{}
	for _, v := range roles.AllVars() {
		out[v.Env] = v
	}
	return out
}

// isFlamestreamVar says whether a name belongs to the binary's configuration namespace.
func isFlamestreamVar(name string) bool {
	return strings.HasPrefix(name, "FLAMESTREAM_") || name == "NATS_URL"
}

func TestComposeSetsEveryVariableTheBinaryReads(t *testing.T) {
	c := loadCompose(t)
	for _, v := range roles.AllVars() {
		t.Run(v.Env, func(t *testing.T) {
			mustSet := loopback.MatchString(v.Default) || loopback.MatchString(v.Help) || credential.MatchString(v.Env)
			reason, defaultOK := composeDefaults[v.Env]
			if mustSet && defaultOK {
				t.Fatalf("%s is in composeDefaults (%s), but its default %q points at loopback or is a credential: it must be set", v.Env, reason, v.Default)
			}
			for _, svc := range flamestreamServices {
				val, set := c.Services[svc].Environment[v.Env]
				switch {
				case !set && !defaultOK:
					t.Errorf("service %s: %s is not set and not in composeDefaults (default %q)", svc, v.Env, v.Default)
				case set && loopback.MatchString(val):
					t.Errorf("service %s: %s=%q points at loopback: inside a container that is the container itself", svc, v.Env, val)
				case set && credential.MatchString(v.Env) && !interpolation.MatchString(val):
					t.Errorf("service %s: credential %s is written in the compose file; take it from .env as ${...}", svc, v.Env)
				}
			}
		})
	}
}

func TestComposeAndEnvExampleNameOnlyKnownVariables(t *testing.T) {
	known := schema()
	for name := range composeDefaults {
		if _, ok := known[name]; !ok {
			t.Errorf("composeDefaults lists %s, which the binary no longer reads", name)
		}
	}
	c := loadCompose(t)
	for _, svcName := range flamestreamServices {
		svc := c.Services[svcName]
		for name := range svc.Environment {
			if isFlamestreamVar(name) {
				if _, ok := known[name]; !ok {
					t.Errorf("service %s sets %s, which the binary does not read (typo?)", svcName, name)
				}
			}
		}
	}
	for name := range envExample(t) {
		if isFlamestreamVar(name) && !composeOnly[name] {
			if _, ok := known[name]; !ok {
				t.Errorf(".env.example sets %s, which the binary does not read (typo?)", name)
			}
		}
	}
}

// TestComposeInterpolationsComeFromEnvExample: every ${NAME} without a default that the compose file uses
// is defined in .env.example, so `cp .env.example .env && docker compose up` has every value, and every
// required one is marked ${NAME:?...} so a missing .env fails loudly instead of starting with blanks.
func TestComposeInterpolationsComeFromEnvExample(t *testing.T) {
	env := envExample(t)
	text := string(readFile(t, "docker-compose.yml"))
	text = strings.ReplaceAll(text, "$$", "")
	matches := interpolation.FindAllStringSubmatch(text, -1)
	if len(matches) == 0 {
		t.Fatal("docker-compose.yml interpolates nothing from .env")
	}
	for _, m := range matches {
		name, mod := m[1], m[2]
		hasDefault := strings.HasPrefix(mod, ":-") || strings.HasPrefix(mod, "-")
		if _, ok := env[name]; !ok && !hasDefault {
			t.Errorf("docker-compose.yml uses ${%s} with no default, but .env.example does not define it", name)
		}
		if !hasDefault && !strings.HasPrefix(mod, ":?") {
			t.Errorf("docker-compose.yml uses %s: a required value must be written ${%s:?message}", m[0], name)
		}
	}
	for name, val := range env {
		if credential.MatchString(name) && !strings.Contains(val, "change-me") && name != "MINIO_ROOT_USER" {
			t.Errorf(".env.example: %s should be a visible placeholder (change-me...), not %q", name, val)
		}
	}
}

func TestComposeImagesArePinned(t *testing.T) {
	c := loadCompose(t)
	tagged := regexp.MustCompile(`^[a-z0-9./_-]+:([A-Za-z0-9._-]+)$`)
	built := map[string]bool{}
	for _, svc := range c.Services {
		if svc.Build != nil {
			built[svc.Image] = true
		}
	}
	for name, svc := range c.Services {
		if built[svc.Image] {
			continue // built from this repository by `docker compose up --build`
		}
		m := tagged.FindStringSubmatch(svc.Image)
		switch {
		case svc.Image == "":
			t.Errorf("service %s has neither image nor build", name)
		case m == nil:
			t.Errorf("service %s: image %q has no tag", name, svc.Image)
		case m[1] == "latest" || !regexp.MustCompile(`[0-9]`).MatchString(m[1]):
			t.Errorf("service %s: image %q is not pinned to a version", name, svc.Image)
		}
	}
	for _, name := range flamestreamServices {
		if img := c.Services[name].Image; !strings.Contains(img, "flamestream") {
			t.Errorf("service %s runs %q, not the Flamestream image", name, img)
		}
	}
}

func TestComposeServicesDependOnWhatTheyUse(t *testing.T) {
	c := loadCompose(t)
	tests := []struct {
		service string
		command string
		needs   map[string]string // dependency -> condition
	}{
		{"migrate", "migrate", map[string]string{"postgres": "service_healthy", "clickhouse": "service_healthy"}},
		{"ingest", "ingest", map[string]string{"migrate": "service_completed_successfully", "postgres": "service_healthy", "nats": "service_healthy", "minio": "service_healthy"}},
		{"indexer", "indexer", map[string]string{"migrate": "service_completed_successfully", "clickhouse": "service_healthy", "nats": "service_healthy", "minio": "service_healthy"}},
		{"janitor", "janitor", map[string]string{"migrate": "service_completed_successfully", "postgres": "service_healthy", "clickhouse": "service_healthy"}},
		{"query", "query", map[string]string{"migrate": "service_completed_successfully", "postgres": "service_healthy", "clickhouse": "service_healthy"}},
		{"caddy", "", map[string]string{"ingest": "service_started", "query": "service_started"}},
	}
	for _, tt := range tests {
		t.Run(tt.service, func(t *testing.T) {
			svc, ok := c.Services[tt.service]
			if !ok {
				t.Fatalf("no service %s", tt.service)
			}
			if tt.command != "" && (len(svc.Command) == 0 || svc.Command[0] != tt.command) {
				t.Errorf("command %v, want %q first", svc.Command, tt.command)
			}
			for dep, cond := range tt.needs {
				got, ok := svc.DependsOn[dep]
				if !ok {
					t.Errorf("does not depend on %s", dep)
					continue
				}
				if got.Condition != cond {
					t.Errorf("depends on %s with condition %q, want %q", dep, got.Condition, cond)
				}
				if cond == "service_healthy" && (c.Services[dep].Healthcheck == nil || len(c.Services[dep].Healthcheck.Test) == 0) {
					t.Errorf("waits for %s to be healthy, but %s has no healthcheck", dep, dep)
				}
			}
		})
	}
	// Data lives in named volumes, and only the proxy is reachable from outside.
	for _, name := range []string{"nats", "minio", "clickhouse", "postgres"} {
		if len(c.Services[name].Volumes) == 0 {
			t.Errorf("service %s keeps its data in no volume", name)
		}
	}
	for name, svc := range c.Services {
		if len(svc.Ports) > 0 && name != "caddy" {
			t.Errorf("service %s publishes ports %v; only caddy should", name, svc.Ports)
		}
	}
}

// caddyAgentPaths returns the path patterns of the @agent matcher in the Caddyfile.
func caddyAgentPaths(t *testing.T) []string {
	t.Helper()
	for _, line := range strings.Split(string(readFile(t, "Caddyfile")), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 2 && fields[0] == "@agent" && fields[1] == "path" {
			return fields[2:]
		}
	}
	t.Fatal("Caddyfile has no `@agent path ...` matcher")
	return nil
}

// caddyMatch is Caddy's path matcher for the forms used here: exact, or a prefix ending in *.
func caddyMatch(pattern, path string) bool {
	if p, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(path, p)
	}
	return pattern == path
}

// ingestRoutes lists the paths the ingest role really mounts.
func ingestRoutes(t *testing.T) []string {
	t.Helper()
	r := chi.NewRouter()
	ingest.New(ingest.Config{}, nil, nil, nil, slog.New(slog.DiscardHandler), nil).Routes(r)
	var routes []string
	if err := chi.Walk(r, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		routes = append(routes, route)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(routes) < 3 {
		t.Fatalf("ingest mounts only %v", routes)
	}
	return routes
}

// TestIngressRoutesEveryAgentEndpointToIngest is the Kubernetes twin of the Caddy test.
func TestIngressRoutesEveryAgentEndpointToIngest(t *testing.T) {
	type rule struct{ path, kind, backend string }
	var rules []rule
	for _, list := range k8sDocs(t) {
		for _, doc := range list {
			if doc["kind"] != "Ingress" {
				continue
			}
			for _, r := range asList(dig(doc, "spec", "rules")) {
				for _, p := range asList(dig(r, "http", "paths")) {
					path, _ := dig(p, "path").(string)
					kind, _ := dig(p, "pathType").(string)
					backend, _ := dig(p, "backend", "service", "name").(string)
					rules = append(rules, rule{path, kind, backend})
				}
			}
		}
	}
	if len(rules) == 0 {
		t.Fatal("no Ingress paths in k8s/")
	}
	// The longest matching path wins, as in every Ingress controller.
	route := func(path string) string {
		best, backend := -1, ""
		for _, r := range rules {
			ok := r.path == path ||
				(r.kind == "Prefix" && (r.path == "/" || path == r.path || strings.HasPrefix(path, strings.TrimSuffix(r.path, "/")+"/")))
			if ok && len(r.path) > best {
				best, backend = len(r.path), r.backend
			}
		}
		return backend
	}
	for _, p := range ingestRoutes(t) {
		if got := route(p); got != "flamestream-ingest" {
			t.Errorf("ingest route %s goes to %q, want flamestream-ingest", p, got)
		}
	}
	for _, p := range []string{"/", "/api/v1/flamegraph", "/api/v1/login", "/api/v1/settings/checkout"} {
		if got := route(p); got != "flamestream-query" {
			t.Errorf("query path %s goes to %q, want flamestream-query", p, got)
		}
	}
}

// TestCaddyRoutesEveryAgentEndpointToIngest walks the routes ingest really mounts: each must reach ingest
// through the proxy, and no UI or query route may be caught by the agent matcher.
func TestCaddyRoutesEveryAgentEndpointToIngest(t *testing.T) {
	patterns := caddyAgentPaths(t)
	caddy := string(readFile(t, "Caddyfile"))
	for _, want := range []string{"dynamic a ingest 8080", "dynamic a query 8081", "tls {$CADDY_TLS:internal}"} {
		if !strings.Contains(caddy, want) {
			t.Errorf("Caddyfile lacks %q", want)
		}
	}
	routes := ingestRoutes(t)
	for _, route := range routes {
		matched := false
		for _, p := range patterns {
			matched = matched || caddyMatch(p, route)
		}
		if !matched {
			t.Errorf("ingest route %s is not in the Caddyfile's @agent matcher %v: agents would reach the query role", route, patterns)
		}
	}
	for _, uiPath := range []string{"/", "/index.html", "/api/v1/flamegraph", "/api/v1/login", "/api/v1/services", "/api/v1/settings/checkout", "/healthz", "/metrics"} {
		for _, p := range patterns {
			if caddyMatch(p, uiPath) {
				t.Errorf("query path %s is caught by the agent matcher %s", uiPath, p)
			}
		}
	}
}

func TestDockerfileBuildsOneStaticBinary(t *testing.T) {
	df := string(readFile(t, "../Dockerfile"))
	for _, want := range []string{"FROM golang:1.26", "CGO_ENABLED=0", "./cmd/flamestream", "ENTRYPOINT"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if strings.Count(df, "\nFROM ") < 2 && !strings.HasPrefix(df, "FROM ") {
		t.Error("Dockerfile is not multi-stage")
	}
}

// TestReadmeAgentCommandUsesTheAgentFlags checks the command a newcomer copies against the agent contract.
func TestReadmeAgentCommandUsesTheAgentFlags(t *testing.T) {
	readme := string(readFile(t, "README.md"))
	for _, want := range []string{
		"docker run --name granulate-gprofiler -d --restart=on-failure:10 --pid=host --userns=host --privileged",
		"granulate/gprofiler:latest -cu --token=<TOKEN> --service-name=<SERVICE> --server-host https://<HOST> --api-server https://<HOST> --no-verify",
		"cp .env.example .env",
		"docker compose up -d --build",
	} {
		if !strings.Contains(readme, want) {
			t.Errorf("deploy/README.md lacks %q", want)
		}
	}
}

// k8sDocs decodes every YAML document of every file under k8s/.
func k8sDocs(t *testing.T) map[string][]map[string]any {
	t.Helper()
	files, err := filepath.Glob("k8s/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in k8s/: %v", err)
	}
	out := map[string][]map[string]any{}
	for _, f := range files {
		dec := yaml.NewDecoder(bytes.NewReader(readFile(t, f)))
		for {
			var doc map[string]any
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if doc != nil {
				out[f] = append(out[f], doc)
			}
		}
	}
	return out
}

// dig walks nested maps and lists: keys are strings for maps, ints for lists.
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func TestKubernetesManifestsUseOnlyKnownVariables(t *testing.T) {
	known := schema()
	docs := k8sDocs(t)
	kinds := map[string]int{}
	deployments := map[string]bool{}
	for file, list := range docs {
		for _, doc := range list {
			kind, _ := doc["kind"].(string)
			name, _ := dig(doc, "metadata", "name").(string)
			kinds[kind]++
			if doc["apiVersion"] == nil || kind == "" {
				t.Errorf("%s: a document without apiVersion/kind", file)
			}
			switch kind {
			case "ConfigMap":
				data, _ := dig(doc, "data").(map[string]any)
				for k := range data {
					if _, ok := known[k]; !ok {
						t.Errorf("%s: ConfigMap %s key %s is not a Flamestream variable", file, name, k)
					}
				}
			case "Secret":
				data, _ := dig(doc, "stringData").(map[string]any)
				for k := range data {
					if _, ok := known[k]; !ok {
						t.Errorf("%s: Secret %s key %s is not a Flamestream variable", file, name, k)
					}
				}
			case "Deployment", "Job":
				containers, _ := dig(doc, "spec", "template", "spec", "containers").([]any)
				if len(containers) == 0 {
					t.Errorf("%s: %s %s has no containers", file, kind, name)
				}
				for _, c := range containers {
					for _, e := range asList(dig(c, "env")) {
						if n, _ := dig(e, "name").(string); isFlamestreamVar(n) {
							if _, ok := known[n]; !ok {
								t.Errorf("%s: %s sets %s, which the binary does not read", file, name, n)
							}
						}
					}
					if dig(c, "resources", "requests") == nil || dig(c, "resources", "limits") == nil {
						t.Errorf("%s: %s has no resource requests and limits", file, name)
					}
					if kind == "Deployment" {
						deployments[name] = true
						if p := dig(c, "livenessProbe", "httpGet", "path"); p != "/healthz" {
							t.Errorf("%s: %s liveness probe path %v, want /healthz", file, name, p)
						}
						if p := dig(c, "readinessProbe", "httpGet", "path"); p != "/readyz" {
							t.Errorf("%s: %s readiness probe path %v, want /readyz", file, name, p)
						}
					}
				}
			}
		}
	}
	for _, d := range []string{"flamestream-ingest", "flamestream-indexer", "flamestream-janitor", "flamestream-query"} {
		if !deployments[d] {
			t.Errorf("no Deployment %s in k8s/", d)
		}
	}
	for _, k := range []string{"ConfigMap", "Secret", "Job", "Service", "Kustomization"} {
		if kinds[k] == 0 {
			t.Errorf("no %s in k8s/", k)
		}
	}
	// Every variable that defaults to loopback is configured for the cluster.
	cm := map[string]bool{}
	for _, list := range docs {
		for _, doc := range list {
			for _, section := range []string{"data", "stringData"} {
				if m, ok := doc[section].(map[string]any); ok && (doc["kind"] == "ConfigMap" || doc["kind"] == "Secret") {
					for k, v := range m {
						cm[k] = true
						if s, _ := v.(string); loopback.MatchString(s) {
							t.Errorf("%s=%q points at loopback", k, s)
						}
					}
				}
			}
		}
	}
	for _, v := range roles.AllVars() {
		if (loopback.MatchString(v.Default) || loopback.MatchString(v.Help)) && !cm[v.Env] {
			t.Errorf("k8s ConfigMap/Secret does not set %s (default %q is loopback)", v.Env, v.Default)
		}
	}
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// metricNames collects the metric names the code registers, from the Name fields of its metric options.
func metricNames(t *testing.T) map[string]bool {
	t.Helper()
	re := regexp.MustCompile(`Name:\s*"(flamestream_[a-z0-9_]+)"`)
	out := map[string]bool{}
	for _, dir := range []string{"../ingest", "../indexer", "../query", "../cmd/flamestream/roles"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range files {
			for _, m := range re.FindAllStringSubmatch(string(readFile(t, f)), -1) {
				out[m[1]] = true
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("found no flamestream_ metrics in the code")
	}
	return out
}

func TestPrometheusAlertsUseMetricsTheCodeExports(t *testing.T) {
	var rules struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, "prometheus-alerts.yml")))
	dec.KnownFields(true)
	if err := dec.Decode(&rules); err != nil {
		t.Fatalf("prometheus-alerts.yml: %v", err)
	}
	known := metricNames(t)
	// Histograms export _bucket, _sum and _count series.
	suffix := regexp.MustCompile(`_(bucket|sum|count)$`)
	used := regexp.MustCompile(`flamestream_[a-z0-9_]+`)
	var names []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Alert)
			if r.Alert == "" || r.Expr == "" || r.Annotations["summary"] == "" || r.Labels["severity"] == "" {
				t.Errorf("group %s: rule %q needs alert, expr, labels.severity and annotations.summary", g.Name, r.Alert)
			}
			for _, m := range used.FindAllString(r.Expr, -1) {
				if !known[m] && !known[suffix.ReplaceAllString(m, "")] {
					t.Errorf("alert %s uses %s, which the code does not export", r.Alert, m)
				}
			}
		}
	}
	sort.Strings(names)
	if len(names) < 4 {
		t.Errorf("only %d alerts: %v", len(names), names)
	}
}
