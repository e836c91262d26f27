package roles

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flamestream/flamestream/query"
)

// TestOpenAPIDocumentsTheOperationsRoutes: the routes every role serves (opsRouter) are the operations
// of query/openapi.json tagged "operations", no more and no fewer. The API routes of the query and ingest
// servers are held to the document by query's TestOpenAPIMatchesRoutes.
func TestOpenAPIDocumentsTheOperationsRoutes(t *testing.T) {
	mounted := map[string]bool{}
	r := opsRouter(&deps{}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	err := chi.Walk(r, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		mounted[method+" "+route] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]struct{ Tags []string }
	}
	if err := json.Unmarshal(query.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths {
		for method, op := range item {
			if slices.Contains(op.Tags, "operations") {
				documented[strings.ToUpper(method)+" "+path] = true
			}
		}
	}
	if len(mounted) == 0 {
		t.Fatal("opsRouter mounts nothing")
	}
	// r.Handle (/metrics) mounts a route for every method, CONNECT included, which only it does: the
	// document gives such a route's GET.
	for r := range mounted {
		if route, ok := strings.CutPrefix(r, "CONNECT "); ok {
			for m := range mounted {
				if strings.HasSuffix(m, " "+route) {
					delete(mounted, m)
				}
			}
			mounted["GET "+route] = true
		}
	}
	for r := range mounted {
		if !documented[r] {
			t.Errorf("every role mounts %s: not in query/openapi.json with the tag operations", r)
		}
	}
	for r := range documented {
		if !mounted[r] {
			t.Errorf("query/openapi.json documents %s as an operations route: opsRouter does not mount it", r)
		}
	}
}
