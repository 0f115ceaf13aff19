package server

import (
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/gorilla/websocket"

	"github.com/ponte-project/ponte/server/scope"
	"github.com/ponte-project/ponte/server/store"
	"github.com/ponte-project/ponte/syncproto"
)

// Hub fans committed changes out to live sessions. The store calls Broadcast
// once each commit is durable, in commit order, from its syncer; a session goes
// live under the hub's lock only when no broadcast happened after the snapshot
// its last page was read from. Together these guarantee a live session gets
// every change after its cursor exactly once, in order (DESIGN.md).
type Hub struct {
	log      *slog.Logger
	mu       sync.Mutex
	sessions map[*session]struct{}
	last     int64                      // sequence of the latest broadcast change
	watchers map[chan struct{}]struct{} // told of each commit (web pages)
}

// NewHub returns an empty hub; last is the store's current sequence.
func NewHub(log *slog.Logger, last int64) *Hub {
	return &Hub{log: log, sessions: make(map[*session]struct{}), last: last, watchers: map[chan struct{}]struct{}{}}
}

// Subscribe returns a channel that receives after each commit (a burst of
// commits may arrive as one), and a function that ends the subscription.
func (h *Hub) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	h.watchers[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.watchers, ch)
		h.mu.Unlock()
	}
}

// Broadcast sends committed changes to every live session whose cursor is
// behind them, each session what its scopes let it see: sessions holding
// "all" every record change (one encoding shared by all of them), others
// the records in their scopes, with their names only through a register,
// and gone for records that left their scopes. It never blocks: a session
// whose send queue is full is disconnected as a slow consumer and catches
// up by pulling when it reconnects. Messages hold at most about
// syncproto.MaxPageBytes each.
func (h *Hub) Broadcast(committed []store.Committed) {
	if len(committed) == 0 {
		return
	}
	seq := committed[len(committed)-1].Seq
	h.mu.Lock()
	defer h.mu.Unlock()
	h.last = max(h.last, seq)
	for w := range h.watchers {
		select {
		case w <- struct{}{}:
		default: // already told
		}
	}
	// One encoding per distinct set of scopes and compression: every
	// coordinator shares one, every mediator of the same sites another.
	encoded := map[string][]*websocket.PreparedMessage{}
	for s := range h.sessions {
		if !s.live || s.cursor >= seq {
			continue
		}
		key := strings.Join(s.actor.Scopes, " ")
		if s.zstd {
			key += " " + syncproto.CompressionZstd // no scope has a space
		}
		msgs, ok := encoded[key]
		if !ok {
			var err error
			if msgs, err = prepareFor(s.actor.Scopes, committed, seq, s.zstd); err != nil { // a bug: live sessions would miss this commit, so end them
				h.log.Error("broadcast: encode", "err", err)
				for s := range h.sessions {
					s.kill(syncproto.CodeInternal)
				}
				return
			}
			encoded[key] = msgs
		}
		for _, m := range msgs {
			s.enqueue(outbound{prepared: m})
		}
		s.cursor = seq
	}
}

// prepareFor encodes what a holder of scopes sees of committed, up to seq:
// nothing if none of it is theirs (their cursors lag until they next pull,
// which then finds nothing new). With zstd, frames from CompressMin bytes
// up are compressed.
func prepareFor(held []string, committed []store.Committed, seq int64, zstd bool) ([]*websocket.PreparedMessage, error) {
	all := slices.Contains(held, scope.All)
	changes := make([]syncproto.Change, 0, len(committed))
	for _, c := range committed {
		switch seen := scope.Visible(held, c.Scopes); {
		case all && c.Derived:
			// a coordinator holds the person already
		case all:
			changes = append(changes, c.Change)
		case len(seen) > 0:
			ch, err := scope.Show(c.Change, seen)
			if err != nil {
				return nil, err
			}
			changes = append(changes, ch)
		case len(scope.Visible(held, c.Left)) > 0:
			changes = append(changes, syncproto.Change{Collection: c.Collection, ID: c.ID, Seq: c.Seq, Gone: true})
		}
	}
	if len(changes) == 0 {
		return nil, nil
	}
	cursors := make(map[string]int64, len(held))
	for _, k := range held {
		cursors[k] = seq
	}
	var out []*websocket.PreparedMessage
	for _, chunk := range splitChanges(changes) {
		b, err := syncproto.Encode(&syncproto.Message{Type: syncproto.TypeChanges,
			Page: &syncproto.Page{Changes: chunk, Cursors: cursors}})
		if err != nil {
			return nil, err
		}
		b, compressed, err := syncproto.Pack(b, zstd)
		if err != nil {
			return nil, err
		}
		typ := websocket.TextMessage
		if compressed {
			typ = websocket.BinaryMessage
		}
		m, err := websocket.NewPreparedMessage(typ, b)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
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
	cursor := h.last // a holder of no scopes has nothing to catch up on
	for _, k := range s.actor.Scopes {
		cursor = min(cursor, page.Cursors[k])
	}
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

// LiveDevices returns the ids of the devices connected now.
func (h *Hub) LiveDevices() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.sessions))
	for s := range h.sessions {
		out = append(out, s.actor.Device)
	}
	return out
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
