package config

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

// testVars stand for a role's own variables next to the shared ones.
func testVars() []Var {
	return Join(ClickHouse(), NATS(), []Var{
		Int("FLAMESTREAM_BATCH_SIZE", "batch-size", 256, "events per batch", func(c *Config) *int { return &c.BatchSize }),
		Duration("FLAMESTREAM_BATCH_WAIT", "batch-wait", time.Second, "longest wait", func(c *Config) *time.Duration { return &c.BatchWait }),
	})
}

func TestLoadFlagsOverrideEnvironment(t *testing.T) {
	env := map[string]string{"FLAMESTREAM_BATCH_SIZE": "64", "FLAMESTREAM_BATCH_WAIT": "3s", "NATS_URL": "nats://a:4222"}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c, err := Load(fs, []string{"-batch-size", "32"}, func(k string) string { return env[k] }, testVars())
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
	}, testVars())
	if err == nil || !strings.Contains(err.Error(), "FLAMESTREAM_BATCH_WAIT") {
		t.Fatalf("error %v does not name the variable", err)
	}
}

// A command accepts the flags of its own variables and no other: -pg-url is not among testVars.
func TestLoadRejectsAFlagOfAnotherCommand(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if _, err := Load(fs, []string{"-pg-url", "postgres://x"}, func(string) string { return "" }, testVars()); err == nil {
		t.Fatal("-pg-url accepted by a command that does not read PostgreSQL")
	}
	if fs.Lookup("ch-addr") == nil || fs.Lookup("pg-url") != nil {
		t.Errorf("flags: ch-addr %v, pg-url %v", fs.Lookup("ch-addr") != nil, fs.Lookup("pg-url") != nil)
	}
}

func TestJoinKeepsOneOfTwoEqualDeclarationsAndRefusesConflictingOnes(t *testing.T) {
	a := Int("X", "x", 1, "one", func(c *Config) *int { return &c.BatchSize })
	if got := Join([]Var{a}, []Var{a}); len(got) != 1 {
		t.Fatalf("Join kept %d copies", len(got))
	}
	defer func() {
		if recover() == nil {
			t.Error("Join accepted X declared with defaults 1 and 2")
		}
	}()
	Join([]Var{a}, []Var{Int("X", "x", 2, "two", func(c *Config) *int { return &c.BatchSize })})
}

func TestDurationDefaultsPrintAsOperatorsWriteThem(t *testing.T) {
	for d, want := range map[time.Duration]string{time.Hour: "1h", 168 * time.Hour: "168h", 10 * time.Second: "10s", 90 * time.Minute: "1h30m", time.Second: "1s"} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
