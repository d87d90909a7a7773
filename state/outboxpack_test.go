package state

import (
	"fmt"
	"slices"
	"testing"
)

// TestOutboxPacked checks that a batch's records become one entry, that the
// entry goes only when its last record is acknowledged, and that after a
// restart a partly acknowledged entry is handed out again in full.
func TestOutboxPacked(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	ps := s.Partition(3)
	b := ps.NewBatch()
	var seqs []uint64
	for i := range 6 {
		seqs = append(seqs, b.Append(mid(i%3), OutboxRecord{Topic: "alerts", Key: []byte(mid(i % 3)), Value: fmt.Appendf(nil, "r%d", i)}))
	}
	commit(t, b)
	entries := keysWithRawPrefix(t, s, appendPrefix(nil, kindOutbox, 3))
	if entries != 1 {
		t.Fatalf("%d outbox entries, want 1 packed entry", entries)
	}
	read := func(ps *PartitionStore) (got []uint64) {
		t.Helper()
		if err := ps.Outbox(t.Context(), func(seq uint64, _ OutboxRecord) error {
			got = append(got, seq)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := read(ps); !slices.Equal(got, seqs) {
		t.Fatalf("outbox %v, want %v", got, seqs)
	}
	if err := ps.Ack(seqs[0], seqs[2], seqs[4]); err != nil {
		t.Fatal(err)
	}
	if got := read(ps); !slices.Equal(got, []uint64{seqs[1], seqs[3], seqs[5]}) {
		t.Fatalf("after a partial ack: %v", got)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.OutboxDepth != 6 {
		t.Fatalf("OutboxDepth %d, want 6 (the entry holds six records until the last is acknowledged)", st.OutboxDepth)
	}

	// A restart forgets the acknowledgements: at least once.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	ps = s.Partition(3)
	if got := read(ps); !slices.Equal(got, seqs) {
		t.Fatalf("after a restart: %v, want all of %v", got, seqs)
	}
	if err := ps.Ack(seqs...); err != nil {
		t.Fatal(err)
	}
	if n := keysWithRawPrefix(t, s, appendPrefix(nil, kindOutbox, 3)); n != 0 {
		t.Fatalf("%d outbox entries left after every record was acknowledged", n)
	}
	if got := read(ps); got != nil {
		t.Fatalf("outbox after the last ack: %v", got)
	}
}

// keysWithRawPrefix counts the Badger keys under prefix, entries as they
// are (dump expands packed outbox entries).
func keysWithRawPrefix(t *testing.T, s *Store, prefix []byte) int {
	t.Helper()
	keys, err := s.collectKeys(prefix, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return len(keys)
}
