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
		count, err := strconv.ParseUint(line[sp+1:], 10, 64)
		if errors.Is(err, strconv.ErrRange) {
			return lines, lineNo, "sample count is out of range"
		}
		if err != nil {
			return lines, lineNo, "sample count is not a number"
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
		g := got{Stack: strings.Join(frames, ";"), Count: count, AppIndexNil: prefix < 2, ContainerNil: prefix < 1}
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
		";; 1\n",
		"comm 1\n",
		"\xa0comm\u2003;\u0085x 1\n",
		"c;comm;\xff 2\n",
	}
	for mode := range fuzzHeaders {
		for _, b := range bodies {
			f.Add(uint8(mode), b)
		}
	}
	real, err := readRealProfileErr()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint8(len(fuzzHeaders)), string(real))
	f.Add(uint8(len(fuzzHeaders)), "#{}\nc;comm 1\n")
	f.Add(uint8(len(fuzzHeaders)), "# {\"metadata\": {\"hostname\": \"h\"}}\r\n;comm;a 1")

	f.Fuzz(func(t *testing.T, mode uint8, body string) {
		var text string
		if int(mode) < len(fuzzHeaders) {
			text = fuzzHeaders[mode] + "\n" + body
		} else {
			text = body
		}
		var out []got
		h, err := Parse([]byte(text), func(l *Line) error {
			checkLine(t, l)
			out = append(out, got{
				AppIndex: string(l.AppIndex), AppIndexNil: l.AppIndex == nil,
				Container: string(l.Container), ContainerNil: l.Container == nil,
				Stack: string(l.Stack), Count: l.Count,
			})
			return nil
		})

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
		want, wantLine, wantReason := refParse(rh.PrefixFields(), rest)
		if fmt.Sprint(out) != fmt.Sprint(want) {
			t.Fatalf("lines\n got %v\nwant %v", out, want)
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
