package client_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ponte-project/ponte/client"
	"github.com/ponte-project/ponte/internal/testenv"
	"github.com/ponte-project/ponte/server"
	"github.com/ponte-project/ponte/server/scope"
	"github.com/ponte-project/ponte/server/store"
	"github.com/ponte-project/ponte/syncproto"
)

// enrolled opens a replica with no token and enrols it with a fresh code
// for user; it returns the replica and its device id.
func enrolled(t *testing.T, srv *testenv.Server, user string) (*client.Client, string) {
	t.Helper()
	ctx := context.Background()
	if err := srv.Store.AddUser(ctx, store.User{Name: user, Role: scope.Coordinator}); err != nil && !errors.Is(err, store.ErrExists) {
		t.Fatal(err)
	}
	code, _, err := srv.Store.IssueEnrolmentCode(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	c := testenv.MustOpenClientAt(t, filepath.Join(t.TempDir(), "r.db"), client.Options{Server: srv.SyncURL()})
	if err := c.Enrol(testenv.Context(t, 10*time.Second), code); err != nil {
		t.Fatalf("enrol: %v", err)
	}
	if err := c.Enrol(testenv.Context(t, 10*time.Second), code); !errors.Is(err, syncproto.ErrUnauthorized) {
		t.Fatalf("a code used twice: %v, want ErrUnauthorized", err)
	}
	ds, err := srv.Store.Devices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.Node == c.Node() {
			return c, d.ID
		}
	}
	t.Fatalf("no device bound to the enrolled replica %s", c.Node())
	return nil, ""
}

func TestClient_EnrolsWithACodeAndSyncsWithoutAToken(t *testing.T) {
	srv := testenv.MustStartServer(t)
	c, _ := enrolled(t, srv, "anna")
	mustPut(t, c, "notes", "n1", map[string]any{"text": "hello"})
	mustSync(t, c)
	if u, err := c.User(context.Background()); err != nil || u != "anna" {
		t.Errorf("user = %q, %v", u, err)
	}
	if rec, _, err := srv.Store.Get(context.Background(), "notes", "n1"); err != nil || !rec.Exists() {
		t.Errorf("the enrolled device's write did not arrive: %v", err)
	}
}

// TestClient_RevokedDeviceIsWiped: a revoked device is refused at its next
// connection, and a connected one within moments; its replica is erased,
// writes not yet sent included.
func TestClient_RevokedDeviceIsWiped(t *testing.T) {
	srv := testenv.MustStartServerAt(t, filepath.Join(t.TempDir(), "s.db"),
		server.Config{Options: server.Options{RevocationCheck: 20 * time.Millisecond}})
	ctx := context.Background()

	t.Run("at the next connection", func(t *testing.T) {
		c, id := enrolled(t, srv, "anna")
		mustPut(t, c, "notes", uuid.NewString(), map[string]any{"text": "synced"})
		mustSync(t, c)
		mustPut(t, c, "notes", uuid.NewString(), map[string]any{"text": "not sent yet"})
		if err := srv.Store.RevokeDevice(ctx, id); err != nil {
			t.Fatal(err)
		}
		err := c.Sync(testenv.Context(t, 10*time.Second))
		if !errors.Is(err, syncproto.ErrRevoked) || !errors.Is(err, client.ErrWiped) {
			t.Fatalf("sync of a revoked device = %v, want ErrRevoked and ErrWiped", err)
		}
		assertWiped(t, c)
	})

	t.Run("while connected", func(t *testing.T) {
		c, id := enrolled(t, srv, "bruno")
		mustPut(t, c, "notes", uuid.NewString(), map[string]any{"text": "x"})
		runCtx := testenv.Context(t, 20*time.Second)
		done := make(chan error, 1)
		go func() { done <- c.Run(runCtx) }()
		waitFor(t, 10*time.Second, "the replica is live with nothing pending", func() bool {
			st, err := c.Status(ctx)
			return err == nil && st.State == client.StateLive && st.Pending == 0
		})
		if err := srv.Store.RevokeDevice(ctx, id); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if !errors.Is(err, syncproto.ErrRevoked) || !errors.Is(err, client.ErrWiped) {
				t.Fatalf("run = %v, want ErrRevoked and ErrWiped", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("a revoked device stayed connected")
		}
		assertWiped(t, c)
	})
}

func assertWiped(t *testing.T, c *client.Client) {
	t.Helper()
	ctx := context.Background()
	for _, table := range []string{"replica_records", "outbox", "outbox_bodies", "cursors", "rejected", "conflicts"} {
		rows, err := c.Query(ctx, "SELECT count(*) FROM "+table)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		rows.Next()
		rows.Scan(&n)
		rows.Close()
		if n != 0 {
			t.Errorf("%s holds %d rows after the wipe", table, n)
		}
	}
	if u, _ := c.User(ctx); u != "" {
		t.Errorf("the wiped replica still knows its user %q", u)
	}
	st, err := c.Status(ctx)
	if err != nil || st.LastError == nil || st.LastError.Code != syncproto.CodeRevoked {
		t.Errorf("status after the wipe = %+v, %v; want the revocation as last error", st, err)
	}
}
