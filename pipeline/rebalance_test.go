package pipeline_test

// The revocation test (a second group member takes partitions away from a
// running instance and gives them back; the instance restarts on its state
// directory) and its baseline without faults, both with events flowing and
// the alerts compared with replay's.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/churnflow/churnflow/internal/kafkatest"
	"github.com/churnflow/churnflow/pipeline"
)

// streamedRun is the scaffolding of the in-process fault tests: a broker
// with the inputs' partitions, generated records with replay's answer and
// a streamer holding the records cut into produce steps (streamSteps).
type streamedRun struct {
	addr       string
	topics     pipeline.Topics
	partitions int
	cfg        pipeline.Config
	want       map[string]bool
	final      time.Time
	end        time.Time
	steps      int
	events     int
}

func newStreamedRun(t *testing.T, group string, partitions, members, days int, segments int) (*streamedRun, *streamer) {
	t.Helper()
	return newStreamedRunOn(t, embeddedBroker(t, int32(partitions)), group, members, days, segments)
}

// newStreamedRunOn is newStreamedRun on b (its input topics created, with
// b.Partitions partitions), the pipeline configured for b.
func newStreamedRunOn(t *testing.T, b testBroker, group string, members, days int, segments int) (*streamedRun, *streamer) {
	t.Helper()
	partitions := int(b.Partitions)
	topics := b.Topics
	gcfg, recs := genRecords(t, members, days, 42)
	cfg := faultConfig(b.Addr, group)
	b.Configure(&cfg)
	final, until := faultTimes(cfg, gcfg.End())
	want := replayAlerts(t, newEngine(t), recs, until)
	if len(want) == 0 {
		t.Fatal("replay gives no alerts: the test would prove nothing")
	}
	steps := streamSteps(recs, topics, partitions)
	return &streamedRun{addr: b.Addr, topics: topics, partitions: partitions, cfg: cfg, want: want,
		final: final, end: gcfg.End(), steps: len(steps), events: len(recs)}, newStreamer(t, b.Addr, steps, segments)
}

// TestStreamedMatchesReplay is the baseline of the fault tests: the
// events flow into the broker while the pipeline runs (in produce steps
// that keep the merge order), nothing goes wrong, and the alerts are
// replay's.
//
// CHURNFLOW_SOAK=1 streams 8 times as many events, in 26 segments, every
// other one in a burst.
func TestStreamedMatchesReplay(t *testing.T) {
	eachBroker(t, 4, testStreamedMatchesReplay)
}

func testStreamedMatchesReplay(t *testing.T, b testBroker) {
	members, days, segments := 400, 300, 2
	if os.Getenv(soakEnv) == "1" {
		members, days, segments = 1500, 730, 26
	}
	run, st := newStreamedRunOn(t, b, "streamed", members, days, segments)
	clock := &testClock{now: run.end}
	store, _ := openStoreAt(t, t.TempDir())
	logs := newLogWatch(t)
	p, err := pipeline.New(run.cfg, pipeline.Deps{Engine: newEngine(t), Store: store, Clock: clock.Now, Log: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	stop := runPipeline(t, p)
	awaitCreatedTopics(t, run.cfg, run.partitions)
	logs.waitWorkers(t, 0, run.partitions) // see TestCrashRestart: no records while workers start
	for i := range segments {
		st.Release(time.Duration(1-i%2) * time.Second) // spread over a second, then a burst, ...
	}
	st.Wait(t, 120*time.Second)
	ends := allInputEnds(t, run.addr, run.topics)
	waitFor(t, 60*time.Second, "the pipeline to consume the inputs", func() bool {
		return offsetsReach(storeOffsets(t, store, run.partitions), ends)
	})
	clock.Set(run.final)
	got := awaitAlerts(t, run.addr, run.topics, run.want, 60*time.Second)
	stop()
	dups := compareAlerts(t, run.want, got)
	t.Logf("%d events in %d steps, %d alerts, %d duplicate deliveries, %v", run.events, run.steps, len(run.want), dups,
		time.Since(started).Round(time.Millisecond))
}

// logWatch is a pipeline log sink that counts messages (and passes the
// lines on to the test log when verbose). It keeps the last logTail lines
// (kafka-go's consumer group warnings among them) and writes them to the
// test log if the test fails, so that a failure seen once under load can
// be read afterwards.
type logWatch struct {
	mu   sync.Mutex
	seen map[string]int
	tail [][]byte // ring of the last logTail lines kept
	next int
	t    *testing.T
}

const logTail = 300

func newLogWatch(t *testing.T) *logWatch {
	l := &logWatch{seen: map[string]int{}, t: t}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		var b bytes.Buffer
		for i := range len(l.tail) {
			b.Write(l.tail[(l.next+i)%len(l.tail)])
		}
		t.Logf("the pipeline's last %d log lines:\n%s", len(l.tail), b.Bytes())
	})
	return l
}

func (l *logWatch) Write(b []byte) (int, error) {
	var m struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &m) != nil {
		return len(b), nil
	}
	l.mu.Lock()
	l.seen[m.Message]++
	line := append([]byte(time.Now().Format("15:04:05.000 ")), b...)
	if len(l.tail) < logTail {
		l.tail = append(l.tail, line)
	} else {
		l.tail[l.next] = line
		l.next = (l.next + 1) % logTail
	}
	l.mu.Unlock()
	if testing.Verbose() {
		l.t.Logf("%s", bytes.TrimSpace(b))
	}
	return len(b), nil
}

func (l *logWatch) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[msg]
}

func (l *logWatch) logger() zerolog.Logger { return zerolog.New(l).Level(zerolog.InfoLevel) }

// waitWorkers waits until n more partition workers than before have
// started reading, and a little more for their first fetches.
func (l *logWatch) waitWorkers(t *testing.T, before, n int) {
	t.Helper()
	waitFor(t, 30*time.Second, fmt.Sprintf("%d partition workers to start", n), func() bool {
		return l.count(msgSeeked) >= before+n
	})
	time.Sleep(100 * time.Millisecond)
}

const msgSeeked = "partition seeked to stored offsets"

// groupOffsets returns the consumer group's committed offsets of the
// input topics' partitions ids (-1: none).
func groupOffsets(t *testing.T, addr, group string, topics pipeline.Topics, ids []int) map[string]map[int]int64 {
	t.Helper()
	c := kafkatest.Client(t, addr)
	resp, err := c.OffsetFetch(t.Context(), &kafka.OffsetFetchRequest{GroupID: group,
		Topics: map[string][]int{topics.Bookings: ids, topics.Activity: ids}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Error != nil {
		t.Fatal(resp.Error)
	}
	out := map[string]map[int]int64{}
	for topic, ps := range resp.Topics {
		out[topic] = map[int]int64{}
		for _, p := range ps {
			if p.Error != nil {
				t.Fatalf("offset fetch %s/%d: %v", topic, p.Partition, p.Error)
			}
			out[topic][p.Partition] = p.CommittedOffset
		}
	}
	return out
}

// TestRevocation: while events flow, a second member joins the group (it
// takes half the partitions, holds them without processing or
// committing, and leaves again), then the instance is restarted on the
// same state directory. The worker that loses a partition must have
// finished its batch, committed it and flushed its outbox before the
// other member gets the partition; the alerts in the end are exactly the
// uninterrupted run's (replay's), duplicates allowed.
func TestRevocation(t *testing.T) {
	eachBroker(t, 4, testRevocation)
}

func testRevocation(t *testing.T, b testBroker) {
	partitions := int(b.Partitions)
	run, st := newStreamedRunOn(t, b, "revoke", 400, 300, 4)
	clock := &testClock{now: run.end}
	g := newEngine(t)
	dir := t.TempDir()
	store, closeStore := openStoreAt(t, dir)
	logs := newLogWatch(t)
	p1, err := pipeline.New(run.cfg, pipeline.Deps{Engine: g, Store: store, Clock: clock.Now, Log: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	stop1 := runPipeline(t, p1)
	awaitCreatedTopics(t, run.cfg, partitions)
	logs.waitWorkers(t, 0, partitions)

	// 1. One instance, events flowing.
	st.Release(time.Second)
	waitFor(t, 30*time.Second, "progress", func() bool { return sumOffsets(storeOffsets(t, store, partitions), nil) > 0 })

	// 2. A second member joins, with the pipeline's balancer.
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID: run.cfg.Group, Brokers: []string{run.addr}, Topics: run.topics.Inputs(),
		GroupBalancers:    []kafka.GroupBalancer{pipeline.CoPartitionBalancer{}},
		HeartbeatInterval: 200 * time.Millisecond, SessionTimeout: 10 * time.Second, RebalanceTimeout: 10 * time.Second,
		JoinGroupBackoff: 200 * time.Millisecond, StartOffset: kafka.FirstOffset,
	})
	if err != nil {
		t.Fatal(err)
	}
	var closeOnce sync.Once
	leave := func() {
		closeOnce.Do(func() {
			if err := cg.Close(); err != nil {
				t.Errorf("second member leaving: %v", err)
			}
		})
	}
	t.Cleanup(leave)
	seekedBefore := logs.count(msgSeeked)
	ctx, cancel := contextWithTimeout(t, 30*time.Second)
	gen, err := cg.Next(ctx)
	cancel()
	if err != nil {
		t.Fatalf("second member joining: %v", err)
	}
	var revoked, kept []int
	for _, pa := range gen.Assignments[run.topics.Bookings] {
		revoked = append(revoked, pa.ID)
	}
	slices.Sort(revoked)
	var act []int
	for _, pa := range gen.Assignments[run.topics.Activity] {
		act = append(act, pa.ID)
	}
	slices.Sort(act)
	if len(revoked) == 0 || !slices.Equal(revoked, act) {
		t.Fatalf("second member got bookings %v and activity %v: want the same, non-empty", revoked, act)
	}
	for p := range partitions {
		if !slices.Contains(revoked, p) {
			kept = append(kept, p)
		}
	}
	// The pipeline's workers of this generation's predecessor have all
	// returned (kafka-go waits for them before rejoining): what they did
	// is in the store now.
	atHandover := storeOffsets(t, store, partitions)
	group := groupOffsets(t, run.addr, run.cfg.Group, run.topics, revoked)
	for _, p := range revoked {
		if n := outboxLen(t, store, p); n != 0 {
			t.Errorf("partition %d handed over with %d records in its outbox", p, n)
		}
		for topic, offs := range group {
			if offs[p] > atHandover[topic][p] {
				t.Errorf("%s/%d: the group's committed offset %d is ahead of the state's %d", topic, p, offs[p], atHandover[topic][p])
			}
		}
	}
	if sumOffsets(atHandover, revoked) == 0 {
		t.Errorf("the revoked partitions %v were handed over with no committed progress: %v", revoked, atHandover)
	}
	for range revoked {
		gen.Start(func(ctx context.Context) { <-ctx.Done() }) // hold, process nothing, commit nothing
	}
	t.Logf("second member holds partitions %v; state offsets %v, group offsets %v", revoked, atHandover, group)

	// 3. Events flow while it holds them: the kept partitions go on, the
	// revoked ones stand still.
	logs.waitWorkers(t, seekedBefore, len(kept))
	st.Release(time.Second)
	time.Sleep(1200 * time.Millisecond)
	during := storeOffsets(t, store, partitions)
	for _, p := range revoked {
		for topic := range atHandover {
			if during[topic][p] != atHandover[topic][p] {
				t.Errorf("%s/%d moved from %d to %d while another member held it", topic, p, atHandover[topic][p], during[topic][p])
			}
		}
	}
	if sumOffsets(during, kept) <= sumOffsets(atHandover, kept) {
		t.Errorf("the kept partitions %v made no progress while the other member held %v", kept, revoked)
	}

	// 4. It leaves; the pipeline takes every partition back.
	seekedBefore = logs.count(msgSeeked)
	leave()
	logs.waitWorkers(t, seekedBefore, partitions)
	waitFor(t, 30*time.Second, "the segment to be produced", func() bool { return !st.Flowing() })
	st.Release(time.Second)
	waitFor(t, 30*time.Second, "the revoked partitions to be processed again", func() bool {
		return sumOffsets(storeOffsets(t, store, partitions), revoked) > sumOffsets(during, revoked)
	})
	waitFor(t, 30*time.Second, "the segment to be produced", func() bool { return !st.Flowing() })

	// 5. The instance restarts on the same state directory.
	stop1()
	checkNoPipelineGoroutines(t)
	if stats, err := store.Stats(); err != nil {
		t.Fatal(err)
	} else if stats.OutboxDepth != 0 {
		t.Errorf("outbox holds %d records after a graceful stop", stats.OutboxDepth)
	}
	closeStore()
	store, _ = openStoreAt(t, dir)
	logs2 := newLogWatch(t)
	p2, err := pipeline.New(run.cfg, pipeline.Deps{Engine: g, Store: store, Clock: clock.Now, Log: logs2.logger()})
	if err != nil {
		t.Fatal(err)
	}
	stop2 := runPipeline(t, p2)
	logs2.waitWorkers(t, 0, partitions)
	st.Release(0)
	st.Wait(t, 30*time.Second)
	ends := allInputEnds(t, run.addr, run.topics)
	waitFor(t, 60*time.Second, "the pipeline to consume the inputs", func() bool {
		return offsetsReach(storeOffsets(t, store, partitions), ends)
	})
	clock.Set(run.final)
	got := awaitAlerts(t, run.addr, run.topics, run.want, 60*time.Second)
	stop2()
	checkNoPipelineGoroutines(t)
	dups := compareAlerts(t, run.want, got)
	if dlq := readTopic(t, run.addr, run.topics.DeadLetter); len(dlq) > 0 {
		t.Errorf("%d dead letters (first: %s %s), want none", len(dlq), header(dlq[0], pipeline.HeaderReason), dlq[0].Value)
	}
	if stats, err := store.Stats(); err != nil {
		t.Fatal(err)
	} else if stats.OutboxDepth != 0 {
		t.Errorf("outbox holds %d records after a graceful stop", stats.OutboxDepth)
	}
	t.Logf("%d events, %d alerts, %d duplicate deliveries, %v", run.events, len(run.want), dups, time.Since(started).Round(time.Millisecond))
}
