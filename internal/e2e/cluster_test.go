package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flamestream/flamestream/cmd/flamestream/testenv"
	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/config"
	"github.com/flamestream/flamestream/internal/demo"
	"github.com/flamestream/flamestream/internal/pgdb"
	"github.com/flamestream/flamestream/stream"
)

// natsNode is one nats-server process of a test cluster.
type natsNode struct {
	name        string
	clientURL   string
	monitorURL  string
	clusterAddr string
	args        []string
	logPath     string
	cmd         *exec.Cmd
	exited      chan struct{}
}

// natsServerBinary finds the nats-server that deploy/local/install.sh puts in .bin/, or one on PATH.
// Without it the test is skipped, unless CI is set.
func natsServerBinary(t *testing.T) string {
	t.Helper()
	if p, err := filepath.Abs("../../.bin/nats-server"); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p
	}
	msg := "nats-server binary not found in .bin/ or PATH; install it with `go tool task install`"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func addrPort(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// startNATSCluster starts n nats-server processes with JetStream on loopback ports, routed to each other,
// and waits until the JetStream meta group has a leader that sees every peer as current.
func startNATSCluster(t *testing.T, n int) []*natsNode {
	t.Helper()
	nodes := newNATSCluster(t, n)
	for _, nd := range nodes {
		if err := nd.start(t); err != nil {
			t.Fatal(err)
		}
	}
	waitMetaGroup(t, nodes, n)
	return nodes
}

// newNATSCluster lays out an n-node cluster (addresses, routes, store directories) without starting a node.
func newNATSCluster(t *testing.T, n int) []*natsNode {
	t.Helper()
	bin := natsServerBinary(t)
	nodes := make([]*natsNode, n)
	for i := range nodes {
		nodes[i] = &natsNode{
			name:        fmt.Sprintf("fs-n%d", i+1),
			clientURL:   "nats://" + testenv.FreeAddr(t),
			monitorURL:  "http://" + testenv.FreeAddr(t),
			clusterAddr: testenv.FreeAddr(t),
			exited:      make(chan struct{}),
		}
	}
	dir := t.TempDir()
	for i, nd := range nodes {
		var routes []string
		for j, other := range nodes {
			if j != i {
				routes = append(routes, "nats://"+other.clusterAddr)
			}
		}
		nd.args = []string{
			"-a", "127.0.0.1",
			"-p", addrPort(t, strings.TrimPrefix(nd.clientURL, "nats://")),
			"-m", addrPort(t, strings.TrimPrefix(nd.monitorURL, "http://")),
			"-n", nd.name,
			"-js", "-sd", filepath.Join(dir, nd.name),
			"--cluster_name", "fs-test",
			"-cluster", "nats://" + nd.clusterAddr,
			"-routes", strings.Join(routes, ","),
		}
		nd.logPath = filepath.Join(dir, nd.name+".log")
		nd.cmd = exec.Command(bin, nd.args...)
	}
	return nodes
}

// start starts the node's process (once); it is killed when the test ends. It may run on another goroutine
// than the test's.
func (nd *natsNode) start(t *testing.T) error {
	logf, err := os.Create(nd.logPath)
	if err != nil {
		return err
	}
	nd.cmd.Stdout, nd.cmd.Stderr = logf, logf
	if err := nd.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", nd.name, err)
	}
	go func() {
		_ = nd.cmd.Wait()
		logf.Close()
		close(nd.exited)
	}()
	t.Cleanup(func() {
		_ = nd.cmd.Process.Kill()
		<-nd.exited
		if t.Failed() {
			if b, err := os.ReadFile(nd.logPath); err == nil {
				t.Logf("%s log (tail):\n%s", nd.name, tail(string(b), 3000))
			}
		}
	})
	return nil
}

// waitMetaGroup waits until the JetStream meta group of nodes, n of them running, is ready.
func waitMetaGroup(t *testing.T, nodes []*natsNode, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !metaGroupReady(nodes, n) {
		if time.Now().After(deadline) {
			t.Fatalf("JetStream meta group of %d nodes not ready after 30s", n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// profilesStream connects to the cluster (closed when the test ends) and returns its PROFILES stream.
func profilesStream(t *testing.T, ctx context.Context, urls []string) jetstream.Stream {
	t.Helper()
	nc, err := nats.Connect(strings.Join(urls, ","), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, stream.ProfilesStream)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// metaGroupReady reports whether every node names the same meta leader and that leader sees all its
// peers as current.
func metaGroupReady(nodes []*natsNode, n int) bool {
	type jsz struct {
		Meta *struct {
			Leader   string `json:"leader"`
			Replicas []struct {
				Current bool `json:"current"`
			} `json:"replicas"`
		} `json:"meta_cluster"`
	}
	leader := ""
	ready := false
	for _, nd := range nodes {
		resp, err := http.Get(nd.monitorURL + "/jsz")
		if err != nil {
			return false
		}
		var j jsz
		err = json.NewDecoder(resp.Body).Decode(&j)
		resp.Body.Close()
		if err != nil || j.Meta == nil || j.Meta.Leader == "" {
			return false
		}
		if leader != "" && j.Meta.Leader != leader {
			return false
		}
		leader = j.Meta.Leader
		if nd.name == leader {
			current := 0
			for _, r := range j.Meta.Replicas {
				if r.Current {
					current++
				}
			}
			ready = current == n-1
		}
	}
	return ready
}

// uploadProfile posts one gzip agent body the way the agent does and returns the status code.
func uploadProfile(client *http.Client, url, token, service string, body []byte) (int, error) {
	req, err := http.NewRequest(http.MethodPost, url+"/api/v2/profiles", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("GPROFILER-API-KEY", token)
	req.Header.Set("GPROFILER-SERVICE-NAME", service)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// profileTotal is the number of samples the indexer must store for a profile text: every count, except
// zero counts and the idle task (swapper). Computed here without the parser, as an independent oracle.
func profileTotal(t *testing.T, text []byte) uint64 {
	t.Helper()
	var total uint64
	for _, line := range strings.Split(string(text), "\n")[1:] {
		if line == "" {
			continue
		}
		sp := strings.LastIndex(line, " ")
		n, err := strconv.ParseUint(line[sp+1:], 10, 64)
		if err != nil {
			t.Fatalf("profile line %q: %v", line, err)
		}
		fields := strings.Split(line[:sp], ";") // app metadata index; container; comm; frames...
		if n == 0 || strings.HasPrefix(fields[2], "swapper") {
			continue
		}
		total += n
	}
	return total
}

type hostCount struct{ samples, profiles uint64 }

// indexedByHost returns, per host of a service, the summed sample count and the number of distinct
// profiles in ClickHouse's samples table.
func indexedByHost(ctx context.Context, db *chdb.DB, service string) (map[string]hostCount, error) {
	var host proto.ColStr
	var samples, profiles proto.ColUInt64
	out := map[string]hostCount{}
	err := db.Do(ctx, ch.Query{
		Body: "SELECT host, toUInt64(sum(count)) AS c, toUInt64(uniqExact(profile)) AS p FROM " + db.Table("samples") +
			" WHERE service = " + chdb.String(service) + " GROUP BY host",
		Result: proto.Results{{Name: "host", Data: &host}, {Name: "c", Data: &samples}, {Name: "p", Data: &profiles}},
		OnResult: func(ctx context.Context, b proto.Block) error {
			for i := 0; i < host.Rows(); i++ {
				out[host.Row(i)] = hostCount{samples[i], profiles[i]}
			}
			return nil
		},
	})
	return out, err
}

// TestNATSClusterNodeLossKeepsEveryAckedProfileExactlyOnce runs Flamestream against a three-node NATS
// cluster with the PROFILES stream at R3, kills the stream leader while agents keep uploading, and checks
// that every upload answered 200 was indexed exactly once. Uploads refused during the fail-over (503) were
// not promised to anyone; they may be indexed at most once.
func TestNATSClusterNodeLossKeepsEveryAckedProfileExactlyOnce(t *testing.T) {
	testenv.Servers(t)
	nodes := startNATSCluster(t, 3)
	urls := make([]string, len(nodes))
	for i, nd := range nodes {
		urls[i] = nd.clientURL
	}
	st := testenv.Start(t, testenv.Options{Edit: func(c *config.Config) {
		c.NATSURL = strings.Join(urls, ",")
		c.NATSReplicas = 3
		c.StoreTimeout = 5 * time.Second
	}})
	const service = "cluster"
	token := st.Token(t, pgdb.KindAgent, service)

	// The stream really is replicated three ways, and we know which node leads it.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s := profilesStream(t, ctx, urls)
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream %s: replicas %d, cluster %+v; want R3", stream.ProfilesStream, info.Config.Replicas, info.Cluster)
	}
	var victim *natsNode
	for _, nd := range nodes {
		if nd.name == info.Cluster.Leader {
			victim = nd
		}
	}
	if victim == nil {
		t.Fatalf("stream leader %q is none of the test's nodes", info.Cluster.Leader)
	}

	start := time.Now().UTC().Add(-5 * time.Minute).Truncate(time.Second)
	text := demo.Restamp("template", 1)
	want := profileTotal(t, text)
	client := &http.Client{Timeout: 20 * time.Second}

	// Four agents upload continuously; each upload carries its own host name so ClickHouse can tell the
	// profiles apart. The stream leader is killed after a few seconds; uploads go on until the stream has
	// a new leader and has acked a good number of profiles again (Raft elections take several seconds).
	const workers, killAfter, afterKill, maxAfterKill = 4, 3 * time.Second, 50, 30 * time.Second
	var (
		mu       sync.Mutex
		acked    = map[string]bool{}
		codes    = map[int]int{}
		killed   bool
		ackedNow int // acked after the kill
		done     = make(chan struct{})
		wg       sync.WaitGroup
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				host := fmt.Sprintf("agent-%d-%d", w, i)
				body := demo.NewUpload(demo.Restamp(host, 1), host, start, "").Gzip()
				code, err := uploadProfile(client, st.URL, token, service, body)
				mu.Lock()
				codes[code]++
				if err == nil && code == http.StatusOK {
					acked[host] = true
					if killed {
						ackedNow++
					}
				}
				mu.Unlock()
				if code != http.StatusOK {
					time.Sleep(100 * time.Millisecond) // the agent would retry on its next cycle
				}
			}
		}(w)
	}
	time.Sleep(killAfter)
	mu.Lock()
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed = true
	before := len(acked)
	mu.Unlock()
	<-victim.exited
	killedAt := time.Now()
	t.Logf("killed stream leader %s after %d acked uploads", victim.name, before)
	for {
		mu.Lock()
		n := ackedNow
		mu.Unlock()
		if n >= afterKill || time.Since(killedAt) > maxAfterKill {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(done)
	wg.Wait()
	t.Logf("uploads by status: %v; acked %d (%d after the kill, uploads resumed within %v)", codes, len(acked), ackedNow, time.Since(killedAt).Round(100*time.Millisecond))
	if before == 0 || ackedNow < afterKill {
		t.Fatalf("uploads did not go on around the node loss: %d acked before the kill, %d after in %v (statuses %v)", before, ackedNow, maxAfterKill, codes)
	}

	// Wait until every acked profile is in ClickHouse, then check each exactly once.
	var got map[string]hostCount
	deadline := time.Now().Add(40 * time.Second)
	for {
		got, err = indexedByHost(ctx, st.CH, service)
		if err != nil {
			t.Fatal(err)
		}
		missing := 0
		for h := range acked {
			if _, ok := got[h]; !ok {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acked profiles not indexed after 40s", missing, len(acked))
		}
		time.Sleep(300 * time.Millisecond)
	}
	var wantSum, gotSum uint64
	for h := range acked {
		wantSum += want
		gotSum += got[h].samples
		if g := got[h]; g.samples != want || g.profiles != 1 {
			t.Errorf("host %s: %d samples in %d profiles, want %d in exactly 1", h, g.samples, g.profiles, want)
		}
	}
	for h, g := range got {
		if !acked[h] && (g.samples != want || g.profiles != 1) {
			t.Errorf("unacked host %s: %d samples in %d profiles, want none or %d in exactly 1", h, g.samples, g.profiles, want)
		}
	}
	if gotSum != wantSum {
		t.Errorf("acked profiles hold %d samples, want %d (%d profiles × %d)", gotSum, wantSum, len(acked), want)
	}
	t.Logf("indexed %d acked profiles (%d samples) and %d refused-but-stored ones", len(acked), gotSum, len(got)-len(acked))
}

// TestFlamestreamWaitsForANATSClusterStillForming: Flamestream started while one node of a three-node
// cluster is not up yet cannot place the R3 stream ("no suitable peers for placement"); it tries again
// instead of stopping, and starts once the node joins.
func TestFlamestreamWaitsForANATSClusterStillForming(t *testing.T) {
	testenv.Servers(t)
	nodes := newNATSCluster(t, 3)
	for _, nd := range nodes[:2] {
		if err := nd.start(t); err != nil {
			t.Fatal(err)
		}
	}
	waitMetaGroup(t, nodes[:2], 2)
	urls := make([]string, len(nodes))
	for i, nd := range nodes {
		urls[i] = nd.clientURL
	}
	late := time.AfterFunc(3*time.Second, func() {
		if err := nodes[2].start(t); err != nil {
			t.Error(err)
		}
	})
	defer late.Stop()
	t0 := time.Now()
	st := testenv.Start(t, testenv.Options{Edit: func(c *config.Config) {
		c.NATSURL = strings.Join(urls[:2], ",")
		c.NATSReplicas = 3
	}})
	if took := time.Since(t0); took < 3*time.Second {
		t.Fatalf("ready after %v, before the third node started: the test did not make the stream wait", took)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := profilesStream(t, ctx, urls)
	if info := s.CachedInfo(); info.Config.Replicas != 3 {
		t.Fatalf("stream %s has %d replicas, want 3", stream.ProfilesStream, info.Config.Replicas)
	}
	body := demo.NewUpload(demo.Restamp("forming-1", 1), "forming-1", time.Now().UTC().Truncate(time.Minute), "").Gzip()
	token := st.Token(t, pgdb.KindAgent, "forming")
	if code, err := uploadProfile(http.DefaultClient, st.URL, token, "forming", body); err != nil || code != http.StatusOK {
		t.Fatalf("upload after the start: %d %v", code, err)
	}
}
