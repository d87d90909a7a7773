package state

import (
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/churnflow/churnflow/operators"
)

func TestCacheBoundedAndClock(t *testing.T) {
	c := newMemberCache(cacheShards * 4096)
	val := make([]byte, 100)
	st := testState(1, 0)
	enc := st.AppendEncode(nil)
	// A hot member, read between inserts, survives a stream of cold ones.
	c.put(0, "hot", enc)
	var got operators.MemberState
	for i := range 5000 {
		c.put(0, mid(i), val)
		if hit, _, _ := c.get(0, "hot", &got); !hit {
			t.Fatalf("hot member evicted after %d inserts", i)
		}
		for j := range c.shards {
			if sh := &c.shards[j]; sh.bytes > sh.limit {
				t.Fatalf("shard %d holds %d bytes, limit %d", j, sh.bytes, sh.limit)
			}
		}
	}
	n, bytes := c.stats()
	if n == 0 || n >= 5000 || bytes > cacheShards*4096 {
		t.Errorf("cache holds %d entries, %d bytes", n, bytes)
	}
	// Every entry is reachable through the index, and vice versa.
	for i := range c.shards {
		sh := &c.shards[i]
		if len(sh.idx) != len(sh.ents) {
			t.Fatalf("shard %d: %d index entries, %d entries", i, len(sh.idx), len(sh.ents))
		}
		var sum int64
		for j := range sh.ents {
			if sh.idx[sh.ents[j].keyString()] != uint32(j) {
				t.Fatalf("shard %d entry %d not indexed", i, j)
			}
			sum += sh.ents[j].size()
		}
		if sum != sh.bytes {
			t.Fatalf("shard %d: accounted %d bytes, entries sum to %d", i, sh.bytes, sum)
		}
	}
	c.dropPartition(0)
	if n, b := c.stats(); n != 0 || b != 0 {
		t.Errorf("after drop: %d entries, %d bytes", n, b)
	}
}

// TestCacheGetNoAlloc checks that a cache hit allocates nothing beyond the
// decode (a state without strings or lists decodes without allocating).
func TestCacheGetNoAlloc(t *testing.T) {
	c := newMemberCache(64 * mib)
	st := operators.MemberState{Clock: 100, Due: 200}
	c.put(3, "M1", st.AppendEncode(nil))
	var got operators.MemberState
	allocs := testing.AllocsPerRun(100, func() {
		if hit, _, err := c.get(3, "M1", &got); !hit || err != nil {
			t.Fatal("miss")
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per cache hit", allocs)
	}
}

// TestCacheOverhead measures the heap a cached entry costs beyond its
// key and value bytes and checks the accounting does not undercount it.
func TestCacheOverhead(t *testing.T) {
	const n = 200_000
	val := make([]byte, 150)
	ids := make([]operators.MemberID, n)
	for i := range ids {
		ids[i] = operators.MemberID(fmt.Sprintf("M%09d", i))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c := newMemberCache(1 << 40)
	for i, id := range ids {
		val[0] = byte(i)
		c.put(7, id, val)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	payload := int64(n * (4 + len(ids[0]) + len(val)))
	heap := int64(after.HeapAlloc - before.HeapAlloc)
	perEntry := float64(heap-payload) / n
	_, charged := c.stats()
	t.Logf("per entry: %.1f bytes heap beyond key+value (%d B payload each); charged %.1f",
		perEntry, payload/n, float64(charged-payload)/n)
	if charged < heap*95/100 {
		t.Errorf("cache charges %d bytes for %d bytes of heap", charged, heap)
	}
	runtime.KeepAlive(c)
}

// TestConcurrentReadsWhileCommitting runs readers of every kind against a
// writer (for -race), checking that Get never sees an older state than the
// last commit that finished before it started.
func TestConcurrentReadsWhileCommitting(t *testing.T) {
	s := openTest(t, "")
	// A small cache, so that evictions and refills race with commits.
	s.cache = newMemberCache(cacheShards * 2048)
	ps := s.Partition(0)
	const members, rounds = 50, 40
	var mu sync.Mutex
	committed := 0 // rounds fully committed
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var st operators.MemberState
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				floor := committed
				mu.Unlock()
				id := mid((i + r) % members)
				ok, err := ps.Get(id, &st)
				if err != nil {
					t.Error(err)
					return
				}
				if ok && int(st.PointsBalance) < floor-1 {
					t.Errorf("Get(%s) read round %d after round %d committed", id, st.PointsBalance, floor)
					return
				}
				if r == 0 {
					ps.Due(t.Context(), 1<<62, 10, func(operators.MemberID, int64) error { return nil })
					ps.Outbox(t.Context(), func(uint64, OutboxRecord) error { return nil })
					s.Stats()
				}
			}
		}()
	}
	prevDue := int64(0)
	for round := range rounds {
		b := ps.NewBatch()
		for i := range members {
			st := testState(0, int64(1000+round))
			st.PointsBalance = int64(round)
			b.Put(mid(i), &st, prevDue)
			b.Append(mid(i), OutboxRecord{Topic: "a"})
		}
		prevDue = int64(1000 + round)
		commit(t, b)
		mu.Lock()
		committed = round
		mu.Unlock()
	}
	close(stop)
	wg.Wait()
}
