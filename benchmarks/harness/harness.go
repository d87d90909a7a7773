// Package harness is churnflow's benchmark harness (churnflow bench): in
// one run, on one broker and one machine, it preloads generated events and
// measures the raw consume limit, the Badger floor, churnflow end to end,
// a restart, the event-to-alert latency at a fixed offered rate, timer
// firing among many pending timers and, when asked, the Kafka Streams peer
// on the same events. Each measured phase runs in a child process of its
// own (churnflow bench-phase), so that its CPU time and peak RSS are its
// own; the embedded broker runs in another.
package harness

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/churnflow/churnflow/pipeline"
	"github.com/churnflow/churnflow/state"
)

// Config says what to measure. Start from DefaultConfig or QuickConfig.
type Config struct {
	// Bin is the churnflow executable the phases run as (os.Executable).
	Bin string
	// Brokers is a Kafka cluster to use; empty: the embedded broker, in a
	// process of its own.
	Brokers []string
	// Members and Events size the preloaded data set.
	Members, Events int
	// Partitions of the input topics.
	Partitions int
	// MemoryBudget is the state store's memory budget in the floor,
	// pipeline and timers phases (state.Options.MemoryBudget; the memory
	// limit follows from it); 0: the store's default.
	MemoryBudget int64
	// Seed of the generated population.
	Seed uint64
	// LatencyRate (events/s) and LatencyFor shape the latency phase.
	LatencyRate float64
	LatencyFor  time.Duration
	// TimersSmall and TimersLarge are the pending timer counts the timer
	// phase compares; TimersDue are fired in each.
	TimersSmall, TimersLarge, TimersDue int
	// Skip leaves out these optional phases: "raw", "floor", "restart",
	// "latency", "timers" (the end-to-end phase always runs; the ratios of
	// a skipped phase are reported as zero).
	Skip []string
	// Peer runs the Kafka Streams peer (benchmarks/peers/kafka-streams),
	// built with Maven when its jar is missing. PeerDir is that directory.
	Peer    bool
	PeerDir string
	// WorkDir holds state directories, logs and profiles; empty: a
	// temporary directory, removed at the end unless Keep.
	WorkDir string
	Keep    bool
	// Profile writes the end-to-end phase's CPU profile to this file,
	// HeapProfile its live heap at the end, LatencyProfile the latency
	// phase's CPU profile (its process, warm-up included), LatencyTrace
	// the latency phase's runtime execution trace (after the warm-up).
	Profile, HeapProfile, LatencyProfile, LatencyTrace string
	// Commit is the source commit recorded with the results, and
	// CommitSource where its name comes from.
	Commit       string
	CommitSource CommitSource
	// Quick marks the small profile (recorded with the results).
	Quick bool
	// Progress receives one line per step; nil: none.
	Progress io.Writer
}

// DefaultConfig is the full profile of issue 8: 1,000,000 members and
// 10,000,000 events on 8 partitions, latency at 20,000 events/s, timers
// with 100,000 and 10,000,000 pending.
func DefaultConfig() Config {
	return Config{Members: 1_000_000, Events: 10_000_000, Partitions: 8, Seed: 42,
		LatencyRate: 20_000, LatencyFor: 30 * time.Second,
		TimersSmall: 100_000, TimersLarge: 10_000_000, TimersDue: 1000}
}

// QuickConfig is the small profile that runs in CI (under a minute).
func QuickConfig() Config {
	c := DefaultConfig()
	c.Members, c.Events, c.Quick = 20_000, 200_000, true
	c.LatencyRate, c.LatencyFor = 5000, 5*time.Second
	c.TimersSmall, c.TimersLarge = 10_000, 200_000
	return c
}

// Validate names the first setting that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.Bin == "":
		return fmt.Errorf("bench: no churnflow executable")
	case c.Members < 100:
		return fmt.Errorf("bench: --members %d: give at least 100", c.Members)
	case c.Events < c.Members:
		return fmt.Errorf("bench: --events %d is fewer than --members %d: give at least one event per member", c.Events, c.Members)
	case c.MemoryBudget != 0 && c.MemoryBudget < 16<<20:
		return fmt.Errorf("bench: --memory %d: give at least 16MiB", c.MemoryBudget)
	case c.Partitions < 1 || c.Partitions > 256:
		return fmt.Errorf("bench: --partitions %d: give 1 to 256", c.Partitions)
	case !(c.LatencyRate > 0):
		return fmt.Errorf("bench: --latency-rate must be positive")
	case c.LatencyFor < time.Second || c.LatencyFor > 12*time.Hour:
		return fmt.Errorf("bench: --latency-for %v: give 1s to 12h", c.LatencyFor)
	case c.Peer && len(c.Brokers) == 0:
		return fmt.Errorf("bench: --kstreams needs --brokers (a real Kafka cluster, such as scripts/kafka-local.sh's): Kafka Streams cannot create its internal topics on the embedded broker")
	case c.Peer && !fileExists(filepath.Join(c.PeerDir, "pom.xml")):
		return fmt.Errorf("bench: --kstreams: no Maven project at %q (pom.xml): run churnflow bench from the repository's root, or name the peer's directory with --kstreams-dir", c.PeerDir)
	case c.badSkip() != "":
		return fmt.Errorf("bench: --skip %q: give some of %s", c.badSkip(), strings.Join(skippable, ", "))
	case c.TimersDue < 1 || c.TimersSmall < 1 || c.TimersLarge < c.TimersSmall:
		return fmt.Errorf("bench: timer sizes: due %d, small %d, large %d: want positive and large ≥ small", c.TimersDue, c.TimersSmall, c.TimersLarge)
	}
	return nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// skippable lists the phases Config.Skip may name.
var skippable = []string{"raw", "floor", "restart", "latency", "timers"}

func (c *Config) badSkip() string {
	for _, p := range c.Skip {
		if !slices.Contains(skippable, p) {
			return p
		}
	}
	return ""
}

// CommitSource says where a result's commit comes from.
type CommitSource string

// Where a result's commit comes from.
const (
	CommitFromBuild       CommitSource = "build"        // the VCS stamp go build put in the binary
	CommitFromFlag        CommitSource = "flag"         // named by the user (bench --commit)
	CommitFromWorkingTree CommitSource = "working-tree" // the checkout's HEAD when the bench ran
	CommitUnknown         CommitSource = "unknown"
)

func (c *Config) skips(phase string) bool { return slices.Contains(c.Skip, phase) }

// Result is one run's figures. Throughputs count input records from the
// first read to the last one done; CPU seconds and peak RSS are the phase
// process's own (getrusage).
type Result struct {
	Commit string `json:"commit"`
	// CommitSource says where Commit comes from: only "build" (the
	// binary's VCS stamp) and "flag" (bench --commit) name the binary for
	// sure; "working-tree" is the checkout's HEAD at run time.
	CommitSource CommitSource `json:"commit_source"`
	Broker       string       `json:"broker"`
	Quick        bool         `json:"quick"`
	Members      int          `json:"members"`
	Events       int          `json:"events"`
	Partitions   int          `json:"partitions"`
	// MemoryBudget is the state memory budget the phases used, bytes.
	MemoryBudget int64  `json:"memory_budget_bytes"`
	GoVersion    string `json:"go_version"`
	CPUs         int    `json:"cpus"`
	StartedAt    string `json:"started_at"`
	// LoadBefore and LoadAfter are the machine's load averages (1, 5, 15
	// minutes) when the run started and ended: other work on the machine
	// shows in them.
	LoadBefore string `json:"load_before,omitempty"`
	LoadAfter  string `json:"load_after,omitempty"`

	RawConsumeEventsPerSec float64 `json:"raw_consume_events_per_sec"`
	FloorEventsPerSec      float64 `json:"floor_events_per_sec"`
	PipelineEventsPerSec   float64 `json:"pipeline_events_per_sec"`
	KStreamsEventsPerSec   float64 `json:"kstreams_events_per_sec"`
	FloorRatio             float64 `json:"floor_ratio"`
	ConsumeRatio           float64 `json:"consume_ratio"`
	KStreamsRatio          float64 `json:"kstreams_ratio"`

	CPUSecondsPerMillion map[string]float64 `json:"cpu_seconds_per_million_events"`
	PeakRSSByPhase       map[string]int64   `json:"peak_rss_bytes_by_phase"`
	PeakRSSBytes         int64              `json:"peak_rss_bytes"`
	// MajorFaultsByPhase counts each churnflow phase's page faults that
	// read the disk (getrusage's ru_majflt).
	MajorFaultsByPhase map[string]int64 `json:"major_page_faults_by_phase"`
	StateMembers       int64            `json:"state_members"`
	// StateDiskBytes is the state directory as the end-to-end phase ends;
	// StateBytesPerMember is its LSM tree (states, timers, dedup markers,
	// memtables) per member, without the value log (StateValueLogBytes:
	// large outbox entries, most already acknowledged and waiting for
	// value-log GC, whose progress at that moment varies from run to run).
	StateDiskBytes      int64   `json:"state_disk_bytes"`
	StateValueLogBytes  int64   `json:"state_value_log_bytes"`
	StateBytesPerMember float64 `json:"state_bytes_per_member"`
	// PipelineTimersFired counts the end-to-end phase's timer firings:
	// member evaluations with no event, each a member read and write.
	PipelineTimersFired int64 `json:"pipeline_timers_fired"`
	// PipelineCacheHitRatio is the end-to-end phase's share of member reads
	// the member cache answered (the rest read Badger);
	// LatencyCacheHitRatio the latency phase's, over its measured events.
	PipelineCacheHitRatio float64 `json:"pipeline_member_cache_hit_ratio"`

	// The latency phase runs on the end-to-end phase's state with event
	// time at the wall clock's pace. LatencyWarmupSeconds is from its
	// start to its unmeasured warm-up done (LatencyWarmupTimers timers
	// fired: those made due by the step from the preloaded events' time
	// to the live events', and, if that step crosses a midnight, every
	// member's day-boundary timers); LatencyTimersFired fired while the
	// measured events were offered.
	LatencyOfferedRate   float64 `json:"latency_offered_events_per_sec"`
	LatencyAchievedRate  float64 `json:"latency_achieved_events_per_sec"`
	LatencyAlerts        int     `json:"latency_alerts"`
	P50LatencyMs         float64 `json:"p50_latency_ms"`
	P99LatencyMs         float64 `json:"p99_latency_ms"`
	MaxLatencyMs         float64 `json:"max_latency_ms"`
	LatencyWarmupSeconds float64 `json:"latency_warmup_seconds"`
	LatencyWarmupTimers  int64   `json:"latency_warmup_timers_fired"`
	LatencyTimersFired   int64   `json:"latency_timers_fired"`
	LatencyCacheHitRatio float64 `json:"latency_member_cache_hit_ratio"`
	// LatencyParts says where the latency went: per step of an alert's
	// way (pipeline.AlertTiming), its p50 and p99, and its mean over the
	// slowest 1 % of the alerts; the last row is the total.
	LatencyParts []LatencyPart `json:"latency_parts"`
	// LatencyCPU is the CPU spent while the latency phase offered its
	// events, seconds, by the pipeline, the broker and the load generator:
	// how much of the cores the pipeline had beside the other two.
	LatencyCPU *CPUShares `json:"latency_cpu,omitempty"`

	// RestartSeconds is from the restarted process's start to the new
	// events committed (applied, their state and alerts durable);
	// RestartFlushedSeconds to the outbox empty as well, which includes
	// the alerts of every timer due by the new events' watermark that had
	// not fired yet (the first run stops once its events are committed,
	// maybe with due timers left; the new events move event time on).
	RestartSeconds        float64 `json:"restart_seconds"`
	RestartReadySeconds   float64 `json:"restart_ready_seconds"`
	RestartFlushedSeconds float64 `json:"restart_flushed_seconds"`

	TimerFireMsSmall        float64 `json:"timer_fire_ms_small"`
	TimerFireMsLarge        float64 `json:"timer_fire_ms_large"`
	TimersSmall             int     `json:"timers_pending_small"`
	TimersLarge             int     `json:"timers_pending_large"`
	TimersDue               int     `json:"timers_due"`
	TimerFireRatio10Mvs100k float64 `json:"timer_fire_ratio_10m_vs_100k"`

	KStreamsAgreement *Agreement `json:"kstreams_agreement,omitempty"`
	Notes             []string   `json:"notes,omitempty"`
	// Skipped lists the phases left out (Config.Skip); their figures are zero.
	Skipped []string `json:"skipped,omitempty"`
}

// Run runs every phase of cfg and returns the figures.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h := &run{cfg: cfg, res: &Result{Commit: cfg.Commit, CommitSource: cfg.CommitSource, Quick: cfg.Quick, Members: cfg.Members, Events: cfg.Events,
		Partitions: cfg.Partitions, MemoryBudget: cmp.Or(cfg.MemoryBudget, state.DefaultOptions("").MemoryBudget),
		GoVersion: runtime.Version(), CPUs: runtime.NumCPU(),
		StartedAt: time.Now().UTC().Format(time.RFC3339), CPUSecondsPerMillion: map[string]float64{},
		PeakRSSByPhase: map[string]int64{}, MajorFaultsByPhase: map[string]int64{}, LoadBefore: loadAverage(), Skipped: cfg.Skip}}
	defer func() { h.res.LoadAfter = loadAverage() }()
	if cfg.WorkDir == "" {
		dir, err := os.MkdirTemp("", "churnflow-bench-")
		if err != nil {
			return nil, err
		}
		h.dir = dir
		if !cfg.Keep {
			defer os.RemoveAll(dir)
		}
	} else {
		h.dir = cfg.WorkDir
		if err := os.MkdirAll(h.dir, 0o755); err != nil {
			return nil, err
		}
	}
	defer h.closeBroker()
	if err := h.all(ctx); err != nil {
		return h.res, err
	}
	return h.res, nil
}

// run is one harness run's state.
type run struct {
	cfg     Config
	res     *Result
	dir     string
	brokers []string
	broker  *child
	topics  pipeline.Topics
	data    *dataSet
	// consumed is the input records the end-to-end phase's state has
	// processed (the sum of its committed input offsets).
	consumed int64
}

func (h *run) logf(format string, args ...any) {
	if h.cfg.Progress != nil {
		fmt.Fprintf(h.cfg.Progress, "bench: "+format+"\n", args...)
	}
}

func (h *run) all(ctx context.Context) error {
	if err := h.startBroker(ctx); err != nil {
		return err
	}
	h.topics = benchTopics(fmt.Sprintf("bench-%d.", time.Now().UnixNano()))
	if err := createTopics(ctx, h.brokers, h.topics.Inputs(), h.cfg.Partitions); err != nil {
		return err
	}
	h.logf("preloading %d events for %d members on %d partitions", h.cfg.Events, h.cfg.Members, h.cfg.Partitions)
	data, err := preload(ctx, h.brokers, h.topics, h.cfg, !h.cfg.skips("latency"))
	if err != nil {
		return err
	}
	h.data = data
	h.logf("preloaded in %v (%d days of events, %.0f bytes per event)", data.took.Round(time.Millisecond), data.days, float64(data.bytes)/float64(h.cfg.Events))

	n := int64(h.cfg.Events)
	spec := PhaseSpec{Brokers: h.brokers, Topics: h.topics, Partitions: h.cfg.Partitions, MemoryBudget: h.res.MemoryBudget}

	if !h.cfg.skips("raw") {
		spec.Phase = PhaseRaw
		res, u, err := h.phase(ctx, "raw", spec, 10*time.Minute)
		if err != nil {
			return err
		}
		h.res.RawConsumeEventsPerSec = h.rate("raw", res, u, n)
	}
	if !h.cfg.skips("floor") {
		spec.Phase, spec.StateDir = PhaseFloor, filepath.Join(h.dir, "floor")
		res, u, err := h.phase(ctx, "floor", spec, 30*time.Minute)
		if err != nil {
			return err
		}
		h.res.FloorEventsPerSec = h.rate("floor", res, u, n)
		os.RemoveAll(spec.StateDir)
	}

	spec.Phase, spec.StateDir, spec.Group = PhasePipeline, filepath.Join(h.dir, "pipeline"), h.topics.Bookings+"group"
	defer os.RemoveAll(spec.StateDir)
	if err := h.endToEnd(ctx, spec); err != nil {
		return err
	}
	if h.cfg.Peer {
		if err := h.peer(ctx); err != nil {
			return err
		}
	}
	if !h.cfg.skips("latency") {
		if err := h.latency(ctx, spec); err != nil {
			return err
		}
	}
	os.RemoveAll(spec.StateDir)
	if !h.cfg.skips("timers") {
		if err := h.timers(ctx); err != nil {
			return err
		}
	}
	r := h.res
	r.FloorRatio = ratio(r.PipelineEventsPerSec, r.FloorEventsPerSec)
	r.ConsumeRatio = ratio(r.PipelineEventsPerSec, r.RawConsumeEventsPerSec)
	r.KStreamsRatio = ratio(r.PipelineEventsPerSec, r.KStreamsEventsPerSec)
	return nil
}

// endToEnd runs churnflow over the preloaded events, then restarts it on
// the same state with a few more events to process. It leaves the state
// directory for the latency phase.
func (h *run) endToEnd(ctx context.Context, spec PhaseSpec) error {
	n := int64(h.cfg.Events)
	spec.Target, spec.Clock, spec.CPUProfile, spec.HeapProfile = n, h.data.end, h.cfg.Profile, h.cfg.HeapProfile
	res, u, err := h.phase(ctx, "pipeline", spec, 60*time.Minute)
	if err != nil {
		return err
	}
	h.res.PipelineEventsPerSec = h.rate("pipeline", res, u, n)
	h.res.PipelineTimersFired = res.TimersFired
	h.res.PipelineCacheHitRatio = res.cacheHitRatio()
	h.logf("pipeline: %d timers fired (%.2f per event); member cache answered %.1f %% of %d member reads",
		res.TimersFired, float64(res.TimersFired)/float64(n), 100*h.res.PipelineCacheHitRatio, res.CacheHits+res.CacheMisses)
	h.consumed = n
	h.res.PeakRSSBytes = u.PeakRSS
	h.res.StateMembers, h.res.StateDiskBytes, h.res.StateValueLogBytes = res.Members, res.DiskBytes, res.VlogBytes
	if res.Members > 0 {
		h.res.StateBytesPerMember = float64(res.DiskBytes-res.VlogBytes) / float64(res.Members)
	}

	if h.cfg.skips("restart") {
		return nil
	}
	// Restart: the same state directory and group, and the events that
	// follow the preloaded ones; timed from the process's start to the
	// last of them processed.
	if err := produceRecords(ctx, h.brokers, h.topics, h.data.extra); err != nil {
		return err
	}
	spec.Target, spec.CPUProfile, spec.HeapProfile = n+int64(len(h.data.extra)), "", ""
	c, err := h.start("restart", spec)
	if err != nil {
		return err
	}
	res, _, err = c.result(ctx, 10*time.Minute)
	if err != nil {
		return err
	}
	h.consumed = spec.Target
	since := func(ns int64) float64 { return float64(ns-c.started.UnixNano()) / 1e9 }
	h.res.RestartSeconds, h.res.RestartFlushedSeconds = since(res.CommittedNS), since(res.LastNS)
	if res.ReadyNS > 0 {
		h.res.RestartReadySeconds = since(res.ReadyNS)
	}
	h.logf("restart: ready after %.2f s, %d new events committed after %.2f s, outbox empty after %.2f s",
		h.res.RestartReadySeconds, res.Records, h.res.RestartSeconds, h.res.RestartFlushedSeconds)
	return nil
}

// latency offers events at a fixed rate to churnflow running on the
// end-to-end phase's state (Members members), on the same topics, and
// collects the event-to-alert latency of every alert an offered event
// caused. The events are the ones that follow the preloaded ones, with
// their event times moved to the wall clock's pace (restamp): first a
// warm-up, unmeasured, and, once the warm-up and every timer it made due
// are done, the measured events at LatencyRate for LatencyFor.
func (h *run) latency(ctx context.Context, spec PhaseSpec) error {
	live := restamp(h.data.live, warmEvents, h.cfg.LatencyRate, pipeline.DefaultConfig().Lateness, h.cfg.LatencyFor)
	if err := produceRecords(ctx, h.brokers, h.topics, live.warm); err != nil {
		return err
	}
	spec.WarmTarget = h.consumed + int64(len(live.warm))
	spec.Target = spec.WarmTarget + int64(len(live.paced))
	spec.Clock, spec.ClockRuns, spec.Latency = live.base, true, true
	spec.CPUProfile, spec.HeapProfile, spec.Trace = h.cfg.LatencyProfile, "", h.cfg.LatencyTrace
	c, err := h.start("latency", spec)
	if err != nil {
		return err
	}
	line, err := c.next(ctx, "WARM ", 10*time.Minute)
	if err != nil {
		c.kill()
		return err
	}
	var warmNS, warmTimers int64
	if _, err := fmt.Sscan(line, &warmNS, &warmTimers); err != nil {
		c.kill()
		return fmt.Errorf("latency: bad WARM line %q: %w", line, err)
	}
	r := h.res
	r.LatencyWarmupSeconds, r.LatencyWarmupTimers = float64(warmNS-c.started.UnixNano())/1e9, warmTimers
	h.logf("latency: warm-up of %d events at %s done after %.2f s (%d timers fired); offering %d events at %.0f events/s",
		len(live.warm), time.Unix(live.base, 0).UTC().Format(time.RFC3339), r.LatencyWarmupSeconds, warmTimers,
		len(live.paced), h.cfg.LatencyRate)
	cpu := h.startCPU(c)
	achieved, err := producePaced(ctx, h.brokers, h.topics, live.paced, h.cfg.LatencyRate)
	if err != nil {
		c.kill()
		return err
	}
	r.LatencyCPU = cpu.end()
	res, u, err := c.result(ctx, 10*time.Minute)
	if err != nil {
		return err
	}
	h.res.MajorFaultsByPhase["latency"] = u.MajorFaults
	h.consumed = spec.Target
	r.LatencyOfferedRate, r.LatencyAchievedRate, r.LatencyTimersFired = h.cfg.LatencyRate, achieved, res.TimersFired
	if q := res.Latency; q != nil {
		r.LatencyAlerts, r.P50LatencyMs, r.P99LatencyMs, r.MaxLatencyMs = q.Count, q.P50, q.P99, q.Max
	}
	r.LatencyCacheHitRatio = res.cacheHitRatio()
	r.LatencyParts = res.LatencyParts
	h.logf("latency: %d alerts, p50 %.1f ms, p99 %.1f ms, max %.1f ms (offered %.0f/s, achieved %.0f/s; %d timers fired; member cache answered %.1f %%; %d major page faults)",
		r.LatencyAlerts, r.P50LatencyMs, r.P99LatencyMs, r.MaxLatencyMs, r.LatencyOfferedRate, achieved, res.TimersFired, 100*r.LatencyCacheHitRatio, u.MajorFaults)
	for _, pt := range r.LatencyParts {
		h.logf("latency: %-9s p50 %7.1f ms, p99 %7.1f ms, mean over the slowest 1 %% %7.1f ms", pt.Part, pt.P50, pt.P99, pt.SlowestMean)
	}
	if u := r.LatencyCPU; u != nil {
		h.logf("latency: CPU while offered (%.1f s on %d cores, %.1f core-seconds): churnflow %.1f s, broker %s, load generator %.1f s, left %.1f s",
			u.Wall, u.Cores, u.Wall*float64(u.Cores), u.Pipeline, u.brokerText(), u.LoadGenerator, u.idle())
	}
	return nil
}

// timers fires TimersDue due timers among TimersSmall, then TimersLarge,
// pending ones.
func (h *run) timers(ctx context.Context) error {
	r := h.res
	r.TimersSmall, r.TimersLarge, r.TimersDue = h.cfg.TimersSmall, h.cfg.TimersLarge, h.cfg.TimersDue
	for _, pending := range []int{h.cfg.TimersSmall, h.cfg.TimersLarge} {
		spec := PhaseSpec{Phase: PhaseTimers, MemoryBudget: h.res.MemoryBudget, StateDir: filepath.Join(h.dir, fmt.Sprintf("timers-%d", pending)),
			Pending: pending, Due: h.cfg.TimersDue}
		res, _, err := h.phase(ctx, fmt.Sprintf("timers-%d", pending), spec, 60*time.Minute)
		if err != nil {
			return err
		}
		os.RemoveAll(spec.StateDir)
		if res.Fired != h.cfg.TimersDue {
			return fmt.Errorf("timers: fired %d of %d due with %d pending", res.Fired, h.cfg.TimersDue, pending)
		}
		h.logf("timers: %d due fired in %.1f ms with %d pending (loading took %.1f s)", res.Fired, res.FireMillis, pending, res.LoadMillis/1e3)
		if pending == h.cfg.TimersSmall {
			r.TimerFireMsSmall = res.FireMillis
		} else {
			r.TimerFireMsLarge = res.FireMillis
		}
	}
	r.TimerFireRatio10Mvs100k = ratio(r.TimerFireMsLarge, r.TimerFireMsSmall)
	return nil
}

// start starts a phase's child process.
func (h *run) start(name string, spec PhaseSpec) (*child, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	return startChild(h.dir, name, []string{h.cfg.Bin, "bench-phase", string(b)}, nil)
}

// phase runs a phase to its end.
func (h *run) phase(ctx context.Context, name string, spec PhaseSpec, timeout time.Duration) (PhaseResult, usage, error) {
	h.logf("%s: running", name)
	c, err := h.start(name, spec)
	if err != nil {
		return PhaseResult{}, usage{}, err
	}
	return c.result(ctx, timeout)
}

// rate records a throughput phase's figures and returns its events/s.
func (h *run) rate(name string, res PhaseResult, u usage, n int64) float64 {
	secs := float64(res.LastNS-res.FirstNS) / 1e9
	if res.Records < n {
		h.res.Notes = append(h.res.Notes, fmt.Sprintf("%s processed %d of %d records", name, res.Records, n))
	}
	rate := 0.0
	if secs > 0 {
		rate = float64(res.Records) / secs
	}
	h.res.CPUSecondsPerMillion[name] = u.CPUSeconds / float64(n) * 1e6
	h.res.PeakRSSByPhase[name] = u.PeakRSS
	h.res.MajorFaultsByPhase[name] = u.MajorFaults
	h.logf("%s: %d records in %.2f s: %.0f events/s, %.1f CPU s per million, peak RSS %d MiB, %d major page faults",
		name, res.Records, secs, rate, h.res.CPUSecondsPerMillion[name], u.PeakRSS>>20, u.MajorFaults)
	return rate
}

func ratio(a, b float64) float64 {
	if b == 0 || math.IsNaN(a/b) {
		return 0
	}
	return math.Round(a/b*1000) / 1000
}

// startBroker starts the embedded broker in its own process, unless the
// configuration names a cluster. The broker stands in for a cluster, so it
// does not inherit a GOMEMLIMIT meant for churnflow (the phases honour it,
// as churnflow run does): it holds every record in memory, gigabytes in the
// full profile, and a limit below that would have its collector run
// without end on the cores the phases are measured on.
func (h *run) startBroker(ctx context.Context) error {
	if len(h.cfg.Brokers) > 0 {
		h.brokers, h.res.Broker = h.cfg.Brokers, "kafka "+strings.Join(h.cfg.Brokers, ",")
		return nil
	}
	c, err := startChild(h.dir, "broker", []string{h.cfg.Bin, "broker", "--listen", "127.0.0.1:0",
		"--partitions", fmt.Sprint(h.cfg.Partitions)}, []string{"GOMEMLIMIT=off"})
	if err != nil {
		return err
	}
	addr, err := c.next(ctx, "BOOTSTRAP=", time.Minute)
	if err != nil {
		c.kill()
		return err
	}
	h.broker, h.brokers, h.res.Broker = c, []string{addr}, "embedded (kfake, own process)"
	return nil
}

func (h *run) closeBroker() {
	if h.broker != nil {
		if _, err := h.broker.stop(context.Background(), 30*time.Second); err != nil {
			h.logf("broker: %v", err)
		}
		h.broker = nil
	}
}

// benchTopics names a run's topics with prefix.
func benchTopics(prefix string) pipeline.Topics {
	return pipeline.Topics{Bookings: prefix + "bookings", Activity: prefix + "activity", Dormancy: prefix + "dormancy",
		Retention: prefix + "retention", Nudges: prefix + "nudges", Segments: prefix + "segments", DeadLetter: prefix + "dlq"}
}

// loadAverage returns the first three fields of /proc/loadavg, or "".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
