package ingest

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/flamestream/flamestream/internal/pgdb"
	"github.com/flamestream/flamestream/internal/profile"
	"github.com/flamestream/flamestream/stream"
)

// Header names the agent sends (Go canonicalizes case, so any spelling matches).
const (
	HeaderAPIKey      = "GPROFILER-API-KEY"
	HeaderServiceName = "GPROFILER-SERVICE-NAME"
)

// retryAfter is what a 503 tells the agent; it retries on its next cycle anyway.
const retryAfter = 30 * time.Second

// upload is the JSON body of POST /api/v2/profiles after gunzip.
type upload struct {
	StartTime string          `json:"start_time"`
	EndTime   string          `json:"end_time"`
	Hostname  string          `json:"hostname"`
	Profile   *string         `json:"profile"` // set (to anything) when the body has a profile
	GPID      json.RawMessage `json:"gpid"`
	SpawnTime string          `json:"spawn_time"`
	CPUAvg    float64         `json:"cpu_avg"`
	MemAvg    float64         `json:"mem_avg"`
	// ProfileBytes is the profile text.
	ProfileBytes []byte `json:"-"`
}

// credentials returns the token and service of a request: headers first, then the query parameters the
// agent also sends.
func credentials(r *http.Request) (key, service string) {
	key = r.Header.Get(HeaderAPIKey)
	service = r.Header.Get(HeaderServiceName)
	if key == "" || service == "" {
		q := r.URL.Query()
		if key == "" {
			key = q.Get("key")
		}
		if service == "" {
			service = q.Get("service")
		}
	}
	return key, service
}

// checkToken returns the live token of a secret, from the cache when it is fresh.
func (s *Server) checkToken(ctx context.Context, key string) (pgdb.Token, error) {
	if key == "" {
		return pgdb.Token{}, fail(http.StatusUnauthorized, "missing API key", errors.New("send the GPROFILER-API-KEY header"))
	}
	h := sha256.Sum256([]byte(key))
	tok, err := s.tokens.getOrLoad(ctx, string(h[:]), time.Now(), func(ctx context.Context) (pgdb.Token, error) {
		return s.meta.CheckToken(ctx, key)
	})
	if errors.Is(err, pgdb.ErrTokenInvalid) {
		return tok, fail(http.StatusUnauthorized, "Invalid API key", nil)
	}
	if err != nil {
		return tok, unavailable("metadata store unavailable", err)
	}
	return tok, nil
}

// authorize checks an agent token for service.
func (s *Server) authorize(ctx context.Context, key, service string) (pgdb.Token, error) {
	tok, err := s.checkToken(ctx, key)
	if err != nil {
		return tok, err
	}
	if tok.Kind != pgdb.KindAgent {
		return tok, fail(http.StatusForbidden, "this API key may not upload profiles", errors.New("it is a read token"))
	}
	if !tok.AllowsService(service) {
		return tok, fail(http.StatusForbidden, "API key is not valid for this service", fmt.Errorf("service %q", service))
	}
	return tok, nil
}

// service returns a service's settings and records that it was seen; with the cache on, PostgreSQL is
// touched once per service per TTL instead of once per upload.
func (s *Server) service(ctx context.Context, name string, now time.Time) (pgdb.Service, error) {
	return s.services.getOrLoad(ctx, name, now, func(ctx context.Context) (pgdb.Service, error) {
		return s.meta.TouchService(ctx, name, now)
	})
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

var gzipReaders sync.Pool

// gunzip inflates raw, refusing to produce more than limit bytes: a gzip bomb costs limit+1 bytes of
// memory at most, never what it would inflate to.
func gunzip(raw []byte, limit int64) ([]byte, error) { return gunzipTo(nil, raw, limit) }

// gunzipTo is gunzip into dst (from its start), which it grows when too small.
func gunzipTo(dst, raw []byte, limit int64) ([]byte, error) {
	br := bytes.NewReader(raw)
	zr, _ := gzipReaders.Get().(*gzip.Reader)
	var err error
	if zr == nil {
		zr, err = gzip.NewReader(br)
	} else {
		err = zr.Reset(br)
	}
	if err != nil {
		return nil, fail(http.StatusBadRequest, "malformed gzip body", err)
	}
	defer gzipReaders.Put(zr)
	// The gzip trailer holds the inflated size (mod 4 GiB): a good first guess for the buffer.
	// It is only a hint (a forged trailer must not make us allocate the limit), so it is capped by a
	// plausible compression ratio.
	hint := int64(binary.LittleEndian.Uint32(raw[len(raw)-4:]))
	hint = min(hint, int64(len(raw))*32+64<<10, limit) + 512
	if int64(cap(dst)) < hint {
		dst = make([]byte, 0, hint)
	}
	buf := bytes.NewBuffer(dst[:0])
	// Read one byte past the limit to tell "exactly at the limit" from "over it".
	if _, err := buf.ReadFrom(io.LimitReader(zr, limit+1)); err != nil {
		return nil, fail(http.StatusBadRequest, "malformed gzip body", err)
	}
	if int64(buf.Len()) > limit {
		return nil, fail(http.StatusRequestEntityTooLarge, "profile too large",
			fmt.Errorf("decompressed body is over the limit of %d bytes", limit))
	}
	return buf.Bytes(), nil
}

// uploadBuffers are the inflated body and the unescaped profile text of one upload, reused across
// uploads: at 60-line profiles they were a third of the bytes ingest allocated per upload. Nothing of an
// upload keeps a reference to them once its reply is written (the profile header, the agent record and
// the event copy what they keep; the object store gets the raw body, which is not pooled because an
// HTTP transport may still read a request body after the response).
type uploadBuffers struct {
	plain, text []byte
}

var uploadBufferPool = sync.Pool{New: func() any { return new(uploadBuffers) }}

// maxPooledBuffer bounds a pooled buffer: a rare huge upload's memory goes back to the heap, not to the
// pool.
const maxPooledBuffer = 4 << 20

func getUploadBuffers() *uploadBuffers { return uploadBufferPool.Get().(*uploadBuffers) }

func putUploadBuffers(b *uploadBuffers) {
	if cap(b.plain) > maxPooledBuffer {
		b.plain = nil
	}
	if cap(b.text) > maxPooledBuffer {
		b.text = nil
	}
	uploadBufferPool.Put(b)
}

func isGzip(b []byte) bool { return len(b) >= 18 && b[0] == 0x1f && b[1] == 0x8b }

// readBody reads the body within the limits and returns it with its decompressed form. Without
// requireGzip a body that is not gzip is taken as it is.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, requireGzip bool) (raw, plain []byte, err error) {
	return s.readBodyTo(w, r, requireGzip, nil)
}

// readBodyTo is readBody that inflates into bufs.plain (nil: a new buffer).
func (s *Server) readBodyTo(w http.ResponseWriter, r *http.Request, requireGzip bool, bufs *uploadBuffers) (raw, plain []byte, err error) {
	// Like the original, refuse a body of unknown length before reading it.
	if r.ContentLength < 0 {
		return nil, nil, fail(http.StatusLengthRequired, "Content-Length required", nil)
	}
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return nil, nil, fail(http.StatusRequestEntityTooLarge, "profile too large",
			fmt.Errorf("body of %d bytes is over the limit of %d", r.ContentLength, s.cfg.MaxBodyBytes))
	}
	raw = make([]byte, r.ContentLength)
	if _, err := io.ReadFull(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes), raw); err != nil {
		return nil, nil, fail(http.StatusBadRequest, "could not read body", err)
	}
	s.metrics.bytesIn.Add(float64(len(raw)))
	if !isGzip(raw) {
		if requireGzip || r.Header.Get("Content-Encoding") == "gzip" {
			return nil, nil, fail(http.StatusBadRequest, "body is not gzip", errors.New("send the JSON gzip-compressed with Content-Encoding: gzip"))
		}
		if int64(len(raw)) > s.cfg.MaxDecompressedBytes {
			return nil, nil, fail(http.StatusRequestEntityTooLarge, "body too large", nil)
		}
		return raw, raw, nil
	}
	var dst []byte
	if bufs != nil {
		dst = bufs.plain
	}
	plain, err = gunzipTo(dst, raw, s.cfg.MaxDecompressedBytes)
	if err != nil {
		return nil, nil, err
	}
	if bufs != nil {
		bufs.plain = plain[:0]
	}
	s.metrics.bytesInflated.Add(float64(len(plain)))
	return raw, plain, nil
}

var (
	timeLayouts       = [...]string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999"}
	timeLayoutsNoZone = [...]string{"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999", time.RFC3339Nano}
)

// parseTime accepts the agent's ISO 8601 times, with or without zone (no zone means UTC).
func parseTime(s string) (time.Time, error) {
	layouts := timeLayouts[:]
	if len(s) > 19 && !strings.ContainsAny(s[19:], "Zz+-") {
		// No zone, as the agent writes them: try its layouts first (a failed time.Parse allocates its
		// error).
		layouts = timeLayoutsNoZone[:]
	}
	for _, layout := range layouts {
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

// parsedUpload is a validated upload.
type parsedUpload struct {
	start, end time.Time
	gpid       int64
	host       string
	text       []byte
	hdr        profile.Header
}

// parseUpload decodes and validates an upload's JSON, and checks its profile text line by line in format f
// so that a malformed profile, or one the indexer could not store exactly (a count above profile.MaxCount,
// a time out of range, a hostname PostgreSQL cannot store), is refused now (400) rather than dead-lettered
// by the indexer later or refused by a database with a 5xx. now is the server's clock.
func parseUpload(plain []byte, f profile.Format, now time.Time) (parsedUpload, error) {
	return parseUploadTo(plain, f, now, nil)
}

// parseUploadTo is parseUpload that unescapes the profile text into *scratch (see decodeUploadTo).
func parseUploadTo(plain []byte, f profile.Format, now time.Time, scratch *[]byte) (parsedUpload, error) {
	var p parsedUpload
	var up upload
	if err := decodeUploadTo(plain, &up, scratch); err != nil {
		return p, fail(http.StatusBadRequest, "body is not valid JSON", err)
	}
	if up.Profile == nil {
		return p, fail(http.StatusBadRequest, "missing field", errors.New("profile is required"))
	}
	if up.StartTime == "" {
		return p, fail(http.StatusBadRequest, "missing field", errors.New("start_time is required"))
	}
	var err error
	if p.start, err = parseTime(up.StartTime); err != nil {
		return p, fail(http.StatusBadRequest, "bad start_time", err)
	}
	p.end = p.start
	if up.EndTime != "" {
		if p.end, err = parseTime(up.EndTime); err != nil {
			return p, fail(http.StatusBadRequest, "bad end_time", err)
		}
	}
	if err := checkPeriod(p.start, p.end, now); err != nil {
		return p, err
	}
	if p.gpid, err = parseGPID(up.GPID); err != nil {
		return p, fail(http.StatusBadRequest, "bad gpid", err)
	}
	p.text = up.ProfileBytes
	p.hdr, err = profile.Check(p.text, f)
	if err != nil {
		var le *profile.LineError
		switch {
		case errors.Is(err, profile.ErrMetadataMissing):
			return p, fail(http.StatusBadRequest, profile.ErrMetadataMissing.Error(), nil)
		case errors.Is(err, profile.ErrBadMetadata):
			return p, fail(http.StatusBadRequest, profile.ErrBadMetadata.Error(), err)
		case errors.As(err, &le):
			// The agent shows only the message: it names the line and what is wrong with it.
			return p, fail(http.StatusBadRequest, "malformed profile: "+le.Error(), nil)
		}
		return p, fail(http.StatusBadRequest, "malformed profile", err)
	}
	// Both hostnames are checked, though only one is kept: each reaches PostgreSQL on some path (the
	// agent record, the logs) and a NUL in either is a broken agent.
	if err := checkName("metadata.hostname", p.hdr.Hostname); err != nil {
		return p, err
	}
	if err := checkName("hostname", up.Hostname); err != nil {
		return p, err
	}
	p.host = p.hdr.Hostname
	if p.host == "" {
		p.host = up.Hostname
	}
	return p, nil
}

// agentOf is the agent record of an upload: its host, version, instance type, run arguments, and its
// containers turned into container names and Kubernetes object names by the original's rules. Its free
// text is cleaned for PostgreSQL (see input.go); service and host were checked already.
func agentOf(service string, p parsedUpload) pgdb.Agent {
	hdr := p.hdr
	a := pgdb.Agent{Service: service, Hostname: p.host, AgentVersion: cleanText(hdr.AgentVersion),
		InstanceType: cleanText(hdr.InstanceType), CloudProvider: cleanText(hdr.CloudProvider),
		RunArguments: cleanJSON(hdr.RunArguments)}
	// An agent has a handful of containers: a linear search is cheaper than two maps per upload.
	for _, c := range cleanTexts(hdr.Containers) {
		name, obj := profile.ContainerInfo(c)
		if name != "" && !slices.Contains(a.Containers, name) {
			a.Containers = append(a.Containers, name)
		}
		if obj != "" && !slices.Contains(a.K8sObjects, obj) {
			a.K8sObjects = append(a.K8sObjects, obj)
		}
	}
	return a
}

// ProfileID is the deterministic id of an upload: the hash of the service, the period's start, the host
// and the profile text. A retry of the same profile gets the same id whatever gzip wrote in its header and
// whatever else changed in the body (the gpid the agent learnt meanwhile), so JetStream and the indexer
// drop the duplicate.
func ProfileID(service string, start time.Time, host string, text []byte) string {
	h := sha256.New()
	for _, part := range []string{service, start.UTC().Format(time.RFC3339Nano), host} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	h.Write(text)
	h.Write([]byte{0})
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// ObjectKey is where the raw upload is stored: it sorts by service, then time.
func ObjectKey(service string, start time.Time, host, id string) string {
	hh := md5.Sum([]byte(host))
	return "profiles/" + url.PathEscape(service) + "/" + start.UTC().Format("2006-01-02/15/20060102T150405Z") +
		"_" + hex.EncodeToString(hh[:4]) + "_" + id + ".json.gz"
}

// sampleDraw maps a profile id to a uniform number in [0, 1). The downsampling decision is a function of
// the profile, so an agent retry of a skipped profile is skipped again rather than indexed.
func sampleDraw(id string) float64 {
	var b [8]byte
	if n, err := hex.Decode(b[:], []byte(id[:min(16, len(id))])); err != nil || n < 8 {
		return 0
	}
	return float64(binary.BigEndian.Uint64(b[:])>>11) / (1 << 53)
}

// skipIndexing applies the service's sample_threshold like the original: services with "test" in
// their name are never downsampled.
func skipIndexing(svc pgdb.Service, id string) bool {
	return svc.SampleThreshold > 0 && !strings.Contains(svc.Name, "test") && sampleDraw(id) < svc.SampleThreshold
}

// postProfileV2 is POST /api/v2/profiles: the profile's header tells its lines' layout.
func (s *Server) postProfileV2(w http.ResponseWriter, r *http.Request) error {
	return s.postProfile(w, r, profile.FormatV2)
}

// postProfileV1 is POST /api/v1/profiles, where agents started with --profile-api-version v1 post lines
// without prefix fields, whatever their header says.
func (s *Server) postProfileV1(w http.ResponseWriter, r *http.Request) error {
	return s.postProfile(w, r, profile.FormatV1)
}

func (s *Server) postProfile(w http.ResponseWriter, r *http.Request, format profile.Format) error {
	ctx := r.Context()
	key, service := credentials(r)
	if key == "" {
		return fail(http.StatusUnauthorized, "missing API key", errors.New("send the GPROFILER-API-KEY header"))
	}
	if service == "" {
		return fail(http.StatusBadRequest, "missing service name", errors.New("send the GPROFILER-SERVICE-NAME header"))
	}
	if err := checkService(service); err != nil {
		return err
	}
	tok, err := s.authorize(ctx, key, service)
	if err != nil {
		return err
	}
	if ok, wait := s.allow(tok.ID); !ok {
		s.metrics.rateLimited.Inc()
		e := fail(http.StatusTooManyRequests, "too many uploads for this API key", nil)
		e.retryAfter = max(wait, time.Second)
		return e
	}
	bufs := getUploadBuffers()
	defer putUploadBuffers(bufs)
	raw, plain, err := s.readBodyTo(w, r, true, bufs)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	p, err := parseUploadTo(plain, format, now, &bufs.text)
	if err != nil {
		return err
	}

	// From here on every failure is the server's: the agent gets 503 and retries on its next cycle (but
	// see metadataFailed). The work is bounded by StoreTimeout, and not cut short if the agent hangs up
	// meanwhile.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.StoreTimeout)
	defer cancel()
	id := ProfileID(service, p.start, p.host, p.text)
	objKey := ObjectKey(service, p.start, p.host, id)

	// The object write and the metadata writes are independent: run them together.
	var gpid int64
	var svc pgdb.Service
	var metaErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		if svc, metaErr = s.service(sctx, service, now); metaErr != nil {
			return
		}
		gpid, metaErr = s.agents.record(sctx, p.gpid, agentOf(service, p), now)
	})
	t0 := time.Now()
	storeErr := s.store.Put(sctx, objKey, raw, "application/gzip")
	s.metrics.storeLatency.Observe(time.Since(t0).Seconds())
	wg.Wait()
	if storeErr != nil {
		s.metrics.storeErrors.Inc()
		s.log.Warn("store failed", "service", service, "key", objKey, "err", storeErr)
		return unavailable("object store unavailable", storeErr)
	}
	if metaErr != nil {
		return metadataFailed(metaErr)
	}
	if skipIndexing(svc, id) {
		s.metrics.downsampled.Inc()
		writeOK(w, gpid)
		return nil
	}
	ev := stream.Event{ID: id, Service: service, Host: p.host, GPID: gpid, Start: p.start, End: p.end, Key: objKey,
		Size: int64(len(raw)), Received: now, AgentVersion: p.hdr.AgentVersion, InstanceType: p.hdr.InstanceType}
	if format == profile.FormatV1 {
		ev.Format = string(profile.FormatV1) // v2 stays implicit, as in every event published before
	}
	if s.bodies != nil {
		// Before the event, on the same connection: the body is in the cache by the time the event is read.
		s.bodies.Put(id, objKey, raw)
	}
	t0 = time.Now()
	if err := s.publish(sctx, ev); err != nil {
		s.metrics.publishErrors.Inc()
		s.log.Warn("publish failed", "service", service, "id", id, "err", err)
		return unavailable("event stream unavailable", err)
	}
	s.metrics.ackLatency.Observe(time.Since(t0).Seconds())
	writeOK(w, gpid)
	return nil
}

// writeOK writes an accepted upload's reply, {"gpid":N,"message":"ok"}: the bytes writeJSON writes for
// that map, without encoding a map by reflection on every upload.
func writeOK(w http.ResponseWriter, gpid int64) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	b := make([]byte, 0, 48)
	b = append(b, `{"gpid":`...)
	b = strconv.AppendInt(b, gpid, 10)
	b = append(b, ",\"message\":\"ok\"}\n"...)
	_, _ = w.Write(b)
}
