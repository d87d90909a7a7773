package state

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestSeenFilter: the filter in front of the dedup markers never hides a
// marker: committed in batches (before and after the filter is built),
// loaded, dropped, and across a rebuild.
func TestSeenFilter(t *testing.T) {
	s := openTest(t, "")
	ps := s.Partition(2)
	ctx := context.Background()
	seen := func(id string) bool { t.Helper(); return seenIn(t, ps, id) }
	commit := func(ids ...string) { t.Helper(); commitMarks(t, ps, ids...) }
	commit("before-1", "before-2") // the filter is not built yet
	if !seen("before-1") || seen("never") {
		t.Fatal("markers committed before the filter was built")
	}
	st := &ps.st.seen
	waitFilter(t, st)
	var ids []string
	for i := range 5000 {
		ids = append(ids, fmt.Sprintf("ev-%05d", i))
	}
	commit(ids...) // added to the built filter
	misses := 0
	for _, id := range ids {
		if !seen(id) {
			t.Fatalf("%s committed but not seen", id)
		}
	}
	for i := range 5000 {
		if seen(fmt.Sprintf("new-%05d", i)) {
			misses++
		}
	}
	if misses != 0 {
		t.Errorf("%d of 5000 new ids seen", misses)
	}
	st.mu.Lock()
	st.added = st.cap + 1 // force a rebuild on the next check
	before := st.f
	st.mu.Unlock()
	if !seen("before-2") || !seen("ev-04999") || seen("new-x") {
		t.Error("while rebuilding")
	}
	waitFilter(t, st)
	if st.f == before {
		t.Error("a forced rebuild kept the old filter")
	}
	if !seen("before-2") || !seen("ev-04999") || seen("new-x") {
		t.Error("after a rebuild")
	}
	ld, err := ps.NewLoader(ctx) // drops the partition
	if err != nil {
		t.Fatal(err)
	}
	if err := ld.Marker("loaded-1", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ld.Finish(ctx, map[string]int64{"in": 1}, 1); err != nil {
		t.Fatal(err)
	}
	if !seen("loaded-1") || seen("ev-00001") {
		t.Error("after a load: the loaded marker must be seen, the dropped ones not")
	}
	if err := s.DropPartition(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if seen("loaded-1") {
		t.Error("a dropped marker is still seen")
	}
}

// seenIn reports whether a new batch of ps sees eventID.
func seenIn(t testing.TB, ps *PartitionStore, eventID string) bool {
	t.Helper()
	b := ps.NewBatch()
	defer b.Discard()
	ok, err := b.Seen(eventID)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// commitMarks commits a batch of ps marking eventIDs as seen.
func commitMarks(t testing.TB, ps *PartitionStore, eventIDs ...string) {
	t.Helper()
	b := ps.NewBatch()
	for _, id := range eventIDs {
		b.MarkSeen(mid(1), id)
	}
	if err := b.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// waitFilter waits for the partition's filter builds to end and checks
// that one made the filter.
func waitFilter(t testing.TB, sf *seenFilter) {
	t.Helper()
	sf.runs.Wait()
	sf.mu.Lock()
	defer sf.mu.Unlock()
	if sf.f == nil {
		t.Fatal("no dedup filter after its builds")
	}
}

// filterHas reports whether the built filter holds eventID.
func filterHas(sf *seenFilter, eventID string) bool {
	sf.mu.Lock()
	defer sf.mu.Unlock()
	var k [8]byte
	return sf.f != nil && sf.f.Test(filterKey(&k, seenHashString(eventID)))
}

// TestSeenFilterBuildsInBackground: while the filter is built, checks read
// Badger (a committed marker is seen, a new id is not), and the markers
// committed during the build are in the filter it makes; a build that a
// drop overtakes is thrown away.
func TestSeenFilterBuildsInBackground(t *testing.T) {
	s := openTest(t, "")
	ps := s.Partition(1)
	ctx := context.Background()
	commit := func(ids ...string) { t.Helper(); commitMarks(t, ps, ids...) }
	seen := func(id string) bool { t.Helper(); return seenIn(t, ps, id) }
	release := make(chan struct{})
	s.buildHook = func() { <-release }
	commit("old-1", "old-2")
	if !seen("old-1") || seen("new-1") { // starts the build, held by the hook
		t.Fatal("before the filter is built")
	}
	st := &ps.st.seen
	commit("during-1", "during-2") // after the build's snapshot
	if !seen("during-1") || !seen("old-2") {
		t.Fatal("while the filter is built")
	}
	close(release)
	waitFilter(t, st)
	for _, id := range []string{"old-1", "old-2", "during-1", "during-2"} {
		if !filterHas(st, id) {
			t.Errorf("%s: committed but not in the built filter", id)
		}
	}

	// A rebuild overtaken by a drop: its filter is not kept.
	release = make(chan struct{})
	s.buildHook = func() { <-release }
	st.mu.Lock()
	st.added = st.cap + 1
	st.mu.Unlock()
	seen("x") // starts the rebuild
	if err := s.DropPartition(ctx, 1); err != nil {
		t.Fatal(err)
	}
	close(release)
	st.runs.Wait()
	st.mu.Lock()
	dropped := st.f == nil
	st.mu.Unlock()
	if !dropped {
		t.Error("a build overtaken by a drop made the filter")
	}
	s.buildHook = nil
	if seen("old-1") {
		t.Error("a dropped marker is seen")
	}
	waitFilter(t, st)
	if filterHas(st, "old-1") {
		t.Error("the filter built after a drop holds a dropped marker")
	}
}

// TestSeenFilterCloseStopsBuild: Close does not wait for a build to read
// every marker: the build stops, and makes no filter.
func TestSeenFilterCloseStopsBuild(t *testing.T) {
	s := openTest(t, "")
	ps := s.Partition(0)
	b := ps.NewBatch()
	for i := range 10_000 {
		b.MarkSeen(mid(i%100), fmt.Sprintf("ev-%05d", i))
	}
	if err := b.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	release := make(chan struct{})
	s.buildHook = func() { close(started); <-release }
	b = ps.NewBatch()
	if _, err := b.Seen("ev-00001"); err != nil {
		t.Fatal(err)
	}
	b.Discard()
	<-started
	closed := make(chan error)
	go func() { closed <- s.Close() }()
	for !s.isClosed() {
		time.Sleep(time.Millisecond)
	}
	close(release)
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close waits for the filter build")
	}
	st := &ps.st.seen
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.f != nil {
		t.Error("a build stopped by Close made a filter")
	}
}

// BenchmarkSeen: the dedup check of a new event id (the common case) and of
// one already applied, among 200,000 markers, with and without the filter.
func BenchmarkSeen(b *testing.B) {
	for _, filter := range []bool{false, true} {
		s := openTest(b, "")
		s.noFilter = !filter
		ps := s.Partition(0)
		for n := 0; n < 200_000; n += 5000 {
			batch := ps.NewBatch()
			for i := n; i < n+5000; i++ {
				batch.MarkSeen(mid(i%1000), fmt.Sprintf("ev-%07d", i))
			}
			if err := batch.Commit(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		if filter {
			batch := ps.NewBatch()
			if _, err := batch.Seen("start-the-build"); err != nil {
				b.Fatal(err)
			}
			batch.Discard()
			waitFilter(b, &ps.st.seen)
		}
		for _, kind := range []string{"new", "applied"} {
			b.Run(fmt.Sprintf("filter=%v/%s", filter, kind), func(b *testing.B) {
				batch := ps.NewBatch()
				defer batch.Discard()
				prefix := "ev-"
				if kind == "new" {
					prefix = "nw-"
				}
				ids := make([]string, 4096)
				for i := range ids {
					ids[i] = fmt.Sprintf("%s%07d", prefix, (i*7919)%200_000)
				}
				b.ResetTimer()
				for i := range b.N {
					seen, err := batch.Seen(ids[i%len(ids)])
					if err != nil || seen != (kind == "applied") {
						b.Fatalf("Seen = %v, %v", seen, err)
					}
				}
			})
		}
	}
}
