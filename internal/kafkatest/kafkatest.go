// Package kafkatest starts a real Apache Kafka (KRaft, from Maven Central jars)
// for tests, through scripts/kafka-local.sh. It needs java and, the first time,
// mvn; the jars are cached in $REPO/.cache/kafka (CHURNFLOW_KAFKA_CACHE).
//
// Tests that use it are gated on CHURNFLOW_REAL_KAFKA=1 (see Enabled).
package kafkatest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/churnflow/churnflow/internal/procstatus"
)

// EnvVar gates the real-broker tests.
const EnvVar = "CHURNFLOW_REAL_KAFKA"

// Enabled reports whether real-Kafka tests should run (CHURNFLOW_REAL_KAFKA=1).
func Enabled() bool { return os.Getenv(EnvVar) == "1" }

// Cluster is a running real Kafka cluster, owned by one test (Start,
// StartCluster) or by the test process (StartBackground, Shared).
type Cluster struct {
	Bootstrap string // 127.0.0.1:P1[,127.0.0.1:P2,...]
	Dir       string // scripts/kafka-local.sh --dir: node-N/{server.properties,kafka.log,pid}
	Nodes     int
	tb        testing.TB // nil for a background cluster
}

// Start starts a real Kafka cluster of nodes (1 or 3) brokers, each a
// combined KRaft broker and controller on loopback, in a fresh temporary
// directory, and returns its bootstrap list. The cluster is stopped when the
// test ends (SIGTERM, then SIGKILL; straight SIGKILL if the test failed), and
// killed by a watchdog if the test binary dies without running its cleanups.
func Start(t testing.TB, nodes int) (bootstrap string) {
	t.Helper()
	return StartCluster(t, nodes).Bootstrap
}

// StartCluster is Start returning the Cluster, for fault tests.
func StartCluster(t testing.TB, nodes int) *Cluster {
	t.Helper()
	c, _ := startCluster(t, nodes)
	return c
}

// startCluster starts a cluster owned by t with extra arguments to
// scripts/kafka-local.sh up, and returns the KEY=VALUE lines it printed.
func startCluster(t testing.TB, nodes int, extra ...string) (*Cluster, map[string]string) {
	t.Helper()
	script := Script()
	if _, err := os.Stat(script); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	if _, err := exec.LookPath("java"); err != nil {
		t.Fatalf("kafkatest: java not found on PATH (real Kafka needs OpenJDK 17+): %v", err)
	}

	t0 := time.Now()
	if out, err := run(script, 15*time.Minute, "fetch"); err != nil {
		t.Fatalf("kafkatest: fetching Kafka jars: %v\n%s", err, out)
	}
	fetch := time.Since(t0)

	dir := t.TempDir() // removed after our cleanup below (cleanups run LIFO)
	c := &Cluster{Dir: dir, Nodes: nodes, tb: t}
	t.Cleanup(c.stop)

	t1 := time.Now()
	args := append([]string{"up", "--nodes", strconv.Itoa(nodes), "--dir", dir,
		"--owner-pid", strconv.Itoa(os.Getpid())}, extra...)
	out, err := run(script, 3*time.Minute, args...)
	if err != nil {
		t.Fatalf("kafkatest: starting %d-node Kafka: %v\n%s", nodes, err, out)
	}
	lines := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			lines[k] = v
		}
	}
	c.Bootstrap = lines["BOOTSTRAP"]
	if c.Bootstrap == "" {
		t.Fatalf("kafkatest: no BOOTSTRAP= line from %s up:\n%s", script, out)
	}
	t.Logf("kafkatest: %d-node Kafka at %s: jars ready in %v, up in %v (format+start+ready), broker RSS %s",
		nodes, c.Bootstrap, fetch.Round(time.Millisecond), time.Since(t1).Round(time.Millisecond), c.rss())
	return c, lines
}

// Kill stops node n (1-based) with SIGKILL (hard) or SIGTERM. For
// clusters that one test owns (StartCluster).
func (c *Cluster) Kill(n int, hard bool) {
	c.mustOwnTest()
	c.tb.Helper()
	sig := "TERM"
	if hard {
		sig = "KILL"
	}
	if out, err := run(Script(), time.Minute, "kill", "--dir", c.Dir, "--node", strconv.Itoa(n), "--signal", sig); err != nil {
		c.tb.Fatalf("kafkatest: kill node %d: %v\n%s", n, err, out)
	}
}

// Restart starts a stopped node n again with its data; returns once it
// listens. For clusters that one test owns (StartCluster).
func (c *Cluster) Restart(n int) {
	c.mustOwnTest()
	c.tb.Helper()
	if out, err := run(Script(), 3*time.Minute, "start", "--dir", c.Dir, "--node", strconv.Itoa(n)); err != nil {
		c.tb.Fatalf("kafkatest: restart node %d: %v\n%s", n, err, out)
	}
}

// RestartNodes starts several stopped nodes again together, with their
// data, and returns once every one listens. After a whole-cluster outage
// restart the nodes with one call: a combined broker and controller
// restarted alone opens its listener only once a majority of the
// controller quorum runs (Restart would wait for that in vain), and gives
// up after Kafka's initial.broker.registration.timeout.ms (60 s).
func (c *Cluster) RestartNodes(nodes ...int) {
	c.mustOwnTest()
	c.tb.Helper()
	outs := make([][]byte, len(nodes))
	errs := make([]error, len(nodes))
	done := make(chan int)
	for i, n := range nodes {
		go func() {
			outs[i], errs[i] = run(Script(), 3*time.Minute, "start", "--dir", c.Dir, "--node", strconv.Itoa(n))
			done <- i
		}()
	}
	for range nodes {
		<-done
	}
	for i, n := range nodes {
		if errs[i] != nil {
			c.tb.Fatalf("kafkatest: restart node %d: %v\n%s", n, errs[i], outs[i])
		}
	}
}

func (c *Cluster) mustOwnTest() {
	if c.tb == nil {
		panic("kafkatest: Kill and Restart are for a cluster one test owns (StartCluster), not a shared one")
	}
}

func (c *Cluster) stop() {
	failed := c.tb.Failed()
	if failed {
		c.tb.Logf("%s", c.logTails(40))
	}
	t0 := time.Now()
	if err := c.down(failed); err != nil {
		c.tb.Errorf("%v", err)
		return
	}
	c.tb.Logf("kafkatest: Kafka stopped in %v", time.Since(t0).Round(time.Millisecond))
}

// down stops every node: SIGTERM and a wait, or straight SIGKILL.
func (c *Cluster) down(kill bool) error {
	args := []string{"down", "--dir", c.Dir}
	if kill {
		args = append(args, "--kill")
	}
	if out, err := run(Script(), 2*time.Minute, args...); err != nil {
		return fmt.Errorf("kafkatest: stopping Kafka: %v\n%s", err, out)
	}
	return nil
}

// logTails returns the last lines of every node's log.
func (c *Cluster) logTails(lines int) string {
	var b strings.Builder
	for n := 1; n <= c.Nodes; n++ {
		fmt.Fprintf(&b, "kafkatest: last lines of node %d log:\n%s\n", n, tail(filepath.Join(c.Dir, fmt.Sprintf("node-%d", n), "kafka.log"), lines))
	}
	return b.String()
}

// rss is the resident set size of each running node, from /proc.
func (c *Cluster) rss() string {
	var parts []string
	for n := 1; n <= c.Nodes; n++ {
		pid, err := os.ReadFile(filepath.Join(c.Dir, fmt.Sprintf("node-%d", n), "pid"))
		if err != nil {
			continue
		}
		if rss := procstatus.Read(strings.TrimSpace(string(pid)), "VmRSS"); rss >= 0 {
			parts = append(parts, fmt.Sprintf("%d MiB", rss>>20))
		}
	}
	return strings.Join(parts, ", ")
}

// Script is the path of scripts/kafka-local.sh in this checkout.
func Script() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "scripts", "kafka-local.sh")
}

// run returns stdout; on error, stdout and stderr together.
func run(script string, timeout time.Duration, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// The brokers run in their own sessions (setsid) and do not hold our pipes
	// open, so Wait returns when the script exits.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return append(stdout.Bytes(), stderr.Bytes()...), err
	}
	return stdout.Bytes(), nil
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}
