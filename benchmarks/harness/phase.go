package harness

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/churnflow/churnflow/internal/procstatus"
	"github.com/churnflow/churnflow/operators"
	"github.com/churnflow/churnflow/pipeline"
	"github.com/churnflow/churnflow/state"
)

// Phases a child process runs (churnflow bench-phase).
const (
	PhaseRaw      = "raw"      // read and discard
	PhaseFloor    = "floor"    // read, one Badger record per event
	PhasePipeline = "pipeline" // churnflow end to end
	PhaseTimers   = "timers"   // fire due timers among many pending
)

// PhaseSpec tells a child process what to measure. The parent passes it as
// one JSON argument.
type PhaseSpec struct {
	Phase      string          `json:"phase"`
	Brokers    []string        `json:"brokers,omitempty"`
	Topics     pipeline.Topics `json:"topics"`
	Partitions int             `json:"partitions,omitempty"`
	Group      string          `json:"group,omitempty"`
	StateDir   string          `json:"state_dir,omitempty"`
	// Target is the input records to have processed (pipeline: the sum of
	// the committed input offsets) before the phase reports; 0 with
	// Latency: run until stopped.
	Target int64 `json:"target,omitempty"`
	// Clock is the wall clock the pipeline sees, Unix seconds (0: the
	// real one). The generated events lie in the past; a clock at their
	// end keeps idle watermarks where the data ends. With ClockRuns it
	// starts there and runs at the wall clock's pace.
	Clock     int64 `json:"clock,omitempty"`
	ClockRuns bool  `json:"clock_runs,omitempty"`
	// Latency collects every event-to-alert latency.
	Latency bool `json:"latency,omitempty"`
	// WarmTarget, when set, is a first target: once the pipeline has
	// processed that many input records, its outbox is empty and no timer
	// has fired for warmQuiet, the child prints "WARM <unix ns> <timers
	// fired>" and starts collecting latencies and counting timers afresh.
	WarmTarget int64  `json:"warm_target,omitempty"`
	CPUProfile string `json:"cpu_profile,omitempty"`
	// Trace is written with a runtime execution trace (go tool trace) of
	// the phase after its warm-up: where goroutines wait, and for what.
	Trace string `json:"trace,omitempty"`
	// HeapProfile is written when the pipeline has processed half its
	// target: the live heap while it is busy (at the end, with the outbox
	// drained and the compactions done, it is a third of that). Its
	// allocation samples cover that first half.
	HeapProfile string `json:"heap_profile,omitempty"`
	// MemoryBudget is the state store's memory budget; 0: its default.
	MemoryBudget int64 `json:"memory_budget,omitempty"`
	// Pending and Due are the timers phase's sizes.
	Pending int `json:"pending,omitempty"`
	Due     int `json:"due,omitempty"`
}

// PhaseResult is what a child reports on its last line.
type PhaseResult struct {
	Records int64 `json:"records"`
	// FirstNS and LastNS bound the work: the first record read (or
	// committed, for the pipeline: sampled every 5 ms) and the last one
	// done, Unix nanoseconds.
	FirstNS int64 `json:"first_ns"`
	LastNS  int64 `json:"last_ns"`
	// ReadyNS is when the pipeline was first ready (all partitions
	// processing), Unix nanoseconds.
	ReadyNS int64 `json:"ready_ns,omitempty"`
	// CommittedNS is when the pipeline had committed the target's records
	// (its state and outbox hold them; LastNS waits for the outbox to be
	// empty too), Unix nanoseconds.
	CommittedNS int64     `json:"committed_ns,omitempty"`
	Members     int64     `json:"members,omitempty"`
	DiskBytes   int64     `json:"disk_bytes,omitempty"`
	VlogBytes   int64     `json:"vlog_bytes,omitempty"`
	Latency     *Quantile `json:"latency,omitempty"`
	// LatencyParts says where the latency went (latencyParts).
	LatencyParts []LatencyPart `json:"latency_parts,omitempty"`
	FireMillis   float64       `json:"fire_ms,omitempty"`
	// TimersFired counts the pipeline's timer firings (after the warm-up,
	// with WarmTarget).
	TimersFired int64 `json:"timers_fired,omitempty"`
	// CacheHits and CacheMisses count the pipeline's member reads answered
	// by the member cache and by Badger (after the warm-up, with
	// WarmTarget).
	CacheHits   int64   `json:"cache_hits,omitempty"`
	CacheMisses int64   `json:"cache_misses,omitempty"`
	Fired       int     `json:"fired,omitempty"`
	LoadMillis  float64 `json:"load_ms,omitempty"`
	// PeakRSS is the phase process's own peak RSS (VmHWM), bytes: the
	// kernel's ru_maxrss survives execve, so a child started by vfork
	// would report the harness's RSS when it was started.
	PeakRSS int64 `json:"peak_rss,omitempty"`
}

// cacheHitRatio is the share of the member reads the member cache answered;
// 0 with none.
func (r PhaseResult) cacheHitRatio() float64 {
	return ratio(float64(r.CacheHits), float64(r.CacheHits+r.CacheMisses))
}

// Quantile summarises a latency sample, in milliseconds.
type Quantile struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// LatencyPart summarises one part of the event-to-alert latency
// (pipeline.AlertTiming), in milliseconds: its p50 and p99 over every
// alert, and its mean over the slowest 1 % of the alerts (by their total
// latency), which says where the p99 went.
type LatencyPart struct {
	Part        string  `json:"part"`
	P50         float64 `json:"p50_ms"`
	P99         float64 `json:"p99_ms"`
	SlowestMean float64 `json:"slowest_1pct_mean_ms"`
}

// latencyParts summarises the parts of ts, in the order of the steps, and
// their total as the last row.
func latencyParts(ts []pipeline.AlertTiming) []LatencyPart {
	if len(ts) == 0 {
		return nil
	}
	byTotal := slices.Clone(ts)
	slices.SortFunc(byTotal, func(a, b pipeline.AlertTiming) int { return cmp.Compare(b.Total, a.Total) })
	slowest := byTotal[:max(1, len(ts)/100)]
	parts := []struct {
		name string
		of   func(pipeline.AlertTiming) time.Duration
	}{
		{"fetch", func(t pipeline.AlertTiming) time.Duration { return t.Fetch }},
		{"queue", func(t pipeline.AlertTiming) time.Duration { return t.Queue }},
		{"batch", func(t pipeline.AlertTiming) time.Duration { return t.Batch }},
		{"send wait", func(t pipeline.AlertTiming) time.Duration { return t.SendWait }},
		{"send", func(t pipeline.AlertTiming) time.Duration { return t.Send }},
		{"total", func(t pipeline.AlertTiming) time.Duration { return t.Total }},
	}
	out := make([]LatencyPart, 0, len(parts))
	ds := make([]time.Duration, len(ts))
	for _, pt := range parts {
		for i, t := range ts {
			ds[i] = pt.of(t)
		}
		q := quantiles(ds)
		var sum time.Duration
		for _, t := range slowest {
			sum += pt.of(t)
		}
		out = append(out, LatencyPart{Part: pt.name, P50: q.P50, P99: q.P99,
			SlowestMean: float64(sum) / float64(len(slowest)) / 1e6})
	}
	return out
}

func quantiles(ds []time.Duration) *Quantile {
	if len(ds) == 0 {
		return &Quantile{}
	}
	slices.Sort(ds)
	at := func(q float64) float64 {
		i := min(int(q*float64(len(ds))), len(ds)-1)
		return float64(ds[i]) / 1e6
	}
	return &Quantile{Count: len(ds), P50: at(0.50), P99: at(0.99), Max: float64(ds[len(ds)-1]) / 1e6}
}

// RunPhase runs spec in this process (the child side of churnflow bench):
// it writes "READY <ns>" when a pipeline is ready and "RESULT <json>" at
// the end to out. The pipeline phase with Latency runs until ctx ends.
func RunPhase(ctx context.Context, spec PhaseSpec, out io.Writer) error {
	if spec.CPUProfile != "" {
		f, err := os.Create(spec.CPUProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	var (
		res PhaseResult
		err error
	)
	switch spec.Phase {
	case PhaseRaw:
		res, err = runRaw(ctx, spec)
	case PhaseFloor:
		res, err = runFloor(ctx, spec)
	case PhasePipeline:
		res, err = runPipeline(ctx, spec, out)
	case PhaseTimers:
		res, err = runTimers(ctx, spec)
	default:
		err = fmt.Errorf("unknown phase %q", spec.Phase)
	}
	if err != nil {
		return fmt.Errorf("phase %s: %w", spec.Phase, err)
	}
	res.PeakRSS = ownPeakRSS()
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "RESULT %s\n", b)
	return err
}

// readSpan counts records read, remembering the first and last instants.
type readSpan struct {
	n           atomic.Int64
	first, last atomic.Int64
}

func (s *readSpan) add(n int) {
	now := time.Now().UnixNano()
	s.first.CompareAndSwap(0, now)
	s.n.Add(int64(n))
	s.last.Store(now)
}

func (s *readSpan) result() PhaseResult {
	return PhaseResult{Records: s.n.Load(), FirstNS: s.first.Load(), LastNS: s.last.Load()}
}

func readConfig(spec PhaseSpec) pipeline.Config {
	cfg := pipeline.DefaultConfig()
	cfg.Brokers, cfg.Topics = spec.Brokers, spec.Topics
	return cfg
}

// runRaw reads every input record and discards it.
func runRaw(ctx context.Context, spec PhaseSpec) (PhaseResult, error) {
	var span readSpan
	err := pipeline.ReadAll(ctx, readConfig(spec), spec.Topics.Inputs(), func(_ int, msgs []kafka.Message) error {
		span.add(len(msgs))
		return nil
	})
	return span.result(), err
}

// runFloor reads every input record and writes one record per event to a
// Badger opened with churnflow's options, one transaction per fetch (split
// when Badger says the transaction is full), from one goroutine per
// partition, as churnflow's workers commit: the key is the member, the
// value the event's bytes. No decoding, no logic.
func runFloor(ctx context.Context, spec PhaseSpec) (PhaseResult, error) {
	opts := spec.stateOptions()
	setMemoryLimit(opts.MemoryBudget)
	db, err := badger.Open(opts.BadgerOptions())
	if err != nil {
		return PhaseResult{}, fmt.Errorf("open badger: %w", err)
	}
	var span readSpan
	err = pipeline.ReadAll(ctx, readConfig(spec), spec.Topics.Inputs(), func(part int, msgs []kafka.Message) error {
		txn := db.NewTransaction(true)
		for i := range msgs {
			m := &msgs[i]
			k := make([]byte, 0, 4+len(m.Key))
			k = append(k, 'm', '/', byte(part>>8), byte(part))
			k = append(k, m.Key...)
			err := txn.Set(k, m.Value)
			if errors.Is(err, badger.ErrTxnTooBig) {
				if err = txn.Commit(); err != nil {
					return err
				}
				txn = db.NewTransaction(true)
				err = txn.Set(k, m.Value)
			}
			if err != nil {
				txn.Discard()
				return err
			}
		}
		if err := txn.Commit(); err != nil {
			return err
		}
		span.add(len(msgs))
		return nil
	})
	res := span.result()
	if cerr := db.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return res, err
}

// runPipeline runs churnflow's pipeline as churnflow run does (default
// rules and state options, metrics on, the memory limit run sets) until
// the committed input offsets reach spec.Target and the outbox is empty,
// or, with Latency, until ctx ends.
func runPipeline(ctx context.Context, spec PhaseSpec, out io.Writer) (PhaseResult, error) {
	opts := spec.stateOptions()
	setMemoryLimit(opts.MemoryBudget)
	// CHURNFLOW_BENCH_LOG=debug (or info, warn) logs the pipeline and the
	// store (and Badger's own messages, at debug) to the phase's log
	// file in the work directory (--keep keeps it).
	log := zerolog.Nop()
	if lvl, err := zerolog.ParseLevel(os.Getenv("CHURNFLOW_BENCH_LOG")); err == nil && lvl != zerolog.NoLevel {
		zerolog.TimeFieldFormat = zerolog.TimeFormatUnixMs
		log = zerolog.New(os.Stderr).Level(lvl).With().Timestamp().Logger()
		opts.Logger = log.With().Str("component", "state").Logger()
	}
	engine, err := operators.NewEngine(operators.DefaultConfig())
	if err != nil {
		return PhaseResult{}, err
	}
	store, err := state.Open(opts)
	if err != nil {
		return PhaseResult{}, err
	}
	defer store.Close()
	cfg := pipeline.DefaultConfig()
	cfg.Brokers, cfg.Topics, cfg.Group, cfg.CreateTopics = spec.Brokers, spec.Topics, spec.Group, true
	reg := prometheus.NewRegistry()
	deps := pipeline.Deps{Engine: engine, Store: store, Metrics: pipeline.NewMetrics(reg), Log: log}
	if spec.Clock != 0 {
		clock := time.Unix(spec.Clock, 0)
		deps.Clock = func() time.Time { return clock }
		if spec.ClockRuns {
			started := time.Now()
			deps.Clock = func() time.Time { return clock.Add(time.Since(started)) }
		}
	}
	var (
		latMu sync.Mutex
		lats  []pipeline.AlertTiming
	)
	if spec.Latency {
		deps.AlertLatency = func(t pipeline.AlertTiming) {
			latMu.Lock()
			lats = append(lats, t)
			latMu.Unlock()
		}
	}
	p, err := pipeline.New(cfg, deps)
	if err != nil {
		return PhaseResult{}, err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	ran := make(chan error, 1)
	go func() { ran <- p.Run(runCtx) }()

	var res PhaseResult
	consumed := func() (int64, error) {
		var n int64
		for part := range spec.Partitions {
			offs, err := store.Partition(state.Partition(part)).Offsets()
			if err != nil {
				return 0, err
			}
			for _, t := range spec.Topics.Inputs() {
				n += offs[t]
			}
		}
		return n, nil
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	start, _ := consumed()
	done, heapWritten := false, false
	warm := warmWatch{target: spec.WarmTarget}
	var timersBefore int64
	var readsBefore state.Usage
	for !done {
		select {
		case err := <-ran:
			if err == nil {
				err = errors.New("pipeline stopped before the end")
			}
			return res, err
		case <-ctx.Done():
			done = true
			continue
		case <-tick.C:
		}
		st := p.Status()
		if res.ReadyNS == 0 && st.Ready() {
			res.ReadyNS = time.Now().UnixNano()
			fmt.Fprintf(out, "READY %d\n", res.ReadyNS)
		}
		n, err := consumed()
		if err != nil {
			return res, err
		}
		if res.FirstNS == 0 && n > start {
			res.FirstNS = time.Now().UnixNano()
		}
		res.Records = n - start
		if warm.target > 0 && !warm.done {
			quiet, fired, err := warm.quiet(ctx, n, len(st.Warming), store, spec.Partitions, reg)
			if err != nil {
				return res, err
			}
			if quiet {
				latMu.Lock()
				lats = lats[:0]
				latMu.Unlock()
				timersBefore = fired
				if readsBefore, err = store.Usage(); err != nil {
					return res, err
				}
				if spec.Trace != "" {
					stop, err := startTrace(spec.Trace)
					if err != nil {
						return res, err
					}
					defer stop()
				}
				fmt.Fprintf(out, "WARM %d %d\n", time.Now().UnixNano(), fired)
			}
			continue
		}
		if spec.HeapProfile != "" && !heapWritten && spec.Target > 0 && n >= spec.Target/2 {
			if err := writeHeapProfile(spec.HeapProfile); err != nil {
				return res, err
			}
			heapWritten = true
		}
		if spec.Target > 0 && n >= spec.Target && res.CommittedNS == 0 {
			res.CommittedNS = time.Now().UnixNano()
		}
		if spec.Target > 0 && n >= spec.Target {
			empty, err := outboxEmpty(ctx, store, spec.Partitions)
			if err != nil {
				return res, err
			}
			if empty {
				res.LastNS = time.Now().UnixNano()
				stats, err := store.Stats()
				if err != nil {
					return res, err
				}
				res.Members, res.DiskBytes, res.VlogBytes = stats.Members, stats.DiskBytes, stats.ValueLogBytes
				done = true
			}
		}
	}
	stop()
	if err := <-ran; err != nil {
		return res, err
	}
	fired, err := counterValue(reg, pipeline.MetricTimersFired)
	if err != nil {
		return res, err
	}
	res.TimersFired = fired - timersBefore
	reads, err := store.Usage()
	if err != nil {
		return res, err
	}
	res.CacheHits, res.CacheMisses = reads.CacheHits-readsBefore.CacheHits, reads.CacheMisses-readsBefore.CacheMisses
	if spec.Latency {
		latMu.Lock()
		totals := make([]time.Duration, len(lats))
		for i, t := range lats {
			totals[i] = t.Total
		}
		res.Latency, res.LatencyParts = quantiles(totals), latencyParts(lats)
		latMu.Unlock()
		res.LastNS = time.Now().UnixNano()
	}
	return res, nil
}

// warmQuiet is how long no timer may fire before a warm-up counts as done:
// the timer backlog of a step in event time fires over many batches, with
// moments of an empty outbox between them.
const warmQuiet = 500 * time.Millisecond

// warmWatch tells when a pipeline has done a warm-up: target input records
// processed, the outbox empty and no timer fired for warmQuiet.
type warmWatch struct {
	target    int64
	done      bool
	fired     int64     // timers fired at the last look
	quietFrom time.Time // since when fired has not moved, with the outbox empty
	lastLook  time.Time
}

// quiet looks (at most every 50 ms) and reports whether the warm-up is done,
// with the timers fired so far: the warm-up's events consumed, its alerts
// acknowledged and its timers fired, and the process's own warm-up over
// (warming partitions whose member scan runs, dedup filters being built:
// background work a restarted process does beside its first batches).
func (w *warmWatch) quiet(ctx context.Context, consumed int64, warming int, store *state.Store, partitions int, reg prometheus.Gatherer) (bool, int64, error) {
	now := time.Now()
	if consumed < w.target || warming > 0 || now.Sub(w.lastLook) < 50*time.Millisecond {
		return false, w.fired, nil
	}
	w.lastLook = now
	if u, err := store.Usage(); err != nil || u.FilterBuilds > 0 {
		return false, w.fired, err
	}
	empty, err := outboxEmpty(ctx, store, partitions)
	if err != nil {
		return false, 0, err
	}
	fired, err := counterValue(reg, pipeline.MetricTimersFired)
	if err != nil {
		return false, 0, err
	}
	if !empty || fired != w.fired || w.quietFrom.IsZero() {
		w.fired, w.quietFrom = fired, now
		return false, fired, nil
	}
	w.done = now.Sub(w.quietFrom) >= warmQuiet
	return w.done, fired, nil
}

// errFound stops outboxEmpty's scan at the first pending record.
var errFound = errors.New("found")

// outboxEmpty reports whether no partition's outbox holds a record: a scan
// of the outboxes only (Store.Stats scans every key, seconds at 1,000,000
// members, and would compete with the pipeline for the CPU).
func outboxEmpty(ctx context.Context, store *state.Store, partitions int) (bool, error) {
	for p := range partitions {
		err := store.Partition(state.Partition(p)).Outbox(ctx, func(uint64, state.OutboxRecord) error { return errFound })
		if errors.Is(err, errFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
	return true, nil
}

// counterValue sums the counter name's series in reg.
func counterValue(reg prometheus.Gatherer, name string) (int64, error) {
	fams, err := reg.Gather()
	if err != nil {
		return 0, fmt.Errorf("read metric %s: %w", name, err)
	}
	var v float64
	for _, f := range fams {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				v += m.GetCounter().GetValue()
			}
		}
	}
	return int64(v), nil
}

// stateOptions are the state store's options for the phase: the defaults
// in StateDir, with the phase's MemoryBudget.
func (spec PhaseSpec) stateOptions() state.Options {
	opts := state.DefaultOptions(spec.StateDir)
	opts.MemoryBudget = cmp.Or(spec.MemoryBudget, opts.MemoryBudget)
	return opts
}

// startTrace starts a runtime execution trace into path; stop ends it and
// closes the file.
func startTrace(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	if err := trace.Start(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("trace: %w", err)
	}
	return func() {
		trace.Stop()
		f.Close()
	}, nil
}

// writeHeapProfile writes the in-use heap to path ("" : nothing).
func writeHeapProfile(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	return nil
}

// ownPeakRSS returns this process's peak RSS (VmHWM of /proc/self/status)
// in bytes, or 0 where there is none.
func ownPeakRSS() int64 { return peakRSSOf("self") }

// peakRSSOf returns process pid's peak RSS (VmHWM), bytes, or 0.
func peakRSSOf(pid string) int64 { return max(procstatus.Read(pid, "VmHWM"), 0) }

// setMemoryLimit sets the Go memory limit churnflow run sets for a store
// of this budget, unless GOMEMLIMIT is in the environment (as run does).
func setMemoryLimit(budget int64) {
	if _, ok := os.LookupEnv("GOMEMLIMIT"); !ok {
		debug.SetMemoryLimit(state.RecommendedMemoryLimit(budget))
	}
}
