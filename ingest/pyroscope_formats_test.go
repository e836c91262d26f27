package ingest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/flamestream/flamestream/internal/profile"
)

// foldedMap reads folded text back into stack → count, failing on a line that is not "stack count".
func foldedMap(t testing.TB, text []byte) map[string]uint64 {
	t.Helper()
	m := map[string]uint64{}
	for line := range strings.SplitSeq(strings.TrimSuffix(string(text), "\n"), "\n") {
		if line == "" {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		n, err := strconv.ParseUint(line[i+1:], 10, 64)
		if i < 0 || err != nil {
			t.Fatalf("line %q is not folded", line)
		}
		m[line[:i]] += n
	}
	return m
}

// Known encodings, as Pyroscope's own serializers write them (its tests pin these bytes): a trie holding
// "abc" 1 and "abd" 2 (names are fragments: "ab", then "c" and "d"), and a tree a → b (1), c (2).
var (
	knownTrie = []byte("\x00\x00\x01\x02ab\x00\x02\x01c\x01\x00\x01d\x02\x00")
	knownTree = []byte("\x00\x00\x01\x01a\x00\x02\x01b\x01\x00\x01c\x02\x00")
)

func TestTrieAndTreeReadAsPyroscopeWritesThem(t *testing.T) {
	text, err := trieToFolded(knownTrie, 1<<20)
	if got := foldedMap(t, text); err != nil || !maps.Equal(got, map[string]uint64{"abc": 1, "abd": 2}) {
		t.Errorf("trie: %v %v", got, err)
	}
	text, err = treeToFolded(knownTree, 1<<20)
	if got := foldedMap(t, text); err != nil || !maps.Equal(got, map[string]uint64{"a;b": 1, "a;c": 2}) {
		t.Errorf("tree: %v %v", got, err)
	}
}

// putNode appends one serialized node.
func putNode(b []byte, name string, value uint64, children int) []byte {
	b = binary.AppendUvarint(b, uint64(len(name)))
	b = append(b, name...)
	b = binary.AppendUvarint(b, value)
	return binary.AppendUvarint(b, uint64(children))
}

// encodeTree writes stacks as Pyroscope's tree.SerializeNoDict does: a root without a name, frames as
// nodes, each node's value the samples of its own stack, children in pre-order.
func encodeTree(stacks map[string]uint64) []byte {
	type node struct {
		self     uint64
		children map[string]*node
		order    []string
	}
	root := &node{children: map[string]*node{}}
	for _, k := range slices.Sorted(maps.Keys(stacks)) {
		n := root
		for f := range strings.SplitSeq(k, ";") {
			c, ok := n.children[f]
			if !ok {
				c = &node{children: map[string]*node{}}
				n.children[f], n.order = c, append(n.order, f)
			}
			n = c
		}
		n.self += stacks[k]
	}
	var out []byte
	var walk func(name string, n *node)
	walk = func(name string, n *node) {
		out = putNode(out, name, n.self, len(n.order))
		for _, f := range n.order {
			walk(f, n.children[f])
		}
	}
	walk("", root)
	return out
}

// encodeTrie writes stacks as a trie: a root, a shared prefix node when the stacks have one (names are
// fragments of the key, cut anywhere), and one leaf per stack.
func encodeTrie(stacks map[string]uint64) []byte {
	keys := slices.Sorted(maps.Keys(stacks))
	prefix := ""
	if len(keys) > 1 {
		prefix = keys[0]
		for _, k := range keys[1:] {
			for !strings.HasPrefix(k, prefix) {
				prefix = prefix[:len(prefix)-1]
			}
		}
	}
	out := putNode(nil, "", 0, 1)
	if prefix != "" {
		v := stacks[prefix] // a stack may end at the prefix itself
		rest := slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return k == prefix })
		out = putNode(out, prefix, v, len(rest))
		for _, k := range rest {
			out = putNode(out, k[len(prefix):], stacks[k], 0)
		}
		return out
	}
	out = putNode(out[:0], "", 0, len(keys))
	for _, k := range keys {
		out = putNode(out, k, stacks[k], 0)
	}
	return out
}

func TestTrieAndTreeRoundTrip(t *testing.T) {
	stacks := map[string]uint64{"main;work": 30, "main;work;inner": 4, "main;idle": 12, "gc": 1, "main;w ith space": 7}
	text, err := treeToFolded(encodeTree(stacks), 1<<20)
	if got := foldedMap(t, text); err != nil || !maps.Equal(got, stacks) {
		t.Errorf("tree: %v %v", got, err)
	}
	text, err = trieToFolded(encodeTrie(stacks), 1<<20)
	if got := foldedMap(t, text); err != nil || !maps.Equal(got, stacks) {
		t.Errorf("trie: %v %v", got, err)
	}
	shared := map[string]uint64{"main;a": 1, "main;ab": 2, "main;b;c": 3}
	text, err = trieToFolded(encodeTrie(shared), 1<<20)
	if got := foldedMap(t, text); err != nil || !maps.Equal(got, shared) {
		t.Errorf("trie with a shared prefix: %v %v", got, err)
	}
}

// TestTrieAndTreeRefusals: every malformed body is a 4xx naming what is wrong, never a panic or a 5xx.
func TestTrieAndTreeRefusals(t *testing.T) {
	deep := putNode(nil, "", 0, 1)
	for range 2000 { // each node's stack is written whole: quadratic
		deep = putNode(deep, strings.Repeat("x", 100), 1, 1)
	}
	deep = putNode(deep, "y", 1, 0)
	for _, c := range []struct {
		name, format string
		body         []byte
		code         int
		message      string
	}{
		{"truncated trie", "trie", knownTrie[:len(knownTrie)-1], 400, "malformed profile: trie: truncated at byte 15"},
		{"truncated tree", "tree", knownTree[:9], 400, "malformed profile: tree: node at byte 3 claims 2 children in the 2 bytes left"},
		{"children that never come", "tree", putNode(nil, "", 0, 1<<40), 400, "malformed profile: tree: node at byte 0 claims 1099511627776 children in the 0 bytes left"},
		{"name longer than the body", "trie", []byte("\xff\xff\xff\xff\x0f"), 400, "malformed profile: trie: name of 4294967295 bytes at byte 5 runs past the end (5 bytes)"},
		{"varint overflow", "trie", bytes.Repeat([]byte{0xff}, 11), 400, "malformed profile: trie: varint at byte 0 overflows 64 bits"},
		{"bytes after the tree", "tree", append(slices.Clone(knownTree), 0), 400, "malformed profile: tree: 1 bytes after the tree"},
		{"line break in a frame", "tree", encodeTree(map[string]uint64{"a;b\nc": 1}), 400, "malformed profile: stack 1 has a line break in a frame name"},
		{"expands past the limit", "tree", deep, 413, "profile too large"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var err error
			if c.format == "trie" {
				_, err = trieToFolded(c.body, 1<<20)
			} else {
				_, err = treeToFolded(c.body, 1<<20)
			}
			var ae *apiError
			if !errors.As(err, &ae) || ae.status != c.code || ae.message != c.message {
				t.Errorf("got %v, want %d %q", err, c.code, c.message)
			}
		})
	}
}

// FuzzPyroscopeTrieAndTree: any body converts or is refused with a 4xx; what converts is folded text the
// indexer's parser reads, within the limit; stacks encoded by the encoders read back exactly.
func FuzzPyroscopeTrieAndTree(f *testing.F) {
	f.Add(knownTrie, "")
	f.Add(knownTree, "")
	f.Add([]byte{}, "main;work\x00main;idle")
	f.Add(encodeTree(map[string]uint64{"a;b": 3}), "a\x00a;b\x00x y;z")
	f.Fuzz(func(t *testing.T, body []byte, stackText string) {
		for _, conv := range []func([]byte, int64) ([]byte, error){trieToFolded, treeToFolded} {
			text, err := conv(body, 1<<16)
			if err != nil {
				var ae *apiError
				if !errors.As(err, &ae) || ae.status < 400 || ae.status >= 500 || ae.message == "" {
					t.Fatalf("error %v is not a 4xx reply", err)
				}
				continue
			}
			if len(text) > 1<<16 {
				t.Fatalf("%d bytes of text over the limit", len(text))
			}
			foldedMap(t, text)
		}
		stacks := map[string]uint64{}
		for i, s := range strings.Split(stackText, "\x00") {
			if s == "" || strings.ContainsAny(s, "\n\r") || strings.HasPrefix(s, ";") || strings.HasSuffix(s, ";") || strings.Contains(s, ";;") {
				continue
			}
			stacks[s] = uint64(i + 1)
		}
		if text, err := treeToFolded(encodeTree(stacks), 1<<30); err != nil || !maps.Equal(foldedMap(t, text), stacks) {
			t.Fatalf("tree of %v: %q %v", stacks, text, err)
		}
		if text, err := trieToFolded(encodeTrie(stacks), 1<<30); err != nil || !maps.Equal(foldedMap(t, text), stacks) {
			t.Fatalf("trie of %v: %q %v", stacks, text, err)
		}
	})
}

func speedscopeDoc(profiles string) []byte {
	return []byte(`{"$schema":"https://www.speedscope.app/file-format-schema.json","shared":{"frames":[{"name":"main"},{"name":"work;x"},{"name":"idle","file":"a.py","line":3},{"name":""}]},"profiles":[` + profiles + `]}`)
}

func TestSpeedscopeToFolded(t *testing.T) {
	for _, c := range []struct {
		name, profiles string
		rate           float64
		want           map[string]uint64
		units          string
	}{
		{"sampled, counts", `{"type":"sampled","unit":"none","samples":[[0,1],[0,2],[0,1],[3]],"weights":[1,2,4,1]}`, 100,
			map[string]uint64{"main;work:x": 5, "main;idle": 2, "[unknown]": 1}, "samples"},
		{"sampled, seconds at 100 Hz, summed before rounding", `{"type":"sampled","unit":"seconds","samples":[[0,1],[0,1],[0,1],[0,2]],"weights":[0.004,0.004,0.004,0.25]}`, 100,
			map[string]uint64{"main;work:x": 1, "main;idle": 25}, "samples"},
		{"evented, milliseconds at 1000 Hz", `{"type":"evented","unit":"milliseconds","startValue":0,"endValue":30,"events":[
			{"type":"O","frame":0,"at":0},{"type":"O","frame":1,"at":2},{"type":"C","frame":1,"at":12},{"type":"O","frame":2,"at":12},{"type":"C","frame":2,"at":27},{"type":"C","frame":0,"at":30}]}`, 1000,
			map[string]uint64{"main": 5, "main;work:x": 10, "main;idle": 15}, "samples"},
		{"two profiles (threads) and a heap one", `{"type":"sampled","unit":"none","samples":[[0]],"weights":[2]},{"type":"sampled","unit":"none","samples":[[0],[1]],"weights":[1,1]},
			{"type":"sampled","unit":"bytes","samples":[[2]],"weights":[4096]}`, 100, map[string]uint64{"main": 3, "work:x": 1}, "samples"},
		{"bytes only", `{"type":"sampled","unit":"bytes","samples":[[2]],"weights":[4096]}`, 100, map[string]uint64{}, "bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			text, units, err := speedscopeToFolded(speedscopeDoc(c.profiles), c.rate, 1<<20)
			if got := foldedMap(t, text); err != nil || !maps.Equal(got, c.want) || units != c.units {
				t.Errorf("got %v %q %v, want %v %q", got, units, err, c.want, c.units)
			}
		})
	}
	for _, c := range []struct{ name, body, message string }{
		{"not JSON", `{"$schema":`, "malformed profile: speedscope: unexpected end of JSON input"},
		{"other schema", `{"$schema":"x"}`, `malformed profile: speedscope: $schema is "x", want https://www.speedscope.app/file-format-schema.json`},
		{"frame out of range", string(speedscopeDoc(`{"type":"sampled","unit":"none","samples":[[4]],"weights":[1]}`)), "malformed profile: speedscope: profile 0: frame 4 is not in shared.frames (4 frames)"},
		{"weights missing", string(speedscopeDoc(`{"type":"sampled","unit":"none","samples":[[0]],"weights":[]}`)), "malformed profile: speedscope: profile 0 has 1 samples and 0 weights"},
		{"negative weight", string(speedscopeDoc(`{"type":"sampled","unit":"none","samples":[[0]],"weights":[-1]}`)), "malformed profile: speedscope: profile 0: sample 0 has weight -1"},
		{"unknown unit", string(speedscopeDoc(`{"type":"sampled","unit":"cycles","samples":[],"weights":[]}`)), `malformed profile: speedscope: profile 0: unit "cycles" is not one of none, nanoseconds, microseconds, milliseconds, seconds, bytes`},
		{"close of another frame", string(speedscopeDoc(`{"type":"evented","unit":"none","events":[{"type":"O","frame":0,"at":0},{"type":"C","frame":1,"at":1}]}`)), "malformed profile: speedscope: profile 0: event 1 closes frame 1, which is not the innermost open frame"},
		{"events out of order", string(speedscopeDoc(`{"type":"evented","unit":"none","events":[{"type":"O","frame":0,"at":5},{"type":"C","frame":0,"at":1}]}`)), "malformed profile: speedscope: profile 0: event 1 at 1 is before the one before it (5)"},
		{"unknown type", string(speedscopeDoc(`{"type":"other","unit":"none"}`)), `malformed profile: speedscope: profile 0 has type "other", want sampled or evented`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := speedscopeToFolded([]byte(c.body), 100, 1<<20)
			var ae *apiError
			if !errors.As(err, &ae) || ae.status != 400 || ae.message != c.message {
				t.Errorf("got %v, want 400 %q", err, c.message)
			}
		})
	}
}

// FuzzSpeedscope: any body converts to folded text or is refused with a 4xx.
func FuzzSpeedscope(f *testing.F) {
	f.Add(speedscopeDoc(`{"type":"sampled","unit":"none","samples":[[0,1]],"weights":[1]}`))
	f.Add(speedscopeDoc(`{"type":"evented","unit":"seconds","events":[{"type":"O","frame":0,"at":0},{"type":"C","frame":0,"at":1e300}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		text, _, err := speedscopeToFolded(body, 100, 1<<16)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.status < 400 || ae.status >= 500 {
				t.Fatalf("error %v is not a 4xx reply", err)
			}
			return
		}
		foldedMap(t, text)
	})
}

// postPyroscopeBody posts body to POST /ingest with query q (name, from and until added).
func postPyroscopeBody(h http.Handler, q url.Values, contentType string, body []byte) *httptest.ResponseRecorder {
	q.Set("name", "app.cpu{hostname=h1}")
	from := time.Now().Add(-time.Minute).Unix()
	q.Set("from", strconv.FormatInt(from, 10))
	q.Set("until", strconv.FormatInt(from+10, 10))
	req := httptest.NewRequest(http.MethodPost, "/ingest?"+q.Encode(), bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", "Bearer k")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// TestPyroscopeOtherFormatsAreStoredAsFolded posts trie, tree (by format and by Content-Type), speedscope
// and collapsed bodies: each is stored as folded text that the indexer's parser reads to the samples
// sent, with the format it came in named in the stored query; a retry keeps its ids.
func TestPyroscopeOtherFormatsAreStoredAsFolded(t *testing.T) {
	stacks := map[string]uint64{"main;work": 30, "main;idle": 12}
	for _, c := range []struct {
		name, format, contentType string
		body                      []byte
		from                      string
		samples                   uint64
	}{
		{"trie", "trie", "", encodeTrie(stacks), "trie", 42},
		{"trie by Content-Type", "", "binary/octet-stream+trie", encodeTrie(stacks), "trie", 42},
		{"tree", "tree", "", encodeTree(stacks), "tree", 42},
		{"tree by Content-Type", "", "binary/octet-stream+tree", encodeTree(stacks), "tree", 42},
		{"speedscope", "speedscope", "application/json", speedscopeDoc(`{"type":"sampled","unit":"none","samples":[[0,1],[0,2]],"weights":[3,4]}`), "speedscope", 7},
		{"collapsed (the Java agent's folded)", "collapsed", "", []byte("main;work 30\nmain;idle 12\n"), "collapsed", 42},
	} {
		t.Run(c.name, func(t *testing.T) {
			cp := &capture{objects: map[string][]byte{}}
			h := otlpServer(cp)
			for range 2 {
				q := url.Values{}
				if c.format != "" {
					q.Set("format", c.format)
				}
				if w := postPyroscopeBody(h, q, c.contentType, c.body); w.Code != 200 {
					t.Fatalf("%d %s", w.Code, w.Body)
				}
			}
			if len(cp.events) != 2 || cp.events[0].ID != cp.events[1].ID || len(cp.objects) != 1 {
				t.Fatalf("events %+v, %d objects", cp.events, len(cp.objects))
			}
			zr, err := gzip.NewReader(bytes.NewReader(cp.objects[cp.events[0].Key]))
			if err != nil {
				t.Fatal(err)
			}
			text, _ := io.ReadAll(zr)
			var agg profile.Aggregate
			if _, err := profile.ParseAs(text, profile.Format(cp.events[0].Format), agg.Add); err != nil || agg.Samples() != c.samples {
				t.Errorf("stored object parses to %d samples (%v), want %d", agg.Samples(), err, c.samples)
			}
			head, _, _ := bytes.Cut(text, []byte("\n"))
			var env profile.Envelope
			if err := json.Unmarshal(head[1:], &env); err != nil {
				t.Fatal(err)
			}
			q, _ := url.ParseQuery(env.Query)
			if q.Get("format") != "folded" || q.Get("converted_from") != c.from || env.ContentType != "text/plain" {
				t.Errorf("stored query %q, content type %q", env.Query, env.ContentType)
			}
		})
	}
}

// TestPyroscopeRefusedFormats: jfr and unknown formats are 415 naming the formats read (and, for jfr, how
// to switch the Java agent), bad bodies of the converted formats 400, a speedscope heap profile is 200
// and not stored; nothing is ever a 5xx.
func TestPyroscopeRefusedFormats(t *testing.T) {
	for _, c := range []struct {
		name, format, rate string
		body               []byte
		code               int
		message, detail    string
	}{
		{"jfr", "jfr", "", []byte("FLR\x00"), 415, "format jfr is not supported", "PYROSCOPE_FORMAT"},
		{"unknown", "perf_script", "", []byte("x"), 415, `format "perf_script" is not supported`, pyroscopeFormats},
		{"bad trie", "trie", "", []byte("\x05ab"), 400, "malformed profile: trie: name of 5 bytes at byte 1 runs past the end (3 bytes)", ""},
		{"bad speedscope", "speedscope", "", []byte("[]"), 400, "malformed profile: speedscope: json: cannot unmarshal array into Go value of type ingest.speedscopeFile", ""},
		{"bad sampleRate", "speedscope", "fast", speedscopeDoc(""), 400, `bad query: sampleRate "fast" is not a positive number`, ""},
		{"heap speedscope", "speedscope", "", speedscopeDoc(`{"type":"sampled","unit":"bytes","samples":[[0]],"weights":[5]}`), 200, "not stored: units bytes: Flamestream keeps CPU samples only", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			cp := &capture{objects: map[string][]byte{}}
			q := url.Values{"format": {c.format}}
			if c.rate != "" {
				q.Set("sampleRate", c.rate)
			}
			w := postPyroscopeBody(otlpServer(cp), q, "", c.body)
			var reply struct{ Message, Detail string }
			if err := json.Unmarshal(w.Body.Bytes(), &reply); err != nil || w.Code != c.code || reply.Message != c.message ||
				!strings.Contains(reply.Detail, c.detail) {
				t.Errorf("got %d %s, want %d %q (detail with %q)", w.Code, w.Body, c.code, c.message, c.detail)
			}
			if len(cp.objects) != 0 || len(cp.events) != 0 {
				t.Errorf("a refused request was stored")
			}
		})
	}
}

// benchStacks is a profile of n distinct stacks of depth 12 over 40 frames.
func benchStacks(n int) map[string]uint64 {
	m := map[string]uint64{}
	for i := range n {
		var b strings.Builder
		for d := range 12 {
			if d > 0 {
				b.WriteByte(';')
			}
			b.WriteString("pkg.func" + strconv.Itoa((i*7+d*13)%40))
		}
		b.WriteString(";leaf" + strconv.Itoa(i))
		m[b.String()] = uint64(i%9 + 1)
	}
	return m
}

// BenchmarkTreeToFolded converts a tree of 5,000 stacks.
func BenchmarkTreeToFolded(b *testing.B) {
	body := encodeTree(benchStacks(5000))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := treeToFolded(body, 1<<30); err != nil {
			b.Fatal(err)
		}
	}
}
