package state

import (
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/churnflow/churnflow/operators"
)

// TestCacheBounded checks that the cache stays within its capacity while
// many times as much is written, that a member written between the others
// (as every event's commit writes its member) stays, that a fill after a
// commit is refused, and that dropping a partition forgets its members only.
func TestCacheBounded(t *testing.T) {
	c := newMemberCache(minCacheBytes)
	val := make([]byte, 200)
	st := testState(1, 0)
	enc := st.AppendEncode(nil)
	var got operators.MemberState
	const n = 4 * minCacheBytes / 200 // four times the capacity
	for i := range n {
		c.put(0, mid(i), val)
		if i%1000 == 0 {
			c.put(0, "hot", enc)
		}
	}
	n0, bytes := c.stats()
	if bytes > minCacheBytes || n0 == 0 || n0 >= n {
		t.Errorf("after %d puts: %d entries, %d bytes (capacity %d)", n, n0, bytes, minCacheBytes)
	}
	if hit, _, _, err := c.get(0, "hot", &got); !hit || err != nil || got.Clock != st.Clock {
		t.Errorf("hot member: hit %v, err %v, clock %d", hit, err, got.Clock)
	}
	if hit, _, _, _ := c.get(0, mid(0), &got); hit {
		t.Error("the first member written is still held after four times the capacity")
	}

	// A fill with the epoch of a miss before a commit is refused.
	hit, epoch, _, _ := c.get(1, "M1", &got)
	if hit {
		t.Fatal("M1 held before any put")
	}
	c.put(1, "M1", enc)
	older := testState(2, 0)
	c.getFill(1, "M1", older.AppendEncode(nil), epoch)
	if hit, _, _, _ := c.get(1, "M1", &got); !hit || got.Clock != st.Clock {
		t.Errorf("after a stale fill: hit %v, clock %d, want the committed %d", hit, got.Clock, st.Clock)
	}
	_, epoch, _, _ = c.get(1, "M2", &got)
	c.getFill(1, "M2", enc, epoch)
	if hit, _, _, _ := c.get(1, "M2", &got); !hit {
		t.Error("a fill with no commit since the miss was not held")
	}

	c.dropPartition(0)
	if hit, _, _, _ := c.get(0, "hot", &got); hit {
		t.Error("partition 0 dropped, its member still held")
	}
	if hit, _, _, _ := c.get(1, "M1", &got); !hit {
		t.Error("partition 1's member forgotten when partition 0 was dropped")
	}
	c.remove(1, "M1")
	if hit, _, _, _ := c.get(1, "M1", &got); hit {
		t.Error("removed member still held")
	}
}

// TestCacheTooLarge checks that a state too large to hold replaces the
// older one by nothing: the next read misses instead of reading the old.
func TestCacheTooLarge(t *testing.T) {
	c := newMemberCache(minCacheBytes)
	st := testState(1, 0)
	c.put(0, "M1", st.AppendEncode(nil))
	c.put(0, "M1", make([]byte, 70<<10))
	var got operators.MemberState
	if hit, _, _, _ := c.get(0, "M1", &got); hit {
		t.Error("a 70 KiB state left the older one readable")
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
		if hit, _, _, err := c.get(3, "M1", &got); !hit || err != nil {
			t.Fatal("miss")
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per cache hit", allocs)
	}
}

// TestCacheOffHeap checks that the cache's entries are off the Go heap:
// what the heap gains per entry is the index (fastcache's map of hashes),
// far below the entry's bytes, and the memory the cache reports covers
// the entries.
func TestCacheOffHeap(t *testing.T) {
	const n = 200_000
	val := make([]byte, 150)
	ids := make([]operators.MemberID, n)
	for i := range ids {
		ids[i] = operators.MemberID(fmt.Sprintf("M%09d", i))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c := newMemberCache(1 << 30)
	for i, id := range ids {
		val[0] = byte(i)
		c.put(7, id, val)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	payload := int64(n * (8 + len(ids[0]) + len(val)))
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	held, charged := c.stats()
	t.Logf("%d entries: %.1f bytes of Go heap each; %.1f bytes of chunks each for %d of key and value",
		held, float64(heap)/n, float64(charged)/n, payload/n)
	if held != n {
		t.Errorf("%d entries held, want %d", held, n)
	}
	if heap > payload/4 {
		t.Errorf("the heap grew by %d bytes for %d bytes of entries: they are on the heap", heap, payload)
	}
	if charged < payload {
		t.Errorf("cache reports %d bytes for %d bytes of entries", charged, payload)
	}
	runtime.KeepAlive(c)
}

// TestConcurrentReadsWhileCommitting runs readers of every kind against a
// writer (for -race), checking that Get never sees an older state than the
// last commit that finished before it started.
func TestConcurrentReadsWhileCommitting(t *testing.T) {
	s := openTest(t, "")
	// A small cache, so that evictions and refills race with commits.
	s.cache = newMemberCache(minCacheBytes)
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

// TestUsageCountsMemberReads checks Usage's read counts through the store:
// a new member and a member after a restart (the cache starts empty) are
// misses, a member read again or just committed is a hit.
func TestUsageCountsMemberReads(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	ps := s.Partition(0)
	var got operators.MemberState
	reads := func(s *Store) (hits, misses int64) {
		t.Helper()
		u, err := s.Usage()
		if err != nil {
			t.Fatal(err)
		}
		return u.CacheHits, u.CacheMisses
	}
	if found, err := ps.Get("A", &got); found || err != nil {
		t.Fatalf("new member: found %v, err %v", found, err)
	}
	if h, m := reads(s); h != 0 || m != 1 {
		t.Errorf("after a new member's read: %d hits, %d misses; want 0, 1", h, m)
	}
	st := testState(1, 0)
	b := ps.NewBatch()
	b.Put("A", &st, 0)
	if err := b.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if found, err := ps.Get("A", &got); !found || err != nil {
			t.Fatalf("committed member: found %v, err %v", found, err)
		}
	}
	if h, m := reads(s); h != 3 || m != 1 {
		t.Errorf("after three reads of a committed member: %d hits, %d misses; want 3, 1", h, m)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	ps = s.Partition(0)
	for range 2 {
		if found, err := ps.Get("A", &got); !found || err != nil || got.Clock != st.Clock {
			t.Fatalf("after a restart: found %v, err %v, clock %d want %d", found, err, got.Clock, st.Clock)
		}
	}
	if h, m := reads(s); h != 1 || m != 1 {
		t.Errorf("after a restart and two reads: %d hits, %d misses; want 1, 1 (the first read fills the cache)", h, m)
	}
}

// reopenedWithMembers commits members 0 to n-1 to partition p of a new
// store, and reopens it (an empty member cache); it returns the store and
// its directory.
func reopenedWithMembers(t *testing.T, p Partition, n int) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	s := openTest(t, dir)
	b := s.Partition(p).NewBatch()
	putMembers(b, 0, n)
	commit(t, b)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return openTest(t, dir), dir
}

// TestScanMembersWarms checks that a member scan loads a reopened store's
// states into the empty cache (the reads after it are hits, of the right
// states).
func TestScanMembersWarms(t *testing.T) {
	const n = 100
	s, _ := reopenedWithMembers(t, 3, n)
	ps := s.Partition(3)
	seen := 0
	sc, err := ps.ScanMembers()
	if err != nil {
		t.Fatal(err)
	}
	err = sc.Range(t.Context(), func(operators.MemberID, *operators.MemberState) error { seen++; return nil })
	sc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if seen != n {
		t.Fatalf("the scan saw %d members, want %d", seen, n)
	}
	var got operators.MemberState
	for i := range n {
		if found, err := ps.Get(mid(i), &got); !found || err != nil || got.Clock != testState(i, 0).Clock {
			t.Fatalf("member %d: found %v, err %v, clock %d", i, found, err, got.Clock)
		}
	}
	if u, err := s.Usage(); err != nil || u.CacheHits != n || u.CacheMisses != 0 {
		t.Errorf("reads after the scan: %d hits, %d misses (err %v); want %d, 0", u.CacheHits, u.CacheMisses, err, n)
	}
}

// TestScanMembersBesideCommits: a scan whose Range runs after commits that
// followed its snapshot caches every member those commits did not change
// (the members of the stripes they touched too), and never a state older
// than a commit's: a member changed, deleted, or changed and then evicted
// from the cache keeps its committed state. A scan overtaken by a drop of
// the partition caches nothing.
func TestScanMembersBesideCommits(t *testing.T) {
	const n = 200
	s, dir := reopenedWithMembers(t, 3, n)
	ps := s.Partition(3)
	sc, err := ps.ScanMembers()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	// After the snapshot: members 0-9 changed, 10 deleted, 11 changed and
	// evicted.
	changed := func(i int) operators.MemberState { st := testState(i, 0); st.Clock += 1000; return st }
	b := ps.NewBatch()
	for i := range 12 {
		if i == 10 {
			b.Delete(mid(i), 0)
			continue
		}
		st := changed(i)
		b.Put(mid(i), &st, 0)
	}
	commit(t, b)
	cst := s.cache.lock(3, mid(11))
	s.cache.fc.Del(cst.key)
	cst.mu.Unlock()
	seen := 0
	if err := sc.Range(t.Context(), func(operators.MemberID, *operators.MemberState) error { seen++; return nil }); err != nil {
		t.Fatal(err)
	}
	sc.Close()
	if seen != n {
		t.Fatalf("the scan saw %d members, want the snapshot's %d", seen, n)
	}
	var got operators.MemberState
	for i := range n {
		want := testState(i, 0)
		if i < 12 && i != 10 {
			want = changed(i)
		}
		found, err := ps.Get(mid(i), &got)
		switch {
		case err != nil:
			t.Fatal(err)
		case i == 10 && found:
			t.Errorf("member 10, deleted after the snapshot, is found (clock %d)", got.Clock)
		case i != 10 && (!found || got.Clock != want.Clock):
			t.Errorf("member %d: found %v, clock %d, want %d", i, found, got.Clock, want.Clock)
		}
	}
	// Misses: the deleted member and the evicted one, nothing else.
	if u, err := s.Usage(); err != nil || u.CacheHits != n-2 || u.CacheMisses != 2 {
		t.Errorf("reads after the scan: %d hits, %d misses (err %v); want %d, 2", u.CacheHits, u.CacheMisses, err, n-2)
	}

	// A drop after the snapshot: the scan fills nothing.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	ps = s.Partition(3)
	if sc, err = ps.ScanMembers(); err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	s.cache.dropPartition(3)
	if err := sc.Range(t.Context(), func(operators.MemberID, *operators.MemberState) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.cache.stats(); n != 0 {
		t.Errorf("a scan overtaken by a drop cached %d members", n)
	}
}
