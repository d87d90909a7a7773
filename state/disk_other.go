//go:build !linux

package state

import "io/fs"

// freeBytes is unknown on this platform: the disk-space guard is off.
func freeBytes(string) int64 { return -1 }

// diskUsage is the file's apparent size on this platform.
func diskUsage(fi fs.FileInfo) int64 { return fi.Size() }
