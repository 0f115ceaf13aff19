package records_test

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/ponte-project/ponte/records"
	"github.com/ponte-project/ponte/syncproto"
)

// FuzzCheck feeds the schema records a device could send: it must never
// panic, must answer the same twice, and must refuse only with a typed
// error naming fields.
func FuzzCheck(f *testing.F) {
	for _, seed := range []string{validPerson, validAppointment, validCourse, validLesson, validEnrolment, validAttendance,
		`{}`, `{"given_name":null}`, `{"languages":[1,2]}`, `{"title":{"":""}}`, `{"start":"2026-13-45T99:00:00Z","end":""}`,
		`{"consent_given":"true","birth_date":"0000-00-00"}`, `{"duration_minutes":1e400}`, `{"teachers":[null]}`} {
		for i, c := range records.Collections() {
			f.Add(c, "018f3a2b-7c4d-7e5f-8a9b-0c1d2e3f4a5"+string(rune('0'+i)), seed)
		}
	}
	f.Fuzz(func(t *testing.T, collection, id, data string) {
		var fields map[string]json.RawMessage
		if json.Unmarshal([]byte(data), &fields) != nil {
			return
		}
		err := records.Schema.Check(collection, id, fields, now)
		again := records.Schema.Check(collection, id, fields, now)
		if (err == nil) != (again == nil) {
			t.Fatalf("Check is not deterministic: %v, then %v", err, again)
		}
		if err == nil {
			return
		}
		var e, e2 *syncproto.Error
		if !errors.As(err, &e) || !errors.Is(err, syncproto.ErrInvalid) || len(e.Fields) == 0 {
			t.Fatalf("Check refused with %v, want an invalid error naming fields", err)
		}
		errors.As(again, &e2)
		if !slices.Equal(e.Fields, e2.Fields) {
			t.Fatalf("fields differ between runs: %v, then %v", e.Fields, e2.Fields)
		}
		for _, fe := range e.Fields {
			// Only an unknown name may be empty: the protocol never sends one.
			unknown := fe.Rule == "unknown_field" || fe.Rule == "unknown_collection"
			if (fe.Field == "" && !unknown) || fe.Rule == "" {
				t.Fatalf("field error without a field or rule: %+v", fe)
			}
		}
	})
}
