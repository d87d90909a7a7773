package pipeline_test

// The scale-out test: the pipeline runs as up to three instances (child
// processes, as in crash_test.go, each with a state directory of its own)
// in one consumer group on 8 co-partitioned input partitions, while the
// events flow in segments. Instance 1 starts alone; instance 2 joins;
// instance 3 joins; instance 1 leaves gracefully (SIGTERM); instance 2 is
// killed with SIGKILL while a segment flows; instance 3 processes the rest
// alone. Partitions move between instances without their disks: a moving
// partition's state comes from the changelog topic (changelog.go).
//
// Checked:
//
//   - the alert ids in the end are exactly the single-instance replay's
//     (duplicates allowed, counted and reported);
//   - co-partitioning: whenever the group is described (polled all along)
//     every member holds the same partition ids of both input topics, and
//     each settled generation's logged assignments cover every partition
//     once;
//   - no partition is worked on by two instances at once (from the
//     children's logs, which carry nanosecond times in this test);
//   - every time an instance first takes a partition whose changelog holds
//     state, it restores it from the changelog before reading the inputs.
//
// As in TestCrashRestart, no record is produced while partition workers
// start (they could be applied out of order, and the alerts would then
// rightly differ from replay's): each membership change waits for the
// segment in flight to be produced, and the next segment is released only
// once the rebalance has settled and every partition has a worker reading
// it. The kill is the exception by design: it lands while a segment
// flows, and the segment ends long before the session timeout hands the
// killed instance's partitions over (checked).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/churnflow/churnflow/internal/kafkatest"
	"github.com/churnflow/churnflow/operators"
	"github.com/churnflow/churnflow/pipeline"
)

// scaleOutEnvChild marks TestScaleOut's children: they log times with
// nanoseconds, so that the parent can order the lines of different
// instances (zerolog's default is whole seconds).
const scaleOutEnvChild = "CHURNFLOW_SCALEOUT_CHILD"

func init() {
	if os.Getenv(scaleOutEnvChild) == "1" {
		zerolog.TimeFieldFormat = time.RFC3339Nano
	}
}

// Log messages the test follows (pipeline.go, worker.go, changelog.go).
const (
	msgAssigned      = "partitions assigned"
	msgWorkerStarted = "partition worker started"
	msgWorkerStopped = "partition worker stopped"
	msgRestoring     = "restoring partition state from the changelog"
)

func TestScaleOut(t *testing.T) {
	if testing.Short() {
		t.Skip("runs and kills child processes; skipped with -short")
	}
	eachBroker(t, 8, testScaleOut)
}

// scaleInstance is one pipeline instance: a child process on a state
// directory of its own.
type scaleInstance struct {
	name string
	r    *childRunner
	c    *child
	gone time.Time // when it was stopped or killed; zero while it runs
}

// scaleLine is a child's log line, the fields the test reads.
type scaleLine struct {
	Time         time.Time `json:"time"`
	Message      string    `json:"message"`
	Partition    *int      `json:"partition"`
	Partitions   []int     `json:"partitions"`
	Generation   int32     `json:"generation"`
	HadLocal     bool      `json:"had_local_state"`
	ChangelogEnd *int64    `json:"changelog_end"`
}

// lines parses the instance's log so far (a line being written is
// skipped, as is anything that is not a JSON log line).
func (in *scaleInstance) lines() []scaleLine {
	b, _ := os.ReadFile(in.c.logf)
	var out []scaleLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var l scaleLine
		if json.Unmarshal(line, &l) == nil && l.Message != "" {
			out = append(out, l)
		}
	}
	return out
}

// assignment returns the instance's latest generation (0: none yet), the
// partition ids it was assigned in it and those whose workers read.
func assignment(lines []scaleLine) (gen int32, parts []int, reading map[int]bool) {
	for _, l := range lines {
		switch {
		case l.Message == msgAssigned:
			gen, parts, reading = l.Generation, l.Partitions, map[int]bool{}
		case l.Message == msgSeeked && l.Partition != nil && reading != nil:
			reading[*l.Partition] = true
		}
	}
	return gen, parts, reading
}

// scaleRun is the scale-out scenario on one broker.
type scaleRun struct {
	t          *testing.T
	b          testBroker
	group      string
	partitions int
	instances  []*scaleInstance
	client     *kafka.Client
	settled    []string // what each settled generation looked like, for the log
}

func (s *scaleRun) live() []*scaleInstance {
	var out []*scaleInstance
	for _, in := range s.instances {
		if in.gone.IsZero() {
			out = append(out, in)
		}
	}
	return out
}

// start starts a new instance on a fresh state directory, its clock set to
// now.
func (s *scaleRun) start(name string, now time.Time) *scaleInstance {
	s.t.Helper()
	r := newChildRunnerOn(s.t, s.b, s.group)
	r.env = append(r.env, scaleOutEnvChild+"=1")
	writeClock(s.t, r.clock, now)
	in := &scaleInstance{name: name, r: r}
	in.c = r.start()
	s.instances = append(s.instances, in)
	return in
}

// setClock sets every running instance's clock.
func (s *scaleRun) setClock(now time.Time) {
	for _, in := range s.live() {
		writeClock(s.t, in.r.clock, now)
	}
}

// describe returns the group's state and each member's assignment
// (topic -> sorted partition ids).
func (s *scaleRun) describe(ctx context.Context) (string, map[string]map[string][]int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := s.client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{s.group}})
	if err != nil {
		return "", nil, err
	}
	if len(resp.Groups) != 1 {
		return "", nil, fmt.Errorf("described %d groups, want 1", len(resp.Groups))
	}
	g := resp.Groups[0]
	if g.Error != nil {
		return "", nil, g.Error
	}
	members := map[string]map[string][]int{}
	for _, m := range g.Members {
		byTopic := map[string][]int{}
		for _, tp := range m.MemberAssignments.Topics {
			byTopic[tp.Topic] = slices.Sorted(slices.Values(tp.Partitions))
		}
		members[m.MemberID] = byTopic
	}
	return g.GroupState, members, nil
}

// coPartitionViolations describes every member whose bookings partitions
// are not its activity partitions, and every topic partition assigned to
// more than one member.
func (s *scaleRun) coPartitionViolations(members map[string]map[string][]int) []string {
	var bad []string
	owners := map[string]map[int][]string{}
	for _, id := range slices.Sorted(maps.Keys(members)) {
		byTopic := members[id]
		bk, ac := byTopic[s.b.Topics.Bookings], byTopic[s.b.Topics.Activity]
		if !slices.Equal(bk, ac) {
			bad = append(bad, fmt.Sprintf("member %s holds bookings %v but activity %v", id, bk, ac))
		}
		for topic, ps := range byTopic {
			if owners[topic] == nil {
				owners[topic] = map[int][]string{}
			}
			for _, p := range ps {
				owners[topic][p] = append(owners[topic][p], id)
			}
		}
	}
	for topic, byPart := range owners {
		for p, ids := range byPart {
			if len(ids) > 1 {
				bad = append(bad, fmt.Sprintf("%s/%d is assigned to %d members %v", topic, p, len(ids), ids))
			}
		}
	}
	return bad
}

// groupWatch describes the group every 100ms while the test runs and keeps
// every co-partitioning violation it sees.
type groupWatch struct {
	mu         sync.Mutex
	describes  int
	errors     int
	firstErr   error
	violations []string
	stop       func()
}

func (s *scaleRun) watchGroup() *groupWatch {
	w := &groupWatch{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			state, members, err := s.describe(ctx)
			w.mu.Lock()
			if err != nil {
				if ctx.Err() == nil {
					w.errors++
					if w.firstErr == nil {
						w.firstErr = err
					}
				}
			} else {
				w.describes++
				for _, v := range s.coPartitionViolations(members) {
					w.violations = append(w.violations, fmt.Sprintf("%s (group %s)", v, state))
				}
			}
			w.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	w.stop = func() { once.Do(func() { cancel(); <-done }) }
	s.t.Cleanup(w.stop)
	return w
}

// settle waits until the running instances agree on one generation whose
// assignments (as logged) cover every partition exactly once, every one
// of them has a worker reading, and the group (as described) is stable
// with as many members, each holding the same partitions of both input
// topics. It returns the owner of each partition.
func (s *scaleRun) settle(what string) map[int]*scaleInstance {
	s.t.Helper()
	t0 := time.Now()
	live := s.live()
	var owner map[int]*scaleInstance
	var last string
	check := func() bool {
		owner = map[int]*scaleInstance{}
		var gen int32
		var desc []string
		defer func() { last = strings.Join(desc, "; ") }()
		for i, in := range live {
			if in.r.exited(in.c) {
				s.t.Fatalf("%s exited while %s", in.name, what)
			}
			g, parts, reading := assignment(in.lines())
			desc = append(desc, fmt.Sprintf("%s: generation %d, partitions %v, %d reading", in.name, g, parts, len(reading)))
			if g == 0 || (i > 0 && g != gen) {
				return false
			}
			gen = g
			for _, p := range parts {
				if owner[p] != nil {
					s.t.Errorf("generation %d: partition %d assigned to both %s and %s", g, p, owner[p].name, in.name)
					return false
				}
				if !reading[p] {
					return false
				}
				owner[p] = in
			}
		}
		if len(owner) != s.partitions {
			return false
		}
		state, members, err := s.describe(s.t.Context())
		if err != nil {
			desc = append(desc, fmt.Sprintf("describe group: %v", err))
			return false
		}
		desc = append(desc, fmt.Sprintf("group %s with %d members", state, len(members)))
		if bad := s.coPartitionViolations(members); len(bad) > 0 {
			s.t.Errorf("%s: the group's assignments are not co-partitioned: %v", what, bad)
		}
		if state != "Stable" || len(members) != len(live) {
			return false
		}
		for _, byTopic := range members {
			if len(byTopic[s.b.Topics.Bookings]) == 0 {
				return false // an assignment from before the last join
			}
		}
		return true
	}
	for deadline := time.Now().Add(45 * time.Second); !check(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out after 45s waiting for %s; last seen: %s", what, last)
		}
	}
	s.settled = append(s.settled, fmt.Sprintf("%s after %v: %s", what, time.Since(t0).Round(time.Millisecond), last))
	s.t.Logf("settled: %s", s.settled[len(s.settled)-1])
	time.Sleep(100 * time.Millisecond) // the workers' first fetches (waitReady)
	return owner
}

// ownersReach reports whether every partition's owner has committed its
// state up to ends.
func ownersReach(owner map[int]*scaleInstance, ends map[string]map[int]int64) bool {
	for p, in := range owner {
		offs := in.r.offsets()
		for topic, parts := range ends {
			if end := parts[p]; end > 0 && offs[topic][p] < end {
				return false
			}
		}
	}
	return true
}

// waitProduced waits until the streamer has written what was released and
// returns when it saw that (polling every 10ms).
func waitProduced(t *testing.T, st *streamer, d time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(d)
	for st.Flowing() {
		if time.Now().After(deadline) {
			t.Fatalf("the segment was not produced within %v", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := st.Written(); err != nil {
		t.Fatal(err)
	}
	return time.Now()
}

func testScaleOut(t *testing.T, b testBroker) {
	const members, days, segments = 400, 300, 5
	partitions := int(b.Partitions)
	started := time.Now()
	b.allowShortSessions(t)
	gcfg, recs := genRecords(t, members, days, 42)
	cfg := faultConfig(b.Addr, b.Group("scaleout"))
	final, until := faultTimes(cfg, gcfg.End())
	want := replayAlerts(t, newEngine(t), recs, until)
	if len(want) == 0 {
		t.Fatal("replay gives no alerts: the test would prove nothing")
	}
	steps := streamSteps(recs, b.Topics, partitions)
	st := newStreamer(t, b.Addr, steps, segments)
	s := &scaleRun{t: t, b: b, group: cfg.Group, partitions: partitions, client: kafkatest.Client(t, b.Addr)}
	watch := s.watchGroup()
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0x5ca1e))

	// 1. Instance 1 alone: it takes every partition, from an empty
	// changelog. The first segment is processed in full, so that from now
	// on every partition's changelog holds state.
	i1 := s.start("instance-1", gcfg.End())
	owner := s.settle("instance 1 alone")
	st.Release(time.Second)
	waitProduced(t, st, 60*time.Second)
	ends := allInputEnds(t, b.Addr, b.Topics)
	waitFor(t, 60*time.Second, "instance 1 to process the first segment", func() bool { return ownersReach(owner, ends) })
	dataSince := time.Now()

	// 2. Instance 2 joins; once every partition has a worker again, the
	// next segment flows.
	s.start("instance-2", gcfg.End())
	s.settle("instance 2 joined")
	st.Release(time.Second)
	waitProduced(t, st, 60*time.Second)

	// 3. Instance 3 joins (the others may still be working through the
	// segment: its records are all produced).
	i3 := s.start("instance-3", gcfg.End())
	s.settle("instance 3 joined")
	st.Release(time.Second)
	waitProduced(t, st, 60*time.Second)

	// 4. Instance 1 leaves gracefully.
	i1.r.stop(i1.c)
	i1.gone = time.Now()
	owner = s.settle("instance 1 left (SIGTERM)")

	// 5. Instance 2 is killed while the next segment flows, once it has
	// made progress on it; its partitions go to instance 3 once its
	// session times out (childSessionTimeout), well after the segment
	// has been produced.
	i2 := s.instances[1]
	var mine []int
	for p, in := range owner {
		if in == i2 {
			mine = append(mine, p)
		}
	}
	before := sumOffsets(i2.r.offsets(), mine)
	st.Release(700 * time.Millisecond)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if sumOffsets(i2.r.offsets(), mine) > before {
			break
		}
	}
	time.Sleep(time.Duration(rng.Int64N(int64(150 * time.Millisecond))))
	flowing := st.Flowing()
	killedAt := time.Now()
	i2.r.kill(i2.c)
	i2.gone = killedAt
	t.Logf("%s killed (SIGKILL) owning partitions %v, events flowing: %v (timing seed %d)", i2.name, slices.Sorted(slices.Values(mine)), flowing, seed)
	producedAt := waitProduced(t, st, 60*time.Second)
	owner = s.settle(i2.name + " killed (SIGKILL)")
	var takeover time.Time
	for _, l := range i3.lines() {
		if l.Message == msgWorkerStarted && l.Time.After(killedAt) {
			takeover = l.Time
			break
		}
	}
	if !takeover.After(producedAt) {
		t.Errorf("instance 3's workers restarted at %v, before the segment in flight was produced at %v: records produced while workers start make the alerts differ (test timing)",
			takeover.Format(time.StampMicro), producedAt.Format(time.StampMicro))
	}

	// 6. Instance 3, alone, processes the rest; then the clock jumps to
	// the end and the timers fire.
	st.Release(time.Second)
	st.Wait(t, 60*time.Second)
	ends = allInputEnds(t, b.Addr, b.Topics)
	waitFor(t, 60*time.Second, "instance 3 to process every input", func() bool {
		return !i3.r.exited(i3.c) && ownersReach(owner, ends)
	})
	s.setClock(final)
	got := awaitAlerts(t, b.Addr, b.Topics, want, 60*time.Second)
	i3.r.stop(i3.c)
	i3.gone = time.Now()
	watch.stop()
	took := time.Since(started)
	store, closeStore := openStoreAt(t, filepath.Join(i3.r.dir, "state"))
	if stats, err := store.Stats(); err != nil {
		t.Fatal(err)
	} else if stats.OutboxDepth != 0 {
		t.Errorf("the last instance's outbox holds %d records after it stopped cleanly", stats.OutboxDepth)
	}
	if offs := storeOffsets(t, store, partitions); !offsetsReach(offs, ends) {
		t.Errorf("the last instance's stored offsets %v do not reach the inputs' ends %v", offs, ends)
	}
	closeStore()

	// The alerts.
	dups := compareAlerts(t, want, got)
	missing, extra := 0, 0
	for id := range want {
		if got[id] == 0 {
			missing++
		}
	}
	for id := range got {
		if !want[id] {
			extra++
		}
	}
	// Duplicates are expected only where the kill struck: alerts the
	// killed instance had sent but whose state had not reached the
	// changelog are emitted again by the instance that restores it. A
	// partition that only ever changed hands cleanly gets none
	// (TestStateMovesThroughChangelog).
	dupParts := map[int]int{}
	for _, topic := range []string{b.Topics.Dormancy, b.Topics.Retention, b.Topics.Nudges, b.Topics.Segments} {
		seen := map[string]bool{}
		for _, m := range readTopic(t, b.Addr, topic) {
			id := header(m, pipeline.HeaderAlertID)
			if seen[id] {
				dupParts[m.Partition]++
			}
			seen[id] = true
		}
	}
	for p, n := range dupParts {
		if !slices.Contains(mine, p) {
			t.Errorf("%d duplicate alert deliveries on partition %d, which only changed hands cleanly (the kill struck partitions %v)", n, p, mine)
		}
	}
	dead := map[string]int{}
	for _, m := range readTopic(t, b.Addr, b.Topics.DeadLetter) {
		dead[header(m, pipeline.HeaderReason)]++
	}
	for reason, n := range dead {
		if reason != string(operators.ReasonDuplicate) {
			t.Errorf("%d dead letters with reason %q, want none: every generated record is good", n, reason)
		}
	}

	// Co-partitioning, as the group was described all along.
	watch.mu.Lock()
	if len(watch.violations) > 0 {
		t.Errorf("%d described assignments were not co-partitioned; first: %v", len(watch.violations), watch.violations[:min(5, len(watch.violations))])
	}
	if watch.describes < 10 {
		t.Errorf("the group was described only %d times (%d errors)", watch.describes, watch.errors)
	}
	describes, describeErrs := watch.describes, watch.errors
	if watch.firstErr != nil {
		t.Logf("%d of the group descriptions failed (retried 100ms later); the first: %v", describeErrs, watch.firstErr)
	}
	watch.mu.Unlock()

	// From the logs: generations, one owner at a time, restores.
	logs := map[*scaleInstance][]scaleLine{}
	gens := map[int32]bool{}
	for _, in := range s.instances {
		logs[in] = in.lines()
		for _, l := range logs[in] {
			if l.Message == msgAssigned {
				gens[l.Generation] = true
			}
		}
	}
	checkExclusiveOwnership(t, s.instances, logs)
	restores, overLocal, firstTakes := checkRestores(t, s.instances, logs, dataSince)

	dlq := 0
	for _, n := range dead {
		dlq += n
	}
	t.Logf("%d events in %d steps, %d alerts expected: %d missing, %d extra, %d duplicate deliveries (by partition: %v); "+
		"%d restores from the changelog (%d over a stale local copy; %d first takes of a partition with state, all restored); "+
		"%d generations, %d group descriptions (%d failed), co-partitioned; %d dead letters %v; killed instance's partitions taken over %v after the kill (%v after the segment in flight was produced); %v",
		len(recs), len(steps), len(want), missing, extra, dups, dupParts, restores, overLocal, firstTakes,
		len(gens), describes, describeErrs, dlq, dead, takeover.Sub(killedAt).Round(time.Millisecond), takeover.Sub(producedAt).Round(time.Millisecond), took.Round(time.Millisecond))
}

// span is an instance's worker on a partition, from its start to the last
// line it logged.
type span struct {
	in         *scaleInstance
	start, end time.Time
	stopped    bool // it logged its stop
}

// checkExclusiveOwnership fails if two instances' workers of one partition
// ran at once: a worker runs from "partition worker started" to "partition
// worker stopped" or, without that line (killed, or stopped while
// starting), at least to the last line it logged.
func checkExclusiveOwnership(t *testing.T, instances []*scaleInstance, logs map[*scaleInstance][]scaleLine) {
	t.Helper()
	byPart := map[int][]span{}
	for _, in := range instances {
		open := map[int]*span{}
		closeSpan := func(p int) {
			if sp := open[p]; sp != nil {
				byPart[p] = append(byPart[p], *sp)
				delete(open, p)
			}
		}
		for _, l := range logs[in] {
			if l.Partition == nil {
				continue
			}
			p := *l.Partition
			switch l.Message {
			case msgWorkerStarted:
				closeSpan(p)
				open[p] = &span{in: in, start: l.Time, end: l.Time}
			case msgWorkerStopped:
				if sp := open[p]; sp != nil {
					sp.end, sp.stopped = l.Time, true
					closeSpan(p)
				}
			default:
				if sp := open[p]; sp != nil {
					sp.end = l.Time
				}
			}
		}
		for p := range open {
			closeSpan(p)
		}
	}
	for p, spans := range byPart {
		sort.Slice(spans, func(i, j int) bool { return spans[i].start.Before(spans[j].start) })
		for i := range spans {
			for j := i + 1; j < len(spans); j++ {
				a, b := spans[i], spans[j]
				if a.in != b.in && b.start.Before(a.end) {
					t.Errorf("partition %d worked on by %s (%s to %s, stop logged: %v) and %s (from %s) at once",
						p, a.in.name, a.start.Format(time.StampMicro), a.end.Format(time.StampMicro), a.stopped,
						b.in.name, b.start.Format(time.StampMicro))
				}
			}
		}
	}
}

// checkRestores counts the restores from the changelog and fails if an
// instance first took a partition after its changelog held state
// (dataSince) and read the inputs without restoring it first. It returns
// the restores, those over a local copy, and the first takes checked.
func checkRestores(t *testing.T, instances []*scaleInstance, logs map[*scaleInstance][]scaleLine, dataSince time.Time) (restores, overLocal, firstTakes int) {
	t.Helper()
	for _, in := range instances {
		restored := map[int]bool{}
		seeked := map[int]bool{}
		for _, l := range logs[in] {
			if l.Partition == nil {
				continue
			}
			p := *l.Partition
			switch {
			case l.Message == msgRestoring && l.ChangelogEnd != nil && l.HadLocal:
				overLocal++
			case l.Message == msgRestored:
				restores++
				restored[p] = true
			case l.Message == msgSeeked && !seeked[p]:
				seeked[p] = true
				if l.Time.After(dataSince) {
					firstTakes++
					if !restored[p] {
						t.Errorf("%s took partition %d for the first time at %s, after its changelog held state, and read the inputs without restoring it",
							in.name, p, l.Time.Format(time.StampMicro))
					}
				}
			}
		}
	}
	if firstTakes == 0 {
		t.Errorf("no instance took a partition with state in its changelog: the test proves nothing about restores")
	}
	return restores, overLocal, firstTakes
}
