package store

import (
	"sync/atomic"
	"time"

	"github.com/ponte-project/ponte/server/scope"
	"github.com/ponte-project/ponte/syncproto"
)

// judged is what a write's intent says before it is applied: the scopes a
// new record would be in, and the schema's verdict on a put.
type judged struct {
	keys []string // scope.Keys of the intent
	err  error    // the schema's verdict; nil if it passes or no schema
}

// ahead judges the puts of a batch on another goroutine while apply works
// through the mutations before them: the schema check was a fifth of the
// serial loop's time, and needs no database. Only a put that is the batch's
// first write to its record is judged ahead, because only its intent is
// known before the loop: that of a later write depends on the earlier
// ones. Verdicts come in batch order on a channel the apply loop reads in
// the same order, so no lock is needed.
type ahead struct {
	eligible []bool
	verdicts chan judged
	stop     atomic.Bool
}

// judgeAhead starts judging the eligible puts of muts against the states
// in recs; invalid holds each mutation's Validate error. The judge only
// reads the mutations: the caller may change their stamps meanwhile, not
// their data. The caller must call get for each index in order, and close.
func (s *Store) judgeAhead(muts []syncproto.Mutation, invalid []error, recs map[recordKey]current, applied map[string]appliedAt, physical time.Time) *ahead {
	a := &ahead{eligible: make([]bool, len(muts))}
	seen := make(map[recordKey]bool, len(muts))
	n := 0
	for i := range muts {
		m := &muts[i]
		key := recordKey{m.Collection, m.Record}
		if seen[key] {
			continue
		}
		seen[key] = true
		if _, dup := applied[m.ID]; !dup && invalid[i] == nil && m.Op == syncproto.OpPut {
			a.eligible[i] = true
			n++
		}
	}
	// The loop updates recs as it goes: the judge gets its own list.
	states := make([]syncproto.Record, len(muts))
	for i, ok := range a.eligible {
		if ok {
			states[i] = recs[recordKey{muts[i].Collection, muts[i].Record}].rec
		}
	}
	a.verdicts = make(chan judged, n) // never blocks the judge
	go func() {
		for i, ok := range a.eligible {
			if !ok {
				continue
			}
			if a.stop.Load() {
				return
			}
			a.verdicts <- s.judge(&muts[i], states[i], physical)
		}
	}()
	return a
}

// get returns the verdict on mutation i, if it was judged ahead.
func (a *ahead) get(i int) (judged, bool) {
	if !a.eligible[i] {
		return judged{}, false
	}
	return <-a.verdicts, true
}

// close tells the judge its remaining verdicts are not needed.
func (a *ahead) close() { a.stop.Store(true) }

// judge judges a write on the record cur. A delete has no intent: its
// keys are those its record's id alone gives (a course's own scope).
func (s *Store) judge(m *syncproto.Mutation, cur syncproto.Record, physical time.Time) judged {
	intent := syncproto.Intent(cur, m)
	j := judged{keys: scope.Keys(m.Collection, m.Record, intent)}
	if s.schema != nil && m.Op == syncproto.OpPut {
		j.err = s.schema.Check(m.Collection, m.Record, intent, physical)
	}
	return j
}
