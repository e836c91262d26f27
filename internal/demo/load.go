package demo

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// A load generator cannot afford to gzip a fresh profile for every request, yet every request must be a
// distinct profile (else the server drops it as a retry). An upload body is therefore built from gzip
// members, which a gzip reader concatenates (RFC 1952 §2.2; Go's and Python's readers do):
//
//	member 1  {"start_time": …, "end_time": …, "hostname": …, "gpid": …, "cpu_avg": …, "mem_avg": …, "profile": "
//	member 2  the host's metadata line, JSON-escaped             (made once per host)
//	member 3  stack lines, JSON-escaped, then "}                 (made once, drawn from a pool)
//
// Only the small first member is compressed per request; the start time makes the profile distinct.

// LoadAgent is one emulated agent of a LoadFleet.
type LoadAgent struct {
	Host   string
	header []byte // gzip member of the escaped metadata line
}

// LoadFleet makes upload bodies for many emulated agents of one service.
type LoadFleet struct {
	Agents []LoadAgent
	bodies [][]byte // gzip members of escaped stack lines + `"}`
	// PlainBytes is the mean decompressed size of a body.
	PlainBytes int
}

// NewLoadFleet prepares agents hosts and a pool of pool stack-line sets drawn from fleet, all
// deterministic for seed.
func NewLoadFleet(seed uint64, fleet *Fleet, agents, pool int) *LoadFleet {
	rng := rand.New(rand.NewPCG(seed, 0x10ad))
	lf := &LoadFleet{}
	itypes := []string{"m5.xlarge", "c5.2xlarge", "r6i.large", "m6g.2xlarge"}
	plain := 0
	for i := range agents {
		host := fmt.Sprintf("load-host-%04d", i+1)
		esc := jsonEscape(fleet.HeaderLine(host, itypes[i%len(itypes)]))
		plain += len(esc)
		lf.Agents = append(lf.Agents, LoadAgent{Host: host, header: gzipMember(esc)})
	}
	lines := 0
	for range max(pool, 1) {
		esc := append(jsonEscape(fleet.Lines(rng)), `"}`...)
		lines += len(esc)
		lf.bodies = append(lf.bodies, gzipMember(esc))
	}
	lf.PlainBytes = plain/max(agents, 1) + lines/max(pool, 1) + 200
	return lf
}

// Body returns the gzip JSON body of agent a's upload for the minute starting at start, with the stack
// lines of pool entry k.
func (lf *LoadFleet) Body(a int, k int, start time.Time, gpid string) []byte {
	ag := lf.Agents[a]
	prefix := fmt.Sprintf(`{"start_time":%q,"end_time":%q,"hostname":%q,"gpid":%q,"cpu_avg":%.1f,"mem_avg":%.1f,"spawn_time":%q,"profile":"`,
		start.UTC().Format(agentTime), start.Add(time.Minute).UTC().Format(agentTime), ag.Host, gpid,
		5+float64(k%50), 30+float64(a%40), start.Add(-time.Hour).UTC().Format(agentTime))
	lines := lf.bodies[k%len(lf.bodies)]
	head := gzipMember([]byte(prefix))
	out := make([]byte, 0, len(head)+len(ag.header)+len(lines))
	out = append(out, head...)
	out = append(out, ag.header...)
	return append(out, lines...)
}

// gzipWriters are reused: a new gzip writer allocates and clears about a megabyte of compressor state, which
// was most of the load generator's CPU per request (0.57 ms per upload in the pipeline bench, on the same
// cores as the servers it measures).
var gzipWriters = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzip.DefaultCompression)
	return zw
}}

func gzipMember(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// jsonEscape returns b as the inside of a JSON string (without the quotes).
func jsonEscape(b []byte) []byte {
	q, _ := json.Marshal(string(b))
	return q[1 : len(q)-1]
}
