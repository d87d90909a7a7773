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

// clockTicks is Linux's USER_HZ, the unit of /proc's CPU times: 100 on
// every architecture Go supports (sysconf(_SC_CLK_TCK) is not reachable
// without cgo).
const clockTicks = 100

// CPUSeconds returns the user and system CPU time process pid ("self" for
// this one) has used, seconds; -1 if it is unknown.
func CPUSeconds(pid string) float64 {
	data, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return -1
	}
	return ParseStat(data)
}

// ParseStat returns utime + stime of a /proc/<pid>/stat line, seconds; -1
// if it is malformed. The command name (in parentheses) may hold spaces
// and parentheses, so the fields are counted from the last ')'.
func ParseStat(stat []byte) float64 {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return -1
	}
	f := bytes.Fields(stat[i+1:])
	if len(f) < 13 { // state is field 3; utime and stime are 14 and 15
		return -1
	}
	utime, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	stime, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return float64(utime+stime) / clockTicks
}
