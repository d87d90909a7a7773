package state

import (
	"testing"

	"github.com/churnflow/churnflow/operators"
)

func rssFile(t *testing.T) int64 {
	t.Helper()
	n := fileRSS()
	if n < 0 {
		t.Fatal("no RssFile in /proc/self/status")
	}
	return n
}

// trimTables finds the store's table maps and releases their pages, and the
// store still reads them afterwards.
func TestTrimTables(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	ps := s.Partition(0)
	const n = 20_000
	for lo := 0; lo < n; lo += 1000 {
		b := ps.NewBatch()
		for i := lo; i < lo+1000; i++ {
			st := testState(i, int64(1000+i))
			b.Put(mid(i), &st, 0)
		}
		commit(t, b)
	}
	s.Close() // flushes the memtables into tables
	s = openTest(t, dir)
	ps = s.Partition(0)
	count := 0
	if err := ps.Range(t.Context(), func(operators.MemberID, *operators.MemberState) error { count++; return nil }); err != nil || count != n {
		t.Fatalf("Range: %d members, %v", count, err)
	}
	before := rssFile(t)
	maps := trimTables(tableDir(dir))
	after := rssFile(t)
	t.Logf("%d table maps trimmed, RssFile %d -> %d KiB", maps, before>>10, after>>10)
	if maps == 0 {
		t.Fatal("no table maps found in /proc/self/maps")
	}
	// RssFile is the whole process's (test binary pages, other maps), so
	// it is only logged: the benchmark (state_rss_test.go) measures it.
	count = 0
	if err := ps.Range(t.Context(), func(operators.MemberID, *operators.MemberState) error { count++; return nil }); err != nil || count != n {
		t.Fatalf("Range after trim: %d members, %v", count, err)
	}
}
