package demo

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/churnflow/churnflow/internal/gen"
	"github.com/churnflow/churnflow/internal/replay"
	"github.com/churnflow/churnflow/operators"
	"github.com/churnflow/churnflow/pipeline"
	"github.com/churnflow/churnflow/state"
)

// summarizer writes the periodic summary: what the generator produced,
// what the pipeline committed (its stored input offsets), the alerts and
// dead letters the subscriber read, and the members active and sleeping
// by tier (a Range over the store's partitions).
type summarizer struct {
	cfg    *Config
	sim    *simClock
	pclock *pipelineClock
	prod   *producer
	sub    *subscriber
	store  *state.Store
	engine *operators.Engine
	client *kafka.Client
	topics pipeline.Topics
	print  *printer
	start  time.Time

	lastAt        time.Time
	lastProcessed int64
	last          Result
}

// summaryTimeout bounds the broker and store reads of one summary.
const summaryTimeout = 5 * time.Second

func (s *summarizer) banner(addr, dir string, g gen.Config) string {
	var b strings.Builder
	b.WriteString(s.bold("churnflow demo") + ": the real pipeline on an embedded, in-memory Kafka-protocol broker\n")
	fmt.Fprintf(&b, "  broker %s (in RAM, gone at exit) · state %s (removed at exit)\n", addr, dir)
	fmt.Fprintf(&b, "  %s members (seed %d), %.3g%% malformed records · %d days of history from %s back-filled, then live\n",
		num(int64(g.Members)), g.Seed, 100*g.BadRate, s.cfg.HistoryDays, g.Start.Format(time.DateOnly))
	fmt.Fprintf(&b, "  simulated clock starts at %s and runs %s simulated per second · %s of wall time, Ctrl-C stops earlier\n",
		s.cfg.Now.Format(time.DateOnly), simRate(s.cfg.Speed), s.cfg.Duration)
	fmt.Fprintf(&b, "  alerts as read from %s, %s and %s (at most %d lines a second)\n\n",
		s.topics.Dormancy, s.topics.Retention, s.topics.Nudges, s.cfg.AlertsPerSecond)
	return b.String()
}

// simRate renders the speed: "1 day", "10 days", "1 h".
func simRate(speed float64) string {
	switch {
	case speed >= 86400:
		d := speed / 86400
		if d == 1 {
			return "1 day"
		}
		return strconv.FormatFloat(d, 'g', 4, 64) + " days"
	case speed >= 3600:
		return strconv.FormatFloat(speed/3600, 'g', 4, 64) + " h"
	}
	return strconv.FormatFloat(speed, 'g', 4, 64) + " s"
}

// text gathers the figures and renders the summary at simulated time
// simNow; final is "" for a periodic summary, else what ended the run.
func (s *summarizer) text(ctx context.Context, final string, simNow time.Time) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), summaryTimeout)
	defer cancel()
	now := time.Now()
	r := Result{Produced: s.prod.produced.Load(), Alerts: map[string]int64{}}
	var b strings.Builder
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "%-14s%s\n", label, fmt.Sprintf(format, args...))
	}

	phase := "live: each record produced when the simulated clock reaches it"
	switch {
	case final != "":
		phase = final
	case !s.prod.live.Load():
		phase = "back-filling the history as fast as the broker takes it"
	case s.prod.ended.Load():
		phase = "the generated span has ended"
	}
	title := fmt.Sprintf("── %s · simulated %s · %s of %s · %s ",
		map[bool]string{true: "final summary", false: "summary"}[final != ""],
		simNow.Format(time.DateOnly), now.Sub(s.start).Round(time.Second), s.cfg.Duration, phase)
	b.WriteString("\n" + s.bold(title+strings.Repeat("─", max(3, 100-len([]rune(title))))) + "\n")

	// Events.
	processed, perr := s.processed()
	r.Processed = processed
	rate := 0.0
	if !s.lastAt.IsZero() {
		rate = float64(processed-s.lastProcessed) / now.Sub(s.lastAt).Seconds()
	} else {
		rate = float64(processed) / now.Sub(s.start).Seconds()
	}
	if final == "" {
		s.lastAt, s.lastProcessed = now, processed
	}
	bad := s.prod.bad.Load()
	processedText := num(processed) + " processed by the pipeline"
	if perr != nil {
		processedText = "processed: unknown (" + perr.Error() + ")"
	}
	line("events", "%s produced (%s malformed) · %s · %s/s", num(r.Produced), num(bad), processedText, num(int64(rate)))
	line("", "%s", joinCounts(s.prod.eventCounts(), nil))

	// Alerts.
	alerts, dead := s.sub.counts()
	var total int64
	for _, n := range alerts {
		total += n
	}
	line("alerts", "%s read back from the alert topics", num(total))
	line("", "%s", joinCounts(alerts, alertTypeOrder(false)))
	seg, serr := s.topicRecords(ctx, s.topics.Segments)
	if serr != nil {
		line("", "segment changes: unknown (%v)", serr)
	} else {
		line("", "segment_change %s (on %s, not printed)", num(seg), s.topics.Segments)
	}
	for k, v := range alerts {
		r.Alerts[k] = v
	}
	r.Alerts[operators.AlertSegmentChange.String()] = seg
	var deadTotal int64
	for _, n := range dead {
		deadTotal += n
	}
	r.DeadLetters = dead
	if deadTotal == 0 {
		line("dead letters", "none yet")
	} else {
		line("dead letters", "%s: %s", num(deadTotal), joinCounts(dead, nil))
	}

	// Members.
	pc := replay.NewPopulationCounter(s.engine)
	var rerr error
	for p := range s.cfg.Partitions {
		if rerr = s.store.Partition(state.Partition(p)).Range(ctx, func(_ operators.MemberID, st *operators.MemberState) error {
			pc.Add(st)
			return nil
		}); rerr != nil {
			break
		}
	}
	if rerr != nil {
		line("members", "unknown (%v)", rerr)
	} else {
		r.Active, r.Sleeping = pc.Active, pc.Sleeping
		line("members", "%s: %s active, %s sleeping (%s %%)", num(pc.Active+pc.Sleeping), num(pc.Active), num(pc.Sleeping),
			pct(pc.Sleeping, pc.Active+pc.Sleeping))
		byTier, _ := pc.Tables()
		var t strings.Builder
		_ = replay.WritePopulation(&t, "tier", byTier)
		for l := range strings.Lines(t.String()) {
			b.WriteString("  " + l)
		}
	}
	s.last = r
	return b.String()
}

// result returns the figures of the last summary.
func (s *summarizer) result() Result { return s.last }

// processed sums the next input offsets the pipeline committed with its
// state: the records it has applied or dead-lettered.
func (s *summarizer) processed() (int64, error) {
	var n int64
	for p := range s.cfg.Partitions {
		offs, err := s.store.Partition(state.Partition(p)).Offsets()
		if err != nil {
			return 0, err
		}
		for _, o := range offs {
			n += o
		}
	}
	return n, nil
}

// topicRecords counts the records on a topic (the sum of its partitions'
// end offsets).
func (s *summarizer) topicRecords(ctx context.Context, topic string) (int64, error) {
	ends, err := endOffsets(ctx, s.client, int(s.cfg.Partitions), topic)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, e := range ends {
		n += max(e, 0)
	}
	return n, nil
}

func (s *summarizer) bold(text string) string {
	if s.print.color {
		return ansiBold + text + ansiReset
	}
	return text
}

// alertTypeOrder lists the alert types printed (segment changes apart).
func alertTypeOrder(withSegments bool) []string {
	var out []string
	for _, t := range operators.AlertTypes() {
		if t == operators.AlertSegmentChange && !withSegments {
			continue
		}
		out = append(out, t.String())
	}
	return out
}

// joinCounts renders "a 12 · b 3": the keys of order first (zero counts
// included), then the others by count, largest first.
func joinCounts(m map[string]int64, order []string) string {
	var parts []string
	seen := map[string]bool{}
	for _, k := range order {
		parts = append(parts, k+" "+num(m[k]))
		seen[k] = true
	}
	var rest []string
	for k := range m {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	slices.SortFunc(rest, func(a, b string) int { return cmp.Or(cmp.Compare(m[b], m[a]), cmp.Compare(a, b)) })
	for _, k := range rest {
		parts = append(parts, k+" "+num(m[k]))
	}
	if len(parts) == 0 {
		return "none yet"
	}
	return strings.Join(parts, " · ")
}

// num renders n with thousands separators.
func num(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func pct(n, of int64) string {
	if of == 0 {
		return "-"
	}
	return strconv.FormatFloat(100*float64(n)/float64(of), 'f', 1, 64)
}
