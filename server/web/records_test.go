package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ponte-project/ponte/client"
	"github.com/ponte-project/ponte/records"
	"github.com/ponte-project/ponte/server/store"
)

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no CSRF token on the page")
	}
	return m[1]
}

// TestWeb_ResolveConflict: a coordinator picks the losing value of a
// conflict; it is a normal write that reaches a syncing device.
func TestWeb_ResolveConflict(t *testing.T) {
	srv, logins := startDemo(t)
	ctx := context.Background()
	c := signIn(t, srv, logins.Coordinator, logins.Password)
	_, page := get(t, c, srv.URL()+"/conflicts")
	open, _ := srv.Store.Conflicts(ctx, 0, 100, true)
	if len(open) < 6 || !strings.Contains(page, `id="conflict-`+strconv.FormatInt(open[0].ID, 10)+`"`) {
		t.Fatalf("%d open conflicts, page:\n%.1500s", len(open), page)
	}
	cf := open[0]
	tablet := srv.MustOpenClient("coordinatrice", client.Options{Schema: records.Schema})
	if err := tablet.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// A value the schema refuses is refused, with the reason, and the
	// conflict stays open.
	resp, _ := post(t, c, srv.URL()+"/conflicts/"+strconv.FormatInt(cf.ID, 10),
		url.Values{"csrf": {csrfOf(t, page)}, "choice": {"value"}, "value": {"not a phone"}}, srv.URL())
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.Contains(loc, "error=") {
		t.Fatalf("an invalid value: %d → %s", resp.StatusCode, loc)
	}
	if _, page := get(t, c, srv.URL()+resp.Header.Get("Location")); !strings.Contains(page, "phone") {
		t.Error("the refusal does not name the field")
	}
	resp, _ = post(t, c, srv.URL()+"/conflicts/"+strconv.FormatInt(cf.ID, 10),
		url.Values{"csrf": {csrfOf(t, page)}, "choice": {"other"}}, srv.URL())
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("resolve: %d", resp.StatusCode)
	}
	got, _ := srv.Store.Conflict(ctx, cf.ID)
	if !got.Resolved {
		t.Error("the conflict is still open")
	}
	rec, _, _ := srv.Store.Get(ctx, cf.Collection, cf.Record)
	if string(rec.Data[cf.Conflict.Field]) != string(cf.Conflict.Loser.Value) {
		t.Errorf("%s = %s, want the chosen %s", cf.Conflict.Field, rec.Data[cf.Conflict.Field], cf.Conflict.Loser.Value)
	}
	if err := tablet.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	f, err := tablet.Get(ctx, cf.Collection, cf.Record)
	if err != nil || string(f[cf.Conflict.Field]) != string(cf.Conflict.Loser.Value) {
		t.Errorf("the decision did not reach the device: %s (%v)", f[cf.Conflict.Field], err)
	}
	h, _ := srv.Store.History(ctx, cf.Collection, cf.Record)
	if last := h[len(h)-1]; last.User != logins.Coordinator || last.Device != "web" {
		t.Errorf("the decision is not attributed: %+v", last)
	}

	// The JSON API: the same queue, and decisions need the CSRF token.
	_, body := get(t, c, srv.URL()+"/api/conflicts")
	var rows []map[string]any
	if err := json.Unmarshal([]byte(body), &rows); err != nil || len(rows) != len(open)-1 {
		t.Fatalf("API conflicts: %d rows (%v), want %d", len(rows), err, len(open)-1)
	}
	next := strconv.FormatInt(open[1].ID, 10)
	req, _ := http.NewRequest("POST", srv.URL()+"/api/conflicts/"+next, strings.NewReader(`{"choice":"current"}`))
	if resp, err := c.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("API decision without the CSRF token: %v %v", resp.StatusCode, err)
	}
	req, _ = http.NewRequest("POST", srv.URL()+"/api/conflicts/"+next, strings.NewReader(`{"choice":"current"}`))
	req.Header.Set("X-CSRF-Token", csrfOf(t, page))
	if resp, err := c.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("API decision: %v %v", resp.StatusCode, err)
	}
}

func TestWeb_PersonsHistoryAndExports(t *testing.T) {
	srv, logins := startDemo(t)
	ctx := context.Background()
	c := signIn(t, srv, logins.Coordinator, logins.Password)
	all, _ := srv.Store.SearchPersons(ctx, "", "", 1000)
	if len(all) != 300 {
		t.Fatalf("%d persons", len(all))
	}
	p := all[0]
	// Search ignores case in every script.
	_, page := get(t, c, srv.URL()+"/persons?q="+url.QueryEscape(strings.ToUpper(p.GivenName)))
	if !strings.Contains(page, "/persons/"+p.ID) {
		t.Errorf("searching %q in capitals did not find %s", p.GivenName, p.ID)
	}
	_, page = get(t, c, srv.URL()+"/persons/"+p.ID)
	h, _ := srv.Store.History(ctx, records.Persons, p.ID)
	if !strings.Contains(page, h[0].User) || !strings.Contains(page, h[0].Device) {
		t.Errorf("the person's page lacks who wrote it from which device")
	}
	// CSV for spreadsheets: UTF-8 with a byte-order mark, one line per person.
	resp, csvBody := get(t, c, srv.URL()+"/export/persons.csv")
	if !strings.HasPrefix(csvBody, "\ufeffid,site_id,given_name") || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" {
		t.Errorf("persons.csv starts %q", csvBody[:min(40, len(csvBody))])
	}
	if n := strings.Count(strings.TrimSpace(csvBody), "\n") + 1; n < 301 {
		t.Errorf("persons.csv has %d lines, want a header and 300 persons", n)
	}
	_, ind := get(t, c, srv.URL()+"/export/indicators.csv?lang=it")
	if !strings.HasPrefix(ind, "\ufeff") || !strings.Contains(ind, "Italiano") {
		t.Errorf("indicators.csv: %.300q", ind)
	}
	in, _ := srv.Store.ComputeIndicators(ctx, time.Now().AddDate(0, 0, -60), time.Now().AddDate(0, 0, 1), "", time.Now())
	lesson := in.Courses[0].LastLesson
	_, reg := get(t, c, srv.URL()+"/lessons/"+lesson+"/register.csv")
	if n := strings.Count(strings.TrimSpace(reg), "\n"); !strings.HasPrefix(reg, "\ufeffperson_id") || n != 20 {
		t.Errorf("register.csv: %d lines\n%.300s", n, reg)
	}
	_, regPage := get(t, c, srv.URL()+"/lessons/"+lesson+"/register")
	if strings.Count(regPage, `<a href="/persons/`) != 20 {
		t.Error("the register page does not list the 20 enrolled")
	}
}

func TestWeb_DevicesAndRoles(t *testing.T) {
	srv, logins := startDemo(t)
	ctx := context.Background()
	admin := signIn(t, srv, logins.Admin, logins.Password)
	// An admin manages devices, and sees no one's records.
	if resp, _ := get(t, admin, srv.URL()+"/persons"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("admin on /persons: %d, want 403", resp.StatusCode)
	}
	if resp, _ := get(t, admin, srv.URL()+"/api/persons"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("admin on /api/persons: %d, want 403", resp.StatusCode)
	}
	tablet := srv.MustOpenClient("giulia", client.Options{Schema: records.Schema})
	if err := tablet.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	_, page := get(t, admin, srv.URL()+"/devices")
	ds, _ := srv.Store.Devices(ctx)
	target := ds[len(ds)-1] // giulia's new tablet
	if !strings.Contains(page, target.ID) {
		t.Fatalf("devices page lacks %s", target.ID)
	}
	post(t, admin, srv.URL()+"/devices/"+target.ID+"/revoke", url.Values{"csrf": {csrfOf(t, page)}}, srv.URL())
	ds, _ = srv.Store.Devices(ctx)
	if ds[len(ds)-1].Revoked == nil {
		t.Error("the device was not revoked")
	}
	if err := tablet.Sync(ctx); err == nil {
		t.Error("a revoked tablet still syncs")
	}
}

// TestWeb_Defences covers what review found: redirects after sign-in stay
// on this server, an admin sees no figures about persons, a new password
// ends old sessions, guessing passwords is bounded, CSV cells cannot be
// formulas, and a conflict decided on a value that changed since is refused.
func TestWeb_Defences(t *testing.T) {
	srv, logins := startDemo(t)
	ctx := context.Background()
	for _, next := range []string{`/\evil.example`, "//evil.example", "https://evil.example/", "/\t/evil.example"} {
		c := httpBrowser(t)
		resp, _ := post(t, c, srv.URL()+"/login", url.Values{"user": {logins.Coordinator}, "password": {logins.Password}, "next": {next}}, srv.URL())
		if loc := resp.Header.Get("Location"); loc != "/" {
			t.Errorf("next=%q sent the browser to %q, want /", next, loc)
		}
	}
	admin := signIn(t, srv, logins.Admin, logins.Password)
	if resp, _ := get(t, admin, srv.URL()+"/"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/devices" {
		t.Errorf("admin on /: %d → %s, want the devices page", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := get(t, admin, srv.URL()+"/api/indicators"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("admin on /api/indicators: %d, want 403", resp.StatusCode)
	}
	// A new password ends the sessions the old one opened.
	coord := signIn(t, srv, logins.Coordinator, logins.Password)
	if err := srv.Store.SetPassword(ctx, logins.Coordinator, "a brand new password"); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, coord, srv.URL()+"/"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("a session of the old password still works: %d", resp.StatusCode)
	}
	coord = signIn(t, srv, logins.Coordinator, "a brand new password")
	// A formula typed on a device stays text in a spreadsheet.
	tablet := srv.MustOpenClient("coordinatrice", client.Options{Schema: records.Schema})
	if err := tablet.Put(ctx, records.Persons, "0f8fad5b-d9cb-469f-a165-70867728950e", map[string]any{
		"site_id": firstSite(t, srv)[0], "given_name": "=HYPERLINK(\"http://evil.example\")"}); err != nil {
		t.Fatal(err)
	}
	if err := tablet.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, body := get(t, coord, srv.URL()+"/export/persons.csv?q=hyperlink"); !strings.Contains(body, `"'=HYPERLINK(`) {
		t.Errorf("a formula in a name reached the CSV as a formula:\n%s", body)
	}
	// A conflict whose field changed since is not decided blind.
	open, _ := srv.Store.Conflicts(ctx, 0, 100, true)
	cf := open[0]
	if err := tablet.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tablet.Put(ctx, cf.Collection, cf.Record, map[string]any{cf.Conflict.Field: "+390000000000"}); err != nil {
		t.Fatal(err)
	}
	if err := tablet.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := srv.Store.ResolveConflict(ctx, cf.ID, "coordinatrice", store.UseOther, nil); !errors.Is(err, store.ErrStale) {
		t.Errorf("deciding on a changed field: %v, want ErrStale", err)
	}
	// Guessing passwords from one address is cut short.
	guesser := httpBrowser(t)
	var last int
	for range 15 {
		resp, _ := post(t, guesser, srv.URL()+"/login", url.Values{"user": {"admin"}, "password": {"guess"}}, srv.URL())
		last = resp.StatusCode
	}
	if last != http.StatusTooManyRequests {
		t.Errorf("the 15th wrong password answered %d, want 429", last)
	}
}
