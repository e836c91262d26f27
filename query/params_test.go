package query

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

// literals splits sql into its string literals (decoded as ClickHouse's lexer reads them) and its
// skeleton, in which every literal is replaced by '?'.
func literals(sql string) (lits []string, skeleton string, err error) {
	var sk strings.Builder
	for i := 0; i < len(sql); i++ {
		if sql[i] != '\'' {
			sk.WriteByte(sql[i])
			continue
		}
		var v strings.Builder
		closed := false
		for i++; i < len(sql) && !closed; i++ {
			switch c := sql[i]; c {
			case '\\':
				i++
				if i >= len(sql) {
					return nil, "", errors.New("dangling backslash")
				}
				if sql[i] == 'x' && i+2 < len(sql) {
					var b byte
					for _, h := range []byte(sql[i+1 : i+3]) {
						b <<= 4
						if h <= '9' {
							b |= h - '0'
						} else {
							b |= h - 'A' + 10
						}
					}
					v.WriteByte(b)
					i += 2
				} else {
					v.WriteByte(sql[i])
				}
			case '\'':
				if i+1 < len(sql) && sql[i+1] == '\'' {
					v.WriteByte('\'')
					i++
				} else {
					closed = true
					i--
				}
			default:
				v.WriteByte(c)
			}
		}
		if !closed {
			return nil, "", errors.New("unterminated literal")
		}
		lits = append(lits, v.String())
		sk.WriteString("?")
	}
	return lits, sk.String(), nil
}

func FuzzSelectionWhere(f *testing.F) {
	for _, s := range [][3]string{
		{"svc", "web-1", "c1"},
		{"it's", `\`, `\'`},
		{"'; DROP TABLE samples; --", "' OR 1=1 OR host='", "\x00\n\x7f"},
		{"a''b", `\x27`, "ünï\xff"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	from, to := time.Unix(1_700_000_000, 0), time.Unix(1_700_003_600, 0)
	shape := func(svc, a, b string) Selection {
		return Selection{Service: svc, From: from, To: to,
			Include: map[string][]string{"host": {a, b}, "k8s_object": {b}},
			Exclude: map[string][]string{"container": {a}}}
	}
	_, want, err := literals(shape("x", "y", "z").Clauses("ts", from, to))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, svc, a, b string) {
		sql := shape(svc, a, b).Clauses("ts", from, to)
		lits, skeleton, err := literals(sql)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		// The values come back exactly, in order, and nothing else in the statement changed.
		if !reflect.DeepEqual(lits, []string{svc, a, b, a, b}) {
			t.Fatalf("literals of %s = %q", sql, lits)
		}
		if skeleton != want {
			t.Fatalf("skeleton changed:\n got %s\nwant %s", skeleton, want)
		}
	})
}

func TestParseSelectionReadsFiltersOnlyFromTheAllowList(t *testing.T) {
	now := time.Unix(1_700_000_000, 0).UTC()
	for _, tc := range []struct {
		name    string
		q       string
		prefix  string
		wantErr bool
		include map[string][]string
		exclude map[string][]string
	}{
		{"filters", "service=s&host=a&host=b&container_not=c", "", false,
			map[string][]string{"host": {"a", "b"}}, map[string][]string{"container": {"c"}}},
		{"unknown keys are ignored, never columns", "service=s&ts=1&count=2&host%3B=x", "", false,
			map[string][]string{}, map[string][]string{}},
		{"baseline side", "service=s&base_host=a&host=b", "base_", false,
			map[string][]string{"host": {"a"}}, map[string][]string{}},
		{"missing service", "host=a", "", true, nil, nil},
		{"bad time", "service=s&from=yesterday", "", true, nil, nil},
		{"from after to", "service=s&from=200&to=100", "", true, nil, nil},
		{"range over the limit", "service=s&from=0&to=1700000000", "", true, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := url.ParseQuery(tc.q)
			sel, err := parseSelection(q, tc.prefix, now)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err == nil && (!reflect.DeepEqual(sel.Include, tc.include) || !reflect.DeepEqual(sel.Exclude, tc.exclude)) {
				t.Fatalf("include %v exclude %v", sel.Include, sel.Exclude)
			}
		})
	}
}
