package web_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ponte-project/ponte/client"
	"github.com/ponte-project/ponte/internal/browser"
	"github.com/ponte-project/ponte/records"
)

// TestBrowser_CentralStaffsDay walks the pages in real headless Chromium:
// sign in, see the overview, switch to Arabic, resolve a conflict and watch
// the value reach a syncing tablet, see the figures change live, download
// a CSV.
func TestBrowser_CentralStaffsDay(t *testing.T) {
	b := browser.Start(t)
	srv, logins := startDemo(t)
	ctx := context.Background()

	b.Navigate(srv.URL() + "/?lang=en")
	b.WaitFor(`location.pathname === "/login"`)
	b.Eval(`document.querySelector('input[name=user]').value = "` + logins.Coordinator + `";
		document.querySelector('input[name=password]').value = "` + logins.Password + `";
		document.querySelector('form button[type=submit]').click(); true`)
	b.WaitFor(`location.pathname === "/" && document.getElementById("reached") !== null`)
	if got := b.String(`document.querySelector("#reached b").textContent`); got == "0" || got == "" {
		t.Errorf("persons reached on the overview: %q", got)
	}
	if n := b.String(`String(document.querySelectorAll("svg rect").length)`); n == "0" {
		t.Error("no chart drawn")
	}

	// Arabic: the page is laid out right to left.
	b.Navigate(srv.URL() + "/?lang=ar")
	if dir := b.String(`getComputedStyle(document.body).direction`); dir != "rtl" {
		t.Errorf("Arabic page direction %q, want rtl", dir)
	}
	if lang := b.String(`document.documentElement.lang`); lang != "ar" {
		t.Errorf("page language %q", lang)
	}
	b.Navigate(srv.URL() + "/?lang=en")

	// A tablet stays live while the coordinator decides a conflict.
	tablet := srv.MustOpenClient(logins.Coordinator, client.Options{Schema: records.Schema})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- tablet.Run(runCtx) }()
	defer func() { stop(); <-done }()
	deadline := time.Now().Add(20 * time.Second)
	for st, _ := tablet.Status(ctx); st.State != client.StateLive; st, _ = tablet.Status(ctx) {
		if time.Now().After(deadline) {
			t.Fatal("the tablet did not go live")
		}
		time.Sleep(20 * time.Millisecond)
	}
	open, _ := srv.Store.Conflicts(ctx, 0, 100, true)
	cf := open[0]
	b.Navigate(srv.URL() + "/conflicts")
	row := "#conflict-" + strconv.FormatInt(cf.ID, 10)
	b.Eval(`document.querySelector("` + row + ` button.use-other").click(); true`)
	b.WaitFor(`location.pathname === "/conflicts" && document.querySelector("` + row + `") === null`)
	want := string(cf.Conflict.Loser.Value)
	for f, _ := tablet.Get(ctx, cf.Collection, cf.Record); string(f[cf.Conflict.Field]) != want; f, _ = tablet.Get(ctx, cf.Collection, cf.Record) {
		if time.Now().After(deadline.Add(10 * time.Second)) {
			t.Fatalf("the decision never reached the live tablet: %s = %s, want %s", cf.Conflict.Field, f[cf.Conflict.Field], want)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The overview refreshes by itself when a device's write commits.
	b.Navigate(srv.URL() + "/")
	time.Sleep(300 * time.Millisecond) // let the page open its event stream
	if err := tablet.Put(ctx, records.Persons, "0f8fad5b-d9cb-469f-a165-70867728950e", map[string]any{
		"site_id": firstSite(t, srv)[0], "given_name": "Nuova", "consent_given": true,
		"consent_date": time.Now().Format(time.DateOnly), "consent_language": "it"}); err != nil {
		t.Fatal(err)
	}
	b.WaitFor(`document.body.dataset.updated !== undefined`)

	// A CSV download, as the browser gets it: UTF-8 with its byte-order mark.
	csv := b.String(`fetch(document.querySelector('a[href^="/export/indicators.csv"]').href, {credentials: "same-origin"})
		.then(r => r.arrayBuffer()).then(buf => Array.from(new Uint8Array(buf).slice(0, 3)).join(",") + "|" + new TextDecoder().decode(buf))`)
	if !strings.HasPrefix(csv, "239,187,191|") || !strings.Contains(csv, "Italian") {
		t.Errorf("indicators.csv in the browser: %q", csv)
	}
}
