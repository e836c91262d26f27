package ingest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/flamestream/flamestream/internal/pgdb"
	"github.com/flamestream/flamestream/internal/profile"
	"github.com/flamestream/flamestream/stream"
)

// The other front doors (Pyroscope's POST /ingest, OTLP's POST /v1development/profiles) feed the same
// pipeline as agent uploads: the request is archived gzip in the object store (its query and Content-Type
// in an envelope line before the body, see profile.Envelope), one event per unit is published to JetStream,
// and only then is the client answered 200. The indexer parses the object by the event's format into the
// same collapsed stacks. Limits, dedup (a retry has the same ids) and the 503 rule are the agent's.

// frontDoorToken returns the Flamestream token of a request: "Authorization: Bearer TOKEN", or basic auth
// with the token as the password (Pyroscope SDKs send BasicAuthUser:BasicAuthPassword; a token given as
// the user with an empty password is taken too), or the agent's header or ?key=.
func frontDoorToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
			return strings.TrimSpace(h[7:])
		}
		if user, pass, ok := r.BasicAuth(); ok {
			if pass != "" {
				return pass
			}
			return user
		}
	}
	if k := r.Header.Get(HeaderAPIKey); k != "" {
		return k
	}
	return r.URL.Query().Get("key")
}

// checkFrontToken checks a front-door request's token and rate limit before its body is read.
func (s *Server) checkFrontToken(r *http.Request) (pgdb.Token, error) {
	key := frontDoorToken(r)
	if key == "" {
		return pgdb.Token{}, fail(http.StatusUnauthorized, "missing API key",
			errors.New("send a Flamestream agent token as Authorization: Bearer TOKEN or as the basic auth password"))
	}
	tok, err := s.checkToken(r.Context(), key)
	if err != nil {
		return tok, err
	}
	if tok.Kind != pgdb.KindAgent {
		return tok, fail(http.StatusForbidden, "this API key may not upload profiles", errors.New("it is a read token"))
	}
	if ok, wait := s.allow(tok.ID); !ok {
		s.metrics.rateLimited.Inc()
		e := fail(http.StatusTooManyRequests, "too many uploads for this API key", nil)
		e.retryAfter = max(wait, time.Second)
		return tok, e
	}
	return tok, nil
}

// readFrontBody reads a front-door body within the limits and undoes its Content-Encoding (gzip or none).
// Unlike the agent's, the length may be unknown (chunked): the limit is applied while reading.
func (s *Server) readFrontBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return nil, fail(http.StatusRequestEntityTooLarge, "profile too large",
			fmt.Errorf("body of %d bytes is over the limit of %d", r.ContentLength, s.cfg.MaxBodyBytes))
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fail(http.StatusRequestEntityTooLarge, "profile too large",
				fmt.Errorf("body is over the limit of %d bytes", s.cfg.MaxBodyBytes))
		}
		return nil, fail(http.StatusBadRequest, "could not read body", err)
	}
	s.metrics.bytesIn.Add(float64(len(raw)))
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
		if int64(len(raw)) > s.cfg.MaxDecompressedBytes {
			return nil, fail(http.StatusRequestEntityTooLarge, "body too large", nil)
		}
		return raw, nil
	case "gzip", "x-gzip":
		if !isGzip(raw) {
			return nil, fail(http.StatusBadRequest, "body is not gzip", errors.New("Content-Encoding says gzip"))
		}
		plain, err := gunzip(raw, s.cfg.MaxDecompressedBytes)
		if err != nil {
			return nil, err
		}
		s.metrics.bytesInflated.Add(float64(len(plain)))
		return plain, nil
	default:
		return nil, fail(http.StatusUnsupportedMediaType, "unsupported Content-Encoding",
			fmt.Errorf("%q: send the body as it is or gzip", enc))
	}
}

// describeFront parses an envelope object as the indexer will and maps its errors to replies: everything
// wrong with the request is a 400 naming it.
func describeFront(text []byte, f profile.Format) ([]profile.Unit, error) {
	units, err := profile.Describe(text, f)
	if err != nil {
		var le *profile.LineError
		if errors.As(err, &le) {
			return nil, fail(http.StatusBadRequest, "malformed profile: "+le.Error(), nil)
		}
		return nil, fail(http.StatusBadRequest, "malformed profile: "+err.Error(), nil)
	}
	return units, nil
}

// FrontDoorKey is where a front-door request is stored: beside the agent uploads of its (first) service,
// sorted by time, named by kind ("pyroscope", "otlp").
func FrontDoorKey(service string, start time.Time, host, id, kind string) string {
	hh := md5.Sum([]byte(host))
	return "profiles/" + url.PathEscape(service) + "/" + start.UTC().Format("2006-01-02/15/20060102T150405Z") +
		"_" + hex.EncodeToString(hh[:4]) + "_" + id + "." + kind + ".gz"
}

var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(io.Discard) }}

// gzipText compresses an object for the store.
func gzipText(text []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(text)/4 + 64)
	zw := gzipWriters.Get().(*gzip.Writer)
	zw.Reset(&buf)
	_, _ = zw.Write(text) // a bytes.Buffer does not fail
	_ = zw.Close()
	gzipWriters.Put(zw)
	return buf.Bytes()
}

// frontResult is what a front-door request came to.
type frontResult struct {
	// Stored is the number of events published; Skipped the reasons units were not indexed.
	Stored  int
	Skipped []string
}

// acceptUnits checks the units of a parsed front-door request against the token and the input rules,
// then archives the object and publishes one event per unit that has samples. kind names the object.
func (s *Server) acceptUnits(ctx context.Context, tok pgdb.Token, kind string, text []byte, units []profile.Unit,
	now time.Time) (frontResult, error) {
	var res frontResult
	var keep []profile.Unit
	for _, u := range units {
		if u.Skipped != "" {
			res.Skipped = append(res.Skipped, u.Skipped)
			continue
		}
		if err := checkService(u.Service); err != nil {
			return res, err
		}
		if !tok.AllowsService(u.Service) {
			return res, fail(http.StatusForbidden, "API key is not valid for this service", fmt.Errorf("service %q", u.Service))
		}
		if err := checkName("hostname", u.Host); err != nil {
			return res, err
		}
		if err := checkName("instance type", u.InstanceType); err != nil {
			return res, err
		}
		if err := checkPeriod(u.Start, u.End, now); err != nil {
			return res, err
		}
		if u.Samples == 0 {
			continue // nothing to index: no event, like a profile of only skipped lines
		}
		keep = append(keep, u)
	}
	if len(keep) == 0 {
		return res, nil
	}

	// From here on every failure is the server's: 503, bounded by StoreTimeout, not cut short if the
	// client hangs up.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.StoreTimeout)
	defer cancel()
	first := keep[0]
	objID := ProfileID(first.Service, first.Start, first.Host, keep[0].Content)
	objKey := FrontDoorKey(first.Service, first.Start, first.Host, objID, kind)
	body := gzipText(text)

	svcs := map[string]pgdb.Service{}
	var metaErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		for _, u := range keep {
			if _, ok := svcs[u.Service]; ok {
				continue
			}
			var svc pgdb.Service
			if svc, metaErr = s.service(sctx, u.Service, now); metaErr != nil {
				return
			}
			svcs[u.Service] = svc
		}
	})
	t0 := time.Now()
	storeErr := s.store.Put(sctx, objKey, body, "application/gzip")
	s.metrics.storeLatency.Observe(time.Since(t0).Seconds())
	wg.Wait()
	if storeErr != nil {
		s.metrics.storeErrors.Inc()
		s.log.Warn("store failed", "kind", kind, "key", objKey, "err", storeErr)
		return res, unavailable("object store unavailable", storeErr)
	}
	if metaErr != nil {
		return res, metadataFailed(metaErr)
	}
	for _, u := range keep {
		// The unit's id covers the request's identifying bytes and its format (its group), so a retry
		// gets the same ids and each group its own.
		id := ProfileID(u.Service, u.Start, u.Host, append(append([]byte(nil), u.Content...), u.Format...))
		if skipIndexing(svcs[u.Service], id) {
			s.metrics.downsampled.Inc()
			continue
		}
		ev := stream.Event{ID: id, Service: u.Service, Host: u.Host, Start: u.Start, End: u.End, Key: objKey,
			Size: int64(len(body)), Received: now, InstanceType: u.InstanceType, Format: string(u.Format)}
		t0 = time.Now()
		if err := s.publish(sctx, ev); err != nil {
			s.metrics.publishErrors.Inc()
			s.log.Warn("publish failed", "service", u.Service, "id", id, "err", err)
			return res, unavailable("event stream unavailable", err)
		}
		s.metrics.ackLatency.Observe(time.Since(t0).Seconds())
		res.Stored++
	}
	return res, nil
}
