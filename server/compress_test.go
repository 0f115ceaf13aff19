package server_test

import (
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/ponte-project/ponte/internal/testenv"
	"github.com/ponte-project/ponte/syncproto"
)

// sendCompressed sends m as a binary frame of compressed JSON.
func (p *peer) sendCompressed(m *syncproto.Message) uint64 {
	p.t.Helper()
	b, err := syncproto.Compress(nil, p.encode(m))
	if err != nil {
		p.t.Fatal(err)
	}
	if err := p.ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
		p.t.Fatalf("write: %v", err)
	}
	return p.re
}

// catchUp pulls until the session is live, and returns whether every page
// of CompressMin bytes or more came compressed, and whether any came so.
func (p *peer) catchUp() (bigOnesCompressed, anyCompressed bool) {
	p.t.Helper()
	re := p.send(&syncproto.Message{Type: syncproto.TypePull, Pull: &syncproto.Pull{Pages: 1}})
	bigOnesCompressed = true
	for {
		m, compressed, err := p.readFrame()
		if err != nil || m.Type != syncproto.TypePage || m.Re != re {
			p.t.Fatalf("pull answered %+v, %v", m, err)
		}
		b, _ := syncproto.Encode(m)
		if len(b) >= syncproto.CompressMin && !compressed {
			bigOnesCompressed = false
		}
		anyCompressed = anyCompressed || compressed
		if !m.Page.More {
			return bigOnesCompressed, anyCompressed
		}
		re = p.send(&syncproto.Message{Type: syncproto.TypePull, Pull: &syncproto.Pull{Cursors: m.Page.Cursors, Pages: 1}})
	}
}

func persons(node string, n int) []syncproto.Mutation {
	muts := make([]syncproto.Mutation, n)
	for i := range muts {
		muts[i] = put(node, uuid.NewString(), "persons", uuid.NewString(),
			fmt.Sprintf(`{"given_name":"Amina %d","family_name":"Haddad","notes":"arrived by train, needs an interpreter"}`, i))
	}
	return muts
}

// A device that offers zstd gets big frames compressed, pages and live
// changes alike, and may send compressed frames; one that does not gets
// text only and may not send binary frames.
func TestServer_CompressesFramesWhenOffered(t *testing.T) {
	srv := testenv.MustStartServer(t)
	z := dial(t, srv)
	if w := z.hello(srv.Token("amal"), "brotli", syncproto.CompressionZstd); w.Compression != syncproto.CompressionZstd {
		t.Fatalf("welcome chose compression %q, want zstd", w.Compression)
	}
	plain := dial(t, srv)
	if w := plain.hello(srv.Token("bruno")); w.Compression != "" {
		t.Fatalf("welcome to a device offering nothing chose compression %q", w.Compression)
	}
	other := dial(t, srv)
	if w := other.hello(srv.Token("carla"), "brotli"); w.Compression != "" {
		t.Fatalf("welcome chose compression %q, which was not offered", w.Compression)
	}

	// A compressed push is applied, and its result comes back.
	re := z.sendCompressed(&syncproto.Message{Type: syncproto.TypePush, Push: &syncproto.Push{Mutations: persons(z.node, 40)}})
	m, err := z.read()
	if err != nil || m.Type != syncproto.TypeResult || m.Re != re || len(m.Result.Results) != 40 {
		t.Fatalf("compressed push answered %+v, %v", m, err)
	}
	for _, r := range m.Result.Results {
		if r.Status != syncproto.StatusApplied {
			t.Fatalf("result %+v, want applied", r)
		}
	}

	if big, _ := z.catchUp(); !big {
		t.Error("a page of CompressMin bytes or more came as text to a device that offered zstd")
	}
	if _, any := plain.catchUp(); any {
		t.Error("a page came compressed to a device that offered nothing")
	}

	// Live: a commit of many changes reaches each device in its form.
	re = other.send(&syncproto.Message{Type: syncproto.TypePush, Push: &syncproto.Push{Mutations: persons(other.node, 20)}})
	if m, err := other.read(); err != nil || m.Type != syncproto.TypeResult || m.Re != re {
		t.Fatalf("push answered %+v, %v", m, err)
	}
	for _, tc := range []struct {
		p    *peer
		want bool
	}{{z, true}, {plain, false}} {
		m, compressed, err := tc.p.readFrame()
		if err != nil || m.Type != syncproto.TypeChanges || len(m.Page.Changes) != 20 {
			t.Fatalf("live changes arrived as %+v, %v", m, err)
		}
		if compressed != tc.want {
			t.Errorf("live changes compressed = %v, want %v", compressed, tc.want)
		}
	}

	// A binary frame needs the compression agreed.
	plain.sendCompressed(&syncproto.Message{Type: syncproto.TypePing, Ping: &syncproto.Ping{Time: 1}})
	plain.expectFatal(syncproto.CodeBadMessage)
	// Compressed frames are bounded like text ones.
	bomb, err := syncproto.Compress(nil, make([]byte, syncproto.MaxFrameBytes+1))
	if err != nil {
		t.Fatal(err)
	}
	if err := z.ws.WriteMessage(websocket.BinaryMessage, bomb); err != nil {
		t.Fatal(err)
	}
	z.expectFatal(syncproto.CodeTooLarge)
	// Compression comes after the handshake.
	early := dial(t, srv)
	early.sendCompressed(&syncproto.Message{Type: syncproto.TypeHello, Hello: &syncproto.Hello{
		Protocol: syncproto.ProtocolVersion, Device: early.node, Token: srv.Token("dina"), Compression: []string{syncproto.CompressionZstd}}})
	early.expectFatal(syncproto.CodeBadMessage)
}
