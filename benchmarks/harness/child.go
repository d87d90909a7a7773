package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/churnflow/churnflow/internal/procstatus"
)

// child is a process the harness started: a phase of churnflow, the
// embedded broker or the Kafka Streams peer. Its stdout lines arrive on
// lines; its stderr goes to a log file in the work directory.
type child struct {
	name    string
	cmd     *exec.Cmd
	started time.Time
	lines   chan string
	exited  chan struct{}
	waitErr error
	logPath string
}

// usage is what the kernel accounted to a child that has exited.
type usage struct {
	CPUSeconds float64
	PeakRSS    int64 // bytes
	// MajorFaults counts the page faults that waited for the disk: with
	// the member cache's misses reading Badger's tables through memory
	// maps, the reads of pages no longer in the page cache.
	MajorFaults int64
	Wall        time.Duration
}

// startChild starts name's process, with stdout read line by line and
// stderr written to dir/name.log.
func startChild(dir, name string, argv []string, env []string) (*child, error) {
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	c := &child{name: name, cmd: cmd, lines: make(chan string, 1024), exited: make(chan struct{}), logPath: logPath}
	c.started = time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		io.Copy(io.Discard, out)
		close(c.lines)
		c.waitErr = cmd.Wait()
		logf.Close()
		close(c.exited)
	}()
	return c, nil
}

// next returns the next stdout line with prefix (the prefix cut off),
// skipping others; it fails when the child exits first or timeout passes.
func (c *child) next(ctx context.Context, prefix string, timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				<-c.exited
				return "", fmt.Errorf("%s exited before printing %q: %v%s", c.name, prefix, c.waitErr, c.tail())
			}
			if rest, found := strings.CutPrefix(line, prefix); found {
				return strings.TrimSpace(rest), nil
			}
		case <-t.C:
			return "", fmt.Errorf("%s: no %q within %v%s", c.name, prefix, timeout, c.tail())
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// result waits for the phase's RESULT line and the exit.
func (c *child) result(ctx context.Context, timeout time.Duration) (PhaseResult, usage, error) {
	var res PhaseResult
	line, err := c.next(ctx, "RESULT ", timeout)
	if err != nil {
		c.kill()
		return res, usage{}, err
	}
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		c.kill()
		return res, usage{}, fmt.Errorf("%s: result %q: %w", c.name, line, err)
	}
	u, err := c.wait(ctx, time.Minute)
	if res.PeakRSS > 0 {
		u.PeakRSS = res.PeakRSS // the phase's own, not the harness's (see PhaseResult)
	}
	return res, u, err
}

// stop sends SIGTERM and waits for the exit. An exit status of 143 (128 +
// SIGTERM: how the JVM exits after running its shutdown hooks) is a clean
// stop, as is death by the signal itself.
func (c *child) stop(ctx context.Context, timeout time.Duration) (usage, error) {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	u, err := c.wait(ctx, timeout)
	var exit *exec.ExitError
	if errors.As(c.waitErr, &exit) && exit.ExitCode() == 128+int(syscall.SIGTERM) {
		err = nil
	}
	return u, err
}

// wait waits for the exit and returns the child's resource usage.
func (c *child) wait(ctx context.Context, timeout time.Duration) (usage, error) {
	go func() {
		for range c.lines {
		}
	}()
	select {
	case <-c.exited:
	case <-time.After(timeout):
		c.kill()
		return usage{}, fmt.Errorf("%s did not exit within %v", c.name, timeout)
	case <-ctx.Done():
		c.kill()
		return usage{}, ctx.Err()
	}
	u := usage{Wall: time.Since(c.started)}
	if ru, ok := c.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		u.CPUSeconds = tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
		u.PeakRSS = ru.Maxrss * 1024 // kilobytes on Linux
		u.MajorFaults = ru.Majflt
	}
	var exit *exec.ExitError
	if c.waitErr != nil && !(errors.As(c.waitErr, &exit) && exit.Sys().(syscall.WaitStatus).Signaled()) {
		return u, fmt.Errorf("%s: %w%s", c.name, c.waitErr, c.tail())
	}
	return u, nil
}

// kill ends the child's whole process group at once.
func (c *child) kill() {
	if c.cmd.Process != nil {
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-c.exited:
		case <-time.After(10 * time.Second):
		}
	}
}

// tail returns the end of the child's log, for errors.
func (c *child) tail() string {
	b, err := os.ReadFile(c.logPath)
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return "\n--- " + c.logPath + " (end) ---\n" + string(b)
}

func tvSeconds(tv syscall.Timeval) float64 { return float64(tv.Sec) + float64(tv.Usec)/1e6 }

// CPUShares is the CPU time spent over a window, seconds, by the
// pipeline's process, the embedded broker's (-1 with an external cluster,
// whose processes the harness does not know) and the harness (the load
// generator), against the window's wall time on all the cores. (The
// machine's own busy time in /proc/stat is counted in ticks per core,
// differently from the processes' times: in a 2 s window it came out
// below their sum, so it is not reported.)
type CPUShares struct {
	Wall          float64 `json:"wall_seconds"`
	Cores         int     `json:"cores"`
	Pipeline      float64 `json:"pipeline"`
	Broker        float64 `json:"broker"`
	LoadGenerator float64 `json:"load_generator"`
}

func (u *CPUShares) brokerText() string {
	if u.Broker < 0 {
		return "not measured (external)"
	}
	return fmt.Sprintf("%.1f s", u.Broker)
}

// cpuWindow is a CPUShares window being measured.
type cpuWindow struct {
	pipeline, broker string // pids; broker "" when external
	start            time.Time
	pl, br, lg       float64
}

// startCPU starts measuring the CPU of the pipeline's child c, the
// embedded broker and this process.
func (h *run) startCPU(c *child) *cpuWindow {
	w := &cpuWindow{pipeline: strconv.Itoa(c.cmd.Process.Pid), start: time.Now()}
	if h.broker != nil {
		w.broker = strconv.Itoa(h.broker.cmd.Process.Pid)
	}
	w.pl, w.br, w.lg = procstatus.CPUSeconds(w.pipeline), w.brokerCPU(), procstatus.CPUSeconds("self")
	return w
}

func (w *cpuWindow) brokerCPU() float64 {
	if w.broker == "" {
		return -1
	}
	return procstatus.CPUSeconds(w.broker)
}

// end returns the window's shares; nil if /proc could not tell.
func (w *cpuWindow) end() *CPUShares {
	pl, br, lg := procstatus.CPUSeconds(w.pipeline), w.brokerCPU(), procstatus.CPUSeconds("self")
	if pl < 0 || w.pl < 0 || lg < 0 || w.lg < 0 {
		return nil
	}
	u := &CPUShares{Wall: time.Since(w.start).Seconds(), Cores: runtime.NumCPU(), Pipeline: pl - w.pl, Broker: -1, LoadGenerator: lg - w.lg}
	if br >= 0 && w.br >= 0 {
		u.Broker = br - w.br
	}
	return u
}

// idle is the cores' time in the window that none of the three used (the
// kernel, other processes and idleness), seconds.
func (u *CPUShares) idle() float64 {
	return u.Wall*float64(u.Cores) - u.Pipeline - max(u.Broker, 0) - u.LoadGenerator
}
