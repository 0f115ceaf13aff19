// Package web serves the central staff's pages and JSON API: sign-in for
// coordinators and admins, the programme overview with its indicators and
// charts, live as devices sync. Everything is rendered on the server and
// works on a closed network: no external script, font or style.
//
// Security: every page and API call needs a signed-in session (a random
// cookie whose hash the store keeps); state-changing requests need the
// session's CSRF token and a same-origin Origin header.
//
// Concurrency: a Handler is safe for concurrent use.
package web

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nicksnyder/go-i18n/v2/i18n"

	"github.com/ponte-project/ponte/locales"
	"github.com/ponte-project/ponte/server/ratelimit"
	"github.com/ponte-project/ponte/server/scope"
	"github.com/ponte-project/ponte/server/store"
	"github.com/ponte-project/ponte/syncproto"
)

const (
	sessionCookie = "ponte_session"
	langCookie    = "ponte_lang"
)

// Options give the pages what they show besides the store's data.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time // nil: time.Now
	// Live returns how many devices are connected now, LiveDevices which.
	Live        func() int
	LiveDevices func() []string
	// Subscribe returns a channel that receives after each commit, and a
	// function to stop; pages update live through it (/events).
	Subscribe func() (<-chan struct{}, func())
}

// Handler serves the pages. Create it with New.
type Handler struct {
	st   *store.Store
	opts Options
	log  *slog.Logger
	mux  *http.ServeMux
	// logins bounds sign-in attempts per address: each costs a
	// deliberately slow password hash, and guessing must not pay.
	logins *ratelimit.Limiter
}

// New returns the pages over st.
func New(st *store.Store, opts Options) *Handler {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Live == nil {
		opts.Live = func() int { return 0 }
	}
	h := &Handler{st: st, opts: opts, log: opts.Logger, mux: http.NewServeMux(), logins: ratelimit.New(0.2, 10)}
	h.mux.HandleFunc("GET /login", h.loginPage)
	h.mux.HandleFunc("POST /login", h.login)
	h.mux.HandleFunc("POST /logout", h.signedIn(h.logout))
	h.mux.HandleFunc("GET /{$}", h.signedIn(h.home))
	h.mux.HandleFunc("GET /api/indicators", h.api(h.role(h.apiIndicators, scope.Coordinator)))
	h.mux.HandleFunc("GET /events", h.signedIn(h.role(h.events, scope.Coordinator)))
	h.recordRoutes()
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "same-origin")
	h.mux.ServeHTTP(w, r)
}

// request is what a signed-in handler gets.
type request struct {
	*http.Request
	session store.WebSession
	loc     *i18n.Localizer
	lang    string
}

// home is the overview for coordinators; an admin, who sees no records,
// lands on the devices.
func (h *Handler) home(w http.ResponseWriter, r *request) {
	if r.session.User.Role != scope.Coordinator {
		http.Redirect(w, r.Request, "/devices", http.StatusSeeOther)
		return
	}
	h.overview(w, r)
}

// safeNext returns where to go after signing in: a path on this server, or
// "/" for anything else (another site, "//host", "/\\host").
func safeNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(next, "/") ||
		strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n\t") {
		return "/"
	}
	return next
}

// localizer picks the person's language: ?lang=, then the cookie it set,
// then the browser's languages.
func (h *Handler) localizer(w http.ResponseWriter, r *http.Request) (*i18n.Localizer, string) {
	langs := []string{r.URL.Query().Get("lang")}
	if c, err := r.Cookie(langCookie); err == nil {
		langs = append(langs, c.Value)
	}
	langs = append(langs, r.Header.Get("Accept-Language"))
	lang := locales.Matching(langs...)
	if lang == "" {
		lang = locales.Default.String()
	}
	if q := r.URL.Query().Get("lang"); q != "" && w != nil {
		http.SetCookie(w, &http.Cookie{Name: langCookie, Value: lang, Path: "/", MaxAge: 365 * 24 * 3600,
			HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil})
	}
	return locales.Localizer(lang), lang
}

// signedIn wraps a page: without a session it sends the person to sign in.
func (h *Handler) signedIn(next func(http.ResponseWriter, *request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		loc, lang := h.localizer(w, r)
		sess, err := h.session(r)
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				h.fail(w, r, loc, err)
				return
			}
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		req := &request{Request: r, session: sess, loc: loc, lang: lang}
		if r.Method == http.MethodPost && !h.sameOrigin(r, sess.CSRF) {
			http.Error(w, statusText(loc, http.StatusForbidden), http.StatusForbidden)
			return
		}
		next(w, req)
	}
}

// api wraps a JSON API call: without a session it answers 401.
func (h *Handler) api(next func(http.ResponseWriter, *request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		loc, lang := h.localizer(nil, r)
		sess, err := h.session(r)
		if err != nil {
			code, status := syncproto.CodeUnauthorized, http.StatusUnauthorized
			if !errors.Is(err, store.ErrNotFound) {
				h.log.Error("web session", "err", err)
				code, status = syncproto.CodeInternal, http.StatusInternalServerError
			}
			writeJSON(w, status, map[string]any{"error": map[string]string{"code": string(code),
				"message": statusText(loc, status)}})
			return
		}
		next(w, &request{Request: r, session: sess, loc: loc, lang: lang})
	}
}

func (h *Handler) session(r *http.Request) (store.WebSession, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return store.WebSession{}, store.ErrNotFound
	}
	return h.st.WebSessionOf(r.Context(), c.Value)
}

// sameOrigin reports whether a state-changing request carries the
// session's CSRF token and, if the browser says where it comes from, comes
// from this server.
func (h *Handler) sameOrigin(r *http.Request, csrf string) bool {
	if csrf == "" {
		return fromHere(r) // signing in: there is no session yet
	}
	return fromHere(r) && tokenMatches(r.FormValue("csrf"), csrf)
}

// fromHere reports whether a request that says where it comes from (the
// Origin header browsers send) comes from this server.
func fromHere(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// tokenMatches compares a CSRF token sent with the session's, in constant
// time; an empty one never matches.
func tokenMatches(got, csrf string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(csrf)) == 1
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, loc *i18n.Localizer, err error) {
	h.log.Error("web page", "path", r.URL.Path, "err", err)
	http.Error(w, statusText(loc, http.StatusInternalServerError), http.StatusInternalServerError)
}

// statusText explains an HTTP status to a person at a browser, in their
// language (the codes' own texts speak to people at a device).
func statusText(l *i18n.Localizer, status int) string {
	id := map[int]string{http.StatusBadRequest: "web.error.bad_request", http.StatusUnauthorized: "web.error.unauthorized",
		http.StatusForbidden: "web.error.forbidden", http.StatusNotFound: "web.error.not_found",
		http.StatusTooManyRequests: "web.error.too_many"}[status]
	if id == "" {
		id = "web.error.internal"
	}
	return locales.Text(l, id, nil)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// period reads ?from=&to=&site= (dates), defaulting to the last 30 days.
func (h *Handler) period(r *http.Request) (from, to time.Time, site string) {
	now := h.opts.Now()
	to = time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, 1)
	from = to.AddDate(0, 0, -30)
	if t, err := time.Parse(time.DateOnly, r.URL.Query().Get("from")); err == nil {
		from = t
	}
	if t, err := time.Parse(time.DateOnly, r.URL.Query().Get("to")); err == nil {
		to = t.AddDate(0, 0, 1) // the last day is included
	}
	if !to.After(from) {
		to = from.AddDate(0, 0, 1)
	}
	return from, to, r.URL.Query().Get("site")
}

func (h *Handler) apiIndicators(w http.ResponseWriter, r *request) {
	from, to, site := h.period(r.Request)
	in, err := h.st.ComputeIndicators(r.Context(), from, to, site, h.opts.Now())
	if err != nil {
		h.log.Error("indicators", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]any{"error": map[string]string{
			"code": string(syncproto.CodeInternal), "message": statusText(r.loc, http.StatusInternalServerError)}})
		return
	}
	writeJSON(w, http.StatusOK, in)
}

// events streams a "changed" event after each commit (server-sent events),
// at most one a second, so open pages refresh their figures.
func (h *Handler) events(w http.ResponseWriter, r *request) {
	flusher, ok := w.(http.Flusher)
	if !ok || h.opts.Subscribe == nil {
		http.Error(w, "streaming unsupported", http.StatusNotImplemented)
		return
	}
	changes, stop := h.opts.Subscribe()
	defer stop()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Write([]byte("retry: 3000\n\n"))
	flusher.Flush()
	tick := time.NewTicker(25 * time.Second) // keeps proxies from closing an idle stream
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			w.Write([]byte(": ping\n\n"))
		case <-changes:
			w.Write([]byte("event: changed\ndata: {}\n\n"))
			select { // coalesce a burst of commits
			case <-time.After(time.Second):
			case <-r.Context().Done():
				return
			}
		}
		flusher.Flush()
	}
}
