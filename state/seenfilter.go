package state

import (
	"fmt"
	"sync"

	"github.com/bits-and-blooms/bloom/v3"
	badger "github.com/dgraph-io/badger/v4"
)

// seenFilter answers most dedup checks without reading Badger: a Bloom
// filter of the partition's dedup markers. A miss proves the event id has
// no marker (every committed marker was added), so Seen skips the Badger
// read; a hit, true or false, is checked in Badger. The filter is built on
// the first check from the markers on disk, rebuilt when it has taken in
// as many ids again as it was built for (which also sheds expired
// markers, as Badger's TTL does), and dropped when the partition is
// dropped or loaded.
type seenFilter struct {
	mu    sync.Mutex
	f     *bloom.BloomFilter // nil: not built
	cap   uint               // ids it was sized for
	added uint               // ids added since it was built
}

// seenFilterMin is the smallest capacity a filter is built with; the
// false-positive rate is seenFilterFP while it holds no more ids than that.
const (
	seenFilterMin = 1 << 16
	seenFilterFP  = 0.01
)

// mayContain reports whether eventID may have a marker (false: it has
// none). It builds or rebuilds the filter when needed.
func (sf *seenFilter) mayContain(ps *PartitionStore, eventID string) (bool, error) {
	sf.mu.Lock()
	defer sf.mu.Unlock()
	if sf.f == nil || sf.added > sf.cap {
		if err := sf.build(ps); err != nil {
			return true, err
		}
	}
	return sf.f.TestString(eventID), nil
}

// build fills a new filter with the markers on disk, sized for twice
// their number (at least seenFilterMin).
func (sf *seenFilter) build(ps *PartitionStore) error {
	prefix := appendPrefix(nil, kindDedup, ps.p)
	var ids [][]byte
	err := ps.s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			ids = append(ids, it.Item().KeyCopy(nil)[len(prefix):])
		}
		return nil
	})
	if err != nil {
		return classify(fmt.Errorf("read dedup markers of partition %d: %w", ps.p, err))
	}
	sf.cap = max(uint(2*len(ids)), seenFilterMin)
	sf.f = bloom.NewWithEstimates(sf.cap, seenFilterFP)
	for _, id := range ids {
		sf.f.Add(id)
	}
	sf.added = 0
	return nil
}

// add records ids about to be committed as markers (adding one that is not
// committed in the end only costs a Badger read later).
func (sf *seenFilter) add(ids []mark) {
	sf.mu.Lock()
	defer sf.mu.Unlock()
	if sf.f == nil {
		return // built from disk on the next check, with these committed
	}
	for _, m := range ids {
		sf.f.AddString(m.id)
	}
	sf.added += uint(len(ids))
}

// reset forgets the filter: the partition's markers changed other than by
// batches (dropped, loaded).
func (sf *seenFilter) reset() {
	sf.mu.Lock()
	defer sf.mu.Unlock()
	sf.f, sf.cap, sf.added = nil, 0, 0
}
