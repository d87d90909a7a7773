package state

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/churnflow/churnflow/internal/procstatus"
)

// madvPageout is Linux's MADV_PAGEOUT (5.4+): reclaim these pages now.
const madvPageout = 21

// fileRSS returns the process's resident file-backed memory (RssFile in
// /proc/self/status), bytes; -1 if unknown.
func fileRSS() int64 { return procstatus.Read("self", "RssFile") }

// tableDir returns the form /proc/self/maps gives dir's files: absolute,
// symbolic links resolved, with a trailing slash.
func tableDir(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return ""
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	return abs + string(filepath.Separator)
}

// trimTables asks the kernel to reclaim the resident pages of this process's
// memory maps of the table (.sst) and value-log (.vlog) files in dir (as
// tableDir gives it), and returns how many maps it advised.
//
// Why: Badger writes every new table through a shared memory map of the
// file and keeps it mapped until the table is compacted away, so without
// this every table's pages stay in the process's RSS: as much as the whole
// LSM tree (about 220 MiB for 1 M members). They are clean page-cache pages
// (Badger msyncs a table after writing it), so reclaiming them loses
// nothing; a later read faults them back in from the page cache or the
// disk. The value log holds the packed outbox entries (outboxpack.go),
// written through its map and read back only after a restart: its pages
// would otherwise stay resident too, up to a 256 MiB file each (dirty ones
// are written back first, as the kernel would anyway). MADV_PAGEOUT is safe even if a table is unmapped, and its address
// reused, between reading the maps and the call: on anonymous memory it
// can only push pages to swap, never drop their contents (unlike
// MADV_DONTNEED). Errors are ignored: older kernels (EINVAL) simply keep
// the pages.
func trimTables(dir string) int {
	if dir == "" {
		return 0
	}
	data, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		// "start-end perms offset dev inode   path"
		line := sc.Text()
		i := strings.Index(line, " /")
		if i < 0 {
			continue
		}
		path := strings.TrimSpace(line[i:])
		if !strings.HasPrefix(path, dir) || !(strings.HasSuffix(path, ".sst") || strings.HasSuffix(path, ".vlog")) {
			continue
		}
		rng, _, _ := strings.Cut(line, " ")
		lo, hi, ok := strings.Cut(rng, "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		syscall.Syscall(syscall.SYS_MADVISE, uintptr(start), uintptr(end-start), madvPageout)
		n++
	}
	return n
}
