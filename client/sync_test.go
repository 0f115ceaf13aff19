package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/ponte-project/ponte/client"
	"github.com/ponte-project/ponte/internal/testenv"
	"github.com/ponte-project/ponte/syncproto"
)

func mustSync(t *testing.T, c *client.Client) {
	t.Helper()
	if err := c.Sync(testenv.Context(t, 30*time.Second)); err != nil {
		t.Fatalf("sync: %v", err)
	}
}

func mustPut(t *testing.T, c *client.Client, collection, id string, fields map[string]any) {
	t.Helper()
	if err := c.Put(context.Background(), collection, id, fields); err != nil {
		t.Fatalf("put %s/%s: %v", collection, id, err)
	}
}

// fields returns a record's fields as strings of JSON, or nil if absent.
func fields(t *testing.T, c *client.Client, collection, id string) map[string]string {
	t.Helper()
	f, err := c.Get(context.Background(), collection, id)
	if errors.Is(err, client.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("get %s/%s: %v", collection, id, err)
	}
	out := make(map[string]string, len(f))
	for k, v := range f {
		out[k] = string(v)
	}
	return out
}

func equalFields(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestSync_ConcurrentEditsMerge(t *testing.T) {
	t.Run("different fields both survive", func(t *testing.T) {
		srv := testenv.MustStartServer(t)
		a, b := srv.MustOpenClient("amal", client.Options{}), srv.MustOpenClient("bruno", client.Options{})
		mustPut(t, a, "persons", "p1", map[string]any{"given_name": "أمينة", "family_name": "حداد"})
		mustSync(t, a)
		mustSync(t, b)
		// Both offline: a edits the phone, b the notes.
		mustPut(t, a, "persons", "p1", map[string]any{"phone": "+393331234567"})
		mustPut(t, b, "persons", "p1", map[string]any{"notes": "needs an Arabic interpreter"})
		mustSync(t, a)
		mustSync(t, b)
		mustSync(t, a)
		want := map[string]string{"given_name": `"أمينة"`, "family_name": `"حداد"`,
			"phone": `"+393331234567"`, "notes": `"needs an Arabic interpreter"`}
		for name, c := range map[string]*client.Client{"a": a, "b": b} {
			if got := fields(t, c, "persons", "p1"); !equalFields(got, want) {
				t.Errorf("replica %s holds %v, want %v", name, got, want)
			}
		}
		if cs, err := srv.Store.Conflicts(context.Background(), 0, 10, false); err != nil || len(cs) != 0 {
			t.Errorf("server conflicts = %v, %v; want none", cs, err)
		}
	})
	t.Run("same field converges and keeps the loser", func(t *testing.T) {
		srv := testenv.MustStartServer(t)
		a, b := srv.MustOpenClient("amal", client.Options{}), srv.MustOpenClient("bruno", client.Options{})
		mustPut(t, a, "appointments", "ap1", map[string]any{"status": "scheduled"})
		mustSync(t, a)
		mustSync(t, b)
		mustPut(t, a, "appointments", "ap1", map[string]any{"status": "held"})
		time.Sleep(20 * time.Millisecond)
		mustPut(t, b, "appointments", "ap1", map[string]any{"status": "cancelled"})
		mustSync(t, b)
		mustSync(t, a)
		mustSync(t, b)
		fa, fb := fields(t, a, "appointments", "ap1"), fields(t, b, "appointments", "ap1")
		if !equalFields(fa, fb) || fa["status"] != `"cancelled"` {
			t.Fatalf("replicas hold %v and %v, want both status cancelled, the later write", fa, fb)
		}
		cs, err := srv.Store.Conflicts(context.Background(), 0, 10, true)
		if err != nil || len(cs) != 1 {
			t.Fatalf("server conflicts = %v, %v; want one", cs, err)
		}
		c := cs[0].Conflict
		if c.Field != "status" || string(c.Loser.Value) != `"held"` || string(c.Winner.Value) != `"cancelled"` {
			t.Errorf("conflict = %+v, want status: cancelled beat held", c)
		}
		local, err := a.Conflicts(context.Background())
		if err != nil || len(local) != 1 || string(local[0].Conflict.Loser.Value) != `"held"` {
			t.Errorf("a's local conflicts = %+v, %v; want its losing write", local, err)
		}
	})
	t.Run("delete then edit elsewhere is a reported conflict", func(t *testing.T) {
		srv := testenv.MustStartServer(t)
		a, b := srv.MustOpenClient("amal", client.Options{}), srv.MustOpenClient("bruno", client.Options{})
		mustPut(t, a, "persons", "p2", map[string]any{"given_name": "Oksana"})
		mustSync(t, a)
		mustSync(t, b)
		if err := a.Delete(context.Background(), "persons", "p2"); err != nil {
			t.Fatal(err)
		}
		if fields(t, a, "persons", "p2") != nil {
			t.Fatal("a still sees the record it deleted")
		}
		time.Sleep(20 * time.Millisecond)
		mustPut(t, b, "persons", "p2", map[string]any{"given_name": "Оксана"})
		mustSync(t, a)
		mustSync(t, b)
		mustSync(t, a)
		fa, fb := fields(t, a, "persons", "p2"), fields(t, b, "persons", "p2")
		if !equalFields(fa, fb) || fa["given_name"] != `"Оксана"` {
			t.Fatalf("replicas hold %v and %v, want the later edit", fa, fb)
		}
		cs, _ := srv.Store.Conflicts(context.Background(), 0, 10, true)
		if len(cs) != 1 || !cs[0].Conflict.Loser.Deleted {
			t.Errorf("conflicts = %+v, want the delete kept as loser", cs)
		}
	})
}

// cutOnResult is a connection that drops when the server's answer to a push
// arrives: the server has committed, the client never hears it.
type cutOnResult struct {
	net.Conn
	once *sync.Once
	cut  *bool
}

func (c cutOnResult) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && strings.Contains(string(p[:n]), `"type":"result"`) {
		c.once.Do(func() { *c.cut = true })
		c.Conn.Close()
		return 0, net.ErrClosed
	}
	return n, err
}

func TestSync_RetryAfterLostAckAppliesOnce(t *testing.T) {
	srv := testenv.MustStartServer(t)
	path := filepath.Join(t.TempDir(), "a.db")
	token := srv.Token("amal")
	var once sync.Once
	cut := false
	lossy := &websocket.Dialer{ // no compression, so the test can see the frames it cuts
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			return cutOnResult{Conn: conn, once: &once, cut: &cut}, err
		},
	}
	a := testenv.MustOpenClientAt(t, path, client.Options{Server: srv.SyncURL(), Token: token, Dialer: lossy})
	mustPut(t, a, "attendance", "m1", map[string]any{"mark": "present"})
	if err := a.Sync(testenv.Context(t, 10*time.Second)); !errors.Is(err, syncproto.ErrUnreachable) {
		t.Fatalf("sync over a connection cut before the ack = %v, want ErrUnreachable", err)
	}
	if !cut {
		t.Fatal("the connection was not cut at the result")
	}
	st, _ := a.Status(context.Background())
	if st.Pending != 1 {
		t.Fatalf("pending = %d after a lost ack, want 1", st.Pending)
	}
	a.Close()
	a = testenv.MustOpenClientAt(t, path, client.Options{Server: srv.SyncURL(), Token: token})
	mustSync(t, a)
	if st, _ := a.Status(context.Background()); st.Pending != 0 {
		t.Fatalf("pending = %d after retry, want 0", st.Pending)
	}
	if n, err := srv.Store.CountMutations(context.Background(), "attendance", "m1"); err != nil || n != 1 {
		t.Fatalf("server applied the mutation %d times (%v), want once", n, err)
	}
	if got := fields(t, a, "attendance", "m1"); got["mark"] != `"present"` {
		t.Errorf("replica holds %v", got)
	}
}

// TestSync_KilledWithFullOutbox runs a child process that writes and is
// killed with SIGKILL before it syncs; the reopened replica still holds
// every write the child was told was durable, and delivers them.
func TestSync_KilledWithFullOutbox(t *testing.T) {
	if os.Getenv("PONTE_CHILD_REPLICA") != "" {
		writeUntilKilled(os.Getenv("PONTE_CHILD_REPLICA"))
		return
	}
	srv := testenv.MustStartServer(t)
	path := filepath.Join(t.TempDir(), "tablet.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestSync_KilledWithFullOutbox$")
	cmd.Env = append(os.Environ(), "PONTE_CHILD_REPLICA="+path)
	out, _ := cmd.CombinedOutput()
	var ws syscall.WaitStatus
	if cmd.ProcessState != nil {
		ws, _ = cmd.ProcessState.Sys().(syscall.WaitStatus)
	}
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child was not killed: %v\n%s", cmd.ProcessState, out)
	}
	acked := 0
	for _, line := range strings.Split(string(out), "\n") {
		if n, ok := strings.CutPrefix(line, "durable "); ok {
			acked, _ = strconv.Atoi(n)
		}
	}
	if acked == 0 {
		t.Fatalf("child reported no durable writes:\n%s", out)
	}
	c := testenv.MustOpenClientAt(t, path, client.Options{Server: srv.SyncURL(), Token: srv.Token("teacher")})
	st, err := c.Status(context.Background())
	if err != nil || st.Pending < acked {
		t.Fatalf("after the kill the outbox holds %d writes (%v), want at least the %d reported durable", st.Pending, err, acked)
	}
	mustSync(t, c)
	for i := range acked {
		rec, _, err := srv.Store.Get(context.Background(), "attendance", fmt.Sprintf("mark-%d", i))
		if err != nil || !rec.Exists() {
			t.Fatalf("write %d of %d did not reach the server (%v)", i, acked, err)
		}
	}
}

// writeUntilKilled writes records, printing after each returns, then kills
// its own process the hard way.
func writeUntilKilled(path string) {
	c, err := client.Open(context.Background(), path, client.Options{})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(3)
	}
	for i := range 40 {
		if err := c.Put(context.Background(), "attendance", fmt.Sprintf("mark-%d", i), map[string]any{"mark": "present", "n": i}); err != nil {
			fmt.Println("put:", err)
			os.Exit(3)
		}
		fmt.Printf("durable %d\n", i+1)
	}
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

func TestSync_ServerRestartLosesNothing(t *testing.T) {
	srv := testenv.MustStartServer(t)
	a := srv.MustOpenClient("amal", client.Options{})
	b := srv.MustOpenClient("bruno", client.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- a.Run(ctx) }()
	const n = 60
	for i := range n {
		mustPut(t, a, "lessons", fmt.Sprintf("l%d", i), map[string]any{"topic": fmt.Sprintf("lesson %d", i)})
		if i == n/2 {
			srv.Restart()
		}
		time.Sleep(time.Millisecond)
	}
	waitFor(t, 20*time.Second, "a's outbox to drain", func() bool {
		st, err := a.Status(context.Background())
		return err == nil && st.Pending == 0
	})
	cancel()
	if err := <-runDone; err != nil {
		t.Fatalf("run: %v", err)
	}
	mustSync(t, b)
	for i := range n {
		if got := fields(t, b, "lessons", fmt.Sprintf("l%d", i)); got["topic"] != fmt.Sprintf(`"lesson %d"`, i) {
			t.Fatalf("lesson %d = %v after a server restart", i, got)
		}
	}
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRun_ReceivesChangesByPush(t *testing.T) {
	srv := testenv.MustStartServer(t)
	got := make(chan client.RecordKey, 16)
	states := make(chan client.State, 16)
	live := srv.MustOpenClient("teacher", client.Options{OnEvent: func(e client.Event) {
		switch e.Kind {
		case client.EventChanged:
			if !e.Local {
				for _, k := range e.Records {
					got <- k
				}
			}
		case client.EventState:
			states <- e.State
		}
	}})
	writer := srv.MustOpenClient("mediator", client.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan error, 1)
	go func() { runDone <- live.Run(ctx) }()
	waitState(t, states, client.StateLive)
	mustPut(t, writer, "appointments", "ap9", map[string]any{"status": "scheduled", "start": "2026-11-24T09:00:00+01:00"})
	mustSync(t, writer)
	select {
	case k := <-got:
		if k.ID != "ap9" {
			t.Fatalf("pushed change for %v, want ap9", k)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no change pushed within 10s")
	}
	if f := fields(t, live, "appointments", "ap9"); f["status"] != `"scheduled"` {
		t.Fatalf("live replica holds %v", f)
	}
	// Its own writes go out while live, and come back confirmed.
	mustPut(t, live, "attendance", "x1", map[string]any{"mark": "late"})
	waitFor(t, 10*time.Second, "the live write to be confirmed", func() bool {
		st, _ := live.Status(context.Background())
		return st.Pending == 0
	})
	mustSync(t, writer)
	if f := fields(t, writer, "attendance", "x1"); f["mark"] != `"late"` {
		t.Fatalf("writer holds %v", f)
	}
	cancel()
	if err := <-runDone; err != nil {
		t.Fatalf("run: %v", err)
	}
}

func waitState(t *testing.T, states <-chan client.State, want client.State) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case s := <-states:
			if s == want {
				return
			}
		case <-timeout:
			t.Fatalf("never reached state %s", want)
		}
	}
}

func TestSync_WrongClockDoesNotWinForever(t *testing.T) {
	srv := testenv.MustStartServer(t)
	yearAhead := func() time.Time { return time.Now().AddDate(1, 0, 0) }
	fast := srv.MustOpenClient("amal", client.Options{Now: yearAhead})
	honest := srv.MustOpenClient("bruno", client.Options{})
	// Written offline, before the fast tablet has ever met the server.
	mustPut(t, fast, "persons", "p1", map[string]any{"phone": "+390000000001"})
	mustSync(t, fast)
	mustSync(t, honest)
	mustPut(t, honest, "persons", "p1", map[string]any{"phone": "+390000000002"})
	mustSync(t, honest)
	mustSync(t, fast)
	for name, c := range map[string]*client.Client{"fast": fast, "honest": honest} {
		if f := fields(t, c, "persons", "p1"); f["phone"] != `"+390000000002"` {
			t.Errorf("%s holds %v; the later write must win over a clock a year ahead", name, f)
		}
	}
	// Once it has talked to the server, the fast tablet stamps in server time.
	mustPut(t, fast, "persons", "p1", map[string]any{"phone": "+390000000003"})
	mustSync(t, fast)
	rec, _, err := srv.Store.Get(context.Background(), "persons", "p1")
	if err != nil {
		t.Fatal(err)
	}
	if skew := time.Until(rec.Stamps["phone"].Time()); skew > time.Minute {
		t.Errorf("a corrected tablet still stamps %v ahead", skew)
	}
}

func TestSync_Errors(t *testing.T) {
	srv := testenv.MustStartServer(t)
	t.Run("unknown token", func(t *testing.T) {
		c := testenv.MustOpenClientAt(t, filepath.Join(t.TempDir(), "r.db"),
			client.Options{Server: srv.SyncURL(), Token: "ponte_nope", Lang: "ar"})
		err := c.Sync(testenv.Context(t, 10*time.Second))
		if !errors.Is(err, syncproto.ErrUnauthorized) {
			t.Fatalf("sync = %v, want ErrUnauthorized", err)
		}
		st, _ := c.Status(context.Background())
		if st.LastError == nil || st.LastError.Code != syncproto.CodeUnauthorized || !strings.ContainsAny(st.LastError.Message, "ابتثج") {
			t.Errorf("status last error = %+v, want unauthorized in Arabic", st.LastError)
		}
		if st.LastSync != nil {
			t.Errorf("status claims a last sync after a failed round")
		}
	})
	t.Run("token bound to another replica", func(t *testing.T) {
		token := srv.Token("amal")
		a := testenv.MustOpenClientAt(t, filepath.Join(t.TempDir(), "a.db"), client.Options{Server: srv.SyncURL(), Token: token})
		mustSync(t, a)
		b := testenv.MustOpenClientAt(t, filepath.Join(t.TempDir(), "b.db"), client.Options{Server: srv.SyncURL(), Token: token})
		if err := b.Sync(testenv.Context(t, 10*time.Second)); !errors.Is(err, syncproto.ErrUnauthorized) {
			t.Fatalf("second replica with the same token: %v, want ErrUnauthorized", err)
		}
	})
	t.Run("server unreachable", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close()
		c := testenv.MustOpenClientAt(t, filepath.Join(t.TempDir(), "r.db"),
			client.Options{Server: "ws://" + addr + "/sync", Token: "x"})
		mustPut(t, c, "persons", "p", map[string]any{"notes": "offline"})
		if err := c.Sync(testenv.Context(t, 10*time.Second)); !errors.Is(err, syncproto.ErrUnreachable) {
			t.Fatalf("sync = %v, want ErrUnreachable", err)
		}
		if f := fields(t, c, "persons", "p"); f["notes"] != `"offline"` {
			t.Errorf("offline write not readable: %v", f)
		}
	})
	t.Run("invalid write refused locally", func(t *testing.T) {
		c := srv.MustOpenClient("amal", client.Options{})
		err := c.Put(context.Background(), "Persons!", "p", map[string]any{"x": 1})
		if !errors.Is(err, syncproto.ErrBadMessage) {
			t.Fatalf("put into a bad collection name = %v, want ErrBadMessage", err)
		}
		if err := c.Put(context.Background(), "persons", "p", map[string]any{"notes": strings.Repeat("x", syncproto.MaxMutationBytes)}); !errors.Is(err, syncproto.ErrTooLarge) {
			t.Fatalf("oversized put = %v, want ErrTooLarge", err)
		}
		if st, _ := c.Status(context.Background()); st.Pending != 0 {
			t.Errorf("refused writes were queued: %d", st.Pending)
		}
	})
}

func TestSync_LargeFirstSyncResumes(t *testing.T) {
	srv := testenv.MustStartServer(t)
	w := srv.MustOpenClient("amal", client.Options{})
	const n = 4100 // five pages of 1000
	ops := make([]client.Op, 0, n)
	for i := range n {
		ops = append(ops, client.Op{Collection: "persons", ID: fmt.Sprintf("p%05d", i),
			Fields: map[string]any{"given_name": fmt.Sprintf("Name %d", i)}})
	}
	if err := w.Write(context.Background(), ops...); err != nil {
		t.Fatal(err)
	}
	mustSync(t, w)

	path := filepath.Join(t.TempDir(), "fresh.db")
	token := srv.Token("bruno")
	pages := 0
	ctx, cancel := context.WithCancel(context.Background())
	fresh := testenv.MustOpenClientAt(t, path, client.Options{Server: srv.SyncURL(), Token: token, PageSize: 1000,
		OnEvent: func(e client.Event) {
			if e.Kind == client.EventChanged {
				if pages++; pages == 1 {
					cancel() // stop after the first page
				}
			}
		}})
	err := fresh.Sync(ctx)
	if err == nil {
		t.Fatal("sync cancelled after the first page succeeded")
	}
	fresh.Close()
	fresh = testenv.MustOpenClientAt(t, path, client.Options{Server: srv.SyncURL(), Token: token})
	st, _ := fresh.Status(context.Background())
	var held int
	rows, _ := fresh.Query(context.Background(), `SELECT count(*) FROM records`)
	for rows.Next() {
		rows.Scan(&held)
	}
	rows.Close()
	if st.Cursor == 0 || held == 0 || held == n {
		t.Fatalf("after an interrupted first sync: cursor %d, %d records; want a partial, consistent copy", st.Cursor, held)
	}
	mustSync(t, fresh)
	// Stored as text, which SQL's JSON functions read as JSON (a blob
	// would be read as SQLite's binary JSON).
	rows, _ = fresh.Query(context.Background(), `SELECT count(*), count(DISTINCT data->>'given_name'),
		count(*) FILTER (WHERE typeof(data) = 'text') FROM records WHERE collection = 'persons'`)
	var count, distinct, text int
	for rows.Next() {
		rows.Scan(&count, &distinct, &text)
	}
	rows.Close()
	if count != n || distinct != n || text != n {
		t.Fatalf("after resuming: %d records, %d distinct names, %d stored as text; want %d", count, distinct, text, n)
	}
}

func TestQuery_IsReadOnly(t *testing.T) {
	c := testenv.MustOpenClientAt(t, filepath.Join(t.TempDir(), "r.db"), client.Options{})
	mustPut(t, c, "persons", "p", map[string]any{"given_name": "Amina"})
	if _, err := c.Query(context.Background(), `DELETE FROM replica_records`); err == nil {
		rows, _ := c.Query(context.Background(), `SELECT count(*) FROM records`)
		var n int
		for rows.Next() {
			rows.Scan(&n)
		}
		rows.Close()
		if n != 1 {
			t.Fatal("Query deleted records")
		}
	}
	b, _ := json.Marshal(fields(t, c, "persons", "p"))
	if !strings.Contains(string(b), "Amina") {
		t.Fatalf("record = %s", b)
	}
}

// A tablet whose clock was reset years back (a flat battery) overwrites a
// value it has seen: its write must win, not vanish behind the old stamp.
func TestSync_FlatBatteryWriteStillWins(t *testing.T) {
	srv := testenv.MustStartServer(t)
	path := filepath.Join(t.TempDir(), "tablet.db")
	token := srv.Token("amal")
	a := testenv.MustOpenClientAt(t, path, client.Options{Server: srv.SyncURL(), Token: token})
	b := srv.MustOpenClient("bruno", client.Options{})
	mustPut(t, b, "persons", "p1", map[string]any{"family_name": "Haddad"})
	mustSync(t, b)
	mustSync(t, a)
	a.Close()
	reset := func() time.Time { return time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC) }
	a = testenv.MustOpenClientAt(t, path, client.Options{Server: srv.SyncURL(), Token: token, Now: reset})
	mustPut(t, a, "persons", "p1", map[string]any{"family_name": "Al-Haddad"})
	if f := fields(t, a, "persons", "p1"); f["family_name"] != `"Al-Haddad"` {
		t.Fatalf("right after the write the tablet shows %v", f)
	}
	mustSync(t, a)
	mustSync(t, b)
	for name, c := range map[string]*client.Client{"a": a, "b": b} {
		if f := fields(t, c, "persons", "p1"); f["family_name"] != `"Al-Haddad"` {
			t.Errorf("%s holds %v; the deliberate overwrite was lost", name, f)
		}
	}
}
