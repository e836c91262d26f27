// Package webui serves the Flamestream web studio: a single-page TypeScript
// application (sources in src/, bundled by esbuild into dist/, see build.go)
// embedded into the binary. The query role mounts Handler at "/"; the JSON API
// it calls lives under /api/v1 and is documented in query/API.md.
package webui

import (
	"bytes"
	"compress/gzip"
	"embed"
	"encoding/json"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/flamestream/flamestream/webui/internal/assetver"
)

//go:embed dist
var dist embed.FS

// asset is one embedded file, prepared once for serving.
type asset struct {
	body        []byte
	gz          []byte // nil when compression does not pay off
	contentType string
	version     string // short content hash, also the ETag
}

type handler struct {
	index  *asset
	assets map[string]*asset // keyed by URL path, e.g. "/assets/app.js"
}

// Index and asset responses carry these on every reply.
const (
	cacheForever = "public, max-age=31536000, immutable"
	cacheNever   = "no-cache"
	indexCSP     = "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; " +
		"connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'"
)

// Handler returns the HTTP handler of the web studio. It serves
// /assets/* from the embedded bundle (cacheable forever when requested with
// the matching ?v= content hash, revalidated otherwise), answers 404 for
// unknown assets and for anything under /api/, and serves index.html for
// every other GET or HEAD path so the single-page app can route on the URL.
func Handler() http.Handler {
	h := &handler{assets: map[string]*asset{}}
	err := fs.WalkDir(dist, "dist", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := dist.ReadFile(p)
		if err != nil {
			return err
		}
		a := newAsset(p, body)
		rel := strings.TrimPrefix(p, "dist")
		if rel == "/index.html" {
			h.index = a
		} else {
			h.assets[rel] = a
		}
		return nil
	})
	if err != nil || h.index == nil {
		// The bundle is compiled in; a broken embed is a build defect.
		panic("webui: embedded dist is incomplete: run `go generate ./webui`")
	}
	return h
}

func newAsset(name string, body []byte) *asset {
	ct := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) {
	case ".js":
		ct = "text/javascript; charset=utf-8"
	case ".css":
		ct = "text/css; charset=utf-8"
	case ".html":
		ct = "text/html; charset=utf-8"
	case ".svg":
		ct = "image/svg+xml"
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	a := &asset{body: body, contentType: ct, version: assetver.Of(body)}
	if len(body) > 512 {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(body)
		_ = zw.Close()
		if buf.Len() < len(body)*9/10 {
			a.gz = buf.Bytes()
		}
	}
	return a
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	switch {
	case p == "/api" || strings.HasPrefix(p, "/api/"):
		// The API is mounted in front of this handler; an unknown API route
		// must not get the HTML page with a 200.
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(map[string]string{"message": "not found", "detail": "no API route " + p})
	case strings.HasPrefix(p, "/assets/"):
		a, ok := h.assets[p]
		if !ok {
			http.NotFound(w, r)
			return
		}
		cache := cacheNever
		if v := r.URL.Query().Get("v"); v != "" && v == a.version {
			cache = cacheForever
		}
		serve(w, r, a, cache)
	case p == "/favicon.ico":
		serve(w, r, h.assets["/assets/favicon.svg"], cacheNever)
	case strings.Contains(path.Base(p), "."):
		// Looks like a file (robots.txt, a stale chunk name, …): app routes
		// never contain a dot, so do not answer with the page.
		http.NotFound(w, r)
	default:
		w.Header().Set("Content-Security-Policy", indexCSP)
		w.Header().Set("Referrer-Policy", "same-origin")
		w.Header().Set("X-Frame-Options", "DENY")
		serve(w, r, h.index, cacheNever)
	}
}

func serve(w http.ResponseWriter, r *http.Request, a *asset, cache string) {
	hd := w.Header()
	etag := `"` + a.version + `"`
	hd.Set("Content-Type", a.contentType)
	hd.Set("Cache-Control", cache)
	hd.Set("ETag", etag)
	hd.Set("X-Content-Type-Options", "nosniff")
	if a.gz != nil {
		hd.Set("Vary", "Accept-Encoding")
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := a.body
	if a.gz != nil && acceptsGzip(r.Header.Get("Accept-Encoding")) {
		body = a.gz
		hd.Set("Content-Encoding", "gzip")
	}
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		params = strings.ReplaceAll(params, " ", "")
		return params != "q=0" && params != "q=0.0" && params != "q=0.00" && params != "q=0.000"
	}
	return false
}
