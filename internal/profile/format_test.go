package profile

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func collectAs(t *testing.T, text string, f Format) (Header, []got, error) {
	t.Helper()
	var out []got
	h, err := ParseAs([]byte(text), f, func(l *Line) error {
		out = append(out, got{
			AppIndex: string(l.AppIndex), AppIndexNil: l.AppIndex == nil,
			Container: string(l.Container), ContainerNil: l.Container == nil,
			Stack: string(l.Stack), Count: l.Count,
		})
		return nil
	})
	return h, out, err
}

// v1 builds a got for a line without prefix fields.
func v1(stack string, n uint64) got {
	return got{Stack: stack, Count: n, AppIndexNil: true, ContainerNil: true}
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAgentMergeTextParsesAsTheAgentMeans reads the text the agent's own merge code writes (copies of
// shared/testdata): v1 lines have no prefix fields even though the header says application metadata is
// enabled, v2 lines have the index and the container before the process name.
func TestAgentMergeTextParsesAsTheAgentMeans(t *testing.T) {
	const k8s = "k8s_web_web-7d9f8c6b5-abcde_prod_0c2b7e1a-uid_0"
	const gunicorn = "gunicorn;appid: python: gunicorn (/app/wsgi.py);"
	tests := []struct {
		file     string
		format   Format
		hostname string
		want     []got
	}{
		{"agent-merge-v1.collapsed", FormatV1, "h1-node-v1", []got{
			v1("java;appid: java: app.jar;Main.main_[j];Work.run_[j]", 40),
			v1("java;appid: java: app.jar;Main.main_[j]", 2),
			v1("bash;[unknown];read_[k]", 3),
		}},
		// What reading v1 text by its header did: the process name became the index and the appid the container.
		{"agent-merge-v1.collapsed", FormatV2, "h1-node-v1", []got{
			{AppIndex: "java", Container: "appid: java: app.jar", Stack: "Main.main_[j];Work.run_[j]", Count: 40},
			{AppIndex: "java", Container: "appid: java: app.jar", Stack: "Main.main_[j]", Count: 2},
			{AppIndex: "bash", Container: "[unknown]", Stack: "read_[k]", Count: 3},
		}},
		{"agent-merge-v2-k8s.collapsed", FormatV2, "h1-node-a", []got{
			{AppIndex: "1", Container: k8s, Stack: gunicorn + "<module> (/app/wsgi.py:10)_[p];handle (/app/views.py:42)_[p];dumps (/usr/lib/python3.11/json/__init__.py:231)_[p]", Count: 37},
			{AppIndex: "1", Container: k8s, Stack: gunicorn + "<module> (/app/wsgi.py:10)_[p];handle (/app/views.py:42)_[p]", Count: 11},
			{AppIndex: "1", Container: k8s, Stack: gunicorn + "_start_[k];entry_SYSCALL_64_[k];do_syscall_64_[k]", Count: 5},
			{AppIndex: "2", Container: "redis-cache", Stack: "redis-server;[unknown];epoll_wait_[k]", Count: 23},
			{AppIndex: "2", Container: "redis-cache", Stack: "redis-server;main;aeMain;aeProcessEvents", Count: 9},
			{AppIndex: "0", Container: "", Stack: "node;läuft (/app/ü.js:1)_[pn];Builtins_JSONStringify_[pn]", Count: 7},
			// 0;;swapper;... is skipped.
		}},
		{"agent-merge-intel.collapsed", FormatV2, "h1-node-intel", []got{
			{AppIndex: "1", Container: "svc-java", Stack: "java;appid: java: app.jar;Main.main_[j];Loop.spin_[j]", Count: 77},
			{AppIndex: "1", Container: "svc-java", Stack: "java;appid: java: app.jar;GC_Thread_[j]", Count: 5},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file+" as "+string(tt.format), func(t *testing.T) {
			h, out, err := collectAs(t, readTestdata(t, tt.file), tt.format)
			if err != nil {
				t.Fatal(err)
			}
			if h.Hostname != tt.hostname || !h.AppMetadataEnabled {
				t.Errorf("header hostname %q, app metadata %v", h.Hostname, h.AppMetadataEnabled)
			}
			if fmt.Sprint(out) != fmt.Sprint(tt.want) {
				t.Errorf("got  %v\nwant %v", out, tt.want)
			}
			if _, err := Check([]byte(readTestdata(t, tt.file)), tt.format); err != nil {
				t.Errorf("Check: %v", err)
			}
		})
	}
}

func TestParseAsV1ReadsNoPrefixWhateverTheHeaderSays(t *testing.T) {
	for _, hdr := range []string{hdrV2, hdrV1, hdrAppMeta} {
		_, out, err := collectAs(t, hdr+"\npython;main;work 2\n", FormatV1)
		if err != nil {
			t.Fatal(err)
		}
		if want := []got{v1("python;main;work", 2)}; fmt.Sprint(out) != fmt.Sprint(want) {
			t.Errorf("header %s: got %v, want %v", hdr, out, want)
		}
	}
	// The zero Format is v2: events published before the format was recorded.
	_, a, _ := collectAs(t, hdrAppMeta+"\n1;c;comm;f 1\n", "")
	_, b, _ := collectAs(t, hdrAppMeta+"\n1;c;comm;f 1\n", FormatV2)
	if fmt.Sprint(a) != fmt.Sprint(b) || len(a) != 1 || a[0].Container != "c" {
		t.Errorf("zero format %v, v2 %v", a, b)
	}
}

func TestParseAsRefusesAnUnknownFormat(t *testing.T) {
	h, out, err := collectAs(t, hdrV2+"\nc;comm 1\n", "v3")
	if err == nil || !strings.Contains(err.Error(), `unknown profile format "v3"`) || len(out) != 0 {
		t.Errorf("err %v, lines %v", err, out)
	}
	if h.Hostname != "h" {
		t.Errorf("header not returned: %+v", h)
	}
}

func TestParseNumbersTheLines(t *testing.T) {
	var nums []int
	_, err := Parse([]byte(hdrV2+"\r\nc;comm;a 1\n\n;swapper;x 1\nc;comm;b 0\nc;comm;c 2"), func(l *Line) error {
		nums = append(nums, l.Number)
		return nil
	})
	if err != nil || fmt.Sprint(nums) != "[2 6]" {
		t.Errorf("line numbers %v (%v), want [2 6]", nums, err)
	}
}

// TestAggregateRefusesAStackTotalAboveUInt32 checks that the sum of the counts of one stack in one container
// never passes MaxCount: it is refused at the line that would pass it, and nothing wraps.
func TestAggregateRefusesAStackTotalAboveUInt32(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		line   int
		reason string
	}{
		{"two lines of the same stack past the limit", "c;comm;a 4294967295\nc;comm;a 1\n", 3,
			"the stack's total count in this profile, 4294967295 + 1, is over the limit of 4294967295"},
		{"three lines, the third passes it", "c;comm;a 2000000000\nd;comm;a 4000000000\nc;comm;a 2000000000\nc; comm ; a 294967296\n", 5,
			"the stack's total count in this profile, 4000000000 + 294967296, is over the limit of 4294967295"},
		{"the same stack after normalization", "c;comm;a 3000000000\nc;comm;;a 3000000000\n", 3,
			"the stack's total count in this profile, 3000000000 + 3000000000, is over the limit of 4294967295"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a Aggregate
			_, err := Parse([]byte(hdrV2+"\n"+tt.body), a.Add)
			var le *LineError
			if !errors.As(err, &le) || le.Line != tt.line || le.Reason != tt.reason {
				t.Fatalf("err = %v, want line %d: %s", err, tt.line, tt.reason)
			}
			for _, e := range a.Entries() {
				if e.Count > MaxCount {
					t.Errorf("entry %+v over the limit", e)
				}
			}
			if _, err := Check([]byte(hdrV2+"\n"+tt.body), FormatV2); err == nil || err.Error() != le.Error() {
				t.Errorf("Check: %v, want %v", err, le)
			}
		})
	}
}

func TestAggregateAcceptsTotalsUpToTheLimit(t *testing.T) {
	// Per stack and container the totals reach the limit exactly; the profile's sum is far above it.
	text := []byte(hdrV2 + "\nc;comm;a 4294967294\nc;comm;a 1\nd;comm;a 4294967295\nc;comm;b 4294967295\n")
	var a Aggregate
	if _, err := Parse(text, a.Add); err != nil {
		t.Fatal(err)
	}
	for _, e := range a.Entries() {
		if e.Count != MaxCount {
			t.Errorf("entry %+v, want the count %d", e, uint64(MaxCount))
		}
	}
	if a.Samples() != 3*MaxCount || a.Lines() != 4 {
		t.Errorf("samples %d, lines %d", a.Samples(), a.Lines())
	}
	if _, err := Check(text, FormatV2); err != nil {
		t.Errorf("Check: %v", err)
	}
}

func TestAggregateAddRefusesALineOverTheLimit(t *testing.T) {
	var a Aggregate
	err := a.Add(&Line{Stack: []byte("comm"), Count: MaxCount + 1, Number: 7})
	var le *LineError
	if !errors.As(err, &le) || le.Line != 7 || a.Lines() != 0 || len(a.Entries()) != 0 {
		t.Errorf("err %v, lines %d, entries %v", err, a.Lines(), a.Entries())
	}
}

func TestStorableTimeIsTheDateTimeRange(t *testing.T) {
	for _, c := range []struct {
		t  time.Time
		ok bool
	}{
		{time.Unix(0, 0), true},
		{time.Unix(-1, 0), false},
		{time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC), false},
		{time.Date(2106, 2, 7, 6, 28, 15, 999999999, time.UTC), true},
		{time.Date(2106, 2, 7, 6, 28, 16, 0, time.UTC), false},
		{time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{time.Date(2026, 12, 3, 0, 0, 0, 0, time.FixedZone("x", 5*3600)), true},
	} {
		if got := StorableTime(c.t); got != c.ok {
			t.Errorf("StorableTime(%s) = %v, want %v", c.t, got, c.ok)
		}
	}
}
