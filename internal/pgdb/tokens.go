package pgdb

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Token kinds: agent tokens upload profiles; read tokens call the query API.
const (
	KindAgent = "agent"
	KindRead  = "read"
)

// ErrTokenInvalid is returned for a token that is unknown or revoked.
var ErrTokenInvalid = errors.New("invalid API key")

// Token is an API token's record; the secret itself is never stored, only its SHA-256.
type Token struct {
	ID        int64      `json:"id"`
	Name      string     `json:"name"`
	Kind      string     `json:"kind"`
	Service   string     `json:"service"` // empty: valid for every service
	Prefix    string     `json:"prefix"`
	CreatedAt time.Time  `json:"created_at"`
	LastUsed  *time.Time `json:"last_used_at,omitempty"`
	Revoked   bool       `json:"revoked"`
}

// AllowsService reports whether the token may act for service.
func (t Token) AllowsService(service string) bool {
	return t.Service == "" || t.Service == service
}

func hashToken(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// CreateToken makes a new token and returns its record and the secret, which is shown once.
func (d *DB) CreateToken(ctx context.Context, name, kind, service string) (Token, string, error) {
	if kind != KindAgent && kind != KindRead {
		return Token{}, "", fmt.Errorf("token kind %q: want %q or %q", kind, KindAgent, KindRead)
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return Token{}, "", err
	}
	secret := "fs_" + base64.RawURLEncoding.EncodeToString(raw)
	t := Token{Name: name, Kind: kind, Service: service, Prefix: secret[:9]}
	err := d.pool.QueryRow(ctx, `INSERT INTO api_tokens (name, kind, service, hash, prefix)
		VALUES ($1, $2, NULLIF($3, ''), $4, $5) RETURNING id, created_at`,
		name, kind, service, hashToken(secret), t.Prefix).Scan(&t.ID, &t.CreatedAt)
	if err != nil {
		return Token{}, "", fmt.Errorf("create token: %w", err)
	}
	return t, secret, nil
}

// CheckToken finds the live token whose secret is given. The lookup is by hash; the hash is then compared
// in constant time so that no timing tells how much of a guess was right.
func (d *DB) CheckToken(ctx context.Context, secret string) (Token, error) {
	if secret == "" {
		return Token{}, ErrTokenInvalid
	}
	want := hashToken(secret)
	var t Token
	var got []byte
	var service *string
	err := d.pool.QueryRow(ctx, `SELECT id, name, kind, service, hash, prefix, created_at
		FROM api_tokens WHERE hash = $1 AND revoked_at IS NULL`, want).
		Scan(&t.ID, &t.Name, &t.Kind, &service, &got, &t.Prefix, &t.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Token{}, ErrTokenInvalid
	}
	if err != nil {
		return Token{}, fmt.Errorf("check token: %w", err)
	}
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return Token{}, ErrTokenInvalid
	}
	if service != nil {
		t.Service = *service
	}
	return t, nil
}

// TouchToken records that a token was used (at most once a minute, to spare writes).
func (d *DB) TouchToken(ctx context.Context, id int64) error {
	_, err := d.pool.Exec(ctx, `UPDATE api_tokens SET last_used_at = now()
		WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')`, id)
	return err
}

// ListTokens returns every token, newest first.
func (d *DB) ListTokens(ctx context.Context) ([]Token, error) {
	rows, err := d.pool.Query(ctx, `SELECT id, name, kind, coalesce(service, ''), prefix, created_at,
		last_used_at, revoked_at IS NOT NULL FROM api_tokens ORDER BY id DESC`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Token, error) {
		var t Token
		err := r.Scan(&t.ID, &t.Name, &t.Kind, &t.Service, &t.Prefix, &t.CreatedAt, &t.LastUsed, &t.Revoked)
		return t, err
	})
}

// RevokeToken revokes a token; it reports false when no live token has that id.
func (d *DB) RevokeToken(ctx context.Context, id int64) (bool, error) {
	tag, err := d.pool.Exec(ctx, `UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL`, id)
	if err != nil {
		return false, fmt.Errorf("revoke token %d: %w", id, err)
	}
	return tag.RowsAffected() == 1, nil
}
