package ingest_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/flamestream/flamestream/cmd/flamestream/testenv"
	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/demo"
	"github.com/flamestream/flamestream/internal/profile"
)

// reply is an HTTP answer of the agent API.
type reply struct {
	code   int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (r reply) message() string { s, _ := r.body["message"].(string); return s }

// do sends a request with the agent's headers (those given non-empty) and decodes the JSON reply; every
// reply of the agent API must be JSON.
func do(t *testing.T, method, url string, headers map[string]string, body []byte) reply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	r := reply{code: resp.StatusCode, header: resp.Header}
	r.raw, _ = io.ReadAll(resp.Body)
	if err := json.Unmarshal(r.raw, &r.body); err != nil {
		t.Fatalf("%s %s: reply %d is not JSON: %q", method, url, resp.StatusCode, r.raw)
	}
	return r
}

// upload posts a profile body exactly as the agent does.
func upload(t *testing.T, base, token, service string, body []byte) reply {
	t.Helper()
	return do(t, http.MethodPost, base+"/api/v2/profiles?key="+token+"&service="+service+"&hostname=h&version=1.35.0",
		map[string]string{"GPROFILER-API-KEY": token, "GPROFILER-SERVICE-NAME": service,
			"Content-Encoding": "gzip", "Content-Type": "application/json"}, body)
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// smallFleet makes small synthetic profiles: quick to send and index in bulk.
func smallFleet(seed uint64, service string) *demo.Fleet {
	return demo.NewFleet(seed, service, demo.Shape{Stacks: 300, Lines: 15, MinDepth: 20, MaxDepth: 60})
}

// profileBody returns an upload of fleet for host at start and the total of its sample counts.
func profileBody(t *testing.T, fleet *demo.Fleet, rng *rand.Rand, host string, start time.Time, gpid string) ([]byte, uint64) {
	t.Helper()
	text := fleet.Profile(rng, host, "m5.xlarge")
	var total uint64
	if _, err := profile.Parse(text, func(l *profile.Line) error { total += l.Count; return nil }); err != nil {
		t.Fatal(err)
	}
	return demo.NewUpload(text, host, start, gpid).Gzip(), total
}

// indexed returns the distinct profiles and the total sample count ClickHouse holds for service.
func indexed(t *testing.T, db *chdb.DB, service string) (profiles, samples uint64) {
	t.Helper()
	var p, s proto.ColUInt64
	err := db.Do(context.Background(), ch.Query{
		Body:     "SELECT uniqExact(profile) AS p, sum(toUInt64(count)) AS s FROM " + db.Table("samples") + " WHERE service = " + chdb.String(service),
		Result:   proto.Results{{Name: "p", Data: &p}, {Name: "s", Data: &s}},
		OnResult: func(context.Context, proto.Block) error { return nil },
	})
	if err != nil {
		t.Fatalf("count indexed profiles: %v", err)
	}
	if p.Rows() == 0 {
		return 0, 0
	}
	return p.Row(0), s.Row(0)
}

// waitIndexed waits until ClickHouse holds want profiles of service, and returns the sample total. It
// fails if more show up.
func waitIndexed(t *testing.T, db *chdb.DB, service string, want uint64, within time.Duration) uint64 {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		p, s := indexed(t, db, service)
		if p > want {
			t.Fatalf("%d profiles of %s indexed, want %d", p, service, want)
		}
		if p == want {
			// Give a straggler (a duplicate) a moment to show up before calling it done.
			time.Sleep(500 * time.Millisecond)
			if p2, s2 := indexed(t, db, service); p2 != want || s2 != s {
				t.Fatalf("after settling: %d profiles (%d samples), want %d (%d)", p2, s2, want, s)
			}
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d profiles of %s indexed after %s", p, want, service, within)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// bucketObjects counts the objects under prefix in the stack's bucket.
func bucketObjects(t *testing.T, st *testenv.Stack, prefix string) int {
	t.Helper()
	c := st.Config
	mc, err := minio.New(c.S3Endpoint, &minio.Options{Creds: credentials.NewStaticV4(c.S3AccessKey, c.S3SecretKey, ""), Region: c.S3Region})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for obj := range mc.ListObjects(context.Background(), c.S3Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			t.Fatalf("list bucket: %v", obj.Err)
		}
		n++
	}
	return n
}

// process is a server this test runs itself, so that it can kill it.
type process struct {
	t    *testing.T
	name string
	args []string
	env  []string
	cmd  *exec.Cmd
	addr string
}

func (p *process) start() {
	p.t.Helper()
	cmd := exec.Command(p.name, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		p.t.Skipf("cannot start %s: %v", p.name, err)
	}
	p.cmd = cmd
	deadline := time.Now().Add(15 * time.Second)
	for !dialable(p.addr) {
		if time.Now().After(deadline) {
			p.stop()
			p.t.Fatalf("%s did not listen on %s: %s", p.name, p.addr, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *process) stop() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		p.cmd = nil
	}
}

func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// binary returns a server binary of the local stack, or skips (fails in CI) without it.
func binary(t *testing.T, name string) string {
	t.Helper()
	p := "../.bin/" + name
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s missing: %v", p, err)
		}
		t.Skipf("%s missing (run `go tool task install`)", p)
	}
	return p
}

func fmtMinutes(base time.Time, i int) time.Time { return base.Add(time.Duration(i) * time.Minute) }
