package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestMigratePrintShowsTheChosenStorage(t *testing.T) {
	for _, tt := range []struct {
		storage string
		want    string
		wantNot string
	}{
		{"auto", "host String", "LowCardinality"},
		{"plain", "host String", "CODEC("},
		{"codecs", "ts DateTime CODEC(DoubleDelta, ZSTD(1))", "LowCardinality"},
		{"compact", "host LowCardinality(String)", " host String"},
	} {
		var out, errb bytes.Buffer
		// A closed port: --print must not dial anything.
		code := run([]string{"migrate", "--print", "--storage", tt.storage, "--ch-addr", "127.0.0.1:1", "--pg-url", "postgres://x@127.0.0.1:1/x"}, &out, &errb)
		if code != 0 {
			t.Fatalf("--storage %s: exit %d: %s", tt.storage, code, errb.String())
		}
		if !strings.Contains(out.String(), tt.want) || strings.Contains(out.String(), tt.wantNot) {
			t.Errorf("--storage %s: want %q and no %q in\n%s", tt.storage, tt.want, tt.wantNot, out.String())
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"migrate", "--print", "--storage", "lowcard"}, &out, &errb); code != 2 {
		t.Errorf("--storage lowcard: exit %d, want 2 (usage): %s", code, errb.String())
	}
}
