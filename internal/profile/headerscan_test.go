package profile

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// headerSeeds are headers scanHeader takes and headers it must leave to encoding/json.
var headerSeeds = []string{
	hdrV2, hdrV1, hdrAppMeta,
	`{}`, `{"metadata": null}`, `{"metadata": []}`, `{"metadata": {"hostname": 1}}`, `{"metadata": {"hostname": null}}`,
	`{"metadata": {"hostname": "h", "cloud_info": {"instance_type": "t"}, "run_arguments": {"service_name": "s", "profile_api_version": "v1"}}, "metrics": {"cpu_avg": 1e308, "mem_avg": -0}}`,
	`{"metadata": {"hostname": "h"}, "metrics": {"cpu_avg": 1e999, "mem_avg": 1}}`,
	`{"metadata": {"hostname": "h"}, "metrics": {"cpu_avg": 2.5}}`,
	`{"metadata": {"hostname": "h"}, "metrics": {"cpu_avg": null, "mem_avg": 3}}`,
	`{"metadata": {"hostname": "h"}, "metrics": null}`,
	`{"Metadata": {"HostName": "h"}}`,
	`{"metadata": {"hostname": "h"}, "metadata": {"hostname": "g"}}`,
	`{"metadata": {"hostname": "h", "processors": 4}, "metrics": {"cpu_avg": 1, "mem_avg": 2}}`,
	`{"metadata": {"hostname": "h", "processors":  "4"}}`,
	`{"metadata": {"hostname": "h", "processors": [1e999]}}`,
	`{"metadata": {"hostname": "h", "processors": null}}`,
	`{"metadata": {"hostname": "\u00e9\ud800"}}`,
	`{"metadata": {"hostname": "h", "run_arguments": null, "x": [1, {"a": "\n\u0041"}, true, false, null, -0.5e+3]}}`,
	`{"metadata": {"hostname": "h", "run_arguments": "x"}}`,
	`{"metadata": {"hostname": "h", "cloud_info": null, "profiling_mode": "cpu"}, "profiling_mode": ""}`,
	`{"metadata": {"hostname": "h"}, "containers": [], "container_names_enabled": null}`,
	`{"metadata": {"hostname": "h"}, "containers": null}`,
	`{"metadata": {"hostname": "h"}, "containers": ["a", "b"], "application_metadata_enabled": true}`,
	`{"metadata": {"hostname": "h"}, "containers": ["a", null]}`,
	`{"metadata": {"hostname": "h"}, "x": 01}`,
	`{"metadata": {"hostname": "h"}, "x": 1.}`,
	`{"metadata": {"hostname": "h"}, "x": tru}`,
	`{"metadata": {"hostname": "h"},}`,
	`{"metadata": {"hostname": "h"}} x`,
	`{"metadata": {"hostname": "h", "run_arguments": {"service_name": "s", "service_name": "t"}}}`,
	`{"metadata": {"hostname": "h", "run_arguments": {"Service_Name": "s"}}}`,
}

// FuzzScanHeaderAgreesWithEncodingJSON holds ParseHeader's fast path to encoding/json's answer: whatever
// scanHeader takes, decodeHeader takes too and reads to the same Header.
func FuzzScanHeaderAgreesWithEncodingJSON(f *testing.F) {
	if real, err := readRealProfileErr(); err == nil {
		first, _, _ := bytes.Cut(real, []byte{'\n'})
		f.Add(string(bytes.TrimSpace(first[1:])))
	}
	for _, s := range headerSeeds {
		f.Add(trimHash(s))
	}
	f.Fuzz(func(t *testing.T, body string) {
		raw := json.RawMessage(body)
		fast, ok := scanHeader(raw, raw)
		slow, err := decodeHeader(raw, raw)
		if !ok {
			return
		}
		if err != nil {
			t.Fatalf("scanHeader took %q, encoding/json refuses it: %v", body, err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q:\nscanHeader  %#v\nencoding/json %#v", body, fast, slow)
		}
	})
}

func trimHash(s string) string {
	if len(s) > 0 && s[0] == '#' {
		return s[1:]
	}
	return s
}

// TestScanHeaderTakesTheRealAgentHeader keeps the fast path fast for what agents send: the real header
// (escapes in values it skips, nested objects) must not fall back to encoding/json.
func TestScanHeaderTakesTheRealAgentHeader(t *testing.T) {
	first, _, _ := bytes.Cut(readRealProfile(t), []byte{'\n'})
	body := bytes.TrimSpace(first[1:])
	h, ok := scanHeader(body, body)
	if !ok {
		t.Fatal("scanHeader gave the real agent header up to encoding/json")
	}
	if h.Hostname != "ip-172-31-33-27" || !h.HasMetrics || string(h.Processors) != "2" || h.ServiceName != "docker_test_service" {
		t.Fatalf("scanHeader read %+v", h)
	}
}

// TestScanHeaderLeavesTheUnusualToEncodingJSON lists headers the fast path must not take.
func TestScanHeaderLeavesTheUnusualToEncodingJSON(t *testing.T) {
	for _, body := range []string{
		`{"Metadata": {"hostname": "h"}}`,
		`{"metadata": {"hostname": "h"}, "metadata": {"hostname": "g"}}`,
		`{"metadata": {"hostname": "\u0068"}}`,
		`{"metadata": {"hostname": "h"}, "metrics": {"cpu_avg": 1e999, "mem_avg": 1}}`,
		`{"metadata": {"hostname": "h"}, "x": 01}`,
		`{"metadata": null}`,
		`{"metadata": {"hostname": "h"}} x`,
	} {
		if _, ok := scanHeader([]byte(body), []byte(body)); ok {
			t.Errorf("scanHeader took %s", body)
		}
	}
}
