package state

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/churnflow/churnflow/operators"
)

// openTest opens a store in a fresh directory (or dir, if given) with a
// small budget and no GC, closed at the end of the test.
func openTest(t testing.TB, dir string, mod ...func(*Options)) *Store {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	o := DefaultOptions(dir)
	o.MemoryBudget = 32 * mib
	o.GCInterval = 0
	for _, m := range mod {
		m(&o)
	}
	s, err := Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// testState returns a distinct, valid member state.
func testState(i int, due int64) operators.MemberState {
	return operators.MemberState{
		Clock:         1_700_000_000 + int64(i),
		Due:           due,
		Enrolled:      1_600_000_000,
		PointsBalance: int64(i),
		Bookings:      uint32(i % 7),
		Region:        "north",
		History:       []operators.Booking{{IDHash: uint64(i), Day: 19700, Sec: 10, Revenue: 100, Km: 1250, Segments: 1, Product: operators.ProductFlight}},
	}
}

func mid(i int) operators.MemberID { return operators.MemberID(fmt.Sprintf("M%06d", i)) }

// putMembers puts testState(i, 0) for the members lo to hi-1 into b.
func putMembers(b *Batch, lo, hi int) {
	for i := lo; i < hi; i++ {
		st := testState(i, 0)
		b.Put(mid(i), &st, 0)
	}
}

func encoded(s *operators.MemberState) string { return string(s.AppendEncode(nil)) }

// dump returns every live key of the store with its value (dedup markers
// with an empty value), for comparing stores.
func dump(t *testing.T, s *Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := eachEntry(s.db, func(key, v []byte) error {
		if p, ok := parsePartition(key); ok && key[0] == kindOutbox && len(key) == len(appendPrefix(nil, kindOutbox, p))+8 {
			// One pseudo-key per record, packed or not, so that
			// dumps compare records whatever entries hold them.
			first := binary.BigEndian.Uint64(key[len(key)-8:])
			return decodeOutboxValue(first, v, func(seq uint64, rec OutboxRecord) error {
				out[string(outboxKey(nil, p, seq))] = string(appendRecord(nil, &rec))
				return nil
			})
		}
		out[string(key)] = string(v)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// eachEntry calls fn with every live key of db and its value, copies fn
// may keep, in key order; it stops at fn's first error.
func eachEntry(db *badger.DB, fn func(key, val []byte) error) error {
	return db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if err := fn(it.Item().KeyCopy(nil), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// keysWithPrefix lists the live keys starting with prefix.
func keysWithPrefix(t *testing.T, s *Store, prefix []byte) [][]byte {
	t.Helper()
	var keys [][]byte
	for k := range dump(t, s) {
		if bytes.HasPrefix([]byte(k), prefix) {
			keys = append(keys, []byte(k))
		}
	}
	return keys
}

// eventually polls cond until it holds or d passes.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cond()
}
