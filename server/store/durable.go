package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// A pushed batch commits with synchronous=NORMAL: its WAL frames are
// written, not yet fsynced, and the writer goes on to the next batch while
// the syncer fsyncs the WAL. Nothing a commit holds is told to any device
// before that fsync returns: its results wait (Applied.Wait), its changes
// are broadcast only then (OnCommit), and pulls and welcomes read only what
// is durable. Waiting for the fsync inside COMMIT held the write lock
// ~35 ms per 8000 mutations, a tenth of the time a push took.
//
// Commits are counted, not only numbered by sequence: a batch whose every
// write lost to newer ones moves no sequence number, yet its log and
// conflict rows must reach the disk before it is answered. Any fsync of
// the file makes every frame written before it durable, so one fsync
// covers all the commits made while the previous one ran.
type syncer struct {
	fsync    func() error
	onCommit func([]Committed)

	mu       sync.Mutex
	commits  uint64        // commits recorded
	seq      int64         // highest sequence committed
	queue    [][]Committed // changes of commits not yet durable, in commit order
	synced   uint64        // commits durable
	syncedCh chan struct{} // closed, and replaced, whenever a sync ends
	err      error         // the first failed fsync: nothing is durable after it
	durable  atomic.Int64  // highest sequence durable; read without mu
	// announced is the highest sequence broadcast (OnCommit called), at
	// most durable. Pulls read up to it: a pull that read a commit before
	// its broadcast would let a session going live get it twice. Welcomes
	// say durable: a device may hold a broadcast seq, never one beyond it.
	announced atomic.Int64

	wake     chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

func newSyncer(fsync func() error, seq int64, onCommit func([]Committed)) *syncer {
	y := &syncer{fsync: fsync, onCommit: onCommit, seq: seq, syncedCh: make(chan struct{}),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	y.durable.Store(seq)
	y.announced.Store(seq)
	go y.run()
	return y
}

// commit records a commit that left the sequence at seq, with its changes,
// and returns its number, for wait.
func (y *syncer) commit(seq int64, changes []Committed) uint64 {
	y.mu.Lock()
	y.commits++
	n := y.commits
	y.seq = max(y.seq, seq)
	if len(changes) > 0 {
		y.queue = append(y.queue, changes)
	}
	y.mu.Unlock()
	select {
	case y.wake <- struct{}{}:
	default: // a sync is due already
	}
	return n
}

// failed returns the error of a failed fsync, if one failed.
func (y *syncer) failed() error {
	y.mu.Lock()
	defer y.mu.Unlock()
	return y.err
}

// waitCommit returns once commit n is durable, or the error that stops it
// ever being.
func (y *syncer) waitCommit(ctx context.Context, n uint64) error {
	return y.waitFor(ctx, func() bool { return y.synced >= n })
}

// waitAnnounced returns once every commit up to sequence seq is durable
// and broadcast.
func (y *syncer) waitAnnounced(ctx context.Context, seq int64) error {
	return y.waitFor(ctx, func() bool { return y.announced.Load() >= seq })
}

func (y *syncer) waitFor(ctx context.Context, done func() bool) error {
	for {
		y.mu.Lock()
		ok, err, ch := done(), y.err, y.syncedCh
		y.mu.Unlock()
		switch {
		case ok:
			return nil
		case err != nil:
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for the commit to reach the disk: %w", context.Cause(ctx))
		}
	}
}

func (y *syncer) run() {
	defer close(y.done)
	for {
		select {
		case <-y.wake:
		case <-y.stop:
			y.sync() // what the last commits left
			return
		}
		y.sync()
	}
}

func (y *syncer) sync() {
	y.mu.Lock()
	commits, seq, queue := y.commits, y.seq, y.queue
	y.queue = nil
	due := y.err == nil && commits > y.synced
	y.mu.Unlock()
	if !due {
		return
	}
	err := y.fsync()
	y.mu.Lock()
	if err != nil {
		y.err = fmt.Errorf("sync the write-ahead log: %w", err)
	} else {
		y.synced = commits // their results may go
		y.durable.Store(seq)
	}
	y.notify()
	y.mu.Unlock()
	if err != nil {
		return
	}
	if y.onCommit != nil {
		for _, changes := range queue {
			y.onCommit(changes)
		}
	}
	y.mu.Lock()
	y.announced.Store(seq)
	y.notify()
	y.mu.Unlock()
}

// notify wakes the waiters; y.mu is held.
func (y *syncer) notify() {
	close(y.syncedCh)
	y.syncedCh = make(chan struct{})
}

// close syncs what is committed and stops the syncer.
func (y *syncer) close() {
	y.stopOnce.Do(func() { close(y.stop) })
	<-y.done
}
