package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/flamestream/flamestream/internal/pgdb"
	"github.com/flamestream/flamestream/internal/profile"
	"github.com/flamestream/flamestream/stream"
)

// Header names the agent sends (Go canonicalizes case, so any spelling matches).
const (
	HeaderAPIKey      = "GPROFILER-API-KEY"
	HeaderServiceName = "GPROFILER-SERVICE-NAME"
)

func randFloat() float64 { return rand.Float64() }

// upload is the JSON body of POST /api/v2/profiles after gunzip.
type upload struct {
	StartTime string          `json:"start_time"`
	EndTime   string          `json:"end_time"`
	Hostname  string          `json:"hostname"`
	Profile   *string         `json:"profile"`
	GPID      json.RawMessage `json:"gpid"`
	SpawnTime string          `json:"spawn_time"`
	CPUAvg    float64         `json:"cpu_avg"`
	MemAvg    float64         `json:"mem_avg"`
}

// credentials returns the token and service of a request: headers first, then the query parameters the
// agent also sends.
func credentials(r *http.Request) (key, service string) {
	key = r.Header.Get(HeaderAPIKey)
	service = r.Header.Get(HeaderServiceName)
	q := r.URL.Query()
	if key == "" {
		key = q.Get("key")
	}
	if service == "" {
		service = q.Get("service")
	}
	return key, service
}

// authorize checks an agent token for service.
func (s *Server) authorize(ctx context.Context, key, service string) (pgdb.Token, error) {
	if key == "" {
		return pgdb.Token{}, fail(http.StatusUnauthorized, "missing API key", errors.New("send the GPROFILER-API-KEY header"))
	}
	tok, err := s.meta.CheckToken(ctx, key)
	if errors.Is(err, pgdb.ErrTokenInvalid) {
		return tok, fail(http.StatusUnauthorized, "Invalid API key", nil)
	}
	if err != nil {
		return tok, unavailable("metadata store unavailable", err)
	}
	if tok.Kind != pgdb.KindAgent {
		return tok, fail(http.StatusForbidden, "this API key may not upload profiles", errors.New("it is a read token"))
	}
	if !tok.AllowsService(service) {
		return tok, fail(http.StatusForbidden, "API key is not valid for this service", fmt.Errorf("service %q", service))
	}
	return tok, nil
}

func (s *Server) healthCheck(w http.ResponseWriter, r *http.Request) error {
	key, service := credentials(r)
	if r.Header.Get(HeaderAPIKey) != "" && r.Header.Get(HeaderServiceName) != "" {
		if _, err := s.authorize(r.Context(), key, service); err != nil {
			var e *apiError
			if errors.As(err, &e) && e.status < 500 {
				// The original answers 400 here and the agent relies on it.
				return fail(http.StatusBadRequest, "Invalid API key", nil)
			}
			return err
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": "ok"})
	return nil
}

// readBody reads the compressed body within the limits and returns it with its decompressed form.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) (raw, plain []byte, err error) {
	if r.ContentLength < 0 {
		return nil, nil, fail(http.StatusLengthRequired, "Content-Length required", nil)
	}
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return nil, nil, fail(http.StatusRequestEntityTooLarge, "profile too large",
			fmt.Errorf("body of %d bytes is over the limit of %d", r.ContentLength, s.cfg.MaxBodyBytes))
	}
	raw, err = io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, nil, fail(http.StatusRequestEntityTooLarge, "profile too large", err)
		}
		return nil, nil, fail(http.StatusBadRequest, "could not read body", err)
	}
	if len(raw) < 2 || raw[0] != 0x1f || raw[1] != 0x8b {
		return nil, nil, fail(http.StatusBadRequest, "body is not gzip", errors.New("send the JSON gzip-compressed with Content-Encoding: gzip"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, nil, fail(http.StatusBadRequest, "malformed gzip body", err)
	}
	// Read one byte past the limit to tell "exactly at the limit" from "over it" without inflating a bomb.
	plain, err = io.ReadAll(io.LimitReader(zr, s.cfg.MaxDecompressedBytes+1))
	if err != nil {
		return nil, nil, fail(http.StatusBadRequest, "malformed gzip body", err)
	}
	if int64(len(plain)) > s.cfg.MaxDecompressedBytes {
		return nil, nil, fail(http.StatusRequestEntityTooLarge, "profile too large",
			fmt.Errorf("decompressed body is over the limit of %d bytes", s.cfg.MaxDecompressedBytes))
	}
	return raw, plain, nil
}

// parseTime accepts the agent's ISO 8601 times, with or without zone (no zone means UTC).
func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an ISO 8601 datetime", s)
}

func parseGPID(raw json.RawMessage) (int64, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, errors.New("gpid is required (string or integer; empty on the first upload)")
	}
	var s string
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, err
		}
	} else {
		s = string(raw)
	}
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("gpid %s is not a non-negative integer", s)
	}
	return n, nil
}

// ProfileID is the deterministic id of an upload: the hash of the service, the period's start, the host
// and the profile text. A retry of the same profile gets the same id whatever gzip wrote in its header and
// whatever else changed in the body (the gpid the agent learnt meanwhile), so JetStream and the indexer
// drop the duplicate.
func ProfileID(service string, start time.Time, host, text string) string {
	h := sha256.New()
	for _, part := range []string{service, start.UTC().Format(time.RFC3339Nano), host, text} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// ObjectKey is where the raw upload is stored: it sorts by service, then time.
func ObjectKey(service string, start time.Time, host, id string) string {
	hh := md5.Sum([]byte(host))
	return "profiles/" + url.PathEscape(service) + "/" + start.UTC().Format("2006-01-02/15/20060102T150405Z") +
		"_" + hex.EncodeToString(hh[:4]) + "_" + id + ".json.gz"
}

func (s *Server) postProfile(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	key, service := credentials(r)
	if service == "" {
		return fail(http.StatusBadRequest, "missing service name", errors.New("send the GPROFILER-SERVICE-NAME header"))
	}
	tok, err := s.authorize(ctx, key, service)
	if err != nil {
		return err
	}
	if ok, wait := s.allow(tok.ID); !ok {
		e := fail(http.StatusTooManyRequests, "too many uploads for this API key", nil)
		e.retryAfter = max(wait, time.Second)
		return e
	}
	raw, plain, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	s.metrics.bytesIn.Add(float64(len(raw)))
	var up upload
	if err := json.Unmarshal(plain, &up); err != nil {
		return fail(http.StatusBadRequest, "body is not valid JSON", err)
	}
	if up.Profile == nil {
		return fail(http.StatusBadRequest, "missing field", errors.New("profile is required"))
	}
	if up.StartTime == "" {
		return fail(http.StatusBadRequest, "missing field", errors.New("start_time is required"))
	}
	start, err := parseTime(up.StartTime)
	if err != nil {
		return fail(http.StatusBadRequest, "bad start_time", err)
	}
	end := start
	if up.EndTime != "" {
		if end, err = parseTime(up.EndTime); err != nil {
			return fail(http.StatusBadRequest, "bad end_time", err)
		}
	}
	gpid, err := parseGPID(up.GPID)
	if err != nil {
		return fail(http.StatusBadRequest, "bad gpid", err)
	}
	hdr, err := profile.Parse([]byte(*up.Profile), func(*profile.Line) error { return nil })
	if err != nil {
		switch {
		case errors.Is(err, profile.ErrMetadataMissing):
			return fail(http.StatusBadRequest, profile.ErrMetadataMissing.Error(), nil)
		case errors.Is(err, profile.ErrBadMetadata):
			return fail(http.StatusBadRequest, profile.ErrBadMetadata.Error(), err)
		}
		return fail(http.StatusBadRequest, "malformed profile", err)
	}
	host := hdr.Hostname
	if host == "" {
		host = up.Hostname
	}
	agent := pgdb.Agent{Service: service, Hostname: host, AgentVersion: hdr.AgentVersion,
		InstanceType: hdr.InstanceType, CloudProvider: hdr.CloudProvider, RunArguments: hdr.RunArguments}
	seenC, seenK := map[string]bool{}, map[string]bool{}
	for _, c := range hdr.Containers {
		name, obj := profile.ContainerInfo(c)
		if name != "" && !seenC[name] {
			seenC[name] = true
			agent.Containers = append(agent.Containers, name)
		}
		if obj != "" && !seenK[obj] {
			seenK[obj] = true
			agent.K8sObjects = append(agent.K8sObjects, obj)
		}
	}

	// From here on every failure is the server's: the agent gets 503 and retries on its next cycle.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.StoreTimeout)
	defer cancel()
	now := time.Now().UTC()
	svc, err := s.meta.TouchService(sctx, service, now)
	if err != nil {
		return unavailable("metadata store unavailable", err)
	}
	gpid, err = s.meta.RecordProfile(sctx, gpid, agent, now)
	if err != nil {
		return unavailable("metadata store unavailable", err)
	}
	id := ProfileID(service, start, host, *up.Profile)
	objKey := ObjectKey(service, start, host, id)
	if err := s.store.Put(sctx, objKey, raw, "application/gzip"); err != nil {
		s.metrics.storeErrors.Inc()
		s.log.Warn("store failed", "service", service, "key", objKey, "err", err)
		return unavailable("object store unavailable", err)
	}
	if svc.SampleThreshold > 0 && !strings.Contains(service, "test") && s.draw() < svc.SampleThreshold {
		s.metrics.downsampled.Inc()
		writeJSON(w, http.StatusOK, map[string]any{"message": "ok", "gpid": gpid})
		return nil
	}
	ev := stream.Event{ID: id, Service: service, Host: host, GPID: gpid, Start: start, End: end, Key: objKey,
		Size: int64(len(raw)), Received: now, AgentVersion: hdr.AgentVersion, InstanceType: hdr.InstanceType}
	t0 := time.Now()
	if err := s.publish(sctx, ev); err != nil {
		s.metrics.publishErrors.Inc()
		s.log.Warn("publish failed", "service", service, "id", id, "err", err)
		return unavailable("event stream unavailable", err)
	}
	s.metrics.ackLatency.Observe(time.Since(t0).Seconds())
	writeJSON(w, http.StatusOK, map[string]any{"message": "ok", "gpid": gpid})
	return nil
}
