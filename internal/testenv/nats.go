package testenv

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flamestream/flamestream/stream"
)

// JetStream starts a real NATS server with JetStream in the test process (stream.StartEmbedded, its store
// in a temporary directory) and connects to it. The server and the connection end with the test.
func JetStream(t testing.TB) (url string, nc *nats.Conn, js jetstream.JetStream) {
	t.Helper()
	ns, err := stream.StartEmbedded(t.TempDir(), -1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, err = nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err = jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return ns.URL(), nc, js
}
