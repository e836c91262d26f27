package query

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/flamestream/flamestream/internal/pgdb"
)

// Saved views: a UI user names the state of a profile or diff page (its path and query string: service,
// range, filters, view) and opens it again later. Views are private to the user who saved them; read
// tokens have no user and cannot reach these routes (requireUser).
//
//	GET    /api/v1/views        → {"views": [{id, name, path, query, service, created_at, updated_at}], "max": N}
//	POST   /api/v1/views        {"name", "path", "query", "replace"} → 201 the stored view
//	DELETE /api/v1/views/{id}   → 204

const (
	// MaxViewsPerUser bounds the saved views of one user (the table and the list the UI draws).
	MaxViewsPerUser = 100
	// maxViewName and maxViewQuery bound a view's name (characters) and query string (bytes): a page URL
	// holds far less, and each stored row stays small.
	maxViewName  = 100
	maxViewQuery = 4096
)

// viewPaths are the pages whose state a view can hold.
var viewPaths = map[string]bool{"/profile": true, "/diff": true}

func (s *Server) listViews(w http.ResponseWriter, r *http.Request) error {
	views, err := s.meta.ListViews(r.Context(), principalOf(r.Context()).user, MaxViewsPerUser)
	if err != nil {
		return err
	}
	if views == nil {
		views = []pgdb.SavedView{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"views": views, "max": MaxViewsPerUser})
	return nil
}

func (s *Server) saveView(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Name    string `json:"name"`
		Path    string `json:"path"`
		Query   string `json:"query"`
		Replace bool   `json:"replace"`
	}
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	v, bad := checkView(in.Name, in.Path, in.Query)
	if bad != nil {
		return bad
	}
	out, err := s.meta.SaveView(r.Context(), principalOf(r.Context()).user, v, in.Replace, MaxViewsPerUser)
	switch {
	case errors.Is(err, pgdb.ErrViewExists):
		return &Error{Status: http.StatusConflict, Message: "a view with this name exists",
			Detail: "choose another name, or send \"replace\": true to overwrite it"}
	case errors.Is(err, pgdb.ErrTooManyViews):
		return &Error{Status: http.StatusConflict, Message: "too many saved views",
			Detail: fmt.Sprintf("a user keeps at most %d views: delete one first", MaxViewsPerUser)}
	case err != nil:
		return err
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (s *Server) deleteView(w http.ResponseWriter, r *http.Request) error {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		return &Error{Status: http.StatusBadRequest, Message: "bad view id", Detail: "a positive integer"}
	}
	err = s.meta.DeleteView(r.Context(), principalOf(r.Context()).user, id)
	if errors.Is(err, pgdb.ErrNoView) {
		return &Error{Status: http.StatusNotFound, Message: "no saved view with this id"}
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// checkView validates a view and returns it with its query string in canonical form and its service.
func checkView(name, path, query string) (pgdb.SavedView, *Error) {
	bad := func(msg, detail string) (pgdb.SavedView, *Error) {
		return pgdb.SavedView{}, &Error{Status: http.StatusBadRequest, Message: msg, Detail: detail}
	}
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return bad("bad name", "a view needs a name")
	case validText(name) != nil:
		return bad("bad name", validText(name).Error())
	case utf8.RuneCountInString(name) > maxViewName:
		return bad("bad name", fmt.Sprintf("at most %d characters", maxViewName))
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return bad("bad name", "no control characters")
	}
	if !viewPaths[path] {
		return bad("bad path", "a view is of /profile or /diff")
	}
	query = strings.TrimPrefix(query, "?")
	if len(query) > maxViewQuery {
		return bad("bad query", fmt.Sprintf("at most %d bytes", maxViewQuery))
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return bad("bad query", "not a URL query string")
	}
	for k, vs := range q {
		if validText(k) != nil {
			return bad("bad query", "parameter names must be valid UTF-8 without NUL bytes")
		}
		for _, v := range vs {
			if validText(v) != nil {
				return bad("bad query", "bad value of "+strconv.QuoteToASCII(k)+": must be valid UTF-8 without NUL bytes")
			}
		}
	}
	if svc := q["service"]; len(svc) != 1 || svc[0] == "" {
		return bad("bad query", "a view names exactly one service")
	}
	return pgdb.SavedView{Name: name, Path: path, Query: q.Encode(), Service: q.Get("service")}, nil
}
