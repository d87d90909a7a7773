package state

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"unsafe"

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

// Store.trim finds the store's table maps and releases their pages; the
// tables' pages stay in the page cache (so the next read of one does not
// wait for the disk), and the store still reads them afterwards.
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
	rangeAll := func(when string) {
		t.Helper()
		count := 0
		if err := ps.Range(t.Context(), func(operators.MemberID, *operators.MemberState) error { count++; return nil }); err != nil || count != n {
			t.Fatalf("Range %s: %d members, %v", when, count, err)
		}
	}
	rangeAll("before the trim")
	cachedBefore, total := pageCacheResidency(t, dir)
	before := rssFile(t)
	maps := s.trim(tableDir(dir))
	after := rssFile(t)
	t.Logf("%d table maps trimmed, RssFile %d -> %d KiB", maps, before>>10, after>>10)
	if maps == 0 {
		t.Fatal("no table maps found in /proc/self/maps")
	}
	// RssFile is the whole process's (test binary pages, other maps), so
	// it is only logged: the benchmark (state_rss_test.go) measures it.
	cached, _ := pageCacheResidency(t, dir)
	t.Logf("table pages in the page cache: %d of %d before the trim, %d after", cachedBefore, total, cached)
	if cached < cachedBefore*9/10 {
		t.Errorf("the trim evicted the live tables' pages from the page cache: %d of %d pages left, want at least 90 %% of %d", cached, total, cachedBefore)
	}
	rangeAll("after the trim")
}

// pageCacheResidency returns how many of the pages of dir's table files
// are in the page cache, and how many they have, by mapping each file
// anew and asking mincore.
func pageCacheResidency(t *testing.T, dir string) (cached, total int) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no table files in %s: %v", dir, err)
	}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := f.Stat()
		if err != nil || fi.Size() == 0 {
			f.Close()
			continue
		}
		data, err := syscall.Mmap(int(f.Fd()), 0, int(fi.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		vec := make([]byte, (len(data)+os.Getpagesize()-1)/os.Getpagesize())
		_, _, errno := syscall.Syscall(syscall.SYS_MINCORE, uintptr(unsafe.Pointer(&data[0])), uintptr(len(data)), uintptr(unsafe.Pointer(&vec[0])))
		syscall.Munmap(data)
		if errno != 0 {
			t.Fatalf("mincore %s: %v", name, errno)
		}
		for _, v := range vec {
			cached += int(v & 1)
		}
		total += len(vec)
	}
	return cached, total
}
