// Package benchmarks holds churnflow's end-to-end benchmarks. Results, with
// the machine and the exact commands, are recorded in RESULTS.md.
package benchmarks

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"sync"
	"testing"

	"github.com/churnflow/churnflow/internal/gen"
	"github.com/churnflow/churnflow/internal/replay"
	"github.com/churnflow/churnflow/operators"
)

// replayEvents is the size of the replay benchmark's input.
const replayEvents = 1_000_000

var (
	inputOnce sync.Once
	input     []byte
	inputErr  error
)

// replayInput returns the first replayEvents records (JSON lines, in time
// order) of a generated population: 15,000 members over two years.
func replayInput(tb testing.TB) []byte {
	inputOnce.Do(func() {
		cfg := gen.DefaultConfig()
		cfg.Members, cfg.Days, cfg.Seed = 15000, 730, 42
		var buf bytes.Buffer
		if _, inputErr = gen.WriteJSONL(&buf, cfg); inputErr != nil {
			return
		}
		sc := bufio.NewScanner(&buf)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var out bytes.Buffer
		for n := 0; n < replayEvents && sc.Scan(); n++ {
			out.Write(sc.Bytes())
			out.WriteByte('\n')
		}
		input = out.Bytes()
	})
	if inputErr != nil {
		tb.Fatal(inputErr)
	}
	if bytes.Count(input, []byte{'\n'}) != replayEvents {
		tb.Fatalf("generated input has %d lines, want %d", bytes.Count(input, []byte{'\n'}), replayEvents)
	}
	return input
}

// BenchmarkReplay measures `churnflow replay` in memory: one million
// generated events decoded, sorted, applied, timers fired, alerts encoded
// (to io.Discard, so file writes are not measured).
func BenchmarkReplay(b *testing.B) {
	data := replayInput(b)
	engine, err := operators.NewEngine(operators.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	var sum *replay.Summary
	for i := 0; i < b.N; i++ {
		sum, err = replay.Run(context.Background(), replay.Config{Engine: engine}, bytes.NewReader(data), io.Discard, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	var alerts int64
	for _, n := range sum.Alerts {
		alerts += n
	}
	b.ReportMetric(float64(replayEvents)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(alerts)/float64(replayEvents), "alerts/event")
}
