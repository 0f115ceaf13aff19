package records_test

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ponte-project/ponte/locales"
	"github.com/ponte-project/ponte/records"
	"github.com/ponte-project/ponte/syncproto"
)

var now = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

const (
	site   = "3f2b8c1e-5d4a-4e1b-9c2d-7a6b5c4d3e2f"
	person = "018f3a2b-7c4d-7e5f-8a9b-0c1d2e3f4a5b"
	course = "11111111-2222-4333-8444-555555555555"
	lesson = "66666666-7777-4888-9999-aaaaaaaaaaaa"
)

// fields decodes a JSON object into record fields.
func fields(t *testing.T, s string) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("bad test JSON %s: %v", s, err)
	}
	return m
}

// with returns base with the fields of patch set over it; a patch value of
// null removes the field.
func with(t *testing.T, base, patch string) string {
	t.Helper()
	b, p := fields(t, base), fields(t, patch)
	for k, v := range p {
		if string(v) == "null" {
			delete(b, k)
		} else {
			b[k] = v
		}
	}
	out, _ := json.Marshal(b)
	return string(out)
}

// The intake form the issue requires to be valid.
const validPerson = `{"site_id":"` + site + `","given_name":"أمينة","family_name":"حداد","given_name_latin":"Amina",
	"family_name_latin":"Haddad","birth_date":"1994-03-12","nationality":"MA","languages":["ar","fr"],
	"consent_given":true,"consent_date":"2026-11-20","consent_language":"ar"}`

const validAppointment = `{"person_id":"` + person + `","mediator":"giulia","site_id":"` + site + `",
	"start":"2026-11-24T09:30:00+01:00","end":"2026-11-24T10:15:00+01:00","kind":"orientation",
	"interpreting_language":"ti","status":"scheduled","outcome_notes":""}`

const validCourse = `{"title":{"it":"Italiano A2","en":"Italian A2","ar":"الإيطالية A2"},"level":"A2","site_id":"` + site + `",
	"teachers":["marco"],"planned_hours":60,"certificate_attendance":0.7,"start_date":"2026-10-01","end_date":"2027-01-31"}`

const validLesson = `{"course_id":"` + course + `","start":"2026-11-24T18:00:00+01:00","duration_minutes":120,"topic":"Al mercato","status":"scheduled"}`

var (
	enrolmentID  = records.EnrolmentID(course, person)
	attendanceID = records.AttendanceID(lesson, person)
)

const validEnrolment = `{"course_id":"` + course + `","person_id":"` + person + `","status":"active","enrolled_date":"2026-10-01"}`

const validAttendance = `{"lesson_id":"` + lesson + `","course_id":"` + course + `","person_id":"` + person + `","mark":"present","marked_by":"marco","marked_at":"2026-11-24T18:05:00+01:00"}`

// fieldRules flattens a check's outcome to "field rule" strings.
func fieldRules(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var e *syncproto.Error
	if !errors.As(err, &e) || !errors.Is(err, syncproto.ErrInvalid) {
		t.Fatalf("check returned %v, want a *syncproto.Error with code invalid", err)
	}
	out := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		out[i] = f.Field + " " + f.Rule
	}
	return out
}

func TestSchema_Check(t *testing.T) {
	newID := uuid.NewString()
	tests := []struct {
		name, collection, id, data string
		want                       []string // "field rule", sorted by field
	}{
		{"person from the issue", records.Persons, newID, validPerson, nil},
		{"person: only names before consent", records.Persons, newID,
			`{"site_id":"` + site + `","given_name":"Тесфай"}`, nil},
		{"person: every field", records.Persons, newID, with(t, validPerson, `{"gender":"female","arrival_date":"2023-05-02",
			"phone":"+393471234567","email":"amina@example.org","education_level":"upper_secondary","employment_status":"unemployed",
			"needs":["housing","language"],"notes":"prefers mornings"}`), nil},
		{"person: missing site and name", records.Persons, newID, `{"family_name":"Haddad"}`,
			[]string{"given_name required", "site_id required"}},
		{"person: sensitive fields without consent", records.Persons, newID,
			with(t, validPerson, `{"consent_given":false,"consent_date":null,"consent_language":null}`),
			[]string{"birth_date consent_required", "languages consent_required", "nationality consent_required"}},
		{"person: consent without its date and language", records.Persons, newID,
			with(t, validPerson, `{"consent_date":null,"consent_language":null}`),
			[]string{"consent_date required", "consent_language required"}},
		{"person: birth in the future", records.Persons, newID, with(t, validPerson, `{"birth_date":"2027-01-01"}`),
			[]string{"birth_date past"}},
		{"person: bad codes", records.Persons, newID,
			with(t, validPerson, `{"nationality":"Morocco","languages":["ar","arabic"],"phone":"3471234567","email":"amina@","birth_date":"12/03/1994"}`),
			[]string{"birth_date date", "email email", "languages[1] iso639", "nationality iso3166_1_alpha2", "phone e164"}},
		{"person: enumerations", records.Persons, newID,
			with(t, validPerson, `{"gender":"f","needs":["housing","money"],"education_level":"phd","employment_status":"busy"}`),
			[]string{"education_level oneof", "employment_status oneof", "gender oneof", "needs[1] oneof"}},
		{"person: latin names in Latin script", records.Persons, newID, with(t, validPerson, `{"given_name_latin":"أمينة"}`),
			[]string{"given_name_latin latin"}},
		{"person: sizes", records.Persons, newID,
			with(t, validPerson, `{"given_name":"`+strings.Repeat("ا", 201)+`","notes":"`+strings.Repeat("x", 4001)+`"}`),
			[]string{"given_name max_length", "notes max_length"}},
		{"person: repeated language", records.Persons, newID, with(t, validPerson, `{"languages":["ar","ar"]}`),
			[]string{"languages unique"}},
		{"person: arrival before birth", records.Persons, newID, with(t, validPerson, `{"arrival_date":"1990-01-01"}`),
			[]string{"arrival_date after"}},
		{"person: unknown field and wrong type", records.Persons, newID,
			with(t, validPerson, `{"religion":"x","consent_given":"yes","languages":"ar"}`),
			[]string{"consent_given type", "languages type", "religion unknown_field"}},
		{"person: id is not a UUID", records.Persons, "amina", validPerson, []string{"id uuid"}},
		{"person: id in upper case", records.Persons, strings.ToUpper(newID), validPerson, []string{"id uuid"}},
		{"person: null clears a field", records.Persons, newID, with(t, validPerson, `{"notes":null}`), nil},

		{"appointment", records.Appointments, newID, validAppointment, nil},
		{"appointment: ends before it starts", records.Appointments, newID,
			with(t, validAppointment, `{"end":"2026-11-24T09:00:00+01:00"}`), []string{"end after"}},
		{"appointment: missing and bad", records.Appointments, newID,
			with(t, validAppointment, `{"person_id":null,"kind":"party","status":"done","start":"tomorrow","interpreting_language":"tigrinya"}`),
			[]string{"interpreting_language iso639", "kind oneof", "person_id required", "start time", "status oneof"}},

		{"course", records.Courses, newID, validCourse, nil},
		{"course: no title, bad level, no teacher", records.Courses, newID,
			with(t, validCourse, `{"title":{},"level":"B3","teachers":[],"planned_hours":0,"certificate_attendance":1.5}`),
			[]string{"certificate_attendance lte", "level oneof", "planned_hours required", "teachers min_items", "title min_items"}},
		{"course: title in an unknown language", records.Courses, newID, with(t, validCourse, `{"title":{"xx1":"Italiano"}}`),
			[]string{"title[xx1] iso639"}},
		{"course: ends before it starts", records.Courses, newID, with(t, validCourse, `{"end_date":"2026-09-01"}`),
			[]string{"end_date after"}},

		{"enrolment", records.Enrolments, enrolmentID, validEnrolment, nil},
		{"enrolment: id not derived", records.Enrolments, newID, validEnrolment, []string{"id derived_id"}},

		{"lesson", records.Lessons, newID, validLesson, nil},
		{"lesson: no duration", records.Lessons, newID, with(t, validLesson, `{"duration_minutes":0}`),
			[]string{"duration_minutes required"}},
		{"lesson: too long", records.Lessons, newID, with(t, validLesson, `{"duration_minutes":601}`),
			[]string{"duration_minutes lte"}},
		{"lesson: fractional duration", records.Lessons, newID, with(t, validLesson, `{"duration_minutes":1.5}`),
			[]string{"duration_minutes type"}},

		{"attendance", records.Attendance, attendanceID, validAttendance, nil},
		{"attendance: bad mark, no marker", records.Attendance, attendanceID,
			with(t, validAttendance, `{"mark":"here","marked_by":null}`), []string{"mark oneof", "marked_by required"}},
		{"attendance: id not derived from lesson and person", records.Attendance, records.AttendanceID(lesson, newID),
			validAttendance, []string{"id derived_id"}},

		{"unknown collection", "notes", newID, `{"text":"x"}`, []string{"notes unknown_collection"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := records.Schema.Check(tt.collection, tt.id, fields(t, tt.data), now)
			got := fieldRules(t, err)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Check = %q, want %q", got, tt.want)
			}
			var e *syncproto.Error
			if !errors.As(err, &e) {
				return
			}
			// Each refusal reads as a sentence naming its field, in Italian,
			// English and Arabic alike.
			for _, lang := range []string{"it", "en", "ar"} {
				for _, f := range e.Fields {
					msg := locales.FieldText(locales.Localizer(lang), f)
					if !strings.HasPrefix(msg, f.Field+":") || strings.Contains(msg, "validation.") || strings.Contains(msg, "<no value>") {
						t.Errorf("%s: %s %s reads %q", lang, f.Field, f.Rule, msg)
					}
				}
			}
		})
	}
}

// TestSchema_CheckMessages renders every refusal of one bad write in three
// languages: each names its field and none falls back to an id or to
// English.
func TestSchema_CheckMessages(t *testing.T) {
	data := fields(t, with(t, validPerson, `{"birth_date":"2030-01-01","phone":"12","given_name":"`+strings.Repeat("a", 201)+`"}`))
	err := records.Schema.Check(records.Persons, uuid.NewString(), data, now)
	var e *syncproto.Error
	if !errors.As(err, &e) || len(e.Fields) != 3 {
		t.Fatalf("Check = %v, want three field errors", err)
	}
	english := locales.Explain(locales.Localizer("en"), e.Code, e.Fields)
	want := map[string][]string{
		"en": {"birth_date: cannot be in the future (today is 2026-11-23).", "given_name: must be at most 200 characters long.", "phone: must be a phone number"},
		"it": {"birth_date", "given_name", "200", "phone", "2026-11-23"},
		"ar": {"birth_date", "given_name", "200", "phone", "2026-11-23"},
	}
	for lang, parts := range want {
		msg := locales.Explain(locales.Localizer(lang), e.Code, e.Fields)
		for _, p := range parts {
			if !strings.Contains(msg, p) {
				t.Errorf("%s message %q lacks %q", lang, msg, p)
			}
		}
		if strings.Contains(msg, "validation.") || (lang != "en" && msg == english) {
			t.Errorf("%s message not localised: %q", lang, msg)
		}
		if got := strings.Count(msg, "\n") + 1; got != 3 {
			t.Errorf("%s message has %d lines, want one per field: %q", lang, got, msg)
		}
	}
}

// TestCatalogue_HasEveryRule checks that every rule a collection's fields
// use, and every rule the record-level checks report, has its message.
func TestCatalogue_HasEveryRule(t *testing.T) {
	rules := map[string]bool{"type": true, "unknown_field": true, "unknown_collection": true, "consent_required": true,
		"derived_id": true, "after": true, "uuid": true, "past": true, "required": true,
		"max_length": true, "min_length": true, "max_items": true, "min_items": true, "lte": true, "gte": true, "gt": true}
	for _, c := range records.Collections() {
		for _, tag := range records.Rules(c) {
			switch tag {
			case "omitempty", "dive", "keys", "endkeys", "max", "min":
				continue
			}
			rules[tag] = true
		}
	}
	for _, lang := range []string{"en", "it", "ar"} {
		l := locales.Localizer(lang)
		for _, rule := range slices.Sorted(maps.Keys(rules)) {
			f := syncproto.FieldError{Field: "f", Rule: rule, Param: "3"}
			if msg := locales.FieldText(l, f); strings.HasPrefix(msg, "validation.") || !strings.Contains(msg, "f") {
				t.Errorf("%s: rule %s has no message: %q", lang, rule, msg)
			}
		}
	}
}

func TestIDs_AreStableAndDistinct(t *testing.T) {
	a := records.AttendanceID(lesson, person)
	if a != records.AttendanceID(lesson, person) {
		t.Fatal("AttendanceID is not deterministic")
	}
	if a == records.AttendanceID(person, lesson) || a == records.EnrolmentID(lesson, person) {
		t.Fatal("ids of different things collide")
	}
	if u, err := uuid.Parse(a); err != nil || u.Version() != 5 {
		t.Fatalf("AttendanceID = %s, want a version 5 UUID (%v)", a, err)
	}
}
