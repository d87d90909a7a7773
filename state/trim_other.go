//go:build !linux

package state

func tableDir(dir string) string { return "" }

// trimTables does nothing outside Linux (see trim_linux.go).
func trimTables(dir string, live func(id uint64) bool) int { return 0 }

// fileRSS is unknown outside Linux.
func fileRSS() int64 { return -1 }
