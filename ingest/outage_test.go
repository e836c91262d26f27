package ingest_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/flamestream/flamestream/cmd/flamestream/testenv"
	"github.com/flamestream/flamestream/internal/config"
	"github.com/flamestream/flamestream/internal/pgdb"
)

const outageStoreTimeout = 2 * time.Second

// outage runs the durability scenario against a server the test owns: uploads are acked; with the server
// down an upload gets 503 with Retry-After within the store timeout (no hung request) and /readyz says not
// ready; once it is back the agent's retry succeeds, and every acked profile is indexed exactly once.
func outage(t *testing.T, srv *process, edit func(*config.Config)) {
	srv.start()
	t.Cleanup(srv.stop)
	st := testenv.Start(t, testenv.Options{Edit: func(c *config.Config) {
		c.StoreTimeout = outageStoreTimeout
		edit(c)
	}})
	const service = "durable"
	token := st.Token(t, pgdb.KindAgent, service)
	fleet := smallFleet(5, service)
	rng := rand.New(rand.NewPCG(5, 5))
	base := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	bodies := make([][]byte, 8)
	var total uint64
	for i := range bodies {
		var n uint64
		bodies[i], n = profileBody(t, fleet, rng, fmt.Sprintf("host-%d", i%3), fmtMinutes(base, i), "")
		total += n
	}
	for i := range 5 {
		if r := upload(t, st.URL, token, service, bodies[i]); r.code != 200 {
			t.Fatalf("upload %d before the outage: %d %s", i, r.code, r.raw)
		}
	}

	srv.stop()
	t0 := time.Now()
	r := upload(t, st.URL, token, service, bodies[5])
	took := time.Since(t0)
	if r.code != http.StatusServiceUnavailable || r.message() == "" {
		t.Fatalf("upload during the outage: %d %s, want 503 with a message", r.code, r.raw)
	}
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
	}
	if took > outageStoreTimeout+3*time.Second {
		t.Errorf("the 503 took %s, want it within the store timeout %s", took, outageStoreTimeout)
	}
	t.Logf("503 %q after %s", r.message(), took.Round(time.Millisecond))
	if resp, err := http.Get(st.URL + "/readyz"); err != nil || resp.StatusCode != 503 {
		t.Errorf("/readyz during the outage: %v %v", resp.StatusCode, err)
	} else {
		resp.Body.Close()
	}

	srv.start()
	// The agent retries on its next cycle; here, until the server is back.
	deadline := time.Now().Add(30 * time.Second)
	for {
		r = upload(t, st.URL, token, service, bodies[5])
		if r.code == 200 {
			break
		}
		if r.code != 503 || time.Now().After(deadline) {
			t.Fatalf("retry after the outage: %d %s", r.code, r.raw)
		}
		time.Sleep(250 * time.Millisecond)
	}
	for i := 6; i < len(bodies); i++ {
		if r := upload(t, st.URL, token, service, bodies[i]); r.code != 200 {
			t.Fatalf("upload %d after the outage: %d %s", i, r.code, r.raw)
		}
	}
	if got := waitIndexed(t, st.CH, service, uint64(len(bodies)), 60*time.Second); got != total {
		t.Errorf("indexed %d samples, want %d: an acked profile was lost or doubled", got, total)
	}
}

func TestObjectStoreOutageGives503ThenLosesNothing(t *testing.T) {
	testenv.Servers(t)
	addr := testenv.FreeAddr(t)
	gw := &process{t: t, name: binary(t, "versitygw"), addr: addr,
		args: []string{"--port", addr, "--keep-alive", "--quiet", "posix", t.TempDir()},
		env:  []string{"ROOT_ACCESS_KEY=outage", "ROOT_SECRET_KEY=outage-secret"}}
	outage(t, gw, func(c *config.Config) {
		c.S3Endpoint, c.S3AccessKey, c.S3SecretKey = addr, "outage", "outage-secret"
	})
}

func TestNATSOutageGives503ThenLosesNothing(t *testing.T) {
	testenv.Servers(t)
	addr := testenv.FreeAddr(t)
	host, port := addr[:len("127.0.0.1")], addr[len("127.0.0.1:"):]
	ns := &process{t: t, name: binary(t, "nats-server"), addr: addr,
		args: []string{"-a", host, "-p", port, "-js", "-sd", t.TempDir()}}
	outage(t, ns, func(c *config.Config) { c.NATSURL = "nats://" + addr })
}
