package harness

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/churnflow/churnflow/internal/kafkatest"
)

// buildChurnflow builds the churnflow binary the phases run as.
func buildChurnflow(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "churnflow")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/churnflow/churnflow/cmd/churnflow").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// tinyConfig is a profile small enough for a test: every phase runs, on a
// few thousand events.
func tinyConfig(t *testing.T) Config {
	c := QuickConfig()
	c.Bin = buildChurnflow(t)
	c.Members, c.Events, c.Partitions = 2000, 30_000, 4
	c.LatencyRate, c.LatencyFor = 2000, 2*time.Second
	c.TimersSmall, c.TimersLarge, c.TimersDue = 500, 5000, 100
	c.MemoryBudget = 64 << 20
	c.WorkDir = t.TempDir()
	c.Progress = testWriter{t}
	return c
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// checkLatencyParts checks the latency phase's breakdown: every step, the
// total's row agreeing with the reported latency, and the steps' means over
// the slowest alerts adding up to the total's.
func checkLatencyParts(t *testing.T, r *Result) {
	t.Helper()
	var names []string
	var sum float64
	for _, pt := range r.LatencyParts {
		names = append(names, pt.Part)
		if pt.Part != "total" {
			sum += pt.SlowestMean
		}
	}
	if got := strings.Join(names, ","); got != "fetch,queue,batch,send wait,send,total" {
		t.Fatalf("latency parts %q", got)
	}
	total := r.LatencyParts[len(r.LatencyParts)-1]
	if total.P99 != r.P99LatencyMs || total.P50 != r.P50LatencyMs {
		t.Errorf("the parts' total row (p50 %v, p99 %v) is not the reported latency (p50 %v, p99 %v)", total.P50, total.P99, r.P50LatencyMs, r.P99LatencyMs)
	}
	if math.Abs(sum-total.SlowestMean) > 1 {
		t.Errorf("the parts' means over the slowest 1 %% add up to %.3f ms, the total's is %.3f ms", sum, total.SlowestMean)
	}
}

// checkLatencyCPU checks the CPU shares of the latency phase's offered
// window: each process measured, the embedded broker's only without
// --brokers, and together no more than the cores had.
func checkLatencyCPU(t *testing.T, r *Result, c Config) {
	t.Helper()
	u := r.LatencyCPU
	if u == nil {
		t.Fatal("no CPU shares for the latency phase")
	}
	if !(u.Pipeline > 0) || !(u.LoadGenerator > 0) || !(u.Wall > 0) || u.Cores < 1 {
		t.Errorf("latency CPU %+v: want the pipeline's, the load generator's, the window and the cores", *u)
	}
	if external := len(c.Brokers) > 0; external != (u.Broker < 0) {
		t.Errorf("latency CPU: broker %v s with brokers %v", u.Broker, c.Brokers)
	}
	// The times are read a few ms apart, in 10 ms ticks: allow that much.
	if u.idle() < -0.1 {
		t.Errorf("latency CPU %+v: more than the cores had", *u)
	}
}

// checkFigures checks that every phase reported (not how fast).
func checkFigures(t *testing.T, r *Result, c Config) {
	t.Helper()
	for name, v := range map[string]float64{
		"raw consume": r.RawConsumeEventsPerSec, "floor": r.FloorEventsPerSec, "pipeline": r.PipelineEventsPerSec,
		"floor ratio": r.FloorRatio, "consume ratio": r.ConsumeRatio, "restart seconds": r.RestartSeconds,
		"timer ratio": r.TimerFireRatio10Mvs100k, "p99 latency": r.P99LatencyMs, "state bytes per member": r.StateBytesPerMember,
	} {
		if !(v > 0) {
			t.Errorf("%s: %v, want a positive figure", name, v)
		}
	}
	if r.LatencyAlerts == 0 {
		t.Error("the latency phase saw no alert")
	}
	if !(r.LatencyWarmupSeconds > 0) {
		t.Errorf("latency warm-up done after %v s, want a positive time", r.LatencyWarmupSeconds)
	}
	checkLatencyParts(t, r)
	checkLatencyCPU(t, r, c)
	if r.RestartFlushedSeconds < r.RestartSeconds {
		t.Errorf("restart: committed after %v s but flushed after %v s, before it", r.RestartSeconds, r.RestartFlushedSeconds)
	}
	if r.MemoryBudget != c.MemoryBudget {
		t.Errorf("memory budget %d recorded, want %d", r.MemoryBudget, c.MemoryBudget)
	}
	if r.StateMembers == 0 || r.StateMembers > int64(c.Members) {
		t.Errorf("state members %d, want 1..%d", r.StateMembers, c.Members)
	}
	if r.PeakRSSBytes == 0 || r.CPUSecondsPerMillion["pipeline"] == 0 {
		t.Errorf("no resource usage for the pipeline: RSS %d, CPU %v", r.PeakRSSBytes, r.CPUSecondsPerMillion)
	}
	if len(r.Notes) > 0 {
		t.Errorf("notes: %v", r.Notes)
	}
}

// TestHarnessEmbedded runs every phase on the embedded broker, with a
// runtime trace of the latency phase.
func TestHarnessEmbedded(t *testing.T) {
	c := tinyConfig(t)
	c.LatencyTrace = filepath.Join(t.TempDir(), "latency.trace")
	r, err := Run(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	checkFigures(t, r, c)
	// A trace starts with "go 1.N trace"; the phase's goroutines make it
	// far longer than that header.
	if tr, err := os.ReadFile(c.LatencyTrace); err != nil || !bytes.HasPrefix(tr, []byte("go 1.")) || len(tr) < 4096 {
		t.Errorf("latency trace: %d bytes, %v; want a runtime trace", len(tr), err)
	}
	if r.KStreamsAgreement != nil || r.KStreamsEventsPerSec != 0 {
		t.Errorf("the peer ran without being asked")
	}
}

// TestPeerAgreesOnRealKafka runs every phase and the Kafka Streams peer
// (built with Maven) on real Kafka, and checks that the peer's dormancy
// alerts are churnflow's.
func TestPeerAgreesOnRealKafka(t *testing.T) {
	if !kafkatest.Enabled() {
		t.Skipf("real Kafka tests are off (%s=1 turns them on; scripts/test.sh does)", kafkatest.EnvVar)
	}
	c := tinyConfig(t)
	c.Brokers = []string{kafkatest.Start(t, 1)}
	c.Peer, c.PeerDir = true, filepath.Join("..", "peers", "kafka-streams")
	r, err := Run(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	checkFigures(t, r, c)
	a := r.KStreamsAgreement
	if a == nil {
		t.Fatal("no agreement check")
	}
	if !a.OK() || a.Churnflow == 0 {
		t.Fatalf("dormancy alerts up to %s: churnflow %d, kafka streams %d, agreed %d; %v", a.Cutoff, a.Churnflow, a.KStreams, a.Agreed, a.Examples)
	}
	if !(r.KStreamsEventsPerSec > 0 && r.KStreamsRatio > 0) {
		t.Errorf("kafka streams %v events/s, ratio %v", r.KStreamsEventsPerSec, r.KStreamsRatio)
	}
}

// TestSkip checks that skipped phases do not run and are reported as
// skipped, and that an unknown phase name is refused.
func TestSkip(t *testing.T) {
	c := tinyConfig(t)
	c.Skip = []string{"nope"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("Validate with --skip nope: %v, want an error naming it", err)
	}
	c.Skip = []string{"raw", "floor", "restart", "latency", "timers"}
	c.Commit, c.CommitSource = "0123abc", CommitFromWorkingTree
	r, err := Run(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if r.PipelineEventsPerSec <= 0 {
		t.Errorf("pipeline %v events/s, want the end-to-end phase to run", r.PipelineEventsPerSec)
	}
	if r.RawConsumeEventsPerSec != 0 || r.FloorEventsPerSec != 0 || r.RestartSeconds != 0 || r.LatencyAlerts != 0 || r.TimerFireMsSmall != 0 {
		t.Errorf("skipped phases ran: %+v", r)
	}
	var out strings.Builder
	if err := r.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`skipped\s+raw, floor, restart, latency, timers`).MatchString(out.String()) ||
		!regexp.MustCompile(`pipeline / floor\s+-`).MatchString(out.String()) || strings.Contains(out.String(), "event-to-alert latency") {
		t.Errorf("table:\n%s\nwant the skipped phases listed, no floor ratio and no latency row", out.String())
	}
	if r.Commit != "0123abc" || r.CommitSource != CommitFromWorkingTree || !strings.Contains(out.String(), "commit 0123abc (the working tree's when the bench ran") {
		t.Errorf("commit %q from %q, table:\n%s\nwant the commit and that it is the working tree's", r.Commit, r.CommitSource, out.String())
	}
}

// TestPeerDirChecked: --kstreams without the peer's Maven project (bench
// run outside the repository's root) is refused before any phase runs,
// with a message that says what to do.
func TestPeerDirChecked(t *testing.T) {
	c := tinyConfig(t)
	c.Peer, c.Brokers = true, []string{"127.0.0.1:9"}
	c.PeerDir = filepath.Join(t.TempDir(), "kafka-streams")
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "repository's root") {
		t.Errorf("Validate with no peer project: %v, want an error saying where to run from", err)
	}
	c.PeerDir = filepath.Join("..", "peers", "kafka-streams")
	if err := c.Validate(); err != nil {
		t.Errorf("Validate with the peer's project: %v", err)
	}
}

// TestMemoryBudgetChecked: a budget the store would refuse is refused
// before any phase runs.
func TestMemoryBudgetChecked(t *testing.T) {
	c := QuickConfig()
	c.Bin, c.MemoryBudget = "churnflow", 1<<20
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--memory") {
		t.Errorf("Validate with a 1 MiB budget: %v, want an error naming --memory", err)
	}
}

// TestBrokerIgnoresMemoryLimit: a GOMEMLIMIT given to bench (for the
// phases, as churnflow run honours it) does not reach the embedded broker,
// which holds every record in memory.
func TestBrokerIgnoresMemoryLimit(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "64MiB")
	c := tinyConfig(t)
	h := &run{cfg: c, res: &Result{}, dir: t.TempDir()}
	if err := h.startBroker(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer h.closeBroker()
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", h.broker.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	var limits []string
	for kv := range strings.SplitSeq(string(env), "\x00") {
		if strings.HasPrefix(kv, "GOMEMLIMIT=") {
			limits = append(limits, kv)
		}
	}
	if len(limits) != 1 || limits[0] != "GOMEMLIMIT=off" {
		t.Errorf("the broker's environment has %q, want only GOMEMLIMIT=off", limits)
	}
}
