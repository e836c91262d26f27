package chdb_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/flamestream/flamestream/internal/chdb"
	"github.com/flamestream/flamestream/internal/testenv"
)

// parseLiteral reads one ClickHouse string literal at the start of sql the way the server's lexer does
// (quote, backslash escapes, doubled quotes) and returns its value and the rest of sql.
func parseLiteral(sql string) (val, rest string, err error) {
	if !strings.HasPrefix(sql, "'") {
		return "", sql, errors.New("no opening quote")
	}
	var b strings.Builder
	for i := 1; i < len(sql); i++ {
		c := sql[i]
		switch c {
		case '\'':
			if i+1 < len(sql) && sql[i+1] == '\'' {
				b.WriteByte('\'')
				i++
				continue
			}
			return b.String(), sql[i+1:], nil
		case '\\':
			i++
			if i >= len(sql) {
				return "", "", errors.New("dangling backslash")
			}
			switch e := sql[i]; e {
			case 'x':
				if i+2 >= len(sql) {
					return "", "", errors.New("short \\x escape")
				}
				var v byte
				for _, h := range []byte(sql[i+1 : i+3]) {
					v <<= 4
					switch {
					case h >= '0' && h <= '9':
						v |= h - '0'
					case h >= 'a' && h <= 'f':
						v |= h - 'a' + 10
					case h >= 'A' && h <= 'F':
						v |= h - 'A' + 10
					default:
						return "", "", errors.New("bad hex digit")
					}
				}
				b.WriteByte(v)
				i += 2
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case '0':
				b.WriteByte(0)
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'a':
				b.WriteByte('\a')
			case 'v':
				b.WriteByte('\v')
			default:
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", "", errors.New("unterminated literal")
}

var literalSeeds = []string{"", "plain", "it's", `back\slash`, `\'`, `'\`, "'; DROP TABLE samples; --", `\\'`,
	"new\nline", "nul\x00byte", "tab\t", "\x7f\x1b[0m", "ünïcødé ✓", "\xff\xfe invalid utf-8", "''", "a'b''c'''",
	`\x41`, "?", "{db}", "`backtick`", `"double"`}

func FuzzString(f *testing.F) {
	for _, s := range literalSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lit := chdb.String(s)
		got, rest, err := parseLiteral(lit)
		if err != nil {
			t.Fatalf("String(%q) = %s: %v", s, lit, err)
		}
		if rest != "" {
			t.Fatalf("String(%q) = %s ends early, leaving %q", s, lit, rest)
		}
		if got != s {
			t.Fatalf("String(%q) = %s reads back as %q", s, lit, got)
		}
		for i := 0; i < len(lit); i++ {
			if c := lit[i]; c < 0x20 || c == 0x7f {
				t.Fatalf("String(%q) = %q carries raw control byte %#x", s, lit, c)
			}
		}
		// A list is exactly its literals, comma-separated.
		list := chdb.Strings([]string{s, s})
		a, rest, err := parseLiteral(strings.TrimPrefix(list, "("))
		if err != nil || a != s || !strings.HasPrefix(rest, ", ") {
			t.Fatalf("Strings: %q", list)
		}
		if b, rest, err := parseLiteral(rest[2:]); err != nil || b != s || rest != ")" {
			t.Fatalf("Strings: %q", list)
		}
	})
}

func TestCheckIdentAcceptsOnlyPlainNames(t *testing.T) {
	for _, tc := range []struct {
		s  string
		ok bool
	}{
		{"flamestream", true}, {"fs_bench_2", true}, {"_x", true}, {"", false}, {"1db", false},
		{"db.table", false}, {"db;", false}, {"a b", false}, {"ünï", false}, {strings.Repeat("a", 65), false},
	} {
		if err := chdb.CheckIdent(tc.s); (err == nil) != tc.ok {
			t.Errorf("CheckIdent(%q) = %v, want ok=%v", tc.s, err, tc.ok)
		}
	}
}

func TestStringLiteralsRoundTripThroughClickHouse(t *testing.T) {
	cfg := testenv.Servers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := chdb.Open(ctx, chdb.Options{Addr: cfg.ClickHouseAddr, User: cfg.ClickHouseUser, Password: cfg.ClickHousePassword, Database: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	every := make([]byte, 256)
	for i := range every {
		every[i] = byte(i)
	}
	values := append(append([]string{}, literalSeeds...), string(every))
	for _, v := range values {
		var got proto.ColStr
		var n proto.ColUInt64
		err := db.Do(ctx, ch.Query{
			Body:   "SELECT " + chdb.String(v) + " AS s, toUInt64(length(" + chdb.String(v) + ")) AS n",
			Result: proto.Results{{Name: "s", Data: &got}, {Name: "n", Data: &n}},
		})
		if err != nil {
			t.Errorf("SELECT String(%q): %v", v, err)
			continue
		}
		if got.Rows() != 1 || got.Row(0) != v || n[0] != uint64(len(v)) {
			t.Errorf("String(%q) came back as %q (%v bytes)", v, got.Row(0), n)
		}
	}
}
