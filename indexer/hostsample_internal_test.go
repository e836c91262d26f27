package indexer

import (
	"encoding/json"
	"testing"

	"github.com/flamestream/flamestream/internal/profile"
)

// hostSampleByJSON is how hostSampleOf read the header before the header carried HasMetrics and
// Processors: a second encoding/json decode of the raw header. FuzzHostSampleOfAgreesWithJSON holds the
// new reading to it.
func hostSampleByJSON(h *profile.Header) hostSample {
	var j struct {
		Metrics *struct {
			CPU *float64 `json:"cpu_avg"`
			Mem *float64 `json:"mem_avg"`
		} `json:"metrics"`
		Metadata *struct {
			Processors any `json:"processors"`
		} `json:"metadata"`
	}
	if len(h.Raw) == 0 || json.Unmarshal(h.Raw, &j) != nil || j.Metrics == nil || j.Metrics.CPU == nil || j.Metrics.Mem == nil {
		return hostSample{}
	}
	s := hostSample{ok: true, cpu: *j.Metrics.CPU, mem: *j.Metrics.Mem}
	if j.Metadata != nil {
		if n, ok := j.Metadata.Processors.(float64); ok && n >= 1 && n <= 1<<20 && n == float64(uint32(n)) {
			s.cores = uint32(n)
		}
	}
	return s
}

func FuzzHostSampleOfAgreesWithJSON(f *testing.F) {
	for _, s := range []string{
		`{"metadata": {"hostname": "h", "processors": 4}, "metrics": {"cpu_avg": 1.5, "mem_avg": 2}}`,
		`{"metadata": {"hostname": "h", "processors": 4.5}, "metrics": {"cpu_avg": 1.5, "mem_avg": 2}}`,
		`{"metadata": {"hostname": "h", "processors": 0}, "metrics": {"cpu_avg": 0, "mem_avg": 0}}`,
		`{"metadata": {"hostname": "h", "processors": 1048577}, "metrics": {"cpu_avg": 1, "mem_avg": 2}}`,
		`{"metadata": {"hostname": "h", "processors": 1e999}, "metrics": {"cpu_avg": 1, "mem_avg": 2}}`,
		`{"metadata": {"hostname": "h", "processors": [1e999]}, "metrics": {"cpu_avg": 1, "mem_avg": 2}}`,
		`{"metadata": {"hostname": "h", "processors": {"a": 1}}, "metrics": {"cpu_avg": 1, "mem_avg": 2}}`,
		`{"metadata": {"hostname": "h", "processors": "8"}, "metrics": {"cpu_avg": 1, "mem_avg": 2}}`,
		`{"metadata": {"hostname": "h", "processors": null}, "metrics": {"cpu_avg": 1, "mem_avg": null}}`,
		`{"metadata": {"hostname": "h"}, "metrics": {"cpu_avg": 1}}`,
		`{"metadata": {"hostname": "h"}, "metrics": null}`,
		`{"metadata": {"hostname": "h"}}`,
		`{"metadata": {"hostname": "h", "processors": 2}, "metadata": {"hostname": "g"}, "metrics": {"cpu_avg": 1, "mem_avg": 2}}`,
		`{"metrics": {"cpu_avg": 1, "mem_avg": 2}, "metrics": {"cpu_avg": 3}, "metadata": {"hostname": "h"}}`,
		`{"METRICS": {"cpu_avg": 1, "MEM_AVG": 2}, "metadata": {"hostname": "h", "Processors": 3}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		h, err := profile.ParseHeader([]byte("#" + body))
		if err != nil {
			return
		}
		if got, want := hostSampleOf(&h), hostSampleByJSON(&h); got != want {
			t.Fatalf("%s: hostSampleOf %+v, by encoding/json %+v", body, got, want)
		}
	})
}
