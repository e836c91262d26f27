package webui

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flamestream/flamestream/webui/internal/assetver"
	"github.com/flamestream/flamestream/webui/internal/bundle"
)

// TestBundleIsUpToDate rebuilds the bundle from src/ into a temporary directory
// and compares it with the committed dist/: edit src/, then `go generate ./webui`.
func TestBundleIsUpToDate(t *testing.T) {
	out := t.TempDir()
	if err := bundle.Build("src", out); err != nil {
		t.Fatalf("build bundle: %v", err)
	}
	for _, name := range bundle.Files {
		want, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("dist", name))
		if err != nil {
			t.Errorf("dist/%s: %v — run `go generate ./webui`", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("dist/%s is stale (%d bytes, fresh build %d bytes) — run `go generate ./webui` and commit dist/", name, len(got), len(want))
		}
	}
	entries, err := os.ReadDir("dist/assets")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !contains(bundle.Files, "assets/"+e.Name()) {
			t.Errorf("dist/assets/%s is not produced by the build: delete it", e.Name())
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func get(t *testing.T, h http.Handler, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestHandlerServesAssetsWithTypes(t *testing.T) {
	h := Handler()
	cases := []struct {
		path, ctype, body string
	}{
		{"/", "text/html; charset=utf-8", `<div id="app">`},
		{"/assets/app.js", "text/javascript; charset=utf-8", "__flamestream"},
		{"/assets/app.css", "text/css; charset=utf-8", "--graph-bg"},
		{"/assets/favicon.svg", "image/svg+xml", "<svg"},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			rec := get(t, h, http.MethodGet, c.path, nil)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d", rec.Code)
			}
			if got := rec.Header().Get("Content-Type"); got != c.ctype {
				t.Errorf("Content-Type %q, want %q", got, c.ctype)
			}
			if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Error("missing nosniff")
			}
			if !strings.Contains(rec.Body.String(), c.body) {
				t.Errorf("body lacks %q", c.body)
			}
		})
	}
}

func TestHandlerSPAFallback(t *testing.T) {
	h := Handler()
	index := get(t, h, http.MethodGet, "/", nil).Body.String()
	for _, p := range []string{"/profile?service=a&zoom=x;y", "/diff", "/admin/tokens", "/login?next=%2Fprofile", "/some/unknown/route"} {
		rec := get(t, h, http.MethodGet, p, nil)
		if rec.Code != http.StatusOK || rec.Body.String() != index {
			t.Errorf("%s: status %d, index served %v", p, rec.Code, rec.Body.String() == index)
		}
		if cc := rec.Header().Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("%s: Cache-Control %q, want no-cache", p, cc)
		}
		if !strings.Contains(rec.Header().Get("Content-Security-Policy"), "default-src 'self'") {
			t.Errorf("%s: no CSP", p)
		}
	}
}

func TestHandlerNotFound(t *testing.T) {
	h := Handler()
	for _, p := range []string{"/assets/missing.js", "/assets/", "/assets/app.js.map", "/robots.txt", "/old-chunk.js"} {
		if rec := get(t, h, http.MethodGet, p, nil); rec.Code != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404", p, rec.Code)
		}
	}
	rec := get(t, h, http.MethodGet, "/api/v1/nope", nil)
	if rec.Code != http.StatusNotFound || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") ||
		!strings.Contains(rec.Body.String(), `"message":"not found"`) {
		t.Errorf("/api/v1/nope: %d %q %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	if rec := get(t, h, http.MethodPost, "/", nil); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /: status %d, want 405", rec.Code)
	}
}

func TestHandlerCaching(t *testing.T) {
	h := Handler()
	js, err := dist.ReadFile("dist/assets/app.js")
	if err != nil {
		t.Fatal(err)
	}
	v := assetver.Of(js)
	index := get(t, h, http.MethodGet, "/", nil).Body.String()
	if !strings.Contains(index, "/assets/app.js?v="+v) {
		t.Fatalf("index.html does not reference app.js?v=%s", v)
	}
	if cc := get(t, h, http.MethodGet, "/assets/app.js?v="+v, nil).Header().Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
		t.Errorf("versioned asset Cache-Control %q", cc)
	}
	for _, p := range []string{"/assets/app.js", "/assets/app.js?v=stale"} {
		if cc := get(t, h, http.MethodGet, p, nil).Header().Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("%s: Cache-Control %q, want no-cache", p, cc)
		}
	}
	rec := get(t, h, http.MethodGet, "/assets/app.js", map[string]string{"If-None-Match": `"` + v + `"`})
	if rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
		t.Errorf("conditional GET: %d with %d bytes", rec.Code, rec.Body.Len())
	}
}

func TestHandlerGzipAndHead(t *testing.T) {
	h := Handler()
	plain := get(t, h, http.MethodGet, "/assets/app.js", nil)
	rec := get(t, h, http.MethodGet, "/assets/app.js", map[string]string{"Accept-Encoding": "br, gzip"})
	if rec.Header().Get("Content-Encoding") != "gzip" || rec.Header().Get("Vary") != "Accept-Encoding" {
		t.Fatalf("no gzip: %v", rec.Header())
	}
	zr, err := gzip.NewReader(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(body, plain.Body.Bytes()) {
		t.Fatalf("gzip body differs (err %v)", err)
	}
	if rec := get(t, h, http.MethodGet, "/assets/app.js", map[string]string{"Accept-Encoding": "gzip;q=0"}); rec.Header().Get("Content-Encoding") != "" {
		t.Error("gzip;q=0 still compressed")
	}
	head := get(t, h, http.MethodHead, "/assets/app.css", nil)
	if head.Code != http.StatusOK || head.Body.Len() != 0 || head.Header().Get("Content-Length") == "" {
		t.Errorf("HEAD: %d, %d bytes, length %q", head.Code, head.Body.Len(), head.Header().Get("Content-Length"))
	}
}
