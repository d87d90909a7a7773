package state_test

// The crash test: a child process (this test binary, re-executed) commits
// batches of synthetic events as fast as it can, the parent kills it with
// SIGKILL at a random moment, reopens the store and checks that the
// committed input offset and everything else in the store agree exactly:
// member states, the timers index, dedup markers and the outbox all describe
// events 0..N-1 and nothing after, for the offset N stored with them.
//
// CHURNFLOW_CRASH_CYCLES sets the number of kill cycles (default 25) for
// longer soak runs; CHURNFLOW_CRASH_SEED replays a failing run (the seed is
// logged).

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/churnflow/churnflow/operators"
	"github.com/churnflow/churnflow/state"
)

const (
	crashEnvDir    = "CHURNFLOW_CRASH_DIR"    // child: the state directory
	crashEnvSeed   = "CHURNFLOW_CRASH_SEED"   // child: batch sizes and acks; parent: kill times
	crashEnvUntil  = "CHURNFLOW_CRASH_UNTIL"  // child: stop cleanly at this offset
	crashEnvCycles = "CHURNFLOW_CRASH_CYCLES" // parent: number of kill cycles

	crashMembers   = 5000
	crashTopic     = "in"
	crashPartition = state.Partition(0)
	crashBase      = int64(1_767_225_600) // 2026-01-01T00:00:00Z
	crashReady     = "CRASH-CHILD-READY"

	crashDefaultCycles = 25
	crashFinalEvents   = 10_000 // events the last, unkilled child commits
)

// Event k of the synthetic stream touches member k % crashMembers. Most
// events bump the member's counters and reschedule its timer (some clear
// it); every 97th erases the member; every 10th appends an outbox record.

func crashMemberIndex(k int64) int64 { return k % crashMembers }

func crashMember(k int64) operators.MemberID {
	return operators.MemberID(fmt.Sprintf("M%05d", crashMemberIndex(k)))
}

func crashEventID(k int64) string { return "ev-" + strconv.FormatInt(k, 10) }

func crashIsDelete(k int64) bool { return k%97 == 50 }

func crashHasOutbox(k int64) bool { return k%10 == 0 }

// crashDue is the member's next due time after event k: 0 (no timer) for
// one event in 7, else a time that jumps around, so timers move both ways.
func crashDue(k int64) int64 {
	if k%7 == 3 {
		return 0
	}
	return crashBase + 86400 + (k*7919)%1_000_003
}

// crashApply applies update event k to s.
func crashApply(s *operators.MemberState, k int64) {
	s.Bookings++
	s.PointsBalance += k
	s.Clock = crashBase + k
	s.Due = crashDue(k)
}

func crashOutboxRecord(k int64) state.OutboxRecord {
	return state.OutboxRecord{
		Topic:   "churnflow.alerts.test",
		Key:     []byte(crashMember(k)),
		Value:   []byte(strconv.FormatInt(k, 10)),
		Headers: map[string]string{"alert_id": "a-" + strconv.FormatInt(k, 10)},
	}
}

func crashOptions(dir string) state.Options {
	opts := state.DefaultOptions(dir)
	opts.GCInterval = 200 * time.Millisecond // let value-log GC run while we kill
	return opts
}

// TestCrashChild is the child process of TestCrash; it skips unless run by it.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnvDir)
	if dir == "" {
		t.Skip("child process of TestCrash only")
	}
	seed, err := strconv.ParseUint(os.Getenv(crashEnvSeed), 10, 64)
	if err != nil {
		t.Fatalf("bad %s: %v", crashEnvSeed, err)
	}
	until := int64(-1)
	if v := os.Getenv(crashEnvUntil); v != "" {
		if until, err = strconv.ParseInt(v, 10, 64); err != nil {
			t.Fatalf("bad %s: %v", crashEnvUntil, err)
		}
	}
	if err := crashChild(dir, seed, until); err != nil {
		t.Fatal(err)
	}
}

func crashChild(dir string, seed uint64, until int64) error {
	ctx := context.Background()
	st, err := state.Open(crashOptions(dir))
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer st.Close()
	ps := st.Partition(crashPartition)
	offs, err := ps.Offsets()
	if err != nil {
		return fmt.Errorf("offsets: %w", err)
	}
	next := offs[crashTopic]
	fmt.Printf("%s offset=%d\n", crashReady, next)
	ppid := os.Getppid()
	deadline := time.Now().Add(2 * time.Minute) // never outlive a lost parent for long
	rng := rand.New(rand.NewPCG(seed, uint64(next)))
	for until < 0 || next < until {
		if until < 0 && (os.Getppid() != ppid || time.Now().After(deadline)) {
			return errors.New("parent gone or deadline passed")
		}
		n := int64(100 + rng.IntN(401))
		if until >= 0 {
			n = min(n, until-next)
		}
		b := ps.NewBatch()
		// The next event to read must not be marked seen: its marker is
		// committed with the offset past it, never before.
		if seen, err := b.Seen(crashEventID(next)); err != nil || seen {
			b.Discard()
			return fmt.Errorf("Seen(%s) = %v, %v at committed offset %d: want false, nil", crashEventID(next), seen, err, next)
		}
		// Fire timers as the pipeline does: the members Due reports (its
		// entries are lazy, so some are not due yet) are put back, here
		// unchanged, which moves their entries to their Due.
		if rng.IntN(2) == 0 {
			if err := crashFireTimers(ctx, ps, b, next, n, rng); err != nil {
				b.Discard()
				return err
			}
		}
		for k := next; k < next+n; k++ {
			id := crashMember(k)
			var s operators.MemberState // a new value per event: Put may keep it until Commit
			found, err := ps.Get(id, &s)
			if err != nil {
				b.Discard()
				return fmt.Errorf("get %s: %w", id, err)
			}
			var prevDue int64
			if found {
				prevDue = s.Due
			}
			if crashIsDelete(k) {
				if found {
					b.Delete(id, prevDue)
				}
			} else {
				if !found {
					s = operators.MemberState{}
				}
				crashApply(&s, k)
				b.Put(id, &s, prevDue)
			}
			b.MarkSeen(id, crashEventID(k))
			if crashHasOutbox(k) {
				b.Append(id, crashOutboxRecord(k))
			}
		}
		b.SetOffset(crashTopic, next+n)
		if err := b.Commit(ctx); err != nil {
			return fmt.Errorf("commit of events %d..%d: %w", next, next+n-1, err)
		}
		next += n
		if rng.IntN(3) == 0 {
			if err := crashAckSome(ctx, ps, rng); err != nil {
				return err
			}
		}
	}
	return st.Close()
}

// crashFireTimers puts back, unchanged, up to 300 members that Due reports
// before a random watermark, except those events next..next+n-1 touch
// (their state changes in this batch).
func crashFireTimers(ctx context.Context, ps *state.PartitionStore, b *state.Batch, next, n int64, rng *rand.Rand) error {
	// The watermark rises with the offset, through the range of due times
	// (crashDue), so entries above it stay lazy and those below it move.
	wm := crashBase + 86400 + 3*next + rng.Int64N(10_000)
	var due []operators.MemberID
	err := ps.Due(ctx, wm, 300, func(id operators.MemberID, _ int64) error {
		due = append(due, id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("due: %w", err)
	}
	for _, id := range due {
		i, err := strconv.ParseInt(strings.TrimPrefix(string(id), "M"), 10, 64)
		if err != nil {
			return fmt.Errorf("due: bad member %q", id)
		}
		if (i-crashMemberIndex(next)+crashMembers)%crashMembers < n {
			continue // an event of this batch touches it
		}
		var s operators.MemberState
		found, err := ps.Get(id, &s)
		if err != nil {
			return fmt.Errorf("get %s: %w", id, err)
		}
		if !found {
			return fmt.Errorf("due reported %s, which has no state", id)
		}
		if s.Due == 0 {
			return fmt.Errorf("due reported %s, whose Due is 0", id)
		}
		b.Put(id, &s, s.Due)
	}
	return nil
}

var errStopIteration = errors.New("stop")

// crashAckSome acknowledges a random subset of the oldest outbox records,
// as a producer whose sends complete out of order would.
func crashAckSome(ctx context.Context, ps *state.PartitionStore, rng *rand.Rand) error {
	var seqs []uint64
	err := ps.Outbox(ctx, func(seq uint64, _ state.OutboxRecord) error {
		seqs = append(seqs, seq)
		if len(seqs) == 200 {
			return errStopIteration
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopIteration) {
		return fmt.Errorf("outbox: %w", err)
	}
	var ack []uint64
	for _, s := range seqs {
		if rng.IntN(4) != 0 {
			ack = append(ack, s)
		}
	}
	if len(ack) > 0 {
		if err := ps.Ack(ack...); err != nil {
			return fmt.Errorf("ack: %w", err)
		}
	}
	return nil
}

// crashProc is a running child.
type crashProc struct {
	cmd    *exec.Cmd
	done   chan struct{} // closed when Wait returned
	err    error         // Wait's result, valid after done
	ready  chan int64    // the offset the child started from
	mu     sync.Mutex
	output strings.Builder // stdout and stderr
}

func (p *crashProc) write(b []byte) {
	p.mu.Lock()
	p.output.Write(b)
	p.mu.Unlock()
}

func (p *crashProc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.String()
}

type procWriter struct{ p *crashProc }

func (w procWriter) Write(b []byte) (int, error) { w.p.write(b); return len(b), nil }

// startCrashChild starts the child; t.Cleanup kills and reaps it whatever
// happens to the test.
func startCrashChild(t *testing.T, dir string, seed uint64, until int64) *crashProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1", "-test.v", "-test.timeout=5m")
	cmd.Env = append(os.Environ(),
		crashEnvDir+"="+dir,
		crashEnvSeed+"="+strconv.FormatUint(seed, 10),
		crashEnvUntil+"=", // unset unless given below
	)
	if until >= 0 {
		cmd.Env[len(cmd.Env)-1] = crashEnvUntil + "=" + strconv.FormatInt(until, 10)
	}
	p := &crashProc{cmd: cmd, done: make(chan struct{}), ready: make(chan int64, 1)}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = procWriter{p}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		r := bufio.NewReader(stdout)
		for {
			line, err := r.ReadString('\n')
			p.write([]byte(line))
			if rest, ok := strings.CutPrefix(line, crashReady+" offset="); ok {
				if off, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64); err == nil {
					p.ready <- off
				}
			}
			if err != nil {
				io.Copy(io.Discard, r)
				return
			}
		}
	}()
	go func() {
		<-copied // Wait closes the pipe: read everything first
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// kill sends SIGKILL and waits; it reports whether the child was still
// running (a child that already exited failed or finished on its own).
func (p *crashProc) kill() (wasRunning bool) {
	select {
	case <-p.done:
		return false
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true
		}
	}
	return false
}

func TestCrash(t *testing.T) {
	if os.Getenv(crashEnvDir) != "" {
		t.Skip("in the child")
	}
	cycles := crashDefaultCycles
	if v := os.Getenv(crashEnvCycles); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			t.Fatalf("bad %s=%q", crashEnvCycles, v)
		}
		cycles = n
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(crashEnvSeed); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("bad %s=%q", crashEnvSeed, v)
		}
	}
	t.Logf("%s=%d %s=%d", crashEnvSeed, seed, crashEnvCycles, cycles)
	rng := rand.New(rand.NewPCG(seed, 1))
	dir := t.TempDir()

	var committed int64 // offset after the previous cycle
	progressed, early := 0, 0
	for cycle := 0; cycle < cycles; cycle++ {
		p := startCrashChild(t, dir, rng.Uint64(), -1)
		// Most kills land while the child commits (a random 50-400 ms after
		// it opened the store); one in five lands at a random instant from
		// its start, which may be during Open and its recovery.
		if rng.IntN(5) == 0 {
			time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
			early++
		} else {
			select {
			case off := <-p.ready:
				if off != committed {
					t.Fatalf("cycle %d: child started at offset %d, parent last saw %d", cycle, off, committed)
				}
			case <-p.done:
				t.Fatalf("cycle %d: child exited before opening the store: %v\n%s", cycle, p.err, p.Output())
			case <-time.After(30 * time.Second):
				t.Fatalf("cycle %d: child did not open the store within 30 s\n%s", cycle, p.Output())
			}
			if cycle == 0 {
				// The directory is held by the child: Open must refuse it.
				if s, err := state.Open(crashOptions(dir)); err == nil {
					s.Close()
					t.Errorf("Open of a directory held by another process succeeded, want ErrLocked")
				} else if !errors.Is(err, state.ErrLocked) {
					t.Errorf("Open of a directory held by another process: %v, want ErrLocked", err)
				}
			}
			time.Sleep(time.Duration(50+rng.IntN(351)) * time.Millisecond)
		}
		if !p.kill() {
			t.Fatalf("cycle %d: child was not running when killed: %v\n%s", cycle, p.err, p.Output())
		}
		n := checkCrashInvariant(t, dir, committed, fmt.Sprintf("after kill %d", cycle))
		if n > committed {
			progressed++
		}
		committed = n
	}
	t.Logf("%d kill cycles (%d early), %d with progress; offset %d", cycles, early, progressed, committed)
	if cycles >= 5 && progressed < cycles/2 {
		t.Errorf("only %d of %d kill cycles committed anything: the kills are not landing during commits", progressed, cycles)
	}

	// Finally a child that runs to a fixed offset and closes cleanly.
	until := committed + crashFinalEvents
	p := startCrashChild(t, dir, rng.Uint64(), until)
	select {
	case <-p.done:
	case <-time.After(3 * time.Minute):
		p.kill()
		t.Fatalf("final child did not finish %d events within 3 minutes\n%s", crashFinalEvents, p.Output())
	}
	if p.err != nil {
		t.Fatalf("final child: %v\n%s", p.err, p.Output())
	}
	if n := checkCrashInvariant(t, dir, committed, "after clean run"); n != until {
		t.Fatalf("after clean run: offset %d, want %d", n, until)
	}
	// Reopening a cleanly closed store changes nothing.
	checkCrashInvariant(t, dir, until, "after reopen")
}

// crashExpect is what events 0..N-1 imply for one member.
type crashExpect struct {
	exists   bool
	bookings uint32
	points   int64
	clock    int64
	due      int64
}

// checkCrashInvariant opens the store in dir, checks that everything in it
// agrees with its committed offset N (which must not be below prev), closes
// it and returns N.
func checkCrashInvariant(t *testing.T, dir string, prev int64, when string) int64 {
	t.Helper()
	ctx := context.Background()
	st, err := state.Open(crashOptions(dir))
	if err != nil {
		t.Fatalf("%s: reopen: %v", when, err)
	}
	defer func() {
		if err := st.Close(); err != nil {
			t.Errorf("%s: close: %v", when, err)
		}
	}()
	ps := st.Partition(crashPartition)
	offs, err := ps.Offsets()
	if err != nil {
		t.Fatalf("%s: offsets: %v", when, err)
	}
	n := offs[crashTopic]
	if n < prev {
		t.Fatalf("%s: committed offset went back from %d to %d", when, prev, n)
	}
	for topic, off := range offs {
		if topic != crashTopic {
			t.Errorf("%s: unexpected offset %q=%d", when, topic, off)
		}
	}

	// What events 0..n-1 imply, recomputed naively.
	exp := make([]crashExpect, crashMembers)
	for k := int64(0); k < n; k++ {
		e := &exp[crashMemberIndex(k)]
		if crashIsDelete(k) {
			*e = crashExpect{}
			continue
		}
		e.exists = true
		e.bookings++
		e.points += k
		e.clock = crashBase + k
		e.due = crashDue(k)
	}
	wantMembers, wantTimers := 0, 0
	for _, e := range exp {
		if e.exists {
			wantMembers++
			if e.due != 0 {
				wantTimers++
			}
		}
	}

	fails := 0
	failf := func(format string, args ...any) {
		t.Helper()
		if fails++; fails <= 10 {
			t.Errorf("%s (offset %d): "+format, append([]any{when, n}, args...)...)
		}
	}
	defer func() {
		if fails > 0 {
			t.Fatalf("%s: %d mismatches", when, fails)
		}
	}()
	memberIndex := func(id operators.MemberID) int {
		i, err := strconv.Atoi(strings.TrimPrefix(string(id), "M"))
		if err != nil || i < 0 || i >= crashMembers || crashMember(int64(i)) != id {
			return -1
		}
		return i
	}

	// Member states.
	seen := make([]bool, crashMembers)
	err = ps.Range(ctx, func(id operators.MemberID, s *operators.MemberState) error {
		i := memberIndex(id)
		if i < 0 {
			failf("unknown member %q", id)
			return nil
		}
		if seen[i] {
			failf("member %s listed twice", id)
		}
		seen[i] = true
		e := exp[i]
		switch {
		case !e.exists:
			failf("member %s exists (bookings %d), want none", id, s.Bookings)
		case s.Bookings != e.bookings || s.PointsBalance != e.points || s.Clock != e.clock || s.Due != e.due:
			failf("member %s: bookings %d points %d clock %d due %d, want %d %d %d %d",
				id, s.Bookings, s.PointsBalance, s.Clock, s.Due, e.bookings, e.points, e.clock, e.due)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: range: %v", when, err)
	}
	for i, e := range exp {
		if e.exists && !seen[i] {
			failf("member %s missing, want bookings %d", crashMember(int64(i)), e.bookings)
		}
	}
	// Get agrees with Range (a sample, including absent members).
	for i := 0; i < crashMembers; i += 97 {
		id := crashMember(int64(i))
		var s operators.MemberState
		found, err := ps.Get(id, &s)
		if err != nil {
			t.Fatalf("%s: get %s: %v", when, id, err)
		}
		if e := exp[i]; found != e.exists || (found && (s.Bookings != e.bookings || s.PointsBalance != e.points || s.Due != e.due)) {
			failf("Get(%s) = %v bookings %d points %d due %d, want %v %d %d %d", id, found, s.Bookings, s.PointsBalance, s.Due, e.exists, e.bookings, e.points, e.due)
		}
	}

	// Timers: exactly one entry per member with a due time, none for the
	// others. The index is lazy: an entry may be earlier than the member's
	// Due (a stale entry would be one later than it, or a second one).
	timers := make(map[operators.MemberID]int64, wantTimers)
	lastDue := int64(-1 << 63)
	lazy := 0
	err = ps.Due(ctx, 1<<62, 10*crashMembers, func(id operators.MemberID, due int64) error {
		if due < lastDue {
			failf("timers out of order: %d after %d", due, lastDue)
		}
		lastDue = due
		if old, dup := timers[id]; dup {
			failf("member %s has two timers: %d and %d (stale timer entry)", id, old, due)
		}
		timers[id] = due
		i := memberIndex(id)
		switch {
		case i < 0:
			failf("timer for unknown member %q", id)
		case !exp[i].exists:
			failf("timer %d for member %s, which does not exist", due, id)
		case exp[i].due == 0:
			failf("timer of member %s at %d, its state has no due time", id, due)
		case due > exp[i].due:
			failf("timer of member %s at %d, later than its state's due time %d (stale)", id, due, exp[i].due)
		case due < exp[i].due:
			lazy++
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: due: %v", when, err)
	}
	if len(timers) != wantTimers {
		failf("%d members with timers, want %d", len(timers), wantTimers)
	}
	t.Logf("%s: offset %d, %d timers, %d of them lazy (earlier than the Due)", when, n, len(timers), lazy)

	// Outbox: seqs strictly increasing, records only for events before n,
	// in event order.
	var lastSeq uint64
	lastK, depth := int64(-1), 0
	err = ps.Outbox(ctx, func(seq uint64, rec state.OutboxRecord) error {
		depth++
		if depth > 1 && seq <= lastSeq {
			failf("outbox seq %d after %d", seq, lastSeq)
		}
		lastSeq = seq
		k, err := strconv.ParseInt(string(rec.Value), 10, 64)
		if err != nil {
			failf("outbox record %d: bad value %q", seq, rec.Value)
			return nil
		}
		want := crashOutboxRecord(k)
		switch {
		case k >= n:
			failf("outbox record %d for event %d, past the committed offset", seq, k)
		case !crashHasOutbox(k) || k <= lastK:
			failf("outbox record %d for event %d after event %d", seq, k, lastK)
		case rec.Topic != want.Topic || string(rec.Key) != string(want.Key) || rec.Headers["alert_id"] != want.Headers["alert_id"]:
			failf("outbox record %d = %+v, want %+v", seq, rec, want)
		}
		lastK = k
		return nil
	})
	if err != nil {
		t.Fatalf("%s: outbox: %v", when, err)
	}

	// Dedup markers are committed with the offset: the last event read is
	// seen, the next one is not.
	b := ps.NewBatch()
	if n > 0 {
		if ok, err := b.Seen(crashEventID(n - 1)); err != nil || !ok {
			failf("Seen(%s) = %v, %v, want true", crashEventID(n-1), ok, err)
		}
	}
	if ok, err := b.Seen(crashEventID(n)); err != nil || ok {
		failf("Seen(%s) = %v, %v, want false", crashEventID(n), ok, err)
	}
	b.Discard()

	stats, err := st.Stats()
	if err != nil {
		t.Fatalf("%s: stats: %v", when, err)
	}
	if stats.Members != int64(wantMembers) || stats.Timers != int64(wantTimers) || stats.OutboxDepth != int64(depth) {
		failf("stats: members %d timers %d outbox %d, want %d %d %d", stats.Members, stats.Timers, stats.OutboxDepth, wantMembers, wantTimers, depth)
	}
	return n
}
