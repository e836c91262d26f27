package chdb

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrBadIdent is returned for an identifier that is not a plain SQL name.
var ErrBadIdent = errors.New("identifier must match [A-Za-z_][A-Za-z0-9_]* and be at most 64 bytes")

// CheckIdent accepts only plain identifiers, so that a database or table name from configuration can never
// change the shape of a statement.
func CheckIdent(s string) error {
	if s == "" || len(s) > 64 {
		return ErrBadIdent
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return fmt.Errorf("%q: %w", s, ErrBadIdent)
		}
	}
	return nil
}

// String formats s as a ClickHouse string literal. It is the only way user-supplied text enters SQL:
// backslashes and quotes are escaped and control bytes are written as \xNN, so no input can end the literal.
func String(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\'':
			b.WriteString(`\'`)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\x%02X`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// Strings formats a list of strings as a tuple of literals for IN: ('a', 'b').
func Strings(ss []string) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = String(s)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// Time formats t as a DateTime literal in UTC.
func Time(t time.Time) string {
	return "toDateTime(" + strconv.FormatInt(t.Unix(), 10) + ")"
}

// Uint formats an unsigned integer literal.
func Uint(n uint64) string { return strconv.FormatUint(n, 10) }
