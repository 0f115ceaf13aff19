package client_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/text/unicode/norm"

	"github.com/ponte-project/ponte/client"
	"github.com/ponte-project/ponte/internal/sqlitedb"
	"github.com/ponte-project/ponte/internal/testenv"
	"github.com/ponte-project/ponte/records"
	"github.com/ponte-project/ponte/server"
	"github.com/ponte-project/ponte/syncproto"
)

// startRecordsServer starts a server that checks Ponte's rules.
func startRecordsServer(t *testing.T) *testenv.Server {
	t.Helper()
	return testenv.MustStartServerAt(t, filepath.Join(t.TempDir(), "server.db"), server.Config{Schema: records.Schema})
}

// openOffline opens a replica that checks Ponte's rules and has no server.
func openOffline(t *testing.T, now time.Time) *client.Client {
	t.Helper()
	return testenv.MustOpenClientAt(t, filepath.Join(t.TempDir(), "replica.db"),
		client.Options{Schema: records.Schema, Now: func() time.Time { return now }})
}

var siteID = uuid.NewString()

func person(given, family string) map[string]any {
	return map[string]any{"site_id": siteID, "given_name": given, "family_name": family}
}

// course is a realistic L2 course: 20 persons, 30 lessons of two hours on
// weekday evenings, 60 planned hours, 70% needed for the certificate.
type course struct {
	id      string
	lessons []string
	persons []string
}

// writeCourse stores the course on c. Person k attended the first 20-k of
// the 20 lessons held by now (present, or late for one lesson of person 3)
// and missed the rest; one more person withdrew.
func writeCourse(t *testing.T, c *client.Client, start time.Time) course {
	t.Helper()
	ctx := context.Background()
	crs := course{id: uuid.NewString()}
	ops := []client.Op{{Collection: records.Courses, ID: crs.id, Fields: map[string]any{
		"title": map[string]string{"it": "Italiano A2", "en": "Italian A2"}, "level": "A2", "site_id": siteID,
		"teachers": []string{"marco"}, "planned_hours": 60, "certificate_attendance": 0.7}}}
	names := []string{"Amina", "Оксана", "ফাতেমা", "ተስፋይ", "李娜", "Mohamed", "Olena", "Rahim", "Samira", "Yusuf",
		"Daniela", "Kofi", "Aisha", "Ivan", "Nadia", "Bilal", "Irina", "Arben", "Gurpreet", "Tsegay"}
	for k, name := range names {
		id := uuid.NewString()
		crs.persons = append(crs.persons, id)
		ops = append(ops, client.Op{Collection: records.Persons, ID: id, Fields: person(name, fmt.Sprintf("Family%02d", k))},
			client.Op{Collection: records.Enrolments, ID: records.EnrolmentID(crs.id, id), Fields: map[string]any{
				"course_id": crs.id, "person_id": id, "status": "active"}})
	}
	withdrawn := uuid.NewString()
	ops = append(ops, client.Op{Collection: records.Persons, ID: withdrawn, Fields: person("Gone", "Away")},
		client.Op{Collection: records.Enrolments, ID: records.EnrolmentID(crs.id, withdrawn), Fields: map[string]any{
			"course_id": crs.id, "person_id": withdrawn, "status": "withdrawn"}})
	for j := range 30 {
		id := uuid.NewString()
		crs.lessons = append(crs.lessons, id)
		ops = append(ops, client.Op{Collection: records.Lessons, ID: id, Fields: map[string]any{
			"course_id": crs.id, "start": start.AddDate(0, 0, j).Format(time.RFC3339), "duration_minutes": 120}})
		if j >= 20 {
			continue // not held yet
		}
		for k, p := range crs.persons {
			mark := records.MarkAbsent
			if j < 20-k {
				mark = records.MarkPresent
				if k == 3 && j == 0 {
					mark = records.MarkLate
				}
			}
			ops = append(ops, client.Op{Collection: records.Attendance, ID: records.AttendanceID(id, p), Fields: map[string]any{
				"lesson_id": id, "course_id": crs.id, "person_id": p, "mark": mark, "marked_by": "marco"}})
		}
	}
	if err := c.Write(ctx, ops...); err != nil {
		t.Fatalf("write course: %v", err)
	}
	return crs
}

func TestClient_RegisterAndAttendanceRates(t *testing.T) {
	start := time.Date(2026, 9, 1, 18, 0, 0, 0, time.FixedZone("CET", 3600))
	now := start.AddDate(0, 0, 19).Add(3 * time.Hour) // after lesson 19 (the 20th)
	c := openOffline(t, now)
	crs := writeCourse(t, c, start)
	ctx := context.Background()

	t.Run("register of a held lesson", func(t *testing.T) {
		reg, err := c.Register(ctx, crs.lessons[10])
		if err != nil {
			t.Fatal(err)
		}
		if len(reg) != 20 {
			t.Fatalf("register has %d persons, want the 20 enrolled (not the withdrawn one)", len(reg))
		}
		present := 0
		for i, e := range reg {
			k := slices.Index(crs.persons, e.PersonID)
			want := records.MarkAbsent
			if k < 10 {
				want = records.MarkPresent
				present++
			}
			if e.Mark != want || e.MarkedBy != "marco" {
				t.Errorf("person %d: mark %q by %q, want %q by marco", k, e.Mark, e.MarkedBy, want)
			}
			if want := fmt.Sprintf("Family%02d", k); e.FamilyName != want || i != k {
				t.Errorf("line %d: %q (person %d), want %s sorted by family name", i, e.FamilyName, k, want)
			}
		}
		if present != 10 {
			t.Errorf("%d present, want 10", present)
		}
	})

	t.Run("register of a lesson not held yet", func(t *testing.T) {
		reg, err := c.Register(ctx, crs.lessons[25])
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range reg {
			if e.Mark != "" {
				t.Errorf("person %s marked %q before the lesson", e.PersonID, e.Mark)
			}
		}
		if len(reg) != 20 || reg[1].GivenName != "Оксана" {
			t.Errorf("register = %d lines, second %q; want 20, Оксана second", len(reg), reg[1].GivenName)
		}
	})

	t.Run("register of an unknown lesson", func(t *testing.T) {
		if _, err := c.Register(ctx, uuid.NewString()); !errors.Is(err, client.ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
	})

	t.Run("attendance rates", func(t *testing.T) {
		rates, err := c.CourseAttendance(ctx, crs.id, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(rates) != 20 {
			t.Fatalf("%d rates, want 20", len(rates))
		}
		for _, r := range rates {
			k := slices.Index(crs.persons, r.PersonID)
			// Held: 20 lessons of 120 minutes. Attended: 20-k of them.
			// On track: (20-k)/20 >= 0.7, so k <= 6. Can qualify: attended
			// plus the 10 remaining lessons reach 0.7 × 3600 = 2520 minutes:
			// (20-k+10) × 120 >= 2520, so k <= 9.
			want := records.AttendanceRate{PersonID: r.PersonID, HeldMinutes: 2400, AttendedMinutes: (20 - k) * 120,
				Rate: float64(20-k) / 20, OnTrack: k <= 6, CanQualify: k <= 9}
			if r != want {
				t.Errorf("person %d: %+v, want %+v", k, r, want)
			}
			if r.AtRisk() != (k > 6) {
				t.Errorf("person %d: at risk %v", k, r.AtRisk())
			}
		}
	})

	t.Run("app SQL through the views uses the indexes", func(t *testing.T) {
		for query, index := range map[string]string{
			`SELECT person_id FROM enrolments WHERE course_id = ?`:              "enrolments_by_course",
			`SELECT mark FROM attendance WHERE lesson_id = ? AND person_id = ?`: "attendance_by_lesson",
			`SELECT id FROM lessons WHERE course_id = ? ORDER BY start_utc`:     "lessons_by_course",
			`SELECT id FROM appointments WHERE mediator = ? AND start_utc >= ?`: "appointments_by_mediator",
			`SELECT id, given_name FROM persons WHERE site_id = ?`:              "persons_by_site",
			`SELECT given_name FROM persons WHERE id = ?`:                       "replica_records_by_key",
		} {
			args := make([]any, strings.Count(query, "?"))
			for i := range args {
				args[i] = "x"
			}
			rows, err := c.Query(ctx, "EXPLAIN QUERY PLAN "+query, args...)
			if err != nil {
				t.Fatalf("%s: %v", query, err)
			}
			plan, err := sqlitedb.QueryPlan(rows)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(strings.Join(plan, "; "), index) {
				t.Errorf("%s: plan %q does not use %s", query, plan, index)
			}
		}
	})
}

// TestClient_ViewsHaveEveryField: each collection's view has a column per
// field of the records package, so app SQL sees the whole contract.
func TestClient_ViewsHaveEveryField(t *testing.T) {
	c := openOffline(t, time.Now())
	for _, coll := range records.Collections() {
		rows, err := c.Query(context.Background(), "SELECT * FROM "+coll+" LIMIT 0")
		if err != nil {
			t.Fatalf("%s: %v", coll, err)
		}
		cols, err := rows.Columns()
		rows.Close()
		if err != nil {
			t.Fatal(err)
		}
		want := append([]string{"id"}, records.Fields(coll)...)
		if i := slices.Index(want, "start"); i >= 0 {
			want = slices.Insert(want, i+1, "start_utc")
		}
		if !slices.Equal(cols, want) {
			t.Errorf("view %s has columns %q, want %q", coll, cols, want)
		}
	}
}

func TestClient_WriteIsCheckedBeforeAccepted(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	c := openOffline(t, now)
	ctx := context.Background()
	id := uuid.NewString()
	p := person("Amina", "Haddad")
	p["birth_date"] = "2030-01-01" // in the future, and before consent
	p["phone"] = "0612"
	err := c.Put(ctx, records.Persons, id, p)
	if !errors.Is(err, client.ErrInvalidWrite) || !errors.Is(err, syncproto.ErrInvalid) {
		t.Fatalf("put = %v, want ErrInvalidWrite and syncproto.ErrInvalid", err)
	}
	var e *syncproto.Error
	if !errors.As(err, &e) {
		t.Fatalf("put = %v, want a *syncproto.Error", err)
	}
	var got []string
	for _, f := range e.Fields {
		got = append(got, f.Field+" "+f.Rule)
	}
	want := []string{"birth_date consent_required", "birth_date past", "phone consent_required", "phone e164"}
	if !slices.Equal(got, want) {
		t.Errorf("fields = %q, want %q", got, want)
	}
	if _, err := c.Get(ctx, records.Persons, id); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("refused write is visible: %v", err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.Pending != 0 {
		t.Errorf("status = %+v, %v; want nothing queued", st, err)
	}

	// A partial update is judged with the fields the record already holds.
	mustPut(t, c, records.Persons, id, person("Amina", "Haddad"))
	if err := c.Put(ctx, records.Persons, id, map[string]any{"notes": "speaks French"}); !errors.Is(err, syncproto.ErrInvalid) {
		t.Errorf("notes before consent: %v, want refused", err)
	}
	mustPut(t, c, records.Persons, id, map[string]any{"consent_given": true, "consent_date": "2026-11-20",
		"consent_language": "ar", "notes": "speaks French"})
	if err := c.Put(ctx, records.Persons, id, map[string]any{"given_name": nil}); !errors.Is(err, syncproto.ErrInvalid) {
		t.Errorf("clearing a required name: %v, want refused", err)
	}
	if err := c.Delete(ctx, records.Persons, id); err != nil {
		t.Errorf("delete: %v", err)
	}
}

// TestServer_RefusesWhatADeviceShouldNotHaveSent: a device that skips the
// checks (an old app, a third-party client) is refused by the server with a
// reason in its own language, field by field, and the write is kept.
func TestServer_RefusesWhatADeviceShouldNotHaveSent(t *testing.T) {
	srv := startRecordsServer(t)
	c := srv.MustOpenClient("giulia", client.Options{Lang: "ar"}) // no Schema: checks nothing
	if c.Direction() != "rtl" {
		t.Errorf("direction of Arabic = %s", c.Direction())
	}
	id := uuid.NewString()
	mustPut(t, c, records.Persons, id, map[string]any{"given_name": "أمينة", "nationality": "Morocco"})
	good := uuid.NewString()
	mustPut(t, c, records.Persons, good, person("Oksana", "Kovalenko"))
	mustSync(t, c)

	rej, err := c.Rejected(context.Background())
	if err != nil || len(rej) != 1 {
		t.Fatalf("rejected = %+v, %v; want the one invalid write", rej, err)
	}
	r := rej[0]
	if r.Record != id || r.Code != syncproto.CodeInvalid {
		t.Errorf("rejection = %+v", r)
	}
	var got []string
	for _, f := range r.Fields {
		got = append(got, f.Field+" "+f.Rule)
		if !strings.Contains(f.Message, f.Field) || !strings.ContainsFunc(f.Message, func(r rune) bool { return r >= 0x600 && r <= 0x6ff }) {
			t.Errorf("field message %q is not Arabic naming %s", f.Message, f.Field)
		}
	}
	if want := []string{"nationality consent_required", "nationality iso3166_1_alpha2", "site_id required"}; !slices.Equal(got, want) {
		t.Errorf("fields = %q, want %q", got, want)
	}
	if _, seq, err := srv.Store.Get(context.Background(), records.Persons, id); err != nil || seq != 0 {
		t.Errorf("the server stored the invalid record (seq %d, %v)", seq, err)
	}
	if rec, _, err := srv.Store.Get(context.Background(), records.Persons, good); err != nil || !rec.Exists() {
		t.Errorf("the valid write of the batch was not applied: %v", err)
	}
}

// TestClient_ConcurrentMarksConverge: two teachers mark the same person
// for the same lesson offline; after syncing there is one mark, the same
// everywhere, and the other is kept as a conflict.
func TestClient_ConcurrentMarksConverge(t *testing.T) {
	srv := startRecordsServer(t)
	marco := srv.MustOpenClient("marco", client.Options{Schema: records.Schema})
	sara := srv.MustOpenClient("sara", client.Options{Schema: records.Schema})
	ctx := context.Background()
	if err := marco.MarkAttendance(ctx, uuid.NewString(), uuid.NewString(), records.MarkPresent); !errors.Is(err, client.ErrUnknownUser) {
		t.Fatalf("mark before the first sync: %v, want ErrUnknownUser", err)
	}
	lesson, p, crs := uuid.NewString(), uuid.NewString(), uuid.NewString()
	mustPut(t, marco, records.Lessons, lesson, map[string]any{"course_id": crs, "start": "2026-11-24T18:00:00+01:00", "duration_minutes": 120})
	mustSync(t, marco)
	mustSync(t, sara)

	if err := marco.MarkAttendance(ctx, lesson, p, records.MarkPresent); err != nil {
		t.Fatal(err)
	}
	if err := sara.MarkAttendance(ctx, lesson, p, records.MarkAbsent); err != nil {
		t.Fatal(err)
	}
	if err := sara.MarkAttendance(ctx, lesson, p, "here"); !errors.Is(err, client.ErrInvalidWrite) {
		t.Errorf("bad mark: %v, want ErrInvalidWrite", err)
	}
	mustSync(t, marco)
	mustSync(t, sara)
	mustSync(t, marco)

	id := records.AttendanceID(lesson, p)
	a, b := fields(t, marco, records.Attendance, id), fields(t, sara, records.Attendance, id)
	if a == nil || !equalFields(a, b) {
		t.Fatalf("marks differ: marco holds %v, sara %v", a, b)
	}
	for _, c := range []*client.Client{marco, sara} {
		rows, err := c.Query(ctx, `SELECT count(*) FROM attendance WHERE lesson_id = ? AND person_id = ?`, lesson, p)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		rows.Next()
		rows.Scan(&n)
		rows.Close()
		if n != 1 {
			t.Errorf("%d marks for one person and lesson, want 1", n)
		}
	}
	winner := map[string]string{`"present"`: `"marco"`, `"absent"`: `"sara"`}[a["mark"]]
	if a["marked_by"] != winner {
		t.Errorf("mark %s by %s: the mark and who made it must win together", a["mark"], a["marked_by"])
	}
	cs, err := srv.Store.Conflicts(ctx, 0, 100, true)
	if err != nil {
		t.Fatal(err)
	}
	var losers []string
	for _, c := range cs {
		if c.Record == id && c.Conflict.Field == "mark" {
			losers = append(losers, string(c.Conflict.Loser.Value))
		}
	}
	if len(losers) != 1 || losers[0] == a["mark"] {
		t.Errorf("conflicts on the mark: losers %q, winner %s; want the other mark kept", losers, a["mark"])
	}
}

// TestClient_NamesRoundTripInEveryScript: names written in six scripts,
// one of them typed decomposed, reach another device byte for byte, in NFC.
func TestClient_NamesRoundTripInEveryScript(t *testing.T) {
	srv := startRecordsServer(t)
	a := srv.MustOpenClient("giulia", client.Options{Schema: records.Schema})
	b := srv.MustOpenClient("ahmed", client.Options{Schema: records.Schema})
	names := map[string][2]string{
		"arabic":   {"أمينة", "حداد"},
		"bengali":  {"ফাতেমা", "রহমান"},
		"geez":     {"ተስፋይ", "ገብረመድህን"},
		"cyrillic": {"Оксана", "Коваленко"},
		"chinese":  {"李娜", "王"},
		"latin":    {norm.NFD.String("José"), norm.NFD.String("Çelik")}, // decomposed, as some keyboards type
	}
	ids := map[string]string{}
	for script, n := range names {
		ids[script] = uuid.NewString()
		mustPut(t, a, records.Persons, ids[script], person(n[0], n[1]))
	}
	mustSync(t, a)
	mustSync(t, b)
	for script, n := range names {
		got := fields(t, b, records.Persons, ids[script])
		want := fmt.Sprintf("%q", norm.NFC.String(n[0]))
		if got["given_name"] != want || got["family_name"] != fmt.Sprintf("%q", norm.NFC.String(n[1])) {
			t.Errorf("%s: %s %s arrived, want %s", script, got["given_name"], got["family_name"], want)
		}
		if mine := fields(t, a, records.Persons, ids[script]); mine["given_name"] != got["given_name"] {
			t.Errorf("%s: writer holds %s, reader %s", script, mine["given_name"], got["given_name"])
		}
		rec, _, err := srv.Store.Get(context.Background(), records.Persons, ids[script])
		if err != nil || string(rec.Data["given_name"]) != want {
			t.Errorf("%s: server holds %s (%v), want %s", script, rec.Data["given_name"], err, want)
		}
	}
}

func TestClient_SearchPersonsIgnoresCaseInEveryScript(t *testing.T) {
	c := openOffline(t, time.Now())
	for _, n := range [][2]string{{"Оксана", "Коваленко"}, {"ÖMER", "ÇELİK"}, {"Amina", "Haddad"}, {"Σοφία", "Παππά"}, {"أمينة", "حداد"}} {
		mustPut(t, c, records.Persons, uuid.NewString(), person(n[0], n[1]))
	}
	for query, want := range map[string]string{
		"оксана": "Оксана", "КОВАЛ": "Оксана", "ömer": "ÖMER", "HADD": "Amina", "σοφία": "Σοφία", "ΣΟΦΊΑ": "Σοφία", "حداد": "أمينة",
	} {
		got, err := c.SearchPersons(context.Background(), query, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].GivenName != want {
			t.Errorf("search %q found %+v, want %s", query, got, want)
		}
	}
}

func TestClient_AppointmentsOfADay(t *testing.T) {
	rome := time.FixedZone("CET", 3600)
	c := openOffline(t, time.Date(2026, 11, 23, 8, 0, 0, 0, rome))
	ctx := context.Background()
	p := uuid.NewString()
	add := func(mediator, start string) {
		t.Helper()
		s, err := time.Parse(time.RFC3339, start)
		if err != nil {
			t.Fatal(err)
		}
		mustPut(t, c, records.Appointments, uuid.NewString(), map[string]any{"person_id": p, "mediator": mediator,
			"site_id": siteID, "start": start, "end": s.Add(45 * time.Minute).Format(time.RFC3339),
			"kind": "orientation", "status": "scheduled"})
	}
	add("giulia", "2026-11-23T09:30:00+01:00")
	add("giulia", "2026-11-23T07:00:00Z")      // 08:00 in Rome: the day's first
	add("giulia", "2026-11-22T23:30:00Z")      // 00:30 in Rome: today too
	add("giulia", "2026-11-23T23:30:00Z")      // 00:30 tomorrow in Rome
	add("giulia", "2026-11-22T18:00:00+01:00") // yesterday
	add("ahmed", "2026-11-23T10:00:00+01:00")  // another mediator
	day := time.Date(2026, 11, 23, 0, 0, 0, 0, rome)
	got, err := c.Appointments(ctx, "giulia", day, day.AddDate(0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	var starts []string
	for _, a := range got {
		starts = append(starts, a.Start)
	}
	want := []string{"2026-11-22T23:30:00Z", "2026-11-23T07:00:00Z", "2026-11-23T09:30:00+01:00"}
	if !slices.Equal(starts, want) {
		t.Errorf("giulia's day = %q, want %q", starts, want)
	}
}
