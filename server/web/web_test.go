package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ponte-project/ponte/client"
	"github.com/ponte-project/ponte/internal/demo"
	"github.com/ponte-project/ponte/internal/testenv"
	"github.com/ponte-project/ponte/records"
	"github.com/ponte-project/ponte/server"
	"github.com/ponte-project/ponte/server/scope"
	"github.com/ponte-project/ponte/server/store"
)

// startDemo starts a real server holding the demo programme.
func startDemo(t *testing.T) (*testenv.Server, demo.Logins) {
	t.Helper()
	srv := testenv.MustStartServerAt(t, filepath.Join(t.TempDir(), "s.db"), server.Config{Schema: records.Schema})
	logins, err := demo.Populate(context.Background(), srv.Store, 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return srv, logins
}

// httpBrowser is an HTTP client with cookies that does not follow redirects.
func httpBrowser(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func post(t *testing.T, c *http.Client, u string, form url.Values, origin string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func signIn(t *testing.T, srv *testenv.Server, user, password string) *http.Client {
	t.Helper()
	c := httpBrowser(t)
	resp, _ := post(t, c, srv.URL()+"/login", url.Values{"user": {user}, "password": {password}, "next": {"/"}}, srv.URL())
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("sign-in answered %d → %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return c
}

func TestWeb_NothingWithoutSigningIn(t *testing.T) {
	srv, _ := startDemo(t)
	c := httpBrowser(t)
	if resp, _ := get(t, c, srv.URL()+"/"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Errorf("/ without a session: %d → %q, want the sign-in page", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := get(t, c, srv.URL()+"/api/indicators")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `"code":"unauthorized"`) {
		t.Errorf("API without a session: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get(t, c, srv.URL()+"/events"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("/events without a session: %d", resp.StatusCode)
	}
}

func TestWeb_SignIn(t *testing.T) {
	srv, logins := startDemo(t)
	c := httpBrowser(t)
	resp, body := post(t, c, srv.URL()+"/login?lang=it", url.Values{"user": {logins.Coordinator}, "password": {"wrong password"}}, srv.URL())
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `role="alert"`) || !strings.Contains(body, `lang="it"`) {
		t.Errorf("a wrong password: %d\n%s", resp.StatusCode, body)
	}
	// A mediator has a tablet, not the central pages.
	if err := srv.Store.AddUser(context.Background(), store.User{Name: "m", Role: scope.Mediator, Sites: firstSite(t, srv)}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Store.SetPassword(context.Background(), "m", "long enough password"); err == nil {
		t.Error("a mediator was given a web password")
	}
	// Another site's page cannot sign someone in (login CSRF).
	if resp, _ := post(t, c, srv.URL()+"/login", url.Values{"user": {logins.Coordinator}, "password": {logins.Password}},
		"https://evil.example"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin sign-in: %d, want 403", resp.StatusCode)
	}
	c = signIn(t, srv, logins.Coordinator, logins.Password)
	u, _ := url.Parse(srv.URL())
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "ponte_session" && len(ck.Value) < 40 {
			t.Errorf("session cookie %q is too short to be unguessable", ck.Value)
		}
	}
	resp, body = get(t, c, srv.URL()+"/")
	if resp.StatusCode != 200 || !strings.Contains(body, logins.Coordinator) {
		t.Fatalf("overview after sign-in: %d", resp.StatusCode)
	}
	// Signing out needs the session's CSRF token.
	if resp, _ := post(t, c, srv.URL()+"/logout", url.Values{}, srv.URL()); resp.StatusCode != http.StatusForbidden {
		t.Errorf("sign-out without the CSRF token: %d, want 403", resp.StatusCode)
	}
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	if csrf == nil {
		t.Fatal("no CSRF token on the page")
	}
	if resp, _ := post(t, c, srv.URL()+"/logout", url.Values{"csrf": {csrf[1]}}, srv.URL()); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("sign-out: %d", resp.StatusCode)
	}
	if resp, _ := get(t, c, srv.URL()+"/"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after signing out the overview is still served: %d", resp.StatusCode)
	}
}

func firstSite(t *testing.T, srv *testenv.Server) []string {
	sites, err := srv.Store.Sites(context.Background())
	if err != nil || len(sites) == 0 {
		t.Fatalf("sites: %v", err)
	}
	return []string{sites[0].ID}
}

func TestWeb_OverviewAndAPI(t *testing.T) {
	srv, logins := startDemo(t)
	c := signIn(t, srv, logins.Coordinator, logins.Password)
	resp, body := get(t, c, srv.URL()+"/api/indicators")
	if resp.StatusCode != 200 {
		t.Fatalf("API: %d %s", resp.StatusCode, body)
	}
	var in store.Indicators
	if err := json.Unmarshal([]byte(body), &in); err != nil {
		t.Fatal(err)
	}
	if in.Reached.Total == 0 || in.Appointments.Held == 0 || in.LessonsHeld == 0 || len(in.Courses) != 3 {
		t.Errorf("demo indicators look empty: %+v", in)
	}
	if in.Reached.Total < in.Reached.Intake || in.Reached.Total < in.Reached.Appointments || in.Reached.Total < in.Reached.Courses ||
		in.Reached.Total > in.Reached.Intake+in.Reached.Appointments+in.Reached.Courses {
		t.Errorf("distinct persons reached %d do not fit the actions' %+v", in.Reached.Total, in.Reached)
	}
	// The page shows the same figures, in the person's language and direction.
	_, page := get(t, c, srv.URL()+"/?lang=ar")
	if !strings.Contains(page, `lang="ar" dir="rtl"`) || !strings.Contains(page, "<svg") ||
		!strings.Contains(page, `>`+itoa(in.Reached.Total)+`</a></b><span>`) {
		t.Errorf("Arabic overview lacks its direction, charts or figures:\n%.2000s", page)
	}
	if strings.Contains(page, "web.overview") {
		t.Error("a label is missing from the Arabic catalogue")
	}
	// Each count of persons links to the persons behind it.
	link := regexp.MustCompile(`href="(/persons\?behind=intake&amp;[^"]+)"`).FindStringSubmatch(page)
	if link == nil {
		t.Fatal("the intake figure links nowhere")
	}
	_, list := get(t, c, srv.URL()+strings.ReplaceAll(link[1], "&amp;", "&"))
	if n := strings.Count(list, `<a href="/persons/`); n != in.Reached.Intake {
		t.Errorf("the intake figure %d links to %d persons", in.Reached.Intake, n)
	}
	// The choice of language sticks.
	if _, page := get(t, c, srv.URL()+"/"); !strings.Contains(page, `lang="ar"`) {
		t.Error("the language chosen was forgotten")
	}
	// One site's figures.
	site := firstSite(t, srv)[0]
	_, body = get(t, c, srv.URL()+"/api/indicators?site="+site+"&from=2020-01-01&to=2030-12-31")
	var one store.Indicators
	json.Unmarshal([]byte(body), &one)
	if one.Site != site || one.Reached.Intake == 0 || one.Reached.Intake >= 300 {
		t.Errorf("one site's intake: %+v", one.Reached)
	}
}

// TestWeb_LiveUpdates: a page open on the overview is told when a device's
// write commits.
func TestWeb_LiveUpdates(t *testing.T) {
	srv, logins := startDemo(t)
	c := signIn(t, srv, logins.Coordinator, logins.Password)
	c.Timeout = 0
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL()+"/events", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %s", resp.Header.Get("Content-Type"))
	}
	lines := bufio.NewScanner(resp.Body)
	lines.Scan() // retry:
	tablet := srv.MustOpenClient("coordinatrice", clientOptions())
	if err := tablet.Put(ctx, records.Persons, "01a20a3c-7538-7c76-aa09-b9890ccfd6b7", map[string]any{
		"site_id": firstSite(t, srv)[0], "given_name": "Nuova"}); err != nil {
		t.Fatal(err)
	}
	if err := tablet.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for lines.Scan() {
		if lines.Text() == "event: changed" {
			return
		}
	}
	t.Fatalf("no change event: %v", lines.Err())
}

func itoa(n int) string { return strconv.Itoa(n) }

func clientOptions() client.Options { return client.Options{Schema: records.Schema} }
