package query

import (
	_ "embed"
	"net/http"
)

// openAPIDocument is the OpenAPI 3 description of the query API and of the ingest API (the routes of
// Server.Routes and ingest.Server.Routes; TestOpenAPIMatchesRoutes holds the two together).
//
//go:embed openapi.json
var openAPIDocument []byte

// OpenAPI returns the OpenAPI 3 document (JSON) of the query and ingest APIs, for a role that wants to
// serve it elsewhere.
func OpenAPI() []byte { return openAPIDocument }

// serveOpenAPI serves the document at /api/v1/openapi.json. It is mounted outside the authenticated group
// on purpose: it describes routes, parameters and reply shapes that are public in this repository anyway,
// never data, and clients (code generators, an API explorer) fetch it before they have a session or token.
// Each route it lists still checks its own credentials.
func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(openAPIDocument)
}
