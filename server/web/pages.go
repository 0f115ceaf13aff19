package web

import (
	"errors"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nicksnyder/go-i18n/v2/i18n"

	"github.com/ponte-project/ponte/locales"
	"github.com/ponte-project/ponte/server/ratelimit"
	"github.com/ponte-project/ponte/server/store"
)

// layout is every page's frame: language, direction, styles, navigation.
const layout = `{{define "top"}}<!doctype html>
<html lang="{{.Lang}}" dir="{{.Dir}}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} — Ponte</title>
<style>
:root { --ink: #1d2433; --muted: #5b6475; --line: #dde2ea; --accent: #2f6db5; --warn: #b5462f; }
* { box-sizing: border-box; }
body { font-family: system-ui, "Noto Sans", "Noto Sans Arabic", "Noto Sans Bengali", "Noto Sans Ethiopic", sans-serif;
  margin: 0; color: var(--ink); background: #f7f8fb; }
header { display: flex; gap: 1rem; align-items: center; padding: .7rem 1.2rem; background: #fff; border-block-end: 1px solid var(--line); }
header h1 { font-size: 1.1rem; margin: 0; margin-inline-end: auto; }
main { max-width: 72rem; margin: 1.2rem auto; padding: 0 1.2rem; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(13rem, 1fr)); gap: .8rem; }
.card { background: #fff; border: 1px solid var(--line); border-radius: .5rem; padding: .8rem 1rem; }
.card b { display: block; font-size: 1.8rem; }
.card span { color: var(--muted); }
section { margin-block: 1.5rem; }
table { width: 100%; border-collapse: collapse; background: #fff; }
th, td { text-align: start; padding: .45rem .6rem; border-block-end: 1px solid var(--line); }
form.inline { display: flex; flex-wrap: wrap; gap: .6rem; align-items: end; }
label { display: flex; flex-direction: column; gap: .2rem; color: var(--muted); }
input, select, button { font: inherit; padding: .35rem .5rem; }
button { background: var(--accent); color: #fff; border: 0; border-radius: .3rem; cursor: pointer; }
.risk { color: var(--warn); }
.langs a { margin-inline-end: .4rem; }
svg text { font: inherit; font-size: 13px; fill: var(--ink); }
</style></head><body>{{end}}`

var pages = template.Must(template.New("pages").Funcs(template.FuncMap{
	"pct": func(f float64) string { return fmt.Sprintf("%d%%", int(math.Round(f*100))) },
}).Parse(layout + `
{{define "nav"}}<header><h1>Ponte — {{.Title}}</h1>
<nav><a href="/">{{.Nav.Title}}</a> · <a href="/persons">{{.Nav.PersonsTitle}}</a> · <a href="/conflicts">{{.Nav.ConflictsTitle}}</a> · <a href="/devices">{{.Nav.DevicesTitle}}</a></nav>
<span>{{.User}}</span>
<form method="post" action="/logout"><input type="hidden" name="csrf" value="{{.CSRF}}"><button type="submit">{{.Nav.Logout}}</button></form>
</header>{{end}}
{{define "bottom"}}<p class="langs">{{range .Langs}}<a href="?lang={{.Tag}}" lang="{{.Tag}}">{{.Name}}</a>{{end}}</p></main></body></html>{{end}}

{{define "persons"}}{{template "top" .}}{{template "nav" .}}<main>
<form class="inline" method="get" action="/persons"><label>{{.T.Search}}<input type="search" name="q" value="{{.Q}}" autofocus></label><button type="submit">{{.T.Search}}</button>
<a href="/export/persons.csv?q={{.Q}}" download>{{.T.Export}}</a></form>
{{if .Persons}}<table><thead><tr><th>{{.T.Name}}</th><th>{{.T.Latin}}</th><th>{{.T.Nationality}}</th></tr></thead><tbody>
{{range .Persons}}<tr><td><a href="/persons/{{.ID}}">{{.GivenName}} {{.FamilyName}}</a></td><td>{{.GivenNameLatin}} {{.FamilyNameLatin}}</td><td>{{.Nationality}}</td></tr>{{end}}
</tbody></table>{{else}}<p>{{.T.None}}</p>{{end}}
{{template "bottom" .}}{{end}}

{{define "person"}}{{template "top" .}}{{template "nav" .}}<main>
{{if .Deleted}}<p class="risk">{{.T.Deleted}}</p>{{end}}
<section><h2>{{.T.Fields}}</h2><table><tbody>{{range .Fields}}<tr><th>{{.Field}}</th><td>{{.Value}}</td></tr>{{end}}</tbody></table></section>
<section><h2>{{.T.History}}</h2><table><thead><tr><th>{{.T.When}}</th><th>{{.T.Who}}</th><th>{{.T.Device}}</th><th>{{.T.What}}</th></tr></thead><tbody>
{{range .History}}<tr><td>{{.ReceivedAt.Format "2006-01-02 15:04"}}</td><td>{{.User}}</td><td><code>{{.Device}}</code></td><td>{{.Op}} <code>{{printf "%s" .Data}}</code></td></tr>{{end}}
</tbody></table></section>
{{template "bottom" .}}{{end}}

{{define "register"}}{{template "top" .}}{{template "nav" .}}<main>
<p>{{.Lesson.Start}} · {{.Lesson.Topic}} · <a href="/lessons/{{.ID}}/register.csv" download>{{.T.Export}}</a></p>
<table><thead><tr><th>{{.T.Name}}</th><th>{{.T.Mark}}</th><th>{{.T.MarkedBy}}</th></tr></thead><tbody>
{{range .Lines}}<tr><td><a href="/persons/{{.PersonID}}">{{.GivenName}} {{.FamilyName}}</a></td><td>{{.Mark}}</td><td>{{.MarkedBy}}</td></tr>{{end}}
</tbody></table>
{{template "bottom" .}}{{end}}

{{define "conflicts"}}{{template "top" .}}{{template "nav" .}}<main>
{{if .Error}}<p class="risk" role="alert">{{.Error}}</p>{{end}}
{{if .Conflicts}}<table><thead><tr><th>{{.T.Record}}</th><th>{{.T.Field}}</th><th>{{.T.Current}}</th><th>{{.T.Other}}</th><th></th></tr></thead><tbody>
{{range .Conflicts}}<tr id="conflict-{{.ID}}"><td>{{if eq .Collection "persons"}}<a href="/persons/{{.Record}}">{{.Collection}}/{{.Record}}</a>{{else}}{{.Collection}}/{{.Record}}{{end}}</td>
<td>{{.Conflict.Field}}</td>
<td><b class="current">{{.Current}}</b><br><small>{{.CurrentBy.User}} · {{.CurrentWhen}}</small></td>
<td><b class="other">{{.Other}}</b><br><small>{{.OtherBy.User}} · {{.OtherWhen}}</small></td>
<td><form method="post" action="/conflicts/{{.ID}}" class="inline"><input type="hidden" name="csrf" value="{{$.CSRF}}">
<button name="choice" value="current">{{$.T.Keep}}</button>
{{if .CanUseOther}}<button name="choice" value="other" class="use-other">{{$.T.UseOther}}</button>{{end}}
<input name="value" aria-label="{{$.T.UseValue}}"><button name="choice" value="value">{{$.T.UseValue}}</button></form></td></tr>{{end}}
</tbody></table>{{else}}<p>{{.T.None}}</p>{{end}}
{{template "bottom" .}}{{end}}

{{define "devices"}}{{template "top" .}}{{template "nav" .}}<main>
<table><thead><tr><th>{{.T.Device}}</th><th>{{.T.Who}}</th><th>{{.T.Online}}</th><th>{{.T.LastSeen}}</th><th>{{.T.Pending}}</th><th>{{.T.Rejected}}</th><th>{{.T.Status}}</th><th></th></tr></thead><tbody>
{{range .Devices}}<tr><td><code>{{.ID}}</code></td><td>{{.User}}</td><td>{{if .Online}}{{$.T.Yes}}{{else}}{{$.T.No}}{{end}}</td><td>{{.LastSeen}}</td><td>{{.Pending}}</td><td>{{.Rejected}}</td><td>{{.Status}}</td>
<td>{{if not .Revoked}}<form method="post" action="/devices/{{.ID}}/revoke"><input type="hidden" name="csrf" value="{{$.CSRF}}"><button>{{$.T.Revoke}}</button></form>{{end}}</td></tr>{{end}}
</tbody></table>
{{template "bottom" .}}{{end}}

{{define "login"}}{{template "top" .}}
<main style="max-width:24rem">
<h1>{{.Title}}</h1>
{{if .Failed}}<p class="risk" role="alert">{{.Failed}}</p>{{end}}
<form method="post" action="/login">
<input type="hidden" name="next" value="{{.Next}}">
<p><label>{{.T.User}}<input name="user" autocomplete="username" required autofocus></label></p>
<p><label>{{.T.Password}}<input name="password" type="password" autocomplete="current-password" required></label></p>
<p><button type="submit">{{.T.Submit}}</button></p>
</form>
<p class="langs">{{range .Langs}}<a href="?lang={{.Tag}}" lang="{{.Tag}}">{{.Name}}</a>{{end}}</p>
</main></body></html>{{end}}

{{define "overview"}}{{template "top" .}}{{template "nav" .}}
<main>
<form class="inline" method="get" action="/">
<label>{{.T.From}}<input type="date" name="from" value="{{.From}}"></label>
<label>{{.T.To}}<input type="date" name="to" value="{{.To}}"></label>
<label>{{.T.Site}}<select name="site"><option value="">{{.T.AllSites}}</option>
{{range .Sites}}<option value="{{.ID}}"{{if .Selected}} selected{{end}}>{{.Name}}</option>{{end}}</select></label>
<button type="submit">{{.T.Apply}}</button>
<a href="/export/indicators.csv?from={{.From}}&amp;to={{.To}}&amp;site={{.SiteID}}" download>{{.T.Export}}</a>
</form>
<section id="figures" aria-live="polite">
<div class="cards">
<div class="card" id="reached"><b><a href="/persons?behind=reached&amp;{{.Query}}">{{.In.Reached.Total}}</a></b><span>{{.T.Reached}}</span></div>
<div class="card"><b><a href="/persons?behind=intake&amp;{{.Query}}">{{.In.Reached.Intake}}</a></b><span>{{.T.Intake}}</span></div>
<div class="card"><b>{{.In.Appointments.Held}}</b><span>{{.T.Held}}</span></div>
<div class="card"><b>{{pct .In.Appointments.NoShowRate}}</b><span>{{.T.NoShow}}</span></div>
<div class="card"><b>{{.In.LessonsHeld}}</b><span>{{.T.Lessons}}</span></div>
<div class="card"><b><a href="/persons?behind=at_risk&amp;{{.Query}}">{{len .In.AtRisk}}</a></b><span>{{.T.AtRisk}}</span></div>
</div>
<p>{{.Conflicts}} · {{.Devices}}</p>
</section>
<section><h2>{{.T.ChartReached}}</h2>{{.ChartReached}}</section>
<section><h2>{{.T.Courses}}</h2>{{.ChartAttendance}}
<table><thead><tr><th>{{.T.Course}}</th><th>{{.T.Level}}</th><th>{{.T.Enrolled}}</th><th>{{.T.Lessons}}</th><th>{{.T.Attendance}}</th><th>{{.T.AtRisk}}</th></tr></thead>
<tbody>{{range .Courses}}<tr><td>{{.Title}}{{if .NextLesson}} · <a href="/lessons/{{.NextLesson}}/register">{{$.T.Register}}</a>{{end}}</td><td>{{.Level}}</td><td>{{.Enrolled}}</td><td>{{.LessonsHeld}}</td><td>{{pct .AttendanceRate}}</td><td{{if .AtRisk}} class="risk"{{end}}>{{.AtRisk}}</td></tr>{{end}}</tbody></table>
</section>
<section><h2>{{.T.AtRiskTitle}}</h2>
{{if .In.AtRisk}}<table><thead><tr><th>{{.T.Person}}</th><th>{{.T.Course}}</th><th>{{.T.Rate}}</th><th>{{.T.CanQualify}}</th></tr></thead>
<tbody>{{range .Risky}}<tr><td>{{.Name}}</td><td>{{.Course}}</td><td class="risk">{{pct .Rate}}</td><td>{{.CanQualify}}</td></tr>{{end}}</tbody></table>
{{else}}<p>{{.T.NoneAtRisk}}</p>{{end}}
</section>
<p class="langs">{{range .Langs}}<a href="?lang={{.Tag}}" lang="{{.Tag}}">{{.Name}}</a>{{end}}</p>
<p><small>{{.T.Live}}</small></p>
</main>
<script>
// Refresh the figures as devices sync: the server says when something changed.
if (window.EventSource) {
  new EventSource("/events").addEventListener("changed", () => {
    fetch(location.href, {credentials: "same-origin"}).then(r => r.text()).then(html => {
      const next = new DOMParser().parseFromString(html, "text/html");
      for (const id of ["figures"]) {
        const el = document.getElementById(id), fresh = next.getElementById(id);
        if (el && fresh) el.replaceWith(fresh);
      }
      document.body.dataset.updated = String(Date.now());
    });
  });
}
</script>
</body></html>{{end}}
`))

// texts returns the labels of a page in the person's language.
func texts(l *i18n.Localizer, ids ...string) map[string]string {
	out := make(map[string]string, len(ids))
	for _, id := range ids {
		var key strings.Builder // web.overview.all_sites → AllSites
		for _, part := range strings.Split(id[strings.LastIndex(id, ".")+1:], "_") {
			key.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
		out[key.String()] = locales.Text(l, id, nil)
	}
	return out
}

type langLink struct{ Tag, Name string }

func langLinks() []langLink {
	var out []langLink
	for _, t := range locales.Tags() {
		out = append(out, langLink{Tag: t.String(), Name: locales.Text(locales.Localizer(t.String()), "locale.name", nil)})
	}
	return out
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, loc *i18n.Localizer, name string, data map[string]any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := pages.ExecuteTemplate(w, name, data); err != nil {
		h.log.Warn("render", "page", name, "err", err)
	}
}

func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	loc, lang := h.localizer(w, r)
	h.showLogin(w, r, loc, lang, "")
}

func (h *Handler) showLogin(w http.ResponseWriter, r *http.Request, loc *i18n.Localizer, lang, failed string) {
	next := safeNext(r.FormValue("next"))
	if failed != "" {
		w.WriteHeader(http.StatusUnauthorized)
	}
	h.render(w, r, loc, "login", map[string]any{"Lang": lang, "Dir": locales.Direction(loc),
		"Title": locales.Text(loc, "web.login.title", nil), "Failed": failed, "Next": next, "Langs": langLinks(),
		"T": texts(loc, "web.login.user", "web.login.password", "web.login.submit")})
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	loc, lang := h.localizer(w, r)
	if !h.sameOrigin(r, "") {
		http.Error(w, statusText(loc, http.StatusForbidden), http.StatusForbidden)
		return
	}
	if !h.logins.Allow(ratelimit.ClientKey(r), h.opts.Now()) {
		http.Error(w, statusText(loc, http.StatusTooManyRequests), http.StatusTooManyRequests)
		return
	}
	cookie, sess, err := h.st.Login(r.Context(), r.FormValue("user"), r.FormValue("password"))
	if errors.Is(err, store.ErrBadLogin) {
		h.log.Info("sign-in refused", "user", r.FormValue("user"), "remote", r.RemoteAddr)
		h.showLogin(w, r, loc, lang, locales.Text(loc, "web.login.failed", nil))
		return
	}
	if err != nil {
		h.fail(w, r, loc, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: cookie, Path: "/", Expires: sess.Expires,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	h.logins.Refund(ratelimit.ClientKey(r), h.opts.Now())
	http.Redirect(w, r, safeNext(r.FormValue("next")), http.StatusSeeOther)
}

func (h *Handler) logout(w http.ResponseWriter, r *request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		if err := h.st.Logout(r.Context(), c.Value); err != nil {
			h.fail(w, r.Request, r.loc, err)
			return
		}
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r.Request, "/login", http.StatusSeeOther)
}

func (h *Handler) overview(w http.ResponseWriter, r *request) {
	ctx := r.Context()
	from, to, site := h.period(r.Request)
	in, err := h.st.ComputeIndicators(ctx, from, to, site, h.opts.Now())
	if err != nil {
		h.fail(w, r.Request, r.loc, err)
		return
	}
	sites, err := h.st.Sites(ctx)
	if err != nil {
		h.fail(w, r.Request, r.loc, err)
		return
	}
	stats, err := h.st.Stats(ctx)
	if err != nil {
		h.fail(w, r.Request, r.loc, err)
		return
	}
	type siteOption struct {
		ID, Name string
		Selected bool
	}
	options := make([]siteOption, len(sites))
	for i, s := range sites {
		options[i] = siteOption{ID: s.ID, Name: s.Name, Selected: s.ID == site}
	}
	type courseRow struct {
		store.CourseFigures
		Title      string
		NextLesson string // the lesson whose register to open: the last held
	}
	courses := make([]courseRow, len(in.Courses))
	titleOf := map[string]string{}
	for i, c := range in.Courses {
		courses[i] = courseRow{CourseFigures: c, Title: titleIn(c.Title, r.lang), NextLesson: c.LastLesson}
		titleOf[c.ID] = courses[i].Title
	}
	type riskRow struct {
		Name, Course, CanQualify string
		Rate                     float64
	}
	risky := make([]riskRow, len(in.AtRisk))
	for i, a := range in.AtRisk {
		can := locales.Text(r.loc, "web.yes", nil)
		if !a.CanQualify {
			can = locales.Text(r.loc, "web.no", nil)
		}
		risky[i] = riskRow{Name: strings.TrimSpace(a.GivenName + " " + a.FamilyName), Course: titleOf[a.CourseID], Rate: a.Rate, CanQualify: can}
	}
	bars := []bar{
		{Label: locales.Text(r.loc, "web.overview.intake", nil), Value: float64(in.Reached.Intake), Text: fmt.Sprint(in.Reached.Intake)},
		{Label: locales.Text(r.loc, "web.overview.held", nil), Value: float64(in.Reached.Appointments), Text: fmt.Sprint(in.Reached.Appointments)},
		{Label: locales.Text(r.loc, "web.overview.attended", nil), Value: float64(in.Reached.Courses), Text: fmt.Sprint(in.Reached.Courses)},
	}
	var attendance []bar
	for _, c := range courses {
		attendance = append(attendance, bar{Label: c.Title, Value: c.AttendanceRate, Max: 1,
			Text: fmt.Sprintf("%d%%", int(math.Round(c.AttendanceRate*100)))})
	}
	h.page(w, r, "overview", "web.overview.title", map[string]any{
		"Sites": options, "In": in, "Courses": courses, "Risky": risky, "SiteID": site,
		"Query": template.URL(url.Values{"from": {from.Format(time.DateOnly)}, "to": {to.AddDate(0, 0, -1).Format(time.DateOnly)},
			"site": {site}}.Encode()),
		"From": from.Format(time.DateOnly), "To": to.AddDate(0, 0, -1).Format(time.DateOnly),
		"Conflicts":       locales.Plural(r.loc, "page.status.conflicts", stats.Conflicts, nil),
		"Devices":         locales.Plural(r.loc, "page.status.devices", stats.Devices, map[string]any{"Live": h.opts.Live()}),
		"ChartReached":    barChart(bars, r.lang),
		"ChartAttendance": barChart(attendance, r.lang),
		"T": texts(r.loc, "web.overview.from", "web.overview.to", "web.overview.site", "web.overview.all_sites",
			"web.overview.apply", "web.overview.reached", "web.overview.intake", "web.overview.held", "web.overview.no_show",
			"web.overview.lessons", "web.overview.at_risk", "web.overview.chart_reached", "web.overview.courses",
			"web.overview.course", "web.overview.level", "web.overview.enrolled", "web.overview.attendance",
			"web.overview.at_risk_title", "web.overview.person", "web.overview.rate", "web.overview.can_qualify",
			"web.overview.none_at_risk", "web.overview.live", "web.overview.export", "web.overview.register"),
	})
}

// titleIn picks a course title in lang, else Italian, else English, else any.
func titleIn(titles map[string]string, lang string) string {
	for _, l := range []string{lang, "it", "en"} {
		if t, ok := titles[l]; ok {
			return t
		}
	}
	for _, t := range titles {
		return t
	}
	return ""
}
