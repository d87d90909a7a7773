package harness

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// WriteTable writes r as a table for people.
func (r *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format+"\n", args...) }
	profile := "full"
	if r.Quick {
		profile = "quick"
	}
	commit := r.Commit
	switch r.CommitSource {
	case CommitFromWorkingTree:
		commit += " (the working tree's when the bench ran: the binary carries no VCS stamp)"
	case CommitFromFlag:
		commit += " (named with --commit)"
	}
	p("churnflow bench (%s profile) at %s, commit %s", profile, r.StartedAt, commit)
	p("broker %s; %d events, %d members, %d partitions; state memory budget %d MiB; %s, %d CPUs; load average %s at the start, %s at the end",
		r.Broker, r.Events, r.Members, r.Partitions, r.MemoryBudget>>20, r.GoVersion, r.CPUs, r.LoadBefore, r.LoadAfter)
	p("")
	p("phase\tevents/s\tCPU s per M events\tpeak RSS")
	row := func(name, key string, rate float64) {
		if rate == 0 {
			p("%s\t-\t-\t-", name)
			return
		}
		p("%s\t%.0f\t%.1f\t%d MiB", name, rate, r.CPUSecondsPerMillion[key], r.PeakRSSByPhase[key]>>20)
	}
	row("raw consume (kafka-go, discard)", "raw", r.RawConsumeEventsPerSec)
	row("floor (consume + 1 Badger record per event)", "floor", r.FloorEventsPerSec)
	row("churnflow end to end", "pipeline", r.PipelineEventsPerSec)
	row("Kafka Streams peer", "kstreams", r.KStreamsEventsPerSec)
	p("")
	ratioRow := func(name string, v float64) {
		if v == 0 {
			p("%s\t-", name)
			return
		}
		p("%s\t%.3f", name, v)
	}
	ratioRow("pipeline / floor", r.FloorRatio)
	ratioRow("pipeline / raw consume", r.ConsumeRatio)
	if r.KStreamsRatio > 0 {
		p("pipeline / kafka streams\t%.3f", r.KStreamsRatio)
	}
	if a := r.KStreamsAgreement; a != nil {
		p("dormancy alerts up to %s\tchurnflow %d, kafka streams %d, agreed %d", a.Cutoff, a.Churnflow, a.KStreams, a.Agreed)
	}
	p("timers fired end to end\t%d (%.2f per event)", r.PipelineTimersFired, float64(r.PipelineTimersFired)/float64(max(r.Events, 1)))
	p("member reads from the cache\t%.1f %% end to end", 100*r.PipelineCacheHitRatio)
	p("state\t%d members, %.0f bytes per member in the LSM tree; value log %d MiB (outbox entries awaiting value-log GC)",
		r.StateMembers, r.StateBytesPerMember, r.StateValueLogBytes>>20)
	skipped := func(phase string) bool { return slices.Contains(r.Skipped, phase) }
	if !skipped("latency") {
		p("event-to-alert latency at %.0f events/s offered (%.0f achieved)\tp50 %.1f ms, p99 %.1f ms, max %.1f ms over %d alerts",
			r.LatencyOfferedRate, r.LatencyAchievedRate, r.P50LatencyMs, r.P99LatencyMs, r.MaxLatencyMs, r.LatencyAlerts)
		p("  (on the end-to-end state, event time at the wall clock's pace)	%d timers fired while offered; warm-up done after %.2f s, %d timers fired; member reads from the cache %.1f %%",
			r.LatencyTimersFired, r.LatencyWarmupSeconds, r.LatencyWarmupTimers, 100*r.LatencyCacheHitRatio)
		for _, pt := range r.LatencyParts {
			p("  latency part: %s\tp50 %.1f ms, p99 %.1f ms, mean over the slowest 1 %% %.1f ms", pt.Part, pt.P50, pt.P99, pt.SlowestMean)
		}
		if u := r.LatencyCPU; u != nil {
			p("  CPU while offered (%.1f s on %d cores)\tchurnflow %.1f s, broker %s, load generator %.1f s; left for the rest %.1f s",
				u.Wall, u.Cores, u.Pipeline, u.brokerText(), u.LoadGenerator, u.idle())
		}
	}
	if !skipped("restart") {
		p("restart with %d members of state\tready after %.2f s, new events committed after %.2f s, outbox empty after %.2f s",
			r.StateMembers, r.RestartReadySeconds, r.RestartSeconds, r.RestartFlushedSeconds)
	}
	if !skipped("timers") {
		p("fire %d due timers\t%.1f ms with %d pending, %.1f ms with %d pending: ratio %.2f",
			r.TimersDue, r.TimerFireMsSmall, r.TimersSmall, r.TimerFireMsLarge, r.TimersLarge, r.TimerFireRatio10Mvs100k)
	}
	if len(r.Skipped) > 0 {
		p("skipped\t%s", strings.Join(r.Skipped, ", "))
	}
	for _, n := range r.Notes {
		p("note\t%s", n)
	}
	return tw.Flush()
}
