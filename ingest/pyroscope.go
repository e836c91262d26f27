package ingest

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/flamestream/flamestream/internal/profile"
)

// postPyroscope is POST /ingest as Pyroscope serves it: name=app.cpu{k=v,...}, from, until, format
// (folded, lines, pprof; multipart pprof as the SDKs send it; trie, tree, speedscope and collapsed are
// converted to folded, jfr is refused: see pyroscope_formats.go), units, spyName, sampleRate; the body
// plain or gzip (Content-Encoding). The application name is the service (the service_name label wins);
// labels map onto host, container and instance type (see internal/profile/dims.go) and all of them stay
// in the stored object. A profile that is not CPU (heap, mutex, wall clock, ...) is answered 200 and not
// stored: the SDKs send those by default and would log every refusal.
func (s *Server) postPyroscope(w http.ResponseWriter, r *http.Request) error {
	tok, err := s.checkFrontToken(r)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	// The query is read before the body so that a request without a name, or of a format not read,
	// costs nothing.
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return fail(http.StatusBadRequest, "bad query: "+err.Error(), nil)
	}
	contentType := r.Header.Get("Content-Type")
	format, err := pyroscopeFormatOf(q, contentType)
	if err != nil {
		return err
	}
	checkQuery := r.URL.RawQuery
	if converts(format, q) {
		checkQuery = convertedQuery(q, format, "") // what is stored must read
	}
	if _, err := profile.ParsePyroscopeQuery(checkQuery, contentType, now); err != nil {
		return fail(http.StatusBadRequest, "bad query: "+err.Error(), nil)
	}
	body, err := s.readFrontBody(w, r)
	if err != nil {
		return err
	}
	query, contentType, body, err := s.convertPyroscope(format, q, r.URL.RawQuery, contentType, body)
	if err != nil {
		return err
	}
	env := profile.Envelope{Kind: string(profile.FormatPyroscope), Query: query, ContentType: contentType, Received: now}
	text := env.Encode(body)
	units, err := describeFront(text, profile.FormatPyroscope)
	if err != nil {
		return err
	}
	res, err := s.acceptUnits(r.Context(), tok, "pyroscope", text, units, now)
	if err != nil {
		return err
	}
	msg := "ok"
	if res.Stored == 0 && len(res.Skipped) > 0 {
		msg = "not stored: " + strings.Join(res.Skipped, "; ")
	}
	writeJSON(w, http.StatusOK, map[string]any{"message": msg})
	return nil
}
