package client

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gorilla/websocket"

	"github.com/ponte-project/ponte/internal/sqlitedb"
	"github.com/ponte-project/ponte/syncproto"
)

// Version identifies this library in the hello.
const Version = "ponte-go/0.1"

const (
	pushBatch   = 1000
	maxInflight = 16
	pullPages   = syncproto.MaxPullPages // pages asked for per pull
	// maxPagesPerTx bounds how many pages already received are applied in
	// one transaction. On a fast link pages queue up while one is applied,
	// and a commit per page then costs more than applying the page: the
	// random keys of record ids dirty most index pages at every commit.
	maxPagesPerTx = 8
	readTimeout   = 90 * time.Second // the server pings well within this
	writeTimeout  = 10 * time.Second
	helloTimeout  = 15 * time.Second
	backoffBase   = 500 * time.Millisecond
	backoffMax    = 30 * time.Second
	pingInterval  = 30 * time.Second
	closeDeadline = time.Second
	// minClockCorrection is the smallest difference from the server's clock
	// that the client corrects.
	minClockCorrection = 2 * time.Second
)

// Sync runs one round with the server: it pushes every queued write, pulls
// until the replica has caught up, and disconnects. It returns nil only if
// all of that succeeded. Errors wrap a *syncproto.Error: ErrUnreachable when
// the server cannot be reached, or the code the server gave. A device the
// server says is revoked has its replica wiped (the error wraps ErrWiped).
func (c *Client) Sync(ctx context.Context) error {
	c.roundMu.Lock()
	defer c.roundMu.Unlock()
	err := c.session(ctx, false)
	err = c.wipeIfRevoked(ctx, err)
	if ctx.Err() == nil { // a round the caller cancelled says nothing about syncing
		c.recordRound(ctx, err)
	}
	c.setState(StateOffline)
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

// Run keeps the replica in sync until ctx is done: it connects, catches up,
// then stays live, pushing local writes as they happen and receiving others'
// changes by push. After a failure it reconnects with jittered exponential
// backoff. It returns nil when ctx is done, or an error wrapping
// ErrUnauthorized, ErrRevoked (with ErrWiped: the replica is then erased)
// or ErrProtocolUnsupported, which retrying cannot fix.
func (c *Client) Run(ctx context.Context) error {
	c.roundMu.Lock()
	defer c.roundMu.Unlock()
	defer c.setState(StateOffline)
	for attempt := 0; ; attempt++ {
		start := time.Now()
		err := c.session(ctx, true)
		err = c.wipeIfRevoked(ctx, err)
		if ctx.Err() != nil {
			return nil
		}
		c.recordRound(ctx, err)
		c.setState(StateOffline)
		switch syncproto.ErrorCode(err) {
		case syncproto.CodeUnauthorized, syncproto.CodeRevoked, syncproto.CodeProtocolUnsupported:
			return fmt.Errorf("run: %w", err)
		}
		if time.Since(start) > backoffMax {
			attempt = 0 // the session was healthy for a while: start backing off afresh
		}
		wait := backoff(attempt)
		c.log.Info("sync session ended; reconnecting", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// backoff returns a random wait in [0, min(backoffMax, backoffBase·2^attempt)):
// full jitter, so devices that lost the server together do not return together.
func backoff(attempt int) time.Duration {
	d := backoffMax
	if attempt < 16 {
		d = min(backoffMax, backoffBase<<attempt)
	}
	return time.Duration(rand.Int64N(int64(d)) + 1)
}

func unreachable(op string, err error) error {
	return &syncproto.Error{Code: syncproto.CodeUnreachable, Message: op, Err: err}
}

// session runs one connection. With live false it returns nil once queued
// writes are pushed and the replica has caught up; with live true it stays
// until the connection fails or ctx is done.
func (c *Client) session(ctx context.Context, live bool) error {
	if c.opts.Server == "" {
		return syncproto.Errorf(syncproto.CodeUnreachable, "no server configured")
	}
	c.setState(StateConnecting)
	ws, welcome, err := c.dial(ctx, "")
	if err != nil {
		return err
	}
	defer ws.Close()
	stop := context.AfterFunc(ctx, func() { ws.Close() })
	defer stop()

	msgs := make(chan *syncproto.Message, 16)
	readErr := make(chan error, 1)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			m, err := readMessage(ws, readTimeout)
			if err != nil {
				readErr <- err
				return
			}
			select {
			case msgs <- m:
			case <-done:
				return
			}
		}
	}()

	s := &round{c: c, ws: ws, live: live, batch: min(pushBatch, max(welcome.MaxBatch, 1)), msgs: msgs}
	defer s.buildDeferredIndexes(ctx)
	c.setState(StateSyncing)
	if err := s.push(ctx); err != nil {
		return err
	}
	if len(s.inflight) == 0 {
		if err := s.pull(ctx, nil); err != nil {
			return err
		}
	}
	ping := time.NewTicker(pingInterval)
	defer ping.Stop()
	for {
		if m := s.held; m != nil {
			s.held = nil
			if err := s.handle(ctx, m); err != nil {
				return err
			}
			continue
		}
		if !live && len(s.inflight) == 0 && !s.pulling && s.caughtUp {
			_ = ws.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(closeDeadline))
			return nil
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case err := <-readErr:
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			// Handle what arrived before the connection ended: the last
			// results, and the server's reason, which beats "unreachable".
			for {
				select {
				case m := <-msgs:
					for ; m != nil; m, s.held = s.held, nil {
						if herr := s.handle(ctx, m); herr != nil {
							return herr
						}
					}
				default:
					return err
				}
			}
		case <-c.wake:
			if err := s.push(ctx); err != nil {
				return err
			}
		case <-ping.C:
			if err := s.send(&syncproto.Message{Type: syncproto.TypePing, Re: s.next(),
				Ping: &syncproto.Ping{Time: time.Now().UnixMilli()}}); err != nil {
				return err
			}
		case m := <-msgs:
			if err := s.handle(ctx, m); err != nil {
				return err
			}
		}
	}
}

// dial connects and shakes hands, and corrects the clock by the server's.
// With an enrolment code it presents the code instead of a token and keeps
// the token the welcome brings.
func (c *Client) dial(ctx context.Context, enrol string) (*conn, *syncproto.Welcome, error) {
	d := c.opts.Dialer
	if d == nil {
		d = &websocket.Dialer{HandshakeTimeout: helloTimeout, EnableCompression: true,
			ReadBufferSize: 64 << 10, WriteBufferSize: 64 << 10}
	}
	raw, resp, err := d.DialContext(ctx, c.opts.Server, nil)
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusServiceUnavailable {
			return nil, nil, &syncproto.Error{Code: syncproto.CodeShuttingDown, Message: "dial", Err: err}
		}
		return nil, nil, unreachable("dial "+c.opts.Server, err)
	}
	ws := &conn{Conn: raw}
	ws.SetReadLimit(syncproto.MaxFrameBytes)
	cursors, err := c.cursors(ctx)
	if err != nil {
		ws.Close()
		return nil, nil, err
	}
	token := ""
	if enrol == "" {
		if token, err = c.token(ctx); err != nil {
			ws.Close()
			return nil, nil, err
		}
	}
	var pending, rejected int64
	if err := c.db.Reader.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM outbox WHERE acked_seq IS NULL),
		(SELECT count(*) FROM rejected)`).Scan(&pending, &rejected); err != nil {
		ws.Close()
		return nil, nil, fmt.Errorf("handshake: %w", err)
	}
	hello := &syncproto.Message{Type: syncproto.TypeHello, Hello: &syncproto.Hello{
		Protocol: syncproto.ProtocolVersion, Device: c.node, Token: token, Enrol: enrol, Lang: c.opts.Lang,
		Cursors: cursors, Client: Version, Pending: pending, Rejected: rejected}}
	if d.EnableCompression {
		hello.Hello.Compression = []string{syncproto.CompressionZstd}
	}
	if err := writeMessage(ws, hello); err != nil {
		ws.Close()
		return nil, nil, err
	}
	m, err := readMessage(ws, helloTimeout)
	if err != nil {
		ws.Close()
		return nil, nil, fmt.Errorf("handshake: %w", err)
	}
	switch {
	case m.Type == syncproto.TypeError:
		ws.Close()
		return nil, nil, fmt.Errorf("handshake: %w", remoteError(m.Error))
	case m.Type != syncproto.TypeWelcome:
		ws.Close()
		return nil, nil, syncproto.Errorf(syncproto.CodeBadMessage, "handshake: got %q, want welcome", m.Type)
	case m.Welcome.Protocol != syncproto.ProtocolVersion:
		ws.Close()
		return nil, nil, syncproto.Errorf(syncproto.CodeProtocolUnsupported, "server speaks protocol %d", m.Welcome.Protocol)
	case enrol != "" && m.Welcome.Token == "":
		ws.Close()
		return nil, nil, syncproto.Errorf(syncproto.CodeBadMessage, "handshake: enrolled, but the welcome has no token")
	case m.Welcome.Compression != "" && (m.Welcome.Compression != syncproto.CompressionZstd || !d.EnableCompression):
		ws.Close()
		return nil, nil, syncproto.Errorf(syncproto.CodeBadMessage, "handshake: the server chose compression %.20q, which was not offered", m.Welcome.Compression)
	}
	if m.Welcome.Compression == syncproto.CompressionZstd {
		// Frames are compressed already: permessage-deflate, if the
		// upgrade agreed it, would only spend time on them.
		ws.zstd = true
		ws.EnableWriteCompression(false)
	}
	// Correct the clock only when it is clearly wrong: a few milliseconds
	// are network delay, and correcting by them would only add jitter.
	offset := time.Duration(m.Welcome.ServerTime-c.opts.Now().UnixMilli()) * time.Millisecond
	if offset.Abs() < minClockCorrection {
		offset = 0
	}
	restamp := c.clock.SetOffset(offset)
	if err := c.inTx(ctx, sqlitedb.SyncNormal, func(tx *sqlitedb.Tx) error {
		if err := setMeta(ctx, tx, "clock_offset", strconv.FormatInt(offset.Milliseconds(), 10)); err != nil {
			return err
		}
		if err := setMeta(ctx, tx, "user", m.Welcome.User); err != nil {
			return err
		}
		if m.Welcome.Token != "" {
			// Kept with the replica, so later sessions need no token in
			// Options; it is as sensitive as the records beside it.
			if err := setMeta(ctx, tx, "token", m.Welcome.Token); err != nil {
				return err
			}
		}
		if err := c.checkServer(ctx, tx, m.Welcome); err != nil {
			return err
		}
		if err := c.dropLostScopes(ctx, tx, m.Welcome.Scopes); err != nil {
			return err
		}
		if restamp {
			return c.restampPending(ctx, tx)
		}
		return nil
	}); err != nil {
		ws.Close()
		return nil, nil, err
	}
	return ws, m.Welcome, nil
}

// checkServer compares the server with the one the replica last synced
// with. Another server, or the same one holding less than the replica's
// cursors say it had (restored from a backup), may lack what the cursors and
// acknowledgements promise: the replica then pulls everything again and
// re-sends every write not yet confirmed. Records confirmed only by the lost
// history stay visible on this device but are not re-sent.
func (c *Client) checkServer(ctx context.Context, tx *sqlitedb.Tx, w *syncproto.Welcome) error {
	var known string
	err := tx.QueryRow(ctx, `SELECT value FROM meta WHERE key = 'server'`).Scan(&known)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("check server: %w", err)
	}
	var ahead int64
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM cursors`).Scan(&ahead); err != nil {
		return fmt.Errorf("check server: %w", err)
	}
	if known == w.Server && ahead <= w.Seq {
		return nil
	}
	if known != "" {
		c.log.Warn("the server has lost or never had what this replica holds; pulling everything again",
			"was", known, "now", w.Server, "cursor", ahead, "server_seq", w.Seq)
		for _, q := range []string{`DELETE FROM cursors`, `UPDATE replica_records SET seq = 0`,
			`UPDATE outbox SET acked_seq = NULL`} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("check server: %w", err)
			}
		}
	}
	return setMeta(ctx, tx, "server", w.Server)
}

// restampPending gives fresh stamps, in order, to queued writes the server
// has not applied that were stamped by a clock found to run far ahead.
func (c *Client) restampPending(ctx context.Context, tx *sqlitedb.Tx) error {
	limit := c.clock.Physical() + syncproto.MaxFuture.Milliseconds()
	pending, err := c.pendingTx(ctx, tx)
	if err != nil {
		return err
	}
	// From the first write stamped too far ahead on, every queued write is
	// re-stamped, so they keep their order; each new stamp also orders after
	// the versions its writer saw.
	var touched keySet
	restamp := false
	for _, m := range pending {
		if m.Stamp.Wall > limit {
			restamp = true
		}
		if !restamp {
			c.clock.Observe(m.Stamp)
			continue
		}
		m.Stamp = c.clock.NowAfter(slices.Collect(maps.Values(m.Base))...)
		body, err := json.Marshal(m)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE outbox_bodies SET body = ? WHERE seq = (SELECT seq FROM outbox WHERE id = ?)`,
			body, m.ID); err != nil {
			return fmt.Errorf("restamp %s: %w", m.ID, err)
		}
		touched.add(RecordKey{Collection: m.Collection, ID: m.Record})
	}
	for _, k := range touched.keys {
		if err := recompute(ctx, tx, k.Collection, k.ID, nil); err != nil {
			return err
		}
	}
	if len(touched.keys) > 0 {
		c.log.Info("re-stamped writes made while the clock ran ahead", "records", len(touched.keys))
	}
	return setMeta(ctx, tx, "clock", c.clock.Last().String())
}

// remoteError is an error the server reported. Its Message is the code's
// text in the session's language; callers localise the code themselves.
func remoteError(e *syncproto.ErrorMsg) error {
	return syncproto.Errorf(e.Code, "refused by the server")
}

// conn is one session's websocket. Once the welcome names zstd, frames from
// syncproto.CompressMin bytes up go compressed, as binary frames, and
// binary frames from the server are read as compressed.
type conn struct {
	*websocket.Conn
	zstd bool
}

func readMessage(ws *conn, timeout time.Duration) (*syncproto.Message, error) {
	if err := ws.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, unreachable("read", err)
	}
	typ, frame, err := ws.ReadMessage()
	if err != nil {
		if errors.Is(err, websocket.ErrReadLimit) {
			return nil, syncproto.Errorf(syncproto.CodeTooLarge, "server frame over %d bytes", syncproto.MaxFrameBytes)
		}
		return nil, unreachable("read", err)
	}
	if frame, err = syncproto.Unpack(frame, typ == websocket.BinaryMessage, ws.zstd); err != nil {
		return nil, fmt.Errorf("from server: %w", err)
	}
	m, err := syncproto.Decode(frame)
	if err != nil {
		return nil, fmt.Errorf("from server: %w", err)
	}
	return m, nil
}

func writeMessage(ws *conn, m *syncproto.Message) error {
	b, err := syncproto.Encode(m)
	if err != nil {
		return err
	}
	return writeFrame(ws, b, string(m.Type))
}

func writeFrame(ws *conn, b []byte, what string) error {
	if err := ws.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return unreachable("write", err)
	}
	b, compressed, err := syncproto.Pack(b, ws.zstd)
	if err != nil {
		return fmt.Errorf("write %s: %w", what, err)
	}
	typ := websocket.TextMessage
	if compressed {
		typ = websocket.BinaryMessage
	}
	if err := ws.WriteMessage(typ, b); err != nil {
		return unreachable("write "+what, err)
	}
	return nil
}

// round is the state of one session's conversation: up to maxInflight
// pushes and one pull in flight.
type round struct {
	c         *Client
	ws        *conn
	live      bool
	batch     int // mutations per push
	re        uint64
	inflight  []pushed // pushes awaiting their results, oldest first
	sent      int64    // outbox seq of the last write pushed
	frame     []byte   // the last push frame: WriteMessage is done with it when it returns
	pulling   bool
	pullRe    uint64
	pagesLeft int // pages still to come for the pull in flight
	caughtUp  bool
	applied   bool                      // a page has been applied in this session
	deferred  bool                      // indexes deferred until the catch-up ends (bulk.go)
	msgs      <-chan *syncproto.Message // messages read, in order
	held      *syncproto.Message        // read from msgs ahead of its turn
}

func (s *round) next() uint64 { s.re++; return s.re }

func (s *round) send(m *syncproto.Message) error { return writeMessage(s.ws, m) }

// pushed is a push awaiting its result.
type pushed struct {
	re   uint64
	muts []queued
}

// push sends batches of queued writes until maxInflight pushes await their
// results: the server answers them in order, and the client need not wait
// for one answer before sending the next batch.
func (s *round) push(ctx context.Context) error {
	for len(s.inflight) < maxInflight {
		batch, last, err := s.c.pendingAfter(ctx, s.sent, s.batch)
		if err != nil || len(batch) == 0 {
			return err
		}
		p := pushed{re: s.next(), muts: batch}
		s.inflight, s.sent = append(s.inflight, p), last
		s.frame = encodePush(s.frame[:0], p)
		if err := writeFrame(s.ws, s.frame, "push"); err != nil {
			return err
		}
	}
	return nil
}

// encodePush appends to b a push frame around the queued bodies as stored:
// they are encoding/json's output of valid mutations, so they need no
// re-encoding.
func encodePush(b []byte, p pushed) []byte {
	size := 64
	for _, q := range p.muts {
		size += len(q.body) + 1
	}
	b = slices.Grow(b, size)
	b = append(b, `{"type":"push","re":`...)
	b = strconv.AppendUint(b, p.re, 10)
	b = append(b, `,"push":{"mutations":[`...)
	for i, q := range p.muts {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, q.body...)
	}
	return append(b, ']', '}', '}')
}

// pull asks for the next page; cursors nil means the replica's own.
func (s *round) pull(ctx context.Context, cursors map[string]int64) error {
	if cursors == nil {
		var err error
		if cursors, err = s.c.cursors(ctx); err != nil {
			return err
		}
	}
	s.pulling, s.pullRe, s.pagesLeft = true, s.next(), pullPages
	return s.send(&syncproto.Message{Type: syncproto.TypePull, Re: s.pullRe,
		Pull: &syncproto.Pull{Cursors: cursors, Limit: s.c.pageSize(), Pages: pullPages}})
}

func (s *round) handle(ctx context.Context, m *syncproto.Message) error {
	c := s.c
	switch m.Type {
	case syncproto.TypeResult:
		if len(s.inflight) == 0 || m.Re != s.inflight[0].re {
			return syncproto.Errorf(syncproto.CodeBadMessage, "unexpected result re=%d", m.Re)
		}
		sent := s.inflight[0].muts
		s.inflight = s.inflight[1:]
		var keys []RecordKey
		err := c.inTx(ctx, sqlitedb.SyncNormal, func(tx *sqlitedb.Tx) error {
			var err error
			keys, err = c.applyResults(ctx, tx, sent, m.Result.Results)
			return err
		})
		if err != nil {
			return fmt.Errorf("apply push result: %w", err)
		}
		c.events.push(Event{Kind: EventPushed, Records: keys})
		if err := s.push(ctx); err != nil {
			return err
		}
		// Before being live, catch up after pushing so the replica holds
		// the server's copy of what it just pushed; once live, that copy
		// arrives by push.
		if len(s.inflight) == 0 && !s.pulling && !(s.live && s.caughtUp) {
			s.caughtUp = false
			return s.pull(ctx, nil)
		}
	case syncproto.TypePage:
		if err := s.received(ctx, m); err != nil {
			return err
		}
		pages := []*syncproto.Page{m.Page}
	gather: // the pages that have arrived meanwhile go in the same transaction
		for m.Page.More && len(pages) < maxPagesPerTx {
			select {
			case n := <-s.msgs:
				if n.Type != syncproto.TypePage {
					s.held = n
					break gather
				}
				if err := s.received(ctx, n); err != nil {
					return err
				}
				m = n
				pages = append(pages, n.Page)
			default:
				break gather
			}
		}
		if err := s.apply(ctx, pages, !m.Page.More); err != nil {
			return err
		}
		if !m.Page.More {
			s.caughtUp = true
			if s.live {
				c.setState(StateLive)
			}
		}
	case syncproto.TypeChanges:
		if err := s.apply(ctx, []*syncproto.Page{m.Page}, true); err != nil {
			return err
		}
	case syncproto.TypeError:
		return remoteError(m.Error)
	case syncproto.TypePong:
	default:
		return syncproto.Errorf(syncproto.CodeBadMessage, "a server may not send %q", m.Type)
	}
	return nil
}

// received accounts for a page of the pull in flight, and asks for the
// next pages when this is the last one asked for.
func (s *round) received(ctx context.Context, m *syncproto.Message) error {
	if !s.pulling || m.Re != s.pullRe {
		return syncproto.Errorf(syncproto.CodeBadMessage, "unexpected page re=%d", m.Re)
	}
	s.pagesLeft--
	switch {
	case !m.Page.More:
		s.pulling = false
	case s.pagesLeft == 0: // ask for the next pages while this one is applied
		return s.pull(ctx, m.Page.Cursors)
	}
	return nil
}

// apply applies consecutive pages in one transaction with their cursors;
// current marks the replica as synced as of now.
func (s *round) apply(ctx context.Context, pages []*syncproto.Page, current bool) error {
	c := s.c
	var keys []RecordKey
	deferred := s.deferred
	err := c.inTx(ctx, sqlitedb.SyncNormal, func(tx *sqlitedb.Tx) error {
		var err error
		if !s.applied && !current { // the start of a catch-up of several pages
			if deferred, err = deferIndexes(ctx, tx, pages); err != nil {
				return err
			}
		}
		if keys, err = c.applyPages(ctx, tx, pages...); err != nil {
			return err
		}
		if !current {
			return nil
		}
		if deferred {
			if err := buildDeferredIndexes(ctx, tx); err != nil {
				return err
			}
			deferred = false
		}
		return setMeta(ctx, tx, "last_sync", c.opts.Now().UTC().Format(time.RFC3339Nano))
	})
	if err != nil {
		return fmt.Errorf("apply page: %w", err)
	}
	s.applied, s.deferred = true, deferred
	if len(keys) > 0 {
		c.events.push(Event{Kind: EventChanged, Records: keys})
	}
	return nil
}

// buildDeferredIndexes builds the indexes of a catch-up the session did not
// finish. Failing, it logs: the next Open builds them.
func (s *round) buildDeferredIndexes(ctx context.Context) {
	if !s.deferred {
		return
	}
	ctx = context.WithoutCancel(ctx)
	if err := s.c.inTx(ctx, sqlitedb.SyncNormal, func(tx *sqlitedb.Tx) error {
		return buildDeferredIndexes(ctx, tx)
	}); err != nil {
		s.c.log.Error("build the indexes deferred for a catch-up", "err", err)
		return
	}
	s.deferred = false
}

func (c *Client) pageSize() int {
	if n := c.opts.PageSize; n > 0 && n < syncproto.MaxPage {
		return n
	}
	return syncproto.MaxPage
}
