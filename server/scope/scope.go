// Package scope decides who sees and changes what: the scopes a record is
// in, the scopes a user holds, and what a register scope shows of a person.
// One rule set serves reads and writes (DESIGN.md in package server).
//
// A scope is a name: "all" (every record), "site:<id>" (the persons and
// appointments of a site), "course:<id>" (a course, its lessons,
// enrolments and attendance) and "register:<course id>" (the names of the
// persons enrolled on a course, for its register; read-only).
package scope

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"

	"github.com/ponte-project/ponte/records"
	"github.com/ponte-project/ponte/syncproto"
)

// All is the scope of every record, held by coordinators.
const All = "all"

// Role is what a user does, and so what they may see and change.
type Role string

// The roles.
const (
	Mediator    Role = "mediator"    // the persons and appointments of their sites
	Teacher     Role = "teacher"     // their courses: lessons, enrolments, attendance, and the names of the enrolled
	Coordinator Role = "coordinator" // central staff: everything
	Admin       Role = "admin"       // users and devices; no records
)

// Roles lists every role.
func Roles() []Role { return []Role{Mediator, Teacher, Coordinator, Admin} }

// Site, Course and Register name the scopes of a site and of a course.
func Site(id string) string     { return "site:" + id }
func Course(id string) string   { return "course:" + id }
func Register(id string) string { return "register:" + id }

// Of returns the scopes a user holds, sorted: a mediator their sites', a
// teacher their courses' and those courses' registers, a coordinator All,
// an admin none.
func Of(role Role, sites, courses []string) []string {
	var out []string
	switch role {
	case Mediator:
		for _, s := range sites {
			out = append(out, Site(s))
		}
	case Teacher:
		for _, c := range courses {
			out = append(out, Course(c), Register(c))
		}
	case Coordinator:
		out = []string{All}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Writable reports whether holding scope lets a user change the records in
// it: every scope but a register, which only shows names.
func Writable(scope string) bool { return !strings.HasPrefix(scope, "register:") }

// Keys returns the scopes a record is in by its own fields, besides All:
// persons and appointments their site's, courses their own, lessons,
// enrolments and attendance their course's. A person is also in the
// register of each course they are enrolled on; the store adds those, since
// they follow from enrolments. Unknown collections are in no scope but All.
func Keys(collection, id string, data map[string]json.RawMessage) []string {
	field := func(name string) string {
		raw, ok := data[name]
		if !ok {
			return ""
		}
		// An id is a plain JSON string: without a backslash it needs no
		// decoder (this runs for every write).
		if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' && !bytes.ContainsAny(raw[1:len(raw)-1], `\"`) {
			return string(raw[1 : len(raw)-1])
		}
		var v string
		if json.Unmarshal(raw, &v) == nil {
			return v
		}
		return ""
	}
	var key string
	switch collection {
	case records.Courses:
		key = Course(id)
	case records.Persons, records.Appointments:
		if s := field("site_id"); s != "" {
			key = Site(s)
		}
	case records.Lessons, records.Enrolments, records.Attendance:
		if c := field("course_id"); c != "" {
			key = Course(c)
		}
	}
	if key == "" {
		return nil
	}
	return []string{key}
}

// Visible returns the scopes of held that contain a record in keys, sorted:
// all of held's that match, or [All] if held has All.
func Visible(held, keys []string) []string {
	if slices.Contains(held, All) {
		return []string{All}
	}
	var out []string
	for _, k := range keys {
		if slices.Contains(held, k) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// CanWrite reports whether a user holding held may change a record in keys
// (the record as it is, or for a new record as it would be).
func CanWrite(held, keys []string) bool {
	if slices.Contains(held, All) {
		return true
	}
	for _, k := range keys {
		if Writable(k) && slices.Contains(held, k) {
			return true
		}
	}
	return false
}

// Show returns a change as a holder sees it through seen, the scopes of
// theirs that hold the record (from Visible): names only if those are all
// registers, and with the scopes listed.
func Show(ch syncproto.Change, seen []string) (syncproto.Change, error) {
	if Projected(seen) {
		rec, err := ch.Record()
		if err != nil {
			return ch, err
		}
		ch = syncproto.NewChange(ch.Collection, ch.ID, ch.Seq, Project(ch.Collection, rec))
	}
	ch.Scopes = seen
	return ch, nil
}

// registerFields are what a register shows of a person.
var registerFields = []string{"given_name", "family_name", "given_name_latin", "family_name_latin"}

// Projected reports whether a record seen through scopes (from Visible)
// shows only what a register needs: when every scope is a register.
func Projected(scopes []string) bool {
	return len(scopes) > 0 && !slices.ContainsFunc(scopes, Writable)
}

// Project returns what a register shows of a person's record: the names,
// with their stamps. Other collections are returned unchanged.
func Project(collection string, rec syncproto.Record) syncproto.Record {
	if collection != records.Persons {
		return rec
	}
	out := syncproto.Record{Data: map[string]json.RawMessage{}, Stamps: map[string]syncproto.Stamp{}, Deleted: rec.Deleted}
	for _, f := range registerFields {
		if v, ok := rec.Data[f]; ok {
			out.Data[f] = v
		}
		if s, ok := rec.Stamps[f]; ok {
			out.Stamps[f] = s
		}
	}
	return out
}
