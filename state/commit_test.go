package state

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/churnflow/churnflow/operators"
)

// writeBatches commits the same two batches: members with timers, dedup
// markers and alerts, dead letters, and offsets; the second batch
// reschedules and deletes some members.
func writeBatches(t *testing.T, s *Store) {
	t.Helper()
	ps := s.Partition(9)
	b := ps.NewBatch()
	for i := range 60 {
		st := testState(i, int64(5000+i%7))
		b.Put(mid(i), &st, 0)
		b.MarkSeen(mid(i), fmt.Sprintf("ev-%d", i))
		if i%3 == 0 {
			b.Append(mid(i), OutboxRecord{Topic: "alerts", Key: []byte(mid(i)), Value: []byte(strings.Repeat("v", 40))})
		}
		if i%10 == 0 {
			b.Append("", OutboxRecord{Topic: "dlq", Value: []byte("bad"), Headers: map[string]string{"reason": "json"}})
		}
	}
	b.SetOffset("bookings", 60)
	b.SetOffset("activity", 7)
	commit(t, b)
	b = ps.NewBatch()
	for i := range 30 {
		if i%4 == 0 {
			b.Delete(mid(i), int64(5000+i%7))
			continue
		}
		st := testState(i+100, int64(6000+i))
		b.Put(mid(i), &st, int64(5000+i%7))
		b.MarkSeen(mid(i), fmt.Sprintf("ev2-%d", i))
	}
	b.SetOffset("bookings", 90)
	commit(t, b)
}

// TestCommitSplitSameContents checks that a commit forced to split gives
// the same keys and values as one transaction (dedup markers have empty
// values; their expiry is not compared).
func TestCommitSplitSameContents(t *testing.T) {
	whole := openTest(t, "")
	writeBatches(t, whole)
	split := openTest(t, "")
	split.txnBytes = 400 // a few member groups per transaction
	parts := 0
	split.afterPart = func(int) error { parts++; return nil }
	writeBatches(t, split)
	if parts < 10 {
		t.Fatalf("only %d split points: the limit did not force splits", parts)
	}
	a, b := dump(t, whole), dump(t, split)
	if !maps.Equal(a, b) {
		for k, v := range a {
			if b[k] != v {
				t.Errorf("key %q: whole %q, split %q", k, v, b[k])
			}
		}
		for k := range b {
			if _, ok := a[k]; !ok {
				t.Errorf("key %q only in split", k)
			}
		}
	}
	// The caches agree too.
	var x, y operators.MemberState
	for i := range 60 {
		okx, _ := whole.Partition(9).Get(mid(i), &x)
		oky, _ := split.Partition(9).Get(mid(i), &y)
		if okx != oky || (okx && encoded(&x) != encoded(&y)) {
			t.Errorf("member %s: whole %v, split %v", mid(i), okx, oky)
		}
	}
}

func TestCommitCrashBetweenParts(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	ps := s.Partition(1)
	b := ps.NewBatch()
	b.SetOffset("bookings", 100)
	commit(t, b)

	s.txnBytes = 300
	crash := errors.New("crash")
	s.afterPart = func(part int) error {
		if part == 2 {
			return crash
		}
		return nil
	}
	b = ps.NewBatch()
	for i := range 40 {
		st := testState(i, int64(7000+i))
		b.Put(mid(i), &st, 0)
		b.MarkSeen(mid(i), fmt.Sprintf("ev-%d", i))
		b.Append(mid(i), OutboxRecord{Topic: "alerts", Key: []byte(mid(i))})
	}
	b.Append("", OutboxRecord{Topic: "dlq"})
	b.SetOffset("bookings", 140)
	if err := b.Commit(t.Context()); !errors.Is(err, crash) {
		t.Fatalf("Commit = %v, want the simulated crash", err)
	}
	s.Close()
	s = openTest(t, dir)
	ps = s.Partition(1)

	if off, _ := ps.Offsets(); off["bookings"] != 100 {
		t.Errorf("offset after crash = %d, want the old 100", off["bookings"])
	}
	keys := dump(t, s)
	outbox := map[string]bool{}
	ps.Outbox(t.Context(), func(_ uint64, r OutboxRecord) error { outbox[string(r.Key)] = true; return nil })
	committed := 0
	probe := ps.NewBatch()
	for i := range 40 {
		id := mid(i)
		_, hasState := keys[string(memberKey(nil, 1, id))]
		_, hasTimer := keys[string(timerKey(nil, 1, int64(7000+i), id))]
		seen, _ := probe.Seen(fmt.Sprintf("ev-%d", i))
		parts := []bool{hasState, hasTimer, seen, outbox[string(id)]}
		all, none := true, true
		for _, p := range parts {
			all, none = all && p, none && !p
		}
		if !all && !none {
			t.Errorf("member %s half committed: state, timer, dedup, outbox = %v", id, parts)
		}
		if all {
			committed++
		}
	}
	if committed == 0 || committed == 40 {
		t.Errorf("%d of 40 member groups committed: the crash was not between parts", committed)
	}
	if outbox[""] {
		t.Error("dead letter committed before the offsets' transaction despite fitting in it")
	}
	// Outbox sequence numbers survive the partial commit: the next batch
	// does not reuse any committed seq.
	var maxSeq uint64
	ps.Outbox(t.Context(), func(seq uint64, _ OutboxRecord) error { maxSeq = max(maxSeq, seq); return nil })
	if next := ps.NewBatch().Append("", OutboxRecord{}); next <= maxSeq {
		t.Errorf("next seq %d reuses committed seq up to %d", next, maxSeq)
	}
	t.Logf("%d of 40 member groups committed before the crash", committed)
}

func TestCommitTooBig(t *testing.T) {
	s := openTest(t, "")
	s.txnBytes = 100
	b := s.Partition(0).NewBatch()
	st := testState(1, 0)
	st.Region = strings.Repeat("r", 200)
	b.Put("A", &st, 0)
	if err := b.Commit(t.Context()); !errors.Is(err, ErrBatchTooBig) {
		t.Fatalf("Commit = %v, want ErrBatchTooBig", err)
	}
}

// TestCommitRealLimit commits a batch over Badger's own transaction limit
// (15 % of a 4 MiB memtable at the minimum budget).
func TestCommitRealLimit(t *testing.T) {
	s := openTest(t, "", func(o *Options) { o.MemoryBudget = minMemoryBudget })
	parts := 0
	s.afterPart = func(int) error { parts++; return nil }
	b := s.Partition(0).NewBatch()
	const n = 20000
	for i := range n {
		st := testState(i, int64(1000+i))
		b.Put(mid(i), &st, 0)
		b.MarkSeen(mid(i), fmt.Sprint(i))
	}
	b.SetOffset("bookings", n)
	commit(t, b)
	if parts == 0 {
		t.Fatal("batch fitted one transaction: not testing the real limit")
	}
	st, _ := s.Stats()
	if st.Members != n || st.Timers != n || st.DedupMarkers != n {
		t.Errorf("stats %+v", st)
	}
	t.Logf("%d members committed in %d transactions", n, parts+1)
}
