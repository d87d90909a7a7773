package state

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/dgraph-io/badger/v4/options"

	"github.com/churnflow/churnflow/operators"
)

// TestReopenAfterCrashWithSmallerBudget: a writer with a large budget dies
// (no Close), leaving a large write-ahead file; opening the directory with
// the minimum budget must replay it, not exit the process (Badger exits
// when the file does not fit the memtable arena).
func TestReopenAfterCrashWithSmallerBudget(t *testing.T) {
	if dir := os.Getenv("CHURNFLOW_STATE_REOPEN_CHILD"); dir != "" {
		o := DefaultOptions(dir)
		o.MemoryBudget, o.GCInterval = 1<<30, 0
		s, err := Open(o)
		if err != nil {
			t.Fatal(err)
		}
		b := s.Partition(0).NewBatch()
		putMembers(b, 0, 100)
		b.SetOffset("in", 100)
		if err := b.Commit(t.Context()); err != nil {
			t.Fatal(err)
		}
		os.Exit(0) // a crash: no Close, the write-ahead file stays
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestReopenAfterCrashWithSmallerBudget$")
	cmd.Env = append(os.Environ(), "CHURNFLOW_STATE_REOPEN_CHILD="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if memTableNeeded(dir) <= splitMemory(16*mib).MemTable {
		t.Fatalf("the child left no write-ahead file larger than a small memtable (need %d)", memTableNeeded(dir))
	}
	s := openTest(t, dir, func(o *Options) { o.MemoryBudget = 16 * mib })
	off, err := s.Partition(0).Offsets()
	if err != nil || off["in"] != 100 {
		t.Fatalf("offsets after reopen: %v, %v", off, err)
	}
	var st operators.MemberState
	if ok, err := s.Partition(0).Get(mid(42), &st); !ok || err != nil {
		t.Fatalf("member 42 after reopen: %v, %v", ok, err)
	}
}

// TestReopenWithEmptyValueLog: a crash between creating a value-log file
// and writing its header (value-log GC rotates files) leaves a zero-length
// .vlog that Badger v4.9.6 refuses to open ("Open existing file: ... Create
// a new file"). Such a file holds no entry, so the store removes it and
// opens. Found by state/crash_test.go.
func TestReopenWithEmptyValueLog(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	b := s.Partition(0).NewBatch()
	st := testState(1, 0)
	b.Put(mid(1), &st, 0)
	b.SetOffset("in", 1)
	if err := b.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "000099.vlog"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s2 := openTest(t, dir)
	if off, err := s2.Partition(0).Offsets(); err != nil || off["in"] != 1 {
		t.Fatalf("offsets after reopen: %v, %v", off, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "000099.vlog")); err == nil {
		t.Error("the empty value log is still there")
	}
}

// TestReopenSnappyTables: stores written before tables went uncompressed
// hold Snappy tables (Badger records each table's compression in its
// manifest); the store opens them, with no block cache, and reads them.
func TestReopenSnappyTables(t *testing.T) {
	dir := t.TempDir()
	o := DefaultOptions(dir)
	o.MemoryBudget, o.GCInterval = 32*mib, 0
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	b := s.Partition(0).NewBatch()
	putMembers(b, 0, 2000)
	b.SetOffset("in", 2000)
	if err := b.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	bo, _ := o.badgerOptions()
	bo = bo.WithCompression(options.Snappy).WithBlockCacheSize(16 * mib).WithLogger(nil)
	// Rewrite every key through a Badger that compresses: its memtable is
	// flushed to a Snappy table on Close.
	db, err := openBadger(bo)
	if err != nil {
		t.Fatal(err)
	}
	wb := db.NewWriteBatch()
	err = eachEntry(db, wb.Set)
	if err == nil {
		err = wb.Flush()
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = openBadger(bo); err != nil {
		t.Fatal(err)
	}
	snappy := 0
	for _, ti := range db.Tables() {
		if ti.KeyCount > 0 && ti.OnDiskSize < ti.UncompressedSize {
			snappy++
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if snappy == 0 {
		t.Fatal("no table written with Snappy")
	}
	s = openTest(t, dir)
	for i := range 2000 {
		var st operators.MemberState
		if ok, err := s.Partition(0).Get(mid(i), &st); !ok || err != nil {
			t.Fatalf("member %d: %v, %v", i, ok, err)
		}
	}
}
