package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ponte-project/ponte/records"
	"github.com/ponte-project/ponte/server/store"
)

// ponte runs the program's command line in-process and returns its output.
func ponte(t *testing.T, ctx context.Context, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(ctx, args, &out, &errOut)
	if err != nil {
		t.Logf("ponte %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), err
}

func mustPonte(t *testing.T, args ...string) string {
	t.Helper()
	out, err := ponte(t, context.Background(), args...)
	if err != nil {
		t.Fatalf("ponte %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestCLI_EndToEnd runs `ponte serve`, adds users and devices with `ponte
// admin`, and drives two replicas with `ponte client`, as people would: one
// device with a token, one enrolled with a one-time code.
func TestCLI_EndToEnd(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "ponte.db")
	mustPonte(t, "admin", "user", "add", "--db", db, "--role", "coordinator", "amal")
	mustPonte(t, "admin", "user", "add", "--db", db, "--role", "coordinator", "bruno")
	tokenA := strings.TrimSpace(mustPonte(t, "admin", "token", "--db", db, "--user", "amal"))
	codeB := strings.TrimSpace(mustPonte(t, "admin", "enrol", "--db", db, "--user", "bruno"))
	if !regexp.MustCompile(`^ponte_[A-Za-z0-9_-]{43}$`).MatchString(tokenA) || !regexp.MustCompile(`^[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}$`).MatchString(codeB) {
		t.Fatalf("token %q, code %q", tokenA, codeB)
	}

	addr := freeAddr(t)
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { _, err := ponte(t, ctx, "serve", "--addr", addr, "--db", db); served <- err }()
	defer func() {
		stop()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("serve did not stop after SIGINT's equivalent")
		}
	}()
	server := "ws://" + addr + "/sync"
	for start := time.Now(); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("server did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}

	a := []string{"client", "--replica", filepath.Join(dir, "a.db"), "--server", server, "--token", tokenA}
	b := []string{"client", "--replica", filepath.Join(dir, "b.db"), "--server", server}
	if out := mustPonte(t, append(b, "enrol", codeB)...); !strings.Contains(out, "bruno") {
		t.Fatalf("enrol said %q", out)
	}
	// Offline: every command but sync works without reaching the server.
	const site, p1, p2 = "3f2b8c1e-5d4a-4e1b-9c2d-7a6b5c4d3e2f", "018f3a2b-7c4d-7e5f-8a9b-0c1d2e3f4a5b", "018f3a2b-7c4d-7e5f-8a9b-0c1d2e3f4a5c"
	mustPonte(t, append(a, "put", "persons", p1, `{"site_id":"`+site+`","given_name":"أمينة","family_name":"حداد"}`)...)
	mustPonte(t, append(a, "put", "persons", p2, `{"site_id":"`+site+`","given_name":"Oksana"}`)...)
	mustPonte(t, append(a, "put", "persons", p1, `{"consent_given":true,"consent_date":"2026-11-20","consent_language":"ar","phone":"+393331234567"}`)...)
	want := `{"consent_date":"2026-11-20","consent_given":true,"consent_language":"ar","family_name":"حداد","given_name":"أمينة","phone":"+393331234567","site_id":"` + site + `"}` + "\n"
	if got := mustPonte(t, append(a, "get", "persons", p1)...); got != want {
		t.Fatalf("get = %q, want %q", got, want)
	}
	// A write that breaks the rules is refused in the person's language,
	// naming each field, and nothing is queued.
	for lang, words := range map[string][]string{"it": {"phone", "birth_date", "modifica"}, "ar": {"phone", "birth_date", "ال"}} {
		_, err := ponte(t, context.Background(), append(a, "--lang", lang, "put", "persons", p2, `{"phone":"12","birth_date":"2090-01-01"}`)...)
		for _, w := range words {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("invalid put in %s = %v, want a message with %q", lang, err, w)
			}
		}
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(mustPonte(t, append(a, "status")...)), &st); err != nil || st["pending"] != float64(3) || st["state"] != "offline" {
		t.Fatalf("status before sync = %v (%v)", st, err)
	}
	mustPonte(t, append(a, "sync")...)
	mustPonte(t, append(b, "sync")...)
	lines := strings.Split(strings.TrimSpace(mustPonte(t, append(b, "list", "persons")...)), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"id":"`+p1) || !strings.Contains(lines[1], `"id":"`+p2) {
		t.Fatalf("list on b = %q", lines)
	}
	// Concurrent edits of one field: both converge, the loser is listed.
	mustPonte(t, append(a, "put", "persons", p2, `{"given_name":"Oxana"}`)...)
	time.Sleep(20 * time.Millisecond)
	mustPonte(t, append(b, "put", "persons", p2, `{"given_name":"Оксана"}`)...)
	mustPonte(t, append(b, "sync")...)
	mustPonte(t, append(a, "sync")...)
	mustPonte(t, append(b, "sync")...)
	ga, gb := mustPonte(t, append(a, "get", "persons", p2)...), mustPonte(t, append(b, "get", "persons", p2)...)
	if ga != gb || !strings.Contains(ga, "Оксана") {
		t.Fatalf("replicas hold %q and %q", ga, gb)
	}
	if c := mustPonte(t, append(a, "conflicts")...); !strings.Contains(c, `"loser":{"value":"Oxana"`) {
		t.Fatalf("conflicts on a = %q", c)
	}

	// A course with one lesson: b marks attendance, a reads the register.
	const course, lesson = "11111111-2222-4333-8444-555555555555", "66666666-7777-4888-9999-aaaaaaaaaaaa"
	mustPonte(t, append(a, "put", "courses", course, `{"title":{"it":"Italiano A2"},"level":"A2","site_id":"`+site+`","teachers":["bruno"],"planned_hours":60,"certificate_attendance":0.7}`)...)
	mustPonte(t, append(a, "put", "lessons", lesson, `{"course_id":"`+course+`","start":"2026-11-24T18:00:00+01:00","duration_minutes":120}`)...)
	for _, p := range []string{p1, p2} {
		mustPonte(t, append(a, "put", "enrolments", records.EnrolmentID(course, p), `{"course_id":"`+course+`","person_id":"`+p+`","status":"active"}`)...)
	}
	mustPonte(t, append(a, "sync")...)
	mustPonte(t, append(b, "sync")...)
	mustPonte(t, append(b, "mark", lesson, p2, "late")...)
	if _, err := ponte(t, context.Background(), append(b, "mark", lesson, p1, "sleeping")...); err == nil || !strings.Contains(err.Error(), "mark") {
		t.Errorf("a mark that is not one of the four = %v, want refused naming the field", err)
	}
	mustPonte(t, append(b, "sync")...)
	mustPonte(t, append(a, "sync")...)
	reg := strings.Split(strings.TrimSpace(mustPonte(t, append(a, "register", lesson)...)), "\n")
	if len(reg) != 2 || !strings.Contains(reg[0], `"given_name":"Оксана"`) || !strings.Contains(reg[0], `"mark":"late","marked_by":"bruno"`) ||
		!strings.Contains(reg[1], `"given_name":"أمينة"`) || strings.Contains(reg[1], `"mark"`) {
		t.Fatalf("register = %q", reg)
	}

	mustPonte(t, append(a, "delete", "persons", p1)...)
	if _, err := ponte(t, context.Background(), append(a, "--lang", "it", "get", "persons", p1)...); err == nil ||
		!strings.Contains(err.Error(), "dispositivo") {
		t.Fatalf("get of a deleted record = %v, want the Italian 'not on this device'", err)
	}
	if out := mustPonte(t, append(a, "rejected")...); out != "" {
		t.Fatalf("rejected = %q", out)
	}
	mustPonte(t, append(a, "sync")...)
	// The audit trail: every write to p1, who made it and from which device.
	trail := strings.Split(strings.TrimSpace(mustPonte(t, "admin", "history", "--db", db, "persons", p1)), "\n")
	if len(trail) != 3 || !strings.Contains(trail[0], `"op":"put","data":{"family_name":"حداد"`) ||
		!strings.Contains(trail[0], `"user":"amal","device":"`) || !strings.Contains(trail[2], `"op":"delete"`) {
		t.Fatalf("history = %q", trail)
	}
	// Sync needs the server: a wrong token is refused in the person's language.
	bad := []string{"client", "--replica", filepath.Join(dir, "c.db"), "--server", server, "--token", "ponte_x", "--lang", "ar"}
	if _, err := ponte(t, context.Background(), append(bad, "sync")...); err == nil || !strings.ContainsAny(err.Error(), "ابتث") {
		t.Fatalf("sync with a wrong token = %v, want an Arabic explanation", err)
	}
}

func TestCLI_Usage(t *testing.T) {
	for _, args := range [][]string{{}, {"nope"}, {"client", "--replica", filepath.Join(t.TempDir(), "r.db"), "frobnicate"}, {"admin", "token"},
		{"admin", "site", "add"}, {"admin", "user"}, {"admin", "device", "burn"}, {"admin", "enrol", "--db", "x.db"}} {
		if _, err := ponte(t, context.Background(), args...); err != errUsage {
			t.Errorf("ponte %q = %v, want a usage error", args, err)
		}
	}
}

// TestCLI_Admin: sites, users of every role, devices listed and revoked,
// and clear refusals, as an administrator types them.
func TestCLI_Admin(t *testing.T) {
	db := filepath.Join(t.TempDir(), "ponte.db")
	site := strings.TrimSpace(mustPonte(t, "admin", "site", "add", "--db", db, "Sportello Tor Pignattara"))
	if !regexp.MustCompile(`^[0-9a-f-]{36}$`).MatchString(site) {
		t.Fatalf("site add printed %q, want the site id", site)
	}
	course := "11111111-2222-4333-8444-555555555555"
	mustPonte(t, "admin", "user", "add", "--db", db, "--role", "mediator", "--site", site, "giulia")
	mustPonte(t, "admin", "user", "add", "--db", db, "--role", "teacher", "--course", course, "marco")
	mustPonte(t, "admin", "user", "add", "--db", db, "--role", "admin", "it")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"site", "add", "--db", db, "Sportello Tor Pignattara"}, "Sportello Tor Pignattara"},
		{[]string{"user", "add", "--db", db, "--role", "mediator", "giulia"}, "giulia"},
		{[]string{"user", "add", "--db", db, "--role", "mediator", "sara"}, "--site"},
		{[]string{"user", "add", "--db", db, "--role", "boss", "sara"}, "boss"},
		{[]string{"user", "add", "--db", db, "--role", "mediator", "--site", course, "sara"}, course},
		{[]string{"token", "--db", db, "--user", "nobody"}, "nobody"},
		{[]string{"device", "revoke", "--db", db, "0f8fad5b-d9cb-469f-a165-70867728950e"}, "0f8fad5b"},
	} {
		if _, err := ponte(t, context.Background(), append([]string{"admin"}, tt.args...)...); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("admin %q = %v, want a refusal mentioning %q", tt.args, err, tt.want)
		}
	}
	mustPonte(t, "admin", "token", "--db", db, "--user", "giulia")
	mustPonte(t, "admin", "token", "--db", db, "--user", "marco")
	lines := strings.Split(strings.TrimSpace(mustPonte(t, "admin", "device", "list", "--db", db)), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "\tgiulia\tactive\t-") || !strings.Contains(lines[1], "\tmarco\tactive\t-") {
		t.Fatalf("device list = %q", lines)
	}
	id, _, _ := strings.Cut(lines[0], "\t")
	mustPonte(t, "admin", "device", "revoke", "--db", db, id)
	if out := mustPonte(t, "admin", "device", "list", "--db", db); !strings.Contains(out, id+"\tgiulia\trevoked") {
		t.Fatalf("after revoke, device list = %q", out)
	}
}

func TestCLI_UserPassword(t *testing.T) {
	db := filepath.Join(t.TempDir(), "ponte.db")
	mustPonte(t, "admin", "user", "add", "--db", db, "--role", "coordinator", "anna")
	r, w, _ := os.Pipe()
	old := os.Stdin
	os.Stdin = r
	defer func() { os.Stdin = old }()
	w.WriteString("a long enough password\n")
	w.Close()
	mustPonte(t, "admin", "user", "password", "--db", db, "anna")
	st, err := store.Open(context.Background(), db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, _, err := st.Login(context.Background(), "anna", "a long enough password"); err != nil {
		t.Errorf("sign-in with the password set: %v", err)
	}
}
