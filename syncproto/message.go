package syncproto

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/google/uuid"
	"golang.org/x/text/unicode/norm"
)

// ProtocolVersion is the version of the protocol this package speaks. A peer
// announcing another version is refused with CodeProtocolUnsupported.
const ProtocolVersion = 1

// Limits every peer enforces. A frame or mutation over them is refused with
// CodeTooLarge; the connection is not trusted further.
const (
	MaxFrameBytes    = 16 << 20  // one websocket message
	MaxMutationBytes = 256 << 10 // the data of one mutation
	MaxRecordBytes   = 1 << 20   // the data of one record, all fields
	MaxPageBytes     = 4 << 20   // a page stops growing past this (at least one change is sent)
	MaxBatch         = 1000      // mutations in one push
	MaxPage          = 5000      // changes in one page
	MaxNameLen       = 64        // collection and field names
	MaxIDLen         = 128       // record identifiers
	MaxScopeLen      = 128       // scope names
	MaxTokenLen      = 512
)

// Type names a message. Every message is a JSON object with a "type" and the
// one body field that type carries.
type Type string

// Message types. The client sends hello, push, pull and ping; the server sends
// welcome, result, page, changes, error and pong.
const (
	TypeHello   Type = "hello"
	TypeWelcome Type = "welcome"
	TypePush    Type = "push"
	TypeResult  Type = "result"
	TypePull    Type = "pull"
	TypePage    Type = "page"
	TypeChanges Type = "changes"
	TypeError   Type = "error"
	TypePing    Type = "ping"
	TypePong    Type = "pong"
)

// Message is one websocket text frame. Re is chosen by the client on a request
// and echoed on its answer; unsolicited server messages (changes, error) have
// Re zero unless they answer a request.
type Message struct {
	Type    Type      `json:"type"`
	Re      uint64    `json:"re,omitempty"`
	Hello   *Hello    `json:"hello,omitempty"`
	Welcome *Welcome  `json:"welcome,omitempty"`
	Push    *Push     `json:"push,omitempty"`
	Result  *Result   `json:"result,omitempty"`
	Pull    *Pull     `json:"pull,omitempty"`
	Page    *Page     `json:"page,omitempty"` // for page and changes
	Error   *ErrorMsg `json:"error,omitempty"`
	Ping    *Ping     `json:"ping,omitempty"` // for ping and pong
}

// Hello opens a session.
type Hello struct {
	Protocol int    `json:"protocol"`
	Device   string `json:"device"` // the replica's node identifier
	Token    string `json:"token"`
	// Enrol, instead of Token, is a one-time enrolment code: the server
	// registers the device and sends its token in the welcome.
	Enrol   string           `json:"enrol,omitempty"`
	Lang    string           `json:"lang,omitempty"` // BCP 47; reasons are localised to it
	Cursors map[string]int64 `json:"cursors,omitempty"`
	Client  string           `json:"client,omitempty"` // free text: library and app version
	// Pending and Rejected are the device's counts of writes waiting to be
	// sent and of writes the server refused, for the coordinators' view.
	Pending  int64 `json:"pending,omitempty"`
	Rejected int64 `json:"rejected,omitempty"`
	// Compression lists the frame compressions the device can read, such
	// as CompressionZstd. Without it every frame is JSON text.
	Compression []string `json:"compression,omitempty"`
}

// Welcome accepts a session.
type Welcome struct {
	Protocol   int      `json:"protocol"`
	Server     string   `json:"server"`      // the server's node: a client that finds another resets its cursors
	Seq        int64    `json:"seq"`         // the server's latest sequence: a client whose cursor is beyond it resets too
	ServerTime int64    `json:"server_time"` // Unix milliseconds, for the client's clock offset
	User       string   `json:"user"`
	Scopes     []string `json:"scopes"`
	MaxBatch   int      `json:"max_batch"`
	// Token answers a hello with an enrolment code: the device's bearer
	// token, sent this once. The client keeps it for its next hellos.
	Token string `json:"token,omitempty"`
	// Compression is the one the server chose from the hello's list: from
	// here on either side may send binary frames compressed with it. Empty:
	// text frames only.
	Compression string `json:"compression,omitempty"`
}

// Op is what a mutation does.
type Op string

// The mutation operations.
const (
	OpPut    Op = "put"
	OpDelete Op = "delete"
)

// Mutation is one write made on a device: a partial update (put) of some
// fields of a record, or a delete. ID is the idempotency key: a server applies
// a mutation ID at most once.
type Mutation struct {
	ID         string                     `json:"id"`
	Collection string                     `json:"collection"`
	Record     string                     `json:"record"`
	Op         Op                         `json:"op"`
	Data       map[string]json.RawMessage `json:"data,omitempty"`
	Stamp      Stamp                      `json:"stamp"`
	Base       map[string]Stamp           `json:"base,omitempty"` // stamp of each field as the writer saw it

	malformed error  // set when a pushed mutation's fields could not be decoded
	encoded   []byte // Data as EncodeData writes it, once Validate has passed
	jsonKnown bool   // Data's values were checked to be JSON when decoded
}

// EncodedData returns the mutation's data as EncodeData writes it,
// computed once by a successful Validate.
func (m *Mutation) EncodedData() []byte {
	if m.encoded == nil && m.Op == OpPut {
		m.encoded = EncodeData(m.Data)
	}
	return m.encoded
}

// AsRecord returns the state m writes: its fields at m.Stamp, or a tombstone.
func (m Mutation) AsRecord() Record {
	if m.Op == OpDelete {
		return Record{Deleted: m.Stamp}
	}
	st := make(map[string]Stamp, len(m.Data))
	for f := range m.Data {
		st[f] = m.Stamp
	}
	return Record{Data: m.Data, Stamps: st}
}

// Push sends a batch of mutations. The server applies the batch in one
// transaction and answers with a Result once it is durable.
type Push struct {
	Mutations []Mutation `json:"mutations"`
}

// UnmarshalJSON decodes a push so that a mutation whose fields have the
// wrong JSON types is kept, with only its id, and later refused on its own
// by Validate, rather than failing the whole batch.
func (p *Push) UnmarshalJSON(b []byte) error {
	type plain Push
	if err := json.Unmarshal(b, (*plain)(p)); err == nil {
		return nil
	}
	var raw struct {
		Mutations []json.RawMessage `json:"mutations"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	p.Mutations = make([]Mutation, len(raw.Mutations))
	for i, r := range raw.Mutations {
		if err := json.Unmarshal(r, &p.Mutations[i]); err != nil {
			var id struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(r, &id)
			p.Mutations[i] = Mutation{ID: id.ID, malformed: err}
		}
	}
	return nil
}

// Status is the outcome of one mutation.
type Status string

// Mutation outcomes.
const (
	StatusApplied   Status = "applied"
	StatusDuplicate Status = "duplicate" // applied before; nothing done now
	StatusRejected  Status = "rejected"  // refused; see Code and Message
)

// Result answers a push, one entry per mutation in order.
type Result struct {
	Results []MutationResult `json:"results"`
}

// MutationResult is the outcome of one mutation. Seq is the server sequence
// of the record once the mutation was applied: the client's copy includes the
// mutation when it holds the record at Seq or later. Stamp is set when the
// server replaced a stamp from a clock too far ahead (see MaxFuture).
type MutationResult struct {
	ID        string       `json:"id"`
	Status    Status       `json:"status"`
	Seq       int64        `json:"seq,omitempty"`
	Stamp     Stamp        `json:"stamp,omitzero"`
	Code      Code         `json:"code,omitempty"`
	Message   string       `json:"message,omitempty"` // localised to the session's language
	Fields    []FieldError `json:"fields,omitempty"`  // for CodeInvalid: each field and the rule it breaks
	Conflicts []Conflict   `json:"conflicts,omitempty"`
}

// Pull asks for the changes after the cursors, one per scope.
type Pull struct {
	Cursors map[string]int64 `json:"cursors,omitempty"`
	Limit   int              `json:"limit,omitempty"` // changes per page; 0 means the server's default
	// Pages asks for this many pages back to back (0 means 1, at most
	// MaxPullPages): the server sends exactly that many unless one of them
	// has More false and ends the catch-up. Each page carries the pull's re.
	Pages int `json:"pages,omitempty"`
}

// MaxPullPages bounds the pages one pull may ask for.
const MaxPullPages = 8

// Page carries changes in server sequence order and the cursors to resume
// from. More is true when the server holds further changes: pull again. A
// client applies a page and its cursors in one transaction.
type Page struct {
	Changes []Change         `json:"changes"`
	Cursors map[string]int64 `json:"cursors"`
	More    bool             `json:"more,omitempty"`
}

// Change is the current state of one record at server sequence Seq. Data and
// Stamps are in the forms EncodeData and EncodeStamps write. Gone means the
// record left the receiver's scopes: the receiver removes its copy. Scopes
// are the receiver's scopes the record is in; absent, the receiver's only
// scope is "all".
type Change struct {
	Collection string          `json:"collection"`
	ID         string          `json:"id"`
	Seq        int64           `json:"seq"`
	Data       json.RawMessage `json:"data,omitempty"`
	Stamps     json.RawMessage `json:"stamps,omitempty"`
	Deleted    Stamp           `json:"deleted,omitzero"`
	Gone       bool            `json:"gone,omitempty"`
	Scopes     []string        `json:"scopes,omitempty"`
}

// NewChange returns the change that carries rec at seq.
func NewChange(collection, id string, seq int64, rec Record) Change {
	return Change{
		Collection: collection, ID: id, Seq: seq,
		Data: EncodeData(rec.Data), Stamps: EncodeStamps(rec.Stamps), Deleted: rec.Deleted,
	}
}

// Record decodes the state a change carries. Errors wrap ErrBadMessage.
func (c Change) Record() (Record, error) {
	rec := Record{Deleted: c.Deleted}
	if len(c.Data) == 0 {
		rec.Data, rec.Stamps = map[string]json.RawMessage{}, map[string]Stamp{}
		return rec, nil
	}
	data, err := DecodeData(c.Data)
	if err != nil {
		return rec, fmt.Errorf("change %s/%s: %w", c.Collection, c.ID, err)
	}
	stamps, err := DecodeStamps(c.Stamps, data)
	if err != nil {
		return rec, fmt.Errorf("change %s/%s: %w", c.Collection, c.ID, err)
	}
	rec.Data, rec.Stamps = data, stamps
	return rec, nil
}

// ErrorMsg reports an error. Fatal means the server closes the session after
// it; Message is localised to the session's language.
type ErrorMsg struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	Fatal   bool   `json:"fatal,omitempty"`
}

// Ping checks the session is alive; the answer carries the server's time.
type Ping struct {
	Time int64 `json:"time"` // Unix milliseconds of the sender
}

// Encode returns the JSON form of m.
func Encode(m *Message) ([]byte, error) {
	if (m.Type == TypePage || m.Type == TypeChanges) && m.Page != nil {
		if b, ok := appendPage(nil, m); ok {
			return b, nil
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.Type, err)
	}
	return b, nil
}

// Decode parses and validates one frame. Any malformed, invalid or oversized
// input returns an error wrapping ErrBadMessage or ErrTooLarge; it never
// panics. The message may share memory with frame.
func Decode(frame []byte) (*Message, error) {
	if len(frame) > MaxFrameBytes {
		return nil, Errorf(CodeTooLarge, "frame of %d bytes", len(frame))
	}
	if !utf8.Valid(frame) {
		return nil, Errorf(CodeBadMessage, "frame is not valid UTF-8")
	}
	for _, fast := range []func([]byte) (*Message, bool){decodePage, decodePush, decodeResult} {
		if m, ok := fast(frame); ok {
			if err := m.Validate(); err != nil {
				return nil, err
			}
			return m, nil
		}
	}
	var m Message
	if err := json.Unmarshal(frame, &m); err != nil {
		return nil, &Error{Code: CodeBadMessage, Message: "decode frame", Err: err}
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks that m is a well-formed message: a known type with exactly
// its body, names and identifiers in range. Mutations in a push are checked
// only for their identifiers: each is validated on its own when applied.
// Errors wrap ErrBadMessage or ErrTooLarge.
func (m *Message) Validate() error {
	bodies := 0
	for _, set := range []bool{m.Hello != nil, m.Welcome != nil, m.Push != nil, m.Result != nil,
		m.Pull != nil, m.Page != nil, m.Error != nil, m.Ping != nil} {
		if set {
			bodies++
		}
	}
	if bodies != 1 {
		return Errorf(CodeBadMessage, "message %q: want exactly one body, have %d", m.Type, bodies)
	}
	missing := func() error { return Errorf(CodeBadMessage, "message %q: missing its body", m.Type) }
	switch m.Type {
	case TypeHello:
		if m.Hello == nil {
			return missing()
		}
		return m.Hello.validate()
	case TypeWelcome:
		if m.Welcome == nil {
			return missing()
		}
	case TypePush:
		if m.Push == nil {
			return missing()
		}
		return m.Push.validate()
	case TypeResult:
		if m.Result == nil {
			return missing()
		}
	case TypePull:
		if m.Pull == nil {
			return missing()
		}
		if m.Pull.Limit < 0 || m.Pull.Limit > MaxPage {
			return Errorf(CodeBadMessage, "pull: limit %d out of range 0..%d", m.Pull.Limit, MaxPage)
		}
		if m.Pull.Pages < 0 || m.Pull.Pages > MaxPullPages {
			return Errorf(CodeBadMessage, "pull: pages %d out of range 0..%d", m.Pull.Pages, MaxPullPages)
		}
		return validateCursors(m.Pull.Cursors)
	case TypePage, TypeChanges:
		if m.Page == nil {
			return missing()
		}
		return m.Page.validate()
	case TypeError:
		if m.Error == nil {
			return missing()
		}
		if m.Error.Code == "" {
			return Errorf(CodeBadMessage, "error: empty code")
		}
	case TypePing, TypePong:
		if m.Ping == nil {
			return missing()
		}
	default:
		return Errorf(CodeBadMessage, "unknown message type %.40q", m.Type)
	}
	return nil
}

func (h *Hello) validate() error {
	if h.Protocol != ProtocolVersion {
		return Errorf(CodeProtocolUnsupported, "protocol %d, this peer speaks %d", h.Protocol, ProtocolVersion)
	}
	if !ValidNode(h.Device) {
		return Errorf(CodeBadMessage, "hello: device %.40q is not a node identifier", h.Device)
	}
	if len(h.Token) > MaxTokenLen || len(h.Enrol) > 64 || len(h.Lang) > 35 || len(h.Client) > 200 || len(h.Compression) > 16 {
		return Errorf(CodeBadMessage, "hello: token, enrolment code, lang, client or compression too long")
	}
	if h.Token != "" && h.Enrol != "" {
		return Errorf(CodeBadMessage, "hello: a token or an enrolment code, not both")
	}
	return validateCursors(h.Cursors)
}

func validateCursors(c map[string]int64) error {
	if len(c) > 10000 {
		return Errorf(CodeTooLarge, "%d cursors", len(c))
	}
	for scope, seq := range c {
		if scope == "" || len(scope) > MaxScopeLen || seq < 0 {
			return Errorf(CodeBadMessage, "cursor %.40q=%d out of range", scope, seq)
		}
	}
	return nil
}

func (p *Push) validate() error {
	if len(p.Mutations) == 0 || len(p.Mutations) > MaxBatch {
		return Errorf(CodeBadMessage, "push: %d mutations, want 1..%d", len(p.Mutations), MaxBatch)
	}
	// Only identifiers are checked here: the receiver validates each
	// mutation on its own and refuses the bad ones, so one bad write does
	// not block the rest of the batch.
	for i, m := range p.Mutations {
		if !validMutationID(m.ID) {
			return Errorf(CodeBadMessage, "push: mutation %d: id %.40q is not a lowercase UUID", i, m.ID)
		}
	}
	return nil
}

func validMutationID(id string) bool {
	u, err := uuid.Parse(id)
	return err == nil && u.String() == id
}

func (p *Page) validate() error {
	if len(p.Changes) > MaxPage {
		return Errorf(CodeTooLarge, "page of %d changes", len(p.Changes))
	}
	for _, c := range p.Changes {
		if !ValidName(c.Collection) || !ValidID(c.ID) || c.Seq <= 0 {
			return Errorf(CodeBadMessage, "change %.70q/%.130q seq %d", c.Collection, c.ID, c.Seq)
		}
		if len(c.Scopes) > 1000 || slices.ContainsFunc(c.Scopes, func(s string) bool { return s == "" || len(s) > 128 }) {
			return Errorf(CodeBadMessage, "change %s/%s: scopes", c.Collection, c.ID)
		}
	}
	return validateCursors(p.Cursors)
}

// Validate checks a mutation on its own: a UUID identifier, valid names, an
// operation with the data it needs, a stamp, sizes within limits. Put values
// are put in canonical form in place: compact, with <, > and & escaped as
// encoding/json writes them, and text in Unicode NFC. Errors wrap
// ErrBadMessage or ErrTooLarge.
func (m *Mutation) Validate() error {
	if m.encoded != nil && m.Op == OpPut {
		return nil // validated already, and unchanged since: Data is not to be modified after
	}
	if !validMutationID(m.ID) {
		return Errorf(CodeBadMessage, "mutation id %.40q is not a lowercase UUID", m.ID)
	}
	if m.malformed != nil {
		return &Error{Code: CodeBadMessage, Message: "mutation " + m.ID, Err: m.malformed}
	}
	if !ValidName(m.Collection) {
		return Errorf(CodeBadMessage, "mutation %s: collection %.70q is not a valid name", m.ID, m.Collection)
	}
	if !ValidID(m.Record) {
		return Errorf(CodeBadMessage, "mutation %s: record id %.130q is not valid", m.ID, m.Record)
	}
	if m.Stamp.IsZero() {
		return Errorf(CodeBadMessage, "mutation %s: no stamp", m.ID)
	}
	for f := range m.Base {
		if !ValidName(f) {
			return Errorf(CodeBadMessage, "mutation %s: base field %.70q is not a valid name", m.ID, f)
		}
	}
	switch m.Op {
	case OpDelete:
		if len(m.Data) != 0 {
			return Errorf(CodeBadMessage, "mutation %s: delete carries data", m.ID)
		}
	case OpPut:
		if len(m.Data) == 0 {
			return Errorf(CodeBadMessage, "mutation %s: put without fields", m.ID)
		}
		size := 0
		for f, v := range m.Data {
			if !ValidName(f) {
				return Errorf(CodeBadMessage, "mutation %s: field %.70q is not a valid name", m.ID, f)
			}
			canon, err := canonicalJSON(v, m.jsonKnown)
			if err != nil {
				return Errorf(CodeBadMessage, "mutation %s: field %s is not JSON", m.ID, f)
			}
			m.Data[f] = canon
			size += len(f) + len(canon)
		}
		if size > MaxMutationBytes {
			return Errorf(CodeTooLarge, "mutation %s: %d bytes of data, limit %d", m.ID, size, MaxMutationBytes)
		}
		m.encoded = EncodeData(m.Data)
	default:
		return Errorf(CodeBadMessage, "mutation %s: unknown op %.20q", m.ID, m.Op)
	}
	return nil
}

// ValidName reports whether s is a valid collection or field name: a lowercase
// letter, then up to MaxNameLen-1 lowercase letters, digits or underscores.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLen || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// ValidID reports whether s is a valid record identifier: 1 to MaxIDLen
// characters from letters, digits and "-._:".
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !idByte[s[i]] {
			return false
		}
	}
	return true
}

// idByte marks the bytes a record identifier may hold.
var idByte = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == ':'
	}
	return t
}()

// appendPage writes a page without encoding/json, which would re-validate
// every change's data: pages are the bulk of what a server sends. It gives
// up (false) on anything it cannot write verbatim, and Encode falls back to
// encoding/json, which writes the same fields.
func appendPage(b []byte, m *Message) ([]byte, bool) {
	p := m.Page
	size := 128
	for _, c := range p.Changes {
		size += 96 + len(c.Collection) + len(c.ID) + len(c.Data) + len(c.Stamps)
	}
	b = slices.Grow(b, size)
	b = append(b, `{"type":"`...)
	b = append(b, m.Type...)
	b = append(b, '"')
	if m.Re != 0 {
		b = append(b, `,"re":`...)
		b = strconv.AppendUint(b, m.Re, 10)
	}
	b = append(b, `,"page":{"changes":[`...)
	for i, c := range p.Changes {
		if !ValidName(c.Collection) || !ValidID(c.ID) || !rawObject(c.Data) || !rawObject(c.Stamps) {
			return nil, false
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"collection":"`...)
		b = append(b, c.Collection...)
		b = append(b, `","id":"`...)
		b = append(b, c.ID...)
		b = append(b, `","seq":`...)
		b = strconv.AppendInt(b, c.Seq, 10)
		if len(c.Data) > 0 {
			b = append(b, `,"data":`...)
			b = append(b, c.Data...)
		}
		if len(c.Stamps) > 0 {
			b = append(b, `,"stamps":`...)
			b = append(b, c.Stamps...)
		}
		if !c.Deleted.IsZero() {
			b = append(b, `,"deleted":"`...)
			b = c.Deleted.appendText(b)
			b = append(b, '"')
		}
		if c.Gone {
			b = append(b, `,"gone":true`...)
		}
		if len(c.Scopes) > 0 {
			b = append(b, `,"scopes":[`...)
			for i, sc := range c.Scopes {
				if i > 0 {
					b = append(b, ',')
				}
				var ok bool
				if b, ok = appendPlainString(b, sc); !ok {
					return nil, false
				}
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	b = append(b, `],"cursors":{`...)
	for i, scope := range slices.Sorted(maps.Keys(p.Cursors)) {
		if i > 0 {
			b = append(b, ',')
		}
		var ok bool
		if b, ok = appendPlainString(b, scope); !ok {
			return nil, false
		}
		b = append(b, ':')
		b = strconv.AppendInt(b, p.Cursors[scope], 10)
	}
	b = append(b, '}')
	if p.More {
		b = append(b, `,"more":true`...)
	}
	return append(b, '}', '}'), true
}

// rawObject reports whether b is empty or looks like a JSON object. Stored
// data and stamps are written by this package; a full check would cost what
// appendPage saves, and the receiver validates every frame anyway.
func rawObject(b []byte) bool {
	return len(b) == 0 || (len(b) >= 2 && b[0] == '{' && b[len(b)-1] == '}')
}

// appendPlainString appends s quoted if it needs no escaping.
func appendPlainString(b []byte, s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			return nil, false
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), true
}

// canonicalJSON returns v compact, with <, > and & escaped as encoding/json
// writes them, so one value has one byte form wherever it is stored. Values
// already in that form, as encoding/json makes them, are returned as they are.
// known says v was already checked to be valid JSON, as the fast push
// parser checks every value it reads.
func canonicalJSON(v []byte, known bool) ([]byte, error) {
	plain := true
	for _, c := range v {
		switch c {
		case ' ', '\t', '\n', '\r', '<', '>', '&', 0xe2: // 0xe2 starts U+2028 and U+2029
			plain = false
		}
	}
	// Text is kept in Unicode normalisation form C, so a name typed on two
	// keyboards is one name, byte for byte. JSON's structure is ASCII,
	// which NFC leaves alone, so the whole text can be normalised at once.
	if !norm.NFC.IsNormal(v) {
		v = norm.NFC.Bytes(v)
	}
	if plain {
		if len(v) == 0 || (!known && !json.Valid(v)) {
			return nil, Errorf(CodeBadMessage, "not JSON")
		}
		return v, nil
	}
	var compact, buf bytes.Buffer
	if err := json.Compact(&compact, v); err != nil || compact.Len() == 0 {
		return nil, Errorf(CodeBadMessage, "not JSON")
	}
	json.HTMLEscape(&buf, compact.Bytes())
	return buf.Bytes(), nil
}
