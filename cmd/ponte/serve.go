package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/ponte-project/ponte/server"
	"github.com/ponte-project/ponte/server/store"
	"github.com/ponte-project/ponte/syncproto"
)

// Main is the server program wired together: the store, the hub, the sync
// server and the HTTP listener. Tests start it on 127.0.0.1:0.
type Main struct {
	Addr   string
	DBPath string
	Logger *slog.Logger

	Store  *store.Store
	Server *server.Server
	Hub    *server.Hub
	ln     net.Listener
	http   *http.Server
	served chan error
}

// Run opens the store and starts serving; it returns once the listener is
// open. Close stops it.
func (m *Main) Run(ctx context.Context) error {
	if m.Logger == nil {
		m.Logger = slog.Default()
	}
	var hub *server.Hub
	st, err := store.Open(ctx, m.DBPath, store.Options{OnCommit: func(cs []syncproto.Change) { hub.Broadcast(cs) }})
	if err != nil {
		return err
	}
	hub = server.NewHub(m.Logger, st.LastSeq())
	m.Store, m.Hub = st, hub
	m.Server = server.New(st, hub, server.Options{Logger: m.Logger})
	ln, err := net.Listen("tcp", m.Addr)
	if err != nil {
		st.Close()
		return fmt.Errorf("listen %s: %w", m.Addr, err)
	}
	m.ln = ln
	m.http = &http.Server{Handler: m.Server.Handler(), ReadHeaderTimeout: 10 * time.Second}
	m.served = make(chan error, 1)
	go func() { m.served <- m.http.Serve(ln) }()
	return nil
}

// URL returns the server's base HTTP URL.
func (m *Main) URL() string { return "http://" + m.ln.Addr().String() }

// SyncURL returns the websocket endpoint devices connect to.
func (m *Main) SyncURL() string { return "ws://" + m.ln.Addr().String() + "/sync" }

// Close stops accepting connections, ends every session after the answers
// already queued (every acknowledged write is already durable), and closes
// the store.
func (m *Main) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var errs []error
	if m.http != nil {
		errs = append(errs, m.http.Shutdown(ctx))
		if err := <-m.served; !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	if m.Server != nil {
		errs = append(errs, m.Server.Shutdown(ctx))
	}
	if m.Store != nil {
		errs = append(errs, m.Store.Close())
	}
	return errors.Join(errs...)
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on")
	db := fs.String("db", "ponte.db", "SQLite database file")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	m := &Main{Addr: *addr, DBPath: *db, Logger: slog.New(slog.NewTextHandler(stderr, nil))}
	if err := m.Run(ctx); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ponte: serving %s (sync endpoint %s), database %s\n", m.URL(), m.SyncURL(), *db)
	select {
	case <-ctx.Done():
	case err := <-m.served:
		m.served <- err
	}
	m.Logger.Info("shutting down")
	return m.Close()
}
