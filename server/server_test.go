package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/ponte-project/ponte/internal/testenv"
	"github.com/ponte-project/ponte/server"
	"github.com/ponte-project/ponte/syncproto"
)

// peer is a raw protocol client, to send what the real client never would.
type peer struct {
	t    *testing.T
	ws   *websocket.Conn
	node string
	re   uint64
}

func dial(t *testing.T, srv *testenv.Server) *peer {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(srv.SyncURL(), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { ws.Close() })
	return &peer{t: t, ws: ws, node: strings.ReplaceAll(uuid.NewString(), "-", "")}
}

func (p *peer) sendRaw(frame string) {
	p.t.Helper()
	if err := p.ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		p.t.Fatalf("write: %v", err)
	}
}

func (p *peer) send(m *syncproto.Message) uint64 {
	p.t.Helper()
	p.sendRaw(string(p.encode(m)))
	return p.re
}

// encode numbers m as the peer's next request and encodes it.
func (p *peer) encode(m *syncproto.Message) []byte {
	p.t.Helper()
	p.re++
	m.Re = p.re
	b, err := json.Marshal(m)
	if err != nil {
		p.t.Fatal(err)
	}
	return b
}

// read returns the next message, or nil and the close error.
func (p *peer) read() (*syncproto.Message, error) {
	p.t.Helper()
	m, _, err := p.readFrame()
	return m, err
}

// readFrame returns the next message and whether it came compressed.
func (p *peer) readFrame() (*syncproto.Message, bool, error) {
	p.t.Helper()
	p.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	typ, frame, err := p.ws.ReadMessage()
	if err != nil {
		return nil, false, err
	}
	if typ == websocket.BinaryMessage {
		if frame, err = syncproto.Decompress(frame); err != nil {
			p.t.Fatalf("server sent a bad binary frame: %v", err)
		}
	}
	m, err := syncproto.Decode(frame)
	if err != nil {
		p.t.Fatalf("server sent an invalid frame %q: %v", frame, err)
	}
	return m, typ == websocket.BinaryMessage, nil
}

// hello shakes hands, offering the given frame compressions.
func (p *peer) hello(token string, compression ...string) *syncproto.Welcome {
	p.t.Helper()
	p.send(&syncproto.Message{Type: syncproto.TypeHello, Hello: &syncproto.Hello{
		Protocol: syncproto.ProtocolVersion, Device: p.node, Token: token, Lang: "it", Compression: compression}})
	m, err := p.read()
	if err != nil || m.Type != syncproto.TypeWelcome {
		p.t.Fatalf("hello answered %+v, %v", m, err)
	}
	return m.Welcome
}

// expectFatal reads until the server's fatal error and close.
func (p *peer) expectFatal(code syncproto.Code) {
	p.t.Helper()
	for {
		m, err := p.read()
		if err != nil {
			p.t.Fatalf("connection closed without an error message naming %s: %v", code, err)
		}
		if m.Type != syncproto.TypeError {
			continue
		}
		if m.Error.Code != code || !m.Error.Fatal || m.Error.Message == "" {
			p.t.Fatalf("error = %+v, want fatal %s with a message", m.Error, code)
		}
		if _, err := p.read(); err == nil {
			p.t.Fatal("connection still open after a fatal error")
		}
		return
	}
}

func put(node string, id, collection, record string, fields string) syncproto.Mutation {
	var data map[string]json.RawMessage
	_ = json.Unmarshal([]byte(fields), &data)
	return syncproto.Mutation{ID: id, Collection: collection, Record: record, Op: syncproto.OpPut, Data: data,
		Stamp: syncproto.Stamp{Wall: time.Now().UnixMilli(), Node: node}}
}

func TestServer_RefusesBadInput(t *testing.T) {
	srv := testenv.MustStartServer(t)
	for name, tc := range map[string]struct {
		hello bool // shake hands first
		frame string
		code  syncproto.Code
	}{
		"not JSON":                   {frame: "{nope", code: syncproto.CodeBadMessage},
		"invalid UTF-8":              {frame: "{\"type\":\"ping\",\"ping\":{\"time\":1},\"x\":\"\xff\xfe\"}", code: syncproto.CodeBadMessage},
		"first message not hello":    {frame: `{"type":"ping","ping":{"time":1}}`, code: syncproto.CodeBadMessage},
		"old protocol":               {frame: `{"type":"hello","hello":{"protocol":0,"device":"0123456789abcdef0123456789abcdef","token":"x"}}`, code: syncproto.CodeProtocolUnsupported},
		"unknown token":              {frame: `{"type":"hello","hello":{"protocol":1,"device":"0123456789abcdef0123456789abcdef","token":"ponte_x"}}`, code: syncproto.CodeUnauthorized},
		"unknown type after hello":   {hello: true, frame: `{"type":"subscribe","ping":{"time":1}}`, code: syncproto.CodeBadMessage},
		"server message from client": {hello: true, frame: `{"type":"welcome","welcome":{"protocol":1}}`, code: syncproto.CodeBadMessage},
		"push with bad mutation id":  {hello: true, frame: `{"type":"push","push":{"mutations":[{"id":"42"}]}}`, code: syncproto.CodeBadMessage},
	} {
		t.Run(name, func(t *testing.T) {
			p := dial(t, srv)
			if tc.hello {
				p.hello(srv.Token("amal"))
			}
			p.sendRaw(tc.frame)
			p.expectFatal(tc.code)
		})
	}
	t.Run("frame over the read limit", func(t *testing.T) {
		p := dial(t, srv)
		p.hello(srv.Token("amal"))
		big := `{"type":"ping","ping":{"time":1},"pad":"` + strings.Repeat("x", syncproto.MaxFrameBytes) + `"}`
		_ = p.ws.WriteMessage(websocket.TextMessage, []byte(big))
		for {
			m, err := p.read()
			if err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) && ce.Code != websocket.CloseMessageTooBig {
					t.Fatalf("closed with %v, want message too big", ce)
				}
				return
			}
			if m.Type == syncproto.TypeError && m.Error.Code != syncproto.CodeTooLarge {
				t.Fatalf("error %+v, want too_large", m.Error)
			}
		}
	})
	t.Run("a token replayed by another replica", func(t *testing.T) {
		token := srv.Token("amal")
		first := dial(t, srv)
		first.hello(token) // binds the token to first's node
		other := dial(t, srv)
		other.send(&syncproto.Message{Type: syncproto.TypeHello, Hello: &syncproto.Hello{
			Protocol: syncproto.ProtocolVersion, Device: other.node, Token: token}})
		other.expectFatal(syncproto.CodeUnauthorized)
	})
	t.Run("a device claiming another device's replica", func(t *testing.T) {
		first := dial(t, srv)
		first.hello(srv.Token("amal"))
		claimer := dial(t, srv)
		claimer.send(&syncproto.Message{Type: syncproto.TypeHello, Hello: &syncproto.Hello{
			Protocol: syncproto.ProtocolVersion, Device: first.node, Token: srv.Token("bruno")}})
		claimer.expectFatal(syncproto.CodeUnauthorized)
	})
	t.Run("an enrolment code replayed", func(t *testing.T) {
		code, _, err := srv.Store.IssueEnrolmentCode(context.Background(), "amal")
		if err != nil {
			t.Fatal(err)
		}
		first := dial(t, srv)
		first.send(&syncproto.Message{Type: syncproto.TypeHello, Hello: &syncproto.Hello{
			Protocol: syncproto.ProtocolVersion, Device: first.node, Enrol: code}})
		if m, err := first.read(); err != nil || m.Type != syncproto.TypeWelcome || m.Welcome.Token == "" {
			t.Fatalf("enrolment answered %+v, %v", m, err)
		}
		again := dial(t, srv)
		again.send(&syncproto.Message{Type: syncproto.TypeHello, Hello: &syncproto.Hello{
			Protocol: syncproto.ProtocolVersion, Device: again.node, Enrol: code}})
		again.expectFatal(syncproto.CodeUnauthorized)
	})
	// Nothing above changed anything.
	if seq := srv.Store.LastSeq(); seq != 0 {
		t.Fatalf("bad input changed the store: seq %d", seq)
	}
}

func TestServer_RejectsBadMutationsAndAppliesTheRest(t *testing.T) {
	srv := testenv.MustStartServer(t)
	p := dial(t, srv)
	p.hello(srv.Token("amal"))
	good := put(p.node, uuid.NewString(), "persons", "p1", `{"given_name":"Amina"}`)
	badName := put(p.node, uuid.NewString(), "Persons", "p1", `{"given_name":"x"}`)
	otherNode := put(strings.Repeat("f", 32), uuid.NewString(), "persons", "p2", `{"given_name":"x"}`)
	good2 := put(p.node, uuid.NewString(), "persons", "p3", `{"given_name":"Olena"}`)
	re := p.send(&syncproto.Message{Type: syncproto.TypePush, Push: &syncproto.Push{
		Mutations: []syncproto.Mutation{good, badName, otherNode, good2, good}}})
	m, err := p.read()
	if err != nil || m.Type != syncproto.TypeResult || m.Re != re {
		t.Fatalf("push answered %+v, %v", m, err)
	}
	want := []syncproto.Status{syncproto.StatusApplied, syncproto.StatusRejected, syncproto.StatusRejected,
		syncproto.StatusApplied, syncproto.StatusDuplicate}
	for i, r := range m.Result.Results {
		if r.Status != want[i] {
			t.Errorf("result %d = %s (%s), want %s", i, r.Status, r.Message, want[i])
		}
		if r.Status == syncproto.StatusRejected && (r.Code == "" || !strings.Contains(r.Message, " ")) {
			t.Errorf("rejection %d has no localised reason: %+v", i, r)
		}
	}
	if m.Result.Results[4].Seq != m.Result.Results[0].Seq {
		t.Errorf("duplicate answered seq %d, the original %d", m.Result.Results[4].Seq, m.Result.Results[0].Seq)
	}
	if n, _ := srv.Store.CountMutations(context.Background(), "persons", "p1"); n != 1 {
		t.Errorf("p1 has %d mutations applied, want 1", n)
	}
}

func TestServer_DisconnectsSlowConsumer(t *testing.T) {
	srv := testenv.MustStartServerAt(t, t.TempDir()+"/s.db", server.Config{Options: server.Options{SendQueue: 4,
		RequestRate: 1000, RequestBurst: 1000}})
	slow := dial(t, srv)
	slow.hello(srv.Token("slow"))
	slow.send(&syncproto.Message{Type: syncproto.TypePull, Pull: &syncproto.Pull{}})
	if m, err := slow.read(); err != nil || m.Type != syncproto.TypePage {
		t.Fatalf("pull answered %+v, %v", m, err)
	}
	// The slow peer is live and now reads nothing while a writer pushes.
	fast := dial(t, srv)
	fast.hello(srv.Token("fast"))
	// Random notes, so neither compression nor the socket's buffers absorb
	// what the slow peer leaves unread.
	rng := rand.New(rand.NewPCG(1, 2))
	note := make([]byte, 30000)
	for i := range 400 {
		for j := range note {
			note[j] = 'a' + byte(rng.IntN(26))
		}
		fast.send(&syncproto.Message{Type: syncproto.TypePush, Push: &syncproto.Push{Mutations: []syncproto.Mutation{
			put(fast.node, uuid.NewString(), "attendance", fmt.Sprintf("m%d", i),
				`{"mark":"present","note":"`+string(note)+`"}`)}}})
		if m, err := fast.read(); err != nil || m.Type != syncproto.TypeResult {
			t.Fatalf("push %d answered %+v, %v; a slow peer must not block others", i, m, err)
		}
	}
	// The slow peer finds queued changes, then the reason, then the close.
	for {
		m, err := slow.read()
		if err != nil {
			t.Fatalf("closed without saying why: %v", err)
		}
		if m.Type == syncproto.TypeError {
			if m.Error.Code != syncproto.CodeSlowConsumer {
				t.Fatalf("error %+v, want slow_consumer", m.Error)
			}
			break
		}
	}
	var ce *websocket.CloseError
	if _, err := slow.read(); !errors.As(err, &ce) || ce.Code != 4008 {
		t.Fatalf("close = %v, want code 4008", err)
	}
}

func TestServer_ShutdownTellsDevices(t *testing.T) {
	srv := testenv.MustStartServer(t)
	p := dial(t, srv)
	p.hello(srv.Token("amal"))
	done := make(chan struct{})
	go func() { srv.Stop(); close(done) }()
	p.expectFatal(syncproto.CodeShuttingDown)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("shutdown did not finish")
	}
}

func TestServer_MistypedMutationIsRefusedAlone(t *testing.T) {
	srv := testenv.MustStartServer(t)
	p := dial(t, srv)
	p.hello(srv.Token("amal"))
	good, _ := json.Marshal(put(p.node, uuid.NewString(), "persons", "p1", `{"given_name":"Amina"}`))
	bad := `{"id":"` + uuid.NewString() + `","collection":"persons","record":"p2","op":"put","data":5,"stamp":42}`
	p.sendRaw(`{"type":"push","re":1,"push":{"mutations":[` + string(good) + `,` + bad + `]}}`)
	m, err := p.read()
	if err != nil || m.Type != syncproto.TypeResult {
		t.Fatalf("push answered %+v, %v", m, err)
	}
	if r := m.Result.Results; len(r) != 2 || r[0].Status != syncproto.StatusApplied ||
		r[1].Status != syncproto.StatusRejected || r[1].Code != syncproto.CodeBadMessage {
		t.Fatalf("results = %+v, want the good one applied and the mistyped one refused", r)
	}
}

// TestServer_RateLimits: a device sending requests faster than its limit is
// disconnected with rate_limited; an address presenting wrong credentials
// again and again is refused before they are looked at, right ones too.
func TestServer_RateLimits(t *testing.T) {
	srv := testenv.MustStartServerAt(t, t.TempDir()+"/s.db", server.Config{Options: server.Options{
		RequestRate: 1, RequestBurst: 5, RefusalRate: 0.001, RefusalBurst: 3}})

	t.Run("requests per device", func(t *testing.T) {
		p := dial(t, srv)
		p.hello(srv.Token("busy"))
		for range 10 {
			p.send(&syncproto.Message{Type: syncproto.TypePing, Ping: &syncproto.Ping{Time: 1}})
		}
		p.expectFatal(syncproto.CodeRateLimited)
	})

	t.Run("refused handshakes per address", func(t *testing.T) {
		good := srv.Token("right")
		for range 3 {
			p := dial(t, srv)
			p.send(&syncproto.Message{Type: syncproto.TypeHello, Hello: &syncproto.Hello{
				Protocol: syncproto.ProtocolVersion, Device: p.node, Enrol: "AAAA-BBBB-CCCC"}})
			p.expectFatal(syncproto.CodeUnauthorized)
		}
		p := dial(t, srv)
		p.send(&syncproto.Message{Type: syncproto.TypeHello, Hello: &syncproto.Hello{
			Protocol: syncproto.ProtocolVersion, Device: p.node, Token: good}})
		p.expectFatal(syncproto.CodeRateLimited)
	})
}

// TestServer_RefusesCrossOriginBrowsers: a page on another site cannot
// open a sync connection with a user's browser; devices send no Origin.
func TestServer_RefusesCrossOriginBrowsers(t *testing.T) {
	srv := testenv.MustStartServer(t)
	_, resp, err := websocket.DefaultDialer.Dial(srv.SyncURL(), http.Header{"Origin": {"https://evil.example"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin handshake: %v, %+v; want 403", err, resp)
	}
	ws, _, err := websocket.DefaultDialer.Dial(srv.SyncURL(), http.Header{"Origin": {srv.URL()}})
	if err != nil {
		t.Fatalf("same-origin handshake: %v", err)
	}
	ws.Close()
}
