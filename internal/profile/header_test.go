package profile

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

// realProfilePath is the one stored copy of the real agent profile: internal/demo embeds it for the demo.
const realProfilePath = "../demo/agent-profile.collapsed"

func readRealProfile(tb testing.TB) []byte {
	tb.Helper()
	b, err := os.ReadFile(realProfilePath)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestParseHeaderReadsTheRealAgentHeader(t *testing.T) {
	text := readRealProfile(t)
	first, _, _ := bytes.Cut(text, []byte{'\n'})
	h, err := ParseHeader(first)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"Hostname", h.Hostname, "ip-172-31-33-27"},
		{"AgentVersion", h.AgentVersion, "1.35.0"},
		{"InstanceType", h.InstanceType, "t2.medium"},
		{"CloudProvider", h.CloudProvider, "aws"},
		{"ProfileAPIVersion", h.ProfileAPIVersion, ""},
		{"ServiceName", h.ServiceName, "docker_test_service"},
		{"ProfilingMode", h.ProfilingMode, "cpu"},
		{"Containers", strings.Join(h.Containers, ","), "gprofiler-ps-agents-logs-backend,gprofiler-ps-webapp,gprofiler-ps-clickhouse,gprofiler-ps-ch-indexer"},
		{"ContainerNamesEnabled", h.ContainerNamesEnabled, true},
		{"AppMetadataEnabled", h.AppMetadataEnabled, true},
		{"CPUAvg", h.CPUAvg, 8.8},
		{"MemAvg", h.MemAvg, 39.815384615384616},
		{"SpawnTime", h.SpawnTime, "2023-12-03T16:31:00"},
		{"PrefixFields", h.PrefixFields(), 2},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
	if !bytes.Equal(h.Raw, bytes.TrimSpace(first[1:])) || !json.Valid(h.Raw) {
		t.Errorf("Raw is not the header JSON")
	}
	var ra map[string]any
	if err := json.Unmarshal(h.RunArguments, &ra); err != nil {
		t.Fatalf("RunArguments: %v", err)
	}
	if ra["service_name"] != "docker_test_service" || ra["java_mode"] != "ap" {
		t.Errorf("RunArguments = %v", ra)
	}
}

func TestParseHeaderDoesNotAliasItsInput(t *testing.T) {
	line := []byte(`#{"metadata": {"hostname": "h", "run_arguments": {"service_name": "s"}}}`)
	h, err := ParseHeader(line)
	if err != nil {
		t.Fatal(err)
	}
	for i := range line {
		line[i] = 'x'
	}
	if string(h.Raw) != `{"metadata": {"hostname": "h", "run_arguments": {"service_name": "s"}}}` {
		t.Errorf("Raw changed with the input: %s", h.Raw)
	}
	if string(h.RunArguments) != `{"service_name": "s"}` {
		t.Errorf("RunArguments changed with the input: %s", h.RunArguments)
	}
}

func TestParseHeaderFields(t *testing.T) {
	tests := []struct {
		name string
		line string
		want Header // Raw and RunArguments are not compared
	}{
		{
			name: "minimal header has empty optional fields",
			line: `#{"metadata": {"hostname": "h"}}`,
			want: Header{Hostname: "h"},
		},
		{
			name: "instance type is empty when cloud_info has none",
			line: `#{"metadata": {"hostname": "h", "cloud_info": {"region": "r"}}}`,
			want: Header{Hostname: "h"},
		},
		{
			name: "null cloud_info, metrics and run_arguments are absent",
			line: `#{"metadata": {"hostname": "h", "cloud_info": null, "run_arguments": null}, "metrics": null}`,
			want: Header{Hostname: "h"},
		},
		{
			name: "v1 profile api version",
			line: `#{"metadata": {"hostname": "h", "run_arguments": {"profile_api_version": "v1", "service_name": "svc"}}}`,
			want: Header{Hostname: "h", ProfileAPIVersion: "v1", ServiceName: "svc"},
		},
		{
			name: "profiling mode falls back to metadata",
			line: `#{"metadata": {"hostname": "h", "profiling_mode": "allocation"}}`,
			want: Header{Hostname: "h", ProfilingMode: "allocation"},
		},
		{
			name: "top-level profiling mode wins",
			line: `#{"profiling_mode": "cpu", "metadata": {"hostname": "h", "profiling_mode": "allocation"}}`,
			want: Header{Hostname: "h", ProfilingMode: "cpu"},
		},
		{
			name: "metrics and flags",
			line: `#{"metadata": {"hostname": "h", "agent_version": "1.2.3", "cloud_provider": "gcp", "spawn_time": "t"}, "metrics": {"cpu_avg": 1.5, "mem_avg": 2}, "container_names_enabled": true, "application_metadata_enabled": true, "containers": ["a", "b"]}`,
			want: Header{Hostname: "h", AgentVersion: "1.2.3", CloudProvider: "gcp", SpawnTime: "t", CPUAvg: 1.5, MemAvg: 2, HasMetrics: true, ContainerNamesEnabled: true, AppMetadataEnabled: true, Containers: []string{"a", "b"}},
		},
		{
			name: "surrounding white space and CRLF are ignored",
			line: " #  {\"metadata\": {\"hostname\": \"h\"}}  \r\n",
			want: Header{Hostname: "h"},
		},
		{
			name: "unknown keys are ignored",
			line: `#{"future": [1, {"x": null}], "metadata": {"hostname": "h", "big_data": {}}}`,
			want: Header{Hostname: "h"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParseHeader([]byte(tt.line))
			if err != nil {
				t.Fatal(err)
			}
			h.Raw, h.RunArguments = nil, nil
			if got, want := mustJSON(t, h), mustJSON(t, tt.want); got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseHeaderErrors(t *testing.T) {
	tests := []struct {
		name string
		line string
		want error
	}{
		{"empty line", "", ErrBadMetadata},
		{"no hash sign", `{"metadata": {"hostname": "h"}}`, ErrBadMetadata},
		{"hash sign only", "#", ErrBadMetadata},
		{"not JSON", "#hello", ErrBadMetadata},
		{"truncated JSON", `#{"metadata": {"hostname": "h"}`, ErrBadMetadata},
		{"trailing garbage", `#{"metadata": {"hostname": "h"}} x`, ErrBadMetadata},
		{"JSON array", `#[{"metadata": {}}]`, ErrBadMetadata},
		{"JSON null", `#null`, ErrBadMetadata},
		{"JSON string", `#"metadata"`, ErrBadMetadata},
		{"no metadata key", `#{"containers": []}`, ErrMetadataMissing},
		{"empty object", `#{}`, ErrMetadataMissing},
		{"null metadata", `#{"metadata": null}`, ErrBadMetadata},
		{"metadata is a list", `#{"metadata": ["hostname"]}`, ErrBadMetadata},
		{"no hostname", `#{"metadata": {"agent_version": "1.0"}}`, ErrBadMetadata},
		{"hostname is a number", `#{"metadata": {"hostname": 7}}`, ErrBadMetadata},
		{"containers is not a list of strings", `#{"containers": [1], "metadata": {"hostname": "h"}}`, ErrBadMetadata},
		{"flag is a string", `#{"application_metadata_enabled": "true", "metadata": {"hostname": "h"}}`, ErrBadMetadata},
		{"metrics is a number", `#{"metrics": 3, "metadata": {"hostname": "h"}}`, ErrBadMetadata},
		{"run_arguments is a string", `#{"metadata": {"hostname": "h", "run_arguments": "x"}}`, ErrBadMetadata},
		{"profile_api_version is a number", `#{"metadata": {"hostname": "h", "run_arguments": {"profile_api_version": 1}}}`, ErrBadMetadata},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseHeader([]byte(tt.line))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if other := map[error]error{ErrBadMetadata: ErrMetadataMissing, ErrMetadataMissing: ErrBadMetadata}[tt.want]; errors.Is(err, other) {
				t.Errorf("err = %v is also %v", err, other)
			}
		})
	}
}

func TestHeaderErrorMessagesMatchTheOriginal(t *testing.T) {
	if got := ErrMetadataMissing.Error(); got != "Agent metadata is missing, probably you are using and old agent" {
		t.Errorf("ErrMetadataMissing = %q", got)
	}
	if got := ErrBadMetadata.Error(); got != "Failed to parse v2 metadata" {
		t.Errorf("ErrBadMetadata = %q", got)
	}
	_, err := ParseHeader([]byte("#x"))
	if !strings.HasPrefix(err.Error(), "Failed to parse v2 metadata: ") {
		t.Errorf("wrapped error = %q, want the sentinel message and a detail", err)
	}
}

func TestPrefixFieldsFollowsTheHeaderRules(t *testing.T) {
	tests := []struct {
		name string
		h    Header
		want int
	}{
		{"default has the container", Header{}, 1},
		{"v2 has the container", Header{ProfileAPIVersion: "v2"}, 1},
		{"v1 has no prefix", Header{ProfileAPIVersion: "v1"}, 0},
		{"app metadata has index and container", Header{AppMetadataEnabled: true}, 2},
		{"app metadata wins over v1", Header{AppMetadataEnabled: true, ProfileAPIVersion: "v1"}, 2},
	}
	for _, tt := range tests {
		if got := tt.h.PrefixFields(); got != tt.want {
			t.Errorf("%s: PrefixFields() = %d, want %d", tt.name, got, tt.want)
		}
	}
}
