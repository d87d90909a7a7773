package state

import (
	"io/fs"
	"syscall"
)

// freeBytes returns the bytes available to unprivileged users on dir's file
// system, -1 if unknown.
func freeBytes(dir string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return -1
	}
	return int64(st.Bavail) * st.Bsize
}

// diskUsage is the space a file takes on disk: Badger's log files are
// sparse (truncated to their full size when created).
func diskUsage(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return fi.Size()
}
