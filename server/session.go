package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nicksnyder/go-i18n/v2/i18n"

	"github.com/ponte-project/ponte/locales"
	"github.com/ponte-project/ponte/server/store"
	"github.com/ponte-project/ponte/syncproto"
)

// outbound is one frame waiting in a session's send queue. A frame with
// durable set goes out only once it returns nil: the results of a batch
// wait for its commit to reach the disk, and the frames behind them wait
// too, so the order holds.
type outbound struct {
	data     []byte
	prepared *websocket.PreparedMessage
	durable  func(context.Context) error
}

// session is one websocket connection. readPump decodes frames; serve
// handles the requests in order; writePump is the only goroutine that
// writes to the connection. live and cursor are guarded by the hub's
// mutex.
type session struct {
	srv   *Server
	conn  *websocket.Conn
	log   *slog.Logger
	actor store.Actor
	loc   *i18n.Localizer

	queue chan outbound
	quit  chan struct{} // closed by kill
	once  sync.Once
	why   *syncproto.ErrorMsg // set before quit is closed

	live   bool
	cursor int64

	// zstd is set once the welcome names CompressionZstd: from then on
	// frames from syncproto.CompressMin bytes up go compressed, and binary
	// frames are read as compressed.
	zstd bool

	// unsynced are the last two groups applied, whose commits may not be
	// on disk yet, the older first. A group is applied only once the
	// older one is: the serve loop stays one group ahead of the disk.
	unsynced [2]*store.Applied
}

// send encodes m and queues it; failures are logged (they are bugs).
func (s *session) send(m *syncproto.Message) {
	b, err := syncproto.Encode(m)
	if err != nil {
		s.log.Error("encode message", "type", m.Type, "err", err)
		return
	}
	s.enqueue(outbound{data: b})
}

// enqueue queues a frame without blocking; a full queue disconnects the
// session as a slow consumer.
func (s *session) enqueue(o outbound) {
	select {
	case <-s.quit:
	case s.queue <- o:
	default:
		s.log.Warn("slow consumer: disconnecting", "queued", len(s.queue))
		s.kill(syncproto.CodeSlowConsumer)
	}
}

// kill ends the session: the writer sends an error naming code and a close
// frame, then closes the connection, which ends the reader. An empty code
// closes quietly (the peer is already gone).
func (s *session) kill(code syncproto.Code) {
	s.once.Do(func() {
		if code != "" {
			s.why = s.errorMsg(code)
		}
		close(s.quit)
	})
}

func (s *session) errorMsg(code syncproto.Code) *syncproto.ErrorMsg {
	return &syncproto.ErrorMsg{Code: code, Message: locales.Text(s.loc, code.MessageID(), nil), Fatal: true}
}

// serve runs the session after the handshake until the connection ends.
func (s *session) serve(ctx context.Context) {
	s.srv.hub.add(s)
	defer s.srv.hub.remove(s)
	if s.srv.isClosing() { // Shutdown ran while this session shook hands
		s.kill(syncproto.CodeShuttingDown)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.writePump()
	}()
	defer func() {
		s.kill("") // no-op if already killed
		<-done
	}()
	s.conn.SetPongHandler(func(string) error {
		return s.conn.SetReadDeadline(time.Now().Add(s.srv.opts.PongWait))
	})
	// The reader decodes the next requests while the current one is
	// handled; consecutive pushes waiting in the queue are applied in one
	// transaction (see handlePushes).
	reqs := make(chan *syncproto.Message, 16)
	go s.readPump(reqs)
	for m := range reqs {
		typ := m.Type
		var err error
		if m.Type == syncproto.TypePush {
			m, err = s.handlePushes(ctx, m, reqs)
		}
		if err == nil && m != nil {
			typ = m.Type
			err = s.handle(ctx, m)
		}
		if err != nil {
			s.log.Error("request failed", "type", typ, "err", err)
			s.kill(syncproto.ErrorCode(err))
			for range reqs { // let the reader finish
			}
			return
		}
	}
}

// readPump reads and decodes frames into reqs until the connection ends or
// a frame is bad; then it closes reqs.
func (s *session) readPump(reqs chan<- *syncproto.Message) {
	defer close(reqs)
	for {
		if err := s.conn.SetReadDeadline(time.Now().Add(s.srv.opts.PongWait)); err != nil {
			return
		}
		typ, frame, err := s.conn.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				s.kill(syncproto.CodeTooLarge)
			}
			s.log.Debug("session ended", "err", err)
			return
		}
		m, err := s.decode(typ, frame)
		if err != nil {
			s.log.Info("bad message", "err", err)
			s.kill(syncproto.ErrorCode(err))
			return
		}
		if !s.srv.requests.Allow(s.actor.Device, s.srv.now()) {
			s.log.Warn("too many requests: disconnecting")
			s.kill(syncproto.CodeRateLimited)
			return
		}
		if m.Type == syncproto.TypePush {
			// Validate here, beside the handler: the store's own Validate
			// then finds the work done. Failures are the store's to report.
			for i := range m.Push.Mutations {
				_ = m.Push.Mutations[i].Validate()
			}
		}
		select {
		case reqs <- m:
		case <-s.quit:
			return
		}
	}
}

// decode decodes a frame of websocket message type typ: text is JSON;
// binary is compressed JSON, once the session compresses.
func (s *session) decode(typ int, frame []byte) (*syncproto.Message, error) {
	frame, err := syncproto.Unpack(frame, typ == websocket.BinaryMessage, s.zstd)
	if err != nil {
		return nil, err
	}
	return syncproto.Decode(frame)
}

// maxGroup bounds the mutations of consecutive pushes applied together.
const maxGroup = 8 * syncproto.MaxBatch

// handlePushes applies push m together with the pushes queued right behind
// it, in one transaction: one sync to disk for all of them. Each push still
// gets its own result, in order. It returns the first queued message that
// is not a push, for the caller to handle next.
func (s *session) handlePushes(ctx context.Context, m *syncproto.Message, reqs <-chan *syncproto.Message) (*syncproto.Message, error) {
	group := []*syncproto.Message{m}
	count := len(m.Push.Mutations)
	var next *syncproto.Message
gather:
	for count < maxGroup {
		select {
		case n, ok := <-reqs:
			if !ok {
				break gather
			}
			if n.Type != syncproto.TypePush {
				next = n
				break gather
			}
			group = append(group, n)
			count += len(n.Push.Mutations)
		default:
			break gather
		}
	}
	muts := m.Push.Mutations
	if len(group) > 1 { // one slice of the group's size, not one regrown per push
		muts = make([]syncproto.Mutation, 0, count)
		for _, p := range group {
			muts = append(muts, p.Push.Mutations...)
		}
	}
	// Not waiting for the commit to reach the disk: the next group is
	// applied meanwhile, and the writer sends these results once it has.
	// But not two groups ahead of the disk: a client pushing faster than
	// it syncs waits here, not in a queue of results.
	if older := s.unsynced[0]; older != nil {
		if err := older.Wait(ctx); err != nil {
			return nil, err
		}
	}
	applied, err := s.srv.store.ApplyNoWait(ctx, s.actor, muts)
	if err != nil {
		return nil, err
	}
	s.unsynced = [2]*store.Applied{s.unsynced[1], applied}
	results := applied.Results
	for i := range results {
		r := &results[i]
		if r.Status == syncproto.StatusRejected {
			s.log.Info("mutation rejected", "mutation", r.ID, "code", r.Code, "detail", r.Message)
			for i := range r.Fields {
				r.Fields[i].Message = locales.FieldText(s.loc, r.Fields[i])
			}
			r.Message = locales.Explain(s.loc, r.Code, r.Fields)
		}
	}
	for _, p := range group {
		n := len(p.Push.Mutations)
		b, err := syncproto.Encode(resultMessage(p.Re, results[:n:n]))
		if err != nil {
			return nil, fmt.Errorf("encode result: %w", err)
		}
		s.enqueue(outbound{data: b, durable: applied.Wait})
		results = results[n:]
	}
	return next, nil
}

func (s *session) handle(ctx context.Context, m *syncproto.Message) error {
	switch m.Type {
	case syncproto.TypePull:
		// Pages go out back to back: the writer compresses and sends one
		// while the next is read.
		cursors := m.Pull.Cursors
		for i := 0; i < max(m.Pull.Pages, 1); i++ {
			page, err := s.srv.store.Pull(ctx, s.actor.Scopes, cursors, m.Pull.Limit)
			if err != nil {
				return err
			}
			if !page.More {
				if s.srv.hub.finishPull(s, m.Re, page) {
					break // caught up and live
				}
			} else {
				s.send(&syncproto.Message{Type: syncproto.TypePage, Re: m.Re, Page: page})
			}
			cursors = page.Cursors
		}
	case syncproto.TypePing:
		s.send(&syncproto.Message{Type: syncproto.TypePong, Re: m.Re, Ping: &syncproto.Ping{Time: s.srv.now().UnixMilli()}})
	default:
		return syncproto.Errorf(syncproto.CodeBadMessage, "a client may not send %q", m.Type)
	}
	return nil
}

// writePump writes queued frames and keepalive pings until the session is
// killed; then it sends what is queued, the reason and a close frame.
func (s *session) writePump() {
	ticker := time.NewTicker(s.srv.opts.PingInterval)
	defer ticker.Stop()
	defer s.conn.Close()
	for {
		select {
		case o := <-s.queue:
			if err := s.write(o); err != nil {
				s.kill(syncproto.CodeInternal)
				return
			}
		case <-ticker.C:
			if err := s.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(s.srv.opts.WriteTimeout)); err != nil {
				s.kill(syncproto.CodeInternal)
				return
			}
		case <-s.quit:
			if s.why == nil {
				return
			}
			if s.why.Code != syncproto.CodeSlowConsumer {
				s.drain()
			}
			s.goodbye()
			return
		}
	}
}

func (s *session) drain() {
	deadline := time.Now().Add(s.srv.opts.WriteTimeout) // for all of it, not per frame
	for {
		select {
		case o := <-s.queue:
			if time.Now().After(deadline) || s.write(o) != nil {
				return
			}
		default:
			return
		}
	}
}

func (s *session) write(o outbound) error {
	if o.durable != nil {
		ctx, cancel := context.WithTimeout(context.Background(), s.srv.opts.WriteTimeout)
		err := o.durable(ctx)
		cancel()
		if err != nil {
			s.log.Error("a batch did not reach the disk: its results are not sent", "err", err)
			return err
		}
	}
	if err := s.conn.SetWriteDeadline(time.Now().Add(s.srv.opts.WriteTimeout)); err != nil {
		return err
	}
	if o.prepared != nil {
		return s.conn.WritePreparedMessage(o.prepared)
	}
	// A new buffer for each compressed frame: one kept per session would
	// hold its largest frame for as long as the device stays connected.
	b, compressed, err := syncproto.Pack(o.data, s.zstd)
	if err != nil {
		return err
	}
	if compressed {
		return s.conn.WriteMessage(websocket.BinaryMessage, b)
	}
	return s.conn.WriteMessage(websocket.TextMessage, b)
}

// goodbye tells the client why the session ends, then closes it.
func (s *session) goodbye() {
	b, err := syncproto.Encode(&syncproto.Message{Type: syncproto.TypeError, Error: s.why})
	if err == nil {
		_ = s.write(outbound{data: b})
	}
	deadline := time.Now().Add(s.srv.opts.WriteTimeout)
	_ = s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(closeCode(s.why.Code), string(s.why.Code)), deadline)
}

// closeCode maps an error code to a websocket close code.
func closeCode(c syncproto.Code) int {
	switch c {
	case syncproto.CodeShuttingDown:
		return websocket.CloseGoingAway
	case syncproto.CodeTooLarge:
		return websocket.CloseMessageTooBig
	case syncproto.CodeInternal:
		return websocket.CloseInternalServerErr
	case syncproto.CodeSlowConsumer:
		return 4008
	case syncproto.CodeRateLimited:
		return 4029
	case syncproto.CodeScopesChanged:
		return websocket.CloseServiceRestart
	}
	return websocket.ClosePolicyViolation
}

// resultMessage answers a push. Conflicts carry both values, which could
// make the frame too large for the device to read — and it would then
// retry the push forever. Past half a frame of values, conflicts are sent
// without them (the server keeps them whole for review).
func resultMessage(re uint64, results []syncproto.MutationResult) *syncproto.Message {
	budget := syncproto.MaxFrameBytes / 2
	for i := range results {
		for j := range results[i].Conflicts {
			c := &results[i].Conflicts[j]
			if budget -= len(c.Winner.Value) + len(c.Loser.Value); budget < 0 {
				c.Winner.Value, c.Loser.Value = nil, nil
			}
		}
	}
	return &syncproto.Message{Type: syncproto.TypeResult, Re: re, Result: &syncproto.Result{Results: results}}
}
