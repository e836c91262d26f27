package pgdb

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"
)

// ErrBadLogin is returned for an unknown user or a wrong password (one error for both, on purpose).
var ErrBadLogin = errors.New("wrong username or password")

// ErrNoSession is returned for a missing or expired session.
var ErrNoSession = errors.New("no session")

// SessionTTL is how long a UI session lasts.
const SessionTTL = 7 * 24 * time.Hour

// Session is a logged-in UI user.
type Session struct {
	Username string
	CSRF     string
}

// SetUser creates a UI user or changes its password.
func (d *DB) SetUser(ctx context.Context, username, password string) error {
	if username == "" || len(password) < 4 {
		return errors.New("username required and password of at least 4 characters")
	}
	if err := ValidName(username); err != nil {
		return fmt.Errorf("username %q: %w", username, err)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), PasswordCost)
	if err != nil {
		return err
	}
	_, err = d.pool.Exec(ctx, `INSERT INTO users (username, password_hash) VALUES ($1, $2)
		ON CONFLICT (username) DO UPDATE SET password_hash = EXCLUDED.password_hash`, username, string(h))
	if err != nil {
		return fmt.Errorf("set user %s: %w", username, err)
	}
	return nil
}

// PasswordCost is the bcrypt cost of stored passwords (SetUser) and of the stand-in hash compared when a
// login names no known user: both paths must cost the same, or the time of a reply tells whether a user
// name exists (with a cheaper stand-in an unknown name answered in 1.7 ms against 57 ms).
const PasswordCost = bcrypt.DefaultCost

// dummyHash is the stand-in hash, made on first use (≈ 50 ms) rather than when the package loads.
var dummyHash = sync.OnceValue(func() []byte {
	h, err := bcrypt.GenerateFromPassword([]byte("flamestream-dummy-password"), PasswordCost)
	if err != nil {
		panic("pgdb: bcrypt of the stand-in password: " + err.Error())
	}
	return h
})

// ValidName reports why s cannot be stored as a name in PostgreSQL's text columns (nil when it can): the
// server refuses NUL bytes and invalid UTF-8, and its error would otherwise reach the caller.
func ValidName(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return errors.New("contains a NUL byte")
	}
	return nil
}

// Login checks a password and opens a session; it returns the session secret for the cookie.
func (d *DB) Login(ctx context.Context, username, password string) (secret string, s Session, err error) {
	return d.login(ctx, username, password, bcrypt.CompareHashAndPassword)
}

// login is Login with the password comparer given, so that a test can see which hash each path compares.
// Every path that ends in ErrBadLogin compares exactly one hash of cost PasswordCost.
func (d *DB) login(ctx context.Context, username, password string, compare func(hash, password []byte) error) (string, Session, error) {
	var s Session
	var id int64
	var hash string
	var err error
	if ValidName(username) != nil {
		// No stored name is like this one, and PostgreSQL would refuse it with its own error.
		err = pgx.ErrNoRows
	} else {
		err = d.pool.QueryRow(ctx, `SELECT id, password_hash FROM users WHERE username = $1`, username).Scan(&id, &hash)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		_ = compare(dummyHash(), []byte(password))
		return "", s, ErrBadLogin
	}
	if err != nil {
		return "", s, fmt.Errorf("login: %w", err)
	}
	if compare([]byte(hash), []byte(password)) != nil {
		return "", s, ErrBadLogin
	}
	secret := randomString()
	s.CSRF = randomString()
	s.Username = username
	_, err = d.pool.Exec(ctx, `INSERT INTO sessions (hash, user_id, csrf, expires_at) VALUES ($1, $2, $3, $4)`,
		hashToken(secret), id, s.CSRF, time.Now().Add(SessionTTL))
	if err != nil {
		return "", s, fmt.Errorf("open session: %w", err)
	}
	return secret, s, nil
}

// CheckSession returns the live session of a cookie secret.
func (d *DB) CheckSession(ctx context.Context, secret string) (Session, error) {
	var s Session
	if secret == "" {
		return s, ErrNoSession
	}
	err := d.pool.QueryRow(ctx, `SELECT u.username, s.csrf FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.hash = $1 AND s.expires_at > now()`, hashToken(secret)).Scan(&s.Username, &s.CSRF)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, ErrNoSession
	}
	return s, err
}

// Logout ends a session.
func (d *DB) Logout(ctx context.Context, secret string) error {
	_, err := d.pool.Exec(ctx, `DELETE FROM sessions WHERE hash = $1 OR expires_at < now()`, hashToken(secret))
	return err
}

func randomString() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
