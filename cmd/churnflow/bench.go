package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/churnflow/churnflow/benchmarks/harness"
)

type benchFlags struct {
	quick    bool
	skip     []string
	json     bool
	brokers  []string
	out      string
	keep     string
	profile  string
	heap     string
	latProf  string
	latTrace string
	peer     bool
	peerDir  string
	members  int
	events   int
	parts    int
	rate     float64
	rateFor  time.Duration
	memory   int64
	commit   string
}

func newBenchCmd(s streams) *cobra.Command {
	f := &benchFlags{peerDir: filepath.Join("benchmarks", "peers", "kafka-streams")}
	cmd := &cobra.Command{
		Use:   "bench [--quick] [--json] [--brokers h:p,...] [--kstreams]",
		Short: "Measure churnflow against the machine's floor (and Kafka Streams) in one run",
		Long: `bench preloads generated events into a broker and, in one run on this
machine, measures (each phase in a process of its own, so that its CPU time
and peak RSS are its own):

  raw consume   kafka-go reading every record and discarding it, with the
                pipeline's own fetcher;
  floor         the same, writing one Badger record per event in a
                transaction per fetch: what any durable per-member processor
                pays here;
  pipeline      churnflow end to end: consume, decode, validate, dedupe,
                operators, timers, Badger commit, alerts and changelog
                produced and acknowledged;
  restart       the same state directory restarted, until the events that
                followed are processed;
  latency       event-to-alert latency (p50, p99, max) at a fixed offered
                rate below saturation;
  timers        firing 1,000 due timers with a small and a large number
                pending;
  kstreams      (--kstreams) the Kafka Streams peer of
                benchmarks/peers/kafka-streams on the same events, after its
                dormancy alerts are checked against churnflow's.

The broker is the embedded one, in its own process, unless --brokers names a
cluster (such as scripts/kafka-local.sh's). The full profile is 1,000,000
members and 10,000,000 events (about 10 minutes and 8 GiB of RAM for the
embedded broker); --quick is a small one that runs in CI in under a minute.
It prints a table, or with --json one JSON object. It reports; it does not
judge: the targets are in docs/performance.md.`,
		Example: `  churnflow bench --quick
  churnflow bench --json --out benchmarks/results.json
  churnflow bench --brokers 127.0.0.1:9092 --kstreams`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := harness.DefaultConfig()
			if f.quick {
				cfg = harness.QuickConfig()
			}
			fl := cmd.Flags()
			if fl.Changed("members") {
				cfg.Members = f.members
			}
			if fl.Changed("events") {
				cfg.Events = f.events
			}
			if fl.Changed("partitions") {
				cfg.Partitions = f.parts
			}
			if fl.Changed("latency-rate") {
				cfg.LatencyRate = f.rate
			}
			if fl.Changed("latency-for") {
				cfg.LatencyFor = f.rateFor
			}
			if fl.Changed("memory") {
				cfg.MemoryBudget = f.memory
			}
			bin, err := os.Executable()
			if err != nil {
				return fmt.Errorf("bench: find churnflow's executable: %w", err)
			}
			cfg.Bin, cfg.Brokers, cfg.Profile, cfg.HeapProfile = bin, f.brokers, f.profile, f.heap
			cfg.LatencyProfile, cfg.LatencyTrace = f.latProf, f.latTrace
			cfg.Peer, cfg.PeerDir, cfg.Progress = f.peer, f.peerDir, s.err
			if f.commit != "" {
				cfg.Commit, cfg.CommitSource = f.commit, harness.CommitFromFlag
			} else {
				cfg.Commit, cfg.CommitSource = sourceCommit(buildSettings(), gitWorkingTree)
			}
			if cfg.CommitSource == harness.CommitFromWorkingTree {
				fmt.Fprintf(s.err, "bench: this binary carries no VCS stamp (built with -buildvcs=false, as GOFLAGS may set); "+
					"the commit recorded is the working tree's now, %s, which is right only if the binary was built from it: "+
					"--commit names the build\n", cfg.Commit)
			}
			cfg.Skip = f.skip
			if f.keep != "" {
				cfg.WorkDir, cfg.Keep = f.keep, true
			}
			if err := cfg.Validate(); err != nil {
				return usagef("%v", err)
			}
			res, err := harness.Run(cmd.Context(), cfg)
			if err != nil {
				if res != nil { // what the phases before the failure measured
					fmt.Fprintln(s.err, "bench: failed; the figures measured before the failure:")
					res.WriteTable(s.err)
				}
				return err
			}
			out := s.out
			if f.out != "" {
				file, err := os.Create(f.out)
				if err != nil {
					return fmt.Errorf("bench: %w", err)
				}
				defer file.Close()
				out = file
			}
			if f.json {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			return res.WriteTable(out)
		},
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.BoolVar(&f.quick, "quick", false, "the small profile (20,000 members, 200,000 events; under a minute)")
	fl.BoolVar(&f.json, "json", false, "print one JSON object instead of the table")
	fl.StringSliceVar(&f.brokers, "brokers", nil, "a Kafka cluster to use instead of the embedded broker")
	fl.BoolVar(&f.peer, "kstreams", false, "also run the Kafka Streams peer (needs java and mvn; builds it the first time)")
	fl.StringVar(&f.peerDir, "kstreams-dir", f.peerDir, "directory of the Kafka Streams peer's Maven project")
	fl.IntVar(&f.members, "members", 0, "members in the data set (default 1,000,000; --quick 20,000)")
	fl.IntVar(&f.events, "events", 0, "events preloaded (default 10,000,000; --quick 200,000)")
	fl.IntVar(&f.parts, "partitions", 0, "partitions of the input topics (default 8)")
	fl.Float64Var(&f.rate, "latency-rate", 0, "events per second offered in the latency phase (default 20,000; --quick 5,000)")
	fl.DurationVar(&f.rateFor, "latency-for", 0, "how long the latency phase offers events (default 30s; --quick 5s)")
	fl.Var(sizeValue{&f.memory}, "memory", "state memory budget of the floor, pipeline and timers phases, as churnflow run's --memory (default 256MiB); the memory limit follows from it")
	fl.StringSliceVar(&f.skip, "skip", nil, "leave out these phases (raw, floor, restart, latency, timers), to iterate on the others; their figures read as zero")
	fl.StringVar(&f.profile, "cpuprofile", "", "write the end-to-end phase's CPU profile (pprof) to this file")
	fl.StringVar(&f.heap, "memprofile", "", "write the end-to-end phase's live heap (pprof), halfway through its events, to this file")
	fl.StringVar(&f.latProf, "latency-cpuprofile", "", "write the latency phase's CPU profile (pprof; its whole process, warm-up included) to this file")
	fl.StringVar(&f.latTrace, "latency-trace", "", "write a runtime execution trace of the latency phase, after its warm-up, to this file (go tool trace)")
	fl.StringVar(&f.out, "out", "", "write the table or JSON to this file instead of standard output")
	fl.StringVar(&f.keep, "keep", "", "work in this directory and keep it (state, phase logs)")
	fl.StringVar(&f.commit, "commit", "", "the source commit to record with the results, for a binary built without a VCS stamp (default: the binary's stamp, else the working tree's HEAD)")
	return cmd
}

// newBenchPhaseCmd is the child side of bench: one phase, described by a
// JSON argument, in a process of its own.
func newBenchPhaseCmd(s streams) *cobra.Command {
	return &cobra.Command{
		Use:    "bench-phase SPEC",
		Short:  "Run one phase of churnflow bench (internal)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var spec harness.PhaseSpec
			if err := json.Unmarshal([]byte(args[0]), &spec); err != nil {
				return usagef("bench-phase: spec: %v", err)
			}
			return harness.RunPhase(cmd.Context(), spec, s.out)
		},
	}
}

// sourceCommit names the source the binary was built from, and where that
// name comes from: the VCS revision go build stamped into the binary
// (settings, from debug.ReadBuildInfo), else the working tree's HEAD as
// git reports it now (tree), which names the binary only if it was built
// from that tree: a binary built earlier and run from a newer checkout
// would be labelled with the newer commit. "-dirty" marks uncommitted
// changes; "unknown" is returned when neither is available.
func sourceCommit(settings []debug.BuildSetting, tree func() (string, error)) (string, harness.CommitSource) {
	rev, dirty := "", false
	for _, st := range settings {
		switch st.Key {
		case "vcs.revision":
			rev = st.Value
		case "vcs.modified":
			dirty = st.Value == "true"
		}
	}
	if rev != "" {
		if dirty {
			rev += "-dirty"
		}
		return rev, harness.CommitFromBuild
	}
	rev, err := tree()
	if err != nil {
		return "unknown", harness.CommitUnknown
	}
	return rev, harness.CommitFromWorkingTree
}

// buildSettings returns the binary's build settings (nil if it has none).
func buildSettings() []debug.BuildSetting {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.Settings
	}
	return nil
}

// gitWorkingTree returns the HEAD of the git working tree the process runs
// in, with "-dirty" when tracked files have uncommitted changes.
func gitWorkingTree() (string, error) {
	out, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		return "", fmt.Errorf("git rev-parse HEAD: %w", err)
	}
	rev := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		rev += "-dirty"
	}
	return rev, nil
}
