package mobile_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ponte-project/ponte/client/mobile"
	"github.com/ponte-project/ponte/internal/testenv"
	"github.com/ponte-project/ponte/records"
	"github.com/ponte-project/ponte/server"
)

type listener struct {
	mu      sync.Mutex
	states  []string
	changed []string
	stopped []string
}

func (l *listener) OnState(state, text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.states = append(l.states, state+":"+text)
}

func (l *listener) OnChanged(records string, local bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.changed = append(l.changed, records)
}

func (l *listener) OnStopped(code, message string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = append(l.stopped, code+":"+message)
}

func (l *listener) seen(state string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.states {
		if strings.HasPrefix(s, state+":") {
			return true
		}
	}
	return false
}

const site, p1 = "3f2b8c1e-5d4a-4e1b-9c2d-7a6b5c4d3e2f", "018f3a2b-7c4d-7e5f-8a9b-0c1d2e3f4a5b"

func TestReplica_ThroughTheMobileFacade(t *testing.T) {
	srv := testenv.MustStartServerAt(t, filepath.Join(t.TempDir(), "s.db"), server.Config{Schema: records.Schema})
	a, err := mobile.Open(filepath.Join(t.TempDir(), "a.db"), srv.SyncURL(), srv.Token("amal"), "ar")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := mobile.Open(filepath.Join(t.TempDir(), "b.db"), srv.SyncURL(), srv.Token("bruno"), "uk")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	l := &listener{}
	b.SetListener(l)
	b.Start()

	if err := a.Put("persons", p1, `{"given_name":"أمينة","site_id":"`+site+`"}`); err != nil {
		t.Fatal(err)
	}
	var me *mobile.Error
	if err := a.Put("persons", p1, `[1,2]`); !errors.As(err, &me) || me.Code != "invalid_write" || !strings.ContainsAny(me.Message, "ابت") {
		t.Fatalf("bad put = %v, want an invalid_write error in Arabic", err)
	}
	// A write that breaks the rules: the app gets each field and why.
	err = a.Put("persons", p1, `{"age":31}`)
	var fields []struct{ Field, Rule, Message string }
	if !errors.As(err, &me) || me.Code != "invalid_write" || json.Unmarshal([]byte(me.Fields), &fields) != nil ||
		len(fields) != 1 || fields[0].Field != "age" || fields[0].Rule != "unknown_field" || !strings.ContainsAny(fields[0].Message, "ابت") {
		t.Fatalf("put of an unknown field = %v (fields %s), want it named, in Arabic", err, me.Fields)
	}
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := b.Get("persons", p1)
		if err != nil {
			t.Fatal(err)
		}
		if got != "" {
			if got != `{"given_name":"أمينة","site_id":"`+site+`"}` {
				t.Fatalf("b holds %s", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the write never reached the live replica")
		}
		time.Sleep(10 * time.Millisecond)
	}
	rows, err := b.Query(`SELECT id, data->>'given_name' AS name FROM records WHERE collection = ?`, `["persons"]`)
	if err != nil || rows != `[{"id":"`+p1+`","name":"أمينة"}]` {
		t.Fatalf("query = %s, %v", rows, err)
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	if !l.seen("live") || len(l.changed) == 0 {
		t.Fatalf("listener saw states %v and %d changes", l.states, len(l.changed))
	}
	var st map[string]any
	s, _ := a.Status()
	if json.Unmarshal([]byte(s), &st) != nil || st["pending"] != float64(0) {
		t.Fatalf("status = %s", s)
	}
	if a.Direction() != "rtl" || b.Direction() != "ltr" {
		t.Fatal("directions wrong")
	}
	if c, err := a.Conflicts(); err != nil || c != "[]" {
		t.Fatalf("conflicts = %s, %v", c, err)
	}
	if found, err := b.SearchPersons("أمينة", 10); err != nil || !strings.Contains(found, p1) {
		t.Fatalf("search = %s, %v", found, err)
	}
	// a synced, so it knows its user and may mark attendance at a lesson
	// it holds; the register lists no one until someone is enrolled.
	lesson := "66666666-7777-4888-9999-aaaaaaaaaaaa"
	if err := a.MarkAttendance(lesson, p1, "present"); !errors.As(err, &me) || me.Code != "not_found" {
		t.Fatalf("mark at a lesson a does not hold = %v", err)
	}
	if err := a.Put("lessons", lesson, `{"course_id":"11111111-2222-4333-8444-555555555555","start":"2026-11-24T18:00:00+01:00","duration_minutes":90}`); err != nil {
		t.Fatal(err)
	}
	if err := a.MarkAttendance(lesson, p1, "present"); err != nil {
		t.Fatal(err)
	}
	if reg, err := a.Register(lesson); err != nil || reg != "[]" {
		t.Fatalf("register = %q, %v", reg, err)
	}
	if reg, err := b.Register(lesson); !errors.As(err, &me) || me.Code != "not_found" || reg != "" {
		t.Fatalf("register of a lesson b does not hold = %q, %v", reg, err)
	}
}

func TestReplica_EnrolsWithACode(t *testing.T) {
	srv := testenv.MustStartServer(t)
	srv.Token("amal") // adds the user
	code, _, err := srv.Store.IssueEnrolmentCode(context.Background(), "amal")
	if err != nil {
		t.Fatal(err)
	}
	r, err := mobile.Open(filepath.Join(t.TempDir(), "r.db"), srv.SyncURL(), "", "it")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Enrol(strings.ToLower(code)); err != nil {
		t.Fatal(err)
	}
	if u, err := r.User(); err != nil || u != "amal" {
		t.Fatalf("user = %q, %v", u, err)
	}
	if err := r.Sync(); err != nil {
		t.Fatalf("sync with the enrolled token: %v", err)
	}
	var me *mobile.Error
	if err := r.Enrol(code); !errors.As(err, &me) || me.Code != "unauthorized" || !strings.Contains(me.Message, "dispositivo") {
		t.Fatalf("a used code = %v, want unauthorized in Italian", err)
	}
}

func TestReplica_ZeroValueDoesNotPanic(t *testing.T) {
	var r mobile.Replica // gobind lets an app construct one without Open
	if err := r.Put("persons", "p", `{}`); err == nil {
		t.Fatal("Put on an unopened replica succeeded")
	}
	r.Start()
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Status(); err == nil || r.Direction() != "ltr" || r.Close() != nil {
		t.Fatal("unopened replica misbehaves")
	}
}

func TestReplica_TellsTheAppWhenSyncingStops(t *testing.T) {
	srv := testenv.MustStartServer(t)
	r, err := mobile.Open(filepath.Join(t.TempDir(), "r.db"), srv.SyncURL(), "ponte_unknown", "it")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	l := &listener{}
	r.SetListener(l)
	r.Start()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.mu.Lock()
		n := len(l.stopped)
		l.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the app was never told that syncing stopped")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.HasPrefix(l.stopped[0], "unauthorized:") || !strings.Contains(l.stopped[0], "dispositivo") {
		t.Fatalf("stopped = %q, want unauthorized in Italian", l.stopped[0])
	}
	var me *mobile.Error
	if err := r.Stop(); !errors.As(err, &me) || me.Code != "unauthorized" {
		t.Fatalf("Stop = %v", err)
	}
}
