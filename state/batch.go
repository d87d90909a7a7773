package state

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync/atomic"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/churnflow/churnflow/operators"
)

// Batch collects one batch of a partition's changes: member states, timer
// changes, dedup markers, outbox records and input offsets, and commits them
// together. It is used by one goroutine (the partition's worker) and once:
// after Commit or Discard it must not be used again.
//
// The Batch copies what it is given (states are encoded, records encoded
// and event ids kept as strings) so the caller may reuse its values.
//
// # Commit protocol
//
// Commit writes the batch in one Badger transaction when it fits Badger's
// limit (15 % of the memtable size). When it does not, it splits the batch
// by member group: everything of one member (its state put or delete, its
// timer entry's move, its dedup markers, its outbox records) always
// goes in the same transaction, and the input offsets go in the last one,
// with the records tied to no member (dead letters) as far as they fit.
//
// Why a split is safe: after a crash between two transactions, the offsets
// have not advanced, so the worker reads the same input again. The events
// whose member groups were committed are recognised by their dedup markers
// (committed in the same transaction as the state they changed) and
// skipped, so no state is applied twice; the other members' events are
// applied as if for the first time. Timer firings repeat harmlessly: the
// fired timer was deleted in the same transaction as the state it changed,
// and Engine.Advance does nothing for a member whose clock is past the due
// time. So state is never applied twice and offsets never run ahead of the
// state they describe. Outbox records are at least once anyway: a dead
// letter that spilled into an earlier transaction may be written again
// after such a crash.
//
// This holds only if the caller marks every event it applies with MarkSeen
// under the member it changed.
//
// # The lazy timers index
//
// Each member with a Due has exactly one timer entry, at a due time that
// may be EARLIER than its Due, never later; a member whose Due is 0 has
// none. The entry's due time is recorded in the member's value (see
// memberval.go), so the state, its entry and the record of it change in
// the same transaction. A Put moves the entry (delete the old key, insert
// the new) only when it must:
//
//   - the new Due is 0: the entry is deleted;
//   - the member has no entry, or the new Due is earlier than the entry:
//     the entry moves to the new Due;
//   - the entry is earlier than the largest `before` any Due scan of the
//     partition was given in this process (so a scan may have reported
//     it, and this Put may be the caller putting back a member that was
//     not due yet): the entry moves to the new Due;
//   - else the entry stays: it is earlier than the new Due and no scan has
//     reached it yet. The update writes one key instead of three.
//
// When a scan reaches a stale entry it reports the member early; the
// caller's Engine.Advance does nothing before the member's Due, and its
// Put moves the entry to the Due (third rule). So no member is reported
// late, none is missed, and a member is reported early at most once per
// entry. Delete deletes the entry wherever it is.
type Batch struct {
	ps     *PartitionStore
	done   bool
	arena  []byte // encoded states and records
	keys   []byte // the commit's keys and member values (plan)
	plain  []byte // a transaction's packed outbox records (Commit)
	packed []byte // and their compressed value

	groups  []group
	byID    map[operators.MemberID]int32
	marks   []mark
	recs    []pendingRec
	seen    map[string]struct{}
	offsets map[string]int64
	maxSeq  uint64
	mark    int64 // the partition's dueMark when Commit started
	// minInserted is the earliest timer entry the commit inserts
	// (math.MaxInt64: none), for the partition's due floor.
	minInserted int64
}

// group is one member's changes.
type group struct {
	id       operators.MemberID
	op       uint8 // opNone, opPut, opDelete
	off, n   int   // encoded state in arena (opPut)
	prior    Prior // the committed state as the caller read it, from the first Put/Delete
	newDue   int64
	hasPrior bool   // prior was set
	indexed  int64  // the committed timer entry's due (0: none), set by Commit
	val      []byte // the member value written (opPut), set by plan
}

const (
	opNone = iota
	opPut
	opDelete
)

type mark struct {
	g  int32
	id string
}

type pendingRec struct {
	g      int32
	seq    uint64
	off, n int
}

// NewBatch starts a batch of the partition's changes. It does no I/O.
func (ps *PartitionStore) NewBatch() *Batch {
	h := &ps.st.hint
	groups, marks, recs := grown(h.groups.Load()), grown(h.marks.Load()), grown(h.recs.Load())
	b := &Batch{
		ps:     ps,
		groups: make([]group, 0, groups),
		byID:   make(map[operators.MemberID]int32, groups),
		marks:  make([]mark, 0, marks),
		seen:   make(map[string]struct{}, marks),
		recs:   make([]pendingRec, 0, recs),
	}
	if a, ok := ps.st.buffers.Get().(*batchBuffers); ok {
		b.arena, b.keys, b.plain, b.packed = a.arena[:0], a.keys[:0], a.plain[:0], a.packed[:0]
	}
	return b
}

// batchHint is the size of the partition's last batch, which the next one
// allocates for: growing the slices and maps of groups, markers and
// records from nothing, doubling as they filled, allocated about twice
// their final size and was a tenth of what the pipeline allocated per
// event (churnflow bench). Nothing is kept from one batch to the next but
// these counts: kept buffers would stay live, and under the memory limit a
// larger live heap makes the collector run more often (measured, churnflow
// bench at 200,000 members: keeping this and the pipeline worker's
// buffers took 108-117 CPU s per million events against 70-78).
type batchHint struct{ groups, marks, recs atomic.Int32 }

// grown is a hint with an eighth added, so that a batch slightly larger
// than the last does not grow its slices.
func grown(n int32) int { return int(n) + int(n)/8 }

// remember records the batch's sizes for the partition's next batch.
func (b *Batch) remember() {
	h := &b.ps.st.hint
	h.groups.Store(int32(len(b.groups)))
	h.marks.Store(int32(len(b.marks)))
	h.recs.Store(int32(len(b.recs)))
}

// batchBuffers are a committed batch's arena, key buffer and packed
// outbox value (as built, and compressed), kept for the partition's next
// batch: a batch's arena grows
// to megabytes, and growing it afresh each time (copying it at every
// doubling) was a tenth of the pipeline's CPU time at 200,000 members
// (churnflow bench); the packed value, allocated per commit, was 6 % of the
// bytes the end-to-end phase allocated at 1,000,000 members. Buffers over
// maxPooledBuffer are dropped.
type batchBuffers struct{ arena, keys, plain, packed []byte }

const maxPooledBuffer = 16 << 20

func (b *Batch) group(id operators.MemberID) int32 {
	if i, ok := b.byID[id]; ok {
		return i
	}
	i := int32(len(b.groups))
	b.groups = append(b.groups, group{id: id})
	b.byID[id] = i
	return i
}

// Seen reports whether eventID was marked in this batch or is committed
// within the dedup horizon. An error is a Badger read error or ErrClosed.
func (b *Batch) Seen(eventID string) (bool, error) {
	if b.done {
		return false, ErrBatchDone
	}
	if _, ok := b.seen[eventID]; ok {
		return true, nil
	}
	s := b.ps.s
	if !s.enter() {
		return false, ErrClosed
	}
	defer s.leave()
	if !s.noFilter && !b.ps.st.seen.mayContain(b.ps, eventID) {
		return false, nil
	}
	var kb [64]byte
	key := dedupKey(kb[:0], b.ps.p, eventID)
	err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(key)
		return err
	})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, badger.ErrKeyNotFound):
		return false, nil
	}
	return false, classify(fmt.Errorf("read dedup marker of partition %d: %w", b.ps.p, err))
}

// MarkSeen records eventID as applied to member, in the member's group: the
// marker commits with the member's state (see the commit protocol) and
// expires after Options.DedupTTL.
func (b *Batch) MarkSeen(member operators.MemberID, eventID string) {
	if b.done {
		return
	}
	b.marks = append(b.marks, mark{g: b.group(member), id: eventID})
	b.seen[eventID] = struct{}{}
}

// Put sets the member's state. prevDue is the Due the member had when read
// (0 if none or new); it must be the committed Due, as Get returned it.
// The member's timer entry is moved to s.Due, or removed if s.Due is 0,
// when the lazy index needs it (see the Batch comment): Commit finds the
// current entry in the member's value (from the member cache, or Badger
// when the member is not held), unless prevDue is 0, which means there is
// none. Putting a member twice in a batch keeps the last state and the
// first prevDue. Put returns the state's encoding (AppendEncode), for a
// caller that needs it too (the pipeline's changelog); it must not be
// modified, and is nil after Commit or Discard.
func (b *Batch) Put(id operators.MemberID, s *operators.MemberState, prevDue int64) []byte {
	return b.PutPrior(id, s, Prior{Due: prevDue})
}

// PutPrior is Put given what PartitionStore.Read returned for the member
// (the committed state, read since the last commit of the partition):
// Commit then takes the member's timer entry from the read instead of
// looking it up again.
func (b *Batch) PutPrior(id operators.MemberID, s *operators.MemberState, prior Prior) []byte {
	if b.done {
		return nil
	}
	g := &b.groups[b.group(id)]
	if !g.hasPrior {
		g.prior, g.hasPrior = prior, true
	}
	g.op = opPut
	g.off = len(b.arena)
	b.arena = s.AppendEncode(b.arena)
	g.n = len(b.arena) - g.off
	g.newDue = s.Due
	return b.arena[g.off : g.off+g.n : g.off+g.n]
}

// Delete deletes the member's state and its timer entry. prevDue is the Due
// the member had when read (0 if none); as for Put, the entry itself is
// found in the member's value.
func (b *Batch) Delete(id operators.MemberID, prevDue int64) {
	b.DeletePrior(id, Prior{Due: prevDue})
}

// DeletePrior is Delete given what PartitionStore.Read returned for the
// member, as for PutPrior.
func (b *Batch) DeletePrior(id operators.MemberID, prior Prior) {
	if b.done {
		return
	}
	g := &b.groups[b.group(id)]
	if !g.hasPrior {
		g.prior, g.hasPrior = prior, true
	}
	g.op = opDelete
	g.newDue = 0
}

// Append adds an outbox record and returns its sequence number: the next
// of the partition, increasing across batches and restarts (with gaps
// where a batch was discarded). member ties the record to the member's
// group; "" for records tied to no member (dead letters).
func (b *Batch) Append(member operators.MemberID, rec OutboxRecord) uint64 {
	if b.done {
		return 0
	}
	seq := b.ps.st.nextSeq.Add(1) - 1
	off := len(b.arena)
	b.arena = appendRecord(b.arena, &rec)
	b.recs = append(b.recs, pendingRec{g: b.group(member), seq: seq, off: off, n: len(b.arena) - off})
	b.maxSeq = max(b.maxSeq, seq)
	return seq
}

// SetOffset sets the next input offset to read from topic (the last
// record's offset + 1). It commits in the batch's last transaction.
func (b *Batch) SetOffset(topic string, next int64) {
	if b.done {
		return
	}
	if b.offsets == nil {
		b.offsets = make(map[string]int64, 2)
	}
	b.offsets[topic] = next
}

// Discard drops the batch. Its outbox sequence numbers are not reused.
func (b *Batch) Discard() {
	if !b.done {
		b.remember()
		if max(cap(b.arena), cap(b.keys), cap(b.plain), cap(b.packed)) <= maxPooledBuffer {
			b.ps.st.buffers.Put(&batchBuffers{arena: b.arena[:0], keys: b.keys[:0], plain: b.plain[:0], packed: b.packed[:0]})
		}
	}
	b.done = true
	b.arena, b.keys, b.plain, b.packed = nil, nil, nil, nil
	b.groups, b.byID, b.marks, b.recs, b.seen, b.offsets = nil, nil, nil, nil, nil, nil
}

// kvOp is one write of a commit.
type kvOp struct {
	key, val []byte
	expires  uint64
	del      bool
	outbox   bool   // an outbox record (val its encoding), packed at commit
	seq      uint64 // the outbox record's seq
}

// unit is a run of ops that must commit together: one member group, one
// member-less record or marker, or the offsets.
type unit struct {
	lo, hi int
	g      int32 // the member group, -1 for none
	rec    bool  // holds an outbox record
	bytes  int64
	count  int64
}

type txnPart struct {
	lo, hi int // units
	rec    bool
}

// entrySize estimates what an entry costs against Badger's transaction
// limit, as Badger does (Entry.estimateSizeAndSetThreshold plus the 10
// bytes of version Txn.checkSize adds).
func entrySize(key, val []byte) int64 {
	v := int64(len(val))
	if v >= valueThreshold {
		v = 12
	}
	return int64(len(key)) + v + 2 + 10
}

// valueThreshold is Options.badgerOptions' ValueThreshold.
const valueThreshold = 64 * kib

// Commit writes the batch: in one Badger transaction if it fits, else
// split by member group with the offsets last (see the commit protocol in
// the Batch comment). On success the member cache holds the new states.
//
// ctx is checked once before writing: a commit once started finishes, as
// stopping between transactions would gain nothing. An error means the
// batch may be partly committed, by whole member groups, with the offsets
// not advanced: the worker must reload the partition (Offsets, then read
// the input again), as after a crash. Errors wrap ErrDiskFull when the
// disk is full, ErrBatchTooBig when a single member group exceeds the
// transaction limit, ErrClosed and ErrBatchDone.
func (b *Batch) Commit(ctx context.Context) error {
	if b.done {
		return ErrBatchDone
	}
	defer b.Discard()
	s, p := b.ps.s, b.ps.p
	if !s.enter() {
		return ErrClosed
	}
	defer s.leave()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("commit partition %d: %w", p, err)
	}
	if err := s.checkDisk(); err != nil {
		return err
	}
	if err := b.resolveIndexed(); err != nil {
		return classify(fmt.Errorf("commit partition %d: read timer index: %w", p, err))
	}
	b.mark = b.ps.st.dueMark.Load()
	b.minInserted = math.MaxInt64
	// After the transactions, committed or not (a split commit may have
	// written some): a lower floor than needed costs only a longer scan.
	defer func() { b.ps.st.lowerDueFloor(b.minInserted) }()
	ops, units := b.plan()
	if len(units) == 0 {
		return nil
	}
	parts, err := b.pack(units)
	if err != nil {
		return fmt.Errorf("commit partition %d: %w", p, err)
	}
	// Before the writes: a marker committed is always in the filter.
	b.ps.st.seen.add(b.marks)
	var seqVal [8]byte
	binary.BigEndian.PutUint64(seqVal[:], b.maxSeq+1)
	sk := seqKey(nil, p)
	var (
		packSeqs = make([]uint64, 0, len(b.recs))
		packEncs = make([][]byte, 0, len(b.recs))
		packKey  []byte
	)
	for i, pt := range parts {
		txn := s.db.NewTransaction(true)
		packSeqs, packEncs, packKey = packSeqs[:0], packEncs[:0], nil
		err := func() error {
			for _, u := range units[pt.lo:pt.hi] {
				for _, o := range ops[u.lo:u.hi] {
					var err error
					if o.outbox {
						// Packed below (outboxpack.go); the first
						// record's key names the entry.
						if packKey == nil {
							packKey = o.key
						}
						packSeqs, packEncs = append(packSeqs, o.seq), append(packEncs, o.val)
						continue
					}
					if o.del {
						err = txn.Delete(o.key)
					} else {
						err = txn.SetEntry(&badger.Entry{Key: o.key, Value: o.val, ExpiresAt: o.expires})
					}
					if err != nil {
						return err
					}
				}
			}
			switch len(packSeqs) {
			case 0:
			case 1:
				if err := txn.SetEntry(&badger.Entry{Key: packKey, Value: packEncs[0]}); err != nil {
					return err
				}
			default:
				// Badger has copied the value once Commit returns (to the
				// memtable's arena or the value log), so the buffer is reused.
				b.plain = appendPacked(b.plain[:0], packSeqs, packEncs)
				if err := txn.SetEntry(&badger.Entry{Key: packKey, Value: outboxValue(&b.packed, b.plain)}); err != nil {
					return err
				}
			}
			if pt.rec {
				if err := txn.SetEntry(&badger.Entry{Key: sk, Value: seqVal[:]}); err != nil {
					return err
				}
			}
			return txn.Commit()
		}()
		if err != nil {
			txn.Discard()
			return classify(fmt.Errorf("commit partition %d (transaction %d of %d): %w", p, i+1, len(parts), err))
		}
		if len(packSeqs) > 1 {
			b.ps.st.outbox.add(packSeqs[0], packSeqs)
		}
		for _, u := range units[pt.lo:pt.hi] {
			if u.g < 0 {
				continue
			}
			switch g := &b.groups[u.g]; g.op {
			case opPut:
				s.cache.put(p, g.id, g.val)
			case opDelete:
				s.cache.remove(p, g.id)
			}
		}
		if i < len(parts)-1 && s.afterPart != nil {
			if err := s.afterPart(i); err != nil {
				return fmt.Errorf("commit partition %d (after transaction %d of %d): %w", p, i+1, len(parts), err)
			}
		}
	}
	return nil
}

// plan turns the batch into writes grouped in units: the member groups in
// the order they were first touched, then the member-less records and
// markers one by one, then the offsets.
func (b *Batch) plan() ([]kvOp, []unit) {
	s, p := b.ps.s, b.ps.p
	slices.SortStableFunc(b.marks, func(x, y mark) int { return cmp.Compare(x.g, y.g) })
	slices.SortStableFunc(b.recs, func(x, y pendingRec) int { return cmp.Compare(x.g, y.g) })
	expires := uint64(s.now().Add(s.opts.DedupTTL).Unix())
	// Up to three writes per member group (its state, its old timer
	// entry's delete, the new entry), one per marker, record and offset:
	// sized for two per group, ops grew (and was copied) in most batches.
	ops := make([]kvOp, 0, 3*len(b.groups)+len(b.marks)+len(b.recs)+len(b.offsets)+1)
	units := make([]unit, 0, len(b.groups)+len(b.offsets)+1)
	keys := slices.Grow(b.keys[:0], 64*cap(ops)+len(b.arena)+12*len(b.groups))
	defer func() { b.keys = keys }()
	add := func(u *unit, o kvOp) {
		ops = append(ops, o)
		u.bytes += entrySize(o.key, o.val)
		u.count++
	}
	mi, ri := 0, 0
	tail := int32(-1)
	// One unit variable, reused: add and groupOps take its address, so a
	// unit declared per group escaped to the heap once per member.
	var u unit
	for gi := range b.groups {
		g := &b.groups[gi]
		if g.id == "" {
			tail = int32(gi)
			// The member-less group's states and timers (none expected)
			// would go with the offsets; skip its marks and records here.
			for mi < len(b.marks) && b.marks[mi].g == int32(gi) {
				mi++
			}
			for ri < len(b.recs) && b.recs[ri].g == int32(gi) {
				ri++
			}
			continue
		}
		u = unit{lo: len(ops), g: int32(gi)}
		b.groupOps(g, &u, &keys, add)
		for ; mi < len(b.marks) && b.marks[mi].g == int32(gi); mi++ {
			start := len(keys)
			keys = dedupKey(keys, p, b.marks[mi].id)
			add(&u, kvOp{key: keys[start:len(keys):len(keys)], expires: expires})
		}
		for ; ri < len(b.recs) && b.recs[ri].g == int32(gi); ri++ {
			r := &b.recs[ri]
			start := len(keys)
			keys = outboxKey(keys, p, r.seq)
			add(&u, kvOp{key: keys[start:len(keys):len(keys)], val: b.arena[r.off : r.off+r.n], outbox: true, seq: r.seq})
			u.rec = true
		}
		u.hi = len(ops)
		if u.hi > u.lo {
			units = append(units, u)
		}
	}
	if tail >= 0 {
		for _, r := range b.recs {
			if r.g != tail {
				continue
			}
			u = unit{lo: len(ops), g: -1, rec: true}
			start := len(keys)
			keys = outboxKey(keys, p, r.seq)
			add(&u, kvOp{key: keys[start:len(keys):len(keys)], val: b.arena[r.off : r.off+r.n], outbox: true, seq: r.seq})
			u.hi = len(ops)
			units = append(units, u)
		}
		for _, m := range b.marks {
			if m.g != tail {
				continue
			}
			u = unit{lo: len(ops), g: -1}
			start := len(keys)
			keys = dedupKey(keys, p, m.id)
			add(&u, kvOp{key: keys[start:len(keys):len(keys)], expires: expires})
			u.hi = len(ops)
			units = append(units, u)
		}
	}
	// The last unit: offsets, and the member-less group's state if any.
	u = unit{lo: len(ops), g: tail}
	if tail >= 0 {
		b.groupOps(&b.groups[tail], &u, &keys, add)
	}
	topics := make([]string, 0, len(b.offsets))
	for t := range b.offsets {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	for _, t := range topics {
		start := len(keys)
		keys = offsetKey(keys, p, t)
		k := keys[start:len(keys):len(keys)]
		start = len(keys)
		keys = binary.BigEndian.AppendUint64(keys, uint64(b.offsets[t]))
		add(&u, kvOp{key: k, val: keys[start:len(keys):len(keys)]})
	}
	u.hi = len(ops)
	if u.hi > u.lo {
		units = append(units, u)
	}
	return ops, units
}

// groupOps appends the state and timer writes of a member group.
func (b *Batch) groupOps(g *group, u *unit, keys *[]byte, add func(*unit, kvOp)) {
	p := b.ps.p
	put := func(k func([]byte) []byte) []byte {
		start := len(*keys)
		*keys = k(*keys)
		return (*keys)[start:len(*keys):len(*keys)]
	}
	newIdx := int64(0) // the timer entry after the commit
	switch g.op {
	case opPut:
		newIdx = b.nextIndexed(g)
		mk := put(func(d []byte) []byte { return memberKey(d, p, g.id) })
		g.val = put(func(d []byte) []byte {
			return append(appendMemberVal(d, newIdx), b.arena[g.off:g.off+g.n]...)
		})
		add(u, kvOp{key: mk, val: g.val})
	case opDelete:
		mk := put(func(d []byte) []byte { return memberKey(d, p, g.id) })
		add(u, kvOp{key: mk, del: true})
	default:
		return
	}
	if g.indexed != 0 && g.indexed != newIdx {
		tk := put(func(d []byte) []byte { return timerKey(d, p, g.indexed, g.id) })
		add(u, kvOp{key: tk, del: true})
	}
	if newIdx != 0 && newIdx != g.indexed {
		b.minInserted = min(b.minInserted, newIdx)
		tk := put(func(d []byte) []byte { return timerKey(d, p, newIdx, g.id) })
		add(u, kvOp{key: tk, val: nil})
	}
}

// nextIndexed decides where a put member's timer entry goes (the lazy
// index, see the Batch comment): nowhere when the new Due is 0; to the new
// Due when the member has no entry, when the new Due is earlier than the
// entry, or when the entry is before the partition's due mark (a Due scan
// may have reported it, and the member was put back not yet due: moving it
// forward is what keeps Due from reporting it again); else it stays where
// it is, earlier than the new Due.
func (b *Batch) nextIndexed(g *group) int64 {
	switch {
	case g.newDue == 0:
		return 0
	case g.indexed == 0, g.newDue < g.indexed, g.indexed < b.mark:
		return g.newDue
	}
	return g.indexed
}

// resolveIndexed finds the committed timer entry of every member group:
// none when the caller's prevDue is 0 (a member has an entry exactly when
// its committed Due is not 0), else the one the caller's read saw (a
// Prior from Read), else the one recorded in the member's value, read from
// the member cache (the caller has just read the member, so it is
// normally there) or from Badger.
func (b *Batch) resolveIndexed() error {
	s, p := b.ps.s, b.ps.p
	var miss []int
	for i := range b.groups {
		g := &b.groups[i]
		g.indexed = 0
		if g.op == opNone || g.prior.Due == 0 {
			continue
		}
		if g.prior.indexedKnown {
			g.indexed = g.prior.indexed
			continue
		}
		idx, ok, err := s.cache.indexed(p, g.id, g.prior.Due)
		if err != nil {
			return err
		}
		if ok {
			g.indexed = idx
			continue
		}
		miss = append(miss, i)
	}
	if len(miss) == 0 {
		return nil
	}
	return s.db.View(func(txn *badger.Txn) error {
		var kb [64]byte
		for _, i := range miss {
			g := &b.groups[i]
			item, err := txn.Get(memberKey(kb[:0], p, g.id))
			if errors.Is(err, badger.ErrKeyNotFound) {
				g.indexed = g.prior.Due // not ours to doubt: the entry the caller says
				continue
			} else if err != nil {
				return err
			}
			err = item.Value(func(v []byte) error {
				var err error
				g.indexed, err = indexedDue(v, g.prior.Due)
				return err
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// pack groups the units greedily into transactions under the limits,
// keeping their order (so the offsets' unit is in the last). Each
// transaction with an outbox record also writes the partition's outbox
// sequence, reserved here.
func (b *Batch) pack(units []unit) ([]txnPart, error) {
	s := b.ps.s
	seqCost := entrySize(seqKey(nil, b.ps.p), make([]byte, 8))
	maxB, maxN := s.maxBytes()-seqCost, s.maxCount()-1
	var parts []txnPart
	cur := txnPart{}
	var nb, nn int64
	for i, u := range units {
		if u.bytes > maxB || u.count > maxN {
			return nil, fmt.Errorf("%w: %d bytes in %d writes, limit %d bytes, %d writes", ErrBatchTooBig, u.bytes, u.count, maxB, maxN)
		}
		if i > cur.lo && (nb+u.bytes > maxB || nn+u.count > maxN) {
			cur.hi = i
			parts = append(parts, cur)
			cur, nb, nn = txnPart{lo: i}, 0, 0
		}
		nb += u.bytes
		nn += u.count
		cur.rec = cur.rec || u.rec
	}
	cur.hi = len(units)
	parts = append(parts, cur)
	return parts, nil
}
