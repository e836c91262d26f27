package query

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

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
				return &Error{Status: http.StatusServiceUnavailable, Message: "metadata store unavailable", Detail: err.Error()}
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
			return &Error{Status: http.StatusServiceUnavailable, Message: "metadata store unavailable", Detail: err.Error()}
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
	secret, sess, err := s.meta.Login(r.Context(), in.Username, in.Password)
	if errors.Is(err, pgdb.ErrBadLogin) {
		return &Error{Status: http.StatusUnauthorized, Message: "wrong username or password"}
	}
	if err != nil {
		return err
	}
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
