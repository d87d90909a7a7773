package pipeline_test

// Broker-fault tests on a real three-broker Apache Kafka cluster
// (internal/kafkatest; CHURNFLOW_REAL_KAFKA=1): every topic is replicated
// three times with min.insync.replicas=2, events flow into the inputs
// while the pipeline runs, and brokers die under it:
//
//   - TestBrokerFault/KillOne: kill -9 of one broker (the consumer group's
//     coordinator) mid-stream, restarted some seconds later;
//   - TestBrokerFault/AllDown: kill -9 of all three brokers for 30 s
//     mid-stream, then all three restarted together.
//
// The two share one cluster (starting one takes 15 s to minutes on a
// loaded two-core machine); each has its own topics and consumer group.
//
// In both the pipeline must keep running on its own (Run returns no
// error, nobody restarts it), and in the end the alert ids on the output
// topics must be exactly replay's (duplicates are allowed: alerts are
// at-least-once; they are counted and logged).
//
// The test's own producer (bfStreamer) retries its writes until the
// broker acknowledges them, without reordering a topic-partition, so it
// survives the faults; a write whose acknowledgement was lost can repeat
// events, which the pipeline dead-letters as duplicates (counted, allowed).
// During the whole-cluster outage it is paused: the point is churnflow's
// behaviour, not the test producer's.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/churnflow/churnflow/internal/kafkatest"
	"github.com/churnflow/churnflow/pipeline"
	"github.com/churnflow/churnflow/state"
)

const (
	bfPartitions = 4
	bfNodes      = 3
	// bfLogEnv=1 writes the pipeline's whole log (info and above, with the
	// time of each line) to the test log at the end of each scenario.
	bfLogEnv = "CHURNFLOW_BROKERFAULT_LOG"
)

// TestBrokerFault runs the broker-fault scenarios on one three-broker
// cluster.
func TestBrokerFault(t *testing.T) {
	if !kafkatest.Enabled() {
		t.Skip("broker-fault tests need a real three-broker Apache Kafka: set CHURNFLOW_REAL_KAFKA=1 (needs java 17+, and mvn on first use)")
	}
	t0 := time.Now()
	c := kafkatest.StartCluster(t, bfNodes)
	t.Run("KillOne", func(t *testing.T) { testBrokerFaultKillOne(t, c) })
	bfEnsureUp(t, c)
	t.Run("AllDown", func(t *testing.T) { testBrokerFaultAllDown(t, c) })
	t.Logf("broker-fault tests: %v in all", time.Since(t0).Round(time.Millisecond))
}

// testBrokerFaultKillOne kills a broker with SIGKILL while events flow,
// leaves it down for some seconds and restarts it: the group's
// coordinator, if it leads an input partition (else an input partition's
// leader). The other two brokers keep every partition available
// (replication factor 3, min.insync.replicas 2) once the controller has
// moved the leaderships; the pipeline must find the new leaders and
// coordinator on its own.
func testBrokerFaultKillOne(t *testing.T, c *kafkatest.Cluster) {
	r := bfNewRun(t, c, "kill-one")
	victim, why := r.coordinator(t), "the group's coordinator"
	if led := r.ledBy(t, r.brokers[0], victim); led[true] == 0 {
		victim, why = r.inputLeader(t), "not the coordinator (which leads no input partition)"
	}
	readAddr := r.brokers[victim%bfNodes] // a broker that stays up
	led := r.ledBy(t, readAddr, victim)
	t.Logf("victim: node %d, %s, leader of %d of the %d input partitions and %d partitions of the other topics",
		victim, why, led[true], 2*bfPartitions, led[false])

	r.st.start(16 * time.Second)
	r.waitProduced(t, 0.3, 90*time.Second)
	atKill := r.inputEnds(t, readAddr)
	assignedBefore := r.logs.count("partitions assigned", time.Time{})
	tKill := time.Now()
	r.c.Kill(victim, true)
	t.Logf("node %d killed with SIGKILL %v into the stream (%d of %d steps written)",
		victim, tKill.Sub(r.st.started()).Round(time.Millisecond), r.st.stepsDone(), len(r.st.steps))
	r.hold(t, 8*time.Second, "one broker down")
	tRestart := time.Now()
	flowing := r.st.stepsDone() < len(r.st.steps)
	atRestart := r.inputEnds(t, readAddr)
	r.c.Restart(victim)
	tUp := time.Now()
	r.run.alive(t, "the broker's restart")
	isr := bfWaitInSync(t, readAddr, 90*time.Second)
	t.Logf("node %d down for %v, listening again %v after its restart, back in every ISR %v after that",
		victim, tRestart.Sub(tKill).Round(time.Millisecond), tUp.Sub(tRestart).Round(time.Millisecond), isr.Round(time.Millisecond))

	res := r.finish(t, readAddr)
	afterKill := r.mon.consumedPast(atKill, tKill)
	line := fmt.Sprintf("records written after the kill consumed on every partition %s after it", bfResume(afterKill))
	if afterKill >= 0 && tKill.Add(afterKill).Before(tUp) {
		line += " (before the broker listened again)"
	}
	if flowing {
		line += fmt.Sprintf(", records written after the restart %s after it", bfResume(r.mon.consumedPast(atRestart, tRestart)))
	}
	warns := r.logs.warnings(tKill, tUp)
	t.Logf("KillOne: %s; %s; generations assigned from the kill on: %d; warnings logged while the broker was down: %s",
		res, line, r.logs.count("partitions assigned", time.Time{})-assignedBefore, bfCounts(warns))
	if len(warns) == 0 {
		t.Errorf("the pipeline logged no warning while node %d was down: it should say what it waits for", victim)
	}
}

// testBrokerFaultAllDown kills all three brokers with SIGKILL while events
// flow, leaves the cluster down for 30 s and starts it again. The pipeline
// must wait (retrying, and saying so in its log), then resume on its own.
func testBrokerFaultAllDown(t *testing.T, c *kafkatest.Cluster) {
	const outage = 30 * time.Second
	r := bfNewRun(t, c, "all-down")
	r.st.start(12 * time.Second)
	r.waitProduced(t, 0.35, 90*time.Second)
	r.st.pause(t)
	atDown := r.inputEnds(t, r.brokers[0]) // nothing is written until the restart
	assignedBefore := r.logs.count("partitions assigned", time.Time{})
	tDown := time.Now()
	for n := 1; n <= bfNodes; n++ {
		r.c.Kill(n, true)
	}
	t.Logf("all %d nodes killed with SIGKILL in %v, %v into the stream (%d of %d steps written; the test producer waits)",
		bfNodes, time.Since(tDown).Round(time.Millisecond), tDown.Sub(r.st.started()).Round(time.Millisecond), r.st.stepsDone(), len(r.st.steps))
	r.hold(t, outage, "the whole cluster down")
	tRestart := time.Now()
	warns := r.logs.warnings(tDown, tRestart)

	nodes := make([]int, bfNodes)
	for i := range nodes {
		nodes[i] = i + 1
	}
	r.c.RestartNodes(nodes...)
	tUp := time.Now()
	t.Logf("cluster down for %v; all %d nodes restarted together, listening after %v",
		tRestart.Sub(tDown).Round(time.Millisecond), bfNodes, tUp.Sub(tRestart).Round(time.Millisecond))
	r.st.resume()
	r.run.alive(t, "the cluster's restart")

	// Rejoined: every partition has a worker reading again.
	var rejoined time.Duration
	waitFor(t, 120*time.Second, "the pipeline to have a worker on every partition again after the restart", func() bool {
		r.run.alive(t, "the wait for the pipeline to rejoin")
		at, ok := r.logs.nth(msgSeeked, tUp, bfPartitions)
		rejoined = at.Sub(tUp)
		return ok
	})
	readAddr := r.brokers[0]
	isr := bfWaitInSync(t, readAddr, 90*time.Second)

	res := r.finish(t, readAddr)
	t.Logf("AllDown (%v): %s; after the brokers listened again: a worker reading on every partition %v later, "+
		"records written after the restart consumed on every partition %s later (that includes the test producer's own recovery), "+
		"cluster in sync %v later; generations assigned from the outage on: %d",
		outage, res, rejoined.Round(time.Millisecond), bfResume(r.mon.consumedPast(atDown, tUp)), isr.Round(time.Millisecond),
		r.logs.count("partitions assigned", time.Time{})-assignedBefore)
	t.Logf("warnings logged during the outage: %s", bfCounts(warns))

	// The pipeline must have said that it waits for Kafka: Run's loop
	// logs each failed attempt to join the group.
	if warns["consumer group"] == 0 {
		t.Errorf("no \"consumer group\" warning logged during the %v outage: %v", outage, warns)
	}
}

// bfRun is the scaffolding of both tests: the cluster, the topics,
// the generated events with replay's answer, the pipeline running on a
// store of its own, its log, a progress monitor and the test's producer.
type bfRun struct {
	c       *kafkatest.Cluster
	brokers []string // node n is brokers[n-1]
	topics  pipeline.Topics
	cfg     pipeline.Config
	want    map[string]bool
	final   time.Time
	events  int
	clock   *testClock
	store   *state.Store
	logs    *bfLog
	run     *bfRunHandle
	mon     *bfProgress
	st      *bfStreamer
	started time.Time
}

// bfNewRun sets a scenario up on cluster c: its topics (the default names
// after name + "."), its group (name), the pipeline running.
func bfNewRun(t *testing.T, c *kafkatest.Cluster, name string) *bfRun {
	t.Helper()
	started := time.Now()
	brokers := strings.Split(c.Bootstrap, ",")
	if len(brokers) != bfNodes {
		t.Fatalf("bootstrap %q: want %d brokers", c.Bootstrap, bfNodes)
	}
	topics := bfPrefixTopics(pipeline.DefaultTopics(), name+".")
	group := name
	minISR := []kafka.ConfigEntry{{ConfigName: "min.insync.replicas", ConfigValue: "2"}}
	kafkatest.CreateTopics(t, brokers[0],
		kafka.TopicConfig{Topic: topics.Bookings, NumPartitions: bfPartitions, ReplicationFactor: bfNodes, ConfigEntries: minISR},
		kafka.TopicConfig{Topic: topics.Activity, NumPartitions: bfPartitions, ReplicationFactor: bfNodes, ConfigEntries: minISR})

	gcfg, recs := genRecords(t, 300, 200, 42) // 7,000 events, 290 produce steps, 1,800 alerts
	cfg := faultConfig(brokers[0], group)
	cfg.Brokers = brokers
	cfg.Topics = topics
	cfg.CreateTopics = true // outputs and the changelog: created by Run, as in production
	final, until := faultTimes(cfg, gcfg.End())
	want := replayAlerts(t, newEngine(t), recs, until)
	if len(want) == 0 {
		t.Fatal("replay gives no alerts: the test would prove nothing")
	}
	steps := streamSteps(recs, topics, bfPartitions)

	r := &bfRun{c: c, brokers: brokers, topics: topics, cfg: cfg, want: want, final: final,
		events: len(recs), clock: &testClock{now: gcfg.End()}, logs: &bfLog{}, started: started}
	r.store, _ = openStoreAt(t, t.TempDir())
	t.Cleanup(func() {
		switch {
		case os.Getenv(bfLogEnv) == "1":
			t.Logf("the pipeline's log:\n%s", r.logs.tail(-1))
		case t.Failed():
			t.Logf("last lines of the pipeline's log (%s=1 shows all):\n%s", bfLogEnv, r.logs.tail(80))
		}
	})
	p, err := pipeline.New(cfg, pipeline.Deps{Engine: newEngine(t), Store: r.store, Clock: r.clock.Now, Log: r.logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	r.run = bfStartRun(t, p, 5*time.Minute)
	r.mon = bfStartProgress(t, r.store, topics)
	r.st = bfNewStreamer(t, brokers, steps)
	waitFor(t, 90*time.Second, "the pipeline's workers to start on every partition", func() bool {
		r.run.alive(t, "start-up")
		return r.logs.count(msgSeeked, time.Time{}) >= bfPartitions
	})
	r.checkTopics(t)
	t.Logf("set up in %v: %d events in %d steps (at most %d records of one topic-partition in a step), %d alerts expected",
		time.Since(started).Round(time.Millisecond), len(recs), len(steps), bfMaxRun(steps), len(want))
	return r
}

// checkTopics checks that every topic on the cluster but Kafka's own (the
// inputs, the outputs and the changelog Run created) is replicated on all
// three brokers and needs two in-sync replicas for a write.
func (r *bfRun) checkTopics(t *testing.T) {
	t.Helper()
	// Run has created them; a broker learns of a new topic a moment after
	// the controller answered.
	kafkatest.WaitTopics(t, r.brokers[0], bfPartitions, bfTopicNames(r.topics)...)
	md, err := kafkatest.Metadata(t.Context(), r.brokers[0])
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for name, tm := range md {
		if strings.HasPrefix(name, "__") {
			continue
		}
		names = append(names, name)
		for _, p := range tm.Partitions {
			if len(p.Replicas) != bfNodes {
				t.Errorf("topic %s partition %d has %d replicas on a %d-broker cluster", name, p.ID, len(p.Replicas), bfNodes)
			}
		}
	}
	slices.Sort(names)
	for _, name := range bfTopicNames(r.topics) {
		if !slices.Contains(names, name) {
			t.Errorf("topic %s does not exist after the pipeline started (CreateTopics)", name)
		}
	}
	req := &kafka.DescribeConfigsRequest{}
	for _, name := range names {
		req.Resources = append(req.Resources, kafka.DescribeConfigRequestResource{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: name, ConfigNames: []string{"min.insync.replicas"}})
	}
	resp, err := kafkatest.Client(t, r.brokers[0]).DescribeConfigs(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range resp.Resources {
		if res.Error != nil {
			t.Fatalf("describe %s: %v", res.ResourceName, res.Error)
		}
		for _, e := range res.ConfigEntries {
			if e.ConfigName == "min.insync.replicas" && e.ConfigValue != "2" {
				t.Errorf("topic %s has min.insync.replicas=%s, want 2", res.ResourceName, e.ConfigValue)
			}
		}
	}
	t.Logf("topics, each with %d replicas and min.insync.replicas=2: %s", bfNodes, strings.Join(names, ", "))
}

// bfTopicNames lists the topic names a Topics names (whatever fields it has).
func bfTopicNames(topics pipeline.Topics) []string {
	var out []string
	v := reflect.ValueOf(topics)
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.String && f.String() != "" {
			out = append(out, f.String())
		}
	}
	return out
}

// bfPrefixTopics puts prefix before every topic name of topics (whatever
// fields Topics has; an empty one, such as the changelog's, which Run
// derives from the group, stays empty).
func bfPrefixTopics(topics pipeline.Topics, prefix string) pipeline.Topics {
	v := reflect.ValueOf(&topics).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.String && f.CanSet() && f.String() != "" {
			f.SetString(prefix + f.String())
		}
	}
	return topics
}

// bfEnsureUp restarts the nodes a failed scenario left stopped, and waits
// until the cluster is in sync.
func bfEnsureUp(t *testing.T, c *kafkatest.Cluster) {
	t.Helper()
	var stopped []int
	for n := 1; n <= bfNodes; n++ {
		if !bfNodeRunning(c, n) {
			stopped = append(stopped, n)
		}
	}
	if len(stopped) > 0 {
		t.Logf("restarting nodes %v, left stopped", stopped)
		c.RestartNodes(stopped...)
	}
	bfWaitInSync(t, strings.Split(c.Bootstrap, ",")[0], 90*time.Second)
}

// bfNodeRunning reports whether node n's broker process runs (as
// scripts/kafka-local.sh tells: its pid file names a live kafka.Kafka).
func bfNodeRunning(c *kafkatest.Cluster, n int) bool {
	pid, err := os.ReadFile(filepath.Join(c.Dir, fmt.Sprintf("node-%d", n), "pid"))
	if err != nil {
		return false
	}
	cmd, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/cmdline")
	return err == nil && bytes.Contains(cmd, []byte("kafka.Kafka"))
}

// coordinator returns the node (1-based) coordinating the pipeline's group.
func (r *bfRun) coordinator(t *testing.T) int {
	t.Helper()
	resp, err := kafkatest.Client(t, r.brokers[0]).FindCoordinator(t.Context(), &kafka.FindCoordinatorRequest{
		Key: r.cfg.Group, KeyType: kafka.CoordinatorKeyTypeConsumer})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Error != nil || resp.Coordinator == nil {
		t.Fatalf("find the group's coordinator: %v", resp.Error)
	}
	n := resp.Coordinator.NodeID
	if n < 1 || n > bfNodes {
		t.Fatalf("coordinator node id %d", n)
	}
	return n
}

// ledBy counts the partitions node leads: of the inputs (true) and of the
// other topics but Kafka's own (false).
func (r *bfRun) ledBy(t *testing.T, addr string, node int) map[bool]int {
	t.Helper()
	md, err := kafkatest.Metadata(t.Context(), addr)
	if err != nil {
		t.Fatal(err)
	}
	out := map[bool]int{}
	for name, tm := range md {
		if strings.HasPrefix(name, "__") {
			continue
		}
		for _, p := range tm.Partitions {
			if p.Leader.ID == node {
				out[slices.Contains(r.topics.Inputs(), name)]++
			}
		}
	}
	return out
}

// inputLeader returns the node leading partition 0 of the bookings topic.
func (r *bfRun) inputLeader(t *testing.T) int {
	t.Helper()
	md, err := kafkatest.Metadata(t.Context(), r.brokers[0], r.topics.Bookings)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range md[r.topics.Bookings].Partitions {
		if p.ID == 0 && p.Leader.ID >= 1 && p.Leader.ID <= bfNodes {
			return p.Leader.ID
		}
	}
	t.Fatalf("no leader for %s/0: %+v", r.topics.Bookings, md[r.topics.Bookings])
	return 0
}

// inputEnds returns, by partition, the sum of both inputs' high-water
// marks, retrying (up to 60 s) while a partition has no reachable leader.
func (r *bfRun) inputEnds(t *testing.T, addr string) []int64 {
	t.Helper()
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, topic := range r.topics.Inputs() {
		for p := range bfPartitions {
			req.Topics[topic] = append(req.Topics[topic], kafka.LastOffsetOf(p))
		}
	}
	c := kafkatest.Client(t, addr)
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		resp, err := c.ListOffsets(ctx, req)
		cancel()
		out := make([]int64, bfPartitions)
		n := 0
		if err == nil {
			for _, parts := range resp.Topics {
				for _, po := range parts {
					if po.Error != nil {
						err = fmt.Errorf("partition %d: %w", po.Partition, po.Error)
						break
					}
					out[po.Partition] += po.LastOffset
					n++
				}
			}
		}
		if err == nil && n == 2*bfPartitions {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("the inputs' end offsets: %v (%d of %d partitions)", err, n, 2*bfPartitions)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitProduced waits until the streamer has written frac of the steps.
func (r *bfRun) waitProduced(t *testing.T, frac float64, d time.Duration) {
	t.Helper()
	n := int(frac * float64(len(r.st.steps)))
	waitFor(t, d, fmt.Sprintf("%d steps to be produced", n), func() bool {
		r.st.check(t)
		r.run.alive(t, "streaming")
		return r.st.stepsDone() >= n
	})
}

// hold waits d, failing the test as soon as Run returns.
func (r *bfRun) hold(t *testing.T, d time.Duration, what string) {
	t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		r.run.alive(t, what)
		time.Sleep(min(200*time.Millisecond, time.Until(end)))
	}
	r.run.alive(t, what)
}

// finish lets the stream end, waits until the pipeline has consumed it,
// moves the clock past the last timers, collects the alerts, stops the
// pipeline and compares with replay's; it returns the figures.
func (r *bfRun) finish(t *testing.T, addr string) string {
	t.Helper()
	r.st.wait(t, 120*time.Second)
	ends := allInputEnds(t, addr, r.topics)
	var inputs int64
	for _, parts := range ends {
		for _, n := range parts {
			inputs += n
		}
	}
	waitFor(t, 120*time.Second, "the pipeline to consume the inputs", func() bool {
		r.run.alive(t, "the wait for the pipeline to catch up")
		return offsetsReach(storeOffsets(t, r.store, bfPartitions), ends)
	})
	r.clock.Set(r.final)
	got := awaitAlerts(t, addr, r.topics, r.want, 120*time.Second)
	r.run.alive(t, "the wait for the alerts")
	r.mon.stop()
	r.run.stop(t)
	checkNoPipelineGoroutines(t)

	missing := 0
	for id := range r.want {
		if got[id] == 0 {
			missing++
		}
	}
	dups := compareAlerts(t, r.want, got)
	reasons := map[string]int{}
	for _, m := range readTopic(t, addr, r.topics.DeadLetter) {
		reasons[header(m, pipeline.HeaderReason)]++
	}
	for reason, n := range reasons {
		if reason != "duplicate" {
			t.Errorf("%d dead letters with reason %q: the events are all good (only duplicates from the test producer's retries are expected)", n, reason)
		}
	}
	if stats, err := r.store.Stats(); err != nil {
		t.Fatal(err)
	} else if stats.OutboxDepth != 0 {
		t.Errorf("outbox holds %d records after a graceful stop with every broker up", stats.OutboxDepth)
	}
	restores := r.logs.count("restoring partition state from the changelog", time.Time{})
	return fmt.Sprintf("%d events (%d input records: %d repeated by the test producer's retries, %d duplicate dead letters), "+
		"%d alerts expected, %d missing, %d duplicate deliveries, %d changelog restores, %d producer retries, total %v",
		r.events, inputs, inputs-int64(r.events), reasons["duplicate"], len(r.want), missing, dups, restores,
		r.st.retryCount(), time.Since(r.started).Round(time.Millisecond))
}

// bfWaitInSync waits until every partition of every topic has all its
// replicas in sync and returns how long that took.
func bfWaitInSync(t *testing.T, addr string, d time.Duration) time.Duration {
	t.Helper()
	t0 := time.Now()
	last := ""
	deadline := t0.Add(d)
	for {
		md, err := kafkatest.Metadata(t.Context(), addr)
		last = ""
		if err != nil {
			last = err.Error()
		}
		for name, tm := range md {
			if last != "" {
				break
			}
			if tm.Error != nil {
				last = fmt.Sprintf("%s: %v", name, tm.Error)
			}
			for _, p := range tm.Partitions {
				if len(p.Isr) < len(p.Replicas) || len(p.Replicas) == 0 {
					last = fmt.Sprintf("%s/%d: %d of %d replicas in sync", name, p.ID, len(p.Isr), len(p.Replicas))
					break
				}
			}
		}
		if last == "" {
			return time.Since(t0)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster is not in sync %v after the restart: %s", d, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// bfMaxRun is the most records of one topic-partition in one step.
func bfMaxRun(steps [][]kafka.Message) int {
	var bal kafka.Murmur2Balancer
	ids := make([]int, bfPartitions)
	for i := range ids {
		ids[i] = i
	}
	most := 0
	for _, step := range steps {
		n := map[string]int{}
		for _, m := range step {
			k := fmt.Sprintf("%s/%d", m.Topic, bal.Balance(m, ids...))
			n[k]++
			most = max(most, n[k])
		}
	}
	return most
}

func bfResume(d time.Duration) string {
	if d < 0 {
		return "never (within the run)"
	}
	return d.Round(100 * time.Millisecond).String()
}

func bfCounts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%q×%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// bfRunHandle is a running Pipeline.Run.
type bfRunHandle struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error // Run's result, once done is closed
	once   sync.Once
}

func bfStartRun(t *testing.T, p *pipeline.Pipeline, d time.Duration) *bfRunHandle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	h := &bfRunHandle{cancel: cancel, done: make(chan struct{})}
	go func() {
		h.err = p.Run(ctx)
		close(h.done)
	}()
	t.Cleanup(func() { h.stop(t) })
	return h
}

// alive fails the test if Run has returned.
func (h *bfRunHandle) alive(t *testing.T, during string) {
	t.Helper()
	select {
	case <-h.done:
		t.Fatalf("Run returned during %s (it must keep running through broker faults): %v", during, h.err)
	default:
	}
}

// stop cancels Run and checks that it returns nil within a bound.
func (h *bfRunHandle) stop(t *testing.T) {
	t.Helper()
	h.once.Do(func() {
		h.cancel()
		select {
		case <-h.done:
			if h.err != nil {
				t.Errorf("Run: %v", h.err)
			}
		case <-time.After(60 * time.Second):
			t.Error("Run did not return within 60s of cancel")
		}
	})
}

// bfLog is the pipeline's log sink: it keeps every line (info and
// above) with the time it was written.
type bfLog struct {
	mu    sync.Mutex
	lines []bfLogLine
}

type bfLogLine struct {
	at    time.Time
	level string
	key   string // the message; kafka-go's: "kafka-go: " and its first words
	raw   string
}

func (l *bfLog) Write(b []byte) (int, error) {
	var m struct {
		Level     string `json:"level"`
		Message   string `json:"message"`
		Component string `json:"component"`
	}
	line := bfLogLine{at: time.Now(), raw: string(bytes.TrimSpace(b))}
	if json.Unmarshal(b, &m) == nil {
		line.level, line.key = m.Level, m.Message
		if m.Component == "kafka-go" {
			words := strings.Fields(m.Message)
			line.key = "kafka-go: " + strings.Join(words[:min(len(words), 4)], " ")
		}
	}
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
	return len(b), nil
}

func (l *bfLog) logger() zerolog.Logger { return zerolog.New(l).Level(zerolog.InfoLevel) }

// count counts the lines with message msg written at or after since.
func (l *bfLog) count(msg string, since time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, ln := range l.lines {
		if ln.key == msg && !ln.at.Before(since) {
			n++
		}
	}
	return n
}

// nth returns when the n-th line with message msg at or after since was
// written.
func (l *bfLog) nth(msg string, since time.Time, n int) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ln := range l.lines {
		if ln.key == msg && !ln.at.Before(since) {
			if n--; n == 0 {
				return ln.at, true
			}
		}
	}
	return time.Time{}, false
}

// warnings counts the warning and error lines written in [from, to), by
// message.
func (l *bfLog) warnings(from, to time.Time) map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for _, ln := range l.lines {
		if (ln.level == "warn" || ln.level == "error") && !ln.at.Before(from) && ln.at.Before(to) {
			out[ln.key]++
		}
	}
	return out
}

// tail returns the last n lines (all if n < 0).
func (l *bfLog) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	lines := l.lines
	if n >= 0 {
		lines = lines[max(0, len(lines)-n):]
	}
	for _, ln := range lines {
		fmt.Fprintf(&b, "%s %s\n", ln.at.Format("15:04:05.000"), ln.raw)
	}
	return b.String()
}

// bfProgress samples, every 100 ms, how far the pipeline has
// committed each partition (the sum of its input offsets in the store).
type bfProgress struct {
	mu      sync.Mutex
	samples []bfSample
	err     error
	cancel  context.CancelFunc
	done    chan struct{}
}

type bfSample struct {
	at   time.Time
	sums []int64
}

func bfStartProgress(t *testing.T, s *state.Store, topics pipeline.Topics) *bfProgress {
	ctx, cancel := context.WithCancel(context.Background())
	m := &bfProgress{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			smp := bfSample{at: time.Now(), sums: make([]int64, bfPartitions)}
			for p := range bfPartitions {
				offs, err := s.Partition(state.Partition(p)).Offsets()
				if err != nil {
					m.mu.Lock()
					m.err = err
					m.mu.Unlock()
					return
				}
				for _, in := range topics.Inputs() {
					smp.sums[p] += offs[in]
				}
			}
			m.mu.Lock()
			m.samples = append(m.samples, smp)
			m.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(m.stop) // before the store closes (cleanups run last in, first out)
	return m
}

func (m *bfProgress) stop() {
	m.cancel()
	<-m.done
}

// consumedPast returns how long after at the pipeline had committed, on
// every partition whose input went beyond ends (sums of both inputs'
// offsets, by partition), input beyond ends; -1 if some partition never
// did while the monitor ran.
func (m *bfProgress) consumedPast(ends []int64, at time.Time) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.samples) == 0 {
		return -1
	}
	last := m.samples[len(m.samples)-1]
	for _, s := range m.samples {
		if s.at.Before(at) {
			continue
		}
		all := true
		for p := range s.sums {
			if last.sums[p] > ends[p] && s.sums[p] <= ends[p] {
				all = false
				break
			}
		}
		if all {
			return s.at.Sub(at)
		}
	}
	return -1
}

// bfStreamer produces the steps (streamSteps) one after the other,
// spread over a duration, and retries a step's writes until the broker
// acknowledged all of them before it goes on to the next: a broker fault
// delays the stream but loses and reorders nothing. A topic-partition's
// records of one step go in one produce request (BatchSize is larger than
// any step's run), so a retry repeats that run whole, after what the
// broker already holds: at worst a repeated run, which the pipeline
// dead-letters as duplicates. It can be paused between steps.
type bfStreamer struct {
	steps [][]kafka.Message
	w     *kafka.Writer
	tr    *kafka.Transport

	mu       sync.Mutex
	cond     *sync.Cond
	paused   bool
	idle     bool // paused between steps, or finished
	finished bool
	begun    time.Time
	done     int // steps written
	retries  int
	firstErr string
	err      error // a stop other than by the test's end

	startCh chan time.Duration
	stopped chan struct{}
}

func bfNewStreamer(t *testing.T, brokers []string, steps [][]kafka.Message) *bfStreamer {
	t.Helper()
	tr := &kafka.Transport{MetadataTTL: time.Second}
	s := &bfStreamer{
		steps: steps,
		tr:    tr,
		w: &kafka.Writer{Addr: kafka.TCP(brokers...), Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll,
			BatchTimeout: time.Millisecond, BatchSize: 100000, MaxAttempts: 3,
			WriteBackoffMin: 100 * time.Millisecond, WriteBackoffMax: 500 * time.Millisecond, Transport: tr},
		startCh: make(chan time.Duration, 1),
		stopped: make(chan struct{}),
	}
	s.cond = sync.NewCond(&s.mu)
	ctx, cancel := context.WithCancel(context.Background())
	go s.loop(ctx)
	t.Cleanup(func() {
		cancel()
		s.mu.Lock()
		s.paused = false
		s.cond.Broadcast()
		s.mu.Unlock()
		<-s.stopped
		s.w.Close()
		tr.CloseIdleConnections()
	})
	return s
}

// start lets the steps go, step i at spread×i/len after the start (plus
// the time spent paused or retrying).
func (s *bfStreamer) start(spread time.Duration) { s.startCh <- spread }

func (s *bfStreamer) loop(ctx context.Context) {
	defer close(s.stopped)
	defer func() {
		s.mu.Lock()
		s.finished, s.idle = true, true
		s.cond.Broadcast()
		s.mu.Unlock()
	}()
	var spread time.Duration
	select {
	case spread = <-s.startCh:
	case <-ctx.Done():
		return
	}
	s.mu.Lock()
	s.begun = time.Now()
	s.mu.Unlock()
	base := time.Now()
	for i, step := range s.steps {
		// Pace: step i goes at base + spread*i/len; base moves on by the
		// time spent paused or retrying.
		due := base.Add(spread * time.Duration(i) / time.Duration(len(s.steps)))
		if !bfSleep(ctx, time.Until(due)) {
			return
		}
		s.mu.Lock()
		if s.paused {
			t0 := time.Now()
			s.idle = true
			s.cond.Broadcast()
			for s.paused && ctx.Err() == nil {
				s.cond.Wait()
			}
			s.idle = false
			base = base.Add(time.Since(t0))
		}
		s.mu.Unlock()
		t0 := time.Now()
		if err := s.write(ctx, step); err != nil {
			if ctx.Err() == nil {
				s.mu.Lock()
				s.err = err
				s.mu.Unlock()
			}
			return
		}
		if d := time.Since(t0); d > time.Second {
			base = base.Add(d)
		}
		s.mu.Lock()
		s.done++
		s.mu.Unlock()
	}
}

// write writes msgs, retrying what the broker did not acknowledge until
// it does or ctx ends.
func (s *bfStreamer) write(ctx context.Context, msgs []kafka.Message) error {
	backoff := 100 * time.Millisecond
	for len(msgs) > 0 {
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err := s.w.WriteMessages(wctx, msgs...)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var we kafka.WriteErrors
		if errors.As(err, &we) && len(we) == len(msgs) {
			var failed []kafka.Message
			for i := range we {
				if we[i] != nil {
					failed = append(failed, msgs[i])
				}
			}
			msgs = failed
		}
		s.mu.Lock()
		s.retries++
		if s.firstErr == "" {
			s.firstErr = err.Error()
			if len(s.firstErr) > 300 {
				s.firstErr = s.firstErr[:300] + "..."
			}
		}
		s.mu.Unlock()
		if !bfSleep(ctx, backoff) {
			return ctx.Err()
		}
		backoff = min(2*backoff, 2*time.Second)
	}
	return nil
}

// bfSleep waits d or until ctx ends; it reports whether ctx is still alive.
func bfSleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// pause stops the streamer between two steps and returns once the step
// being written (if any) is acknowledged.
func (s *bfStreamer) pause(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	s.paused = true
	for !s.idle {
		s.cond.Wait()
	}
	s.mu.Unlock()
	s.check(t)
}

func (s *bfStreamer) resume() {
	s.mu.Lock()
	s.paused = false
	s.cond.Broadcast()
	s.mu.Unlock()
}

func (s *bfStreamer) stepsDone() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done
}

func (s *bfStreamer) started() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.begun
}

func (s *bfStreamer) retryCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.retries
}

func (s *bfStreamer) firstError() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.firstErr
}

// check fails the test if the streamer stopped on an error.
func (s *bfStreamer) check(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		t.Fatalf("test producer: %v", s.err)
	}
}

// wait waits until every step is written.
func (s *bfStreamer) wait(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-s.stopped:
	case <-time.After(d):
		t.Fatalf("producing the events took more than %v (%d of %d steps written, %d retries, first error: %s)",
			d, s.stepsDone(), len(s.steps), s.retryCount(), s.firstError())
	}
	s.check(t)
	if n := s.stepsDone(); n != len(s.steps) {
		t.Fatalf("the test producer wrote %d of %d steps", n, len(s.steps))
	}
	if s.retryCount() > 0 {
		t.Logf("test producer: %d retried writes, first error: %s", s.retryCount(), s.firstError())
	}
}
