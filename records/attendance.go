package records

import (
	"cmp"
	"slices"
	"time"
)

// LessonTime is what attendance figures need of a lesson.
type LessonTime struct {
	ID              string
	Start           time.Time
	DurationMinutes int
	Cancelled       bool
}

// AttendanceRate is one person's attendance in a course at a moment.
// Minutes are lesson minutes: a lesson counts for its duration.
type AttendanceRate struct {
	PersonID        string  `json:"person_id"`
	HeldMinutes     int     `json:"held_minutes"`     // lessons held so far (started, not cancelled)
	AttendedMinutes int     `json:"attended_minutes"` // of those, marked present or late
	Rate            float64 `json:"rate"`             // AttendedMinutes / HeldMinutes; 0 before any lesson
	// OnTrack: the rate so far reaches the share the certificate needs.
	OnTrack bool `json:"on_track"`
	// CanQualify: attending every remaining lesson would still reach the
	// certificate's share of the course's planned hours.
	CanQualify bool `json:"can_qualify"`
}

// AtRisk reports whether the person is missing the attendance their
// certificate needs: behind the required share so far, or unable to reach
// it any more.
func (a AttendanceRate) AtRisk() bool { return !a.OnTrack || !a.CanQualify }

// Attended reports whether a mark counts as attendance: present and late
// do; absent and excused do not.
func Attended(mark string) bool { return mark == MarkPresent || mark == MarkLate }

// AttendanceRates computes, at now, the attendance of each person enrolled
// on a course from its lessons and its marks (marks[lessonID][personID]).
// The certificate needs course.CertificateAttendance of the planned hours;
// with no planned hours, of the lessons' total. Results are sorted by
// person id.
func AttendanceRates(course Course, lessons []LessonTime, persons []string, marks map[string]map[string]string, now time.Time) []AttendanceRate {
	planned := int(course.PlannedHours * 60)
	total, remaining := 0, 0
	for _, l := range lessons {
		if l.Cancelled {
			continue
		}
		total += l.DurationMinutes
		if l.Start.After(now) {
			remaining += l.DurationMinutes
		}
	}
	if planned == 0 {
		planned = total
	}
	required := course.CertificateAttendance * float64(planned)
	out := make([]AttendanceRate, 0, len(persons))
	for _, p := range persons {
		r := AttendanceRate{PersonID: p}
		for _, l := range lessons {
			if l.Cancelled || l.Start.After(now) {
				continue
			}
			r.HeldMinutes += l.DurationMinutes
			if Attended(marks[l.ID][p]) {
				r.AttendedMinutes += l.DurationMinutes
			}
		}
		if r.HeldMinutes > 0 {
			r.Rate = float64(r.AttendedMinutes) / float64(r.HeldMinutes)
		}
		r.OnTrack = r.HeldMinutes == 0 || r.Rate >= course.CertificateAttendance
		r.CanQualify = float64(r.AttendedMinutes+remaining) >= required
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b AttendanceRate) int { return cmp.Compare(a.PersonID, b.PersonID) })
	return out
}
