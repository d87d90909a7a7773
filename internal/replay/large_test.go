package replay

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestWriteLargeInput writes a large generated JSONL input for throughput
// and memory measurements of "churnflow replay". It runs only when
// CHURNFLOW_REPLAY_GEN is set to "PATH,EVENTS", for example:
//
//	CHURNFLOW_REPLAY_GEN=/tmp/big.jsonl,10000000 go test ./internal/replay -run WriteLargeInput
//
// Members come in groups of 500, each group in time order, so the file as a
// whole is not: the replay must sort it.
func TestWriteLargeInput(t *testing.T) {
	spec := os.Getenv("CHURNFLOW_REPLAY_GEN")
	if spec == "" {
		t.Skip("set CHURNFLOW_REPLAY_GEN=PATH,EVENTS to write a large input")
	}
	path, count, ok := strings.Cut(spec, ",")
	n, err := strconv.Atoi(count)
	if !ok || err != nil {
		t.Fatalf("CHURNFLOW_REPLAY_GEN=%q: want PATH,EVENTS", spec)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	written := 0
	for group := uint64(1); written < n; group++ {
		for _, l := range genInput(group, 500) {
			// Member ids are unique per group.
			l = []byte(strings.Replace(string(l), `"member_id":"M`, `"member_id":"G`+strconv.FormatUint(group, 10)+"-M", 1))
			w.Write(l)
			w.WriteByte('\n')
			if written++; written == n {
				break
			}
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
