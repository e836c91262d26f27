package profile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrMetadataMissing is returned (possibly wrapped) when the header JSON has
// no "metadata" key. Its message is the one the original server sent back to
// the agent in a 400 reply.
var ErrMetadataMissing = errors.New("Agent metadata is missing, probably you are using and old agent")

// ErrBadMetadata is returned, wrapped with a detail, when the first line of a
// profile is not "#" followed by a JSON object of the expected shape. Its
// message is the one the original server sent back to the agent in a 400
// reply; use errors.Is to detect it.
var ErrBadMetadata = errors.New("Failed to parse v2 metadata")

// ProfileAPIVersionV1 is the run_arguments.profile_api_version value of old
// agents whose stack lines carry no container field.
const ProfileAPIVersionV1 = "v1"

// Header is the parsed first line of a profile.
type Header struct {
	// Hostname is metadata.hostname.
	Hostname string
	// AgentVersion is metadata.agent_version.
	AgentVersion string
	// InstanceType is metadata.cloud_info.instance_type, empty when absent.
	InstanceType string
	// CloudProvider is metadata.cloud_provider.
	CloudProvider string
	// ProfileAPIVersion is metadata.run_arguments.profile_api_version.
	ProfileAPIVersion string
	// ServiceName is metadata.run_arguments.service_name.
	ServiceName string
	// ProfilingMode is the top-level profiling_mode, or metadata.profiling_mode
	// when the top-level key is absent or empty.
	ProfilingMode string
	// Containers is the list of raw container names seen during the period.
	Containers []string
	// ContainerNamesEnabled is container_names_enabled.
	ContainerNamesEnabled bool
	// AppMetadataEnabled is application_metadata_enabled; when true every
	// stack line starts with an application-metadata index field.
	AppMetadataEnabled bool
	// CPUAvg is metrics.cpu_avg, the average CPU use in percent.
	CPUAvg float64
	// MemAvg is metrics.mem_avg, the average memory use in percent.
	MemAvg float64
	// HasMetrics says that metrics.cpu_avg and metrics.mem_avg are both numbers (CPUAvg is 0 both when
	// the agent said 0 and when it said nothing).
	HasMetrics bool
	// Processors is metadata.processors verbatim (any JSON value), nil when absent.
	Processors json.RawMessage
	// SpawnTime is metadata.spawn_time as sent by the agent.
	SpawnTime string
	// RunArguments is metadata.run_arguments verbatim, nil when absent.
	RunArguments json.RawMessage
	// Raw is the whole header JSON (the first line without "#"), owned by the
	// Header.
	Raw json.RawMessage
}

// PrefixFields returns how many leading ";"-separated fields precede the
// process name on every stack line of a profile with this header: 2 when
// application metadata is enabled (index and container), 0 for profile API
// version "v1" and 1 (the container) otherwise.
func (h *Header) PrefixFields() int {
	switch {
	case h.AppMetadataEnabled:
		return 2
	case h.ProfileAPIVersion == ProfileAPIVersionV1:
		return 0
	default:
		return 1
	}
}

type headerJSON struct {
	Containers            []string      `json:"containers"`
	ContainerNamesEnabled bool          `json:"container_names_enabled"`
	Metadata              *metadataJSON `json:"metadata"`
	Metrics               *struct {
		CPUAvg *float64 `json:"cpu_avg"`
		MemAvg *float64 `json:"mem_avg"`
	} `json:"metrics"`
	ApplicationMetadataEnabled bool   `json:"application_metadata_enabled"`
	ProfilingMode              string `json:"profiling_mode"`
}

type metadataJSON struct {
	Hostname      *string `json:"hostname"`
	AgentVersion  string  `json:"agent_version"`
	CloudProvider string  `json:"cloud_provider"`
	CloudInfo     *struct {
		InstanceType string `json:"instance_type"`
	} `json:"cloud_info"`
	RunArguments  json.RawMessage `json:"run_arguments"`
	SpawnTime     string          `json:"spawn_time"`
	ProfilingMode string          `json:"profiling_mode"`
	Processors    json.RawMessage `json:"processors"`
}

type runArgumentsJSON struct {
	ServiceName       string `json:"service_name"`
	ProfileAPIVersion string `json:"profile_api_version"`
}

// ParseHeader parses the first line of a profile: "#" followed by one JSON
// object. Surrounding white space (including a trailing "\r") is ignored.
//
// It returns an error wrapping ErrMetadataMissing when the object has no
// "metadata" key, and an error wrapping ErrBadMetadata when the line is not
// "#" plus a JSON object, when a known field has the wrong JSON type, or when
// metadata is not an object with a string "hostname" (the original server
// refused such headers too). JSON keys are matched like encoding/json does,
// that is case-insensitively.
func ParseHeader(line []byte) (Header, error) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '#' {
		return Header{}, fmt.Errorf("%w: the first line does not start with '#'", ErrBadMetadata)
	}
	body := bytes.TrimSpace(line[1:])
	if len(body) == 0 || body[0] != '{' {
		return Header{}, fmt.Errorf("%w: the header is not a JSON object", ErrBadMetadata)
	}
	raw := append(json.RawMessage(nil), body...)
	if h, ok := scanHeader(body, raw); ok {
		return h, nil
	}
	return decodeHeader(body, raw)
}

// decodeHeader is ParseHeader by encoding/json, for the headers scanHeader leaves to it; raw is the
// Header's own copy of body.
func decodeHeader(body, raw json.RawMessage) (Header, error) {
	var hj headerJSON
	if err := json.Unmarshal(body, &hj); err != nil {
		return Header{}, fmt.Errorf("%w: %v", ErrBadMetadata, err)
	}
	mj := hj.Metadata
	if mj == nil {
		// Absent or null: tell them apart (this is the error path only).
		var probe struct {
			Metadata json.RawMessage `json:"metadata"`
		}
		if json.Unmarshal(body, &probe) == nil && len(probe.Metadata) == 0 {
			return Header{}, ErrMetadataMissing
		}
		return Header{}, fmt.Errorf("%w: metadata is not a JSON object", ErrBadMetadata)
	}
	if mj.Hostname == nil {
		return Header{}, fmt.Errorf("%w: metadata.hostname is missing", ErrBadMetadata)
	}
	h := Header{
		Hostname:              *mj.Hostname,
		AgentVersion:          mj.AgentVersion,
		CloudProvider:         mj.CloudProvider,
		ProfilingMode:         hj.ProfilingMode,
		Containers:            hj.Containers,
		ContainerNamesEnabled: hj.ContainerNamesEnabled,
		AppMetadataEnabled:    hj.ApplicationMetadataEnabled,
		SpawnTime:             mj.SpawnTime,
		Processors:            mj.Processors,
		Raw:                   raw,
	}
	if h.ProfilingMode == "" {
		h.ProfilingMode = mj.ProfilingMode
	}
	if mj.CloudInfo != nil {
		h.InstanceType = mj.CloudInfo.InstanceType
	}
	if m := hj.Metrics; m != nil {
		if m.CPUAvg != nil {
			h.CPUAvg = *m.CPUAvg
		}
		if m.MemAvg != nil {
			h.MemAvg = *m.MemAvg
		}
		h.HasMetrics = m.CPUAvg != nil && m.MemAvg != nil
	}
	if len(mj.RunArguments) > 0 && !bytes.Equal(mj.RunArguments, []byte("null")) {
		if mj.RunArguments[0] != '{' {
			return Header{}, fmt.Errorf("%w: metadata.run_arguments is not a JSON object", ErrBadMetadata)
		}
		var rj runArgumentsJSON
		if err := json.Unmarshal(mj.RunArguments, &rj); err != nil {
			return Header{}, fmt.Errorf("%w: metadata.run_arguments: %v", ErrBadMetadata, err)
		}
		h.ServiceName, h.ProfileAPIVersion = rj.ServiceName, rj.ProfileAPIVersion
		h.RunArguments = mj.RunArguments
	}
	return h, nil
}
