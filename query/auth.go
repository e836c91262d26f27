package query

import (
	"container/list"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flamestream/flamestream/internal/pgdb"
)

// Cookie names.
const (
	SessionCookie = "fs_session"
	CSRFCookie    = "fs_csrf"
	CSRFHeader    = "X-CSRF-Token"
)

// principal is who is calling: a UI user (session) or a read token.
type principal struct {
	user    string
	token   *pgdb.Token
	session string
}

type principalKey struct{}

func principalOf(ctx context.Context) principal {
	p, _ := ctx.Value(principalKey{}).(principal)
	return p
}

func unauthorized(detail string) *Error {
	return &Error{Status: http.StatusUnauthorized, Message: "authentication required", Detail: detail}
}

// metadataUnavailable logs why PostgreSQL could not check a caller and answers 503 without the database's
// text.
func (s *Server) metadataUnavailable(r *http.Request, err error) *Error {
	s.log.Error("authentication failed", "path", r.URL.Path, "err", err)
	return &Error{Status: http.StatusServiceUnavailable, Message: "metadata store unavailable", Detail: "retry later"}
}

// authenticate accepts a session cookie (with the CSRF header on unsafe methods) or a read token.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return s.handle(func(w http.ResponseWriter, r *http.Request) error {
		ctx := r.Context()
		if h := r.Header.Get("Authorization"); h != "" {
			secret, ok := strings.CutPrefix(h, "Bearer ")
			if !ok {
				return unauthorized("use Authorization: Bearer <read token>")
			}
			tok, err := s.meta.CheckToken(ctx, strings.TrimSpace(secret))
			if errors.Is(err, pgdb.ErrTokenInvalid) {
				return unauthorized("invalid token")
			}
			if err != nil {
				return s.metadataUnavailable(r, err)
			}
			if tok.Kind != pgdb.KindRead {
				return &Error{Status: http.StatusForbidden, Message: "agent tokens cannot read profiles", Detail: "create a read token"}
			}
			if svc := r.URL.Query().Get("service"); svc != "" && !tok.AllowsService(svc) {
				return &Error{Status: http.StatusForbidden, Message: "token is not valid for this service"}
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, principalKey{}, principal{token: &tok})))
			return nil
		}
		c, err := r.Cookie(SessionCookie)
		if err != nil {
			return unauthorized("log in first")
		}
		sess, err := s.meta.CheckSession(ctx, c.Value)
		if errors.Is(err, pgdb.ErrNoSession) {
			return unauthorized("session expired")
		}
		if err != nil {
			return s.metadataUnavailable(r, err)
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			got := r.Header.Get(CSRFHeader)
			if subtle.ConstantTimeCompare([]byte(got), []byte(sess.CSRF)) != 1 {
				return &Error{Status: http.StatusForbidden, Message: "missing or wrong CSRF token", Detail: "send the " + CSRFHeader + " header"}
			}
		}
		p := principal{user: sess.Username, session: c.Value}
		next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, principalKey{}, p)))
		return nil
	})
}

// requireUser lets only logged-in UI users through (admin pages: tokens, settings).
func requireUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if principalOf(r.Context()).user == "" {
			writeJSON(w, http.StatusForbidden, map[string]string{"message": "UI login required", "detail": "tokens cannot manage tokens or settings"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&in); err != nil {
		return badRequest("body must be JSON {\"username\", \"password\"}", err)
	}
	// JSON decoding already turned invalid UTF-8 into U+FFFD; a NUL ("\u0000") is left, and no user can
	// have it. The password never reaches the database: bcrypt takes any bytes.
	if err := pgdb.ValidName(in.Username); err != nil {
		return badRequest("bad username", err)
	}
	addr := clientAddr(r, s.cfg.TrustedProxies)
	if wait := s.logins.admit(in.Username, addr); wait > 0 {
		secs := int((wait + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		return &Error{Status: http.StatusTooManyRequests, Message: "too many failed logins",
			Detail: fmt.Sprintf("try again in %d seconds", secs)}
	}
	secret, sess, err := s.meta.Login(r.Context(), in.Username, in.Password)
	if errors.Is(err, pgdb.ErrBadLogin) {
		return &Error{Status: http.StatusUnauthorized, Message: "wrong username or password"}
	}
	if err != nil {
		s.logins.aborted(in.Username, addr)
		return err
	}
	s.logins.succeeded(in.Username, addr)
	maxAge := int(pgdb.SessionTTL.Seconds())
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: secret, Path: "/", HttpOnly: true,
		Secure: s.cfg.CookieSecure, SameSite: http.SameSiteStrictMode, MaxAge: maxAge})
	http.SetCookie(w, &http.Cookie{Name: CSRFCookie, Value: sess.CSRF, Path: "/",
		Secure: s.cfg.CookieSecure, SameSite: http.SameSiteStrictMode, MaxAge: maxAge})
	writeJSON(w, http.StatusOK, map[string]string{"username": sess.Username})
	return nil
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) error {
	if p := principalOf(r.Context()); p.session != "" {
		if err := s.meta.Logout(r.Context(), p.session); err != nil {
			return err
		}
	}
	for _, name := range []string{SessionCookie, CSRFCookie} {
		http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1})
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) me(w http.ResponseWriter, r *http.Request) error {
	p := principalOf(r.Context())
	out := map[string]any{"username": p.user}
	if p.token != nil {
		out["token"] = p.token.Name
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// Failed logins are limited per user name and per client address, so that neither one account nor many
// accounts can be guessed at speed. An attempt of a locked user or address is answered 429 with
// Retry-After and its password is not even checked: the right one is refused too until the lock ends.
//
//   - A user name may fail 5 times; the 5th failure locks it for 30 s, and each further one (the one try
//     allowed when a lock ends) locks it twice as long, up to 15 min. A successful login forgets its failures.
//   - A client address (IPv6: its /64, which one host usually owns whole) may fail 20 times, over any user
//     names; the 20th failure locks it for 1 min, doubling up to 15 min. A success does not forget them:
//     else one valid account would reset the count between guesses at others.
//   - Failures are forgotten 15 min after the later of the last failure and the end of its lock.
//
// The address is the TCP peer (r.RemoteAddr), or behind the proxies listed in FLAMESTREAM_TRUSTED_PROXIES
// the client their X-Forwarded-For names (see clientAddr). A forwarded-for header from any other peer,
// which any client can write, is not believed: behind an unlisted reverse proxy every client shares the
// proxy's address and the address limit applies to all of them together.
var (
	userLoginPolicy = loginPolicy{free: 5, base: 30 * time.Second, max: 15 * time.Minute, forget: 15 * time.Minute}
	addrLoginPolicy = loginPolicy{free: 20, base: time.Minute, max: 15 * time.Minute, forget: 15 * time.Minute}
)

// loginLimitEntries bounds the user names and the addresses the limiter remembers (each): a flood of made-up
// names or addresses pushes out the least recently failed entries instead of growing memory (≈ 100 bytes an
// entry). Pushing out a locked entry takes that many failures, which the address limit slows down.
const loginLimitEntries = 10_000

// loginPolicy says how many failed logins a key may have before it is locked, and for how long.
type loginPolicy struct {
	free   int           // the failure that reaches this count locks the key
	base   time.Duration // length of the first lock; each further failure doubles it
	max    time.Duration // longest lock
	forget time.Duration // failures are forgotten this long after the last one or the end of its lock
}

// lock returns how long a key stays locked after its nth failure.
func (p loginPolicy) lock(n int) time.Duration {
	if n < p.free {
		return 0
	}
	d := p.base
	for i := p.free; i < n && d < p.max; i++ {
		d *= 2
	}
	return min(d, p.max)
}

// loginLimiter counts failed logins per user name and per client address.
type loginLimiter struct {
	now   func() time.Time
	seed  maphash.Seed // keys are hashed: fixed-size entries whatever the name's length
	mu    sync.Mutex
	users failures
	addrs failures
}

func newLoginLimiter(entries int, now func() time.Time) *loginLimiter {
	return &loginLimiter{now: now, seed: maphash.MakeSeed(),
		users: newFailures(userLoginPolicy, entries), addrs: newFailures(addrLoginPolicy, entries)}
}

// admit returns how long the user or the address is still locked, or, when neither is, 0 after counting
// the attempt as a failure already: concurrent attempts then cannot all get past the limit before the first
// one's password is checked. succeeded or aborted takes the count back.
func (l *loginLimiter) admit(user, addr string) time.Duration {
	u, a := l.key("u", user), l.key("a", addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if wait := max(l.users.locked(u, now), l.addrs.locked(a, now)); wait > 0 {
		return wait
	}
	l.users.fail(u, now)
	l.addrs.fail(a, now)
	return 0
}

// succeeded forgets the user's failures and takes back the address's count of this attempt.
func (l *loginLimiter) succeeded(user, addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.users.forget(l.key("u", user))
	l.addrs.undo(l.key("a", addr))
}

// aborted takes back the count of an attempt whose password could not be checked (the store failed).
func (l *loginLimiter) aborted(user, addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.users.undo(l.key("u", user))
	l.addrs.undo(l.key("a", addr))
}

func (l *loginLimiter) key(kind, s string) uint64 {
	var h maphash.Hash
	h.SetSeed(l.seed)
	h.WriteString(kind)
	h.WriteByte(0)
	h.WriteString(s)
	return h.Sum64()
}

// failures is a fixed-capacity map of failure counts, the least recently failed key pushed out first.
type failures struct {
	policy  loginPolicy
	cap     int
	entries map[uint64]*list.Element
	order   *list.List // of *failure, the most recent failure in front
}

type failure struct {
	key   uint64
	n     int
	last  time.Time // of the last failure
	until time.Time // end of the lock (the zero time when none)
}

func newFailures(p loginPolicy, capacity int) failures {
	return failures{policy: p, cap: max(capacity, 1), entries: map[uint64]*list.Element{}, order: list.New()}
}

// get returns key's live entry, dropping it when its failures are forgotten.
func (f *failures) get(key uint64, now time.Time) *failure {
	e := f.entries[key]
	if e == nil {
		return nil
	}
	v := e.Value.(*failure)
	if now.Sub(maxTime(v.last, v.until)) >= f.policy.forget {
		f.drop(e)
		return nil
	}
	return v
}

// locked returns how long key is still locked at now.
func (f *failures) locked(key uint64, now time.Time) time.Duration {
	if v := f.get(key, now); v != nil && now.Before(v.until) {
		return v.until.Sub(now)
	}
	return 0
}

func (f *failures) fail(key uint64, now time.Time) {
	v := f.get(key, now)
	if v == nil {
		for len(f.entries) >= f.cap {
			f.drop(f.order.Back())
		}
		v = &failure{key: key}
		f.entries[key] = f.order.PushFront(v)
	} else {
		f.order.MoveToFront(f.entries[key])
	}
	v.n++
	v.last = now
	if d := f.policy.lock(v.n); d > 0 {
		v.until = now.Add(d)
	}
}

// undo takes back one failure; the lock, if any, becomes the one of the failures left.
func (f *failures) undo(key uint64) {
	e := f.entries[key]
	if e == nil {
		return
	}
	v := e.Value.(*failure)
	if v.n--; v.n <= 0 {
		f.drop(e)
		return
	}
	if d := f.policy.lock(v.n); d > 0 {
		v.until = v.last.Add(d)
	} else {
		v.until = time.Time{}
	}
}

func (f *failures) forget(key uint64) {
	if e := f.entries[key]; e != nil {
		f.drop(e)
	}
}

func (f *failures) drop(e *list.Element) {
	delete(f.entries, e.Value.(*failure).key)
	f.order.Remove(e)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// clientAddr is the limiter's key for the client of r: the IP, or for IPv6 its /64. It is the TCP peer,
// unless the peer is a trusted proxy (FLAMESTREAM_TRUSTED_PROXIES): then it is the rightmost address of
// X-Forwarded-For that is not a trusted proxy itself, since every proxy appends the address it got the
// request from and only the part our own proxies wrote can be believed. A malformed entry stops the walk
// at the last address believed.
func clientAddr(r *http.Request, trusted []netip.Prefix) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	ip := ap.Addr().Unmap()
	if isTrusted(ip, trusted) {
		hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		for i := len(hops) - 1; i >= 0; i-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				break
			}
			ip = hop.Unmap()
			if !isTrusted(ip, trusted) {
				break
			}
		}
	}
	if ip.Is6() {
		return netip.PrefixFrom(ip, 64).Masked().String()
	}
	return ip.String()
}

func isTrusted(ip netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ParseTrustedProxies reads FLAMESTREAM_TRUSTED_PROXIES: comma-separated addresses or CIDR prefixes.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("trusted proxies: %q is neither an address nor a CIDR prefix", f)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
