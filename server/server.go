// Package server is Ponte's central server: the websocket sync endpoint in
// front of the store, and the hub that pushes committed changes to live
// devices.
//
// Concurrency: each connection has three goroutines: a reader that decodes
// frames, a handler that serves the requests in order (applying consecutive
// pushes together), and a writer, which alone writes to the socket from a
// bounded queue. The store serialises writes; the hub's
// broadcast runs in commit order and never blocks on a connection.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/ponte-project/ponte/locales"
	"github.com/ponte-project/ponte/server/ratelimit"
	"github.com/ponte-project/ponte/server/scope"
	"github.com/ponte-project/ponte/server/store"
	"github.com/ponte-project/ponte/syncproto"
)

// Options tune the server's connections. Zero values take the defaults.
type Options struct {
	Logger       *slog.Logger
	Now          func() time.Time
	WriteTimeout time.Duration // per frame; default 10s
	PongWait     time.Duration // silence after which a peer is dead; default 60s
	PingInterval time.Duration // default PongWait*9/10
	HelloTimeout time.Duration // default 10s
	SendQueue    int           // frames queued per connection; default 256
	// RevocationCheck is how often connected devices are checked for
	// revocation (an admin revokes from another process); default 2s.
	RevocationCheck time.Duration
	// RequestRate and RequestBurst bound each device's requests (pushes,
	// pulls, pings) per second; over them the device is disconnected with
	// CodeRateLimited and comes back after its backoff. Defaults 50 and 200.
	RequestRate, RequestBurst float64
	// RefusalRate and RefusalBurst bound the refused handshakes (wrong
	// tokens, wrong enrolment codes) per remote address per second; over
	// them the address is refused before its credentials are even looked
	// at. Defaults 0.2 (one every five seconds) and 20.
	RefusalRate, RefusalBurst float64
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.PongWait <= 0 {
		o.PongWait = 60 * time.Second
	}
	if o.PingInterval <= 0 {
		o.PingInterval = o.PongWait * 9 / 10
	}
	if o.HelloTimeout <= 0 {
		o.HelloTimeout = 10 * time.Second
	}
	if o.SendQueue <= 0 {
		o.SendQueue = 256
	}
	if o.RevocationCheck <= 0 {
		o.RevocationCheck = 2 * time.Second
	}
	if o.RequestRate <= 0 {
		o.RequestRate = 50
	}
	if o.RequestBurst <= 0 {
		o.RequestBurst = 200
	}
	if o.RefusalRate <= 0 {
		o.RefusalRate = 0.2
	}
	if o.RefusalBurst <= 0 {
		o.RefusalBurst = 20
	}
}

// Server serves the sync endpoint. Create it with New.
type Server struct {
	store    *store.Store
	hub      *Hub
	opts     Options
	log      *slog.Logger
	upgrader websocket.Upgrader

	requests *ratelimit.Limiter // per device
	refusals *ratelimit.Limiter // per remote address

	mu       sync.Mutex
	closing  bool
	sessions sync.WaitGroup
}

// New returns a server over st whose hub is hub (the one st's OnCommit
// broadcasts to).
func New(st *store.Store, hub *Hub, opts Options) *Server {
	opts.defaults()
	return &Server{
		store: st, hub: hub, opts: opts, log: opts.Logger,
		requests: ratelimit.New(opts.RequestRate, opts.RequestBurst),
		refusals: ratelimit.New(opts.RefusalRate, opts.RefusalBurst),
		upgrader: websocket.Upgrader{
			ReadBufferSize:    64 << 10,
			WriteBufferSize:   64 << 10,
			EnableCompression: true,
		},
	}
}

func (s *Server) now() time.Time { return s.opts.Now() }

// Handler returns the HTTP handler: the websocket endpoint at /sync, a
// health check at /healthz, and pages for everything else.
func (s *Server) Handler(pages http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /sync", s.serveSync)
	mux.Handle("/", pages)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if s.store.Err() != nil { // no write can be acknowledged any more (logged by the sessions it failed)
			loc := locales.Localizer(r.Header.Get("Accept-Language"))
			http.Error(w, locales.Text(loc, syncproto.CodeInternal.MessageID(), nil), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	return mux
}

func (s *Server) serveSync(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		loc := locales.Localizer(r.Header.Get("Accept-Language"))
		http.Error(w, locales.Text(loc, syncproto.CodeShuttingDown.MessageID(), nil), http.StatusServiceUnavailable)
		return
	}
	s.sessions.Add(1)
	s.mu.Unlock()
	defer s.sessions.Done()

	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered the request
	}
	conn.SetReadLimit(syncproto.MaxFrameBytes)
	sess, err := s.handshake(r.Context(), conn, ratelimit.ClientKey(r))
	if err != nil {
		s.log.Info("handshake refused", "remote", r.RemoteAddr, "err", err)
		conn.Close()
		return
	}
	sess.serve(context.WithoutCancel(r.Context()))
}

// handshake reads the hello, authenticates the device and answers welcome,
// or answers an error and returns it.
func (s *Server) handshake(ctx context.Context, conn *websocket.Conn, remote string) (*session, error) {
	sess := &session{
		srv: s, conn: conn, log: s.log, loc: locales.Localizer(),
		queue: make(chan outbound, s.opts.SendQueue), quit: make(chan struct{}),
	}
	refuse := func(err error) error {
		sess.why = sess.errorMsg(syncproto.ErrorCode(err))
		sess.goodbye()
		return err
	}
	if err := conn.SetReadDeadline(time.Now().Add(s.opts.HelloTimeout)); err != nil {
		return nil, err
	}
	typ, frame, err := conn.ReadMessage()
	if err != nil {
		if errors.Is(err, websocket.ErrReadLimit) {
			return nil, refuse(syncproto.Errorf(syncproto.CodeTooLarge, "hello over the read limit"))
		}
		return nil, fmt.Errorf("read hello: %w", err)
	}
	m, err := sess.decode(typ, frame) // compression comes later: a binary hello is refused
	if err != nil {
		return nil, refuse(fmt.Errorf("hello: %w", err))
	}
	if m.Type != syncproto.TypeHello {
		return nil, refuse(syncproto.Errorf(syncproto.CodeBadMessage, "first message is %q, want hello", m.Type))
	}
	h := m.Hello
	sess.loc = locales.Localizer(h.Lang)
	// An address that keeps presenting wrong credentials is refused
	// without a look at them: guessing tokens or codes gets nowhere.
	// Every attempt pays up front (so parallel guesses pay too); a good
	// one is refunded.
	if !s.refusals.Allow(remote, s.now()) {
		return nil, refuse(syncproto.Errorf(syncproto.CodeRateLimited, "too many refused handshakes from %s", remote))
	}
	var dev store.Device
	var token string // the new device's token, for an enrolment
	if h.Enrol != "" {
		dev, token, err = s.store.Enrol(ctx, h.Enrol, h.Device)
	} else {
		dev, err = s.store.Authenticate(ctx, h.Token, h.Device)
	}
	if code := syncproto.ErrorCode(err); err == nil || (code != syncproto.CodeUnauthorized && code != syncproto.CodeRevoked) {
		s.refusals.Refund(remote, s.now())
	}
	if err != nil {
		return nil, refuse(fmt.Errorf("hello: %w", err))
	}
	user, err := s.store.GetUser(ctx, dev.User)
	if err != nil {
		return nil, refuse(fmt.Errorf("hello: %w", err))
	}
	scopes := scope.Of(user.Role, user.Sites, user.Courses)
	if scopes == nil {
		scopes = []string{} // an admin: no records
	}
	sess.actor = store.Actor{User: dev.User, Device: dev.ID, Node: h.Device, Scopes: scopes}
	if err := s.store.ReportDevice(ctx, dev.ID, h.Pending, h.Rejected); err != nil {
		return nil, refuse(fmt.Errorf("hello: %w", err))
	}
	sess.log = s.log.With("user", dev.User, "device", dev.ID)
	welcome := &syncproto.Message{Type: syncproto.TypeWelcome, Re: m.Re, Welcome: &syncproto.Welcome{
		Protocol: syncproto.ProtocolVersion, Server: s.store.Clock().Node(), Seq: s.store.LastSeq(), ServerTime: s.now().UnixMilli(), User: dev.User,
		Scopes: scopes, MaxBatch: syncproto.MaxBatch, Token: token,
	}}
	if slices.Contains(h.Compression, syncproto.CompressionZstd) {
		welcome.Welcome.Compression = syncproto.CompressionZstd
	}
	b, err := syncproto.Encode(welcome)
	if err != nil {
		return nil, err
	}
	if err := sess.write(outbound{data: b}); err != nil {
		return nil, fmt.Errorf("write welcome: %w", err)
	}
	if welcome.Welcome.Compression != "" {
		// Frames are compressed already: permessage-deflate, if the
		// upgrade agreed it, would only spend time on them.
		sess.zstd = true
		conn.EnableWriteCompression(false)
	}
	sess.log.Info("session started", "client", h.Client, "lang", h.Lang, "enrolled", token != "")
	return sess, nil
}

// DisconnectRevoked ends, with CodeRevoked, the sessions of devices that
// have been revoked: each is told to wipe its replica. It also ends, with
// CodeScopesChanged, the sessions of users whose sites or courses changed:
// they reconnect and sync what their new scopes show.
func (s *Server) DisconnectRevoked(ctx context.Context) error {
	sessions := s.hub.all()
	ids := make([]string, len(sessions))
	for i, sess := range sessions {
		ids[i] = sess.actor.Device
	}
	revoked, err := s.store.Revoked(ctx, ids)
	if err != nil {
		return err
	}
	users := map[string][]string{} // user → scopes now
	for _, sess := range sessions {
		if slices.Contains(revoked, sess.actor.Device) {
			sess.log.Warn("device revoked: disconnecting")
			sess.kill(syncproto.CodeRevoked)
			continue
		}
		now, ok := users[sess.actor.User]
		if !ok {
			u, err := s.store.GetUser(ctx, sess.actor.User)
			if err != nil { // check the other sessions all the same
				sess.log.Error("check scopes", "err", err)
				continue
			}
			now = scope.Of(u.Role, u.Sites, u.Courses)
			users[sess.actor.User] = now
		}
		if !slices.Equal(now, sess.actor.Scopes) && !(len(now) == 0 && len(sess.actor.Scopes) == 0) {
			sess.log.Info("scopes changed: disconnecting so the device reconnects with its new scopes")
			sess.kill(syncproto.CodeScopesChanged)
		}
	}
	return nil
}

// watchRevocations runs DisconnectRevoked every RevocationCheck until ctx
// is done.
func (s *Server) watchRevocations(ctx context.Context) {
	t := time.NewTicker(s.opts.RevocationCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.DisconnectRevoked(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("check revoked devices", "err", err)
			}
		}
	}
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// Shutdown stops accepting sessions, tells every connected device that the
// server is stopping (after the answers already queued for it), and waits
// for the sessions to end or ctx to be done. Every write a device was told
// is applied is already durable; anything else it will push again.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	for _, sess := range s.hub.all() {
		sess.kill(syncproto.CodeShuttingDown)
	}
	done := make(chan struct{})
	go func() {
		s.sessions.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("shutdown: %w", context.Cause(ctx))
	}
}
