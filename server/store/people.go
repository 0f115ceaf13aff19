package store

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/ponte-project/ponte/internal/sqlitedb"
	"github.com/ponte-project/ponte/records"
)

// PersonRow is a person as lists show them.
type PersonRow struct {
	ID string `json:"id"`
	records.Person
}

// SearchPersons returns up to limit persons (of site, or every site for
// "") whose names, in their script or in Latin letters, contain query,
// ignoring case in every script; all of them for an empty query. They come
// sorted by name.
func (s *Store) SearchPersons(ctx context.Context, query, site string, limit int) ([]PersonRow, error) {
	rows, err := s.db.Reader.QueryContext(ctx, `SELECT id, data FROM records WHERE collection = 'persons' AND data <> '{}'
		AND (? = '' OR json_extract(data, '$.site_id') = ?)
		AND instr(casefold(concat_ws(' ', data->>'given_name', data->>'family_name',
			data->>'given_name_latin', data->>'family_name_latin')), ?) > 0
		ORDER BY casefold(coalesce(data->>'family_name_latin', data->>'family_name', '')), casefold(data->>'given_name'), id
		LIMIT ?`, site, site, sqlitedb.CaseFold(query), limit)
	if err != nil {
		return nil, fmt.Errorf("search persons: %w", err)
	}
	defer rows.Close()
	out := []PersonRow{}
	for rows.Next() {
		var p PersonRow
		var data []byte
		if err := rows.Scan(&p.ID, &data); err != nil {
			return nil, fmt.Errorf("search persons: %w", err)
		}
		if err := json.Unmarshal(data, &p.Person); err != nil {
			return nil, fmt.Errorf("search persons: %s: %w", p.ID, err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// PersonsByID returns the persons with the given ids that exist, sorted by
// name.
func (s *Store) PersonsByID(ctx context.Context, ids []string) ([]PersonRow, error) {
	out := []PersonRow{}
	for _, id := range ids {
		var data []byte
		err := s.db.Reader.QueryRowContext(ctx, `SELECT data FROM records WHERE `+byKey+` AND data <> '{}'`,
			records.Persons, id).Scan(&data)
		if err != nil {
			continue // deleted, or never stored (an appointment's person may be)
		}
		p := PersonRow{ID: id}
		if err := json.Unmarshal(data, &p.Person); err != nil {
			return nil, fmt.Errorf("persons: %s: %w", id, err)
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b PersonRow) int {
		return cmp.Or(cmp.Compare(sqlitedb.CaseFold(a.FamilyName), sqlitedb.CaseFold(b.FamilyName)),
			cmp.Compare(sqlitedb.CaseFold(a.GivenName), sqlitedb.CaseFold(b.GivenName)), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// RegisterLine is one line of a lesson's register.
type RegisterLine struct {
	PersonID   string `json:"person_id"`
	GivenName  string `json:"given_name"`
	FamilyName string `json:"family_name"`
	Mark       string `json:"mark,omitempty"`
	MarkedBy   string `json:"marked_by,omitempty"`
}

// Register returns a lesson's register: each person enrolled on its course
// (not withdrawn) with their mark or none, by name. An unknown lesson is
// an error wrapping ErrNotFound.
func (s *Store) Register(ctx context.Context, lessonID string) (records.Lesson, []RegisterLine, error) {
	var data []byte
	var lesson records.Lesson
	err := s.db.Reader.QueryRowContext(ctx, `SELECT data FROM records WHERE `+byKey+` AND data <> '{}'`,
		records.Lessons, lessonID).Scan(&data)
	if err != nil {
		return lesson, nil, fmt.Errorf("register of %s: %w", lessonID, ErrNotFound)
	}
	if err := json.Unmarshal(data, &lesson); err != nil {
		return lesson, nil, fmt.Errorf("register of %s: %w", lessonID, err)
	}
	rows, err := s.db.Reader.QueryContext(ctx, `
		SELECT e.data->>'person_id', coalesce(p.data->>'given_name', ''), coalesce(p.data->>'family_name', '')
		FROM records e
		LEFT JOIN records p ON p.key_hash = key_hash('persons', e.data->>'person_id')
			AND +p.collection = 'persons' AND p.id = e.data->>'person_id'
		WHERE e.collection = 'enrolments' AND e.data->>'course_id' = ? AND coalesce(e.data->>'status', '') <> 'withdrawn'
		ORDER BY casefold(coalesce(p.data->>'family_name', '')), casefold(coalesce(p.data->>'given_name', ''))`,
		lesson.CourseID)
	if err != nil {
		return lesson, nil, fmt.Errorf("register of %s: %w", lessonID, err)
	}
	defer rows.Close()
	out := []RegisterLine{}
	for rows.Next() {
		var l RegisterLine
		if err := rows.Scan(&l.PersonID, &l.GivenName, &l.FamilyName); err != nil {
			return lesson, nil, fmt.Errorf("register of %s: %w", lessonID, err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return lesson, nil, fmt.Errorf("register of %s: %w", lessonID, err)
	}
	rows.Close()
	for i := range out { // each mark by its id, derived from lesson and person
		var m records.AttendanceMark
		var data []byte
		err := s.db.Reader.QueryRowContext(ctx, `SELECT data FROM records WHERE `+byKey,
			records.Attendance, records.AttendanceID(lessonID, out[i].PersonID)).Scan(&data)
		if err == nil && json.Unmarshal(data, &m) == nil {
			out[i].Mark, out[i].MarkedBy = m.Mark, m.MarkedBy
		}
	}
	return lesson, out, nil
}
