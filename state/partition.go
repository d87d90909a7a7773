package state

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/churnflow/churnflow/operators"
)

// PartitionStore is the handle of one partition's state, from
// Store.Partition. Its reads see committed data only and may run from any
// goroutine; writes (NewBatch's Commit, Ack) come from the partition's one
// worker. Every method returns ErrClosed once the store is closed.
type PartitionStore struct {
	s  *Store
	p  Partition
	st *partState
}

// Partition returns the partition this handle stands for.
func (ps *PartitionStore) Partition() Partition { return ps.p }

// Get decodes the member's committed state into dst (reusing dst's slices)
// and reports whether the member has one. It reads the in-memory cache, and
// Badger for a member not held (then caches it), so a member read often
// costs a decode, with no allocation beyond the decode's. On false, dst is
// left untouched. An error is a Badger read error or a corrupt encoding
// (operators.ErrStateCorrupt, operators.ErrStateVersion).
func (ps *PartitionStore) Get(id operators.MemberID, dst *operators.MemberState) (bool, error) {
	prior, err := ps.Read(id, dst)
	return prior.Found, err
}

// Prior is what Read saw of a member's committed state, for the batch that
// updates the member (Batch.PutPrior, Batch.DeletePrior): whether it has
// one, its Due, and the due time of its timer entry, which the lazy index
// (see Batch) lets lag behind the Due. Handing the read's entry back saves
// Commit a second look-up of the member. The zero Prior is a member
// without state.
type Prior struct {
	Found bool
	// Due is the committed state's Due (0 if none).
	Due int64

	indexed      int64 // the timer entry's due time, when indexedKnown
	indexedKnown bool
}

// readPrior is the Prior of a member read into s, whose value records its
// timer entry at indexed.
func readPrior(s *operators.MemberState, indexed int64) Prior {
	return Prior{Found: true, Due: s.Due, indexed: indexed, indexedKnown: true}
}

// Read is Get that also returns what the batch updating the member needs
// of its committed state (Prior).
func (ps *PartitionStore) Read(id operators.MemberID, dst *operators.MemberState) (Prior, error) {
	if !ps.s.enter() {
		return Prior{}, ErrClosed
	}
	defer ps.s.leave()
	hit, epoch, indexed, err := ps.s.cache.get(ps.p, id, dst)
	if err != nil {
		return Prior{}, err
	}
	if hit {
		return readPrior(dst, indexed), nil
	}
	var kb [64]byte
	key := memberKey(kb[:0], ps.p, id)
	var prior Prior
	err = ps.s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			indexed, err := decodeMemberVal(v, dst)
			if err != nil {
				return err
			}
			prior = readPrior(dst, indexed)
			ps.s.cache.getFill(ps.p, id, v, epoch)
			return nil
		})
	})
	if err != nil {
		return Prior{}, classify(fmt.Errorf("get member of partition %d: %w", ps.p, err))
	}
	return prior, nil
}

// Offsets returns the next input offset to read per topic, as committed
// with the state. A topic never committed is absent.
func (ps *PartitionStore) Offsets() (map[string]int64, error) {
	if !ps.s.enter() {
		return nil, ErrClosed
	}
	defer ps.s.leave()
	out := map[string]int64{}
	prefix := appendPrefix(nil, kindOffset, ps.p)
	err := ps.s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 16})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			topic := string(it.Item().Key()[len(prefix):])
			err := it.Item().Value(func(v []byte) error {
				if len(v) != 8 {
					return fmt.Errorf("offset of topic %q: %d bytes", topic, len(v))
				}
				out[topic] = int64(binary.BigEndian.Uint64(v))
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, classify(fmt.Errorf("read offsets of partition %d: %w", ps.p, err))
	}
	return out, nil
}

// Due calls fn for each timer entry of the partition due strictly before
// `before`, in ascending (entry due, member) order, at most limit of them
// (limit <= 0: no limit). It is a range scan from the earliest entry (in
// fact from the partition's due floor, which no entry is earlier than):
// its cost grows with the entries visited, not with the members held
// (plus, until compaction, the deletion markers of entries moved in that
// range since the last scan).
//
// The timers index is lazy (see Batch): an entry may be earlier than the
// member's Due, never later, and every member with a non-zero Due has
// exactly one. So fn is called for every member whose committed Due is
// before `before`, and may also be called for members whose Due is later
// (with the entry's due time, not the member's). Callers must treat a
// report as "may be due": read the member, call Engine.Advance (which does
// nothing before its Due) and Put it back; that Put, in a batch committed
// after this call, moves a stale entry to the member's Due, so a member is
// reported early at most once per entry. Due raises the partition's due
// mark to `before` (used by that Put), even if it fails.
// It stops at and returns fn's error, or ctx's when ctx ends. fn sees the
// timers committed when Due started; it may call Get and read other
// partitions, and should not commit this partition's batches (collect the
// members, then apply and commit).
func (ps *PartitionStore) Due(ctx context.Context, before int64, limit int, fn func(id operators.MemberID, due int64) error) error {
	if !ps.s.enter() {
		return ErrClosed
	}
	defer ps.s.leave()
	// Raise the due mark first: a member this scan reports and the caller
	// puts back must have its entry moved to its Due (Batch.nextIndexed).
	for cur := ps.st.dueMark.Load(); before > cur && !ps.st.dueMark.CompareAndSwap(cur, before); cur = ps.st.dueMark.Load() {
	}
	prefix := appendPrefix(nil, kindTimer, ps.p)
	end := timerBound(nil, ps.p, before)
	floor := ps.st.dueFloor.Load()
	n := 0
	first, complete := int64(0), false
	err := ps.s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Seek(timerBound(nil, ps.p, floor)); it.Valid(); it.Next() {
			key := it.Item().Key()
			if string(key) >= string(end) {
				complete = true
				return nil
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			due, member, ok := parseTimer(key[len(prefix):])
			if !ok {
				continue
			}
			if n == 0 {
				first = due
			}
			if err := fn(operators.MemberID(member), due); err != nil {
				return err
			}
			if n++; limit > 0 && n >= limit {
				return nil
			}
		}
		complete = true
		return nil
	})
	// Nothing is earlier than the first entry reported, or than before
	// when a complete scan reported none.
	switch {
	case n > 0:
		ps.st.raiseDueFloor(floor, first)
	case err == nil && complete:
		ps.st.raiseDueFloor(floor, before)
	}
	if err != nil {
		return classify(fmt.Errorf("scan timers of partition %d: %w", ps.p, err))
	}
	return nil
}

// Outbox calls fn for each committed, unacknowledged outbox record in
// ascending seq order. The record's slices are fresh for each call: fn may
// keep them. It stops at and returns fn's error, or ctx's when ctx ends.
//
// Entries are in key order (their first seq) but a packed entry's records
// are not contiguous when a batch was split over transactions (its parts'
// records interleave): records are held until no later entry can hold a
// smaller seq, which bounds what is held to one batch's records.
func (ps *PartitionStore) Outbox(ctx context.Context, fn func(seq uint64, rec OutboxRecord) error) error {
	if !ps.s.enter() {
		return ErrClosed
	}
	defer ps.s.leave()
	type held struct {
		seq uint64
		rec OutboxRecord
	}
	var hold []held
	emit := func(below uint64) error {
		slices.SortFunc(hold, func(a, b held) int { return cmp.Compare(a.seq, b.seq) })
		n := 0
		for n < len(hold) && hold[n].seq < below {
			if err := fn(hold[n].seq, hold[n].rec); err != nil {
				return err
			}
			n++
		}
		hold = slices.Delete(hold, 0, n)
		return nil
	}
	prefix := appendPrefix(nil, kindOutbox, ps.p)
	err := ps.s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			key := it.Item().Key()
			if len(key) != len(prefix)+8 {
				continue
			}
			first := binary.BigEndian.Uint64(key[len(prefix):])
			if err := emit(first); err != nil {
				return err
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			var recs []held
			err = decodeOutboxValue(first, v, func(seq uint64, rec OutboxRecord) error {
				recs = append(recs, held{seq, rec})
				return nil
			})
			if err != nil {
				return err
			}
			if len(recs) > 1 {
				seqs := make([]uint64, len(recs))
				for i := range recs {
					seqs[i] = recs[i].seq
				}
				ps.st.outbox.add(first, seqs)
			}
			for _, r := range recs {
				if ps.st.outbox.pending(first, r.seq) { // not acknowledged in this process
					hold = append(hold, r)
				}
			}
		}
		return emit(math.MaxUint64)
	})
	if err != nil {
		return classify(fmt.Errorf("read outbox of partition %d: %w", ps.p, err))
	}
	return nil
}

// Ack deletes acknowledged outbox records. Acknowledging a seq twice, or
// one never written, is harmless. Large acknowledgements are split over
// several transactions (a crash between them leaves some acknowledged
// records, which are sent again: at least once).
func (ps *PartitionStore) Ack(seqs ...uint64) error {
	return ps.ack("ack outbox", nil, seqs)
}

// AckChangelog records ChangelogOffset next (as SetChangelogOffset) and
// deletes acknowledged outbox records (as Ack) in one transaction: the
// changelog's records among them were written below next. If the records
// need several transactions, the offset goes in the first, so a crash
// between them sends some records again rather than restoring for nothing.
func (ps *PartitionStore) AckChangelog(next int64, seqs ...uint64) error {
	return ps.ack("ack outbox and set changelog offset", ps.changelogOffset(next), seqs)
}

// changelogOffset is the record of ChangelogOffset next.
func (ps *PartitionStore) changelogOffset(next int64) *kv {
	return &kv{changelogKey(nil, ps.p), binary.BigEndian.AppendUint64(nil, uint64(next))}
}

// ack deletes acknowledged outbox records, setting first (if not nil) in
// the first transaction; what names the operation in its error.
func (ps *PartitionStore) ack(what string, first *kv, seqs []uint64) error {
	if !ps.s.enter() {
		return ErrClosed
	}
	defer ps.s.leave()
	if len(seqs) == 0 && first == nil {
		return nil
	}
	if err := ps.s.checkDisk(); err != nil {
		return err
	}
	seqs = ps.st.outbox.ack(seqs)
	if len(seqs) == 0 && first == nil {
		return nil
	}
	keys := make([][]byte, len(seqs))
	buf := make([]byte, 0, len(seqs)*(len(appendPrefix(nil, kindOutbox, ps.p))+8))
	for i, seq := range seqs {
		start := len(buf)
		buf = outboxKey(buf, ps.p, seq)
		keys[i] = buf[start:len(buf):len(buf)]
	}
	if err := ps.s.deleteKeys(first, keys); err != nil {
		return classify(fmt.Errorf("%s of partition %d: %w", what, ps.p, err))
	}
	return nil
}

// Range calls fn for every member state of the partition, in member-id
// byte order, read from Badger (for restore and inspection). s is reused
// between calls: fn must copy what it keeps. It stops at and returns fn's
// error, or ctx's when ctx ends.
func (ps *PartitionStore) Range(ctx context.Context, fn func(id operators.MemberID, s *operators.MemberState) error) error {
	if !ps.s.enter() {
		return ErrClosed
	}
	defer ps.s.leave()
	txn := ps.s.db.NewTransaction(false)
	defer txn.Discard()
	return ps.rangeMembers(ctx, txn, nil, fn)
}

// MemberScan reads a partition's member states from the snapshot taken by
// ScanMembers, loading them into the member cache. Its Range may run in
// another goroutine while the partition's batches commit: a member a
// commit changes after the snapshot is not cached from the scan.
type MemberScan struct {
	ps   *PartitionStore
	txn  *badger.Txn
	gen  uint32
	once sync.Once
}

// ScanMembers takes a snapshot of the partition's member states for a
// MemberScan. A worker calls it on assignment, where the scan reads every
// state anyway to count the members, so that the events after a restart
// find their members in memory instead of reading Badger one member at a
// time (17-28 µs CPU each, and a page fault where the table's page is not
// resident). The scan holds the store open (Close waits for it): the
// caller must Close it.
func (ps *PartitionStore) ScanMembers() (*MemberScan, error) {
	if !ps.s.enter() {
		return nil, ErrClosed
	}
	gen := ps.s.cache.beginScan(ps.p) // before the snapshot
	return &MemberScan{ps: ps, txn: ps.s.db.NewTransaction(false), gen: gen}, nil
}

// Range calls fn for every member state of the snapshot, in member-id byte
// order, and caches each (as many as the cache holds: when the partition's
// states outgrow it, the cache keeps the last ones read). s is reused
// between calls: fn must copy what it keeps. It stops at and returns fn's
// error, or ctx's when ctx ends. Call it once.
func (sc *MemberScan) Range(ctx context.Context, fn func(id operators.MemberID, s *operators.MemberState) error) error {
	ps := sc.ps
	return ps.rangeMembers(ctx, sc.txn, func(id operators.MemberID, v []byte) {
		ps.s.cache.fillScan(ps.p, id, v, sc.gen)
	}, fn)
}

// Close ends the scan and releases its snapshot. It is idempotent.
func (sc *MemberScan) Close() {
	sc.once.Do(func() {
		sc.txn.Discard()
		sc.ps.s.cache.endScan()
		sc.ps.s.leave()
	})
}

// rangeMembers calls fill (when not nil) with each member's value and fn
// with its state, from txn's snapshot.
func (ps *PartitionStore) rangeMembers(ctx context.Context, txn *badger.Txn, fill func(operators.MemberID, []byte),
	fn func(id operators.MemberID, s *operators.MemberState) error) error {
	prefix := appendPrefix(nil, kindMember, ps.p)
	var st operators.MemberState
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 100})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		id := operators.MemberID(it.Item().Key()[len(prefix):])
		err := it.Item().Value(func(v []byte) error {
			if _, err := decodeMemberVal(v, &st); err != nil {
				return fmt.Errorf("member state: %w", err)
			}
			if fill != nil {
				fill(id, v)
			}
			return nil
		})
		if err == nil {
			err = fn(id, &st)
		}
		if err != nil {
			return classify(fmt.Errorf("range members of partition %d: %w", ps.p, err))
		}
	}
	return nil
}

// ChangelogOffset returns the changelog's next offset after the last
// record this partition's state was written to or loaded from (the
// pipeline's changelog topic), and whether one was recorded.
func (ps *PartitionStore) ChangelogOffset() (next int64, ok bool, err error) {
	if !ps.s.enter() {
		return 0, false, ErrClosed
	}
	defer ps.s.leave()
	err = ps.s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(changelogKey(nil, ps.p))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("changelog offset: %d bytes", len(v))
			}
			next, ok = int64(binary.BigEndian.Uint64(v)), true
			return nil
		})
	})
	if err != nil {
		return 0, false, classify(fmt.Errorf("read changelog offset of partition %d: %w", ps.p, err))
	}
	return next, ok, nil
}

// SetChangelogOffset records ChangelogOffset: how far the changelog holds
// this partition's state, once a write to it was acknowledged.
func (ps *PartitionStore) SetChangelogOffset(next int64) error {
	return ps.ack("set changelog offset", ps.changelogOffset(next), nil)
}

// raiseDueFloor sets the due floor to to, if it is still from (a commit
// that inserted an entry since lowered it: then it stays) and to is later.
func (st *partState) raiseDueFloor(from, to int64) {
	if to > from {
		st.dueFloor.CompareAndSwap(from, to)
	}
}

// lowerDueFloor lowers the due floor to due if it is later; call it once
// an entry at due is visible to new transactions.
func (st *partState) lowerDueFloor(due int64) {
	for cur := st.dueFloor.Load(); due < cur && !st.dueFloor.CompareAndSwap(cur, due); cur = st.dueFloor.Load() {
	}
}
