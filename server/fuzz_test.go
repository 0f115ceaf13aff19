package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/ponte-project/ponte/internal/testenv"
	"github.com/ponte-project/ponte/server"
	"github.com/ponte-project/ponte/syncproto"
)

// FuzzHandshake sends the real server, over a real websocket, a first
// frame of any content: it must answer a welcome or a fatal error, never
// hang or fall over, and only a valid token may get in.
func FuzzHandshake(f *testing.F) {
	node := "0123456789abcdef0123456789abcdef"
	for _, seed := range []string{
		`{"type":"hello","hello":{"protocol":1,"device":"` + node + `","token":"TOKEN"}}`,
		`{"type":"hello","hello":{"protocol":1,"device":"` + node + `","enrol":"AAAA-BBBB-CCCC"}}`,
		`{"type":"hello","hello":{"protocol":1,"device":"` + node + `","token":"TOKEN","enrol":"AAAA"}}`,
		`{"type":"hello","hello":{"protocol":2,"device":"` + node + `","token":"x"}}`,
		`{"type":"hello","hello":{"protocol":1,"device":"../../etc","token":"x","lang":"ar"}}`,
		`{"type":"hello","re":1,"hello":{"protocol":1,"device":"` + node + `","token":"x","cursors":{"all":-1}}}`,
		`{"type":"ping","ping":{"time":1}}`, `{"type":"hello"}`, `null`, `[]`, "\xff\xfe", ``,
	} {
		f.Add(seed)
	}
	srv := testenv.MustStartServerAt(f, f.TempDir()+"/s.db", server.Config{Options: server.Options{
		HelloTimeout: 2 * time.Second, RefusalRate: 1e6, RefusalBurst: 1e6}})
	token := srv.Token("fuzz")
	f.Fuzz(func(t *testing.T, frame string) {
		frame = strings.ReplaceAll(frame, "TOKEN", token)
		ws, _, err := websocket.DefaultDialer.Dial(srv.SyncURL(), nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer ws.Close()
		if err := ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
			t.Fatalf("write: %v", err)
		}
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, answer, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("no answer to %q: %v", frame, err)
		}
		m, err := syncproto.Decode(answer)
		if err != nil {
			t.Fatalf("answer %q does not decode: %v", answer, err)
		}
		switch {
		case m.Type == syncproto.TypeWelcome:
			if !strings.Contains(frame, token) {
				t.Fatalf("welcome without the token, for %q", frame)
			}
		case m.Type == syncproto.TypeError:
			if !m.Error.Fatal || m.Error.Message == "" {
				t.Fatalf("error %+v: want fatal, with a message", m.Error)
			}
		default:
			t.Fatalf("answered %q with %s", frame, m.Type)
		}
	})
}
