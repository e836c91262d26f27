// Package demo makes agent-shaped profile uploads: the real gProfiler profile re-stamped for a host and a
// time, and synthetic profiles with the shape of a real fleet (mixed runtimes, thousands of unique stacks,
// depth 20–60), deterministic for a seed. The quick start, the load generator and the tests use it.
package demo

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// AgentProfile is a profile captured from a real gProfiler agent (version 1.35.0, AWS t2.medium).
//
//go:embed agent-profile.collapsed
var AgentProfile []byte

// Upload is one profile upload as the agent sends it.
type Upload struct {
	StartTime string  `json:"start_time"`
	EndTime   string  `json:"end_time"`
	Hostname  string  `json:"hostname"`
	Profile   string  `json:"profile"`
	CPUAvg    float64 `json:"cpu_avg"`
	MemAvg    float64 `json:"mem_avg"`
	SpawnTime string  `json:"spawn_time"`
	GPID      string  `json:"gpid"`
}

// agentTime is how the agent writes times (Python isoformat without zone).
const agentTime = "2006-01-02T15:04:05.000000"

// NewUpload wraps a profile text as the agent's JSON body for a one-minute period starting at start.
func NewUpload(text []byte, host string, start time.Time, gpid string) Upload {
	return Upload{StartTime: start.UTC().Format(agentTime), EndTime: start.Add(time.Minute).UTC().Format(agentTime),
		Hostname: host, Profile: string(text), CPUAvg: 8.8, MemAvg: 39.8,
		SpawnTime: start.Add(-time.Hour).UTC().Format(agentTime), GPID: gpid}
}

// Gzip returns the upload as the agent's request body: gzip-compressed JSON.
func (u Upload) Gzip() []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_ = json.NewEncoder(zw).Encode(u)
	_ = zw.Close()
	return buf.Bytes()
}

// Restamp returns the real agent profile with its hostname replaced and every count multiplied by scale
// (at least 1 each), so that several demo hosts differ.
func Restamp(host string, scale float64) []byte {
	lines := bytes.SplitN(AgentProfile, []byte("\n"), 2)
	var hdr map[string]any
	if err := json.Unmarshal(bytes.TrimPrefix(lines[0], []byte("#")), &hdr); err != nil {
		panic("demo: embedded profile header: " + err.Error())
	}
	if md, ok := hdr["metadata"].(map[string]any); ok {
		md["hostname"] = host
	}
	h, _ := json.Marshal(hdr)
	var out bytes.Buffer
	out.WriteString("#")
	out.Write(h)
	out.WriteByte('\n')
	sc := bufio.NewScanner(bytes.NewReader(lines[1]))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		n, err := strconv.ParseUint(line[i+1:], 10, 64)
		if err != nil {
			continue
		}
		m := uint64(float64(n)*scale + 0.5)
		if m == 0 {
			m = 1
		}
		fmt.Fprintf(&out, "%s %d\n", line[:i], m)
	}
	return out.Bytes()
}

// Shape says what a synthetic fleet's profiles look like.
type Shape struct {
	// Stacks is the number of distinct stacks a profile draws from (per service); Lines how many of them
	// one profile holds.
	Stacks, Lines int
	// MinDepth and MaxDepth bound the frames per stack.
	MinDepth, MaxDepth int
}

// DefaultShape is a realistic mid-size service: 5,000 distinct stacks, 800 per profile, depth 20–60.
var DefaultShape = Shape{Stacks: 5000, Lines: 800, MinDepth: 20, MaxDepth: 60}

// Fleet generates synthetic profiles for one service, deterministically from a seed.
type Fleet struct {
	shape  Shape
	stacks []string
	header map[string]any
}

var runtimes = []struct {
	comm, suffix string
	libs         []string
}{
	{"python3", "_[p]", []string{"django/core/handlers/base.py", "app/views.py", "app/models.py", "json/encoder.py", "requests/sessions.py", "urllib3/connectionpool.py", "psycopg2/extras.py", "app/serializers.py"}},
	{"java", "_[j]", []string{"org/springframework/web/servlet/DispatcherServlet", "com/acme/orders/OrderService", "java/util/HashMap", "com/fasterxml/jackson/databind/ObjectMapper", "io/netty/channel/nio/NioEventLoop", "org/hibernate/internal/SessionImpl", "java/util/concurrent/ThreadPoolExecutor"}},
	{"node", "_[s]", []string{"express/lib/router/index.js", "app/handlers.js", "internal/streams/readable.js", "pg/lib/client.js"}},
	{"ruby", "_[rb]", []string{"rails/action_controller/metal.rb", "active_record/relation.rb", "app/models/user.rb"}},
	{"envoy", "", []string{"Envoy::Http::ConnectionManagerImpl", "Envoy::Network::ConnectionImpl", "Envoy::Upstream::ClusterManagerImpl", "absl::Mutex"}},
}

var kernel = []string{"entry_SYSCALL_64_after_hwframe_[k]", "do_syscall_64_[k]", "__x64_sys_read_[k]", "ksys_read_[k]", "vfs_read_[k]",
	"__x64_sys_epoll_wait_[k]", "do_epoll_wait_[k]", "ep_poll_[k]", "schedule_hrtimeout_range_[k]", "schedule_[k]", "__schedule_[k]",
	"tcp_sendmsg_[k]", "tcp_write_xmit_[k]", "__tcp_transmit_skb_[k]", "ip_output_[k]", "copy_user_enhanced_fast_string_[k]"}

// NewFleet prepares the stack population of one service.
func NewFleet(seed uint64, service string, shape Shape) *Fleet {
	if shape.Stacks == 0 {
		shape = DefaultShape
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	f := &Fleet{shape: shape}
	f.stacks = make([]string, shape.Stacks)
	var b strings.Builder
	for i := range f.stacks {
		rt := runtimes[rng.IntN(len(runtimes))]
		depth := shape.MinDepth + rng.IntN(shape.MaxDepth-shape.MinDepth+1)
		b.Reset()
		b.WriteString(rt.comm)
		kdepth := 0
		if rng.IntN(3) == 0 {
			kdepth = 3 + rng.IntN(6)
		}
		// Stacks share prefixes like real ones: the first frames come from a small set, deeper frames
		// from a wider one.
		for d := 0; d < depth-kdepth; d++ {
			lib := rt.libs[rng.IntN(min(len(rt.libs), 1+d/4))]
			fn := rng.IntN(4 + d*3)
			if rt.suffix == "" {
				fmt.Fprintf(&b, ";%s::fn%d", lib, fn)
			} else {
				fmt.Fprintf(&b, ";%s.fn%d%s", lib, fn, rt.suffix)
			}
		}
		for d := 0; d < kdepth; d++ {
			b.WriteByte(';')
			b.WriteString(kernel[rng.IntN(len(kernel))])
		}
		f.stacks[i] = b.String()
	}
	f.header = map[string]any{
		"containers":                   []string{"k8s_api_api-7f9c8d6b5-x2x9k_prod_0b1c2d3e-aaaa-bbbb-cccc-0123456789ab_0", "k8s_worker_worker-5d8f7c9b4-q8w7e_prod_1b1c2d3e-aaaa-bbbb-cccc-0123456789ab_0"},
		"container_names_enabled":      true,
		"application_metadata_enabled": false,
		"profiling_mode":               "cpu",
		"metrics":                      map[string]any{"cpu_avg": 35.5, "mem_avg": 61.2},
		"metadata": map[string]any{"hostname": "", "agent_version": "1.35.0", "cloud_provider": "aws",
			"cloud_info":    map[string]any{"region": "us-east-1", "zone": "us-east-1a", "instance_type": "m5.xlarge"},
			"run_arguments": map[string]any{"service_name": service, "profile_api_version": "v2"},
			"run_mode":      "k8s", "deployment_type": "k8s", "processors": 4, "os_name": "Ubuntu", "profiling_mode": "cpu"},
	}
	return f
}

// Profile returns one profile text for host, drawn with rng: a metadata line then Shape.Lines stacks with
// counts skewed like a real CPU profile (a few hot stacks, a long tail).
func (f *Fleet) Profile(rng *rand.Rand, host string, instanceType string) []byte {
	return append(f.HeaderLine(host, instanceType), f.Lines(rng)...)
}

// HeaderLine returns the metadata line ("#" JSON "\n") of a profile of host.
func (f *Fleet) HeaderLine(host string, instanceType string) []byte {
	md := f.header["metadata"].(map[string]any)
	hdr := make(map[string]any, len(f.header))
	for k, v := range f.header {
		hdr[k] = v
	}
	mdc := make(map[string]any, len(md))
	for k, v := range md {
		mdc[k] = v
	}
	mdc["hostname"] = host
	if instanceType != "" {
		mdc["cloud_info"] = map[string]any{"region": "us-east-1", "zone": "us-east-1a", "instance_type": instanceType}
	}
	hdr["metadata"] = mdc
	h, _ := json.Marshal(hdr)
	out := make([]byte, 0, len(h)+2)
	out = append(out, '#')
	out = append(out, h...)
	return append(out, '\n')
}

// Lines returns Shape.Lines stack lines drawn with rng, with counts skewed like a real CPU profile (a few
// hot stacks, a long tail).
func (f *Fleet) Lines(rng *rand.Rand) []byte {
	containers := []string{"k8s_api_api-7f9c8d6b5-x2x9k_prod_0b1c2d3e-aaaa-bbbb-cccc-0123456789ab_0", "k8s_worker_worker-5d8f7c9b4-q8w7e_prod_1b1c2d3e-aaaa-bbbb-cccc-0123456789ab_0", ""}
	var out bytes.Buffer
	out.Grow(f.shape.Lines * 400)
	for range f.shape.Lines {
		// Squaring a uniform draw skews towards low indexes: the hot stacks.
		u := rng.Float64()
		idx := int(u * u * float64(len(f.stacks)))
		count := 1 + int(float64(rng.IntN(50))*(1-u))
		out.WriteString(containers[idx%len(containers)])
		out.WriteByte(';')
		out.WriteString(f.stacks[idx])
		out.WriteByte(' ')
		out.WriteString(strconv.Itoa(count))
		out.WriteByte('\n')
	}
	return out.Bytes()
}
