package state

import (
	"context"
	"testing"
	"time"

	"github.com/churnflow/churnflow/operators"
)

// TestLoader loads a partition as the pipeline's restore does: members
// more than once (the last state wins) and deleted, dedup markers, then
// the offsets. The loaded partition must read like one committed by
// batches: one timer entry per member, at its last Due.
func TestLoader(t *testing.T) {
	s := openTest(t, t.TempDir())
	ps := s.Partition(3)
	ctx := context.Background()

	// Something to be dropped: the load replaces the partition.
	b := ps.NewBatch()
	old := testState(99, 50)
	b.Put(mid(99), &old, 0)
	b.SetOffset("in", 7)
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	other := s.Partition(4).NewBatch()
	other.Put(mid(1), &old, 0)
	if err := other.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	ld, err := ps.NewLoader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		st := testState(i, int64(1000+i))
		if err := ld.Member(mid(i), st.AppendEncode(nil)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 { // again, later or earlier: the last wins
		st := testState(i, int64(500+100*(i%2)*i))
		if err := ld.Member(mid(i), st.AppendEncode(nil)); err != nil {
			t.Fatal(err)
		}
	}
	if err := ld.Member(mid(9), nil); err != nil { // deleted
		t.Fatal(err)
	}
	if err := ld.Member(mid(8), []byte{0x7f, 1, 2}); err == nil {
		t.Error("a corrupt state loaded without error")
	}
	if err := ld.Marker("ev-live", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := ld.Marker("ev-expired", time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	members, markers, err := ld.Finish(ctx, map[string]int64{"in": 42}, 17)
	if err != nil {
		t.Fatal(err)
	}
	if members != 15 || markers != 1 {
		t.Errorf("Finish counted %d members and %d markers, want 15 and 1", members, markers)
	}

	want := map[operators.MemberID]int64{}
	for i := range 9 {
		due := int64(1000 + i)
		if i < 5 {
			due = int64(500 + 100*(i%2)*i)
		}
		want[mid(i)] = due
		var got operators.MemberState
		if ok, err := ps.Get(mid(i), &got); err != nil || !ok || got.Due != due {
			t.Errorf("member %d: found %v, Due %d, err %v; want Due %d", i, ok, got.Due, err, due)
		}
	}
	var got operators.MemberState
	for _, id := range []operators.MemberID{mid(9), mid(99)} {
		if ok, _ := ps.Get(id, &got); ok {
			t.Errorf("member %s survived the load", id)
		}
	}
	if ok, _ := s.Partition(4).Get(mid(1), &got); !ok {
		t.Error("the load dropped another partition's member")
	}
	entries := map[operators.MemberID]int64{}
	err = ps.Due(ctx, 1<<40, 0, func(id operators.MemberID, due int64) error {
		if _, dup := entries[id]; dup {
			t.Errorf("member %s has two timer entries", id)
		}
		entries[id] = due
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(want) {
		t.Errorf("%d timer entries, want %d: %v", len(entries), len(want), entries)
	}
	for id, due := range want {
		if entries[id] != due {
			t.Errorf("member %s: timer entry at %d, want %d", id, entries[id], due)
		}
	}
	offs, err := ps.Offsets()
	if err != nil || offs["in"] != 42 || len(offs) != 1 {
		t.Errorf("offsets %v (%v), want in=42", offs, err)
	}
	if next, ok, err := ps.ChangelogOffset(); next != 17 || !ok || err != nil {
		t.Errorf("ChangelogOffset = %d, %v, %v; want 17, true", next, ok, err)
	}
	if err := ps.SetChangelogOffset(23); err != nil {
		t.Fatal(err)
	}
	if next, _, _ := ps.ChangelogOffset(); next != 23 {
		t.Errorf("ChangelogOffset after SetChangelogOffset(23) = %d", next)
	}
	if _, ok, _ := s.Partition(4).ChangelogOffset(); ok {
		t.Error("partition 4 has a changelog offset it was never given")
	}
	nb := ps.NewBatch()
	for id, wantSeen := range map[string]bool{"ev-live": true, "ev-expired": false} {
		if seen, err := nb.Seen(id); err != nil || seen != wantSeen {
			t.Errorf("Seen(%s) = %v, %v; want %v", id, seen, err, wantSeen)
		}
	}
	nb.Discard()
}

// TestPutReturnsEncoding: the encoding Put returns is the state's, and later
// writes to the batch do not change it.
func TestPutReturnsEncoding(t *testing.T) {
	s := openTest(t, "")
	b := s.Partition(0).NewBatch()
	defer b.Discard()
	st := testState(1, 1000)
	enc := b.Put(mid(1), &st, 0)
	want := encoded(&st)
	for i := 2; i < 200; i++ { // grow the batch's buffer well past its first size
		o := testState(i, int64(1000+i))
		b.Put(mid(i), &o, 0)
		b.Append(mid(i), OutboxRecord{Topic: "t", Key: []byte("k"), Value: make([]byte, 100)})
	}
	if string(enc) != want {
		t.Error("the encoding Put returned changed, or was never the state's")
	}
}
