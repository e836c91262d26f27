package profile

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

const (
	hdrV2      = `#{"metadata": {"hostname": "h"}}`
	hdrV1      = `#{"metadata": {"hostname": "h", "run_arguments": {"profile_api_version": "v1"}}}`
	hdrAppMeta = `#{"metadata": {"hostname": "h"}, "application_metadata_enabled": true}`
)

// got is a copy of a Line as seen by the callback.
type got struct {
	AppIndex, Container, Stack string
	AppIndexNil, ContainerNil  bool
	Count                      uint64
	Number                     int // compared only where set; String leaves it out
}

func (g got) String() string {
	return fmt.Sprintf("{idx=%q(nil=%v) cont=%q(nil=%v) stack=%q n=%d}",
		g.AppIndex, g.AppIndexNil, g.Container, g.ContainerNil, g.Stack, g.Count)
}

func collect(t *testing.T, text string) (Header, []got, error) {
	t.Helper()
	var out []got
	h, err := Parse([]byte(text), func(l *Line) error {
		out = append(out, got{
			AppIndex: string(l.AppIndex), AppIndexNil: l.AppIndex == nil,
			Container: string(l.Container), ContainerNil: l.Container == nil,
			Stack: string(l.Stack), Count: l.Count,
		})
		return nil
	})
	return h, out, err
}

// v2 builds a got for a profile whose lines carry only the container field.
func v2(container, stack string, n uint64) got {
	return got{Container: container, Stack: stack, Count: n, AppIndexNil: true}
}

func TestParseRealAgentProfile(t *testing.T) {
	text := readRealProfile(t)

	// Independent expectation with plain string handling.
	wantLines, wantSum := 0, uint64(0)
	wantPerContainer := map[string]uint64{}
	for _, line := range strings.Split(string(text), "\n")[1:] {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		words := strings.Split(line, " ")
		n, err := strconv.ParseUint(words[len(words)-1], 10, 64)
		if err != nil {
			t.Fatalf("test data line %q: %v", line, err)
		}
		fields := strings.Split(strings.Join(words[:len(words)-1], " "), ";")
		var frames []string
		for _, f := range fields[2:] {
			if f = strings.TrimSpace(f); f != "" {
				frames = append(frames, f)
			}
		}
		if n == 0 || strings.HasPrefix(frames[0], "swapper") {
			continue
		}
		wantLines++
		wantSum += n
		wantPerContainer[fields[1]] += n
	}

	gotLines, gotSum := 0, uint64(0)
	gotPerContainer := map[string]uint64{}
	h, err := Parse(text, func(l *Line) error {
		gotLines++
		gotSum += l.Count
		gotPerContainer[string(l.Container)] += l.Count
		if l.AppIndex == nil {
			t.Errorf("line %d has no app index", gotLines)
		}
		if _, err := strconv.Atoi(string(l.AppIndex)); err != nil {
			t.Errorf("app index %q is not a number", l.AppIndex)
		}
		if bytes.Contains(l.Stack, []byte(";;")) || bytes.HasPrefix(l.Stack, []byte("swapper")) {
			t.Errorf("bad stack %q", l.Stack)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if h.Hostname != "ip-172-31-33-27" || h.AgentVersion != "1.35.0" {
		t.Errorf("header = %q %q", h.Hostname, h.AgentVersion)
	}
	// 73 stack lines in the file, 4 of them swapper stacks.
	if gotLines != 69 || gotLines != wantLines {
		t.Errorf("lines = %d, want 69 and %d", gotLines, wantLines)
	}
	if gotSum != 79 || gotSum != wantSum {
		t.Errorf("sum of counts = %d, want 79 and %d", gotSum, wantSum)
	}
	if fmt.Sprint(gotPerContainer) != fmt.Sprint(wantPerContainer) {
		t.Errorf("per container = %v, want %v", gotPerContainer, wantPerContainer)
	}
}

func TestParseRealAgentProfileWithCRLF(t *testing.T) {
	text := readRealProfile(t)
	crlf := bytes.ReplaceAll(text, []byte("\n"), []byte("\r\n"))
	var a, b []string
	if _, err := Parse(text, func(l *Line) error {
		a = append(a, fmt.Sprint(string(l.Container), string(l.Stack), l.Count))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(crlf, func(l *Line) error {
		b = append(b, fmt.Sprint(string(l.Container), string(l.Stack), l.Count))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Error("CRLF profile parses differently")
	}
}

func TestParseLines(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []got
	}{
		{
			name: "header only yields nothing",
			text: hdrV2,
		},
		{
			name: "header only with newline yields nothing",
			text: hdrV2 + "\n",
		},
		{
			name: "header only with CRLF and blank lines yields nothing",
			text: hdrV2 + "\r\n\r\n  \n\t\n",
		},
		{
			name: "v2 line has the container prefix",
			text: hdrV2 + "\ncont;python;main_[p];work_[p] 3\n",
			want: []got{v2("cont", "python;main_[p];work_[p]", 3)},
		},
		{
			name: "v2 line with empty container",
			text: hdrV2 + "\n;perf;do_syscall_64_[k] 1",
			want: []got{v2("", "perf;do_syscall_64_[k]", 1)},
		},
		{
			name: "v1 line has no prefix",
			text: hdrV1 + "\npython;main;work 2\n",
			want: []got{{Stack: "python;main;work", Count: 2, AppIndexNil: true, ContainerNil: true}},
		},
		{
			name: "app metadata line has index and container",
			text: hdrAppMeta + "\n4;web;gunicorn;run_[p] 5\n;;java;Foo.bar_[j];Foo.baz_[i] 7\n",
			want: []got{
				{AppIndex: "4", Container: "web", Stack: "gunicorn;run_[p]", Count: 5},
				{AppIndex: "", Container: "", Stack: "java;Foo.bar_[j];Foo.baz_[i]", Count: 7},
			},
		},
		{
			name: "empty frames are dropped",
			text: hdrV2 + "\nc;;comm;;a;;;b; 4\n",
			want: []got{v2("c", "comm;a;b", 4)},
		},
		{
			name: "frames are trimmed",
			text: hdrV2 + "\nc; comm ;\ta\t; b  ;  ;c 4\n",
			want: []got{v2("c", "comm;a;b;c", 4)},
		},
		{
			name: "container field is verbatim except that the line is trimmed",
			text: hdrV2 + "\n c ;comm 4\n",
			want: []got{v2("c ", "comm", 4)},
		},
		{
			name: "spaces inside frames are kept and the count is after the last space",
			text: hdrV2 + "\nc;uvicorn;appid: uvicorn: app.main:app (/app/main.py);[Error (errnos) 9]_[pe] 6\n",
			want: []got{v2("c", "uvicorn;appid: uvicorn: app.main:app (/app/main.py);[Error (errnos) 9]_[pe]", 6)},
		},
		{
			name: "several spaces before the count",
			text: hdrV2 + "\nc;comm;a   12\n",
			want: []got{v2("c", "comm;a", 12)},
		},
		{
			name: "CRLF line ends",
			text: hdrV2 + "\r\nc;comm;a 1\r\nc;comm;b 2\r\n",
			want: []got{v2("c", "comm;a", 1), v2("c", "comm;b", 2)},
		},
		{
			name: "blank lines between stacks are skipped",
			text: hdrV2 + "\n\nc;comm;a 1\n   \nc;comm;b 2\n\n",
			want: []got{v2("c", "comm;a", 1), v2("c", "comm;b", 2)},
		},
		{
			name: "last line without newline",
			text: hdrV2 + "\nc;comm;a 1\nc;comm;b 2",
			want: []got{v2("c", "comm;a", 1), v2("c", "comm;b", 2)},
		},
		{
			name: "zero counts are skipped",
			text: hdrV2 + "\nc;comm;a 0\nc;comm;b 00\nc;comm;c 1\n",
			want: []got{v2("c", "comm;c", 1)},
		},
		{
			name: "swapper stacks are skipped",
			text: hdrV2 + "\n;swapper/0;cpu_idle_[k] 655\n;swapper;x 1\n; swapper/1;x 1\n;;swapper/1;x 1\nc;comm;swapper 2\n;swappers_friend 1\n",
			want: []got{v2("c", "comm;swapper", 2)},
		},
		{
			name: "a header-like line after the header is a stack",
			text: hdrV1 + "\n#comm;a 1\n",
			want: []got{{Stack: "#comm;a", Count: 1, AppIndexNil: true, ContainerNil: true}},
		},
		{
			name: "count at the UInt32 limit",
			text: hdrV1 + "\ncomm 4294967295\n",
			want: []got{{Stack: "comm", Count: 4294967295, AppIndexNil: true, ContainerNil: true}},
		},
		{
			name: "many leading zeros before a count at the limit",
			text: hdrV1 + "\ncomm 000000000000000000000004294967295\n",
			want: []got{{Stack: "comm", Count: 4294967295, AppIndexNil: true, ContainerNil: true}},
		},
		{
			name: "leading zeros in the count",
			text: hdrV1 + "\ncomm 007\n",
			want: []got{{Stack: "comm", Count: 7, AppIndexNil: true, ContainerNil: true}},
		},
		{
			name: "annotated frames are kept verbatim",
			text: hdrV2 + "\nc;java;Interpreter_[i];java.lang.Thread.run_[j];JVM_Sleep_[pn];__schedule_[k];php_exec_[php];System.Main_[net];Ruby#m_[rb];s_[s];odd_[zz9] 1\n",
			want: []got{v2("c", "java;Interpreter_[i];java.lang.Thread.run_[j];JVM_Sleep_[pn];__schedule_[k];php_exec_[php];System.Main_[net];Ruby#m_[rb];s_[s];odd_[zz9]", 1)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, out, err := collect(t, tt.text)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(out) != fmt.Sprint(tt.want) {
				t.Errorf("got  %v\nwant %v", out, tt.want)
			}
		})
	}
}

func TestParseMalformedLines(t *testing.T) {
	tests := []struct {
		name   string
		text   string
		line   int
		reason string
	}{
		{"no count", hdrV2 + "\nc;comm;a\n", 2, "missing sample count"},
		{"count is a word", hdrV2 + "\nc;comm;a b\n", 2, "sample count is not a number"},
		{"count is negative", hdrV2 + "\nc;comm;a -1\n", 2, "sample count is not a number"},
		{"count has a sign", hdrV2 + "\nc;comm;a +1\n", 2, "sample count is not a number"},
		{"count is fractional", hdrV2 + "\nc;comm;a 1.5\n", 2, "sample count is not a number"},
		{"count one above the UInt32 limit", hdrV2 + "\nc;comm;a 4294967296\n", 2, "sample count 4294967296 is over the limit of 4294967295"},
		{"count of five billion", hdrV2 + "\nc;comm;a 5000000000\n", 2, "sample count 5000000000 is over the limit of 4294967295"},
		{"count at the uint64 limit", hdrV2 + "\nc;comm;a 18446744073709551615\n", 2, "sample count 18446744073709551615 is over the limit of 4294967295"},
		{"count overflows 64 bits", hdrV2 + "\nc;comm;a 18446744073709551616\n", 2, "sample count 18446744073709551616 is over the limit of 4294967295"},
		{"a very long count is shortened in the reason", hdrV2 + "\nc;comm;a " + strings.Repeat("9", 100) + "\n", 2,
			"sample count " + strings.Repeat("9", 40) + "… is over the limit of 4294967295"},
		{"count over the limit on a skipped swapper line", hdrV2 + "\n;swapper/0;cpu_idle_[k] 5000000000\n", 2, "sample count 5000000000 is over the limit of 4294967295"},
		{"a word after digits is not a number even past the limit", hdrV2 + "\nc;comm;a 99999999999x\n", 2, "sample count is not a number"},
		{"count separated by a tab", hdrV2 + "\nc;comm;a\t1\n", 2, "missing sample count"},
		{"no frames at all", hdrV1 + "\n;; 1\n", 2, "no frames"},
		{"only white-space frames", hdrV1 + "\n ; \t; 1\n", 2, "no frames"},
		{"container but no frames", hdrV2 + "\ncont; 1\n", 2, "no frames"},
		{"container field missing", hdrV2 + "\ncomm 1\n", 2, "no frames"},
		{"app metadata fields missing", hdrAppMeta + "\n1;comm 1\n", 2, "no frames"},
		{"error line number counts blank lines", hdrV2 + "\n\nc;comm 1\r\n\r\nc;comm x\n", 5, "sample count is not a number"},
		{"malformed zero-count line is still an error", hdrV2 + "\nc; 0\n", 2, "no frames"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _, err := collect(t, tt.text)
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("err = %v, want a *LineError", err)
			}
			if le.Line != tt.line || le.Reason != tt.reason {
				t.Errorf("got line %d %q, want line %d %q", le.Line, le.Reason, tt.line, tt.reason)
			}
			if want := fmt.Sprintf("line %d: %s", tt.line, tt.reason); err.Error() != want {
				t.Errorf("Error() = %q, want %q", err.Error(), want)
			}
			if h.Hostname != "h" {
				t.Errorf("header not returned with the line error: %+v", h)
			}
		})
	}
}

func TestParseRejectsABadHeader(t *testing.T) {
	tests := []struct {
		name string
		text string
		want error
	}{
		{"empty text", "", ErrBadMetadata},
		{"stacks without header", "c;comm;a 1\n", ErrBadMetadata},
		{"blank line before the header", "\n" + hdrV2 + "\n", ErrBadMetadata},
		{"header without metadata", "#{}\nc;comm 1\n", ErrMetadataMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			_, err := Parse([]byte(tt.text), func(*Line) error { calls++; return nil })
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
			if calls != 0 {
				t.Errorf("callback called %d times", calls)
			}
		})
	}
}

func TestParseStopsOnCallbackError(t *testing.T) {
	stop := errors.New("stop")
	calls := 0
	h, err := Parse([]byte(hdrV2+"\nc;a 1\nc;b 1\nc;c 1\n"), func(*Line) error {
		calls++
		if calls == 2 {
			return stop
		}
		return nil
	})
	if err != stop {
		t.Errorf("err = %v, want the callback's error unchanged", err)
	}
	if calls != 2 {
		t.Errorf("calls = %d, want 2", calls)
	}
	if h.Hostname != "h" {
		t.Errorf("header not returned with the callback error")
	}
}

func TestParseReusesTheLine(t *testing.T) {
	var first *Line
	_, err := Parse([]byte(hdrV2+"\nc;a 1\nc;b 1\n"), func(l *Line) error {
		if first == nil {
			first = l
		} else if l != first {
			t.Error("a different *Line on the second call")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestParseStackAliasesCleanLinesAndCopiesDirtyOnes(t *testing.T) {
	text := []byte(hdrV2 + "\nc;comm;a;b 1\nc;comm;;a 1\n")
	var stacks [][]byte
	_, err := Parse(text, func(l *Line) error { stacks = append(stacks, l.Stack); return nil })
	if err != nil {
		t.Fatal(err)
	}
	clean := bytes.Index(text, []byte("comm;a;b"))
	if &stacks[0][0] != &text[clean] {
		t.Error("a normalized stack was copied")
	}
	if string(stacks[1]) != "comm;a" {
		t.Errorf("dirty stack = %q", stacks[1])
	}
}

func TestParseLineDoesNotAllocate(t *testing.T) {
	lines := [][]byte{
		[]byte("4;container;python;a_[p];b_[p];c_[pn];do_syscall_64_[k] 12"),
		[]byte("4;container; python ;;a_[p];  b_[p];c_[pn];do_syscall_64_[k] 12\r"),
		[]byte(";;swapper/0;cpu_idle_[k] 600"),
		[]byte("1;other;comm;x 0"),
	}
	p := parser{prefix: 2}
	for _, l := range lines { // grow the buffer once
		p.parseLine(l)
	}
	allocs := testing.AllocsPerRun(100, func() {
		for _, l := range lines {
			if _, reason := p.parseLine(l); reason != "" {
				t.Fatal(reason)
			}
		}
	})
	if allocs != 0 {
		t.Errorf("parseLine allocates %.1f times per run", allocs)
	}
}

func TestParseAllocationsDoNotGrowWithLines(t *testing.T) {
	var small, large strings.Builder
	small.WriteString(hdrAppMeta + "\n")
	large.WriteString(hdrAppMeta + "\n")
	for i := range 1000 {
		line := fmt.Sprintf("%d;cont%d;comm;;frame_a_[p];frame_b%d_[k] %d\n", i%3, i%5, i, i+1)
		if i < 10 {
			small.WriteString(line)
		}
		large.WriteString(line)
	}
	count := func(text string) float64 {
		b := []byte(text)
		return testing.AllocsPerRun(20, func() {
			if _, err := Parse(b, func(*Line) error { return nil }); err != nil {
				t.Fatal(err)
			}
		})
	}
	if s, l := count(small.String()), count(large.String()); l > s+2 {
		t.Errorf("allocations: %v for 10 lines, %v for 1000 lines", s, l)
	}
}
