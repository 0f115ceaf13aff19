// Package records holds the records of the field — intake forms
// (persons), appointments, courses, enrolments, lessons and attendance —
// their fields and the rules they must satisfy, shared by the client and
// the server. SCHEMA.md documents every field.
//
// Schema checks records with go-playground/validator/v10; a refusal is a
// *syncproto.Error with CodeInvalid whose Fields name each field and the
// rule it breaks, which locales turns into a message in the person's
// language. AttendanceID and EnrolmentID derive ids from what a record is
// about, so devices working offline agree on them. AttendanceRates computes
// who is on track for their certificate.
//
// Everything here is safe for concurrent use.
package records
