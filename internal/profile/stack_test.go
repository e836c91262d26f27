package profile

import (
	"fmt"
	"testing"

	"github.com/cespare/xxhash/v2"
)

func TestStackHashIsXXH64OfTheStackBytes(t *testing.T) {
	// Reference values of XXH64 with seed 0.
	if got := StackHash(nil); got != 0xef46db3751d8e999 {
		t.Errorf("StackHash(empty) = %#x", got)
	}
	if got := StackHash([]byte("abc")); got != 0x44bc2cf5ad770999 {
		t.Errorf("StackHash(abc) = %#x", got)
	}
	s := "python;main_[p];work_[p];do_syscall_64_[k]"
	if StackHash([]byte(s)) != xxhash.Sum64String(s) {
		t.Error("StackHash differs from xxhash.Sum64String")
	}
	if StackHash([]byte("a;b")) == StackHash([]byte("a;c")) {
		t.Error("different stacks hash the same")
	}
}

func TestSplitStack(t *testing.T) {
	tests := []struct {
		stack string
		want  []string
	}{
		{"", nil},
		{"comm", []string{"comm"}},
		{"comm;a_[p];b_[k]", []string{"comm", "a_[p]", "b_[k]"}},
		{"appid: x (/a.py);f (/b.py:1 [pkg==1.0])_[p]", []string{"appid: x (/a.py)", "f (/b.py:1 [pkg==1.0])_[p]"}},
	}
	for _, tt := range tests {
		if got := SplitStack(tt.stack); fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.want) {
			t.Errorf("SplitStack(%q) = %q, want %q", tt.stack, got, tt.want)
		}
	}
}

func TestRuntime(t *testing.T) {
	tests := []struct {
		frame, want string
	}{
		{"do_syscall_64_[k]", "k"},
		{"click.core.Command.main (/usr/lib/click/core.py:1078 [click==8.1.7])_[p]", "p"},
		{"[Error (errnos) 9]_[pe]", "pe"},
		{"PyEval_EvalFrameDefault_[pn]", "pn"},
		{"java.lang.Thread.run_[j]", "j"},
		{"Interpreter_[i]", "i"},
		{"block in <main>_[rb]", "rb"},
		{"php_execute_script_[php]", "php"},
		{"System.Threading.Thread.Sleep_[net]", "net"},
		{"some_[s]", "s"},
		{"future_[wasm32]", "wasm32"},
		{"_[k]", "k"},
		{"x_[ABCDEFGHIJKLMNOP]", "ABCDEFGHIJKLMNOP"}, // 16 characters
		{"x_[ABCDEFGHIJKLMNOPQ]", ""},                // 17 characters
		{"", ""},
		{"main", ""},
		{"[unknown]", ""},
		{"(/usr/bin/clickhouse)", ""},
		{"f (/a.py:1 [click==8.1.7])", ""},
		{"x_[]", ""},
		{"x[k]", ""},
		{"x_[k] ", ""},
		{"x_[k]y", ""},
		{"x_[a-b]", ""},
		{"x_[a_[k]]", ""},
		{"[k]", ""},
		{"_[", ""},
		{"]", ""},
	}
	for _, tt := range tests {
		if got := Runtime(tt.frame); got != tt.want {
			t.Errorf("Runtime(%q) = %q, want %q", tt.frame, got, tt.want)
		}
	}
}

func TestRuntimeOfTheRealProfileFrames(t *testing.T) {
	seen := map[string]int{}
	if _, err := Parse(readRealProfile(t), func(l *Line) error {
		for _, f := range SplitStack(string(l.Stack)) {
			seen[Runtime(f)]++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"", "k", "p", "pe", "pn"} {
		if seen[r] == 0 {
			t.Errorf("no %q frames seen: %v", r, seen)
		}
	}
	if len(seen) != 5 {
		t.Errorf("unexpected runtimes: %v", seen)
	}
}
