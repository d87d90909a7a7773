package state

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	badger "github.com/dgraph-io/badger/v4"
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

// TestOutboxCompressed checks that a packed entry is written compressed,
// smaller than its records, and reads back record for record; that an
// uncompressed packed entry (earlier builds) still reads; and that a
// damaged block is reported as corrupt, not handed out.
func TestOutboxCompressed(t *testing.T) {
	s := openTest(t, t.TempDir())
	ps := s.Partition(1)
	b := ps.NewBatch()
	want := map[uint64]string{}
	plainBytes := 0
	for i := range 50 {
		v := fmt.Sprintf(`{"alert_id":"dormancy:%s:2026-01-%02d","type":"dormancy","member_id":"%s","severity":"warning"}`, mid(i), i%28+1, mid(i))
		seq := b.Append(mid(i), OutboxRecord{Topic: "churnflow.alerts.dormancy", Key: []byte(mid(i)), Value: []byte(v),
			Headers: map[string]string{"alert_id": "dormancy:" + string(mid(i)), "alert_type": "dormancy"}})
		want[seq] = v
		plainBytes += len(v)
	}
	commit(t, b)
	raw := lastOutboxValue(t, s, 1)
	if len(raw) == 0 || raw[0] != packedS2Magic || packedCount(raw) != 50 {
		t.Fatalf("outbox entry of %d bytes, first byte %#x, %d records: want a compressed entry of 50", len(raw), raw[0], packedCount(raw))
	}
	if len(raw) > plainBytes/2 {
		t.Errorf("compressed entry %d bytes for %d bytes of values alone: want under half", len(raw), plainBytes)
	}
	got := map[uint64]string{}
	if err := ps.Outbox(t.Context(), func(seq uint64, rec OutboxRecord) error {
		if rec.Topic != "churnflow.alerts.dormancy" || rec.Headers["alert_type"] != "dormancy" {
			t.Errorf("record %d: topic %q, headers %v", seq, rec.Topic, rec.Headers)
		}
		got[seq] = string(rec.Value)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("read back %d records, want the %d written, equal", len(got), len(want))
	}

	// An uncompressed packed entry, as builds before compression wrote.
	encs := [][]byte{appendRecord(nil, &OutboxRecord{Topic: "t", Value: []byte("old-1")}), appendRecord(nil, &OutboxRecord{Topic: "t", Value: []byte("old-2")})}
	old := appendPacked(nil, []uint64{1000, 1002}, encs)
	var seen []string
	err := decodeOutboxValue(1000, old, func(seq uint64, rec OutboxRecord) error {
		seen = append(seen, fmt.Sprintf("%d:%s", seq, rec.Value))
		return nil
	})
	if err != nil || !slices.Equal(seen, []string{"1000:old-1", "1002:old-2"}) {
		t.Errorf("uncompressed entry: %v, %v", seen, err)
	}
	if c := compressPacked(nil, old); decodeOutboxValue(1000, c, func(uint64, OutboxRecord) error { return nil }) != nil {
		t.Errorf("compressPacked of an uncompressed entry does not decode")
	}

	bad := slices.Clone(raw)
	bad[len(bad)/2] ^= 0xff
	bad = bad[:len(bad)-3]
	if err := decodeOutboxValue(7, bad, func(uint64, OutboxRecord) error { return nil }); !errors.Is(err, errRecordCorrupt) {
		t.Errorf("damaged compressed entry: %v, want errRecordCorrupt", err)
	}
}

// TestOutboxCompressionKeepsSide: a packed entry over the value threshold
// that would fall under it compressed is written uncompressed (it stays in
// the value log instead of moving into the LSM tree), and still reads.
func TestOutboxCompressionKeepsSide(t *testing.T) {
	s := openTest(t, t.TempDir())
	ps := s.Partition(2)
	b := ps.NewBatch()
	n, size := 0, 0
	for int64(size) < valueThreshold+valueThreshold/4 {
		v := fmt.Sprintf(`{"alert_id":"segment_change:%s:%d","type":"segment_change","member_id":"%s","reason":"segment none → low_value"}`, mid(n), n, mid(n))
		b.Append(mid(n), OutboxRecord{Topic: "churnflow.member-segments", Key: []byte(mid(n)), Value: []byte(v)})
		n, size = n+1, size+len(v)
	}
	commit(t, b)
	raw := lastOutboxValue(t, s, 2)
	if len(raw) < int(valueThreshold) || raw[0] != packedMagic {
		t.Fatalf("entry of %d records: %d bytes, first byte %#x; want it uncompressed (%#x), over the %d-byte threshold",
			n, len(raw), raw[0], packedMagic, valueThreshold)
	}
	if c := compressPacked(nil, raw); int64(len(c)) >= valueThreshold {
		t.Fatalf("the test's records compress to %d bytes: not the band under test", len(c))
	}
	read := 0
	if err := ps.Outbox(t.Context(), func(uint64, OutboxRecord) error { read++; return nil }); err != nil || read != n {
		t.Fatalf("read back %d of %d records: %v", read, n, err)
	}
}

// lastOutboxValue returns the value of partition p's last outbox entry as
// Badger holds it (nil if none).
func lastOutboxValue(t *testing.T, s *Store, p Partition) []byte {
	t.Helper()
	var raw []byte
	if err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: appendPrefix(nil, kindOutbox, p)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var err error
			if raw, err = it.Item().ValueCopy(nil); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return raw
}
