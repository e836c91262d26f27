package profile

import (
	"net/url"
	"testing"

	"google.golang.org/protobuf/proto"
)

// FuzzFrontDoorFormats feeds arbitrary bodies to the Pyroscope and OTLP parsers: they never panic, and
// what Describe accepts ParseAs reads to the same totals (what ingest checks is what the indexer stores).
func FuzzFrontDoorFormats(f *testing.F) {
	body, _ := proto.Marshal(testOTLPRequest())
	f.Add(false, "name=app.cpu%7Bhostname%3Dh%7D", "", []byte("a;b 3\na;c 1\n"))
	f.Add(false, "name=app&format=lines", "", []byte("a;b\na;b\n"))
	f.Add(true, "", "", body)
	f.Fuzz(func(t *testing.T, otlp bool, query, contentType string, body []byte) {
		kind, format := "pyroscope", FormatPyroscope
		if otlp {
			kind, format = "otlp", FormatOTLP
		}
		if _, err := url.ParseQuery(query); err != nil {
			return
		}
		text := Envelope{Kind: kind, Query: query, ContentType: contentType, Service: "s"}.Encode(body)
		units, err := Describe(text, format)
		if err != nil {
			return
		}
		for _, u := range units {
			if u.Skipped != "" {
				continue
			}
			var a Aggregate
			if _, err := ParseAs(text, u.Format, a.Add); err != nil {
				t.Fatalf("Describe accepted, ParseAs %s refused: %v", u.Format, err)
			}
			if a.Samples() != u.Samples {
				t.Fatalf("%s: ParseAs read %d samples, Describe %d", u.Format, a.Samples(), u.Samples)
			}
		}
	})
}
