package query

import (
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/flamestream/flamestream/internal/profile"
)

var profileRuntime = profile.Runtime

// TestStackShapeDropsRuntimeFramesAndProcesses checks the shape of single stacks: frames of the runtimes
// turned off go (never the process frame), stacks of processes left out go whole.
func TestStackShapeDropsRuntimeFramesAndProcesses(t *testing.T) {
	for _, tc := range []struct {
		query, stack, want string // want "" when the stack is dropped
	}{
		{"", "python3;main_[p];read_[k]", "python3;main_[p];read_[k]"},
		{"runtimes_off=kernel", "python3;main_[p];read_[k];vfs_[k]", "python3;main_[p]"},
		{"runtimes_off=kernel", "swapper_[k];idle_[k]", "swapper_[k]"}, // the process frame stays whatever its suffix
		{"runtimes_off=native", "java;start_thread;Main.run_[j];memcpy", "java;Main.run_[j]"},
		{"runtimes_off=java,python_ext", "java;Main.run_[j];inl_[i];np_[pn];ext_[pe];c", "java;c"},
		{"runtimes_off=java&runtimes_off=s", "java;a_[s];b_[j];c_[k]", "java;c_[k]"},
		{"runtimes_off=kernel", "p;not_a_suffix[k];x_[K]", "p;not_a_suffix[k];x_[K]"},
		{"process=java", "python3;main_[p]", ""},
		{"process=java&process=python3", "python3;main_[p]", "python3;main_[p]"},
		{"process_not=python3", "python3;main_[p]", ""},
		{"process=python3&process_not=python3", "python3;main_[p]", ""},
	} {
		q, _ := url.ParseQuery(tc.query)
		sh, err := parseStackShape(q)
		if err != nil {
			t.Fatalf("%s: %v", tc.query, err)
		}
		got, ok := sh.apply(strings.Split(tc.stack, ";"), nil)
		if !ok && tc.want != "" || ok && strings.Join(got, ";") != tc.want {
			t.Errorf("%s on %s: %v %v, want %q", tc.query, tc.stack, got, ok, tc.want)
		}
		if (tc.query == "") == sh.active() {
			t.Errorf("%s: active %v", tc.query, sh.active())
		}
	}
}

func TestStackShapeRefusesBadParameters(t *testing.T) {
	for _, bad := range []string{"runtimes_off=a-b", "runtimes_off=" + strings.Repeat("x", 17), "process=", "process_not=",
		"process=" + strings.Repeat("&process=a", maxProcesses)} {
		q, _ := url.ParseQuery(bad)
		if _, err := parseStackShape(q); err == nil {
			t.Errorf("%.60s: accepted", bad)
		}
	}
	q, _ := url.ParseQuery("runtimes_off=kernel,,java&runtimes_off=kernel")
	sh, err := parseStackShape(q)
	if err != nil || !slices.Equal(sh.runtimesOff, []string{"java", "kernel"}) {
		t.Errorf("runtimes_off repeated: %v %v", sh.runtimesOff, err)
	}
}

// FuzzStackShape: any query either is refused or gives a shape whose apply keeps the process frame and a
// subsequence of the other frames, and drops no frame of a runtime left on.
func FuzzStackShape(f *testing.F) {
	f.Add("runtimes_off=kernel,java&process_not=nginx", "java;a_[j];b_[k];c")
	f.Add("runtimes_off=native&process=python3", "python3;main_[p];memcpy")
	f.Add("runtimes_off=s", "x;y_[s];z_[s]x")
	f.Fuzz(func(t *testing.T, query, stack string) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		sh, err := parseStackShape(q)
		if err != nil {
			return
		}
		frames := strings.Split(stack, ";")
		got, ok := sh.apply(frames, nil)
		if !ok {
			return
		}
		if len(got) == 0 || got[0] != frames[0] {
			t.Fatalf("process frame lost: %q → %q", frames, got)
		}
		k := 1
		for _, f := range frames[1:] {
			if k < len(got) && got[k] == f {
				k++
				continue
			}
			if !sh.dropSuffix[profileRuntime(f)] {
				t.Fatalf("frame %q dropped though its runtime is on: %q → %q", f, frames, got)
			}
		}
		if k != len(got) {
			t.Fatalf("not a subsequence: %q → %q", frames, got)
		}
	})
}
