package client

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/nicksnyder/go-i18n/v2/i18n"

	"github.com/ponte-project/ponte/internal/sqlitedb"
	"github.com/ponte-project/ponte/locales"
	"github.com/ponte-project/ponte/syncproto"
)

//go:embed migrations/*.sql
var migrations embed.FS

// ErrNotFound is returned by Get for a record the replica does not hold or
// that is deleted.
var ErrNotFound = errors.New("record not found")

// ErrInvalidWrite is returned by Write (with the syncproto error that says
// why) for a write that cannot be stored: a bad collection, id or field
// name, a value that is not JSON, one too large, or a record that would
// break the Schema's rules (the error's Fields name each field). Nothing
// was written.
var ErrInvalidWrite = errors.New("invalid write")

// Options configure a Client. Only Server and Token are needed to sync; a
// replica works offline without them.
type Options struct {
	Server string // websocket URL, e.g. ws://127.0.0.1:8080/sync
	Token  string // the device's bearer token
	Lang   string // BCP 47 language for messages; default English
	Logger *slog.Logger
	// Now is the device's physical clock; nil means time.Now.
	Now func() time.Time
	// Dialer dials the server; nil means a dialer with compression on.
	// Compression is offered, zstd frames and permessage-deflate alike,
	// only if the dialer's EnableCompression is set.
	Dialer *websocket.Dialer
	// PageSize is how many changes to ask for per page when catching up;
	// 0 means syncproto.MaxPage. Smaller pages mean a slow link loses less
	// of an interrupted catch-up.
	PageSize int
	// Schema, if set, checks every write before it is accepted: a write
	// whose record would break its rules fails with ErrInvalidWrite and an
	// *syncproto.Error naming each field at fault. Apps set records.Schema;
	// the server checks again either way.
	Schema syncproto.Schema
	// OnEvent, if set, receives events in order on a goroutine of its own,
	// never on the sync loop: a slow handler delays events, not syncing.
	OnEvent func(Event)
}

// Client is a local replica and its sync engine. Open it with Open; all
// methods are safe for concurrent use.
type Client struct {
	db     *sqlitedb.DB
	opts   Options
	log    *slog.Logger
	loc    *i18n.Localizer
	clock  *syncproto.Clock
	node   string
	events *eventQueue

	wmu sync.Mutex // serialises local transactions on the writer

	closeOnce sync.Once
	closeErr  error

	roundMu sync.Mutex    // one network session at a time
	wake    chan struct{} // a local write happened
	state   atomic.Value  // State
}

// Open opens or creates the replica at path. It needs no network.
func Open(ctx context.Context, path string, opts Options) (*Client, error) {
	db, err := sqlitedb.Open(ctx, path, sqlitedb.SyncFull)
	if err != nil {
		return nil, fmt.Errorf("open replica: %w", err)
	}
	// Before migrating: a migration may expect the indexes it knows.
	if err := buildIndexesLeftDeferred(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open replica: %w", err)
	}
	if err := db.Migrate(ctx, migrations, "migrations"); err != nil {
		db.Close()
		return nil, fmt.Errorf("open replica: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Client{db: db, opts: opts, log: opts.Logger, loc: locales.Localizer(opts.Lang),
		wake: make(chan struct{}, 1)}
	c.state.Store(StateOffline)
	if err := c.loadIdentity(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open replica: %w", err)
	}
	c.events = newEventQueue(opts.OnEvent)
	return c, nil
}

func (c *Client) loadIdentity(ctx context.Context) error {
	node := syncproto.NewNode()
	if _, err := c.db.Writer.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('node', ?) ON CONFLICT DO NOTHING`, node); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	m, err := meta(ctx, c.db.Writer, "node", "clock", "clock_offset")
	if err != nil {
		return err
	}
	c.node = m["node"]
	c.clock = syncproto.NewClock(c.node, c.opts.Now)
	if off, err := strconv.ParseInt(m["clock_offset"], 10, 64); err == nil {
		c.clock.SetOffset(time.Duration(off) * time.Millisecond)
	}
	// Restored even if it lies ahead of the machine's clock: after a flat
	// battery the machine's clock is behind, and stamps must stay monotonic.
	// A clock that ran ahead is pulled back when the server corrects it.
	if last, err := syncproto.ParseStamp(m["clock"]); err == nil {
		c.clock.Restore(last)
	}
	return nil
}

// Close stops event delivery and closes the replica. Sync and Run must have
// returned. Closing twice is harmless.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.events.close()
		c.closeErr = c.db.Close()
	})
	return c.closeErr
}

// Node returns the replica's node identifier, which stamps its writes (a
// wipe gives the replica a new one).
func (c *Client) Node() string {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.node
}

// Localizer returns the localizer for the client's language.
func (c *Client) Localizer() *i18n.Localizer { return c.loc }

// Direction returns "rtl" or "ltr": how to lay out text in the client's
// language, as its locale file declares (Arabic, Urdu, Persian and Pashto
// are right to left).
func (c *Client) Direction() string { return locales.Direction(c.loc) }

// Op is one write: a partial update of Fields, or a delete.
type Op struct {
	Collection string
	ID         string
	Fields     map[string]any // marshalled with encoding/json; json.RawMessage passes through
	Delete     bool
}

// Put sets the given fields of a record (a partial update; other fields keep
// their values). It is durable on the device when it returns, and queued
// for the server.
func (c *Client) Put(ctx context.Context, collection, id string, fields map[string]any) error {
	return c.Write(ctx, Op{Collection: collection, ID: id, Fields: fields})
}

// Delete deletes a record. It is durable on the device when it returns.
func (c *Client) Delete(ctx context.Context, collection, id string) error {
	return c.Write(ctx, Op{Collection: collection, ID: id, Delete: true})
}

// Write applies ops atomically to the replica and queues them for the server
// in one transaction, synced to disk before it returns. An invalid op fails
// the whole call with an error wrapping syncproto.ErrBadMessage or
// syncproto.ErrTooLarge, and nothing is written.
func (c *Client) Write(ctx context.Context, ops ...Op) error {
	muts := make([]syncproto.Mutation, len(ops))
	for i, op := range ops {
		m := syncproto.Mutation{ID: uuid.Must(uuid.NewV7()).String(), Collection: op.Collection, Record: op.ID, Op: syncproto.OpPut}
		if op.Delete {
			m.Op = syncproto.OpDelete
		} else {
			m.Data = make(map[string]json.RawMessage, len(op.Fields))
			for f, v := range op.Fields {
				b, err := json.Marshal(v)
				if err != nil {
					return fmt.Errorf("write %s/%s: field %s: %w: %w", op.Collection, op.ID,
						f, ErrInvalidWrite, &syncproto.Error{Code: syncproto.CodeBadMessage, Err: err})
				}
				m.Data[f] = b
			}
		}
		muts[i] = m
	}
	err := c.inTx(ctx, sqlitedb.SyncFull, func(tx *sqlitedb.Tx) error {
		for i := range muts {
			if err := c.writeLocal(ctx, tx, &muts[i]); err != nil {
				return err
			}
		}
		return setMeta(ctx, tx, "clock", c.clock.Last().String())
	})
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
	keys := make([]RecordKey, len(muts))
	for i, m := range muts {
		keys[i] = RecordKey{Collection: m.Collection, ID: m.Record}
	}
	c.events.push(Event{Kind: EventChanged, Records: keys, Local: true})
	return nil
}

// inTx runs fn in a transaction on the writer connection with the given
// durability. Local writes use FULL (durable when the call returns); data
// from the server uses NORMAL, since a page lost to a power cut is pulled
// again from the cursor committed with it.
func (c *Client) inTx(ctx context.Context, mode sqlitedb.Synchronous, fn func(*sqlitedb.Tx) error) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	tx, err := c.db.BeginWrite(ctx, mode)
	if err != nil {
		return err
	}
	defer tx.Close()
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// Get returns the visible fields of a record. It returns an error wrapping
// ErrNotFound if the replica does not hold it or it is deleted.
func (c *Client) Get(ctx context.Context, collection, id string) (map[string]json.RawMessage, error) {
	var data []byte
	err := c.db.Reader.QueryRowContext(ctx, `SELECT data FROM records WHERE collection = ? AND id = ?`,
		collection, id).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get %s/%s: %w", collection, id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s/%s: %w", collection, id, err)
	}
	fields, err := syncproto.DecodeData(data)
	if err != nil {
		return nil, fmt.Errorf("get %s/%s: %w", collection, id, err)
	}
	return fields, nil
}

// List calls fn for each visible record of a collection in id order, with
// its fields as one JSON object, until fn returns an error.
func (c *Client) List(ctx context.Context, collection string, fn func(id string, data json.RawMessage) error) error {
	rows, err := c.db.Reader.QueryContext(ctx, `SELECT id, data FROM records WHERE collection = ? ORDER BY id`, collection)
	if err != nil {
		return fmt.Errorf("list %s: %w", collection, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var data []byte
		if err := rows.Scan(&id, &data); err != nil {
			return fmt.Errorf("list %s: %w", collection, err)
		}
		if err := fn(id, data); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Query runs read-only SQL over the replica. The view records(collection,
// id, data) holds every visible record, data as a JSON object, so
// "SELECT id, data->>'name' FROM records WHERE collection = 'persons'" works.
// The connection is read-only: writes go through Write.
func (c *Client) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	rows, err := c.db.Reader.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	return rows, nil
}

// meta reads keys of the meta table through db (the reader, unless the
// caller needs to see its own uncommitted writes).
func meta(ctx context.Context, db *sql.DB, keys ...string) (map[string]string, error) {
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		var v string
		err := db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, k).Scan(&v)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("read %s: %w", k, err)
		}
		out[k] = v
	}
	return out, nil
}

func setMeta(ctx context.Context, tx *sqlitedb.Tx, key, value string) error {
	_, err := tx.Exec(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	if err != nil {
		return fmt.Errorf("set %s: %w", key, err)
	}
	return nil
}
