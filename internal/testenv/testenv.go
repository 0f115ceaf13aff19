// Package testenv starts real Ponte servers and clients for tests: a real
// server.Service on 127.0.0.1:0 with its SQLite file in tb.TempDir(), and
// real client replicas in their own files. Everything stops when the test
// ends.
package testenv

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ponte-project/ponte/client"
	"github.com/ponte-project/ponte/server"
	"github.com/ponte-project/ponte/server/scope"
	"github.com/ponte-project/ponte/server/store"
)

// Logger returns a logger that writes to the test log only with
// PONTE_TEST_LOG=1, so failures stay readable.
func Logger(tb testing.TB) *slog.Logger {
	if os.Getenv("PONTE_TEST_LOG") == "" {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(testWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ tb testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.tb.Helper()
	w.tb.Log(string(p))
	return len(p), nil
}

// Server is a running server for a test.
type Server struct {
	*server.Service
	tb     testing.TB
	DBPath string
	cfg    server.Config
}

// MustStartServer starts a server on 127.0.0.1:0 with a fresh database; it
// is closed when the test ends.
func MustStartServer(tb testing.TB) *Server {
	tb.Helper()
	return MustStartServerAt(tb, filepath.Join(tb.TempDir(), "server.db"), server.Config{})
}

// MustStartServerAt starts a server on dbPath with cfg (Addr defaults to
// 127.0.0.1:0, Logger to Logger(tb)).
func MustStartServerAt(tb testing.TB, dbPath string, cfg server.Config) *Server {
	tb.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = Logger(tb)
	}
	cfg.DBPath = dbPath
	svc, err := server.Start(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("start server: %v", err)
	}
	s := &Server{Service: svc, tb: tb, DBPath: dbPath, cfg: cfg}
	tb.Cleanup(func() { s.Stop() })
	return s
}

// Stop closes the server; a second Stop does nothing.
func (s *Server) Stop() {
	if s.Service == nil {
		return
	}
	if err := s.Service.Close(); err != nil {
		s.tb.Errorf("close server: %v", err)
	}
	s.Service = nil
}

// Restart stops the server and starts it again on the same database and
// address.
func (s *Server) Restart() {
	s.tb.Helper()
	addr := s.Addr()
	s.Stop()
	cfg := s.cfg
	cfg.Addr = addr
	var err error
	for range 50 { // the port may linger for a moment
		if s.Service, err = server.Start(context.Background(), cfg); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.tb.Fatalf("restart server: %v", err)
}

// Token issues a device token for user, adding the user as a coordinator
// (who sees everything) if they do not exist yet.
func (s *Server) Token(user string) string {
	s.tb.Helper()
	err := s.Store.AddUser(context.Background(), store.User{Name: user, Role: scope.Coordinator})
	if err != nil && !errors.Is(err, store.ErrExists) {
		s.tb.Fatalf("add user: %v", err)
	}
	_, token, err := s.Store.IssueToken(context.Background(), user)
	if err != nil {
		s.tb.Fatalf("issue token: %v", err)
	}
	return token
}

// MustOpenClient opens a replica in a new file, with its own device token
// for user, syncing with s. It is closed when the test ends.
func (s *Server) MustOpenClient(user string, opts client.Options) *client.Client {
	s.tb.Helper()
	path := filepath.Join(s.tb.TempDir(), "replica.db")
	opts.Server, opts.Token = s.SyncURL(), s.Token(user)
	return MustOpenClientAt(s.tb, path, opts)
}

// MustOpenClientAt opens the replica at path with opts; it is closed when
// the test ends (closing it earlier is fine).
func MustOpenClientAt(tb testing.TB, path string, opts client.Options) *client.Client {
	tb.Helper()
	if opts.Logger == nil {
		opts.Logger = Logger(tb)
	}
	c, err := client.Open(context.Background(), path, opts)
	if err != nil {
		tb.Fatalf("open replica: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// Context returns a context that ends with the test or after d.
func Context(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}
