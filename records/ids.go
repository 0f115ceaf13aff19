package records

import "github.com/google/uuid"

// Namespaces of the name-based (version 5) UUIDs that identify a record by
// what it is about, so that devices creating it offline agree on its id.
var (
	attendanceSpace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://ponte-project.org/ns/attendance"))
	enrolmentSpace  = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://ponte-project.org/ns/enrolment"))
)

// AttendanceID returns the id of the attendance mark of a person for a
// lesson: a UUIDv5 of the two ids. Two teachers marking the same person
// offline write the same record, and the sync converges on one mark.
func AttendanceID(lessonID, personID string) string {
	return uuid.NewSHA1(attendanceSpace, []byte(lessonID+"/"+personID)).String()
}

// EnrolmentID returns the id of a person's enrolment on a course, derived
// like AttendanceID so one person is enrolled once however many devices
// enrol them.
func EnrolmentID(courseID, personID string) string {
	return uuid.NewSHA1(enrolmentSpace, []byte(courseID+"/"+personID)).String()
}
