package ingest

import (
	"errors"
	"mime"
	"net/http"
	"strings"
	"time"

	collpb "go.opentelemetry.io/proto/otlp/collector/profiles/v1development"
	"google.golang.org/protobuf/proto"

	"github.com/flamestream/flamestream/internal/profile"
)

// postOTLP is OTLP/HTTP POST /v1development/profiles: an ExportProfilesServiceRequest in protobuf (gzip
// or not). Each resource's service.name is its service (?service= or the GPROFILER-SERVICE-NAME header
// for resources without one); host.name, host.type, container.id, k8s.pod.name, ... of the sample, the
// profile or the resource map onto the dimensions. Of each scope's profiles only the CPU samples are read
// (sample type samples or cpu). One event is published per (service, host, instance type) of the request,
// all pointing at the one stored object. The reply is an ExportProfilesServiceResponse; a request without
// CPU samples is stored nowhere and says so in partial_success.error_message.
func (s *Server) postOTLP(w http.ResponseWriter, r *http.Request) error {
	tok, err := s.checkFrontToken(r)
	if err != nil {
		return err
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, _ := mime.ParseMediaType(ct); mt != "application/x-protobuf" {
			return fail(http.StatusUnsupportedMediaType, "unsupported Content-Type",
				errors.New(ct+": send OTLP in protobuf (application/x-protobuf); OTLP/JSON is not accepted"))
		}
	}
	body, err := s.readFrontBody(w, r)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	service := r.Header.Get(HeaderServiceName)
	if service == "" {
		service = r.URL.Query().Get("service")
	}
	env := profile.Envelope{Kind: string(profile.FormatOTLP), ContentType: r.Header.Get("Content-Type"),
		Service: service, Received: now}
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
	out, err := proto.Marshal(&reply)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
	return nil
}
