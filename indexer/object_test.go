package indexer

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"strings"
	"testing"
)

// standard is what encoding/json returns for the profile field.
func standard(data []byte) (string, bool) {
	var up struct {
		Profile string `json:"profile"`
	}
	if err := json.Unmarshal(data, &up); err != nil {
		return "", false
	}
	return up.Profile, true
}

var profileFieldCases = []string{
	`{"profile": "a;b 1\nc;d 2\n"}`,
	`{"start_time": "2026-01-01T00:00:00.000000", "cpu_avg": 8.8, "gpid": "", "profile": "#{\"metadata\": {}}\nx;y 3", "n": null, "t": true}`,
	` { "nested": {"a": [1, 2, {"profile": "inner"}], "b": "\"}"}, "profile": "outer" } `,
	`{"profile": "esc \\ \/ \b \f \r \t \u00e9 \u4e2d"}`,
	`{"profile": "first", "profile": "last"}`,
	`{"Profile": "case differs"}`,
	`{"pro\u0066ile": "escaped key"}`,
	`{"profile": "surrogate \ud83d\ude00"}`,
	`{"profile": "lone \ud83d"}`,
	"{\"profile\": \"bad utf8 \xff\"}",
	"{\"profile\": \"raw control \x01\"}",
	`{"profile": "unterminated}`,
	`{"profile": 5}`,
	`{"other": "x"}`,
	`{}`,
	`[]`,
	`{"profile": "x"} trailing`,
	`{"profile": "x",}`,
	`{"a": [1,], "profile": "x"}`,
	`{"profile": "multi-byte ü 中 ok"}`,
	`{"profile": "quoted \"x\" and \\ backslash, then a long plain tail of ascii text"}`,
	"{\"profile\": \"a long plain ascii stretch before a raw control\x02 byte\"}",
	"{\"profile\": \"0123456789abcdef\xc3\xa9 valid two-byte rune after a word\"}",
}

func TestProfileFieldMatchesEncodingJSONOrDefersToIt(t *testing.T) {
	for _, in := range profileFieldCases {
		got, ok := profileField([]byte(in), nil)
		want, valid := standard([]byte(in))
		if ok && (!valid || string(got) != want) {
			t.Errorf("profileField(%q) = %q; encoding/json: %q (valid %v)", in, got, want, valid)
		}
	}
	// The plain agent body takes the fast path.
	for _, in := range profileFieldCases[:5] {
		if _, ok := profileField([]byte(in), nil); !ok {
			t.Errorf("profileField(%q) deferred to encoding/json", in)
		}
	}
}

func FuzzProfileField(f *testing.F) {
	for _, in := range profileFieldCases {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, ok := profileField(in, nil)
		if !ok {
			return
		}
		want, valid := standard(in)
		if !valid || string(got) != want {
			// Structure is checked loosely (ingest validated the body), but a value must never differ.
			if valid {
				t.Fatalf("profileField(%q) = %q, encoding/json %q", in, got, want)
			}
		}
	})
}

func TestDecodeReadsTheStoredUploadAndReusesItsBuffers(t *testing.T) {
	var d objectDecoder
	for _, text := range []string{"#{}\na;b 1\n", strings.Repeat("x;y 1\n", 10000), "short"} {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_ = json.NewEncoder(zw).Encode(map[string]any{"profile": text, "cpu_avg": 1.5})
		zw.Close()
		got, err := d.decode(buf.Bytes(), 1<<20)
		if err != nil || string(got) != text {
			t.Fatalf("decode = %q, %v; want %q", got, err, text)
		}
	}
	if _, err := d.decode([]byte("not gzip"), 1<<20); err == nil || !strings.Contains(err.Error(), "not gzip") {
		t.Errorf("decode of a non-gzip object: %v", err)
	}
}
