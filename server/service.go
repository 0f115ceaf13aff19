package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/ponte-project/ponte/server/store"
	"github.com/ponte-project/ponte/server/web"
	"github.com/ponte-project/ponte/syncproto"
)

// Config says where a Service listens and keeps its data.
type Config struct {
	Addr   string // e.g. 127.0.0.1:8080; port 0 picks a free one
	DBPath string
	Logger *slog.Logger
	Now    func() time.Time // the server's clock; nil means time.Now
	// Schema, if set, checks every put before it is applied (see
	// store.Options); `ponte serve` sets records.Schema.
	Schema syncproto.Schema
	// TLSCert and TLSKey, both set, are PEM files: the service then serves
	// HTTPS and devices sync over wss://.
	TLSCert, TLSKey string
	Options         Options // connection tuning; Logger and Now are filled in
}

// Service is the whole server wired together: store, hub, sync server and
// HTTP listener. `ponte serve` runs one; tests start one on 127.0.0.1:0.
type Service struct {
	Store  *store.Store
	Hub    *Hub
	Server *Server

	ln       net.Listener
	tls      bool
	http     *http.Server
	stop     context.CancelFunc // stops the background work
	stopped  chan struct{}      // closed when it has stopped
	served   chan struct{}      // closed when the HTTP server stops
	serveErr error              // why it stopped; read after served is closed
}

// Start opens the store and starts serving. It returns once the listener is
// open; Close stops the service.
func Start(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return nil, errors.New("start: TLS needs both a certificate and a key")
	}
	svc := &Service{}
	st, err := store.Open(ctx, cfg.DBPath, store.Options{Now: cfg.Now, Schema: cfg.Schema,
		OnCommit: func(cs []store.Committed) { svc.Hub.Broadcast(cs) }})
	if err != nil {
		return nil, err
	}
	svc.Store = st
	svc.Hub = NewHub(cfg.Logger, st.LastSeq())
	cfg.Options.Logger, cfg.Options.Now = cfg.Logger, cfg.Now
	svc.Server = New(st, svc.Hub, cfg.Options)
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	svc.ln = ln
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			ln.Close()
			st.Close()
			return nil, fmt.Errorf("start: load TLS certificate: %w", err)
		}
		svc.ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		svc.tls = true
	}
	// Requests live in bg, which Close cancels first: long-lived page
	// streams (/events) end, and shutdown does not wait for them.
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	svc.stop, svc.stopped = stop, make(chan struct{})
	pages := web.New(st, web.Options{Logger: cfg.Logger, Now: cfg.Now, Live: svc.Hub.Live,
		LiveDevices: svc.Hub.LiveDevices, Subscribe: svc.Hub.Subscribe})
	svc.http = &http.Server{Handler: svc.Server.Handler(pages), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:    slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
		BaseContext: func(net.Listener) context.Context { return bg }}
	svc.served = make(chan struct{})
	go func() {
		svc.serveErr = svc.http.Serve(svc.ln)
		close(svc.served)
	}()
	go func() {
		defer close(svc.stopped)
		svc.Server.watchRevocations(bg)
	}()
	return svc, nil
}

// Addr returns the address the service listens on.
func (svc *Service) Addr() string { return svc.ln.Addr().String() }

// URL returns the service's base HTTP URL (https with TLS).
func (svc *Service) URL() string {
	if svc.tls {
		return "https://" + svc.Addr()
	}
	return "http://" + svc.Addr()
}

// SyncURL returns the websocket endpoint devices connect to (wss with TLS).
func (svc *Service) SyncURL() string {
	if svc.tls {
		return "wss://" + svc.Addr() + "/sync"
	}
	return "ws://" + svc.Addr() + "/sync"
}

// Done is closed when the HTTP server stops, by Close or by itself; Err then
// says why.
func (svc *Service) Done() <-chan struct{} { return svc.served }

// Err returns why the HTTP server stopped, once Done is closed.
func (svc *Service) Err() error {
	<-svc.served
	return svc.serveErr
}

// Close stops accepting connections, ends every session after the answers
// already queued for it (every acknowledged write is already durable), and
// closes the store.
func (svc *Service) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	svc.stop()
	<-svc.stopped
	var errs []error
	if err := svc.http.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("close listener: %w", err))
	}
	if err := svc.Err(); !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, err)
	}
	if err := svc.Server.Shutdown(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := svc.Store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close store: %w", err))
	}
	return errors.Join(errs...)
}
