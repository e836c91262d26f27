package ingest

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	collpb "go.opentelemetry.io/proto/otlp/collector/profiles/v1development"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/flamestream/flamestream/internal/profile"
)

// Content types of OTLP/HTTP: binary protobuf and its JSON encoding.
const (
	contentProtobuf = "application/x-protobuf"
	contentJSON     = "application/json"
)

// postOTLP is OTLP/HTTP POST /v1development/profiles: an ExportProfilesServiceRequest in protobuf
// (Content-Type application/x-protobuf, or none) or in OTLP/JSON (application/json), gzip or not. Each
// resource's service.name is its service (?service= or the GPROFILER-SERVICE-NAME header for resources
// without one); host.name, host.type, container.id, k8s.pod.name, ... of the sample, the profile or the
// resource map onto the dimensions. Of each scope's profiles only the CPU samples are read (sample type
// samples or cpu). One event is published per (service, host, instance type) of the request, all pointing
// at the one stored object. The reply is an ExportProfilesServiceResponse in the request's encoding; a
// request without CPU samples is stored nowhere and says so in partial_success.error_message.
//
// A JSON request is stored as its protobuf encoding: the indexer reads one encoding, the message is the
// same (JSON carries nothing protobuf does not), and the object is several times smaller. The protobuf
// is deterministic, so a retry of a JSON request, or the same request sent once in each encoding, gets
// the same ids and is stored once.
func (s *Server) postOTLP(w http.ResponseWriter, r *http.Request) error {
	tok, err := s.checkFrontToken(r)
	if err != nil {
		return err
	}
	isJSON := false
	if ct := r.Header.Get("Content-Type"); ct != "" {
		switch mt, _, _ := mime.ParseMediaType(ct); mt {
		case contentProtobuf:
		case contentJSON:
			isJSON = true
		default:
			return fail(http.StatusUnsupportedMediaType, "unsupported Content-Type",
				errors.New(ct+": send OTLP in protobuf (application/x-protobuf) or OTLP/JSON (application/json)"))
		}
	}
	body, err := s.readFrontBody(w, r)
	if err != nil {
		return err
	}
	if isJSON {
		if body, err = otlpJSONToProtobuf(body); err != nil {
			return err
		}
	}
	now := time.Now().UTC()
	service := r.Header.Get(HeaderServiceName)
	if service == "" {
		service = r.URL.Query().Get("service")
	}
	env := profile.Envelope{Kind: string(profile.FormatOTLP), ContentType: contentProtobuf, Service: service, Received: now}
	text := env.Encode(body)
	units, err := describeFront(text, profile.FormatOTLP)
	if err != nil {
		return err
	}
	res, err := s.acceptUnits(r.Context(), tok, "otlp", text, units, now)
	if err != nil {
		return err
	}
	var reply collpb.ExportProfilesServiceResponse
	if res.Stored == 0 && len(res.Skipped) > 0 {
		reply.PartialSuccess = &collpb.ExportProfilesPartialSuccess{ErrorMessage: "not stored: " + strings.Join(res.Skipped, "; ")}
	}
	ct := contentProtobuf
	var out []byte
	if isJSON {
		ct = contentJSON
		out, err = protojson.Marshal(&reply)
	} else {
		out, err = proto.Marshal(&reply)
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
	return nil
}

// otlpJSON reads OTLP/JSON as the OTLP specification maps it: field names in lowerCamelCase or as in the
// .proto, enums by name or number, 64-bit integers as strings or numbers, unknown fields ignored (a newer
// sender's fields), and trace, span and profile ids in hex (see fixHexIDs).
var otlpJSON = protojson.UnmarshalOptions{DiscardUnknown: true}

// otlpProtobuf is deterministic so that the same request always stores the same bytes (ids, dedup).
var otlpProtobuf = proto.MarshalOptions{Deterministic: true}

// otlpJSONToProtobuf decodes an OTLP/JSON ExportProfilesServiceRequest and returns it in protobuf. What
// is wrong with the JSON is a 400 naming it.
func otlpJSONToProtobuf(body []byte) ([]byte, error) {
	var req collpb.ExportProfilesServiceRequest
	if err := otlpJSON.Unmarshal(body, &req); err != nil {
		return nil, fail(http.StatusBadRequest, "malformed OTLP/JSON: "+jsonErrorText(err), nil)
	}
	if err := fixHexIDs(&req); err != nil {
		return nil, fail(http.StatusBadRequest, "malformed OTLP/JSON: "+err.Error(), nil)
	}
	out, err := otlpProtobuf.Marshal(&req)
	if err != nil {
		return nil, fail(http.StatusBadRequest, "malformed OTLP/JSON: "+err.Error(), nil)
	}
	return out, nil
}

// jsonErrorText is protojson's error without its "proto:" prefix and the non-breaking space protojson puts
// in its messages on purpose (so that callers do not compare them): the reply should read plainly.
func jsonErrorText(err error) string {
	s := strings.ReplaceAll(err.Error(), "\u00a0", " ")
	return strings.TrimPrefix(s, "proto: ")
}

// fixHexIDs undoes protojson's reading of the ids. The OTLP JSON mapping writes traceId, spanId (and,
// as the Collector writes it, profileId) in hex, while protojson reads every bytes field as base64. Hex
// text is base64 text too, so protojson took the 32 hex digits of a 16-byte id for 24 bytes (16 digits of
// an 8-byte id for 12): encoding those bytes in base64 again gives back the digits exactly, which are then
// read as hex. An id of the right length (a sender that used base64 after all) is kept as it is.
func fixHexIDs(req *collpb.ExportProfilesServiceRequest) error {
	fix := func(what string, b []byte, size int) ([]byte, error) {
		switch len(b) {
		case 0, size:
			return b, nil
		case size * 3 / 2: // 2*size hex digits read as base64
			if id, err := hex.DecodeString(base64.StdEncoding.EncodeToString(b)); err == nil && len(id) == size {
				return id, nil
			}
		}
		return nil, fmt.Errorf("%s is not %d bytes in hex (%d hex digits)", what, size, 2*size)
	}
	var err error
	for i, l := range req.GetDictionary().GetLinkTable() {
		if l.TraceId, err = fix(fmt.Sprintf("dictionary.linkTable[%d].traceId", i), l.TraceId, 16); err != nil {
			return err
		}
		if l.SpanId, err = fix(fmt.Sprintf("dictionary.linkTable[%d].spanId", i), l.SpanId, 8); err != nil {
			return err
		}
	}
	for _, rp := range req.GetResourceProfiles() {
		for _, sp := range rp.GetScopeProfiles() {
			for _, p := range sp.GetProfiles() {
				if p.ProfileId, err = fix("profileId", p.ProfileId, 16); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
