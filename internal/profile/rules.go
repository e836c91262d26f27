package profile

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Rules are operator-configured frame rewrite rules: each is a regular expression (Go RE2 syntax) and a
// replacement (Go's Regexp.ReplaceAllString: $1 or ${name} refer to groups, $$ is a dollar sign, a $ not
// followed by a name stays as it is). They fold frames that differ only by generated numbers, such as the
// JVM's lambda and accessor classes, so that their stacks add up instead of splitting the graph into
// thousands of one-sample slivers.
//
// Each frame of a stack is rewritten by the first rule whose expression matches it, every match of it
// replaced; the other rules are not tried on that frame. Rules apply when a profile is indexed, so they
// shape what ClickHouse stores; the raw upload keeps the original frames, and a reindex applies the rules
// of the day.
//
// The file format is the original gProfiler studio's replace.yaml: a list under `rules`, each entry with
// `regexp`, `replace` and optional `tests` of `input` and `output`. Every test must pass when the file is
// loaded, or the file is refused.
type Rules struct {
	rules []rule
}

type rule struct {
	re      *regexp.Regexp
	replace string
}

// rulesFile is the YAML layout. The `rule:` and `test:` keys of the original's file mark list entries and
// carry no value.
type rulesFile struct {
	Rules []struct {
		Regexp  *string `yaml:"regexp"`
		Replace *string `yaml:"replace"`
		Tests   []struct {
			Input  *string `yaml:"input"`
			Output *string `yaml:"output"`
		} `yaml:"tests"`
	} `yaml:"rules"`
}

// maxRules bounds a rules file: every frame of every indexed stack may try each rule.
const maxRules = 1000

// LoadRules reads a rules file; see Rules.
func LoadRules(path string) (*Rules, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("frame rules: %w", err)
	}
	r, err := ParseRules(data)
	if err != nil {
		return nil, fmt.Errorf("frame rules %s: %w", path, err)
	}
	return r, nil
}

// ParseRules reads rules in the format of a rules file. An error names the rule (1-based) and what is
// wrong with it.
func ParseRules(data []byte) (*Rules, error) {
	var f rulesFile
	if err := yaml.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	if len(f.Rules) > maxRules {
		return nil, fmt.Errorf("%d rules, at most %d", len(f.Rules), maxRules)
	}
	out := &Rules{}
	for i, fr := range f.Rules {
		if fr.Regexp == nil || *fr.Regexp == "" {
			return nil, fmt.Errorf("rule %d: no regexp", i+1)
		}
		if fr.Replace == nil {
			return nil, fmt.Errorf("rule %d (%s): no replace", i+1, *fr.Regexp)
		}
		re, err := regexp.Compile(*fr.Regexp)
		if err != nil {
			return nil, fmt.Errorf("rule %d: %w", i+1, err)
		}
		if strings.Contains(*fr.Replace, ";") {
			return nil, fmt.Errorf("rule %d (%s): the replacement holds ';', which separates frames", i+1, *fr.Regexp)
		}
		r := rule{re: re, replace: *fr.Replace}
		for j, t := range fr.Tests {
			if t.Input == nil || t.Output == nil {
				return nil, fmt.Errorf("rule %d (%s), test %d: input and output are both required", i+1, *fr.Regexp, j+1)
			}
			if got := re.ReplaceAllString(*t.Input, r.replace); got != *t.Output {
				return nil, fmt.Errorf("rule %d (%s), test %d: %q gives %q, want %q", i+1, *fr.Regexp, j+1, *t.Input, got, *t.Output)
			}
		}
		out.rules = append(out.rules, r)
	}
	if len(out.rules) == 0 {
		return nil, errors.New("no rules")
	}
	return out, nil
}

// Len is the number of rules.
func (r *Rules) Len() int { return len(r.rules) }

// Frame rewrites one frame: the first matching rule's replacement, or the frame unchanged.
func (r *Rules) Frame(frame string) string {
	for _, ru := range r.rules {
		if ru.re.MatchString(frame) {
			return ru.re.ReplaceAllString(frame, ru.replace)
		}
	}
	return frame
}

// maxRewriterCache bounds a Rewriter's memory of rewritten frames; past it, it starts over.
const maxRewriterCache = 1 << 17

// Rewriter applies Rules to stacks, remembering each frame's rewrite (a fleet repeats the same frames in
// every profile). It is not safe for concurrent use: give each goroutine its own.
type Rewriter struct {
	rules *Rules
	cache map[string]string
	buf   []byte
}

// NewRewriter returns a Rewriter of r.
func (r *Rules) NewRewriter() *Rewriter {
	return &Rewriter{rules: r, cache: map[string]string{}}
}

// Stack rewrites a normalized stack "comm;frame;...;leaf" frame by frame. A frame rewritten to nothing
// (after trimming white space) is dropped, as parsing drops empty frames; a stack rewritten to nothing
// at all stays as it was. The result may share memory with the Rewriter until the next call.
func (w *Rewriter) Stack(stack []byte) []byte {
	changed := false
	w.buf = w.buf[:0]
	rest := stack
	for len(rest) > 0 {
		var frame []byte
		if i := bytes.IndexByte(rest, ';'); i >= 0 {
			frame, rest = rest[:i], rest[i+1:]
		} else {
			frame, rest = rest, nil
		}
		out, ok := w.cache[string(frame)]
		if !ok {
			out = strings.TrimSpace(w.rules.Frame(string(frame)))
			if len(w.cache) >= maxRewriterCache {
				clear(w.cache)
			}
			w.cache[string(frame)] = out
		}
		if out != string(frame) {
			changed = true
		}
		if out == "" {
			continue
		}
		if len(w.buf) > 0 {
			w.buf = append(w.buf, ';')
		}
		w.buf = append(w.buf, out...)
	}
	if !changed || len(w.buf) == 0 {
		return stack
	}
	return w.buf
}
