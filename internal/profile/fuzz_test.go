package profile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// fuzzHeaders are the headers FuzzParse puts before the fuzzed body; the last
// mode uses the fuzzed text as the whole profile.
var fuzzHeaders = []string{hdrV2, hdrV1, hdrAppMeta}

// refParse is a straightforward reference implementation of Parse's line
// rules on strings, for differential fuzzing.
func refParse(prefix int, body string) (lines []got, errLine int, errReason string) {
	for i, raw := range strings.Split(body, "\n") {
		lineNo := i + 2
		line := strings.TrimSpace(raw)
		if line == "" {
			continue
		}
		sp := strings.LastIndex(line, " ")
		if sp < 0 {
			return lines, lineNo, "missing sample count"
		}
		digits := line[sp+1:]
		if digits == "" || strings.Trim(digits, "0123456789") != "" {
			return lines, lineNo, "sample count is not a number"
		}
		count, err := strconv.ParseUint(digits, 10, 64)
		if err != nil || count > MaxCount {
			shown := digits
			if len(shown) > 40 {
				shown = shown[:40] + "…"
			}
			return lines, lineNo, "sample count " + shown + " is over the limit of 4294967295"
		}
		fields := strings.Split(line[:sp], ";")
		if len(fields) <= prefix {
			return lines, lineNo, "no frames"
		}
		var frames []string
		for _, f := range fields[prefix:] {
			if f = strings.TrimSpace(f); f != "" {
				frames = append(frames, f)
			}
		}
		if len(frames) == 0 {
			return lines, lineNo, "no frames"
		}
		if count == 0 || strings.HasPrefix(frames[0], "swapper") {
			continue
		}
		g := got{Stack: strings.Join(frames, ";"), Count: count, AppIndexNil: prefix < 2, ContainerNil: prefix < 1, Number: lineNo}
		if prefix == 2 {
			g.AppIndex = fields[0]
		}
		if prefix >= 1 {
			g.Container = fields[prefix-1]
		}
		lines = append(lines, g)
	}
	return lines, 0, ""
}

// refTotals returns the number of the first line at which the total of one
// (container, stack) passes MaxCount, or 0: Aggregate's rule, on plain maps.
func refTotals(lines []got) int {
	sums := map[[2]string]uint64{}
	for _, l := range lines {
		k := [2]string{l.Container, l.Stack}
		sums[k] += l.Count // at most a few thousand counts of 2^32 each: no overflow
		if sums[k] > MaxCount {
			return l.Number
		}
	}
	return 0
}

// FuzzParse checks Parse and ParseAs against refParse, and Aggregate and Check
// against refTotals. The high bit of mode selects FormatV1; the rest selects a
// header from fuzzHeaders, or none (the body is the whole profile).
func FuzzParse(f *testing.F) {
	bodies := []string{
		"",
		"\n",
		"c;comm;a 1\n",
		"c;comm;a_[p];b_[k] 3\r\nc;comm;a_[j] 0\r\n",
		"4;web;gunicorn;run_[p] 5\n;;java;Foo.bar_[j];Foo.baz_[i] 7\n",
		";swapper/0;cpu_idle_[k] 655\n",
		"c;;comm;;a;;;b; 4\n",
		"c; comm ;\ta\t; b  ;  ;c 4\n",
		"c;uvicorn;appid: uvicorn: app (/a.py);[Error (errnos) 9]_[pe] 6\n",
		"c;comm;a\n",
		"c;comm;a x\n",
		"c;comm;a 18446744073709551616\n",
		"c;comm;a 18446744073709551615\n",
		"c;comm;a 4294967295\n",
		"c;comm;a 4294967296\n",
		"c;comm;a 5000000000\n",
		"c;comm;a 4294967295\nc;comm;a 1\n",
		"c;comm;a 4294967295\nd;comm;a 4294967295\n",
		"c;comm;a 3000000000\nc; comm ;;a 3000000000\n",
		"4;c;comm;a 4294967295\n5;c;comm;a 2\n",
		"c;comm;a 99999999999x\n",
		"java;appid: java: app.jar;Main.main_[j] 40\n",
		";; 1\n",
		"comm 1\n",
		"\xa0comm\u2003;\u0085x 1\n",
		"c;comm;\xff 2\n",
		// Check's first pass counts swapper lines too, and reads no further than a frame that is plainly there.
		";swapper/0;cpu_idle_[k] 4294967295\nc;comm;a 4294967295\n",
		"c;swapper;a 4294967295\nc;comm;a 1\n",
		"c;\u00a0;\u2003 1\n",
		"\u00a0;\u2003 1\n",
		" ; \t;\u0085 1\n",
	}
	for mode := range fuzzHeaders {
		for _, b := range bodies {
			f.Add(uint8(mode), b)
			f.Add(uint8(mode)|0x80, b)
		}
	}
	real, err := readRealProfileErr()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint8(len(fuzzHeaders)), string(real))
	f.Add(uint8(len(fuzzHeaders)), "#{}\nc;comm 1\n")
	f.Add(uint8(len(fuzzHeaders)), "# {\"metadata\": {\"hostname\": \"h\"}}\r\n;comm;a 1")

	for _, name := range []string{"agent-merge-v1.collapsed", "agent-merge-v2-k8s.collapsed", "agent-merge-intel.collapsed"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(len(fuzzHeaders)), string(b))
		f.Add(uint8(len(fuzzHeaders))|0x80, string(b))
	}

	f.Fuzz(func(t *testing.T, mode uint8, body string) {
		format := FormatV2
		if mode&0x80 != 0 {
			format = FormatV1
		}
		mode &^= 0x80
		var text string
		if int(mode) < len(fuzzHeaders) {
			text = fuzzHeaders[mode] + "\n" + body
		} else {
			text = body
		}
		var out []got
		h, err := ParseAs([]byte(text), format, func(l *Line) error {
			checkLine(t, l)
			out = append(out, got{
				AppIndex: string(l.AppIndex), AppIndexNil: l.AppIndex == nil,
				Container: string(l.Container), ContainerNil: l.Container == nil,
				Stack: string(l.Stack), Count: l.Count, Number: l.Number,
			})
			return nil
		})
		if format == FormatV2 {
			var again []got
			_, err2 := Parse([]byte(text), func(l *Line) error {
				again = append(again, got{Stack: string(l.Stack), Count: l.Count})
				return nil
			})
			if fmt.Sprint(err) != fmt.Sprint(err2) || len(again) != len(out) {
				t.Fatalf("Parse and ParseAs(v2) differ: %v / %v", err2, err)
			}
		}

		first, rest, _ := strings.Cut(text, "\n")
		rh, herr := ParseHeader([]byte(first))
		if herr != nil {
			if err == nil || err.Error() != herr.Error() {
				t.Fatalf("Parse err = %v, ParseHeader err = %v", err, herr)
			}
			if len(out) != 0 {
				t.Fatal("lines delivered after a header error")
			}
			return
		}
		if h.Hostname != rh.Hostname || h.PrefixFields() != rh.PrefixFields() {
			t.Fatalf("header %+v, want %+v", h, rh)
		}
		prefix := rh.PrefixFields()
		if format == FormatV1 {
			prefix = 0
		}
		want, wantLine, wantReason := refParse(prefix, rest)
		if fmt.Sprint(out) != fmt.Sprint(want) {
			t.Fatalf("lines\n got %v\nwant %v", out, want)
		}
		for i := range out {
			if out[i].Number != want[i].Number {
				t.Fatalf("line %d numbered %d, want %d", i, out[i].Number, want[i].Number)
			}
		}
		var le *LineError
		switch {
		case wantReason == "" && err != nil:
			t.Fatalf("unexpected error %v", err)
		case wantReason != "" && !errors.As(err, &le):
			t.Fatalf("err = %v, want line %d: %s", err, wantLine, wantReason)
		case wantReason != "" && (le.Line != wantLine || le.Reason != wantReason):
			t.Fatalf("err = %v, want line %d: %s", err, wantLine, wantReason)
		}

		// Aggregate and Check: no total above MaxCount is ever kept, and the
		// refusal names the line where a total passes it.
		var a Aggregate
		_, aerr := ParseAs([]byte(text), format, a.Add)
		_, cerr := Check([]byte(text), format)
		for _, e := range a.Entries() {
			if e.Count > MaxCount || e.Count == 0 {
				t.Fatalf("entry %+v", e)
			}
		}
		switch over := refTotals(out); {
		case err != nil && over != 0:
			// A total passes the limit before the malformed line: the aggregate stops there, Check (which
			// parses the whole profile first) at the malformed line. Both refuse the profile.
			if !errors.As(aerr, &le) || le.Line != over || fmt.Sprint(cerr) != fmt.Sprint(err) {
				t.Fatalf("Aggregate err %v, Check err %v, want a line error at line %d and the parse error %v", aerr, cerr, over, err)
			}
		case err != nil:
			if fmt.Sprint(aerr) != fmt.Sprint(err) || fmt.Sprint(cerr) != fmt.Sprint(err) {
				t.Fatalf("Aggregate err %v, Check err %v, want the parse error %v", aerr, cerr, err)
			}
		case over == 0:
			if aerr != nil || cerr != nil {
				t.Fatalf("Aggregate err %v, Check err %v, want none", aerr, cerr)
			}
		default:
			if !errors.As(aerr, &le) || le.Line != over || fmt.Sprint(cerr) != fmt.Sprint(aerr) {
				t.Fatalf("Aggregate err %v, Check err %v, want a line error at line %d", aerr, cerr, over)
			}
		}
	})
}

// checkLine checks the invariants of a Line delivered by Parse.
func checkLine(t *testing.T, l *Line) {
	t.Helper()
	if l.Count == 0 {
		t.Fatal("zero count delivered")
	}
	if len(l.Stack) == 0 {
		t.Fatal("empty stack delivered")
	}
	if bytes.HasPrefix(l.Stack, []byte("swapper")) {
		t.Fatalf("swapper stack delivered: %q", l.Stack)
	}
	for _, fr := range bytes.Split(l.Stack, []byte(";")) {
		if len(fr) == 0 || len(bytes.TrimSpace(fr)) != len(fr) {
			t.Fatalf("frame %q of stack %q is not normalized", fr, l.Stack)
		}
	}
}

func readRealProfileErr() ([]byte, error) {
	return os.ReadFile(realProfilePath)
}

func FuzzParseHeader(f *testing.F) {
	real, err := readRealProfileErr()
	if err != nil {
		f.Fatal(err)
	}
	first, _, _ := bytes.Cut(real, []byte{'\n'})
	for _, s := range []string{
		string(first),
		hdrV2, hdrV1, hdrAppMeta,
		"", "#", "#{}", "#null", "#[]", `#{"metadata": null}`, `#{"metadata": []}`,
		`#{"metadata": {"hostname": 1}}`,
		`#{"metadata": {"hostname": "h", "cloud_info": {"instance_type": "t"}, "run_arguments": {"service_name": "s", "profile_api_version": "v1"}}, "metrics": {"cpu_avg": 1e308, "mem_avg": -0}}`,
		`#{"Metadata": {"HostName": "h"}}`,
		" # {\"metadata\": {\"hostname\": \"h\"}} \r",
		`#{"metadata": {"hostname": "h"}, "metadata": {"hostname": "g"}}`,
		`#{"metadata": {"hostname": "\u00e9\ud800"}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		h, err := ParseHeader([]byte(line))
		if err != nil {
			if !errors.Is(err, ErrBadMetadata) && !errors.Is(err, ErrMetadataMissing) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			return
		}
		if !json.Valid(h.Raw) {
			t.Fatalf("Raw is not valid JSON: %q", h.Raw)
		}
		if h.RunArguments != nil && !json.Valid(h.RunArguments) {
			t.Fatalf("RunArguments is not valid JSON: %q", h.RunArguments)
		}
		if p := h.PrefixFields(); p < 0 || p > 2 {
			t.Fatalf("PrefixFields() = %d", p)
		}
		again, err := ParseHeader(append([]byte("#"), h.Raw...))
		if err != nil {
			t.Fatalf("Raw does not parse again: %v", err)
		}
		if mustJSON(t, again) != mustJSON(t, h) {
			t.Fatalf("Raw parses to a different header:\n%+v\n%+v", again, h)
		}
	})
}

func FuzzContainerInfo(f *testing.F) {
	for _, s := range []string{
		"", "k8s_", "ecs-", "ecs-agent", "k8s_____",
		"k8s_api_api-7f9c8d6b5-x2x9k_default_0b1c2d3e-1111_0",
		"k8s_kube-proxy_kube-proxy-ip-10-0-1-23.ec2.internal_kube-system_uid_1",
		"k8s_flink-main_flink-taskmanager-1-2_analytics_uid_0",
		"k8s_c_decade-0_ns_uid_0", "k8s_w_123-456_ns_uid_0", "k8s_c_-a_ns_u_0",
		"ecs-my-task-12-web-server-e0a1b2c3d4e5f6a7b8c9", "ecs-3-web-x-c0ffee",
		"gprofiler-ps-webapp", "project_web_1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		c, k := ContainerInfo(raw)
		if c2, k2 := ContainerInfo(raw); c2 != c || k2 != k {
			t.Fatal("not deterministic")
		}
		switch {
		case strings.HasPrefix(raw, "k8s_"):
			parts := strings.Split(raw, "_")
			if len(parts) != 6 {
				if c != raw || k != "" {
					t.Fatalf("malformed k8s name %q gave (%q, %q)", raw, c, k)
				}
				return
			}
			pod, ns := parts[2], parts[3]
			stripped, ok := strings.CutSuffix(k, "_"+ns)
			if !ok || c != parts[1]+"_"+stripped {
				t.Fatalf("ContainerInfo(%q) = (%q, %q)", raw, c, k)
			}
			if !strings.Contains(pod, stripped) {
				t.Fatalf("stripped pod %q is not part of %q", stripped, pod)
			}
		case strings.HasPrefix(raw, "ecs-"):
			if k == "" {
				if c != raw {
					t.Fatalf("unmatched ecs name %q gave container %q", raw, c)
				}
				return
			}
			if !strings.HasSuffix(c, "_"+k) || !strings.HasPrefix(raw, "ecs-"+k+"-") {
				t.Fatalf("ContainerInfo(%q) = (%q, %q)", raw, c, k)
			}
		default:
			if c != raw || k != "" {
				t.Fatalf("plain name %q gave (%q, %q)", raw, c, k)
			}
		}
	})
}
