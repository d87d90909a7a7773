package pipeline_test

// The crash test: the pipeline runs in a child process (this test binary,
// re-executed) and is killed with SIGKILL at random moments while events
// flow into the broker (the embedded one, which runs here in the parent,
// or real Kafka: eachBroker); each time it is restarted on the same state
// directory. The last child runs to completion, and the alert ids on the
// output topics must be exactly the uninterrupted run's (replay's, as in
// the end-to-end test): duplicates of an id are allowed and counted, a
// missing or extra id fails.
//
// The child's wall clock is a file the parent writes (Unix seconds) and the
// child polls: frozen at the end of the generated span while events flow,
// then moved on once the last child has caught up, as knownAnswer does.
// The child reports the input offsets committed in its store through a
// status file (the parent cannot open the store while the child holds its
// lock).
//
// CHURNFLOW_CRASH_SEED replays a failing run's kill times (the seed is
// logged); CHURNFLOW_SOAK=1 runs a longer variant (more members and kills).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/churnflow/churnflow/operators"
	"github.com/churnflow/churnflow/pipeline"
	"github.com/churnflow/churnflow/state"
)

// The child's environment.
const (
	childEnvBroker     = "CHURNFLOW_PIPELINE_CHILD_BROKER"     // bootstrap address
	childEnvGroup      = "CHURNFLOW_PIPELINE_CHILD_GROUP"      // consumer group
	childEnvState      = "CHURNFLOW_PIPELINE_CHILD_STATE"      // state directory
	childEnvClock      = "CHURNFLOW_PIPELINE_CHILD_CLOCK"      // clock file (Unix seconds)
	childEnvStatus     = "CHURNFLOW_PIPELINE_CHILD_STATUS"     // status file the child writes
	childEnvPartitions = "CHURNFLOW_PIPELINE_CHILD_PARTITIONS" // input partition count
	childEnvTopics     = "CHURNFLOW_PIPELINE_CHILD_TOPICS"     // pipeline.Topics as JSON (default: DefaultTopics)
	childEnvCreate     = "CHURNFLOW_PIPELINE_CHILD_CREATE"     // "1": Config.CreateTopics

	crashEnvSeed = "CHURNFLOW_CRASH_SEED"
	soakEnv      = "CHURNFLOW_SOAK"
)

// childSessionTimeout lets a killed child's group membership expire fast
// (lowerMinSessionTimeout allows it on the embedded broker,
// scripts/kafka-local.sh's server.properties on real Kafka).
const childSessionTimeout = 2 * time.Second

// TestPipelineChildProcess is not a test: it is the child process of
// TestCrashRestart, started with the environment above. It runs the
// pipeline until SIGTERM (graceful stop, exit 0) or SIGKILL.
func TestPipelineChildProcess(t *testing.T) {
	if os.Getenv(childEnvBroker) == "" {
		t.Skip("the child process of TestCrashRestart; runs only when started by it")
	}
	if err := runChild(); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(3)
	}
}

func runChild() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	partitions, err := strconv.Atoi(os.Getenv(childEnvPartitions))
	if err != nil {
		return fmt.Errorf("%s: %w", childEnvPartitions, err)
	}
	clockPath, statusPath := os.Getenv(childEnvClock), os.Getenv(childEnvStatus)
	var now atomic.Int64
	readClock := func() error {
		b, err := os.ReadFile(clockPath)
		if err != nil {
			return err
		}
		sec, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return fmt.Errorf("clock file: %w", err)
		}
		now.Store(sec)
		return nil
	}
	if err := readClock(); err != nil {
		return err
	}
	opts := state.DefaultOptions(os.Getenv(childEnvState))
	opts.MemoryBudget = 32 << 20
	opts.GCInterval = 0
	store, err := state.Open(opts)
	if err != nil {
		return err
	}
	defer store.Close()
	g, err := operators.NewEngine(operators.DefaultConfig())
	if err != nil {
		return err
	}
	cfg := faultConfig(os.Getenv(childEnvBroker), os.Getenv(childEnvGroup))
	cfg.SessionTimeout, cfg.RebalanceTimeout = childSessionTimeout, 3*time.Second
	if v := os.Getenv(childEnvTopics); v != "" {
		if err := json.Unmarshal([]byte(v), &cfg.Topics); err != nil {
			return fmt.Errorf("%s: %w", childEnvTopics, err)
		}
	}
	cfg.CreateTopics = os.Getenv(childEnvCreate) == "1"
	log := zerolog.New(os.Stderr).Level(zerolog.InfoLevel).With().Timestamp().Logger()
	p, err := pipeline.New(cfg, pipeline.Deps{Engine: g, Store: store, Log: log,
		Clock: func() time.Time { return time.Unix(now.Load(), 0).UTC() }})
	if err != nil {
		return err
	}

	var wg sync.WaitGroup
	bg, cancel := context.WithCancel(context.Background())
	wg.Add(1)
	go func() { // clock and status, until Run returns
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			if err := readClock(); err != nil {
				log.Warn().Err(err).Msg("read clock")
			}
			{
				offs := map[string]map[int]int64{}
				for part := range partitions {
					o, err := store.Partition(state.Partition(part)).Offsets()
					if err != nil {
						log.Warn().Err(err).Msg("status offsets")
						break
					}
					for topic, off := range o {
						if offs[topic] == nil {
							offs[topic] = map[int]int64{}
						}
						offs[topic][part] = off
					}
				}
				b, _ := json.Marshal(offs)
				if err := writeFileAtomic(statusPath, b); err != nil {
					log.Warn().Err(err).Msg("write status")
				}
			}
			select {
			case <-bg.Done():
				return
			case <-tick.C:
			}
		}
	}()
	err = p.Run(ctx)
	cancel()
	wg.Wait()
	if err != nil {
		return err
	}
	return store.Close()
}

// child is a running child process.
type child struct {
	cmd  *exec.Cmd
	n    int
	logf string
	done chan struct{} // closed once the process is waited for
	err  error         // Wait's error, set before done is closed
	told bool          // the test was told that it exited on its own
}

// childRunner starts children on one state directory and kills them all
// at cleanup, whatever happened.
type childRunner struct {
	t                  *testing.T
	env                []string
	dir, clock, status string
	mu                 sync.Mutex
	children           []*child
	started            int
}

func newChildRunner(t *testing.T, addr, group string, partitions int) *childRunner {
	dir := t.TempDir()
	r := &childRunner{t: t, dir: dir, clock: filepath.Join(dir, "clock"), status: filepath.Join(dir, "status.json")}
	r.env = append(os.Environ(),
		childEnvBroker+"="+addr,
		childEnvGroup+"="+group,
		childEnvState+"="+filepath.Join(dir, "state"),
		childEnvClock+"="+r.clock,
		childEnvStatus+"="+r.status,
		childEnvPartitions+"="+strconv.Itoa(partitions),
	)
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, c := range r.children {
			select {
			case <-c.done:
				continue
			default:
			}
			c.cmd.Process.Kill()
			<-c.done
		}
		if t.Failed() {
			for _, c := range r.children {
				b, _ := os.ReadFile(c.logf)
				t.Logf("child %d log (tail):\n%s", c.n, tail(b, 3000))
			}
		}
	})
	return r
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return b
}

// newChildRunnerOn is newChildRunner for children in group whose pipeline
// is configured for b (its topics; Config.CreateTopics as b.Configure
// sets it).
func newChildRunnerOn(t *testing.T, b testBroker, group string) *childRunner {
	var cfg pipeline.Config
	b.Configure(&cfg)
	cfg.Group = group
	return newChildRunnerFor(t, cfg, int(b.Partitions))
}

// newChildRunnerFor is newChildRunner for children whose pipeline has
// cfg's broker, group, topics and CreateTopics (the rest is faultConfig's).
func newChildRunnerFor(t *testing.T, cfg pipeline.Config, partitions int) *childRunner {
	r := newChildRunner(t, cfg.Brokers[0], cfg.Group, partitions)
	topics, err := json.Marshal(cfg.Topics)
	if err != nil {
		t.Fatal(err)
	}
	create := "0"
	if cfg.CreateTopics {
		create = "1"
	}
	r.env = append(r.env, childEnvTopics+"="+string(topics), childEnvCreate+"="+create)
	return r
}

// start starts a child process.
func (r *childRunner) start() *child {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started++
	c := &child{n: r.started, logf: filepath.Join(r.dir, fmt.Sprintf("child-%d.log", r.started)), done: make(chan struct{})}
	f, err := os.Create(c.logf)
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	os.Remove(r.status) // the new child writes its own
	c.cmd = exec.Command(os.Args[0], "-test.run=^TestPipelineChildProcess$", "-test.count=1", "-test.timeout=5m")
	c.cmd.Env = r.env
	c.cmd.Stdout, c.cmd.Stderr = f, f
	if err := c.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.children = append(r.children, c)
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	return c
}

// kill sends SIGKILL and waits for the child to die.
func (r *childRunner) kill(c *child) {
	r.t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		r.t.Fatalf("kill child %d: %v", c.n, err)
	}
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		r.t.Fatalf("child %d did not die within 10s of SIGKILL", c.n)
	}
}

// stop sends SIGTERM and checks that the child stops cleanly.
func (r *childRunner) stop(c *child) {
	r.t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		r.t.Fatalf("stop child %d: %v", c.n, err)
	}
	select {
	case <-c.done:
		if c.err != nil {
			r.t.Errorf("child %d did not stop cleanly on SIGTERM: %v", c.n, c.err)
		}
	case <-time.After(30 * time.Second):
		r.t.Logf("child %d goroutines when it did not stop:\n%s", c.n, r.goroutineDump(c))
		r.t.Fatalf("child %d did not stop within 30s of SIGTERM", c.n)
	}
}

// goroutineDump asks a child that hangs for its goroutines (SIGQUIT makes
// the Go runtime print them and exit) and returns what it printed.
func (r *childRunner) goroutineDump(c *child) []byte {
	b, _ := os.ReadFile(c.logf)
	before := len(b)
	if err := c.cmd.Process.Signal(syscall.SIGQUIT); err != nil {
		return []byte("SIGQUIT: " + err.Error())
	}
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
	}
	b, _ = os.ReadFile(c.logf)
	if len(b) < before {
		return nil
	}
	return tail(b[before:], 200<<10)
}

// exited reports whether the child has exited (and fails the test if so:
// a child only ends when the test ends it).
func (r *childRunner) exited(c *child) bool {
	select {
	case <-c.done:
		if !c.told {
			c.told = true
			r.t.Errorf("child %d exited on its own: %v", c.n, c.err)
		}
		return true
	default:
		return false
	}
}

// waitReady waits until the child's workers for all partitions have
// started reading (its log says so), and a little more for their first
// fetches.
func (r *childRunner) waitReady(c *child, partitions int) {
	r.t.Helper()
	waitFor(r.t, 20*time.Second, fmt.Sprintf("child %d's partition workers", c.n), func() bool {
		b, _ := os.ReadFile(c.logf)
		return !r.exited(c) && bytes.Count(b, []byte("partition seeked to stored offsets")) >= partitions
	})
	time.Sleep(100 * time.Millisecond)
}

// offsets reads the child's status: the input offsets its store holds
// (nil before the child wrote any).
func (r *childRunner) offsets() map[string]map[int]int64 {
	b, err := os.ReadFile(r.status)
	if err != nil {
		return nil
	}
	var offs map[string]map[int]int64
	if err := json.Unmarshal(b, &offs); err != nil {
		r.t.Fatalf("status file: %v: %s", err, b)
	}
	return offs
}

func TestCrashRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("kills child processes; skipped with -short")
	}
	eachBroker(t, 4, testCrashRestart)
}

func testCrashRestart(t *testing.T, b testBroker) {
	members, days, kills, partitions := 400, 300, 6, int(b.Partitions)
	if os.Getenv(soakEnv) == "1" {
		members, days, kills = 1500, 730, 25
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(crashEnvSeed); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("%s: %v", crashEnvSeed, err)
		}
	}
	t.Logf("kill times seed %d (%s=%d replays them)", seed, crashEnvSeed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))

	b.allowShortSessions(t)
	topics := b.Topics
	gcfg, recs := genRecords(t, members, days, 42)
	cfg := faultConfig(b.Addr, "crash")
	b.Configure(&cfg) // the children's too: newChildRunnerFor
	final, until := faultTimes(cfg, gcfg.End())
	want := replayAlerts(t, newEngine(t), recs, until)
	if len(want) == 0 {
		t.Fatal("replay gives no alerts: the test would prove nothing")
	}

	steps := streamSteps(recs, topics, partitions)
	st := newStreamer(t, b.Addr, steps, kills+1)
	r := newChildRunnerFor(t, cfg, partitions)
	writeClock(t, r.clock, gcfg.End())
	started := time.Now()

	// Each child gets one segment of the events once its partition workers
	// run, every other one all at once (a backlog of several batches, so
	// kills land mid-batch, between commit and produce, between ack and
	// outbox delete) and the others spread over a second, and is killed at
	// a random moment soon after it has made progress (or after 4s
	// without: then wherever it is).
	//
	// No record is produced while a child's workers start: records
	// produced then can be applied out of order, and the alerts then
	// rightly differ from replay's. A worker's first fetch of one topic
	// can be older than its first fetch of the other; the first topic
	// then counts as caught up (as of its fetch) while records of it are
	// already waiting, and the other topic's later records are applied
	// first (worker.next). Seen here, with a burst produced while a child
	// started: 2 runs in 5 lost a segment_change and gained a
	// cross_sell_nudge (a flight's hotel booking applied after later
	// activity had moved the watermark past the cross-sell deadline).
	killedWhileFlowing := 0
	var lastSum int64
	for i := range kills {
		c := r.start()
		if i == 0 {
			awaitCreatedTopics(t, cfg, partitions)
		}
		r.waitReady(c, partitions)
		st.Release(time.Duration(i%2) * time.Second)
		deadline := time.Now().Add(4 * time.Second)
		for time.Now().Before(deadline) && !r.exited(c) {
			if offs := r.offsets(); offs != nil && sumOffsets(offs, nil) > lastSum {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(250 * time.Millisecond))))
		flowing := st.Flowing()
		r.kill(c)
		if flowing {
			killedWhileFlowing++
		}
		offs := r.offsets()
		n, _ := st.Written()
		t.Logf("kill %d after %v: %d records produced, %d committed (as last reported), events flowing: %v",
			i+1, time.Since(started).Round(time.Millisecond), n, sumOffsets(offs, nil), flowing)
		lastSum = max(lastSum, sumOffsets(offs, nil))
		// The segment goes on to its end before the next child starts:
		// records produced while the workers start could be applied out
		// of order (see above).
		waitFor(t, 30*time.Second, "the segment to be produced", func() bool { return !st.Flowing() })
	}

	c := r.start()
	r.waitReady(c, partitions)
	st.Release(time.Second)
	st.Wait(t, 30*time.Second)
	ends := allInputEnds(t, b.Addr, topics)
	waitFor(t, 60*time.Second, "the last child to consume the inputs", func() bool {
		return !r.exited(c) && offsetsReach(r.offsets(), ends)
	})
	writeClock(t, r.clock, final)
	got := awaitAlerts(t, b.Addr, topics, want, 60*time.Second)
	r.stop(c)

	dups := compareAlerts(t, want, got)
	if dlq := readTopic(t, b.Addr, topics.DeadLetter); len(dlq) > 0 {
		// Every record is read again only from the offsets committed with
		// the dedup markers: a duplicate here means they came apart.
		t.Errorf("%d dead letters (first: %s %s), want none", len(dlq), header(dlq[0], pipeline.HeaderReason), dlq[0].Value)
	}
	store, closeStore := openStoreAt(t, filepath.Join(r.dir, "state"))
	stats, err := store.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if stats.OutboxDepth != 0 {
		t.Errorf("outbox holds %d records after the last child stopped cleanly", stats.OutboxDepth)
	}
	if !offsetsReach(storeOffsets(t, store, partitions), ends) {
		t.Errorf("stored offsets %v do not reach the inputs' ends %v", storeOffsets(t, store, partitions), ends)
	}
	closeStore()
	flushed := 0 // children that found a previous one's outbox not empty
	for _, c := range r.children {
		b, _ := os.ReadFile(c.logf)
		if bytes.Contains(b, []byte("flushed outbox left by a previous run")) {
			flushed++
		}
	}
	if killedWhileFlowing < kills/3 {
		t.Errorf("only %d of %d kills happened while events were being produced", killedWhileFlowing, kills)
	}
	t.Logf("%d events, %d kills (%d while events flowed; %d restarts flushed an outbox left behind), %d alerts, %d duplicate deliveries, %v",
		len(recs), kills, killedWhileFlowing, flushed, len(want), dups, time.Since(started).Round(time.Millisecond))
}
