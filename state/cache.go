package state

import (
	"encoding/binary"
	"hash/maphash"
	"slices"
	"sync"
	"unsafe"

	"github.com/churnflow/churnflow/operators"
)

// cacheShards is the number of independently locked shards of the member
// cache; partition workers writing at the same time rarely meet.
const cacheShards = 16

// cacheEntryOverhead is what the cache charges per entry on top of the
// entry's allocation (cap of kv, which includes the allocator's size-class
// rounding): the entries slot (32 B) and the map slot (a string header and
// a uint32 index, 24 B, plus the control byte, at the swiss table's 7/8
// load factor about 29 B), plus the slack of both after they grow (Go
// maps and slices do not shrink). TestCacheOverhead measures the real cost:
// 84 B per entry beyond key and value for 200,000 entries of 164 B, size-
// class rounding included; the cache charges 96 B plus the rounding.
const cacheEntryOverhead = 96

// memberCache holds committed member states as their values (memberval.go),
// bounded in bytes, evicting with CLOCK (second chance). It is safe for
// concurrent use.
type memberCache struct {
	seed   maphash.Seed
	shards [cacheShards]cacheShard
}

// cacheShard is one lock's worth of the cache. Each entry is a single
// allocation kv = partition (4 bytes) + member id + encoded state; the map
// key is a string aliasing kv's first 4+len(member) bytes, which are never
// written after the entry is made.
type cacheShard struct {
	mu    sync.Mutex
	idx   map[string]uint32
	ents  []cacheEntry
	hand  int
	bytes int64
	limit int64
	epoch uint64 // bumped by every committed change; see getFill
	key   []byte // scratch key for lookups
	_     [40]byte
}

type cacheEntry struct {
	kv   []byte
	klen uint32
	ref  bool
}

func (e *cacheEntry) keyString() string { return unsafe.String(&e.kv[0], int(e.klen)) }
func (e *cacheEntry) size() int64       { return int64(cap(e.kv)) + cacheEntryOverhead }

func newMemberCache(limit int64) *memberCache {
	c := &memberCache{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].idx = make(map[string]uint32)
		c.shards[i].limit = limit / cacheShards
	}
	return c
}

func (c *memberCache) shard(p Partition, id operators.MemberID) *cacheShard {
	h := maphash.String(c.seed, string(id)) ^ uint64(uint32(p))*0x9E3779B97F4A7C15
	return &c.shards[h%cacheShards]
}

// setKey fills the shard's scratch key; the caller holds the lock.
func (sh *cacheShard) setKey(p Partition, id operators.MemberID) []byte {
	sh.key = binary.BigEndian.AppendUint32(sh.key[:0], uint32(p))
	sh.key = append(sh.key, id...)
	return sh.key
}

// get decodes the member's cached state into dst. It returns the shard's
// epoch for getFill when the member is not held.
func (c *memberCache) get(p Partition, id operators.MemberID, dst *operators.MemberState) (hit bool, epoch uint64, err error) {
	sh := c.shard(p, id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, ok := sh.idx[string(sh.setKey(p, id))]
	if !ok {
		return false, sh.epoch, nil
	}
	e := &sh.ents[i]
	e.ref = true
	return true, 0, decodeMemberVal(e.kv[e.klen:], dst)
}

// indexed returns the timer entry's due time recorded in the member's
// cached value (see indexedDue), and whether the member is held.
func (c *memberCache) indexed(p Partition, id operators.MemberID, prevDue int64) (int64, bool, error) {
	sh := c.shard(p, id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, ok := sh.idx[string(sh.setKey(p, id))]
	if !ok {
		return 0, false, nil
	}
	e := &sh.ents[i]
	idx, err := indexedDue(e.kv[e.klen:], prevDue)
	return idx, true, err
}

// getFill caches a state read from Badger after a miss, unless a commit
// changed the shard since the miss (epoch): the read might be older than
// what that commit wrote.
func (c *memberCache) getFill(p Partition, id operators.MemberID, val []byte, epoch uint64) {
	sh := c.shard(p, id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.epoch != epoch {
		return
	}
	if _, ok := sh.idx[string(sh.setKey(p, id))]; ok {
		return
	}
	sh.insert(val)
}

// put stores a committed state.
func (c *memberCache) put(p Partition, id operators.MemberID, val []byte) {
	sh := c.shard(p, id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.epoch++
	i, ok := sh.idx[string(sh.setKey(p, id))]
	if !ok {
		sh.insert(val)
		return
	}
	e := &sh.ents[i]
	e.ref = true
	if need := int(e.klen) + len(val); need <= cap(e.kv) {
		e.kv = append(e.kv[:e.klen], val...)
		return
	}
	// Reallocate: the map key aliases the old kv, so re-key it.
	old := e.size()
	delete(sh.idx, e.keyString())
	e.kv = append(slices.Grow([]byte(nil), int(e.klen)+len(val)), e.kv[:e.klen]...)
	e.kv = append(e.kv, val...)
	sh.idx[e.keyString()] = i
	sh.bytes += e.size() - old
	sh.evict(int(i))
}

// remove forgets a member (deleted by a commit).
func (c *memberCache) remove(p Partition, id operators.MemberID) {
	sh := c.shard(p, id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.epoch++
	if i, ok := sh.idx[string(sh.setKey(p, id))]; ok {
		sh.removeAt(int(i))
	}
}

// dropPartition forgets every member of p.
func (c *memberCache) dropPartition(p Partition) {
	var pb [4]byte
	binary.BigEndian.PutUint32(pb[:], uint32(p))
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		sh.epoch++
		for j := 0; j < len(sh.ents); {
			if [4]byte(sh.ents[j].kv[:4]) == pb {
				sh.removeAt(j) // moves the last entry to j
				continue
			}
			j++
		}
		sh.mu.Unlock()
	}
}

// stats returns the entries held and the bytes charged.
func (c *memberCache) stats() (n, bytes int64) {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		n += int64(len(sh.ents))
		bytes += sh.bytes
		sh.mu.Unlock()
	}
	return n, bytes
}

// insert adds the entry for the scratch key; the caller holds the lock.
// A new entry starts without its reference bit, so members seen once are
// evicted before members read again; evict spares it on this insert.
func (sh *cacheShard) insert(val []byte) {
	n := len(sh.key) + len(val)
	if int64(n)+cacheEntryOverhead > sh.limit {
		return
	}
	kv := append(slices.Grow([]byte(nil), n), sh.key...)
	kv = append(kv, val...)
	sh.ents = append(sh.ents, cacheEntry{kv: kv, klen: uint32(len(sh.key))})
	i := len(sh.ents) - 1
	e := &sh.ents[i]
	sh.idx[e.keyString()] = uint32(i)
	sh.bytes += e.size()
	sh.evict(i)
}

// evict runs the clock hand until the shard is within its limit, sparing
// entry keep (the one just written). Each entry passed over loses its
// reference bit; the first without one is evicted. Amortised O(1): an
// entry's bit is cleared at most once per reference.
func (sh *cacheShard) evict(keep int) {
	for sh.bytes > sh.limit && len(sh.ents) > 1 {
		if sh.hand >= len(sh.ents) {
			sh.hand = 0
		}
		e := &sh.ents[sh.hand]
		if e.ref || sh.hand == keep {
			e.ref = false
			sh.hand++
			continue
		}
		last := len(sh.ents) - 1
		if keep == last {
			keep = sh.hand // removeAt moves it into the hand's slot
		}
		sh.removeAt(sh.hand)
	}
}

// removeAt deletes entry i, moving the last entry into its slot.
func (sh *cacheShard) removeAt(i int) {
	e := &sh.ents[i]
	delete(sh.idx, e.keyString())
	sh.bytes -= e.size()
	last := len(sh.ents) - 1
	if i != last {
		sh.ents[i] = sh.ents[last]
		sh.idx[sh.ents[i].keyString()] = uint32(i)
	}
	sh.ents[last] = cacheEntry{}
	sh.ents = sh.ents[:last]
	if len(sh.ents) == 0 {
		sh.hand = 0
	}
}
