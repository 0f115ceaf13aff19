package server

import (
	"log/slog"
	"sync"

	"github.com/gorilla/websocket"

	"github.com/ponte-project/ponte/syncproto"
)

// Hub fans committed changes out to live sessions. The store calls Broadcast
// after each commit, in commit order, under its write lock; a session goes
// live under the hub's lock only when no broadcast happened after the snapshot
// its last page was read from. Together these guarantee a live session gets
// every change after its cursor exactly once, in order (DESIGN.md).
type Hub struct {
	log      *slog.Logger
	mu       sync.Mutex
	sessions map[*session]struct{}
	last     int64 // sequence of the latest broadcast change
}

// NewHub returns an empty hub; last is the store's current sequence.
func NewHub(log *slog.Logger, last int64) *Hub {
	return &Hub{log: log, sessions: make(map[*session]struct{}), last: last}
}

// Broadcast sends changes to every live session whose cursor is behind them.
// It never blocks: a session whose send queue is full is disconnected as a
// slow consumer and catches up by pulling when it reconnects. Changes are
// sent in messages of at most about syncproto.MaxPageBytes each.
func (h *Hub) Broadcast(changes []syncproto.Change) {
	if len(changes) == 0 {
		return
	}
	chunks := splitChanges(changes)
	seq := changes[len(changes)-1].Seq
	h.mu.Lock()
	defer h.mu.Unlock()
	h.last = max(h.last, seq)
	prepared := make([]*websocket.PreparedMessage, len(chunks))
	for s := range h.sessions {
		if !s.live || s.cursor >= seq {
			continue
		}
		for i, chunk := range chunks {
			if prepared[i] == nil {
				p, err := prepare(chunk)
				if err != nil { // a bug: live sessions would miss this commit, so end them
					h.log.Error("broadcast: encode", "err", err)
					for s := range h.sessions {
						s.kill(syncproto.CodeInternal)
					}
					return
				}
				prepared[i] = p
			}
			s.enqueue(outbound{prepared: prepared[i]})
		}
		s.cursor = seq
	}
}

// splitChanges cuts changes into runs that each fit a page.
func splitChanges(changes []syncproto.Change) [][]syncproto.Change {
	var chunks [][]syncproto.Change
	start, size := 0, 0
	for i, c := range changes {
		n := len(c.Data) + len(c.Stamps) + len(c.ID) + 64
		if i > start && size+n > syncproto.MaxPageBytes {
			chunks = append(chunks, changes[start:i])
			start, size = i, 0
		}
		size += n
	}
	return append(chunks, changes[start:])
}

func prepare(changes []syncproto.Change) (*websocket.PreparedMessage, error) {
	b, err := syncproto.Encode(&syncproto.Message{Type: syncproto.TypeChanges, Page: &syncproto.Page{
		Changes: changes, Cursors: map[string]int64{scopeAll: changes[len(changes)-1].Seq}}})
	if err != nil {
		return nil, err
	}
	return websocket.NewPreparedMessage(websocket.TextMessage, b)
}

func (h *Hub) add(s *session) {
	h.mu.Lock()
	h.sessions[s] = struct{}{}
	h.mu.Unlock()
}

func (h *Hub) remove(s *session) {
	h.mu.Lock()
	delete(h.sessions, s)
	h.mu.Unlock()
}

// finishPull sends the last page of a catch-up and makes the session live,
// unless a commit was broadcast after the page's snapshot: then the page is
// sent with More set, the session is not live, and finishPull reports false.
// The page is encoded before the hub is locked: commits wait for the lock.
func (h *Hub) finishPull(s *session, re uint64, page *syncproto.Page) bool {
	msg := &syncproto.Message{Type: syncproto.TypePage, Re: re, Page: page}
	b, err := syncproto.Encode(msg)
	if err != nil {
		s.log.Error("encode page", "err", err)
		s.kill(syncproto.CodeInternal)
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	cursor := page.Cursors[scopeAll]
	if h.last > cursor {
		page.More = true
		s.live = false
		s.send(msg) // rare: re-encoded with More
		return false
	}
	s.live, s.cursor = true, cursor
	s.enqueue(outbound{data: b})
	return true
}

// Live returns the number of live sessions.
func (h *Hub) Live() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for s := range h.sessions {
		if s.live {
			n++
		}
	}
	return n
}

func (h *Hub) all() []*session {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*session, 0, len(h.sessions))
	for s := range h.sessions {
		out = append(out, s)
	}
	return out
}
