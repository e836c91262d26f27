package query

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/flamestream/flamestream/ingest"
)

// openAPIDoc is the part of the document the tests read.
type openAPIDoc struct {
	OpenAPI    string                                `json:"openapi"`
	Info       struct{ Title, Version string }       `json:"info"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components map[string]map[string]json.RawMessage `json:"components"`
}

func loadOpenAPI(t *testing.T) (openAPIDoc, any) {
	t.Helper()
	var doc openAPIDoc
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	var tree any
	if err := json.Unmarshal(openAPIDocument, &tree); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return doc, tree
}

// walkRoutes returns "METHOD pattern" of every route mounted on a fresh router by mount.
func walkRoutes(t *testing.T, mount func(chi.Router)) []string {
	t.Helper()
	r := chi.NewRouter()
	mount(r)
	var out []string
	err := chi.Walk(r, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		out = append(out, method+" "+route)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOpenAPIMatchesRoutes holds the document and the routers together: every route the query server and
// the ingest server mount is documented, and every documented operation is a mounted route. A route added
// without its documentation (or a documented one removed) fails here.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	mounted := map[string]string{} // "METHOD pattern" → server
	for _, r := range walkRoutes(t, New(Config{}, nil, nil, log).Routes) {
		mounted[r] = "query"
	}
	for _, r := range walkRoutes(t, ingest.New(ingest.Config{}, nil, nil, nil, log, nil).Routes) {
		if s, ok := mounted[r]; ok {
			// The all role mounts both on one router: the same route twice would be served by one of them.
			t.Errorf("%s is mounted by both the %s and the ingest server", r, s)
		}
		mounted[r] = "ingest"
	}
	if len(mounted) < 30 {
		t.Fatalf("walked only %d routes: %v", len(mounted), mounted)
	}
	doc, _ := loadOpenAPI(t)
	documented := map[string]bool{}
	for r, tags := range documentedRoutes(t, doc) {
		// The operations routes (/healthz, /readyz, /metrics) are every role's, mounted by
		// cmd/flamestream/roles: its TestOpenAPIDocumentsTheOperationsRoutes holds them to the document.
		if !slices.Contains(tags, "operations") {
			documented[r] = true
		}
	}
	for r, server := range mounted {
		if !documented[r] {
			t.Errorf("the %s server mounts %s: not in query/openapi.json", server, r)
		}
	}
	for r := range documented {
		if _, ok := mounted[r]; !ok {
			t.Errorf("query/openapi.json documents %s: no server mounts it", r)
		}
	}
	t.Logf("%d routes mounted, %d documented", len(mounted), len(documented))
}

// documentedRoutes returns "METHOD path" of every operation of the document, with its tags.
func documentedRoutes(t *testing.T, doc openAPIDoc) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for path, item := range doc.Paths {
		for method, raw := range item {
			switch method {
			case "get", "put", "post", "delete", "options", "head", "patch", "trace":
				var op struct{ Tags []string }
				if err := json.Unmarshal(raw, &op); err != nil {
					t.Fatalf("%s %s: %v", method, path, err)
				}
				out[strings.ToUpper(method)+" "+path] = op.Tags
			}
		}
	}
	return out
}

var pathParam = regexp.MustCompile(`\{([^}]+)\}`)

// TestOpenAPIDocumentIsWellFormed checks what a client generator relies on without a validator
// dependency: an OpenAPI 3 header, every $ref resolving inside the document, unique operation ids, each
// operation with a summary and responses keyed by status codes, and each path template's parameters
// declared as required path parameters (and no path parameter that is not in the template).
func TestOpenAPIDocumentIsWellFormed(t *testing.T) {
	doc, tree := loadOpenAPI(t)
	if !strings.HasPrefix(doc.OpenAPI, "3.") || doc.Info.Title == "" || doc.Info.Version == "" {
		t.Fatalf("header: openapi %q, title %q, version %q", doc.OpenAPI, doc.Info.Title, doc.Info.Version)
	}
	resolve := func(ref string) (any, bool) {
		name, ok := strings.CutPrefix(ref, "#/")
		if !ok {
			return nil, false
		}
		node := tree
		for _, part := range strings.Split(name, "/") {
			m, ok := node.(map[string]any)
			if !ok {
				return nil, false
			}
			if node, ok = m[part]; !ok {
				return nil, false
			}
		}
		return node, true
	}
	refs := 0
	var walk func(at string, node any)
	walk = func(at string, node any) {
		switch n := node.(type) {
		case map[string]any:
			if ref, ok := n["$ref"].(string); ok {
				refs++
				if _, ok := resolve(ref); !ok {
					t.Errorf("%s: $ref %q does not resolve", at, ref)
				}
			}
			for k, v := range n {
				walk(at+"/"+k, v)
			}
		case []any:
			for _, v := range n {
				walk(at, v)
			}
		}
	}
	walk("#", tree)
	if refs == 0 {
		t.Fatal("no $ref walked")
	}

	ids := map[string]string{}
	status := regexp.MustCompile(`^([1-5][0-9][0-9]|default)$`)
	for path, item := range doc.Paths {
		want := map[string]bool{}
		for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
			want[m[1]] = true
		}
		for method, raw := range item {
			at := strings.ToUpper(method) + " " + path
			var op struct {
				OperationID string                     `json:"operationId"`
				Summary     string                     `json:"summary"`
				Parameters  []json.RawMessage          `json:"parameters"`
				Responses   map[string]json.RawMessage `json:"responses"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Errorf("%s: %v", at, err)
				continue
			}
			if op.OperationID == "" || op.Summary == "" || len(op.Responses) == 0 {
				t.Errorf("%s: operationId %q, summary %q, %d responses", at, op.OperationID, op.Summary, len(op.Responses))
			}
			if other, ok := ids[op.OperationID]; ok {
				t.Errorf("%s: operationId %q is also %s's", at, op.OperationID, other)
			}
			ids[op.OperationID] = at
			for code := range op.Responses {
				if !status.MatchString(code) {
					t.Errorf("%s: response %q is not a status code", at, code)
				}
			}
			got := map[string]bool{}
			for _, p := range op.Parameters {
				var param struct {
					Ref      string `json:"$ref"`
					Name, In string
					Required bool
				}
				if err := json.Unmarshal(p, &param); err != nil {
					t.Fatalf("%s: %v", at, err)
				}
				if param.Ref != "" {
					node, _ := resolve(param.Ref)
					b, _ := json.Marshal(node)
					_ = json.Unmarshal(b, &param)
				}
				if param.Name == "" || param.In == "" {
					t.Errorf("%s: a parameter without name or in: %s", at, p)
				}
				if param.In == "path" {
					if !want[param.Name] || !param.Required {
						t.Errorf("%s: path parameter %q (required %v) is not in the template", at, param.Name, param.Required)
					}
					got[param.Name] = true
				}
			}
			for name := range want {
				if !got[name] {
					t.Errorf("%s: path parameter {%s} is not declared", at, name)
				}
			}
		}
	}
}

// TestOpenAPIServedWithoutAuthentication: the document is served as JSON to a client with no session or
// token, while a route it documents still asks for one.
func TestOpenAPIServedToAuthenticatedCallersOnly(t *testing.T) {
	// The handler serves the embedded document as JSON.
	rec := httptest.NewRecorder()
	serveOpenAPI(rec, httptest.NewRequest(http.MethodGet, "/api/v1/openapi.json", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("serveOpenAPI: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	if body := rec.Body.Bytes(); !bytes.Equal(body, OpenAPI()) || !json.Valid(body) {
		t.Fatalf("served %d bytes, not the embedded document", len(body))
	}
	// Through the router, without a session or a token, it is a 401 like every route but login: the
	// authentication middleware answers before any database is touched (the server here has none).
	r := chi.NewRouter()
	New(Config{}, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil))).Routes(r)
	srv := httptest.NewServer(r)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/openapi.json without credentials: %d, want 401", resp.StatusCode)
	}
}
