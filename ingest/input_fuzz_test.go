package ingest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/flamestream/flamestream/internal/pgdb"
	"github.com/flamestream/flamestream/internal/profile"
)

// FuzzParseUploadAcceptsOnlyWhatIsStoredExactly: whatever parseUpload accepts, the indexer can store as it
// is: times within range and in order, every stack total within UInt32 when the indexer aggregates the
// text in the same format, and a hostname PostgreSQL can store.
func FuzzParseUploadAcceptsOnlyWhatIsStoredExactly(f *testing.F) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	hdr := `#{"metadata": {"hostname": "h"}}`
	for _, c := range []struct {
		start, end, host, text string
		v1                     bool
	}{
		{"2026-12-03T11:00:00", "2026-12-03T11:01:00", "h", hdr + "\n;comm;a 1\n", false},
		{"1969-12-31T23:59:59", "", "h", hdr + "\n;comm;a 1\n", false},
		{"2200-01-01T00:00:00", "", "h", hdr + "\n;comm;a 1\n", false},
		{"2026-12-03T11:00:00", "2026-12-03T10:00:00", "h", hdr + "\n;comm;a 1\n", false},
		{"2026-12-03T11:00:00", "", "h", hdr + "\n;comm;a 4294967295\n;comm;a 1\n", false},
		{"2026-12-03T11:00:00", "", "h", hdr + "\n;comm;a 18446744073709551615\n;comm;a 2\n", false},
		{"2026-12-03T11:00:00", "", "h", hdr + "\ncomm;a 4294967295\ncomm;a 1\n", true},
		{"2026-12-03T11:00:00", "", "a\x00b", `#{"metadata": {"hostname": ""}}` + "\n;comm;a 1\n", false},
		{"2026-12-03T11:00:00", "", "h", `#{"metadata": {"hostname": "a\u0000"}}` + "\n;comm;a 1\n", false},
		{"2026-12-04T12:00:00Z", "2026-12-04T12:00:00+00:00", "h", `#{"application_metadata_enabled": true, "metadata": {"hostname": "h"}}` + "\njava;appid: x;f 3\n", true},
	} {
		f.Add(c.start, c.end, c.host, c.text, c.v1)
	}
	f.Fuzz(func(t *testing.T, start, end, host, text string, v1 bool) {
		format := profile.FormatV2
		if v1 {
			format = profile.FormatV1
		}
		body, err := json.Marshal(map[string]string{"start_time": start, "end_time": end, "hostname": host, "profile": text, "gpid": ""})
		if err != nil {
			t.Skip()
		}
		p, err := parseUpload(body, format, now)
		if err != nil {
			if e, ok := err.(*apiError); !ok || e.status != 400 || e.message == "" {
				t.Fatalf("refusal %#v is not a 400 with a message", err)
			}
			return
		}
		if !profile.StorableTime(p.start) || !profile.StorableTime(p.end) || p.start.Before(minTime) ||
			p.end.After(now.Add(maxAhead)) || p.end.Before(p.start) {
			t.Fatalf("accepted the period %s … %s", p.start, p.end)
		}
		if pgdb.ValidName(p.host) != nil {
			t.Fatalf("accepted the hostname %q", p.host)
		}
		var a profile.Aggregate
		if _, err := profile.ParseAs(p.text, format, a.Add); err != nil {
			t.Fatalf("accepted a profile the indexer refuses: %v", err)
		}
		for _, e := range a.Entries() {
			if e.Count > profile.MaxCount {
				t.Fatalf("entry %+v over the limit", e)
			}
		}
	})
}

// FuzzCleanJSONGivesWhatJSONBAccepts: from any JSON value cleanJSON makes valid JSON without NUL bytes, a
// \u0000 escape or a lone surrogate, and it leaves clean values byte for byte.
func FuzzCleanJSONGivesWhatJSONBAccepts(f *testing.F) {
	for _, s := range []string{`{"a": 1}`, `{"a\u0000": "\u0000"}`, `["\ud800", 1e400]`, "{\"a\": \"\xff\"}", `"\\u0000"`, `{"a": {"b": ["\udc00\ud800"]}}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if !json.Valid([]byte(in)) {
			return // only JSON reaches cleanJSON: encoding/json decoded it before
		}
		out := cleanJSON(json.RawMessage(in))
		if out == nil {
			return
		}
		if !json.Valid(out) || !utf8.Valid(out) || bytes.IndexByte(out, 0) >= 0 {
			t.Fatalf("cleanJSON(%q) = %q", in, out)
		}
		if strings.Contains(string(out), `\u0000`) && !strings.Contains(string(out), `\\u0000`) {
			t.Fatalf("cleanJSON(%q) = %q keeps a \\u0000 escape", in, out)
		}
		for _, sur := range []string{`\ud8`, `\ud9`, `\uda`, `\udb`, `\udc`, `\udd`, `\ude`, `\udf`} {
			if strings.Contains(strings.ToLower(string(out)), sur) && !strings.Contains(string(out), `\\`) {
				t.Fatalf("cleanJSON(%q) = %q keeps a surrogate escape", in, out)
			}
		}
		if utf8.ValidString(in) && !strings.Contains(in, `\u`) && string(out) != in {
			t.Fatalf("clean value changed: %q → %q", in, out)
		}
	})
}
