// Package mobile is the client library's face for gomobile (gobind): only
// string, bool, int64 and error cross it, records travel as JSON, and events
// reach the app through the Listener interface. Apps on Android and iOS use
// it; Go programs use package client directly.
//
// Concurrency: every method is safe to call from any thread. Listener
// methods are called in order on one goroutine that is not the app's UI
// thread.
package mobile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ponte-project/ponte/client"
	"github.com/ponte-project/ponte/locales"
	"github.com/ponte-project/ponte/records"
	"github.com/ponte-project/ponte/syncproto"
)

// Listener receives what an app shows about syncing.
type Listener interface {
	// OnState is called when the sync state changes: "offline",
	// "connecting", "syncing" or "live"; text is its localised label.
	OnState(state, text string)
	// OnChanged is called when records changed in the replica, with a JSON
	// array of {"collection","id"} and whether the change was made here.
	OnChanged(recordsJSON string, local bool)
	// OnStopped is called when background syncing stops by itself, because
	// retrying cannot help: the device is unknown or revoked, or the app
	// must be updated. code is the error code, message its localised text.
	OnStopped(code, message string)
}

// errNotOpen is returned by a Replica made with new(Replica), as gobind
// allows, rather than by Open.
var errNotOpen = errors.New("replica not opened: use Open")

// Replica is a local replica and its sync engine.
type Replica struct {
	c *client.Client

	mu       sync.Mutex
	listener Listener
	stop     context.CancelFunc
	done     chan error
}

// Open opens or creates the replica at path. server and token may be empty
// for a replica that works offline only; lang is a BCP 47 tag.
func Open(path, server, token, lang string) (*Replica, error) {
	r := &Replica{}
	c, err := client.Open(context.Background(), path, client.Options{
		Server: server, Token: token, Lang: lang, Schema: records.Schema, OnEvent: r.deliver,
	})
	if err != nil {
		return nil, err
	}
	r.c = c
	return r, nil
}

func (r *Replica) deliver(e client.Event) {
	r.mu.Lock()
	l := r.listener
	r.mu.Unlock()
	if l == nil {
		return
	}
	switch e.Kind {
	case client.EventState:
		l.OnState(string(e.State), r.c.Text(e.State))
	case client.EventChanged, client.EventPushed:
		b, _ := json.Marshal(e.Records)
		l.OnChanged(string(b), e.Local)
	}
}

// SetListener sets (or, with nil, removes) the listener.
func (r *Replica) SetListener(l Listener) {
	r.mu.Lock()
	r.listener = l
	r.mu.Unlock()
}

// Put sets the fields given as a JSON object; durable when it returns.
func (r *Replica) Put(collection, id, fieldsJSON string) error {
	if r.c == nil {
		return errNotOpen
	}
	var fields map[string]any
	dec := json.NewDecoder(strings.NewReader(fieldsJSON))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil || fields == nil {
		return r.explain(fmt.Errorf("put %s/%s: fields must be a JSON object: %w: %w", collection, id,
			client.ErrInvalidWrite, &syncproto.Error{Code: syncproto.CodeBadMessage, Err: err}))
	}
	return r.explain(r.c.Put(context.Background(), collection, id, fields))
}

// Delete deletes a record; durable when it returns.
func (r *Replica) Delete(collection, id string) error {
	if r.c == nil {
		return errNotOpen
	}
	return r.explain(r.c.Delete(context.Background(), collection, id))
}

// Get returns a record's fields as a JSON object, or "" if the replica does
// not hold it.
func (r *Replica) Get(collection, id string) (string, error) {
	if r.c == nil {
		return "", errNotOpen
	}
	f, err := r.c.Get(context.Background(), collection, id)
	if errors.Is(err, client.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", r.explain(err)
	}
	b, err := json.Marshal(f)
	return string(b), err
}

// Query runs read-only SQL over the replica (see client.Client.Query) with
// arguments given as a JSON array, and returns the rows as a JSON array of
// objects keyed by column name.
func (r *Replica) Query(query, argsJSON string) (string, error) {
	if r.c == nil {
		return "", errNotOpen
	}
	var args []any
	if argsJSON != "" {
		if err := json.Unmarshal([]byte(argsJSON), &args); err != nil {
			return "", fmt.Errorf("query: arguments must be a JSON array: %w", err)
		}
	}
	rows, err := r.c.Query(context.Background(), query, args...)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return "", err
	}
	out := []map[string]any{}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return "", err
		}
		row := make(map[string]any, len(cols))
		for i, c := range cols {
			if b, ok := vals[i].([]byte); ok {
				vals[i] = string(b)
			}
			row[c] = vals[i]
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	b, err := json.Marshal(out)
	return string(b), err
}

// Sync runs one round with the server and returns when it is done. While
// Start's background loop runs it returns nil at once: that loop already
// keeps the replica in sync.
func (r *Replica) Sync() error {
	if r.c == nil {
		return errNotOpen
	}
	r.mu.Lock()
	running := r.stop != nil
	r.mu.Unlock()
	if running {
		return nil
	}
	return r.explain(r.c.Sync(context.Background()))
}

// Start keeps the replica in sync in the background until Stop.
func (r *Replica) Start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.c == nil || r.stop != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	r.stop, r.done = cancel, done
	go func() {
		err := r.explain(r.c.Run(ctx))
		var e *Error
		if errors.As(err, &e) {
			r.mu.Lock()
			l := r.listener
			r.mu.Unlock()
			if l != nil {
				l.OnStopped(e.Code, e.Message)
			}
		}
		done <- err
	}()
}

// Stop ends background syncing and returns the error that ended it early,
// if any (an unknown or revoked device).
func (r *Replica) Stop() error {
	r.mu.Lock()
	stop, done := r.stop, r.done
	r.stop, r.done = nil, nil
	r.mu.Unlock()
	if stop == nil {
		return nil
	}
	stop()
	return r.explain(<-done)
}

// Status returns the sync status as JSON (see client.Status).
func (r *Replica) Status() (string, error) {
	if r.c == nil {
		return "", errNotOpen
	}
	st, err := r.c.Status(context.Background())
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(st)
	return string(b), err
}

// Conflicts returns the conflicts kept on this device as a JSON array.
func (r *Replica) Conflicts() (string, error) {
	if r.c == nil {
		return "", errNotOpen
	}
	cs, err := r.c.Conflicts(context.Background())
	return jsonArray(cs, err)
}

// Rejected returns the writes the server refused as a JSON array.
func (r *Replica) Rejected() (string, error) {
	if r.c == nil {
		return "", errNotOpen
	}
	rs, err := r.c.Rejected(context.Background())
	return jsonArray(rs, err)
}

// Enrol exchanges a one-time enrolment code from an administrator for this
// device's token, which the replica keeps: open it with an empty token from
// then on. It needs the server.
func (r *Replica) Enrol(code string) error {
	if r.c == nil {
		return errNotOpen
	}
	return r.explain(r.c.Enrol(context.Background(), code))
}

// User returns the user this device belongs to, known after enrolment or
// the first sync; "" before.
func (r *Replica) User() (string, error) {
	if r.c == nil {
		return "", errNotOpen
	}
	return r.c.User(context.Background())
}

// MarkAttendance records a person's mark for a lesson: present, absent,
// late or excused (see client.Client.MarkAttendance).
func (r *Replica) MarkAttendance(lessonID, personID, mark string) error {
	if r.c == nil {
		return errNotOpen
	}
	return r.explain(r.c.MarkAttendance(context.Background(), lessonID, personID, mark))
}

// Register returns a lesson's register as a JSON array of
// client.RegisterEntry: each enrolled person and their mark, or none.
func (r *Replica) Register(lessonID string) (string, error) {
	if r.c == nil {
		return "", errNotOpen
	}
	reg, err := r.c.Register(context.Background(), lessonID)
	return jsonArray(reg, r.explain(err))
}

// CourseAttendance returns, as a JSON array of records.AttendanceRate, each
// enrolled person's attendance in a course now and whether they are on
// track for the certificate.
func (r *Replica) CourseAttendance(courseID string) (string, error) {
	if r.c == nil {
		return "", errNotOpen
	}
	rates, err := r.c.CourseAttendance(context.Background(), courseID, time.Now())
	return jsonArray(rates, r.explain(err))
}

// Appointments returns, as a JSON array, a mediator's appointments starting
// in [from, to), both Unix milliseconds, in start order.
func (r *Replica) Appointments(mediator string, fromMillis, toMillis int64) (string, error) {
	if r.c == nil {
		return "", errNotOpen
	}
	as, err := r.c.Appointments(context.Background(), mediator, time.UnixMilli(fromMillis), time.UnixMilli(toMillis))
	return jsonArray(as, r.explain(err))
}

// SearchPersons returns, as a JSON array, up to limit persons whose names
// contain query, ignoring case in every script.
func (r *Replica) SearchPersons(query string, limit int64) (string, error) {
	if r.c == nil {
		return "", errNotOpen
	}
	ps, err := r.c.SearchPersons(context.Background(), query, int(limit))
	return jsonArray(ps, r.explain(err))
}

// Direction returns "rtl" or "ltr" for the replica's language.
func (r *Replica) Direction() string {
	if r.c == nil {
		return "ltr"
	}
	return r.c.Direction()
}

// Close stops syncing and closes the replica.
func (r *Replica) Close() error {
	if r.c == nil {
		return nil
	}
	err := r.Stop()
	if cerr := r.c.Close(); err == nil {
		err = cerr
	}
	return err
}

func jsonArray[T any](v []T, err error) (string, error) {
	if err != nil {
		return "", err
	}
	if v == nil {
		v = []T{}
	}
	b, err := json.Marshal(v)
	return string(b), err
}

// Error is what an app shows for a failed call: the localised text, with the
// code for the app's logic. For a write that breaks the records' rules,
// Code is "invalid_write" and Fields is a JSON array of the fields at fault,
// each {"field", "rule", "param", "message"} with the message localised.
type Error struct {
	Code    string
	Message string
	Fields  string
	err     error
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.err }

// explain turns errors carrying a code into an *Error whose message is in
// the replica's language.
func (r *Replica) explain(err error) error {
	l := r.c.Localizer()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, client.ErrNotFound):
		return &Error{Code: "not_found", Message: locales.Text(l, "client.not_found", nil), err: err}
	case errors.Is(err, client.ErrUnknownUser):
		return &Error{Code: "unknown_user", Message: locales.Text(l, "client.unknown_user", nil), err: err}
	}
	var pe *syncproto.Error
	found := errors.As(err, &pe)
	switch {
	case errors.Is(err, client.ErrInvalidWrite) && found && len(pe.Fields) > 0:
		fields := slices.Clone(pe.Fields)
		for i := range fields {
			fields[i].Message = locales.FieldText(l, fields[i])
		}
		b, _ := json.Marshal(fields)
		return &Error{Code: "invalid_write", Message: locales.Text(l, "client.invalid_fields", nil) + "\n" +
			locales.Explain(l, pe.Code, pe.Fields), Fields: string(b), err: err}
	case errors.Is(err, client.ErrInvalidWrite):
		return &Error{Code: "invalid_write", Message: locales.Text(l, "client.invalid_write", nil), err: err}
	case found:
		return &Error{Code: string(pe.Code), Message: locales.Text(l, pe.Code.MessageID(), nil), err: err}
	}
	return err
}
