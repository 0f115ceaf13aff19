package store_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ponte-project/ponte/records"
	"github.com/ponte-project/ponte/server/store"
	"github.com/ponte-project/ponte/syncproto"
)

// TestStore_Indicators computes the figures of a small programme whose
// every figure is worked out by hand in the comments.
func TestStore_Indicators(t *testing.T) {
	st := mustOpen(t, filepath.Join(t.TempDir(), "s.db"), store.Options{Schema: records.Schema})
	ctx := context.Background()
	s1, s2 := uuid.NewString(), uuid.NewString()
	p1, p2, p3, p4 := uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()
	c1 := uuid.NewString()
	l1, l2, l3, l4 := uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()
	wall := time.Now().UnixMilli()
	var muts []syncproto.Mutation
	add := func(collection, id string, fields map[string]any) {
		data := map[string]json.RawMessage{}
		for k, v := range fields {
			data[k], _ = json.Marshal(v)
		}
		muts = append(muts, syncproto.Mutation{ID: uuid.Must(uuid.NewV7()).String(), Collection: collection, Record: id,
			Op: syncproto.OpPut, Data: data, Stamp: syncproto.Stamp{Wall: wall, Counter: uint16(len(muts)), Node: node}})
	}
	person := func(id, site, consent string) {
		add(records.Persons, id, map[string]any{"site_id": site, "given_name": "N" + id[:4], "family_name": "F",
			"consent_given": true, "consent_date": consent, "consent_language": "it"})
	}
	person(p1, s1, "2026-10-05")
	person(p2, s1, "2026-09-01") // taken in before the period
	person(p3, s2, "2026-10-10")
	person(p4, s1, "2026-10-20")
	appt := func(p, site, start, status string) {
		s, _ := time.Parse(time.RFC3339, start)
		add(records.Appointments, uuid.NewString(), map[string]any{"person_id": p, "mediator": "m", "site_id": site,
			"start": start, "end": s.Add(time.Hour).Format(time.RFC3339), "kind": "orientation", "status": status})
	}
	appt(p1, s1, "2026-10-03T09:00:00Z", "held")
	appt(p1, s1, "2026-10-04T09:00:00Z", "held") // the same person again: reached once
	appt(p2, s1, "2026-10-06T09:00:00Z", "no_show")
	appt(p3, s2, "2026-10-07T09:00:00Z", "held")
	appt(p2, s1, "2026-11-05T09:00:00Z", "held") // after the period
	appt(p4, s1, "2026-10-08T09:00:00Z", "cancelled")
	add(records.Courses, c1, map[string]any{"title": map[string]string{"it": "Italiano A1"}, "level": "A1", "site_id": s1,
		"teachers": []string{"t"}, "planned_hours": 4, "certificate_attendance": 0.75})
	lesson := func(id, start string, minutes int, status string) {
		f := map[string]any{"course_id": c1, "start": start, "duration_minutes": minutes}
		if status != "" {
			f["status"] = status
		}
		add(records.Lessons, id, f)
	}
	lesson(l1, "2026-10-10T18:00:00Z", 60, "")
	lesson(l2, "2026-10-17T18:00:00Z", 60, "")
	lesson(l3, "2026-10-24T18:00:00Z", 60, "cancelled")
	lesson(l4, "2026-11-20T18:00:00Z", 120, "") // after now
	for p, status := range map[string]string{p2: "active", p4: "active", p1: "withdrawn"} {
		add(records.Enrolments, records.EnrolmentID(c1, p), map[string]any{"course_id": c1, "person_id": p, "status": status})
	}
	mark := func(l, p, m string) {
		add(records.Attendance, records.AttendanceID(l, p), map[string]any{"lesson_id": l, "course_id": c1, "person_id": p,
			"mark": m, "marked_by": "t"})
	}
	mark(l1, p2, "present")
	mark(l1, p4, "absent")
	mark(l2, p2, "late")
	mark(l2, p4, "present")
	for _, r := range mustApply(t, st, muts...) {
		if r.Status != syncproto.StatusApplied {
			t.Fatalf("setup write refused: %+v", r)
		}
	}

	from := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	to := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	now := time.Date(2026, 10, 30, 12, 0, 0, 0, time.UTC)
	in, err := st.ComputeIndicators(ctx, from, to, "", now)
	if err != nil {
		t.Fatal(err)
	}
	// Intake: p1, p3, p4 (p2's consent is before the period).
	// Appointments held: p1 twice, p3 → 3 held, 2 persons; p2 no-show;
	// p4 cancelled; p2's held one is after the period. No-show rate 1/4.
	// Lessons held: l1 and l2 (l3 cancelled, l4 after now).
	// Marks of l1, l2: 4, attended 3 (p2 ×2, p4 once) → 0.75; persons p2, p4.
	// Reached: {p1, p3, p4} ∪ {p1, p3} ∪ {p2, p4} = 4.
	check := func(name string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	check("reached.intake", in.Reached.Intake, 3)
	check("reached.appointments", in.Reached.Appointments, 2)
	check("reached.courses", in.Reached.Courses, 2)
	check("reached.total", in.Reached.Total, 4)
	check("appointments.held", in.Appointments.Held, 3)
	check("appointments.no_show", in.Appointments.NoShow, 1)
	check("appointments.cancelled", in.Appointments.Cancelled, 1)
	check("appointments.no_show_rate", in.Appointments.NoShowRate, 0.25)
	check("lessons_held", in.LessonsHeld, 2)
	if got, want := in.Behind["intake"], sortedIDs(p1, p3, p4); !slices.Equal(got, want) {
		t.Errorf("persons behind intake = %v, want %v", got, want)
	}
	if got, want := in.Behind["reached"], sortedIDs(p1, p2, p3, p4); !slices.Equal(got, want) {
		t.Errorf("persons behind reached = %v, want %v", got, want)
	}
	if len(in.Courses) != 1 {
		t.Fatalf("courses = %+v", in.Courses)
	}
	c := in.Courses[0]
	check("course.enrolled", c.Enrolled, 2)
	check("course.lessons_held", c.LessonsHeld, 2)
	check("course.attendance_rate", c.AttendanceRate, 0.75)
	// As of now: held 120 minutes; p2 attended 120 (on track), p4 60: a
	// rate of 0.5 < 0.75, so at risk, though 60 + the 120 left reach the
	// 0.75 × 240 = 180 minutes needed: p4 can still qualify.
	check("course.at_risk", c.AtRisk, 1)
	if len(in.AtRisk) != 1 || in.AtRisk[0].PersonID != p4 || in.AtRisk[0].Rate != 0.5 || !in.AtRisk[0].CanQualify ||
		in.AtRisk[0].GivenName != "N"+p4[:4] {
		t.Errorf("at risk = %+v, want p4 at 0.5, able to qualify", in.AtRisk)
	}

	// One site: s2 has p3's intake and held appointment, and no course.
	in, err = st.ComputeIndicators(ctx, from, to, s2, now)
	if err != nil {
		t.Fatal(err)
	}
	check("s2 reached.total", in.Reached.Total, 1)
	check("s2 reached.intake", in.Reached.Intake, 1)
	check("s2 appointments.held", in.Appointments.Held, 1)
	check("s2 no_show_rate", in.Appointments.NoShowRate, 0.0)
	check("s2 courses", len(in.Courses), 0)
}

func sortedIDs(ids ...string) []string {
	slices.Sort(ids)
	return ids
}
