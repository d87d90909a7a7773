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

func TestParseRssFile(t *testing.T) {
	status := "Name:\tchurnflow\nVmRSS:\t  500000 kB\nRssAnon:\t  400000 kB\nRssFile:\t   70000 kB\nRssShmem:\t       0 kB\n"
	if got, want := parseRssFile([]byte(status)), int64(70000)<<10; got != want {
		t.Errorf("parseRssFile = %d, want %d", got, want)
	}
	for _, bad := range []string{"VmRSS:\t1 kB\n", "RssFile:\tmany kB\n", "RssFile:\t12 MB\n"} {
		if got := parseRssFile([]byte(bad)); got != -1 {
			t.Errorf("parseRssFile(%q) = %d, want -1", bad, got)
		}
	}
	if got := fileRSS(); got <= 0 {
		t.Errorf("fileRSS of this process = %d, want a positive size", got)
	}
}
