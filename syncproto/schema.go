package syncproto

import (
	"encoding/json"
	"maps"
	"time"
)

// Schema holds the rules records must satisfy beyond the protocol's own
// (names, sizes, canonical JSON). A client checks each write against it
// before accepting it, and the server checks each mutation again before
// applying it. Ponte's rules are in package records.
type Schema interface {
	// Check returns nil if a record of the collection with this id may hold
	// data — every field it would hold, JSON null meaning absent — or an
	// *Error with CodeInvalid whose Fields say what is wrong. now bounds
	// dates that must not lie in the future.
	Check(collection, id string, data map[string]json.RawMessage, now time.Time) error
}

// FieldError says why one field breaks a rule. Rule names the message that
// explains it to a person ("validation.<rule>" in locales/); Param is the
// rule's parameter, such as a maximum or the allowed values; Message is
// that explanation in the receiver's language, when the server sends it.
type FieldError struct {
	Field   string `json:"field"`
	Rule    string `json:"rule"`
	Param   string `json:"param,omitempty"`
	Message string `json:"message,omitempty"`
}

// MessageID returns the go-i18n message ID that explains the rule.
func (f FieldError) MessageID() string { return "validation." + f.Rule }

// Intent returns the fields a put means its record to hold: the fields of
// cur with the put's written over them, whichever stamps win. This is what
// a Schema checks, at the client and at the server, so both judge a write
// by what its writer saw and wrote. A delete has no intent: it returns nil.
// The map may be m.Data itself: it is not to be modified.
func Intent(cur Record, m *Mutation) map[string]json.RawMessage {
	if m.Op != OpPut {
		return nil
	}
	if len(cur.Data) == 0 {
		return m.Data
	}
	out := make(map[string]json.RawMessage, len(cur.Data)+len(m.Data))
	maps.Copy(out, cur.Data)
	maps.Copy(out, m.Data)
	return out
}
