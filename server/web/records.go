package web

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ponte-project/ponte/locales"
	"github.com/ponte-project/ponte/records"
	"github.com/ponte-project/ponte/server/scope"
	"github.com/ponte-project/ponte/server/store"
	"github.com/ponte-project/ponte/syncproto"
)

// routes of the record, conflict, device and export pages, added by New.
func (h *Handler) recordRoutes() {
	coord := func(f func(http.ResponseWriter, *request)) http.HandlerFunc {
		return h.signedIn(h.role(f, scope.Coordinator))
	}
	staff := func(f func(http.ResponseWriter, *request)) http.HandlerFunc {
		return h.signedIn(h.role(f, scope.Coordinator, scope.Admin))
	}
	h.mux.HandleFunc("GET /persons", coord(h.personsPage))
	h.mux.HandleFunc("GET /persons/{id}", coord(h.personPage))
	h.mux.HandleFunc("GET /lessons/{id}/register", coord(h.registerPage))
	h.mux.HandleFunc("GET /conflicts", coord(h.conflictsPage))
	h.mux.HandleFunc("POST /conflicts/{id}", coord(h.resolve))
	h.mux.HandleFunc("GET /devices", staff(h.devicesPage))
	h.mux.HandleFunc("POST /devices/{id}/revoke", staff(h.revoke))
	h.mux.HandleFunc("GET /export/indicators.csv", coord(h.exportIndicators))
	h.mux.HandleFunc("GET /export/persons.csv", coord(h.exportPersons))
	h.mux.HandleFunc("GET /lessons/{id}/register.csv", coord(h.exportRegister))

	api := func(f func(http.ResponseWriter, *request), roles ...scope.Role) http.HandlerFunc {
		return h.api(h.role(f, roles...))
	}
	h.mux.HandleFunc("GET /api/persons", api(h.apiPersons, scope.Coordinator))
	h.mux.HandleFunc("GET /api/persons/{id}", api(h.apiPerson, scope.Coordinator))
	h.mux.HandleFunc("GET /api/lessons/{id}/register", api(h.apiRegister, scope.Coordinator))
	h.mux.HandleFunc("GET /api/conflicts", api(h.apiConflicts, scope.Coordinator))
	h.mux.HandleFunc("POST /api/conflicts/{id}", api(h.apiResolve, scope.Coordinator))
	h.mux.HandleFunc("GET /api/devices", api(h.apiDevices, scope.Coordinator, scope.Admin))
}

// role lets through only users with one of roles; others get 403.
func (h *Handler) role(next func(http.ResponseWriter, *request), roles ...scope.Role) func(http.ResponseWriter, *request) {
	return func(w http.ResponseWriter, r *request) {
		if !slices.Contains(roles, r.session.User.Role) {
			h.refuse(w, r, http.StatusForbidden, syncproto.CodeForbidden)
			return
		}
		next(w, r)
	}
}

// codeNotFound is the API's error code for an unknown page or record.
const codeNotFound syncproto.Code = "not_found"

// refuse answers an error: JSON for the API (with code for programs),
// text for pages; the message explains status to a person at a browser.
func (h *Handler) refuse(w http.ResponseWriter, r *request, status int, code syncproto.Code) {
	msg := statusText(r.loc, status)
	if strings.HasPrefix(r.URL.Path, "/api/") {
		writeJSON(w, status, map[string]any{"error": map[string]string{"code": string(code), "message": msg}})
		return
	}
	http.Error(w, msg, status)
}

// page renders a page inside the common frame with its navigation.
func (h *Handler) page(w http.ResponseWriter, r *request, name, titleID string, data map[string]any) {
	data["Lang"], data["Dir"] = r.lang, locales.Direction(r.loc)
	data["Title"] = locales.Text(r.loc, titleID, nil)
	data["User"], data["CSRF"] = r.session.User.Name, r.session.CSRF
	data["Nav"] = texts(r.loc, "web.overview.title", "web.persons.title", "web.conflicts.title", "web.devices.title", "web.logout")
	data["Langs"] = langLinks()
	h.render(w, r.Request, r.loc, name, data)
}

func (h *Handler) personsPage(w http.ResponseWriter, r *request) {
	q, site := r.URL.Query().Get("q"), r.URL.Query().Get("site")
	var persons []store.PersonRow
	var err error
	if behind := r.URL.Query().Get("behind"); behind != "" {
		// The persons behind a figure of the overview, for its period and site.
		from, to, site := h.period(r.Request)
		var in *store.Indicators
		if in, err = h.st.ComputeIndicators(r.Context(), from, to, site, h.opts.Now()); err == nil {
			persons, err = h.st.PersonsByID(r.Context(), in.Behind[behind])
		}
	} else {
		persons, err = h.st.SearchPersons(r.Context(), q, site, 200)
	}
	if err != nil {
		h.fail(w, r.Request, r.loc, err)
		return
	}
	h.page(w, r, "persons", "web.persons.title", map[string]any{"Q": q, "Site": site, "Persons": persons,
		"T": texts(r.loc, "web.persons.search", "web.persons.name", "web.persons.latin", "web.persons.nationality",
			"web.persons.none", "web.persons.export")})
}

// shown is one field of a record as a page shows it.
type shown struct{ Field, Value string }

func fieldsOf(data map[string]json.RawMessage) []shown {
	var out []shown
	for _, f := range slices.Sorted(maps.Keys(data)) {
		var s string
		if json.Unmarshal(data[f], &s) != nil {
			s = string(data[f])
		}
		out = append(out, shown{f, s})
	}
	return out
}

func (h *Handler) personPage(w http.ResponseWriter, r *request) {
	id := r.PathValue("id")
	rec, seq, err := h.st.Get(r.Context(), records.Persons, id)
	if err != nil {
		h.fail(w, r.Request, r.loc, err)
		return
	}
	if seq == 0 {
		h.refuse(w, r, http.StatusNotFound, codeNotFound)
		return
	}
	history, err := h.st.History(r.Context(), records.Persons, id)
	if err != nil {
		h.fail(w, r.Request, r.loc, err)
		return
	}
	h.page(w, r, "person", "web.person.title", map[string]any{"ID": id, "Fields": fieldsOf(rec.Data), "History": history,
		"Deleted": !rec.Exists(), "T": texts(r.loc, "web.person.fields", "web.person.history", "web.person.when",
			"web.person.who", "web.person.device", "web.person.what", "web.person.deleted")})
}

func (h *Handler) registerPage(w http.ResponseWriter, r *request) {
	lesson, lines, err := h.st.Register(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		h.refuse(w, r, http.StatusNotFound, codeNotFound)
		return
	}
	if err != nil {
		h.fail(w, r.Request, r.loc, err)
		return
	}
	h.page(w, r, "register", "web.register.title", map[string]any{"ID": r.PathValue("id"), "Lesson": lesson, "Lines": lines,
		"T": texts(r.loc, "web.persons.name", "web.register.mark", "web.register.marked_by", "web.persons.export")})
}

// conflictRow is a conflict as the queue shows it.
type conflictRow struct {
	store.ConflictRecord
	Current, Other         string
	CurrentBy, OtherBy     store.Author
	CurrentWhen, OtherWhen string
	CanUseOther            bool
}

func (h *Handler) conflictRows(r *request) ([]conflictRow, error) {
	cs, err := h.st.Conflicts(r.Context(), 0, 500, true)
	if err != nil {
		return nil, err
	}
	out := make([]conflictRow, len(cs))
	for i, c := range cs {
		row := conflictRow{ConflictRecord: c, Current: valueText(c.Conflict.Winner), Other: valueText(c.Conflict.Loser),
			CurrentWhen: c.Conflict.Winner.Stamp.Time().UTC().Format("2006-01-02 15:04"),
			OtherWhen:   c.Conflict.Loser.Stamp.Time().UTC().Format("2006-01-02 15:04"),
			CanUseOther: !c.Conflict.Loser.Deleted && c.Conflict.Loser.Value != nil}
		if row.CurrentBy, err = h.st.AuthorOf(r.Context(), c.Conflict.Winner.Stamp); err != nil {
			return nil, err
		}
		if row.OtherBy, err = h.st.AuthorOf(r.Context(), c.Conflict.Loser.Stamp); err != nil {
			return nil, err
		}
		out[i] = row
	}
	return out, nil
}

func valueText(v syncproto.Version) string {
	if v.Deleted {
		return "—"
	}
	var s string
	if json.Unmarshal(v.Value, &s) == nil {
		return s
	}
	return string(v.Value)
}

func (h *Handler) conflictsPage(w http.ResponseWriter, r *request) {
	rows, err := h.conflictRows(r)
	if err != nil {
		h.fail(w, r.Request, r.loc, err)
		return
	}
	h.page(w, r, "conflicts", "web.conflicts.title", map[string]any{"Conflicts": rows, "Error": r.URL.Query().Get("error"),
		"T": texts(r.loc, "web.conflicts.record", "web.conflicts.field", "web.conflicts.current", "web.conflicts.other",
			"web.conflicts.keep", "web.conflicts.use_other", "web.conflicts.use_value", "web.conflicts.none", "web.person.who")})
}

// decision reads a conflict decision from a form or a JSON body.
func decision(r *request) (choice string, value json.RawMessage) {
	choice = r.FormValue("choice")
	if choice == store.UseValue {
		v := strings.TrimSpace(r.FormValue("value"))
		if json.Valid([]byte(v)) {
			return choice, json.RawMessage(v) // a number, list, true, null…
		}
		b, _ := json.Marshal(v) // anything else typed in the box is text
		return choice, b
	}
	return choice, nil
}

func (h *Handler) resolve(w http.ResponseWriter, r *request) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	choice, value := decision(r)
	err := h.st.ResolveConflict(r.Context(), id, r.session.User.Name, choice, value)
	if errors.Is(err, store.ErrStale) {
		http.Redirect(w, r.Request, "/conflicts?error="+template.URLQueryEscaper(locales.Text(r.loc, "web.conflicts.stale", nil)),
			http.StatusSeeOther)
		return
	}
	if err != nil && !errors.Is(err, store.ErrResolved) {
		text := locales.ExplainError(r.loc, err)
		if text == "" {
			h.fail(w, r.Request, r.loc, err)
			return
		}
		http.Redirect(w, r.Request, "/conflicts?error="+template.URLQueryEscaper(text), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r.Request, "/conflicts", http.StatusSeeOther)
}

func (h *Handler) devicesPage(w http.ResponseWriter, r *request) {
	ds, err := h.st.Devices(r.Context())
	if err != nil {
		h.fail(w, r.Request, r.loc, err)
		return
	}
	live := map[string]bool{}
	if h.opts.LiveDevices != nil {
		for _, id := range h.opts.LiveDevices() {
			live[id] = true
		}
	}
	type deviceRow struct {
		store.Device
		Online           bool
		LastSeen, Status string
	}
	rows := make([]deviceRow, len(ds))
	for i, d := range ds {
		rows[i] = deviceRow{Device: d, Online: live[d.ID], LastSeen: "—", Status: locales.Text(r.loc, "web.devices.active", nil)}
		if d.LastSeen != nil {
			rows[i].LastSeen = d.LastSeen.Format("2006-01-02 15:04")
		}
		if d.Revoked != nil {
			rows[i].Status = locales.Text(r.loc, "web.devices.revoked", nil)
		}
	}
	h.page(w, r, "devices", "web.devices.title", map[string]any{"Devices": rows,
		"T": texts(r.loc, "web.devices.device", "web.person.who", "web.devices.online", "web.devices.last_seen",
			"web.devices.pending", "web.devices.rejected", "web.devices.status", "web.devices.revoke", "web.yes", "web.no")})
}

func (h *Handler) revoke(w http.ResponseWriter, r *request) {
	if err := h.st.RevokeDevice(r.Context(), r.PathValue("id")); err != nil && !errors.Is(err, store.ErrNotFound) {
		h.fail(w, r.Request, r.loc, err)
		return
	}
	http.Redirect(w, r.Request, "/devices", http.StatusSeeOther)
}

// csvFile starts a CSV download: UTF-8 with a byte-order mark, which
// spreadsheet programs need to read the names in their own scripts.
func csvFile(w http.ResponseWriter, name string) *csv.Writer {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Write([]byte("\ufeff"))
	return csv.NewWriter(w)
}

func (h *Handler) exportIndicators(w http.ResponseWriter, r *request) {
	from, to, site := h.period(r.Request)
	in, err := h.st.ComputeIndicators(r.Context(), from, to, site, h.opts.Now())
	if err != nil {
		h.fail(w, r.Request, r.loc, err)
		return
	}
	cw := csvFile(w, "ponte-indicators-"+from.Format(time.DateOnly)+".csv")
	t := func(id string) string { return locales.Text(r.loc, id, nil) }
	pct := func(f float64) string { return strconv.FormatFloat(math.Round(f*1000)/10, 'f', -1, 64) }
	cw.Write([]string{t("web.overview.from"), from.Format(time.DateOnly), t("web.overview.to"), to.AddDate(0, 0, -1).Format(time.DateOnly)})
	for _, row := range [][]string{
		{t("web.overview.reached"), strconv.Itoa(in.Reached.Total)},
		{t("web.overview.intake"), strconv.Itoa(in.Reached.Intake)},
		{t("web.overview.held"), strconv.Itoa(in.Reached.Appointments)},
		{t("web.overview.attended"), strconv.Itoa(in.Reached.Courses)},
		{t("web.overview.no_show") + " %", pct(in.Appointments.NoShowRate)},
		{t("web.overview.lessons"), strconv.Itoa(in.LessonsHeld)},
		{t("web.overview.at_risk"), strconv.Itoa(len(in.AtRisk))},
	} {
		cw.Write(row)
	}
	cw.Write(nil)
	cw.Write([]string{t("web.overview.course"), t("web.overview.level"), t("web.overview.enrolled"), t("web.overview.lessons"),
		t("web.overview.attendance") + " %", t("web.overview.at_risk")})
	for _, c := range in.Courses {
		cw.Write(csvRow(titleIn(c.Title, r.lang), c.Level, strconv.Itoa(c.Enrolled), strconv.Itoa(c.LessonsHeld),
			pct(c.AttendanceRate), strconv.Itoa(c.AtRisk)))
	}
	cw.Flush()
}

func (h *Handler) exportPersons(w http.ResponseWriter, r *request) {
	persons, err := h.st.SearchPersons(r.Context(), r.URL.Query().Get("q"), r.URL.Query().Get("site"), math.MaxInt32)
	if err != nil {
		h.fail(w, r.Request, r.loc, err)
		return
	}
	cw := csvFile(w, "ponte-persons.csv")
	header := append([]string{"id"}, records.Fields(records.Persons)...)
	cw.Write(header)
	for _, p := range persons {
		b, _ := json.Marshal(p.Person)
		var m map[string]any
		json.Unmarshal(b, &m)
		row := []string{p.ID}
		for _, f := range header[1:] {
			row = append(row, csvValue(m[f]))
		}
		cw.Write(csvRow(row...))
	}
	cw.Flush()
}

// csvCell keeps a spreadsheet from reading a cell typed on a device as a
// formula (=, +, -, @ first): it is quoted with a leading apostrophe.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// csvRow applies csvCell to every cell.
func csvRow(cells ...string) []string {
	for i, c := range cells {
		cells[i] = csvCell(c)
	}
	return cells
}

func csvValue(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case []any:
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = csvValue(x)
		}
		return strings.Join(parts, " ")
	default:
		return fmt.Sprint(v)
	}
}

func (h *Handler) exportRegister(w http.ResponseWriter, r *request) {
	lesson, lines, err := h.st.Register(r.Context(), r.PathValue("id"))
	if err != nil {
		h.refuse(w, r, http.StatusNotFound, codeNotFound)
		return
	}
	cw := csvFile(w, "ponte-register-"+strings.ReplaceAll(lesson.Start, ":", "")+".csv")
	cw.Write([]string{"person_id", "given_name", "family_name", "mark", "marked_by"})
	for _, l := range lines {
		cw.Write(csvRow(l.PersonID, l.GivenName, l.FamilyName, l.Mark, l.MarkedBy))
	}
	cw.Flush()
}

func (h *Handler) apiPersons(w http.ResponseWriter, r *request) {
	persons, err := h.st.SearchPersons(r.Context(), r.URL.Query().Get("q"), r.URL.Query().Get("site"), 500)
	h.answer(w, r, persons, err)
}

func (h *Handler) apiPerson(w http.ResponseWriter, r *request) {
	id := r.PathValue("id")
	rec, seq, err := h.st.Get(r.Context(), records.Persons, id)
	if err == nil && seq == 0 {
		h.refuse(w, r, http.StatusNotFound, codeNotFound)
		return
	}
	var history []store.Write
	if err == nil {
		history, err = h.st.History(r.Context(), records.Persons, id)
	}
	h.answer(w, r, map[string]any{"id": id, "fields": rec.Data, "deleted": !rec.Exists(), "history": history}, err)
}

func (h *Handler) apiRegister(w http.ResponseWriter, r *request) {
	lesson, lines, err := h.st.Register(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		h.refuse(w, r, http.StatusNotFound, codeNotFound)
		return
	}
	h.answer(w, r, map[string]any{"lesson": lesson, "register": lines}, err)
}

func (h *Handler) apiConflicts(w http.ResponseWriter, r *request) {
	rows, err := h.conflictRows(r)
	h.answer(w, r, rows, err)
}

// apiResolve takes {"choice": "current"|"other"|"value", "value": json}
// with the session's CSRF token in the X-CSRF-Token header.
func (h *Handler) apiResolve(w http.ResponseWriter, r *request) {
	if !fromHere(r.Request) || !tokenMatches(r.Header.Get("X-CSRF-Token"), r.session.CSRF) {
		h.refuse(w, r, http.StatusForbidden, syncproto.CodeForbidden)
		return
	}
	var body struct {
		Choice string          `json:"choice"`
		Value  json.RawMessage `json:"value"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&body); err != nil {
		h.refuse(w, r, http.StatusBadRequest, syncproto.CodeBadMessage)
		return
	}
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	err := h.st.ResolveConflict(r.Context(), id, r.session.User.Name, body.Choice, body.Value)
	var pe *syncproto.Error
	switch {
	case errors.Is(err, store.ErrNotFound):
		h.refuse(w, r, http.StatusNotFound, codeNotFound)
	case errors.Is(err, store.ErrStale):
		writeJSON(w, http.StatusConflict, map[string]any{"error": map[string]string{"code": "stale",
			"message": locales.Text(r.loc, "web.conflicts.stale", nil)}})
	case errors.Is(err, store.ErrResolved):
		writeJSON(w, http.StatusConflict, map[string]any{"error": map[string]string{"code": "resolved", "message": err.Error()}})
	case errors.As(err, &pe):
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": map[string]any{"code": pe.Code,
			"message": locales.Explain(r.loc, pe.Code, pe.Fields), "fields": pe.Fields}})
	default:
		h.answer(w, r, map[string]bool{"resolved": true}, err)
	}
}

func (h *Handler) apiDevices(w http.ResponseWriter, r *request) {
	ds, err := h.st.Devices(r.Context())
	h.answer(w, r, ds, err)
}

// answer writes v as JSON, or the internal error.
func (h *Handler) answer(w http.ResponseWriter, r *request, v any, err error) {
	if err != nil {
		h.log.Error("api", "path", r.URL.Path, "err", err)
		h.refuse(w, r, http.StatusInternalServerError, syncproto.CodeInternal)
		return
	}
	writeJSON(w, http.StatusOK, v)
}
