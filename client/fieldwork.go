package client

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ponte-project/ponte/internal/sqlitedb"
	"github.com/ponte-project/ponte/records"
)

// The questions mediators and teachers ask the replica all day, answered
// from the views and indexes of migrations/0002_records.sql, offline.

// ErrUnknownUser is returned by MarkAttendance on a replica that has not
// synced yet, so does not know whose device it is.
var ErrUnknownUser = errors.New("the replica does not know its user yet")

// User returns the user name the server gave this device's token, learnt at
// the last sync; "" before the first.
func (c *Client) User(ctx context.Context) (string, error) {
	m, err := meta(ctx, c.db.Reader, "user")
	if err != nil {
		return "", fmt.Errorf("user: %w", err)
	}
	return m["user"], nil
}

// MarkAttendance records a person's mark for a lesson (records.MarkPresent,
// MarkAbsent, MarkLate or MarkExcused), marked by this device's user. The
// mark's id is records.AttendanceID(lesson, person): two teachers marking
// the same person offline converge on one mark, and the other is kept as a
// conflict. It fails with ErrUnknownUser before the first sync, with
// ErrNotFound for a lesson the replica does not hold, and with
// ErrInvalidWrite for a bad mark or id.
func (c *Client) MarkAttendance(ctx context.Context, lessonID, personID, mark string) error {
	user, err := c.User(ctx)
	if err != nil {
		return err
	}
	if user == "" {
		return fmt.Errorf("mark attendance: %w", ErrUnknownUser)
	}
	var courseID string
	err = c.db.Reader.QueryRowContext(ctx, `SELECT course_id FROM lessons WHERE id = ?`, lessonID).Scan(&courseID)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("mark attendance: lesson %s: %w", lessonID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("mark attendance: %w", err)
	}
	return c.Put(ctx, records.Attendance, records.AttendanceID(lessonID, personID), map[string]any{
		"lesson_id": lessonID, "course_id": courseID, "person_id": personID, "mark": mark, "marked_by": user,
		"marked_at": c.opts.Now().UTC().Format(time.RFC3339),
	})
}

// RegisterEntry is one line of a lesson's register: an enrolled person and
// their mark, or none.
type RegisterEntry struct {
	PersonID        string `json:"person_id"`
	GivenName       string `json:"given_name"`
	FamilyName      string `json:"family_name"`
	GivenNameLatin  string `json:"given_name_latin,omitempty"`
	FamilyNameLatin string `json:"family_name_latin,omitempty"`
	Mark            string `json:"mark,omitempty"` // "" when not marked yet
	MarkedBy        string `json:"marked_by,omitempty"`
}

// Register returns the register of a lesson: every person enrolled on its
// course (not withdrawn) with their mark, or none, sorted by name. Names are
// empty for a person the replica does not hold. A lesson the replica does
// not hold is ErrNotFound.
func (c *Client) Register(ctx context.Context, lessonID string) ([]RegisterEntry, error) {
	var courseID string
	err := c.db.Reader.QueryRowContext(ctx, `SELECT course_id FROM lessons WHERE id = ?`, lessonID).Scan(&courseID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("register of lesson %s: %w", lessonID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("register of lesson %s: %w", lessonID, err)
	}
	rows, err := c.db.Reader.QueryContext(ctx, `
		SELECT e.person_id, coalesce(p.given_name, ''), coalesce(p.family_name, ''),
			coalesce(p.given_name_latin, ''), coalesce(p.family_name_latin, ''),
			coalesce(a.mark, ''), coalesce(a.marked_by, '')
		FROM enrolments e
		LEFT JOIN persons p ON p.id = e.person_id
		LEFT JOIN attendance a ON a.lesson_id = ? AND a.person_id = e.person_id
		WHERE e.course_id = ? AND e.status <> 'withdrawn'
		ORDER BY casefold(coalesce(p.family_name_latin, p.family_name, '')),
			casefold(coalesce(p.given_name_latin, p.given_name, '')), e.person_id`, lessonID, courseID)
	if err != nil {
		return nil, fmt.Errorf("register of lesson %s: %w", lessonID, err)
	}
	defer rows.Close()
	out := []RegisterEntry{}
	for rows.Next() {
		var e RegisterEntry
		if err := rows.Scan(&e.PersonID, &e.GivenName, &e.FamilyName, &e.GivenNameLatin, &e.FamilyNameLatin,
			&e.Mark, &e.MarkedBy); err != nil {
			return nil, fmt.Errorf("register of lesson %s: %w", lessonID, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("register of lesson %s: %w", lessonID, err)
	}
	return out, nil
}

// CourseAttendance returns, at now, each enrolled person's attendance rate
// in a course and whether they are on track for its certificate (see
// records.AttendanceRates). A course the replica does not hold is
// ErrNotFound.
func (c *Client) CourseAttendance(ctx context.Context, courseID string, now time.Time) ([]records.AttendanceRate, error) {
	fail := func(err error) ([]records.AttendanceRate, error) {
		return nil, fmt.Errorf("attendance in course %s: %w", courseID, err)
	}
	// One read transaction: the course, its lessons and marks as of one moment.
	tx, err := c.db.Reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback()
	var data []byte
	err = tx.QueryRowContext(ctx, `SELECT data FROM records WHERE collection = 'courses' AND id = ?`, courseID).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return fail(ErrNotFound)
	}
	if err != nil {
		return fail(err)
	}
	var course records.Course
	if err := json.Unmarshal(data, &course); err != nil {
		return fail(err)
	}
	var lessons []records.LessonTime
	if err := eachRow(ctx, tx, `SELECT id, start, duration_minutes, coalesce(status, '') FROM lessons WHERE course_id = ?`,
		[]any{courseID}, func(rows *sql.Rows) error {
			var l records.LessonTime
			var start, status string
			if err := rows.Scan(&l.ID, &start, &l.DurationMinutes, &status); err != nil {
				return err
			}
			if l.Start, err = time.Parse(time.RFC3339, start); err != nil {
				return err
			}
			l.Cancelled = status == "cancelled"
			lessons = append(lessons, l)
			return nil
		}); err != nil {
		return fail(err)
	}
	var persons []string
	if err := eachRow(ctx, tx, `SELECT person_id FROM enrolments WHERE course_id = ? AND status <> 'withdrawn'`,
		[]any{courseID}, func(rows *sql.Rows) error {
			var p string
			persons = append(persons, p)
			return rows.Scan(&persons[len(persons)-1])
		}); err != nil {
		return fail(err)
	}
	marks := map[string]map[string]string{}
	if err := eachRow(ctx, tx, `SELECT a.lesson_id, a.person_id, a.mark FROM lessons l
		JOIN attendance a ON a.lesson_id = l.id WHERE l.course_id = ?`, []any{courseID}, func(rows *sql.Rows) error {
		var lesson, person, mark string
		if err := rows.Scan(&lesson, &person, &mark); err != nil {
			return err
		}
		if marks[lesson] == nil {
			marks[lesson] = map[string]string{}
		}
		marks[lesson][person] = mark
		return nil
	}); err != nil {
		return fail(err)
	}
	return records.AttendanceRates(course, lessons, persons, marks, now), nil
}

// Appointment is an appointment with its id.
type Appointment struct {
	ID string `json:"id"`
	records.Appointment
}

// Appointments returns a mediator's appointments that start in [from, to),
// in start order: today's are Appointments(ctx, name, midnight,
// midnight.AddDate(0, 0, 1)).
func (c *Client) Appointments(ctx context.Context, mediator string, from, to time.Time) ([]Appointment, error) {
	const layout = time.DateTime // datetime()'s form, in UTC
	var out []Appointment
	err := eachRow(ctx, c.db.Reader, `SELECT id, data FROM replica_records
		WHERE collection = 'appointments' AND deleted = 0 AND json_extract(data, '$.mediator') = ?
		AND datetime(json_extract(data, '$.start')) >= ? AND datetime(json_extract(data, '$.start')) < ?
		ORDER BY datetime(json_extract(data, '$.start')), id`,
		[]any{mediator, from.UTC().Format(layout), to.UTC().Format(layout)}, func(rows *sql.Rows) error {
			var a Appointment
			var data []byte
			if err := rows.Scan(&a.ID, &data); err != nil {
				return err
			}
			if err := json.Unmarshal(data, &a.Appointment); err != nil {
				return fmt.Errorf("appointment %s: %w", a.ID, err)
			}
			out = append(out, a)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("appointments of %s: %w", mediator, err)
	}
	return out, nil
}

// PersonMatch is a person found by name.
type PersonMatch struct {
	ID string `json:"id"`
	records.Person
}

// SearchPersons returns the persons whose names, as they write them or in
// Latin script, contain query, ignoring case in every script (Оксана is
// found by "ОКСАНА", Ömer by "ömer"); at most limit, by name.
func (c *Client) SearchPersons(ctx context.Context, query string, limit int) ([]PersonMatch, error) {
	var out []PersonMatch
	err := eachRow(ctx, c.db.Reader, `SELECT id, data FROM records WHERE collection = 'persons'
		AND instr(casefold(concat_ws(' ', data->>'given_name', data->>'family_name',
			data->>'given_name_latin', data->>'family_name_latin')), ?) > 0
		ORDER BY casefold(coalesce(data->>'family_name_latin', data->>'family_name', '')), id LIMIT ?`,
		[]any{sqlitedb.CaseFold(query), limit}, func(rows *sql.Rows) error {
			var p PersonMatch
			var data []byte
			if err := rows.Scan(&p.ID, &data); err != nil {
				return err
			}
			if err := json.Unmarshal(data, &p.Person); err != nil {
				return fmt.Errorf("person %s: %w", p.ID, err)
			}
			out = append(out, p)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("search persons: %w", err)
	}
	return out, nil
}

// eachRow runs query and calls fn for each row.
func eachRow(ctx context.Context, db interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string, args []any, fn func(*sql.Rows) error) error {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
