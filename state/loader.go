package state

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/churnflow/churnflow/operators"
)

// Loader replaces a partition's state with one read from elsewhere (the
// pipeline's changelog topic): member states in any order, a member any
// number of times (the last state wins), dedup markers, and finally the
// input offsets. It writes through a Badger WriteBatch, far faster than
// batches of read-modify-writes, and builds the timers index once at the
// end from the states that won.
//
// Crash safety: NewLoader drops the partition, and the offsets are written
// only by Finish, after everything else. A partition left half-loaded by a
// crash therefore has no offsets; the pipeline sees a state that does not
// match its changelog and loads it again.
//
// The partition's worker must not write it while a Loader is open.
type Loader struct {
	ps      *PartitionStore
	wb      *badger.WriteBatch
	kb, vb  []byte
	scratch operators.MemberState
	members int64
	markers int64
	done    bool
}

// NewLoader drops partition p's state (see DropPartition) and returns a
// Loader for it.
func (ps *PartitionStore) NewLoader(ctx context.Context) (*Loader, error) {
	if err := ps.s.DropPartition(ctx, ps.p); err != nil {
		return nil, err
	}
	if !ps.s.enter() {
		return nil, ErrClosed
	}
	defer ps.s.leave()
	return &Loader{ps: ps, wb: ps.s.db.NewWriteBatch()}, nil
}

// Member sets member id's state to the state encoding enc
// (operators.MemberState.AppendEncode), or deletes it when enc is nil. A
// corrupt encoding is an error (operators.ErrStateCorrupt or
// operators.ErrStateVersion): nothing is written for it.
func (l *Loader) Member(id operators.MemberID, enc []byte) error {
	if l.done {
		return ErrBatchDone
	}
	if id == "" {
		return fmt.Errorf("load partition %d: empty member id", l.ps.p)
	}
	l.kb = memberKey(l.kb[:0], l.ps.p, id)
	if enc == nil {
		return l.write(badger.NewEntry(l.kb, nil), true)
	}
	if err := operators.DecodeState(enc, &l.scratch); err != nil {
		return fmt.Errorf("load partition %d, member state: %w", l.ps.p, err)
	}
	// The value records its timer entry at the state's Due; Finish writes
	// the entry for the value that wins.
	l.vb = append(appendMemberVal(l.vb[:0], l.scratch.Due), enc...)
	l.members++
	return l.write(badger.NewEntry(l.kb, l.vb), false)
}

// Marker records eventID as applied, until expires (a marker already
// expired is skipped).
func (l *Loader) Marker(eventID string, expires time.Time) error {
	if l.done {
		return ErrBatchDone
	}
	ttl := expires.Sub(l.ps.s.now())
	if ttl < time.Second {
		return nil // Badger's TTLs have a granularity of one second
	}
	l.kb = dedupKey(l.kb[:0], l.ps.p, eventID)
	l.markers++
	return l.write(badger.NewEntry(l.kb, nil).WithTTL(ttl), false)
}

// write adds one entry; WriteBatch copies neither key nor value until
// flushed, so both are copied here.
func (l *Loader) write(e *badger.Entry, del bool) error {
	if !l.ps.s.enter() {
		return ErrClosed
	}
	defer l.ps.s.leave()
	if err := l.ps.s.checkDisk(); err != nil {
		return err
	}
	e.Key = append([]byte(nil), e.Key...)
	var err error
	if del {
		err = l.wb.Delete(e.Key)
	} else {
		if e.Value != nil {
			e.Value = append([]byte(nil), e.Value...)
		}
		err = l.wb.SetEntry(e)
	}
	if err != nil {
		return classify(fmt.Errorf("load partition %d: %w", l.ps.p, err))
	}
	return nil
}

// Finish flushes what was loaded, writes one timer entry per member with a
// Due, then the offsets (topic -> next offset to read) and the changelog
// position the loaded state stands at (see ChangelogOffset), and reports
// how many member states and dedup markers it wrote. The Loader is done
// after it, whatever it returns.
func (l *Loader) Finish(ctx context.Context, offsets map[string]int64, changelogNext int64) (members, markers int64, err error) {
	if l.done {
		return 0, 0, ErrBatchDone
	}
	l.done = true
	s := l.ps.s
	if !s.enter() {
		l.wb.Cancel()
		return 0, 0, ErrClosed
	}
	defer s.leave()
	if err := l.wb.Flush(); err != nil {
		return 0, 0, classify(fmt.Errorf("load partition %d: %w", l.ps.p, err))
	}
	if err := l.buildTimers(ctx); err != nil {
		return 0, 0, err
	}
	err = s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(changelogKey(nil, l.ps.p), binary.BigEndian.AppendUint64(nil, uint64(changelogNext))); err != nil {
			return err
		}
		for topic, next := range offsets {
			if err := txn.Set(offsetKey(nil, l.ps.p, topic), binary.BigEndian.AppendUint64(nil, uint64(next))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, classify(fmt.Errorf("load partition %d, offsets: %w", l.ps.p, err))
	}
	s.cache.dropPartition(l.ps.p)        // anything a reader cached while loading
	l.ps.st.seen.reset()                 // the markers loaded
	l.ps.st.lowerDueFloor(math.MinInt64) // the timers index rebuilt
	return l.members, l.markers, nil
}

// Abort drops the writes not yet flushed. What was flushed stays, without
// offsets: the partition is to be loaded again or dropped.
func (l *Loader) Abort() {
	if !l.done {
		l.done = true
		l.wb.Cancel()
	}
}

// buildTimers writes the timer entry every loaded member value records.
func (l *Loader) buildTimers(ctx context.Context) error {
	s := l.ps.s
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	prefix := appendPrefix(nil, kindMember, l.ps.p)
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			item := it.Item()
			var due int64
			err := item.Value(func(v []byte) error {
				idx, _, legacy, err := splitMemberVal(v)
				if legacy {
					return errors.New("untagged member value") // Member always tags
				}
				due = idx
				return err
			})
			if err != nil {
				return fmt.Errorf("member %q: %w", item.Key()[len(prefix):], err)
			}
			if due == 0 {
				continue
			}
			if err := wb.Set(timerKey(nil, l.ps.p, due, operators.MemberID(item.Key()[len(prefix):])), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = wb.Flush()
	}
	if err != nil {
		return classify(fmt.Errorf("load partition %d, timers index: %w", l.ps.p, err))
	}
	return nil
}
