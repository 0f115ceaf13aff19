package client_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/ponte-project/ponte/client"
	"github.com/ponte-project/ponte/internal/testenv"
)

// sniffer keeps every byte a connection reads and writes.
type sniffer struct {
	mu          sync.Mutex
	read, wrote bytes.Buffer
}

type sniffedConn struct {
	net.Conn
	s *sniffer
}

func (c sniffedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.s.mu.Lock()
	c.s.read.Write(p[:n])
	c.s.mu.Unlock()
	return n, err
}

func (c sniffedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.s.mu.Lock()
	c.s.wrote.Write(p[:n])
	c.s.mu.Unlock()
	return n, err
}

func (s *sniffer) dialer(compress bool) *websocket.Dialer {
	return &websocket.Dialer{EnableCompression: compress,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			return sniffedConn{Conn: conn, s: s}, err
		}}
}

// frameKinds counts the data messages in a websocket byte stream after its
// HTTP head, by their first frame: text, binary, and those with RSV1 set
// (permessage-deflate).
func frameKinds(stream []byte) (text, bin, deflated int, err error) {
	head := bytes.Index(stream, []byte("\r\n\r\n"))
	if head < 0 {
		return 0, 0, 0, fmt.Errorf("no HTTP head in %d bytes", len(stream))
	}
	b := stream[head+4:]
	for len(b) >= 2 {
		opcode, rsv1, masked := b[0]&0x0f, b[0]&0x40 != 0, b[1]&0x80 != 0
		n, hdr := uint64(b[1]&0x7f), 2
		switch n {
		case 126:
			n, hdr = uint64(binary.BigEndian.Uint16(b[2:])), 4
		case 127:
			n, hdr = binary.BigEndian.Uint64(b[2:]), 10
		}
		if masked {
			hdr += 4
		}
		if uint64(len(b)) < uint64(hdr)+n {
			return 0, 0, 0, fmt.Errorf("a frame of %d bytes cut short", n)
		}
		switch opcode {
		case websocket.TextMessage:
			text++
		case websocket.BinaryMessage:
			bin++
		}
		if rsv1 {
			deflated++
		}
		b = b[uint64(hdr)+n:]
	}
	return text, bin, deflated, nil
}

// A client whose dialer compresses offers zstd, and its big frames travel
// compressed both ways; one whose dialer does not sends and gets text only.
func TestSync_CompressesOnlyWhenTheDialerDoes(t *testing.T) {
	srv := testenv.MustStartServer(t)
	writer := srv.MustOpenClient("amal", client.Options{})
	for i := range 30 {
		mustPut(t, writer, "persons", fmt.Sprintf("p%d", i), map[string]any{
			"given_name": fmt.Sprintf("Amina %d", i), "family_name": "Haddad", "notes": "arrived by train; needs an interpreter"})
	}
	mustSync(t, writer)
	for _, compress := range []bool{true, false} {
		t.Run(fmt.Sprintf("compression %v", compress), func(t *testing.T) {
			var s sniffer
			c := testenv.MustOpenClientAt(t, t.TempDir()+"/r.db", client.Options{
				Server: srv.SyncURL(), Token: srv.Token("bruno"), Dialer: s.dialer(compress)})
			for i := range 10 {
				mustPut(t, c, "persons", fmt.Sprintf("q%d", i), map[string]any{
					"given_name": fmt.Sprintf("Olena %d", i), "family_name": "Kovalenko", "notes": "course B1 from March"})
			}
			mustSync(t, c)
			held := 0
			if err := c.List(context.Background(), "persons", func(string, json.RawMessage) error { held++; return nil }); err != nil || held < 40 {
				t.Fatalf("the replica holds %d persons (%v), want at least 40", held, err)
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			for _, dir := range []struct {
				name   string
				stream []byte
			}{{"from the server", s.read.Bytes()}, {"to the server", s.wrote.Bytes()}} {
				text, bin, deflated, err := frameKinds(dir.stream)
				if err != nil {
					t.Fatalf("%s: %v", dir.name, err)
				}
				if text == 0 {
					t.Errorf("%s: no text frames (the handshake is text)", dir.name)
				}
				if compress && bin == 0 {
					t.Errorf("%s: no binary frames, though the page and the push are over CompressMin", dir.name)
				}
				if compress && deflated > 1 { // the hello or the welcome, before zstd was agreed
					t.Errorf("%s: %d frames deflated: permessage-deflate stayed on beside zstd", dir.name, deflated)
				}
				if !compress && bin+deflated > 0 {
					t.Errorf("%s: %d binary and %d deflated frames without compression", dir.name, bin, deflated)
				}
			}
		})
	}
}
