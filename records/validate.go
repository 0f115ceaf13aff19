package records

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/go-playground/validator/v10"
	"github.com/google/uuid"
	"golang.org/x/text/language"

	"github.com/ponte-project/ponte/syncproto"
)

// Schema holds Ponte's rules for every collection. Give it to the server
// and to clients as their syncproto.Schema: the client checks a write before
// accepting it and the server checks it again before applying it, since a
// device is never trusted.
var Schema syncproto.Schema = schema{}

var _ syncproto.Schema = schema{}

type schema struct{}

// collection describes how to decode and check one collection's records.
type collection struct {
	typ    reflect.Type
	fields map[string]int // JSON name → struct field index
	// derivedID, if set, is the id a record must have given its fields.
	derivedID func(v any) string
	// sensitive lists the fields that need the person's consent.
	sensitive map[string]bool
	// past holds the fields whose dates must not lie in the future.
	past map[string]int
}

var collections = map[string]*collection{
	Persons:      newCollection(Person{}),
	Appointments: newCollection(Appointment{}),
	Courses:      newCollection(Course{}),
	Enrolments:   newCollection(Enrolment{}),
	Lessons:      newCollection(Lesson{}),
	Attendance:   newCollection(AttendanceMark{}),
}

func init() {
	collections[Enrolments].derivedID = func(v any) string {
		e := v.(*Enrolment)
		return EnrolmentID(e.CourseID, e.PersonID)
	}
	collections[Attendance].derivedID = func(v any) string {
		a := v.(*AttendanceMark)
		return AttendanceID(a.LessonID, a.PersonID)
	}
	collections[Persons].sensitive = map[string]bool{}
	for name := range collections[Persons].fields {
		switch name {
		case "site_id", "given_name", "family_name", "given_name_latin", "family_name_latin",
			"consent_given", "consent_date", "consent_language":
		default:
			collections[Persons].sensitive[name] = true
		}
	}
}

func newCollection(zero any) *collection {
	t := reflect.TypeOf(zero)
	c := &collection{typ: t, fields: map[string]int{}, past: map[string]int{}}
	for i := range t.NumField() {
		f := t.Field(i)
		c.fields[jsonName(f)] = i
		if slices.Contains(strings.Split(f.Tag.Get("validate"), ","), "past") {
			c.past[jsonName(f)] = i
		}
	}
	return c
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return name
}

// Collections returns the names of the collections, sorted.
func Collections() []string {
	names := make([]string, 0, len(collections))
	for name := range collections {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Fields returns the field names of a collection in declaration order, or
// nil for an unknown collection.
func Fields(collectionName string) []string {
	c, ok := collections[collectionName]
	if !ok {
		return nil
	}
	names := make([]string, c.typ.NumField())
	for name, i := range c.fields {
		names[i] = name
	}
	return names
}

// decode fills a new struct from data, returning the fields it could not
// place (unknown, or of the wrong JSON type).
func (c *collection) decode(data map[string]json.RawMessage) (any, []syncproto.FieldError) {
	ptr := reflect.New(c.typ)
	v := ptr.Elem()
	var bad []syncproto.FieldError
	for name, raw := range data {
		i, ok := c.fields[name]
		if !ok {
			bad = append(bad, syncproto.FieldError{Field: name, Rule: "unknown_field"})
			continue
		}
		if bytes.Equal(raw, []byte("null")) {
			continue
		}
		field := v.Field(i)
		// Most values are plain strings or lists of them; they need no
		// decoder. (Without a backslash, a JSON string holds no quote.)
		if plain := bytes.IndexByte(raw, '\\') < 0; plain && field.Kind() == reflect.String && len(raw) >= 2 && raw[0] == '"' {
			field.SetString(string(raw[1 : len(raw)-1]))
			continue
		} else if plain && field.Type() == stringsType {
			if list, ok := plainStrings(raw); ok {
				field.Set(reflect.ValueOf(list))
				continue
			}
		} else if field.Kind() == reflect.Bool && (string(raw) == "true" || string(raw) == "false") {
			field.SetBool(string(raw) == "true")
			continue
		}
		if err := json.Unmarshal(raw, field.Addr().Interface()); err != nil {
			bad = append(bad, syncproto.FieldError{Field: name, Rule: "type", Param: kindName(c.typ.Field(i).Type)})
		}
	}
	return ptr.Interface(), bad
}

var stringsType = reflect.TypeOf([]string(nil))

// plainStrings decodes a compact JSON array of strings without escapes,
// such as ["ar","fr"]; ok is false for anything else.
func plainStrings(raw []byte) (list []string, ok bool) {
	if string(raw) == "[]" {
		return []string{}, true
	}
	if len(raw) < 4 || raw[0] != '[' || raw[1] != '"' || raw[len(raw)-2] != '"' || raw[len(raw)-1] != ']' {
		return nil, false
	}
	for item := range bytes.SplitSeq(raw[2:len(raw)-2], []byte(`","`)) {
		if bytes.IndexByte(item, '"') >= 0 {
			return nil, false
		}
		list = append(list, string(item))
	}
	return list, true
}

// kindName names the JSON type a field takes, as the "type" rule's param.
func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int64:
		return "integer"
	case reflect.Float64:
		return "number"
	case reflect.Slice:
		return "array"
	case reflect.Map:
		return "object"
	}
	return t.Kind().String()
}

// Check reports whether a record of the collection may hold data, where
// data is every field the record would hold (see syncproto.Intent). It
// returns nil, or an *syncproto.Error with CodeInvalid whose Fields name
// each field that breaks a rule, sorted by field and rule. now bounds the dates that
// must not be in the future.
func (schema) Check(collectionName, id string, data map[string]json.RawMessage, now time.Time) error {
	c, ok := collections[collectionName]
	if !ok {
		return unknownCollection(collectionName)
	}
	v, fields := c.decode(data)
	bad := map[string]bool{}
	for _, f := range fields {
		bad[f.Field] = true
	}
	if err := validate.Struct(v); err != nil {
		var verrs validator.ValidationErrors
		if !errors.As(err, &verrs) {
			return fmt.Errorf("check %s/%s: %w", collectionName, id, err)
		}
		for _, fe := range verrs {
			name := fieldPath(fe)
			if bad[name] {
				continue // already reported: its value could not be decoded
			}
			fields = append(fields, ruleOf(name, fe))
		}
	}
	fields = append(fields, c.checkRecord(id, v, data, bad, now)...)
	if fields = tidy(fields); len(fields) > 0 {
		return invalid(collectionName, fields)
	}
	return nil
}

// fieldPath names the field of a validator error by its JSON name, with
// the key or index of an element: languages[1], title[xx].
func fieldPath(fe validator.FieldError) string {
	ns := fe.Namespace()
	if _, rest, ok := strings.Cut(ns, "."); ok {
		return rest
	}
	return fe.Field()
}

// ruleOf turns a validator error into a FieldError whose rule names the
// message that explains it ("validation.<rule>" in locales/).
func ruleOf(field string, fe validator.FieldError) syncproto.FieldError {
	out := syncproto.FieldError{Field: field, Rule: fe.Tag(), Param: fe.Param()}
	kind := fe.Kind()
	switch fe.Tag() {
	case "max", "min":
		switch kind {
		case reflect.String:
			out.Rule += "_length"
		case reflect.Slice, reflect.Map:
			out.Rule += "_items"
		default:
			out.Rule = map[string]string{"max": "lte", "min": "gte"}[fe.Tag()]
		}
	case "required":
		if kind == reflect.Slice || kind == reflect.Map {
			out.Rule = "min_items"
			out.Param = "1"
		}
	case "oneof":
		out.Param = strings.ReplaceAll(out.Param, " ", ", ")
	}
	return out
}

// tidy sorts field errors by field and rule, and drops repeats.
func tidy(fields []syncproto.FieldError) []syncproto.FieldError {
	out := fields[:0]
	seen := map[[2]string]bool{}
	for _, f := range fields {
		k := [2]string{f.Field, f.Rule}
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b syncproto.FieldError) int {
		return cmp.Or(strings.Compare(a.Field, b.Field), strings.Compare(a.Rule, b.Rule))
	})
	return out
}

// checkRecord applies the rules that tie a record's fields together or to
// its id, and the rules that depend on the time.
// bad holds the fields whose values could not be decoded.
func (c *collection) checkRecord(id string, v any, data map[string]json.RawMessage, bad map[string]bool, now time.Time) []syncproto.FieldError {
	var out []syncproto.FieldError
	if !isUUID(id) {
		out = append(out, syncproto.FieldError{Field: "id", Rule: "uuid"})
	} else if c.derivedID != nil {
		if want := c.derivedID(v); want != id {
			out = append(out, syncproto.FieldError{Field: "id", Rule: "derived_id", Param: want})
		}
	}
	switch r := v.(type) {
	case *Person:
		switch {
		case bad["consent_given"]:
			// Whether consent is given is unknown; its own error says why.
		case !r.ConsentGiven:
			for name, raw := range data {
				if c.sensitive[name] && !bytes.Equal(raw, []byte("null")) {
					out = append(out, syncproto.FieldError{Field: name, Rule: "consent_required"})
				}
			}
		default:
			if r.ConsentDate == "" {
				out = append(out, syncproto.FieldError{Field: "consent_date", Rule: "required"})
			}
			if r.ConsentLanguage == "" {
				out = append(out, syncproto.FieldError{Field: "consent_language", Rule: "required"})
			}
		}
		if r.BirthDate != "" && r.ArrivalDate != "" && r.ArrivalDate < r.BirthDate && validDate(r.ArrivalDate) {
			out = append(out, syncproto.FieldError{Field: "arrival_date", Rule: "after", Param: "birth_date"})
		}
	case *Appointment:
		if after(r.Start, r.End) {
			out = append(out, syncproto.FieldError{Field: "end", Rule: "after", Param: "start"})
		}
	case *Course:
		if r.StartDate != "" && r.EndDate != "" && r.EndDate < r.StartDate && validDate(r.EndDate) {
			out = append(out, syncproto.FieldError{Field: "end_date", Rule: "after", Param: "start_date"})
		}
	}
	// Dates that must not be in the future, judged against now; a day
	// of slack covers time zones.
	limit := now.UTC().Add(24 * time.Hour).Format(time.DateOnly)
	for name, i := range c.past {
		s := reflect.ValueOf(v).Elem().Field(i).String()
		if s != "" && validDate(s) && s > limit {
			out = append(out, syncproto.FieldError{Field: name, Rule: "past", Param: now.UTC().Format(time.DateOnly)})
		}
	}
	return out
}

// isUUID reports whether s is a UUID in canonical form: 36 characters,
// lowercase hexadecimal, as google/uuid writes them.
func isUUID(s string) bool {
	return len(s) == 36 && strings.ToLower(s) == s && uuid.Validate(s) == nil
}

// after reports whether two valid RFC 3339 times are out of order: end
// not after start.
func after(start, end string) bool {
	s, err1 := time.Parse(time.RFC3339, start)
	e, err2 := time.Parse(time.RFC3339, end)
	return err1 == nil && err2 == nil && !e.After(s)
}

// validDate reports whether s is a calendar date as YYYY-MM-DD, as
// time.Parse(time.DateOnly) would, without its cost on every intake form.
func validDate(s string) bool {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return false
	}
	digits := func(part string) (int, bool) {
		n := 0
		for _, c := range []byte(part) {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	y, ok1 := digits(s[:4])
	m, ok2 := digits(s[5:7])
	d, ok3 := digits(s[8:])
	if !ok1 || !ok2 || !ok3 || m < 1 || m > 12 || d < 1 {
		return false
	}
	return d <= time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func unknownCollection(name string) error {
	return invalid(name, []syncproto.FieldError{{Field: name, Rule: "unknown_collection"}})
}

func invalid(collectionName string, fields []syncproto.FieldError) error {
	parts := make([]string, len(fields))
	for i, f := range fields {
		parts[i] = f.Field + " " + f.Rule
		if f.Param != "" {
			parts[i] += "=" + f.Param
		}
	}
	return &syncproto.Error{Code: syncproto.CodeInvalid, Fields: fields,
		Message: collectionName + ": " + strings.Join(parts, ", ")}
}

// validate holds the rules; its custom ones are registered once.
var validate = newValidator()

func newValidator() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(jsonName)
	must := func(tag string, fn validator.Func) {
		if err := v.RegisterValidation(tag, fn); err != nil {
			panic(fmt.Sprintf("register rule %s: %v", tag, err)) // a programming error, caught by every test
		}
	}
	must("date", func(fl validator.FieldLevel) bool { return validDate(fl.Field().String()) })
	// validator's own uuid matches a regular expression: a tenth of the
	// time a form took to check. The same rule without it: 36 characters,
	// hexadecimal in either case, hyphens at 8, 13, 18 and 23.
	must("uuid", func(fl validator.FieldLevel) bool {
		s := fl.Field().String()
		return len(s) == 36 && uuid.Validate(s) == nil
	})
	must("time", func(fl validator.FieldLevel) bool {
		_, err := time.Parse(time.RFC3339, fl.Field().String())
		return err == nil
	})
	// past is judged in checkRecord, which knows now; here it passes.
	must("past", func(fl validator.FieldLevel) bool { return true })
	must("iso639", func(fl validator.FieldLevel) bool { return isLanguage(fl.Field().String()) })
	// validator's own e164 lets the + go; a number in international form
	// needs it, or "3471234567" would be read as a country code 3.
	must("e164", func(fl validator.FieldLevel) bool { return isE164(fl.Field().String()) })
	must("latin", func(fl validator.FieldLevel) bool { return isLatin(fl.Field().String()) })
	return v
}

// isLanguage reports whether s is an ISO 639 language code: two or three
// lowercase letters naming a language.
func isLanguage(s string) bool {
	i, ok := codeIndex(s)
	if !ok {
		return false
	}
	switch knownLanguages[i].Load() {
	case 1:
		return true
	case 2:
		return false
	}
	_, err := language.ParseBase(s)
	known := int32(2)
	if err == nil {
		known = 1
	}
	knownLanguages[i].Store(known)
	return err == nil
}

// knownLanguages remembers, for each string of two or three lowercase
// letters (by codeIndex), whether it is a language: 1 yes, 2 no, 0 not
// asked yet. A form names up to a few; x/text's lookup was a tenth of the
// time a form took to check.
var knownLanguages [26*26 + 26*26*26]atomic.Int32

// codeIndex numbers the strings of two or three lowercase letters.
func codeIndex(s string) (int, bool) {
	if len(s) < 2 || len(s) > 3 {
		return 0, false
	}
	i := 0
	for _, c := range []byte(s) {
		if c < 'a' || c > 'z' {
			return 0, false
		}
		i = i*26 + int(c-'a')
	}
	if len(s) == 3 {
		i += 26 * 26
	}
	return i, true
}

// isE164 reports whether s is a phone number in E.164 form: +, a country
// code not starting with 0, at most 15 digits in all, at least 7.
func isE164(s string) bool {
	if len(s) < 8 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return false
	}
	for _, c := range s[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// isLatin reports whether s is written in Latin script: letters (with their
// accents), spaces, and the punctuation names use.
func isLatin(s string) bool {
	for _, r := range s {
		switch {
		case unicode.Is(unicode.Latin, r), unicode.Is(unicode.Mn, r):
		case r == ' ', r == '-', r == '\'', r == '.', r == '’':
		default:
			return false
		}
	}
	return true
}

// Rules returns the validator rules a collection's fields use, for the
// catalogue's tests.
func Rules(collectionName string) []string {
	c, ok := collections[collectionName]
	if !ok {
		return nil
	}
	var out []string
	for i := range c.typ.NumField() {
		for _, r := range strings.Split(c.typ.Field(i).Tag.Get("validate"), ",") {
			name, _, _ := strings.Cut(r, "=")
			if name != "" && !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
	}
	return out
}
