package profile

import (
	"bytes"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// exampleRules is the rules file the repository ships (deploy/frame-rules.yaml).
func exampleRules(t testing.TB) *Rules {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	r, err := LoadRules(filepath.Join(filepath.Dir(file), "..", "..", "deploy", "frame-rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestShippedRulesLoadAndPassTheirTests(t *testing.T) {
	if n := exampleRules(t).Len(); n < 5 {
		t.Errorf("%d rules loaded", n)
	}
}

// The original studio's files put `rule:` and `test:` keys with no value on list entries and continue
// long strings over lines with a backslash: such a file loads as it is.
func TestRulesReadTheOriginalLayout(t *testing.T) {
	src := "rules:\n\n  - rule:\n    regexp: \"Accessor_?([0-9]+|RN[0-9A-F]+)\"\n    replace: \"Accessor[m]\"\n    tests:\n" +
		"      - test:\n        input: \"reflect/Generated\\\n        MethodAccessor12.invoke\"\n        output: \"reflect/GeneratedMethodAccessor[m].invoke\"\n"
	r, err := ParseRules([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Frame("a/GeneratedMethodAccessor_RN1F.invoke"); got != "a/GeneratedMethodAccessor[m].invoke" {
		t.Errorf("Frame = %q", got)
	}
}

func TestRulesRefuseWhatTheyCannotApply(t *testing.T) {
	for _, c := range []struct{ name, src, want string }{
		{"bad regexp", "rules:\n  - regexp: \"a(\"\n    replace: x\n", "rule 1: error parsing regexp"},
		{"failing test", "rules:\n  - regexp: \"[0-9]+\"\n    replace: N\n    tests:\n      - input: a1\n        output: a2\n", `rule 1 ([0-9]+), test 1: "a1" gives "aN", want "a2"`},
		{"semicolon", "rules:\n  - regexp: x\n    replace: \"a;b\"\n", "holds ';'"},
		{"no replace", "rules:\n  - regexp: x\n", "no replace"},
		{"no regexp", "rules:\n  - replace: x\n", "rule 1: no regexp"},
		{"test without output", "rules:\n  - regexp: x\n    replace: y\n    tests:\n      - input: x\n", "input and output are both required"},
		{"empty", "rules: []\n", "no rules"},
		{"not yaml", "rules: [\n", "yaml"},
	} {
		_, err := ParseRules([]byte(c.src))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to say %q", c.name, err, c.want)
		}
	}
}

func TestRewriterFoldsFramesByTheFirstMatchingRule(t *testing.T) {
	r, err := ParseRules([]byte("rules:\n" +
		"  - regexp: \"Lambda\\\\$[0-9]+\"\n    replace: \"Lambda$$[n]\"\n" +
		"  - regexp: \"[0-9]+\"\n    replace: \"#\"\n" +
		"  - regexp: \"^drop-me$\"\n    replace: \"\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	w := r.NewRewriter()
	for _, c := range []struct{ in, want string }{
		// The first rule wins on a frame: its other numbers stay.
		{"java;Main.run;Orders$$Lambda$412.apply7", "java;Main.run;Orders$$Lambda$[n].apply7"},
		// Another frame of the same stack meets the second rule.
		{"java;Worker42.loop;Orders$$Lambda$9.apply", "java;Worker#.loop;Orders$$Lambda$[n].apply"},
		{"python;drop-me;leaf", "python;leaf"},
		{"drop-me", "drop-me"}, // nothing would be left: the stack stays whole
		{"plain;frames", "plain;frames"},
	} {
		for range 2 { // the second time from the cache
			if got := string(w.Stack([]byte(c.in))); got != c.want {
				t.Errorf("Stack(%q) = %q, want %q", c.in, got, c.want)
			}
		}
	}
	in := []byte("no;rule;matches")
	if out := w.Stack(in); &out[0] != &in[0] {
		t.Error("an unchanged stack was copied")
	}
}

func TestRewriterCacheIsBounded(t *testing.T) {
	w := exampleRules(t).NewRewriter()
	var b bytes.Buffer
	for i := range maxRewriterCache + 10 {
		b.Reset()
		b.WriteString("java;frame")
		b.WriteString(strings.Repeat("x", i%7))
		b.WriteByte(byte('a' + i%26))
		b.WriteString(strings.TrimSpace(string(rune('0' + i%10))))
		b.WriteString(";")
		b.WriteString(string(rune(0x4e00 + i)))
		w.Stack(b.Bytes())
		if len(w.cache) > maxRewriterCache {
			t.Fatalf("cache holds %d frames, bound %d", len(w.cache), maxRewriterCache)
		}
	}
}

// A rewritten stack is still normalized: no empty frame, no white space around a frame.
func FuzzRewriterStack(f *testing.F) {
	r := exampleRules(f)
	for _, s := range []string{"java;a$$Lambda$1/0x1f.b", "x", "a;b;c", "java;$Proxy12.get;/tmp/perf-1.map"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var frames []string
		for _, fr := range strings.Split(s, ";") {
			if fr = strings.TrimSpace(fr); fr != "" {
				frames = append(frames, fr)
			}
		}
		if len(frames) == 0 {
			return
		}
		in := strings.Join(frames, ";")
		out := string(r.NewRewriter().Stack([]byte(in)))
		for _, fr := range strings.Split(out, ";") {
			if fr == "" || fr != strings.TrimSpace(fr) {
				t.Fatalf("Stack(%q) = %q: frame %q", in, out, fr)
			}
		}
	})
}

func BenchmarkRewriterStack(b *testing.B) {
	w := exampleRules(b).NewRewriter()
	stack := []byte("java;java/lang/Thread.run;com/example/Pool.work;com/example/Orders$$Lambda$412/0x0000000801234c40.apply;" +
		"jdk/internal/reflect/GeneratedMethodAccessor1205.invoke;com/example/Db.query;java/net/SocketInputStream.read")
	b.ReportAllocs()
	for b.Loop() {
		w.Stack(stack)
	}
}
