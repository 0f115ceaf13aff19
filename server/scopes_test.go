package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ponte-project/ponte/client"
	"github.com/ponte-project/ponte/internal/testenv"
	"github.com/ponte-project/ponte/records"
	"github.com/ponte-project/ponte/server"
	"github.com/ponte-project/ponte/server/scope"
	"github.com/ponte-project/ponte/server/store"
	"github.com/ponte-project/ponte/syncproto"
)

// programme is three sites, their people and two courses, written by a
// coordinator, with devices for a mediator of each of two sites, a teacher,
// the coordinator and an admin.
type programme struct {
	srv                        *testenv.Server
	siteA, siteB, siteC        string
	pA1, pA2, pB1, pC1         string
	apptA, apptB               string
	course1, course2           string
	lesson1, lesson2           string
	coord, medA, medB, teacher *client.Client
	admin                      *client.Client
}

func device(t *testing.T, srv *testenv.Server, u store.User) *client.Client {
	t.Helper()
	if err := srv.Store.AddUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return srv.MustOpenClient(u.Name, client.Options{Schema: records.Schema})
}

func startProgramme(t *testing.T) *programme {
	t.Helper()
	ctx := context.Background()
	p := &programme{srv: testenv.MustStartServerAt(t, filepath.Join(t.TempDir(), "s.db"), server.Config{Schema: records.Schema,
		Options: server.Options{RevocationCheck: 20 * time.Millisecond}})}
	var err error
	for _, s := range []*string{&p.siteA, &p.siteB, &p.siteC} {
		if *s, err = p.srv.Store.AddSite(ctx, "site "+uuid.NewString()[:8]); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []*string{&p.pA1, &p.pA2, &p.pB1, &p.pC1, &p.apptA, &p.apptB, &p.course1, &p.course2, &p.lesson1, &p.lesson2} {
		*id = uuid.NewString()
	}
	p.coord = device(t, p.srv, store.User{Name: "zoe", Role: scope.Coordinator})
	p.medA = device(t, p.srv, store.User{Name: "amal", Role: scope.Mediator, Sites: []string{p.siteA}})
	p.medB = device(t, p.srv, store.User{Name: "bruno", Role: scope.Mediator, Sites: []string{p.siteB}})
	p.teacher = device(t, p.srv, store.User{Name: "tina", Role: scope.Teacher, Courses: []string{p.course1}})
	p.admin = device(t, p.srv, store.User{Name: "it", Role: scope.Admin})

	person := func(site, name string) map[string]any {
		return map[string]any{"site_id": site, "given_name": name, "family_name": "X", "consent_given": true,
			"consent_date": "2026-11-01", "consent_language": "it", "birth_date": "1990-01-01", "phone": "+393331234567"}
	}
	appt := func(person, site string) map[string]any {
		return map[string]any{"person_id": person, "mediator": "amal", "site_id": site, "start": "2026-11-24T09:00:00Z",
			"end": "2026-11-24T10:00:00Z", "kind": "orientation", "status": "scheduled"}
	}
	course := func(site, teacher string) map[string]any {
		return map[string]any{"title": map[string]string{"it": "Italiano"}, "level": "A1", "site_id": site,
			"teachers": []string{teacher}, "planned_hours": 40, "certificate_attendance": 0.7}
	}
	enrol := func(course, person string) client.Op {
		return client.Op{Collection: records.Enrolments, ID: records.EnrolmentID(course, person),
			Fields: map[string]any{"course_id": course, "person_id": person, "status": "active"}}
	}
	err = p.coord.Write(ctx,
		client.Op{Collection: records.Persons, ID: p.pA1, Fields: person(p.siteA, "Amina")},
		client.Op{Collection: records.Persons, ID: p.pA2, Fields: person(p.siteA, "Oksana")},
		client.Op{Collection: records.Persons, ID: p.pB1, Fields: person(p.siteB, "Rahim")},
		client.Op{Collection: records.Persons, ID: p.pC1, Fields: person(p.siteC, "Tsegay")},
		client.Op{Collection: records.Appointments, ID: p.apptA, Fields: appt(p.pA1, p.siteA)},
		client.Op{Collection: records.Appointments, ID: p.apptB, Fields: appt(p.pB1, p.siteB)},
		client.Op{Collection: records.Courses, ID: p.course1, Fields: course(p.siteA, "tina")},
		client.Op{Collection: records.Courses, ID: p.course2, Fields: course(p.siteB, "other")},
		client.Op{Collection: records.Lessons, ID: p.lesson1, Fields: map[string]any{"course_id": p.course1,
			"start": "2026-11-24T18:00:00Z", "duration_minutes": 120}},
		client.Op{Collection: records.Lessons, ID: p.lesson2, Fields: map[string]any{"course_id": p.course2,
			"start": "2026-11-24T18:00:00Z", "duration_minutes": 120}},
		enrol(p.course1, p.pA1), enrol(p.course1, p.pB1), enrol(p.course2, p.pC1),
		client.Op{Collection: records.Attendance, ID: records.AttendanceID(p.lesson2, p.pC1), Fields: map[string]any{
			"lesson_id": p.lesson2, "course_id": p.course2, "person_id": p.pC1, "mark": "present", "marked_by": "other"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	p.syncAll(t)
	return p
}

func (p *programme) syncAll(t *testing.T) {
	t.Helper()
	for _, c := range []*client.Client{p.coord, p.medA, p.medB, p.teacher, p.admin} {
		if err := c.Sync(testenv.Context(t, 20*time.Second)); err != nil {
			t.Fatalf("sync: %v", err)
		}
	}
}

// holds returns "collection/id" → the record's field names, for every
// record a replica holds.
func holds(t *testing.T, c *client.Client) map[string][]string {
	t.Helper()
	rows, err := c.Query(context.Background(), `SELECT collection, id, data FROM records`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var coll, id string
		var data []byte
		if err := rows.Scan(&coll, &id, &data); err != nil {
			t.Fatal(err)
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(data, &fields); err != nil {
			t.Fatal(err)
		}
		var names []string
		for f := range fields {
			names = append(names, f)
		}
		slices.Sort(names)
		out[coll+"/"+id] = names
	}
	return out
}

func keysOf(m map[string][]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func want(keys ...string) []string {
	slices.Sort(keys)
	return keys
}

func TestScopes_EachReplicaHoldsExactlyItsScope(t *testing.T) {
	p := startProgramme(t)
	att := records.AttendanceID(p.lesson2, p.pC1)
	for name, tt := range map[string]struct {
		c    *client.Client
		want []string
	}{
		"mediator of site A": {p.medA, want("persons/"+p.pA1, "persons/"+p.pA2, "appointments/"+p.apptA)},
		"mediator of site B": {p.medB, want("persons/"+p.pB1, "appointments/"+p.apptB)},
		"teacher of course 1": {p.teacher, want("courses/"+p.course1, "lessons/"+p.lesson1,
			"enrolments/"+records.EnrolmentID(p.course1, p.pA1), "enrolments/"+records.EnrolmentID(p.course1, p.pB1),
			"persons/"+p.pA1, "persons/"+p.pB1)},
		"admin": {p.admin, nil},
		"coordinator": {p.coord, want("persons/"+p.pA1, "persons/"+p.pA2, "persons/"+p.pB1, "persons/"+p.pC1,
			"appointments/"+p.apptA, "appointments/"+p.apptB, "courses/"+p.course1, "courses/"+p.course2,
			"lessons/"+p.lesson1, "lessons/"+p.lesson2, "enrolments/"+records.EnrolmentID(p.course1, p.pA1),
			"enrolments/"+records.EnrolmentID(p.course1, p.pB1), "enrolments/"+records.EnrolmentID(p.course2, p.pC1),
			"attendance/"+att)},
	} {
		t.Run(name, func(t *testing.T) {
			if got := keysOf(holds(t, tt.c)); !slices.Equal(got, tt.want) {
				t.Errorf("holds %q\nwant  %q", got, tt.want)
			}
		})
	}
	t.Run("a teacher sees only the names of the enrolled", func(t *testing.T) {
		got := holds(t, p.teacher)["persons/"+p.pA1]
		if !slices.Equal(got, []string{"family_name", "given_name"}) {
			t.Errorf("teacher holds fields %q of an enrolled person's intake form, want the names only", got)
		}
		reg, err := p.teacher.Register(context.Background(), p.lesson1)
		if err != nil || len(reg) != 2 {
			t.Fatalf("register = %+v, %v", reg, err)
		}
	})
}

func TestScopes_WritesOutsideTheScopeAreRefusedAndKept(t *testing.T) {
	p := startProgramme(t)
	ctx := context.Background()
	newPerson, newCourse := uuid.NewString(), uuid.NewString()
	// In one push: a write in scope, and three outside it.
	err := p.medA.Write(ctx,
		client.Op{Collection: records.Persons, ID: p.pA1, Fields: map[string]any{"notes": "seen today"}},
		client.Op{Collection: records.Persons, ID: newPerson, Fields: map[string]any{"site_id": p.siteB, "given_name": "New"}},
		client.Op{Collection: records.Courses, ID: newCourse, Fields: map[string]any{"title": map[string]string{"it": "Mio"},
			"level": "A2", "site_id": p.siteA, "teachers": []string{"amal"}, "planned_hours": 10}},
	)
	if err != nil {
		t.Fatal(err)
	}
	// Claiming a person of another site for one's own, by their id.
	if err := p.medA.Put(ctx, records.Persons, p.pB1, map[string]any{"site_id": p.siteA, "given_name": "Rahim"}); err != nil {
		t.Fatal(err)
	}
	if err := p.medA.Sync(testenv.Context(t, 20*time.Second)); err != nil {
		t.Fatal(err)
	}
	rej, err := p.medA.Rejected(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var refused []string
	for _, r := range rej {
		if r.Code != syncproto.CodeForbidden || r.Message == "" {
			t.Errorf("rejection %+v, want forbidden with a reason", r)
		}
		refused = append(refused, r.Collection+"/"+r.Record)
	}
	slices.Sort(refused)
	if w := want("persons/"+newPerson, "courses/"+newCourse, "persons/"+p.pB1); !slices.Equal(refused, w) {
		t.Errorf("refused %q, want %q", refused, w)
	}
	if rec, _, _ := p.srv.Store.Get(ctx, records.Persons, p.pA1); string(rec.Data["notes"]) != `"seen today"` {
		t.Errorf("the write in scope was not applied: %s", rec.Data["notes"])
	}
	if rec, _, _ := p.srv.Store.Get(ctx, records.Persons, p.pB1); !strings.Contains(string(rec.Data["site_id"]), p.siteB) {
		t.Error("a mediator took a person of another site")
	}

	// A teacher may mark attendance in their course, not change an intake
	// form they see through a register, nor touch another course.
	if err := p.teacher.MarkAttendance(ctx, p.lesson1, p.pA1, records.MarkPresent); err != nil {
		t.Fatal(err)
	}
	// Nor mark in someone else's name.
	if err := p.teacher.Put(ctx, records.Attendance, records.AttendanceID(p.lesson1, p.pB1), map[string]any{
		"lesson_id": p.lesson1, "course_id": p.course1, "person_id": p.pB1, "mark": "absent", "marked_by": "someone else"}); err != nil {
		t.Fatal(err)
	}
	if err := p.teacher.Put(ctx, records.Persons, p.pA1, map[string]any{"site_id": p.siteA, "given_name": "Renamed"}); err != nil {
		t.Fatal(err)
	}
	if err := p.teacher.Put(ctx, records.Lessons, p.lesson2, map[string]any{"course_id": p.course2,
		"start": "2026-11-25T18:00:00Z", "duration_minutes": 60}); err != nil {
		t.Fatal(err)
	}
	if err := p.teacher.Sync(testenv.Context(t, 20*time.Second)); err != nil {
		t.Fatal(err)
	}
	rej, _ = p.teacher.Rejected(ctx)
	refused = refused[:0]
	for _, r := range rej {
		refused = append(refused, r.Collection+"/"+r.Record)
	}
	slices.Sort(refused)
	if w := want("persons/"+p.pA1, "lessons/"+p.lesson2, "attendance/"+records.AttendanceID(p.lesson1, p.pB1)); !slices.Equal(refused, w) {
		t.Errorf("teacher's refused writes %q, want %q", refused, w)
	}
	if rec, _, _ := p.srv.Store.Get(ctx, records.Attendance, records.AttendanceID(p.lesson1, p.pA1)); !rec.Exists() {
		t.Error("the teacher's mark in their course was not applied")
	}
	// The admin's device changes no records at all.
	if err := p.admin.Put(ctx, records.Persons, uuid.NewString(), map[string]any{"site_id": p.siteA, "given_name": "x"}); err != nil {
		t.Fatal(err)
	}
	p.admin.Sync(testenv.Context(t, 20*time.Second))
	if rej, _ := p.admin.Rejected(ctx); len(rej) != 1 || rej[0].Code != syncproto.CodeForbidden {
		t.Errorf("admin's write: %+v, want refused", rej)
	}
}

func TestScopes_RecordsFollowTheirMoves(t *testing.T) {
	p := startProgramme(t)
	ctx := context.Background()

	// medA stays live while the coordinator moves a person to site B.
	stop := runLive(t, p.medA)
	if err := p.coord.Put(ctx, records.Persons, p.pA2, map[string]any{"site_id": p.siteB}); err != nil {
		t.Fatal(err)
	}
	if err := p.coord.Sync(testenv.Context(t, 20*time.Second)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the moved person leaves site A's live device", func() bool {
		_, ok := holds(t, p.medA)["persons/"+p.pA2]
		return !ok
	})
	if err := p.medB.Sync(testenv.Context(t, 20*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, ok := holds(t, p.medB)["persons/"+p.pA2]; !ok {
		t.Error("the moved person did not reach site B's device")
	}
	stop()

	// A withdrawn enrolment takes the person off the teacher's register.
	if err := p.coord.Put(ctx, records.Enrolments, records.EnrolmentID(p.course1, p.pB1), map[string]any{"status": "withdrawn"}); err != nil {
		t.Fatal(err)
	}
	// A new enrolment brings a person onto it, names only.
	if err := p.coord.Write(ctx, client.Op{Collection: records.Enrolments, ID: records.EnrolmentID(p.course1, p.pC1),
		Fields: map[string]any{"course_id": p.course1, "person_id": p.pC1, "status": "active"}}); err != nil {
		t.Fatal(err)
	}
	p.syncAll(t)
	h := holds(t, p.teacher)
	if _, ok := h["persons/"+p.pB1]; ok {
		t.Error("the teacher still holds a person whose enrolment was withdrawn")
	}
	if got := h["persons/"+p.pC1]; !slices.Equal(got, []string{"family_name", "given_name"}) {
		t.Errorf("newly enrolled person on the teacher's device: fields %q, want the names", got)
	}
	if _, ok := h["enrolments/"+records.EnrolmentID(p.course1, p.pB1)]; !ok {
		t.Error("the withdrawn enrolment itself should stay in the course")
	}

	// Enrolled before the intake form arrives: the form finds its register.
	late := uuid.NewString()
	if err := p.coord.Put(ctx, records.Enrolments, records.EnrolmentID(p.course1, late),
		map[string]any{"course_id": p.course1, "person_id": late, "status": "active"}); err != nil {
		t.Fatal(err)
	}
	p.syncAll(t)
	if err := p.coord.Put(ctx, records.Persons, late, map[string]any{"site_id": p.siteC, "given_name": "Late"}); err != nil {
		t.Fatal(err)
	}
	p.syncAll(t)
	if got := holds(t, p.teacher)["persons/"+late]; !slices.Equal(got, []string{"given_name"}) {
		t.Errorf("a person enrolled before their form arrived: teacher holds fields %q, want their name", got)
	}
}

func TestScopes_UserAssignmentsChange(t *testing.T) {
	p := startProgramme(t)
	ctx := context.Background()
	defer runLive(t, p.medA)()
	// Moved from site A to site C while connected: the device reconnects,
	// drops site A and receives site C.
	if err := p.srv.Store.SetAssignments(ctx, "amal", []string{p.siteC}, nil); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "medA holds site C and nothing of site A", func() bool {
		got := keysOf(holds(t, p.medA))
		return slices.Equal(got, []string{"persons/" + p.pC1})
	})
	if err := p.srv.Store.SetAssignments(ctx, "amal", nil, nil); !errors.Is(err, syncproto.ErrInvalid) {
		t.Errorf("a mediator without a site: %v, want refused", err)
	}
}

// runLive keeps c syncing live until the returned stop is called, which
// fails the test if Run ended with an error.
func runLive(t *testing.T, c *client.Client) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(testenv.Context(t, 30*time.Second))
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	waitUntil(t, "the replica is live", func() bool {
		st, err := c.Status(context.Background())
		return err == nil && st.State == client.StateLive
	})
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestScopes_RegistersSurviveCourseChanges: a teacher who joins a second
// course of an enrolled person, then leaves the first, keeps the person;
// a person withdrawn while deleted and then brought back is not shown to
// the course they left.
func TestScopes_RegistersSurviveCourseChanges(t *testing.T) {
	p := startProgramme(t)
	ctx := context.Background()
	enrol := func(course, person, status string) {
		t.Helper()
		if err := p.coord.Put(ctx, records.Enrolments, records.EnrolmentID(course, person),
			map[string]any{"course_id": course, "person_id": person, "status": status}); err != nil {
			t.Fatal(err)
		}
	}
	enrol(p.course2, p.pA1, "active") // pA1 is now on both courses
	if err := p.coord.Put(ctx, records.Persons, p.pA1, map[string]any{"notes": "edited after both enrolments"}); err != nil {
		t.Fatal(err)
	}
	p.syncAll(t)
	for _, courses := range [][]string{{p.course1, p.course2}, {p.course2}} {
		if err := p.srv.Store.SetAssignments(ctx, "tina", nil, courses); err != nil {
			t.Fatal(err)
		}
		p.syncAll(t)
	}
	if _, ok := holds(t, p.teacher)["persons/"+p.pA1]; !ok {
		t.Error("the teacher lost a person still on the register of a course they teach")
	}

	// pB1 is on course 1: deleted, withdrawn meanwhile, then brought back.
	if err := p.srv.Store.SetAssignments(ctx, "tina", nil, []string{p.course1}); err != nil {
		t.Fatal(err)
	}
	if err := p.coord.Delete(ctx, records.Persons, p.pB1); err != nil {
		t.Fatal(err)
	}
	enrol(p.course1, p.pB1, "withdrawn")
	if err := p.coord.Put(ctx, records.Persons, p.pB1, map[string]any{"site_id": p.siteB, "given_name": "Back"}); err != nil {
		t.Fatal(err)
	}
	p.syncAll(t)
	if f, ok := holds(t, p.teacher)["persons/"+p.pB1]; ok {
		t.Errorf("a person withdrawn from the course is still on its register (fields %q)", f)
	}
	if _, ok := holds(t, p.medB)["persons/"+p.pB1]; !ok {
		t.Error("the person brought back is not at their site")
	}
}

// TestScopes_TeachersEnrolOnlyPersonsTheySee: enrolling someone puts their
// name in a register, so a teacher may enrol only a person already on one
// of their registers, not a stranger whose id they learnt.
func TestScopes_TeachersEnrolOnlyPersonsTheySee(t *testing.T) {
	p := startProgramme(t)
	ctx := context.Background()
	if err := p.srv.Store.SetAssignments(ctx, "tina", nil, []string{p.course1, p.course2}); err != nil {
		t.Fatal(err)
	}
	p.syncAll(t)
	enrol := func(course, person string) {
		t.Helper()
		if err := p.teacher.Put(ctx, records.Enrolments, records.EnrolmentID(course, person),
			map[string]any{"course_id": course, "person_id": person, "status": "active"}); err != nil {
			t.Fatal(err)
		}
	}
	enrol(p.course2, p.pA1) // on the register of course 1: seen
	enrol(p.course1, p.pA2) // a stranger
	if err := p.teacher.Sync(testenv.Context(t, 20*time.Second)); err != nil {
		t.Fatal(err)
	}
	rej, _ := p.teacher.Rejected(ctx)
	if len(rej) != 1 || rej[0].Record != records.EnrolmentID(p.course1, p.pA2) || rej[0].Code != syncproto.CodeForbidden {
		t.Errorf("rejected = %+v, want only the stranger's enrolment, forbidden", rej)
	}
	if rec, _, _ := p.srv.Store.Get(ctx, records.Enrolments, records.EnrolmentID(p.course2, p.pA1)); !rec.Exists() {
		t.Error("the enrolment of a person the teacher sees was refused")
	}
	if _, ok := holds(t, p.teacher)["persons/"+p.pA2]; ok {
		t.Error("the stranger's name reached the teacher")
	}
}
