package replay

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/churnflow/churnflow/operators"
	"github.com/churnflow/churnflow/state"
)

// Offset topics under which a BadgerStore records a replay's progress,
// committed with the member states (state.Batch.SetOffset).
const (
	keyApplied    = "replay.applied"     // sorted events applied
	keyInputBytes = "replay.input_bytes" // size of the input in bytes
	keyInputCRC   = "replay.input_crc32" // CRC-32 (IEEE) of the input
	keySettings   = "replay.settings"    // fingerprint of the settings
	keyBatch      = "replay.batch"       // batch size of the run that committed
	keyDone       = "replay.done"        // 1: the final timers fired too
)

// AlertTopic is the outbox topic of the alerts a BadgerStore holds between
// a commit and their being written out.
const AlertTopic = "alerts"

// Checkpoint is the progress of a replay, committed atomically with the
// member states and the alerts it produced.
type Checkpoint struct {
	// Applied is the number of events, in sorted order, whose effects
	// (and those of the timers fired after them) are committed.
	Applied int64
	// InputBytes and InputCRC identify the input: its size and CRC-32.
	InputBytes int64
	InputCRC   uint32
	// Settings is a fingerprint of what else decides the alerts: the
	// rules, Until, the input format, the CSV mapping and MaxEventBytes.
	Settings uint64
	// BatchSize is the batch size of the run that committed: a commit
	// split over several transactions covers at most one such batch.
	BatchSize int
	// Done means every event was applied and the final timers fired.
	Done bool
}

// IsZero reports whether nothing was committed yet.
func (c Checkpoint) IsZero() bool { return c == Checkpoint{} }

// durable is a Store that commits its changes in batches together with the
// replay's progress and the alerts produced, so that a replay can stop and
// resume (BadgerStore). Run uses it when Config.Store implements it.
type durable interface {
	Store
	Checkpoint() (Checkpoint, error)
	// emit adds an alert to the current batch's outbox.
	emit(member operators.MemberID, alertID string, line []byte) uint64
	// markBatch records, with member's state, that member's events of the
	// batch starting at sorted event start are applied.
	markBatch(member operators.MemberID, start int64)
	// batchDone reports whether member's events of the batch starting at
	// start were committed (by a commit split over transactions).
	batchDone(member operators.MemberID, start int64) (bool, error)
	// commit commits the current batch with cp and starts a new one.
	commit(ctx context.Context, cp Checkpoint) error
	// outbox calls fn for each committed, unacknowledged alert, in order.
	outbox(ctx context.Context, fn func(seq uint64, line []byte) error) error
	ack(seqs ...uint64) error
}

// BadgerStore is a Store on one partition of a state.Store: the member
// states of a replay kept in Badger, so that a replay holds more members
// than fit in memory and can be resumed (see Run and Checkpoint).
//
// Changes go into a state.Batch that Run commits after each batch of events
// and the timers fired after it, with the progress (Checkpoint) and the
// alerts (in the partition's outbox) in the same commit. Until then Get,
// DueBefore and Range see the batch's pending states on top of the
// committed ones (Range sees committed states only: call it between
// batches).
//
// It is not safe for concurrent use, and nothing else may write its
// partition meanwhile.
type BadgerStore struct {
	ps *state.PartitionStore
	b  *state.Batch

	// pending holds, per member read or written in the current batch, the
	// committed state as read (for Batch.PutPrior) and the pending state.
	pending map[operators.MemberID]int32
	entries []pendingEntry
	cands   []dueCand
	scratch operators.MemberState
}

type pendingEntry struct {
	id        operators.MemberID
	committed state.Prior
	dirty     bool // put or deleted in this batch
	deleted   bool
	marked    bool                  // markBatch done
	s         operators.MemberState // valid if dirty && !deleted
}

type dueCand struct {
	due int64
	id  operators.MemberID
}

// NewBadgerStore returns a Store on partition ps. The partition may hold a
// replay's progress already: Run resumes it.
func NewBadgerStore(ps *state.PartitionStore) *BadgerStore {
	return &BadgerStore{ps: ps, b: ps.NewBatch(), pending: make(map[operators.MemberID]int32)}
}

// Checkpoint returns the progress last committed (the zero Checkpoint if
// none).
func (bs *BadgerStore) Checkpoint() (Checkpoint, error) {
	offs, err := bs.ps.Offsets()
	if err != nil {
		return Checkpoint{}, fmt.Errorf("read replay progress: %w", err)
	}
	return Checkpoint{
		Applied:    offs[keyApplied],
		InputBytes: offs[keyInputBytes],
		InputCRC:   uint32(offs[keyInputCRC]),
		Settings:   uint64(offs[keySettings]),
		BatchSize:  int(offs[keyBatch]),
		Done:       offs[keyDone] == 1,
	}, nil
}

func (bs *BadgerStore) entry(id operators.MemberID) (*pendingEntry, bool) {
	if i, ok := bs.pending[id]; ok {
		return &bs.entries[i], true
	}
	if len(bs.entries) < cap(bs.entries) {
		bs.entries = bs.entries[:len(bs.entries)+1]
	} else {
		bs.entries = append(bs.entries, pendingEntry{})
	}
	e := &bs.entries[len(bs.entries)-1]
	h, tr := e.s.History[:0], e.s.Trips[:0]
	*e = pendingEntry{id: id, s: operators.MemberState{History: h, Trips: tr}}
	bs.pending[id] = int32(len(bs.entries) - 1)
	return e, false
}

// Get implements Store: the batch's pending state if the member was put or
// deleted in it, else the committed one.
func (bs *BadgerStore) Get(id operators.MemberID, s *operators.MemberState) (bool, error) {
	e, known := bs.entry(id)
	if known && e.dirty {
		h, tr := s.History[:0], s.Trips[:0]
		if e.deleted {
			*s = operators.MemberState{History: h, Trips: tr}
			return false, nil
		}
		copyState(s, &e.s)
		return true, nil
	}
	prior, err := bs.ps.Read(id, s)
	if err != nil {
		return false, err
	}
	if !prior.Found {
		*s = operators.MemberState{History: s.History[:0], Trips: s.Trips[:0]}
	}
	e.committed = prior
	return prior.Found, nil
}

// copyState copies src into dst, reusing dst's slices.
func copyState(dst, src *operators.MemberState) {
	h, tr := dst.History[:0], dst.Trips[:0]
	*dst = *src
	dst.History = append(h, src.History...)
	dst.Trips = append(tr, src.Trips...)
}

// prior makes sure e.committed is known: the runner always Gets before
// it Puts, but the Store contract does not require it.
func (bs *BadgerStore) prior(id operators.MemberID, e *pendingEntry, known bool) error {
	if known {
		return nil
	}
	prior, err := bs.ps.Read(id, &bs.scratch)
	if err != nil {
		return err
	}
	e.committed = prior
	return nil
}

// Put implements Store.
func (bs *BadgerStore) Put(id operators.MemberID, s *operators.MemberState) error {
	e, known := bs.entry(id)
	if err := bs.prior(id, e, known); err != nil {
		return err
	}
	e.dirty, e.deleted = true, false
	copyState(&e.s, s)
	bs.b.PutPrior(id, s, e.committed)
	return nil
}

// Delete implements Store.
func (bs *BadgerStore) Delete(id operators.MemberID) error {
	e, known := bs.entry(id)
	if err := bs.prior(id, e, known); err != nil {
		return err
	}
	e.dirty, e.deleted = true, true
	bs.b.DeletePrior(id, e.committed)
	return nil
}

// DueBefore implements Store. It visits the committed timers due before t
// of the members the batch has not changed, and the pending states due
// before t, in (due, member) order; then, until none is left, the members
// fn put back with a due still before t.
func (bs *BadgerStore) DueBefore(t int64, fn func(id operators.MemberID) error) error {
	cands := bs.cands[:0]
	err := bs.ps.Due(context.Background(), t, 0, func(id operators.MemberID, due int64) error {
		if i, ok := bs.pending[id]; ok && bs.entries[i].dirty {
			return nil // the pending state's Due decides
		}
		cands = append(cands, dueCand{due: due, id: id})
		return nil
	})
	if err != nil {
		return err
	}
	for first := true; ; first = false {
		if !first {
			cands = cands[:0]
		}
		for i := range bs.entries {
			e := &bs.entries[i]
			if e.dirty && !e.deleted && e.s.Due != 0 && e.s.Due < t {
				cands = append(cands, dueCand{due: e.s.Due, id: e.id})
			}
		}
		if len(cands) == 0 {
			bs.cands = cands[:0]
			return nil
		}
		slices.SortFunc(cands, func(a, b dueCand) int {
			if c := cmp.Compare(a.due, b.due); c != 0 {
				return c
			}
			return cmp.Compare(a.id, b.id)
		})
		for _, c := range cands {
			if err := fn(c.id); err != nil {
				bs.cands = cands[:0]
				return err
			}
		}
		clear(cands) // drop member ids
	}
}

// Range implements Store over the committed states (the pending batch is
// not visited).
func (bs *BadgerStore) Range(fn func(id operators.MemberID, s *operators.MemberState) error) error {
	return bs.ps.Range(context.Background(), fn)
}

// Len implements Store: the committed members, counted with a scan.
func (bs *BadgerStore) Len() int {
	n := 0
	if err := bs.ps.Range(context.Background(), func(operators.MemberID, *operators.MemberState) error {
		n++
		return nil
	}); err != nil {
		return 0
	}
	return n
}

func (bs *BadgerStore) emit(member operators.MemberID, alertID string, line []byte) uint64 {
	return bs.b.Append(member, state.OutboxRecord{
		Topic:   AlertTopic,
		Key:     []byte(member),
		Value:   line,
		Headers: map[string]string{"alert_id": alertID},
	})
}

// batchMarker is the dedup marker id of member's events in the batch that
// starts at sorted event start.
func batchMarker(member operators.MemberID, start int64) string {
	return "replay/" + strconv.FormatInt(start, 10) + "/" + string(member)
}

func (bs *BadgerStore) markBatch(member operators.MemberID, start int64) {
	e, _ := bs.entry(member)
	if e.marked {
		return
	}
	e.marked = true
	bs.b.MarkSeen(member, batchMarker(member, start))
}

func (bs *BadgerStore) batchDone(member operators.MemberID, start int64) (bool, error) {
	return bs.b.Seen(batchMarker(member, start))
}

func (bs *BadgerStore) commit(ctx context.Context, cp Checkpoint) error {
	b := bs.b
	b.SetOffset(keyApplied, cp.Applied)
	b.SetOffset(keyInputBytes, cp.InputBytes)
	b.SetOffset(keyInputCRC, int64(cp.InputCRC))
	b.SetOffset(keySettings, int64(cp.Settings))
	b.SetOffset(keyBatch, int64(cp.BatchSize))
	done := int64(0)
	if cp.Done {
		done = 1
	}
	b.SetOffset(keyDone, done)
	err := b.Commit(ctx)
	bs.b = bs.ps.NewBatch()
	clear(bs.pending)
	for i := range bs.entries {
		e := &bs.entries[i]
		h, tr := e.s.History[:0], e.s.Trips[:0]
		clear(h[:cap(h)])
		clear(tr[:cap(tr)])
		*e = pendingEntry{s: operators.MemberState{History: h, Trips: tr}}
	}
	bs.entries = bs.entries[:0]
	if err != nil {
		return fmt.Errorf("commit replay batch: %w", err)
	}
	return nil
}

func (bs *BadgerStore) outbox(ctx context.Context, fn func(seq uint64, line []byte) error) error {
	return bs.ps.Outbox(ctx, func(seq uint64, rec state.OutboxRecord) error {
		if rec.Topic != AlertTopic {
			return nil
		}
		return fn(seq, rec.Value)
	})
}

func (bs *BadgerStore) ack(seqs ...uint64) error { return bs.ps.Ack(seqs...) }
