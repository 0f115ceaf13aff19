package records

// The collections Ponte syncs and the fields each holds. The JSON names are
// a data contract shared by the app, the CLI, the server and exports;
// SCHEMA.md documents each field. A field's rules are in its validate tag;
// the rules that tie fields together are in checkRecord.

// Collection names.
const (
	Persons      = "persons"
	Appointments = "appointments"
	Courses      = "courses"
	Enrolments   = "enrolments"
	Lessons      = "lessons"
	Attendance   = "attendance"
)

// Attendance marks.
const (
	MarkPresent = "present"
	MarkAbsent  = "absent"
	MarkLate    = "late"
	MarkExcused = "excused"
)

// Person is an intake form. Names are as the person writes them, in any
// script, and in Latin script. Every field but the site and the names is
// sensitive: it may be stored only once consent is recorded.
type Person struct {
	SiteID           string   `json:"site_id" validate:"required,uuid"`
	GivenName        string   `json:"given_name" validate:"required,max=200"`
	FamilyName       string   `json:"family_name" validate:"max=200"`
	GivenNameLatin   string   `json:"given_name_latin" validate:"omitempty,max=200,latin"`
	FamilyNameLatin  string   `json:"family_name_latin" validate:"omitempty,max=200,latin"`
	BirthDate        string   `json:"birth_date" validate:"omitempty,date,past"`
	Gender           string   `json:"gender" validate:"omitempty,oneof=female male non_binary other undisclosed"`
	Nationality      string   `json:"nationality" validate:"omitempty,iso3166_1_alpha2"`
	Languages        []string `json:"languages" validate:"max=20,unique,dive,iso639"`
	ArrivalDate      string   `json:"arrival_date" validate:"omitempty,date,past"`
	Phone            string   `json:"phone" validate:"omitempty,e164"`
	Email            string   `json:"email" validate:"omitempty,max=254,email"`
	EducationLevel   string   `json:"education_level" validate:"omitempty,oneof=none primary lower_secondary upper_secondary vocational tertiary unknown"`
	EmploymentStatus string   `json:"employment_status" validate:"omitempty,oneof=unemployed employed self_employed student inactive unknown"`
	Needs            []string `json:"needs" validate:"max=20,unique,dive,oneof=housing work language legal health school documents childcare training other"`
	ConsentGiven     bool     `json:"consent_given"`
	ConsentDate      string   `json:"consent_date" validate:"omitempty,date,past"`
	ConsentLanguage  string   `json:"consent_language" validate:"omitempty,iso639"`
	Notes            string   `json:"notes" validate:"max=4000"`
}

// Appointment is a meeting of a person with a mediator at a site. Mediator
// is the mediator's user name.
type Appointment struct {
	PersonID             string `json:"person_id" validate:"required,uuid"`
	Mediator             string `json:"mediator" validate:"required,max=100"`
	SiteID               string `json:"site_id" validate:"required,uuid"`
	Start                string `json:"start" validate:"required,time"`
	End                  string `json:"end" validate:"required,time"`
	Kind                 string `json:"kind" validate:"required,oneof=orientation mediation legal job school health housing language other"`
	InterpretingLanguage string `json:"interpreting_language" validate:"omitempty,iso639"`
	Status               string `json:"status" validate:"required,oneof=scheduled held no_show cancelled"`
	OutcomeNotes         string `json:"outcome_notes" validate:"max=4000"`
}

// Course is a language course. Title maps ISO 639 language codes to the
// title in that language; Teachers are user names; CertificateAttendance is
// the share of the planned hours a person must attend for the certificate.
type Course struct {
	Title                 map[string]string `json:"title" validate:"required,min=1,max=20,dive,keys,iso639,endkeys,required,max=200"`
	Level                 string            `json:"level" validate:"required,oneof=A0 A1 A2 B1 B2 C1 C2"`
	SiteID                string            `json:"site_id" validate:"required,uuid"`
	Teachers              []string          `json:"teachers" validate:"required,min=1,max=20,unique,dive,required,max=100"`
	PlannedHours          float64           `json:"planned_hours" validate:"required,gt=0,lte=2000"`
	CertificateAttendance float64           `json:"certificate_attendance" validate:"gte=0,lte=1"`
	StartDate             string            `json:"start_date" validate:"omitempty,date"`
	EndDate               string            `json:"end_date" validate:"omitempty,date"`
}

// Enrolment puts a person on a course. Its id is EnrolmentID(course,
// person), so two enrolments of one person made offline are one record.
type Enrolment struct {
	CourseID     string `json:"course_id" validate:"required,uuid"`
	PersonID     string `json:"person_id" validate:"required,uuid"`
	Status       string `json:"status" validate:"required,oneof=active withdrawn completed"`
	EnrolledDate string `json:"enrolled_date" validate:"omitempty,date"`
}

// Lesson is one session of a course.
type Lesson struct {
	CourseID        string `json:"course_id" validate:"required,uuid"`
	Start           string `json:"start" validate:"required,time"`
	DurationMinutes int    `json:"duration_minutes" validate:"required,gt=0,lte=600"`
	Topic           string `json:"topic" validate:"max=500"`
	Status          string `json:"status" validate:"omitempty,oneof=scheduled held cancelled"`
}

// AttendanceMark is one person's mark for one lesson. Its id is
// AttendanceID(lesson, person), so two teachers marking the same person
// offline write one record and converge on one mark. CourseID is the
// lesson's course: it says who may see and change the mark. MarkedBy is
// the user name of who marked it.
type AttendanceMark struct {
	LessonID string `json:"lesson_id" validate:"required,uuid"`
	CourseID string `json:"course_id" validate:"required,uuid"`
	PersonID string `json:"person_id" validate:"required,uuid"`
	Mark     string `json:"mark" validate:"required,oneof=present absent late excused"`
	MarkedBy string `json:"marked_by" validate:"required,max=100"`
	MarkedAt string `json:"marked_at" validate:"omitempty,time"`
}
