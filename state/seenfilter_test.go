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
	seen := func(id string) bool {
		t.Helper()
		b := ps.NewBatch()
		defer b.Discard()
		ok, err := b.Seen(id)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	commit := func(ids ...string) {
		t.Helper()
		b := ps.NewBatch()
		for _, id := range ids {
			b.MarkSeen(mid(1), id)
		}
		if err := b.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	commit("before-1", "before-2") // the filter is not built yet
	if !seen("before-1") || seen("never") {
		t.Fatal("markers committed before the filter was built")
	}
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
	st := &ps.st.seen
	st.mu.Lock()
	st.added = st.cap + 1 // force a rebuild on the next check
	st.mu.Unlock()
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
