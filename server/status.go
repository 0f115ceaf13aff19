package server

import (
	"html/template"
	"net/http"

	"github.com/ponte-project/ponte/locales"
	"github.com/ponte-project/ponte/syncproto"
)

// statusPage is what a person sees at the server's root: that it runs, and
// its headline figures, in their language.
var statusPage = template.Must(template.New("status").Parse(`<!doctype html>
<html lang="{{.Lang}}" dir="{{.Dir}}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Ponte</title>
<style>
body { font-family: system-ui, "Noto Sans", "Noto Sans Arabic", sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem; color: #1d2433; }
h1 { font-size: 1.6rem; } li { margin: .4rem 0; } code { background: #eef1f6; padding: .1rem .3rem; }
</style></head>
<body>
<h1>{{.Title}}</h1>
<ul>
<li>{{.Records}}</li>
<li>{{.Devices}}</li>
<li>{{.Conflicts}}</li>
</ul>
<p>{{.SyncURL}}</p>
</body></html>
`))

func (s *Server) serveStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.store.Stats(r.Context())
	if err != nil {
		s.log.Error("status page", "err", err)
		loc := locales.Localizer(r.URL.Query().Get("lang"), r.Header.Get("Accept-Language"))
		http.Error(w, locales.Text(loc, syncproto.CodeInternal.MessageID(), nil), http.StatusInternalServerError)
		return
	}
	langs := []string{r.URL.Query().Get("lang"), r.Header.Get("Accept-Language")}
	loc := locales.Localizer(langs...)
	lang := "en"
	if tags := locales.Matching(langs...); tags != "" {
		lang = tags
	}
	syncURL := "ws://" + r.Host + "/sync"
	if r.TLS != nil {
		syncURL = "wss://" + r.Host + "/sync"
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	err = statusPage.Execute(w, map[string]any{
		"Lang":      lang,
		"Dir":       locales.Direction(loc),
		"Title":     locales.Text(loc, "page.status.title", nil),
		"Records":   locales.Plural(loc, "page.status.records", st.Records, nil),
		"Devices":   locales.Plural(loc, "page.status.devices", st.Devices, map[string]any{"Live": s.hub.Live()}),
		"Conflicts": locales.Plural(loc, "page.status.conflicts", st.Conflicts, nil),
		"SyncURL":   locales.Text(loc, "page.status.sync_url", map[string]any{"URL": syncURL}),
	})
	if err != nil {
		s.log.Warn("status page", "err", err)
	}
}
