package state

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want error
	}{
		{fmt.Errorf("write: %w", syscall.ENOSPC), ErrDiskFull},
		{&fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}, ErrDiskFull},
		{errors.New("sync 000001.vlog: no space left on device"), ErrDiskFull},
		{&fs.PathError{Op: "mkdir", Path: "x", Err: syscall.EROFS}, ErrNotWritable},
		{&fs.PathError{Op: "open", Path: "x", Err: syscall.EACCES}, ErrNotWritable},
		{&fs.PathError{Op: "mkdir", Path: "x", Err: syscall.ENOTDIR}, ErrNotWritable},
		{errors.New(`Cannot acquire directory lock on "x".  Another process is using this Badger database.`), ErrLocked},
	}
	for _, tt := range tests {
		if got := classify(tt.err); !errors.Is(got, tt.want) || !errors.Is(got, tt.err) {
			t.Errorf("classify(%v) = %v, want %v wrapping the cause", tt.err, got, tt.want)
		}
	}
	if err := errors.New("other"); classify(err) != err {
		t.Error("unrelated error changed")
	}
}

// TestDiskFull mounts a 2 MiB tmpfs (root only) and checks that Open on it,
// and Open on a full one, fail with ErrDiskFull instead of crashing.
func TestDiskFull(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs here (needs root), so the ENOSPC mapping is tested by TestClassify only: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	t.Run("too small", func(t *testing.T) {
		_, err := Open(DefaultOptions(filepath.Join(dir, "state")))
		if !errors.Is(err, ErrDiskFull) || !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Open on a 2 MiB disk = %v, want ErrDiskFull", err)
		}
		t.Log(err)
	})
	t.Run("full", func(t *testing.T) {
		// Fill the disk, then open with the space check off: the first
		// write (the probe) hits ENOSPC for real.
		f, err := os.Create(filepath.Join(dir, "filler"))
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64<<10)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("filling: %v", err)
				}
				break
			}
		}
		f.Close()
		_, err = Open(DefaultOptions(filepath.Join(dir, "state2")))
		if !errors.Is(err, ErrDiskFull) {
			t.Fatalf("Open on a full disk = %v, want ErrDiskFull", err)
		}
		t.Log(err)
	})
}

// TestCommitDiskFull checks the guard that stops commits before Badger
// writes into memory-mapped files on a full disk.
func TestCommitDiskFull(t *testing.T) {
	s := openTest(t, "")
	free := int64(1 << 40)
	s.statfs = func(string) int64 { return free }
	b := s.Partition(0).NewBatch()
	b.SetOffset("t", 1)
	commit(t, b)
	free = s.reserve - 1
	s.lastCheck.Store(0)
	b = s.Partition(0).NewBatch()
	b.SetOffset("t", 2)
	if err := b.Commit(t.Context()); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("Commit with the disk full = %v, want ErrDiskFull", err)
	}
	if err := s.Partition(0).Ack(1); !errors.Is(err, ErrDiskFull) {
		t.Errorf("Ack with the disk full = %v, want ErrDiskFull", err)
	}
	free = 1 << 40
	s.lastCheck.Store(0)
	b = s.Partition(0).NewBatch()
	b.SetOffset("t", 3)
	commit(t, b)
	if off, _ := s.Partition(0).Offsets(); off["t"] != 3 {
		t.Errorf("offset %d, want 3", off["t"])
	}
}
