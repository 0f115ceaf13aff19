package locales

import (
	"errors"
	"strconv"
	"strings"

	"github.com/nicksnyder/go-i18n/v2/i18n"

	"github.com/ponte-project/ponte/syncproto"
)

// countRules are the validation rules whose parameter is a count, so their
// messages have plural forms.
var countRules = map[string]bool{"max_length": true, "min_length": true, "max_items": true, "min_items": true}

// Explain returns what an error code means for a person. For a write that
// broke a schema's rules (fields not empty) it is one line per field saying
// what is wrong with it.
func Explain(l *i18n.Localizer, code syncproto.Code, fields []syncproto.FieldError) string {
	if len(fields) == 0 {
		return Text(l, code.MessageID(), nil)
	}
	lines := make([]string, len(fields))
	for i, f := range fields {
		lines[i] = FieldText(l, f)
	}
	return strings.Join(lines, "\n")
}

// ExplainError is Explain for the first *syncproto.Error in err's chain; it
// returns "" if there is none.
func ExplainError(l *i18n.Localizer, err error) string {
	var e *syncproto.Error
	if !errors.As(err, &e) {
		return ""
	}
	return Explain(l, e.Code, e.Fields)
}

// FieldText returns what is wrong with one field, naming the field.
func FieldText(l *i18n.Localizer, f syncproto.FieldError) string {
	data := map[string]any{"Field": f.Field, "Param": f.Param}
	if n, err := strconv.Atoi(f.Param); err == nil && countRules[f.Rule] {
		return Plural(l, f.MessageID(), n, data)
	}
	return Text(l, f.MessageID(), data)
}
