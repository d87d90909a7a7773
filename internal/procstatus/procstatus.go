// Package procstatus reads memory sizes from Linux's /proc/<pid>/status
// (VmRSS, VmHWM, RssFile, ...), for the store's trim, the benchmark
// harness and the test clusters' reports.
package procstatus

import (
	"bytes"
	"os"
	"strconv"
)

// Read returns the size named key ("VmHWM", "RssFile", ...) of process pid
// ("self" for this one), bytes; -1 if it is unknown (no /proc, no such
// process or line).
func Read(pid, key string) int64 {
	data, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return -1
	}
	return Parse(data, key)
}

// Parse returns the size on the line "<key>: <n> kB" of a status file,
// bytes; -1 if there is no such line or it is not in kB.
func Parse(status []byte, key string) int64 {
	for line := range bytes.Lines(status) {
		rest, ok := bytes.CutPrefix(line, []byte(key+":"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return -1
		}
		n, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil || n < 0 {
			return -1
		}
		return n << 10
	}
	return -1
}
