package client

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/ponte-project/ponte/internal/sqlitedb"
	"github.com/ponte-project/ponte/locales"
	"github.com/ponte-project/ponte/syncproto"
)

// State is where the sync engine is.
type State string

// The engine's states. Only StateLive means the replica is up to date with
// the server and receiving its changes as they happen.
const (
	StateOffline    State = "offline"    // no connection (or never tried)
	StateConnecting State = "connecting" // dialling and handshaking
	StateSyncing    State = "syncing"    // sending queued writes, catching up
	StateLive       State = "live"       // caught up; changes arrive by push
)

// Text returns the state in the client's language, for a status line.
func (c *Client) Text(s State) string { return locales.Text(c.loc, "state."+string(s), nil) }

// Status is what an app shows about syncing. It never claims more than is
// true: LastSync is the end of the last round that pushed and pulled
// everything, LastError the error of the last round that failed.
type Status struct {
	State     State            `json:"state"`
	Pending   int              `json:"pending"`   // local writes the server has not acknowledged
	Rejected  int              `json:"rejected"`  // writes the server refused
	Conflicts int              `json:"conflicts"` // conflicts reported for this device's writes
	Cursor    int64            `json:"cursor"`    // highest server sequence caught up to
	Cursors   map[string]int64 `json:"cursors"`
	LastSync  *time.Time       `json:"last_sync,omitempty"`
	LastError *ErrorInfo       `json:"last_error,omitempty"`
}

// ErrorInfo is an error as a person reads it: its code and a localised text.
type ErrorInfo struct {
	Code    syncproto.Code `json:"code"`
	Message string         `json:"message"`
	At      time.Time      `json:"at"`
}

// Status returns the replica's sync status. It reads only the replica.
func (c *Client) Status(ctx context.Context) (Status, error) {
	st := Status{State: c.state.Load().(State)}
	err := c.db.Reader.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM outbox WHERE acked_seq IS NULL),
		(SELECT count(*) FROM rejected), (SELECT count(*) FROM conflicts)`).Scan(&st.Pending, &st.Rejected, &st.Conflicts)
	if err != nil {
		return st, fmt.Errorf("status: %w", err)
	}
	if st.Cursors, err = c.cursors(ctx); err != nil {
		return st, fmt.Errorf("status: %w", err)
	}
	for _, seq := range st.Cursors {
		st.Cursor = max(st.Cursor, seq)
	}
	m, err := meta(ctx, c.db.Reader, "last_sync", "last_error")
	if err != nil {
		return st, fmt.Errorf("status: %w", err)
	}
	if v := m["last_sync"]; v != "" {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			st.LastSync = &t
		}
	}
	if v := m["last_error"]; v != "" {
		var e ErrorInfo
		if json.Unmarshal([]byte(v), &e) == nil {
			e.Message = locales.Text(c.loc, e.Code.MessageID(), nil)
			st.LastError = &e
		}
	}
	return st, nil
}

// recordRound persists the outcome of a sync round for Status.
func (c *Client) recordRound(ctx context.Context, roundErr error) {
	err := c.inTx(ctx, sqlitedb.SyncNormal, func(tx *sqlitedb.Tx) error {
		if roundErr == nil {
			if err := setMeta(ctx, tx, "last_sync", c.opts.Now().UTC().Format(time.RFC3339Nano)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `DELETE FROM meta WHERE key = 'last_error'`)
			return err
		}
		b, _ := json.Marshal(ErrorInfo{Code: syncproto.ErrorCode(roundErr), At: c.opts.Now().UTC()})
		return setMeta(ctx, tx, "last_error", string(b))
	})
	if err != nil {
		c.log.Error("record sync outcome", "err", err)
	}
}

func (c *Client) setState(s State) {
	if c.state.Swap(s) != s {
		c.events.push(Event{Kind: EventState, State: s})
	}
}

// Conflict is a conflict the server reported for one of this device's
// writes: the field, the version kept and the version that lost.
type Conflict struct {
	Mutation   string             `json:"mutation"`
	Collection string             `json:"collection"`
	Record     string             `json:"record"`
	DetectedAt time.Time          `json:"detected_at"`
	Conflict   syncproto.Conflict `json:"conflict"`
}

// Conflicts returns the conflicts kept on this device, oldest first.
func (c *Client) Conflicts(ctx context.Context) ([]Conflict, error) {
	rows, err := c.db.Reader.QueryContext(ctx, `SELECT mutation_id, collection, record_id, body, detected_at FROM conflicts ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("conflicts: %w", err)
	}
	defer rows.Close()
	var out []Conflict
	for rows.Next() {
		var cf Conflict
		var body []byte
		var at int64
		if err := rows.Scan(&cf.Mutation, &cf.Collection, &cf.Record, &body, &at); err != nil {
			return nil, fmt.Errorf("conflicts: %w", err)
		}
		if err := json.Unmarshal(body, &cf.Conflict); err != nil {
			return nil, fmt.Errorf("conflicts: %w", err)
		}
		cf.DetectedAt = time.UnixMilli(at).UTC()
		out = append(out, cf)
	}
	return out, rows.Err()
}

// Rejection is a write the server refused, kept with its reason.
type Rejection struct {
	Mutation   syncproto.Mutation `json:"mutation"`
	Collection string             `json:"collection"`
	Record     string             `json:"record"`
	Code       syncproto.Code     `json:"code"`
	Message    string             `json:"message"` // localised by the server
	// Fields, for CodeInvalid, name each field at fault and the rule it
	// breaks, with the server's localised message.
	Fields     []syncproto.FieldError `json:"fields,omitempty"`
	RejectedAt time.Time              `json:"rejected_at"`
}

// Rejected returns the writes the server refused, oldest first.
func (c *Client) Rejected(ctx context.Context) ([]Rejection, error) {
	rows, err := c.db.Reader.QueryContext(ctx, `SELECT collection, record_id, body, code, message, fields, rejected_at FROM rejected ORDER BY rejected_at, id`)
	if err != nil {
		return nil, fmt.Errorf("rejected: %w", err)
	}
	defer rows.Close()
	var out []Rejection
	for rows.Next() {
		var r Rejection
		var body, fields []byte
		var at int64
		if err := rows.Scan(&r.Collection, &r.Record, &body, &r.Code, &r.Message, &fields, &at); err != nil {
			return nil, fmt.Errorf("rejected: %w", err)
		}
		if err := json.Unmarshal(fields, &r.Fields); err != nil {
			return nil, fmt.Errorf("rejected: %w", err)
		}
		if err := json.Unmarshal(body, &r.Mutation); err != nil {
			return nil, fmt.Errorf("rejected: %w", err)
		}
		r.RejectedAt = time.UnixMilli(at).UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}

// EventKind says what an Event reports.
type EventKind string

// Event kinds.
const (
	EventState   EventKind = "state"   // the engine's State changed
	EventChanged EventKind = "changed" // records changed in the replica
	EventPushed  EventKind = "pushed"  // the server answered (applied or refused) local writes to these records
)

// RecordKey names a record.
type RecordKey struct {
	Collection string `json:"collection"`
	ID         string `json:"id"`
}

// Event tells an app that something it may show has changed.
type Event struct {
	Kind    EventKind
	State   State       // for EventState
	Records []RecordKey // for EventChanged and EventPushed
	Local   bool        // for EventChanged: a write made on this device
	At      time.Time   // when the change was applied to the replica
}

// eventQueue delivers events in order on its own goroutine, so a slow
// handler never stalls the sync loop. The queue is unbounded: events are
// small and a handler that falls behind catches up.
type eventQueue struct {
	fn     func(Event)
	mu     sync.Mutex
	cond   *sync.Cond
	items  []Event
	closed bool
	done   chan struct{}
}

func newEventQueue(fn func(Event)) *eventQueue {
	q := &eventQueue{fn: fn, done: make(chan struct{})}
	q.cond = sync.NewCond(&q.mu)
	if fn == nil {
		close(q.done)
		return q
	}
	go q.run()
	return q
}

func (q *eventQueue) push(e Event) {
	if q.fn == nil {
		return
	}
	if e.At.IsZero() {
		e.At = time.Now()
	}
	q.mu.Lock()
	q.items = append(q.items, e)
	q.mu.Unlock()
	q.cond.Signal()
}

func (q *eventQueue) run() {
	defer close(q.done)
	for {
		q.mu.Lock()
		for len(q.items) == 0 && !q.closed {
			q.cond.Wait()
		}
		if len(q.items) == 0 {
			q.mu.Unlock()
			return
		}
		items := q.items
		q.items = nil
		q.mu.Unlock()
		for _, e := range items {
			q.fn(e)
		}
	}
}

// close delivers what is queued, then stops.
func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Signal()
	<-q.done
}
