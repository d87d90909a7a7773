package state

import (
	"encoding/binary"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/VictoriaMetrics/fastcache"

	"github.com/churnflow/churnflow/operators"
)

// memberCache holds committed member states as their values (memberval.go),
// bounded in bytes, in fastcache: off the Go heap (memory-mapped chunks of
// 64 KiB), indexed by a map of integers. The garbage collector neither
// scans nor marks any of it. With the cache on the heap, one object per
// member, marking the cache's hundreds of thousands of objects on every
// collection took over a third of churnflow's CPU at 1,000,000 members
// (docs/performance.md).
//
// Eviction is first in, first out by write, per fastcache bucket: a put
// moves a member to the front. Every event a member has is committed with
// a put, so this keeps the members written last, which are the members
// seen last. Entries of 64 KiB or more (key and value) are not held; they
// are read from Badger every time.
//
// The key is the partition, the partition's generation and the member id;
// dropPartition moves a partition to a new generation, which makes its
// entries unreachable (they are overwritten as the cache cycles). The cache
// is safe for concurrent use.
type memberCache struct {
	fc      *fastcache.Cache
	seed    maphash.Seed
	stripes [cacheStripes]cacheStripe
	gens    atomic.Pointer[[]*atomic.Uint32] // by partition; grown under grow
	grow    sync.Mutex
}

// cacheStripes is the number of stripe locks: operations on members of
// different stripes never wait for each other.
const cacheStripes = 64

// cacheStripe serialises the cache operations on a group of members (a
// commit's put, a reader's lookup and its fill after a miss) and holds their
// scratch buffers, so that a hit allocates nothing. epoch counts the
// commits that touched the stripe; see get and getFill. While a scan runs
// (scans > 0, beginScan), touched holds the keys of the members commits
// changed; see fillScan. hits and misses count get's answers (under mu: a
// lookup takes the lock anyway, and a shared atomic counter would be one
// cache line for every worker).
type cacheStripe struct {
	mu      sync.Mutex
	epoch   uint64
	scans   int
	touched map[string]struct{}
	hits    uint64
	misses  uint64
	key     []byte   // scratch, under mu
	val     []byte   // scratch, under mu
	_       [32]byte // to 128 bytes: two cache lines of its own
}

// minCacheBytes is fastcache's smallest capacity: one 64 KiB chunk for
// each of its 512 buckets.
const minCacheBytes = 512 * 64 << 10

// cacheCapacity is what a cache asked to hold limit bytes holds: limit
// rounded down to whole chunks per bucket (fastcache rounds up), at least
// minCacheBytes.
func cacheCapacity(limit int64) int64 {
	return max(limit/minCacheBytes*minCacheBytes, minCacheBytes)
}

func newMemberCache(limit int64) *memberCache {
	return &memberCache{fc: fastcache.New(int(cacheCapacity(limit))), seed: maphash.MakeSeed()}
}

// close releases the cache's memory to fastcache's pool of chunks, for the
// next store of the process.
func (c *memberCache) close() { c.fc.Reset() }

// gen returns p's generation counter.
func (c *memberCache) gen(p Partition) *atomic.Uint32 {
	if gs := c.gens.Load(); gs != nil && int(p) < len(*gs) {
		return (*gs)[p]
	}
	c.grow.Lock()
	defer c.grow.Unlock()
	var gs []*atomic.Uint32
	if old := c.gens.Load(); old != nil {
		gs = *old
	}
	if int(p) >= len(gs) {
		gs = append(slices.Clone(gs), make([]*atomic.Uint32, int(p)+1-len(gs))...)
		for i := range gs {
			if gs[i] == nil {
				gs[i] = new(atomic.Uint32)
			}
		}
		c.gens.Store(&gs)
	}
	return gs[p]
}

// stripeOf returns the index of the member's stripe.
func (c *memberCache) stripeOf(p Partition, id operators.MemberID) int {
	h := maphash.String(c.seed, string(id)) ^ uint64(uint32(p))*0x9E3779B97F4A7C15
	return int(h % cacheStripes)
}

// lock locks the member's stripe and fills its scratch key; the caller
// unlocks st.mu.
func (c *memberCache) lock(p Partition, id operators.MemberID) *cacheStripe {
	st := &c.stripes[c.stripeOf(p, id)]
	st.mu.Lock()
	st.key = binary.BigEndian.AppendUint32(st.key[:0], uint32(p))
	st.key = binary.BigEndian.AppendUint32(st.key, c.gen(p).Load())
	st.key = append(st.key, id...)
	return st
}

// get decodes the member's cached state into dst and returns its timer
// entry's due time (indexedDue). When the member is not held it returns
// the stripe's epoch, for getFill.
func (c *memberCache) get(p Partition, id operators.MemberID, dst *operators.MemberState) (hit bool, epoch uint64, indexed int64, err error) {
	st := c.lock(p, id)
	defer st.mu.Unlock()
	var ok bool
	if st.val, ok = c.fc.HasGet(st.val[:0], st.key); !ok {
		st.misses++
		return false, st.epoch, 0, nil
	}
	st.hits++
	indexed, err = decodeMemberVal(st.val, dst)
	return true, 0, indexed, err
}

// lookups returns how many member reads (get) the cache has answered since
// it was made, and how many it did not hold.
func (c *memberCache) lookups() (hits, misses int64) {
	for i := range c.stripes {
		st := &c.stripes[i]
		st.mu.Lock()
		hits += int64(st.hits)
		misses += int64(st.misses)
		st.mu.Unlock()
	}
	return hits, misses
}

// indexed returns the timer entry's due time recorded in the member's
// cached value (see indexedDue), and whether the member is held.
func (c *memberCache) indexed(p Partition, id operators.MemberID, prevDue int64) (int64, bool, error) {
	st := c.lock(p, id)
	defer st.mu.Unlock()
	var ok bool
	if st.val, ok = c.fc.HasGet(st.val[:0], st.key); !ok {
		return 0, false, nil
	}
	idx, err := indexedDue(st.val, prevDue)
	return idx, true, err
}

// getFill caches a state read from Badger after a miss, unless a commit
// touched the member's stripe since the miss (epoch): the read might be
// older than what that commit wrote. fastcache itself skips entries too
// large to hold.
func (c *memberCache) getFill(p Partition, id operators.MemberID, val []byte, epoch uint64) {
	st := c.lock(p, id)
	defer st.mu.Unlock()
	if st.epoch != epoch {
		return
	}
	c.fc.Set(st.key, val)
}

// beginScan starts a scan's fills (fillScan) of partition p: until
// endScan, the stripes record every member a commit puts or removes, so
// that the scan does not overwrite a state committed after its snapshot.
// Called before the scan's snapshot is taken; it returns p's generation,
// which a drop of the partition changes (ending the scan's fills).
func (c *memberCache) beginScan(p Partition) uint32 {
	for i := range c.stripes {
		st := &c.stripes[i]
		st.mu.Lock()
		st.scans++
		st.mu.Unlock()
	}
	return c.gen(p).Load()
}

// endScan ends a scan begun by beginScan; the stripes forget the members
// they recorded when no scan is left.
func (c *memberCache) endScan() {
	for i := range c.stripes {
		st := &c.stripes[i]
		st.mu.Lock()
		if st.scans--; st.scans == 0 {
			st.touched = nil
		}
		st.mu.Unlock()
	}
}

// fillScan caches a state read by a scan of partition p begun at
// generation gen, unless a commit put or removed the member since the scan
// began (the snapshot might be older than what that commit wrote) or the
// partition was dropped. Unlike getFill it looks at the member, not at its
// stripe, so that a scan running beside the partition's batches keeps
// filling.
func (c *memberCache) fillScan(p Partition, id operators.MemberID, val []byte, gen uint32) {
	st := c.lock(p, id)
	defer st.mu.Unlock()
	if c.gen(p).Load() != gen {
		return
	}
	if _, ok := st.touched[string(st.key)]; ok {
		return
	}
	c.fc.Set(st.key, val)
}

// touch records that a commit changed the member of the locked stripe st,
// while a scan runs.
func (st *cacheStripe) touch() {
	st.epoch++
	if st.scans == 0 {
		return
	}
	if st.touched == nil {
		st.touched = make(map[string]struct{})
	}
	st.touched[string(st.key)] = struct{}{}
}

// put stores a committed state.
func (c *memberCache) put(p Partition, id operators.MemberID, val []byte) {
	st := c.lock(p, id)
	defer st.mu.Unlock()
	st.touch()
	if len(st.key)+len(val) >= 64<<10-4 {
		c.fc.Del(st.key) // too large to hold: forget the older state
		return
	}
	c.fc.Set(st.key, val)
}

// remove forgets a member (deleted by a commit).
func (c *memberCache) remove(p Partition, id operators.MemberID) {
	st := c.lock(p, id)
	defer st.mu.Unlock()
	st.touch()
	c.fc.Del(st.key)
}

// dropPartition forgets every member of p: it moves p to a new generation,
// and ends every fill in flight (their reads may be of the old state).
func (c *memberCache) dropPartition(p Partition) {
	for i := range c.stripes {
		c.stripes[i].mu.Lock()
	}
	c.gen(p).Add(1)
	for i := range c.stripes {
		c.stripes[i].epoch++
		c.stripes[i].mu.Unlock()
	}
}

// stats returns the entries held (including those of dropped partitions
// not yet overwritten) and the bytes of memory the cache has taken.
func (c *memberCache) stats() (n, bytes int64) {
	var s fastcache.Stats
	c.fc.UpdateStats(&s)
	return int64(s.EntriesCount), int64(s.BytesSize)
}
