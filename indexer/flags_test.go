package indexer_test

import (
	"flag"
	"io"
	"testing"
	"time"

	"github.com/flamestream/flamestream/indexer"
	"github.com/flamestream/flamestream/internal/config"
)

// FLAMESTREAM_ARCHIVE_COMPACT_AFTER reaches the janitor's compaction: its default, a value, and 0 or a
// negative value turning compaction off (After < 0; a zero Compaction would mean the 2h default).
func TestCompactionOfFollowsTheVariable(t *testing.T) {
	for _, c := range []struct {
		env  string
		want time.Duration
	}{{"", 2 * time.Hour}, {"3h", 3 * time.Hour}, {"0", -1}, {"-5m", -1}} {
		fs := flag.NewFlagSet("janitor", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		cfg, err := config.Load(fs, nil, func(k string) string {
			if k == "FLAMESTREAM_ARCHIVE_COMPACT_AFTER" {
				return c.env
			}
			return ""
		}, indexer.JanitorVars())
		if err != nil {
			t.Fatalf("%q: %v", c.env, err)
		}
		if got := indexer.CompactionOf(cfg).After; got != c.want {
			t.Errorf("FLAMESTREAM_ARCHIVE_COMPACT_AFTER=%q: After %v, want %v", c.env, got, c.want)
		}
	}
}
