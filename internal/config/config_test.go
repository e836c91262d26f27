package config

import (
	"flag"
	"io"
	"testing"
	"time"
)

func TestLoadFlagsOverrideEnvironment(t *testing.T) {
	env := map[string]string{"FLAMESTREAM_BATCH_SIZE": "64", "FLAMESTREAM_BATCH_WAIT": "3s", "NATS_URL": "nats://a:4222"}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c, err := Load(fs, []string{"-batch-size", "32"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.BatchSize != 32 || c.BatchWait != 3*time.Second || c.NATSURL != "nats://a:4222" {
		t.Errorf("got batch %d wait %v nats %q", c.BatchSize, c.BatchWait, c.NATSURL)
	}
	if c.ClickHouseAddr != "127.0.0.1:9000" {
		t.Errorf("default ClickHouse address %q", c.ClickHouseAddr)
	}
}

func TestLoadNamesTheBadVariable(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	_, err := Load(fs, nil, func(k string) string {
		if k == "FLAMESTREAM_BATCH_WAIT" {
			return "soon"
		}
		return ""
	})
	if err == nil || !contains(err.Error(), "FLAMESTREAM_BATCH_WAIT") {
		t.Fatalf("error %v does not name the variable", err)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
