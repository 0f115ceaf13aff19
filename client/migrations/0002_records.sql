-- The records of the field as tables an app can query: one view per
-- collection over the visible records, a column per field (arrays and
-- objects as JSON text), with expression indexes for what apps ask all day.
-- The partial indexes' WHERE is the views' own, so queries through the
-- views use them. Times are compared in UTC through datetime(), which reads
-- RFC 3339 offsets; start_utc columns hold that form.

CREATE VIEW persons AS SELECT
  id,
  json_extract(data, '$.site_id') AS site_id,
  json_extract(data, '$.given_name') AS given_name,
  json_extract(data, '$.family_name') AS family_name,
  json_extract(data, '$.given_name_latin') AS given_name_latin,
  json_extract(data, '$.family_name_latin') AS family_name_latin,
  json_extract(data, '$.birth_date') AS birth_date,
  json_extract(data, '$.gender') AS gender,
  json_extract(data, '$.nationality') AS nationality,
  json_extract(data, '$.languages') AS languages,
  json_extract(data, '$.arrival_date') AS arrival_date,
  json_extract(data, '$.phone') AS phone,
  json_extract(data, '$.email') AS email,
  json_extract(data, '$.education_level') AS education_level,
  json_extract(data, '$.employment_status') AS employment_status,
  json_extract(data, '$.needs') AS needs,
  json_extract(data, '$.consent_given') AS consent_given,
  json_extract(data, '$.consent_date') AS consent_date,
  json_extract(data, '$.consent_language') AS consent_language,
  json_extract(data, '$.notes') AS notes
  FROM replica_records WHERE collection = 'persons' AND deleted = 0;

CREATE VIEW appointments AS SELECT
  id,
  json_extract(data, '$.person_id') AS person_id,
  json_extract(data, '$.mediator') AS mediator,
  json_extract(data, '$.site_id') AS site_id,
  json_extract(data, '$.start') AS start,
  datetime(json_extract(data, '$.start')) AS start_utc,
  json_extract(data, '$.end') AS "end",
  json_extract(data, '$.kind') AS kind,
  json_extract(data, '$.interpreting_language') AS interpreting_language,
  json_extract(data, '$.status') AS status,
  json_extract(data, '$.outcome_notes') AS outcome_notes
  FROM replica_records WHERE collection = 'appointments' AND deleted = 0;

CREATE VIEW courses AS SELECT
  id,
  json_extract(data, '$.title') AS title,
  json_extract(data, '$.level') AS level,
  json_extract(data, '$.site_id') AS site_id,
  json_extract(data, '$.teachers') AS teachers,
  json_extract(data, '$.planned_hours') AS planned_hours,
  json_extract(data, '$.certificate_attendance') AS certificate_attendance,
  json_extract(data, '$.start_date') AS start_date,
  json_extract(data, '$.end_date') AS end_date
  FROM replica_records WHERE collection = 'courses' AND deleted = 0;

CREATE VIEW enrolments AS SELECT
  id,
  json_extract(data, '$.course_id') AS course_id,
  json_extract(data, '$.person_id') AS person_id,
  json_extract(data, '$.status') AS status,
  json_extract(data, '$.enrolled_date') AS enrolled_date
  FROM replica_records WHERE collection = 'enrolments' AND deleted = 0;

CREATE VIEW lessons AS SELECT
  id,
  json_extract(data, '$.course_id') AS course_id,
  json_extract(data, '$.start') AS start,
  datetime(json_extract(data, '$.start')) AS start_utc,
  json_extract(data, '$.duration_minutes') AS duration_minutes,
  json_extract(data, '$.topic') AS topic,
  json_extract(data, '$.status') AS status
  FROM replica_records WHERE collection = 'lessons' AND deleted = 0;

CREATE VIEW attendance AS SELECT
  id,
  json_extract(data, '$.lesson_id') AS lesson_id,
  json_extract(data, '$.course_id') AS course_id,
  json_extract(data, '$.person_id') AS person_id,
  json_extract(data, '$.mark') AS mark,
  json_extract(data, '$.marked_by') AS marked_by,
  json_extract(data, '$.marked_at') AS marked_at
  FROM replica_records WHERE collection = 'attendance' AND deleted = 0;

-- Today's appointments of a mediator; a person's appointments.
CREATE INDEX appointments_by_mediator ON replica_records (json_extract(data, '$.mediator'), datetime(json_extract(data, '$.start')))
  WHERE collection = 'appointments' AND deleted = 0;

CREATE INDEX appointments_by_person ON replica_records (json_extract(data, '$.person_id'))
  WHERE collection = 'appointments' AND deleted = 0;

-- A lesson's register: the course's enrolments and the lesson's marks.
CREATE INDEX enrolments_by_course ON replica_records (json_extract(data, '$.course_id'))
  WHERE collection = 'enrolments' AND deleted = 0;

CREATE INDEX enrolments_by_person ON replica_records (json_extract(data, '$.person_id'))
  WHERE collection = 'enrolments' AND deleted = 0;

CREATE INDEX lessons_by_course ON replica_records (json_extract(data, '$.course_id'), datetime(json_extract(data, '$.start')))
  WHERE collection = 'lessons' AND deleted = 0;

CREATE INDEX attendance_by_lesson ON replica_records (json_extract(data, '$.lesson_id'), json_extract(data, '$.person_id'))
  WHERE collection = 'attendance' AND deleted = 0;

CREATE INDEX attendance_by_person ON replica_records (json_extract(data, '$.person_id'))
  WHERE collection = 'attendance' AND deleted = 0;

-- Persons of a site.
CREATE INDEX persons_by_site ON replica_records (json_extract(data, '$.site_id'))
  WHERE collection = 'persons' AND deleted = 0;

-- Why the server refused a write, field by field (JSON array of
-- syncproto.FieldError), beside the message.
ALTER TABLE rejected ADD COLUMN fields TEXT NOT NULL DEFAULT '[]';
