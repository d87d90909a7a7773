package kafkatest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// StartBackground starts a real Kafka cluster of nodes (1 or 3) brokers
// owned by the test process rather than by one test: for a cluster that
// several tests share (see Shared). It is stopped by Stop, or, if the
// process dies first (a test timeout's panic, SIGKILL), killed by the
// watchdog of scripts/kafka-local.sh within about a second. logf (may be
// nil) receives progress lines.
func StartBackground(nodes int, logf func(format string, args ...any)) (*Cluster, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	script := Script()
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("kafkatest: %w", err)
	}
	t0 := time.Now()
	if out, err := run(script, 15*time.Minute, "fetch"); err != nil {
		return nil, fmt.Errorf("kafkatest: fetching Kafka jars: %v\n%s", err, out)
	}
	fetch := time.Since(t0)
	dir, err := os.MkdirTemp("", "kafkatest-")
	if err != nil {
		return nil, fmt.Errorf("kafkatest: %w", err)
	}
	c := &Cluster{Dir: dir, Nodes: nodes}
	t1 := time.Now()
	out, err := run(script, 3*time.Minute, "up", "--nodes", strconv.Itoa(nodes), "--dir", dir,
		"--owner-pid", strconv.Itoa(os.Getpid()))
	if err != nil {
		c.down(true) // whatever started
		os.RemoveAll(dir)
		return nil, fmt.Errorf("kafkatest: starting %d-node Kafka: %v\n%s", nodes, err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "BOOTSTRAP="); ok {
			c.Bootstrap = strings.TrimSpace(v)
		}
	}
	if c.Bootstrap == "" {
		c.down(true)
		os.RemoveAll(dir)
		return nil, fmt.Errorf("kafkatest: no BOOTSTRAP= line from %s up:\n%s", script, out)
	}
	logf("kafkatest: %d-node Kafka at %s (shared): jars ready in %v, up in %v (format+start+ready), broker RSS %s",
		nodes, c.Bootstrap, fetch.Round(time.Millisecond), time.Since(t1).Round(time.Millisecond), c.rss())
	return c, nil
}

// Stop stops a cluster started by StartBackground (SIGTERM, then SIGKILL;
// straight SIGKILL when kill is set) and removes its directory. When
// failed is set, it first writes the last lines of every node's log to
// standard error.
func (c *Cluster) Stop(kill, failed bool) error {
	if failed {
		fmt.Fprint(os.Stderr, c.logTails(60))
	}
	if err := c.down(kill); err != nil {
		return err
	}
	return os.RemoveAll(c.Dir)
}

// The cluster Shared hands out.
var shared struct {
	mu      sync.Mutex
	c       *Cluster
	err     error
	started time.Duration
}

// Shared returns the bootstrap address of a single-node cluster shared by
// every test of the test binary. The first call starts it (about 10 s; the
// test is told); later calls return it at once. If it cannot start, every
// caller fails. The package's TestMain must call StopShared after m.Run;
// if the binary dies without it, the watchdog kills the broker.
//
// Tests sharing it must not collide: each uses its own topic names and
// consumer groups.
func Shared(t testing.TB) string {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.c == nil && shared.err == nil {
		t0 := time.Now()
		shared.c, shared.err = StartBackground(1, t.Logf)
		shared.started = time.Since(t0)
	}
	if shared.err != nil {
		t.Fatalf("kafkatest: the shared cluster did not start: %v", shared.err)
	}
	return shared.c.Bootstrap
}

// StopShared stops the cluster Shared started, if any. failed (the test
// binary's tests failed) writes its log's last lines to standard error
// and stops it with SIGKILL.
func StopShared(failed bool) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.c == nil {
		return
	}
	t0 := time.Now()
	if err := shared.c.Stop(failed, failed); err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "kafkatest: shared Kafka (started in %v) stopped in %v\n",
			shared.started.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	}
	shared.c = nil
	shared.err = fmt.Errorf("stopped")
}
