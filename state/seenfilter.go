package state

import (
	"encoding/binary"
	"errors"
	"hash/maphash"
	"sync"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
	badger "github.com/dgraph-io/badger/v4"
)

// seenFilter answers most dedup checks without reading Badger: a Bloom
// filter of the partition's dedup markers. A miss proves the event id has
// no marker (every committed marker was added), so Seen skips the Badger
// read; a hit, true or false, is checked in Badger.
//
// The filter is built in the background, from a snapshot of the markers
// on disk taken at the first check: until it is ready every check reads
// Badger, so that a restarted process with millions of markers processes
// at once instead of after reading them all. It is rebuilt, in the
// background too, when it has taken in as many ids again as it was built
// for (which also sheds expired markers, as Badger's TTL does); the full
// filter answers meanwhile. It is dropped when the partition is dropped or
// loaded.
//
// The filter holds a 64-bit hash of each id rather than the id, so that a
// build keeps 8 bytes per marker until it knows how many there are.
type seenFilter struct {
	mu       sync.Mutex
	f        *bloom.BloomFilter // nil: not built
	cap      uint               // ids f was sized for
	added    uint               // ids added to f since it was built
	building bool               // a build runs
	gen      uint64             // bumped by reset: a build of an older one is dropped
	pending  []uint64           // hashes added while a build runs, for its filter
	retry    time.Time          // after a failed build: no other before this
	runs     sync.WaitGroup     // running builds (tests wait for them)
}

// seenFilterMin is the smallest capacity a filter is built with; the
// false-positive rate is seenFilterFP while it holds no more ids than that.
// A failed build is tried again after seenFilterRetry.
const (
	seenFilterMin   = 1 << 16
	seenFilterFP    = 0.01
	seenFilterRetry = 10 * time.Second
)

// seenSeed seeds the ids' hashes; the filters live in this process only.
var seenSeed = maphash.MakeSeed()

// seenHash is the hash of eventID the filter holds.
func seenHash(eventID []byte) uint64 { return maphash.Bytes(seenSeed, eventID) }

// seenHashString is seenHash of a string.
func seenHashString(eventID string) uint64 { return maphash.String(seenSeed, eventID) }

// filterKey is the filter's key for the hash h, written into k.
func filterKey(k *[8]byte, h uint64) []byte {
	binary.LittleEndian.PutUint64(k[:], h)
	return k[:]
}

// mayContain reports whether eventID may have a marker (false: it has
// none). It starts a build when none is ready or the filter is full, and
// answers true (read Badger) while there is no filter.
func (sf *seenFilter) mayContain(ps *PartitionStore, eventID string) bool {
	sf.mu.Lock()
	defer sf.mu.Unlock()
	if !sf.building && (sf.f == nil || sf.added > sf.cap) && !time.Now().Before(sf.retry) {
		sf.startBuild(ps)
	}
	if sf.f == nil {
		return true
	}
	var k [8]byte
	return sf.f.Test(filterKey(&k, seenHashString(eventID)))
}

// startBuild takes the snapshot of the markers (every marker committed so
// far; the ones committed later are added while the build runs and kept in
// pending) and reads it in a goroutine. sf.mu is held.
func (sf *seenFilter) startBuild(ps *PartitionStore) {
	s := ps.s
	if !s.enter() {
		return // closed: the caller's Badger read reports it
	}
	txn := s.db.NewTransaction(false)
	sf.building, sf.pending = true, sf.pending[:0]
	gen := sf.gen
	sf.runs.Add(1)
	go func() {
		defer sf.runs.Done()
		defer s.leave()
		defer txn.Discard()
		if s.buildHook != nil {
			s.buildHook()
		}
		start := time.Now()
		hashes, err := readMarkerHashes(ps, txn)
		if err != nil && !errors.Is(err, ErrClosed) {
			s.log.Warn().Err(err).Int32("partition", int32(ps.p)).
				Msg("dedup filter not built; dedup checks read the state store until the next try")
		}
		n := sf.finish(gen, hashes, err)
		if n >= 0 {
			s.log.Debug().Int32("partition", int32(ps.p)).Int("markers", n).
				Dur("took", time.Since(start)).Msg("dedup filter built")
		}
	}()
}

// readMarkerHashes reads the hashes of the partition's markers in txn. It
// stops early, with ErrClosed, when the store is closing.
func readMarkerHashes(ps *PartitionStore, txn *badger.Txn) ([]uint64, error) {
	prefix := appendPrefix(nil, kindDedup, ps.p)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	var hashes []uint64
	for it.Rewind(); it.Valid(); it.Next() {
		if len(hashes)%4096 == 0 && ps.s.isClosed() {
			return nil, ErrClosed
		}
		hashes = append(hashes, seenHash(it.Item().Key()[len(prefix):]))
	}
	return hashes, nil
}

// finish makes the filter of a build of generation gen from the markers'
// hashes and the ones added meanwhile, unless the build failed or the
// filter was reset since. It returns the number of ids the new filter
// holds, -1 if it was not made. The markers' hashes go in without the
// lock, so the partition's checks and commits do not wait for them (a
// million took 74-79 ms, into a filter sized for two million, on the
// benchmark machine); only those added meanwhile go in under it.
func (sf *seenFilter) finish(gen uint64, hashes []uint64, err error) int {
	sf.mu.Lock()
	if sf.gen != gen {
		sf.mu.Unlock()
		return -1 // reset meanwhile: a later check starts another build
	}
	if err != nil {
		sf.building, sf.pending, sf.retry = false, nil, time.Now().Add(seenFilterRetry)
		sf.mu.Unlock()
		return -1
	}
	size := max(2*uint(len(hashes)+len(sf.pending)), seenFilterMin)
	sf.mu.Unlock()
	f := bloom.NewWithEstimates(size, seenFilterFP)
	addHashes(f, hashes)
	sf.mu.Lock()
	defer sf.mu.Unlock()
	if sf.gen != gen {
		return -1
	}
	addHashes(f, sf.pending)
	n := len(hashes) + len(sf.pending)
	sf.f, sf.cap, sf.added, sf.building, sf.pending = f, size, 0, false, nil
	return n
}

// addHashes adds hashes to f.
func addHashes(f *bloom.BloomFilter, hashes []uint64) {
	var k [8]byte
	for _, h := range hashes {
		f.Add(filterKey(&k, h))
	}
}

// add records ids about to be committed as markers (adding one that is not
// committed in the end only costs a Badger read later).
//
// With no filter and no build running the ids are not kept: the next
// build's snapshot holds them, as it is taken by a check, and the
// partition's checks and commits come one after another from its worker.
func (sf *seenFilter) add(ids []mark) {
	sf.mu.Lock()
	defer sf.mu.Unlock()
	if sf.f == nil && !sf.building {
		return
	}
	var k [8]byte
	for _, m := range ids {
		h := seenHashString(m.id)
		if sf.building {
			sf.pending = append(sf.pending, h)
		}
		if sf.f != nil {
			sf.f.Add(filterKey(&k, h))
		}
	}
	sf.added += uint(len(ids))
}

// isBuilding reports whether a build runs.
func (sf *seenFilter) isBuilding() bool {
	sf.mu.Lock()
	defer sf.mu.Unlock()
	return sf.building
}

// reset forgets the filter: the partition's markers changed other than by
// batches (dropped, loaded). A build running is dropped when it ends.
func (sf *seenFilter) reset() {
	sf.mu.Lock()
	defer sf.mu.Unlock()
	sf.f, sf.cap, sf.added, sf.building, sf.pending = nil, 0, 0, false, nil
	sf.gen++
}
