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

// madvDontneed and madvPageout are Linux's MADV_DONTNEED (drop this
// process's mappings of the pages) and MADV_PAGEOUT (5.4+: reclaim the pages
// now).
const (
	madvDontneed = 4
	madvPageout  = 21
)

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

// trimTables releases this process's resident pages of its memory maps of
// the table (.sst) and value-log (.vlog) files in dir (as tableDir gives
// it), and returns how many maps it advised. live says which tables are
// certain to stay mapped until trimTables returns (Store.trim holds a
// reference to each): their maps are dropped from the process's page tables
// and their pages stay in the page cache. Other tables are left alone: most
// are being written by a compaction and will be live at the next trim. The
// value log's pages are reclaimed (paged out of the page cache).
//
// Why: Badger writes every new table through a shared memory map of the
// file and keeps it mapped until the table is compacted away, so without
// this every table's pages stay in the process's RSS: as much as the whole
// LSM tree (about 220 MiB for 1 M members). The value log holds the packed
// outbox entries (outboxpack.go), written through its map and read back
// only after a restart: its pages would otherwise stay resident too, up to
// a 256 MiB file each (dirty ones are written back first, as the kernel
// would anyway).
//
// Why two kinds of advice: the member cache's misses read the tables at
// random. MADV_PAGEOUT takes a page out of the page cache as well, so the
// next read of it waited for the disk: at 1 M members the trim ran every
// second or so, and the end-to-end phase of churnflow bench took 37,411
// major page faults (3,398 with this; ninth sitting). MADV_DONTNEED on a
// shared file map only unmaps the pages: they stay in the page cache,
// which the kernel reclaims when it needs the memory, and the next read
// maps them again without touching the disk. But on anonymous memory
// MADV_DONTNEED discards the contents: were a table unmapped, and its
// address reused by an anonymous map (the Go heap, the member cache's
// chunks), between reading /proc/self/maps and the call, it would zero
// live memory. Hence it is used only on tables the caller holds a
// reference to. Paging out the others instead evicted the tables a
// compaction was writing, which are read as soon as it installs them.
// MADV_PAGEOUT is safe on any address: on anonymous memory it can only
// push pages to swap, never drop their contents; the value log is read
// only after a restart, so its pages need not stay cached. Errors are
// ignored: older kernels (EINVAL) simply keep the pages.
func trimTables(dir string, live func(id uint64) bool) int {
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
		if !strings.HasPrefix(path, dir) {
			continue
		}
		var advice int
		switch name := path[len(dir):]; {
		case strings.HasSuffix(name, ".sst"):
			id, err := strconv.ParseUint(strings.TrimSuffix(name, ".sst"), 10, 64)
			if err != nil || !live(id) {
				continue
			}
			advice = madvDontneed
		case strings.HasSuffix(name, ".vlog"):
			advice = madvPageout
		default:
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
		syscall.Syscall(syscall.SYS_MADVISE, uintptr(start), uintptr(end-start), uintptr(advice))
		n++
	}
	return n
}
