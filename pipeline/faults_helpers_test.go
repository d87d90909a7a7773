package pipeline_test

// Helpers of the fault tests (crash_test.go, rebalance_test.go): streaming
// generated events into the broker while the pipeline runs, in an order
// that keeps the known answer, a pipeline configuration shared by the
// parent and its child processes, and the comparison with replay.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/churnflow/churnflow/internal/gen"
	"github.com/churnflow/churnflow/internal/kafkatest"
	"github.com/churnflow/churnflow/pipeline"
	"github.com/churnflow/churnflow/state"
)

// faultConfig is the pipeline configuration of the fault tests, the same
// in the parent (which computes the known answer from its Lateness) and in
// the child processes. Heartbeats are short so rebalances take fractions
// of a second.
func faultConfig(addr, group string) pipeline.Config {
	cfg := pipeline.DefaultConfig()
	cfg.Brokers, cfg.Group = []string{addr}, group
	cfg.IdleAfter = 200 * time.Millisecond
	cfg.BatchMax = 200 // many batches per partition: more places to crash
	cfg.HeartbeatInterval = 200 * time.Millisecond
	return cfg
}

// faultTimes returns, for a generated span ending at end, the wall-clock
// time to jump to once the pipeline has caught up and the replay horizon
// that fires the same timers (knownAnswer explains why).
func faultTimes(cfg pipeline.Config, end time.Time) (final, until time.Time) {
	final = end.Add(cfg.Lateness + time.Minute)
	return final, final.Add(-cfg.Lateness).Add(-time.Second)
}

// streamSteps orders the good records as replay applies them (occurred_at,
// then bookings before activity, then stream order) and cuts them into
// produce steps that keep that order visible to every partition worker
// while the events flow: in each partition, the merged sequence is split
// into runs of one topic, and step i holds run i of every partition. A
// step is written (and acknowledged) before the next, so a worker never
// sees a record while an earlier record of its partition's other topic is
// still to be produced: what is visible always precedes, in merge order,
// what is not. (Produced in arbitrary chunks, a worker could apply a
// record before an earlier one of the other topic arrives; the alerts
// would then rightly differ from replay's: docs/pipeline.md, "When
// producers are out of order".)
//
// Steps go out back to back. That timing exposed a race the worker used to
// have (a topic counted as caught up on a fetch older than the other
// topic's record); the worker now holds a record back until the other
// topic is caught up as of a fetch issued after the record arrived.
func streamSteps(recs []gen.Record, topics pipeline.Topics, partitions int) [][]kafka.Message {
	msgs := toMessages(pipelineOrder(recs), topics)
	ids := make([]int, partitions)
	for i := range ids {
		ids[i] = i
	}
	var bal kafka.Murmur2Balancer // the producer's: the same partition
	runs := make([][][]kafka.Message, partitions)
	for _, m := range msgs {
		p := bal.Balance(m, ids...)
		rs := runs[p]
		if n := len(rs); n > 0 && rs[n-1][0].Topic == m.Topic {
			rs[n-1] = append(rs[n-1], m)
		} else {
			runs[p] = append(rs, []kafka.Message{m})
		}
	}
	var steps [][]kafka.Message
	for i := 0; ; i++ {
		var step []kafka.Message
		for p := range runs {
			if i < len(runs[p]) {
				step = append(step, runs[p][i]...)
			}
		}
		if step == nil {
			return steps
		}
		steps = append(steps, step)
	}
}

// stepGap is the least time between two produce steps: none by default,
// the timing that exposed the cross-topic race streamSteps describes.
// CHURNFLOW_STEP_GAP (a duration) spaces them out.
var stepGap = func() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("CHURNFLOW_STEP_GAP")); err == nil {
		return d
	}
	return 0
}()

// streamer produces steps in segments, each released by the test and
// spread over a given duration, from one goroutine.
type streamer struct {
	addr     string
	segments [][][]kafka.Message
	release  chan time.Duration // one per segment: how long to spread it over
	done     chan struct{}      // closed when every segment released is written
	mu       sync.Mutex
	err      error
	written  int
	released int // segments released
	finished int // segments written
}

// newStreamer splits steps into n segments of about equal size and starts
// the producing goroutine; Release lets segment after segment go. The
// goroutine ends with the test.
func newStreamer(t *testing.T, addr string, steps [][]kafka.Message, n int) *streamer {
	t.Helper()
	s := &streamer{addr: addr, release: make(chan time.Duration, n), done: make(chan struct{})}
	for i := range n {
		lo, hi := i*len(steps)/n, (i+1)*len(steps)/n
		s.segments = append(s.segments, steps[lo:hi])
	}
	ctx, cancel := context.WithCancel(context.Background())
	w, closeWriter := newTestWriter(addr)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		defer close(s.done)
		for _, seg := range s.segments {
			var spread time.Duration
			select {
			case spread = <-s.release:
			case <-ctx.Done():
				return
			}
			start := time.Now()
			for i, step := range seg {
				if err := w.WriteMessages(ctx, step...); err != nil {
					s.fail(fmt.Errorf("produce step: %w", err))
					return
				}
				s.mu.Lock()
				s.written += len(step)
				if i == len(seg)-1 {
					s.finished++
				}
				s.mu.Unlock()
				// Pace: step i+1 goes out at start + spread*(i+1)/len, and
				// at least stepGap after step i.
				d := max(time.Until(start.Add(spread*time.Duration(i+1)/time.Duration(len(seg)))), stepGap)
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-stopped
		closeWriter()
	})
	return s
}

func (s *streamer) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

// Release lets the next segment go, spread over d.
func (s *streamer) Release(d time.Duration) {
	s.mu.Lock()
	s.released++
	s.mu.Unlock()
	s.release <- d
}

// Flowing reports whether a released segment is still being written.
func (s *streamer) Flowing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.finished < s.released && s.err == nil
}

// Written returns the records written so far and the first error.
func (s *streamer) Written() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.written, s.err
}

// Wait waits until every segment is written (all must have been
// released) and fails the test on a produce error.
func (s *streamer) Wait(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(d):
		t.Fatalf("producing the events took more than %v", d)
	}
	if _, err := s.Written(); err != nil {
		t.Fatal(err)
	}
}

// openStoreAt opens a store on dir (as openStore does on a fresh one) and
// returns it with an idempotent close, also run at cleanup.
func openStoreAt(t *testing.T, dir string) (*state.Store, func()) {
	t.Helper()
	opts := state.DefaultOptions(dir)
	opts.MemoryBudget = 32 << 20
	opts.GCInterval = 0
	s, err := state.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	closeFn := func() {
		once.Do(func() {
			if err := s.Close(); err != nil {
				t.Errorf("close store: %v", err)
			}
		})
	}
	t.Cleanup(closeFn)
	return s, closeFn
}

// storeOffsets returns the input offsets committed for partitions 0..n-1.
func storeOffsets(t *testing.T, s *state.Store, n int) map[string]map[int]int64 {
	t.Helper()
	out := map[string]map[int]int64{}
	for p := range n {
		offs, err := s.Partition(state.Partition(p)).Offsets()
		if err != nil {
			t.Fatal(err)
		}
		for topic, off := range offs {
			if out[topic] == nil {
				out[topic] = map[int]int64{}
			}
			out[topic][p] = off
		}
	}
	return out
}

// offsetsReach reports whether offs reached ends on every partition that
// has records.
func offsetsReach(offs, ends map[string]map[int]int64) bool {
	for topic, parts := range ends {
		for p, end := range parts {
			if end > 0 && offs[topic][p] < end {
				return false
			}
		}
	}
	return true
}

// sumOffsets adds up the offsets of the given partitions (all when nil).
func sumOffsets(offs map[string]map[int]int64, only []int) int64 {
	var n int64
	for _, parts := range offs {
		for p, off := range parts {
			if only == nil || slices.Contains(only, p) {
				n += off
			}
		}
	}
	return n
}

// outboxLen counts the records in partition p's outbox.
func outboxLen(t *testing.T, s *state.Store, p int) int {
	t.Helper()
	n := 0
	err := s.Partition(state.Partition(p)).Outbox(t.Context(), func(uint64, state.OutboxRecord) error {
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// allInputEnds returns the high-water marks of both input topics.
func allInputEnds(t *testing.T, addr string, topics pipeline.Topics) map[string]map[int]int64 {
	t.Helper()
	return map[string]map[int]int64{
		topics.Bookings: kafkatest.EndOffsets(t, addr, topics.Bookings),
		topics.Activity: kafkatest.EndOffsets(t, addr, topics.Activity),
	}
}

// awaitAlerts waits until every alert id of want is on the output topics,
// or the output stops changing for 3s, and returns the counts per id.
func awaitAlerts(t *testing.T, addr string, topics pipeline.Topics, want map[string]bool, d time.Duration) map[string]int {
	t.Helper()
	last, since := -1, time.Now()
	waitFor(t, d, "every expected alert, or quiet output", func() bool {
		got := collectAlerts(t, addr, topics, false)
		all := true
		for id := range want {
			if got[id] == 0 {
				all = false
				break
			}
		}
		if all {
			return true
		}
		if n := len(got); n != last {
			last, since = n, time.Now()
		}
		return time.Since(since) > 3*time.Second
	})
	return collectAlerts(t, addr, topics, true)
}

// compareAlerts fails the test when got (counts per id, from the output
// topics) misses an id of want or holds one more; it returns the number of
// duplicate deliveries (allowed: alerts are at-least-once).
func compareAlerts(t *testing.T, want map[string]bool, got map[string]int) (dups int) {
	t.Helper()
	var missing, extra []string
	for id := range want {
		if got[id] == 0 {
			missing = append(missing, id)
		}
	}
	for id, n := range got {
		if !want[id] {
			extra = append(extra, id)
		}
		dups += n - 1
	}
	slices.Sort(missing)
	slices.Sort(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Errorf("alerts differ from the uninterrupted run (replay): %d missing %v, %d extra %v",
			len(missing), head(missing), len(extra), head(extra))
	}
	return dups
}

// lowerMinSessionTimeout lets consumer-group sessions as short as 500ms
// on the embedded broker (its default minimum is 6s, as Apache Kafka's),
// so a member killed with SIGKILL leaves the group in about a second
// rather than six.
func lowerMinSessionTimeout(t *testing.T, addr string) {
	t.Helper()
	id := onlyBrokerID(t, addr)
	c := kafkatest.Client(t, addr)
	resp, err := c.IncrementalAlterConfigs(t.Context(), &kafka.IncrementalAlterConfigsRequest{
		Resources: []kafka.IncrementalAlterConfigsRequestResource{{
			ResourceType: kafka.ResourceTypeBroker,
			ResourceName: id,
			Configs: []kafka.IncrementalAlterConfigsRequestConfig{{
				Name: "group.min.session.timeout.ms", Value: "500", ConfigOperation: kafka.ConfigOperationSet,
			}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Resources {
		if r.Error != nil {
			t.Fatalf("set group.min.session.timeout.ms: %v", r.Error)
		}
	}
}

// onlyBrokerID returns the id of the one broker at addr, as a config
// resource name.
func onlyBrokerID(t *testing.T, addr string) string {
	t.Helper()
	conn, err := kafka.DialContext(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	brokers, err := conn.Brokers()
	conn.Close()
	if err != nil || len(brokers) != 1 {
		t.Fatalf("list brokers: %v %v", brokers, err)
	}
	return strconv.Itoa(brokers[0].ID)
}

// writeFileAtomic replaces path's content in one step (a reader never
// sees half a file).
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// writeClock sets a child's clock file.
func writeClock(t *testing.T, path string, now time.Time) {
	t.Helper()
	if err := writeFileAtomic(path, []byte(strconv.FormatInt(now.Unix(), 10))); err != nil {
		t.Fatal(err)
	}
}
