package syncproto

import (
	"errors"
	"fmt"
)

// Code classifies an error for every edge that reports it: the protocol's
// error and result codes, HTTP statuses, and the go-i18n message a person
// reads ("error.<code>" in locales/).
type Code string

// The error codes of the protocol. PROTOCOL.md lists what each means for a
// client.
const (
	CodeBadMessage          Code = "bad_message"          // malformed or invalid frame or field
	CodeProtocolUnsupported Code = "protocol_unsupported" // client must be updated
	CodeUnauthorized        Code = "unauthorized"         // missing, unknown or wrong token
	CodeRevoked             Code = "revoked"              // device revoked: wipe the replica
	CodeForbidden           Code = "forbidden"            // write outside the writer's scope
	CodeInvalid             Code = "invalid"              // a mutation's content is not acceptable
	CodeTooLarge            Code = "too_large"            // frame or mutation over the limit
	CodeSlowConsumer        Code = "slow_consumer"        // the client did not read fast enough
	CodeRateLimited         Code = "rate_limited"         // too many requests; retry later
	CodeShuttingDown        Code = "shutting_down"        // the server is stopping; reconnect later
	CodeScopesChanged       Code = "scopes_changed"       // the user's scopes changed; reconnect now
	CodeInternal            Code = "internal"             // a fault on the server; retry later
	// CodeUnreachable never travels on the wire: a client reports it when it
	// cannot reach the server or the connection drops.
	CodeUnreachable Code = "unreachable"
)

// Error is an application error with a code. Message is for operators and
// logs (English, may hold detail); people see the localised text of Code,
// or of each of Fields when a write broke a Schema's rules.
type Error struct {
	Code    Code
	Message string
	Err     error
	Fields  []FieldError
}

// Errorf returns an *Error with a formatted operator message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	switch {
	case e.Message != "" && e.Err != nil:
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	case e.Message != "":
		return fmt.Sprintf("%s: %s", e.Code, e.Message)
	case e.Err != nil:
		return fmt.Sprintf("%s: %v", e.Code, e.Err)
	}
	return string(e.Code)
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrX) match any *Error with ErrX's code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Err == nil && t.Fields == nil && t.Code == e.Code
}

// Sentinels for errors.Is: errors.Is(err, syncproto.ErrUnauthorized).
var (
	ErrBadMessage          = &Error{Code: CodeBadMessage}
	ErrProtocolUnsupported = &Error{Code: CodeProtocolUnsupported}
	ErrUnauthorized        = &Error{Code: CodeUnauthorized}
	ErrRevoked             = &Error{Code: CodeRevoked}
	ErrForbidden           = &Error{Code: CodeForbidden}
	ErrInvalid             = &Error{Code: CodeInvalid}
	ErrTooLarge            = &Error{Code: CodeTooLarge}
	ErrSlowConsumer        = &Error{Code: CodeSlowConsumer}
	ErrRateLimited         = &Error{Code: CodeRateLimited}
	ErrShuttingDown        = &Error{Code: CodeShuttingDown}
	ErrScopesChanged       = &Error{Code: CodeScopesChanged}
	ErrInternal            = &Error{Code: CodeInternal}
	ErrUnreachable         = &Error{Code: CodeUnreachable}
)

// ErrorCode returns the code of the first *Error in err's chain, CodeInternal
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// MessageID returns the go-i18n message ID that explains code to a person.
func (c Code) MessageID() string { return "error." + string(c) }

// Codes lists every code, for catalogue completeness tests.
func Codes() []Code {
	return []Code{CodeBadMessage, CodeProtocolUnsupported, CodeUnauthorized, CodeRevoked,
		CodeForbidden, CodeInvalid, CodeTooLarge, CodeSlowConsumer, CodeRateLimited,
		CodeShuttingDown, CodeScopesChanged, CodeInternal, CodeUnreachable}
}
