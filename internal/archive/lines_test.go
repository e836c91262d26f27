package archive

import (
	"bytes"
	"testing"
)

// Any bytes come back exactly: the line encoding splits and joins losslessly, and whatever does not look
// like a stack line is kept literally.
func TestLinesEncodingIsExact(t *testing.T) {
	cases := []string{
		``,
		`{}`,
		`{"profile": "#{\"h\":1}\na;b 3\na;b 3\nc 007\nd 0\ne\n f 1\ng -1\nh 99999999999999999999\n"}`,
		`{"start_time": "x", "profile": "#hdr\\nnot a break\na\\\\nb 5\n\u00e9;x 2", "gpid": ""}`,
		`{"profile":"unterminated`,
		`{"mode": "profile", "x": 1}`,
		"#{\"h\":1}\na;b 3\nc 4\n\n",
		"#only a header",
		`{"profile": ""}`,
	}
	var tab stackTable
	tab.max = 1 << 20
	small := stackTable{max: 3} // most stacks past its bound: kept inline
	for _, c := range cases {
		for _, tb := range []*stackTable{&tab, &small} {
			enc, ok := encodeLines(nil, []byte(c), tb)
			if !ok {
				continue
			}
			got, err := decodeLines(enc, tb.list, len(c))
			if err != nil || !bytes.Equal(got, []byte(c)) {
				t.Errorf("%q: decoded %q, %v", c, got, err)
			}
		}
	}
	if len(tab.list) < 3 {
		t.Errorf("stack table %q: want the stacks of the profiles", tab.list)
	}
}

func FuzzLinesEncoding(f *testing.F) {
	f.Add([]byte(`{"profile": "#h\na;b 3\nc 4\n"}`))
	f.Add([]byte("#h\na 1\nb 02\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tab := stackTable{max: 64}
		enc, ok := encodeLines(nil, b, &tab)
		if !ok {
			return
		}
		got, err := decodeLines(enc, tab.list, len(b))
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("%q: decoded %q, %v", b, got, err)
		}
	})
}
