package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/ponte-project/ponte/records"
)

// Indicators are a programme's figures for a period and, optionally, one
// site, computed over the merged data. Every count of persons counts each
// person once.
type Indicators struct {
	From time.Time `json:"from"` // inclusive
	To   time.Time `json:"to"`   // exclusive
	Site string    `json:"site,omitempty"`

	// Distinct persons reached, in all and by action: taken in (intake
	// date, i.e. consent date, in the period), met at an appointment held,
	// present or late at a lesson.
	Reached struct {
		Total        int `json:"total"`
		Intake       int `json:"intake"`
		Appointments int `json:"appointments"`
		Courses      int `json:"courses"`
	} `json:"reached"`
	Appointments struct {
		Held       int     `json:"held"`
		NoShow     int     `json:"no_show"`
		Cancelled  int     `json:"cancelled"`
		Scheduled  int     `json:"scheduled"`
		NoShowRate float64 `json:"no_show_rate"` // no-shows / (held + no-shows)
	} `json:"appointments"`
	LessonsHeld int             `json:"lessons_held"`
	Courses     []CourseFigures `json:"courses"`
	// Behind holds the persons behind each count of persons, by name:
	// "reached", "intake", "appointments", "courses", "at_risk".
	Behind map[string][]string `json:"-"`
	// AtRisk lists, for every course, the persons missing the attendance
	// their certificate needs (records.AttendanceRate.AtRisk), as of To or
	// now, whichever is earlier.
	AtRisk []AtRisk `json:"at_risk"`
}

// CourseFigures are one course's figures for the period.
type CourseFigures struct {
	ID          string            `json:"id"`
	Title       map[string]string `json:"title"`
	Level       string            `json:"level"`
	Site        string            `json:"site"`
	Enrolled    int               `json:"enrolled"`
	LessonsHeld int               `json:"lessons_held"`
	// AttendanceRate is attended marks (present, late) over all marks of
	// the period's lessons.
	AttendanceRate float64 `json:"attendance_rate"`
	AtRisk         int     `json:"at_risk"`
	// LastLesson is the latest lesson held by now, whose register a
	// person may want to open; "" before the first.
	LastLesson string `json:"last_lesson,omitempty"`
}

// AtRisk is a person at risk of missing their certificate.
type AtRisk struct {
	PersonID   string  `json:"person_id"`
	GivenName  string  `json:"given_name"`
	FamilyName string  `json:"family_name"`
	CourseID   string  `json:"course_id"`
	Rate       float64 `json:"rate"`
	CanQualify bool    `json:"can_qualify"`
}

// ComputeIndicators computes the indicators of [from, to) for site ("" for
// every site), judging lessons held and attendance as of now.
func (s *Store) ComputeIndicators(ctx context.Context, from, to time.Time, site string, now time.Time) (*Indicators, error) {
	tx, err := s.db.Reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("indicators: %w", err)
	}
	defer tx.Rollback()
	in := &Indicators{From: from, To: to, Site: site, Courses: []CourseFigures{}, AtRisk: []AtRisk{}}
	reached, intake := map[string]bool{}, map[string]bool{}
	atSite := func(v string) bool { return site == "" || v == site }

	// Intake: persons whose consent date (or, without one, first write)
	// falls in the period.
	err = eachJSON(ctx, tx, `SELECT r.id, r.data, (SELECT min(m.received_at) FROM mutations m WHERE m.record = r.rid)
		FROM records r WHERE r.collection = 'persons' AND r.data <> '{}'`, func(id string, data []byte, first int64) error {
		var p records.Person
		if err := json.Unmarshal(data, &p); err != nil {
			return fmt.Errorf("person %s: %w", id, err)
		}
		day := p.ConsentDate
		if day == "" {
			day = time.UnixMilli(first).UTC().Format(time.DateOnly)
		}
		if atSite(p.SiteID) && day >= from.UTC().Format(time.DateOnly) && day < to.UTC().Format(time.DateOnly) {
			in.Reached.Intake++
			reached[id], intake[id] = true, true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("indicators: %w", err)
	}

	// Appointments starting in the period.
	met := map[string]bool{}
	err = eachJSON(ctx, tx, `SELECT id, data, 0 FROM records WHERE collection = 'appointments' AND data <> '{}'`,
		func(id string, data []byte, _ int64) error {
			var a records.Appointment
			if err := json.Unmarshal(data, &a); err != nil {
				return fmt.Errorf("appointment %s: %w", id, err)
			}
			start, err := time.Parse(time.RFC3339, a.Start)
			if err != nil || !atSite(a.SiteID) || start.Before(from) || !start.Before(to) {
				return nil
			}
			switch a.Status {
			case "held":
				in.Appointments.Held++
				met[a.PersonID] = true
			case "no_show":
				in.Appointments.NoShow++
			case "cancelled":
				in.Appointments.Cancelled++
			default:
				in.Appointments.Scheduled++
			}
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("indicators: %w", err)
	}
	in.Reached.Appointments = len(met)
	for p := range met {
		reached[p] = true
	}
	if n := in.Appointments.Held + in.Appointments.NoShow; n > 0 {
		in.Appointments.NoShowRate = float64(in.Appointments.NoShow) / float64(n)
	}

	// Courses, their lessons, enrolments and marks.
	courses := map[string]*records.Course{}
	if err := eachJSON(ctx, tx, `SELECT id, data, 0 FROM records WHERE collection = 'courses' AND data <> '{}'`,
		func(id string, data []byte, _ int64) error {
			var c records.Course
			if err := json.Unmarshal(data, &c); err != nil {
				return fmt.Errorf("course %s: %w", id, err)
			}
			if atSite(c.SiteID) {
				courses[id] = &c
			}
			return nil
		}); err != nil {
		return nil, fmt.Errorf("indicators: %w", err)
	}
	lessons := map[string][]records.LessonTime{} // course → lessons
	lessonCourse := map[string]string{}
	if err := eachJSON(ctx, tx, `SELECT id, data, 0 FROM records WHERE collection = 'lessons' AND data <> '{}'`,
		func(id string, data []byte, _ int64) error {
			var l records.Lesson
			if err := json.Unmarshal(data, &l); err != nil {
				return fmt.Errorf("lesson %s: %w", id, err)
			}
			start, err := time.Parse(time.RFC3339, l.Start)
			if err != nil || courses[l.CourseID] == nil {
				return nil
			}
			lessons[l.CourseID] = append(lessons[l.CourseID], records.LessonTime{ID: id, Start: start,
				DurationMinutes: l.DurationMinutes, Cancelled: l.Status == "cancelled"})
			lessonCourse[id] = l.CourseID
			return nil
		}); err != nil {
		return nil, fmt.Errorf("indicators: %w", err)
	}
	enrolled := map[string][]string{} // course → persons
	if err := eachJSON(ctx, tx, `SELECT id, data, 0 FROM records WHERE collection = 'enrolments' AND data <> '{}'`,
		func(id string, data []byte, _ int64) error {
			var e records.Enrolment
			if err := json.Unmarshal(data, &e); err != nil {
				return fmt.Errorf("enrolment %s: %w", id, err)
			}
			if courses[e.CourseID] != nil && e.Status != "withdrawn" {
				enrolled[e.CourseID] = append(enrolled[e.CourseID], e.PersonID)
			}
			return nil
		}); err != nil {
		return nil, fmt.Errorf("indicators: %w", err)
	}
	marks := map[string]map[string]string{} // lesson → person → mark
	if err := eachJSON(ctx, tx, `SELECT id, data, 0 FROM records WHERE collection = 'attendance' AND data <> '{}'`,
		func(id string, data []byte, _ int64) error {
			var a records.AttendanceMark
			if err := json.Unmarshal(data, &a); err != nil {
				return fmt.Errorf("mark %s: %w", id, err)
			}
			if lessonCourse[a.LessonID] == "" {
				return nil
			}
			if marks[a.LessonID] == nil {
				marks[a.LessonID] = map[string]string{}
			}
			marks[a.LessonID][a.PersonID] = a.Mark
			return nil
		}); err != nil {
		return nil, fmt.Errorf("indicators: %w", err)
	}
	asOf := to
	if to.After(now) {
		asOf = now
	}
	attendedAny := map[string]bool{}
	var risky []AtRisk
	for id, c := range courses {
		f := CourseFigures{ID: id, Title: c.Title, Level: c.Level, Site: c.SiteID, Enrolled: len(enrolled[id])}
		var all, attended int
		var last time.Time
		for _, l := range lessons[id] {
			if !l.Cancelled && !l.Start.After(now) && l.Start.After(last) {
				last, f.LastLesson = l.Start, l.ID
			}
			if l.Cancelled || l.Start.Before(from) || !l.Start.Before(to) || l.Start.After(now) {
				continue
			}
			f.LessonsHeld++
			for p, m := range marks[l.ID] {
				all++
				if records.Attended(m) {
					attended++
					attendedAny[p] = true
				}
			}
		}
		if all > 0 {
			f.AttendanceRate = float64(attended) / float64(all)
		}
		for _, r := range records.AttendanceRates(*c, lessons[id], enrolled[id], marks, asOf) {
			if r.AtRisk() && r.HeldMinutes > 0 {
				f.AtRisk++
				risky = append(risky, AtRisk{PersonID: r.PersonID, CourseID: id, Rate: r.Rate, CanQualify: r.CanQualify})
			}
		}
		in.LessonsHeld += f.LessonsHeld
		in.Courses = append(in.Courses, f)
	}
	in.Reached.Courses = len(attendedAny)
	for p := range attendedAny {
		reached[p] = true
	}
	in.Reached.Total = len(reached)
	in.Behind = map[string][]string{"reached": keys(reached), "intake": keys(intake), "appointments": keys(met),
		"courses": keys(attendedAny)}
	atRisk := map[string]bool{}
	for _, r := range risky {
		atRisk[r.PersonID] = true
	}
	in.Behind["at_risk"] = keys(atRisk)
	for i := range risky {
		var data []byte
		err := tx.QueryRowContext(ctx, `SELECT data FROM records WHERE `+byKey, records.Persons, risky[i].PersonID).Scan(&data)
		if err == nil {
			var p records.Person
			if json.Unmarshal(data, &p) == nil {
				risky[i].GivenName, risky[i].FamilyName = p.GivenName, p.FamilyName
			}
		}
	}
	slices.SortFunc(in.Courses, func(a, b CourseFigures) int { return cmp.Or(cmp.Compare(a.Level, b.Level), cmp.Compare(a.ID, b.ID)) })
	slices.SortFunc(risky, func(a, b AtRisk) int {
		return cmp.Or(cmp.Compare(a.Rate, b.Rate), cmp.Compare(a.CourseID, b.CourseID), cmp.Compare(a.PersonID, b.PersonID))
	})
	in.AtRisk = append(in.AtRisk, risky...)
	return in, nil
}

func keys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// eachJSON runs a query of (id, data, integer) rows and calls fn on each.
func eachJSON(ctx context.Context, tx *sql.Tx, query string, fn func(id string, data []byte, n int64) error) error {
	rows, err := tx.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var data []byte
		var n sql.NullInt64
		if err := rows.Scan(&id, &data, &n); err != nil {
			return err
		}
		if err := fn(id, data, n.Int64); err != nil {
			return err
		}
	}
	return rows.Err()
}
