package replay

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/churnflow/churnflow/operators"
	"github.com/churnflow/churnflow/state"
)

var _ durable = (*BadgerStore)(nil)

// openState opens a small store in dir, closed at the end of the test.
func openState(t *testing.T, dir string) *state.Store {
	t.Helper()
	opts := state.DefaultOptions(dir)
	opts.MemoryBudget = 32 << 20
	opts.GCInterval = 0
	st, err := state.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// shuffledInput is the generated input in a shuffled line order, so that
// the sort (and its tie-breaking by input position) matters on resume.
func shuffledInput(members int) []byte {
	lines := genInput(21, members)
	rng := rand.New(rand.NewPCG(3, 5))
	rng.Shuffle(len(lines), func(i, j int) { lines[i], lines[j] = lines[j], lines[i] })
	return joinLines(lines)
}

func resumeMembers() int {
	if raceEnabled || testing.Short() {
		return 40
	}
	return 150
}

func sameSummary(t *testing.T, what string, got, want *Summary) {
	t.Helper()
	if got.Members != want.Members || got.Tombstones != want.Tombstones || got.Active != want.Active ||
		got.Sleeping != want.Sleeping || !reflect.DeepEqual(got.ByTier, want.ByTier) || !reflect.DeepEqual(got.BySegment, want.BySegment) {
		t.Errorf("%s: populations differ:\n got members %d/%d active %d sleeping %d %v %v\nwant members %d/%d active %d sleeping %d %v %v", what,
			got.Members, got.Tombstones, got.Active, got.Sleeping, got.ByTier, got.BySegment,
			want.Members, want.Tombstones, want.Active, want.Sleeping, want.ByTier, want.BySegment)
	}
}

// A replay on Badger gives the alerts and populations of one in memory,
// whatever the batch size, and leaves nothing in the outbox.
func TestBadgerStoreMatchesMemStore(t *testing.T) {
	input := shuffledInput(resumeMembers())
	ref := replay(t, Config{}, input)
	want := sortedLines(ref.out)
	for _, batch := range []int{DefaultBatchSize, 97, 5} {
		st := openState(t, t.TempDir())
		got := replay(t, Config{Store: NewBadgerStore(st.Partition(0)), BatchSize: batch}, input)
		diffLines(t, "badger", sortedLines(got.out), want)
		sameSummary(t, "badger", got.sum, ref.sum)
		stats, err := st.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if stats.OutboxDepth != 0 || stats.Members != int64(ref.sum.Members) {
			t.Errorf("batch %d: store stats %+v, want an empty outbox and %d members", batch, stats, ref.sum.Members)
		}
		cp, err := NewBadgerStore(st.Partition(0)).Checkpoint()
		if err != nil || !cp.Done || cp.Applied != ref.sum.Events || cp.InputBytes != int64(len(input)) {
			t.Errorf("batch %d: checkpoint %+v, %v", batch, cp, err)
		}
	}
}

var errStop = errors.New("stopped by the test")

// lineIDs returns the alert ids of JSONL alert lines, in order.
func lineIDs(t *testing.T, b []byte) []string {
	t.Helper()
	var ids []string
	for _, l := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		_, rest, ok := bytes.Cut(l, []byte(`{"alert_id":"`))
		id, _, ok2 := bytes.Cut(rest, []byte(`"`))
		if !ok || !ok2 {
			t.Fatalf("not an alert line: %s", l)
		}
		ids = append(ids, string(id))
	}
	return ids
}

// A replay stopped after a batch and resumed with the same store writes,
// over the two runs, exactly the alerts of one run straight through; an
// alert is written twice only when the first run wrote it but stopped
// before acknowledging it, and then it comes first in the second run.
func TestBadgerReplayResumes(t *testing.T) {
	input := shuffledInput(resumeMembers())
	const batch = 211
	// Until after the last event, so that the final timers give alerts.
	until := genStart.AddDate(2, 3, 0)
	straight := replay(t, Config{BatchSize: batch, Until: until}, input)
	want := sortedLines(straight.out)
	// The commits of a run straight through: one per batch, then the
	// final timers.
	batches := 0
	cfg := Config{Store: NewBadgerStore(openState(t, t.TempDir()).Partition(0)), BatchSize: batch, Until: until}
	cfg.afterCommit = func(step commitStep, n int) error {
		if step == stepAcked {
			batches = n
		}
		return nil
	}
	diffLines(t, "straight through on badger", sortedLines(replay(t, cfg, input).out), want)
	if batches < 6 {
		t.Fatalf("only %d commits", batches)
	}
	for _, tc := range []struct {
		name  string
		step  commitStep
		after int // stop in this batch
		// splitCommit: make the stopped batch look like a commit split
		// over transactions that stopped before its last one: its member
		// states, markers and alerts committed, the progress not.
		splitCommit bool
		sortMemory  int64
		newBatch    int // batch size of the second run
	}{
		{name: "acked", step: stepAcked, after: 2},
		{name: "written not acked", step: stepWritten, after: 3},
		{name: "committed not written", step: stepCommitted, after: 4, newBatch: 50},
		{name: "split commit", step: stepCommitted, after: 3, splitCommit: true},
		{name: "last batch", step: stepWritten, after: batches - 1},
		{name: "final timers", step: stepWritten, after: batches},
		{name: "final timers split", step: stepCommitted, after: batches, splitCommit: true},
		{name: "spilled sort", step: stepWritten, after: 2, sortMemory: 16 << 10, newBatch: 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			st := openState(t, dir)
			var part1 bytes.Buffer
			var before Checkpoint
			cfg := Config{Engine: testEngine(t), Store: NewBadgerStore(st.Partition(0)), BatchSize: batch, SortMemory: tc.sortMemory, Until: until}
			cfg.afterCommit = func(step commitStep, n int) error {
				if step == stepAcked && n == tc.after-1 {
					var err error
					before, err = NewBadgerStore(st.Partition(0)).Checkpoint()
					return err
				}
				if step == tc.step && n == tc.after {
					return errStop
				}
				return nil
			}
			if _, err := Run(t.Context(), cfg, bytes.NewReader(input), &part1, nil); !errors.Is(err, errStop) {
				t.Fatalf("first run: %v", err)
			}
			if tc.splitCommit {
				b := st.Partition(0).NewBatch()
				b.SetOffset(keyApplied, before.Applied)
				if err := b.Commit(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
			// A new process: reopen the store.
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			st = openState(t, dir)
			cp, err := NewBadgerStore(st.Partition(0)).Checkpoint()
			if err != nil || cp.Applied == 0 && tc.after > 1 {
				t.Fatalf("checkpoint after the first run: %+v, %v", cp, err)
			}
			cfg = Config{Engine: testEngine(t), Store: NewBadgerStore(st.Partition(0)), BatchSize: tc.newBatch, SortMemory: tc.sortMemory, Until: until}
			var part2 bytes.Buffer
			sum, err := Run(t.Context(), cfg, bytes.NewReader(input), &part2, nil)
			if err != nil {
				t.Fatalf("second run: %v", err)
			}
			sameSummary(t, "resumed", sum, straight.sum)

			ids1, ids2 := lineIDs(t, part1.Bytes()), lineIDs(t, part2.Bytes())
			in1 := map[string]bool{}
			for _, id := range ids1 {
				if in1[id] {
					t.Fatalf("first run wrote %s twice", id)
				}
				in1[id] = true
			}
			dups := 0
			for i, id := range ids2 {
				if in1[id] {
					if i != dups {
						t.Fatalf("alert %s written by both runs is not among the first ones the second run flushed from the outbox (position %d)", id, i)
					}
					dups++
				}
			}
			t.Logf("%d alerts in the first run, %d in the second, %d written twice", len(ids1), len(ids2), dups)
			if tc.step == stepWritten && dups == 0 && len(ids1) > 0 {
				t.Errorf("no alert written twice, but the first run stopped before acknowledging its last batch")
			}
			if tc.step != stepWritten && dups != 0 {
				t.Errorf("%d alerts written twice, but the first run acknowledged all it wrote", dups)
			}
			lines2 := strings.SplitAfter(part2.String(), "\n")
			union := sortedLines([]byte(part1.String() + strings.Join(lines2[dups:], "")))
			diffLines(t, "first + second run", union, want)
			if len(ids1) == 0 || len(ids2) == dups && tc.step != stepWritten {
				t.Errorf("a run wrote nothing new: %d and %d alerts", len(ids1), len(ids2)-dups)
			}

			// Running again resumes at the end: no new alert.
			var part3 bytes.Buffer
			if _, err := Run(t.Context(), cfg, bytes.NewReader(input), &part3, nil); err != nil || part3.Len() != 0 {
				t.Fatalf("third run: %v, wrote %d bytes", err, part3.Len())
			}
		})
	}
}

// A store holding a replay refuses another input or other settings.
func TestBadgerReplayRefusesOtherInput(t *testing.T) {
	input := shuffledInput(10)
	st := openState(t, t.TempDir())
	cfg := Config{Engine: testEngine(t), Store: NewBadgerStore(st.Partition(0))}
	cfg.afterCommit = func(step commitStep, n int) error {
		if n == 1 {
			return errStop
		}
		return nil
	}
	var out bytes.Buffer
	if _, err := Run(t.Context(), cfg, bytes.NewReader(input), &out, nil); !errors.Is(err, errStop) {
		t.Fatal(err)
	}
	cfg.afterCommit = nil
	other := bytes.Replace(input, []byte("M0001"), []byte("M0009"), 1)
	var de *DifferentInputError
	for _, tc := range []struct {
		name  string
		input []byte
		check func(error) bool
	}{
		{"longer", append(slices.Clone(input), '\n'), func(err error) bool {
			return errors.As(err, &de) && de.StoredBytes == int64(len(input)) && de.InputBytes == int64(len(input))+1
		}},
		{"same size", other, func(err error) bool { return errors.As(err, &de) && de.StoredBytes == de.InputBytes }},
	} {
		_, err := Run(t.Context(), cfg, bytes.NewReader(tc.input), &out, nil)
		if !tc.check(err) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	cfg.Until = genStart.AddDate(1, 0, 0)
	if _, err := Run(t.Context(), cfg, bytes.NewReader(input), &out, nil); !errors.Is(err, ErrSettingsChanged) {
		t.Errorf("other --until: %v", err)
	}
	rules := operators.DefaultConfig()
	rules.Dormancy.MinValueScore += 0.01
	g, err := operators.NewEngine(rules)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Until, cfg.Engine = cfg.Until.AddDate(-1, 0, 0), g
	if _, err := Run(t.Context(), cfg, bytes.NewReader(input), &out, nil); !errors.Is(err, ErrSettingsChanged) {
		t.Errorf("other rules: %v", err)
	}
}

// BadgerStore follows the Store contract: a batch's pending states are
// seen by Get and DueBefore before they are committed.
func TestBadgerStorePendingBatch(t *testing.T) {
	st := openState(t, t.TempDir())
	bs := NewBadgerStore(st.Partition(0))
	put := func(id string, due int64) {
		t.Helper()
		var s operators.MemberState
		bs.Get(operators.MemberID(id), &s)
		s.Clock, s.Due = 1, due
		s.Region = "r-" + id
		if err := bs.Put(operators.MemberID(id), &s); err != nil {
			t.Fatal(err)
		}
	}
	put("a", 20)
	put("b", 30)
	put("c", 40)
	if err := bs.commit(t.Context(), Checkpoint{Applied: 1}); err != nil {
		t.Fatal(err)
	}
	put("a", 50) // rescheduled in the pending batch: not due before 35
	put("d", 10) // new in the pending batch
	put("d", 25) // put twice
	bs.Delete("c")
	var s operators.MemberState
	if ok, _ := bs.Get("d", &s); !ok || s.Due != 25 || s.Region != "r-d" {
		t.Fatalf("pending d: %v %+v", ok, s)
	}
	if ok, _ := bs.Get("c", &s); ok {
		t.Fatal("deleted c still found")
	}
	var order []string
	err := bs.DueBefore(35, func(id operators.MemberID) error {
		order = append(order, string(id))
		var s operators.MemberState
		bs.Get(id, &s)
		s.Due = 100
		return bs.Put(id, &s)
	})
	if err != nil || !slices.Equal(order, []string{"d", "b"}) {
		t.Fatalf("DueBefore(35) visited %v, %v", order, err)
	}
	if err := bs.commit(t.Context(), Checkpoint{Applied: 2}); err != nil {
		t.Fatal(err)
	}
	order = nil
	bs.DueBefore(1000, func(id operators.MemberID) error {
		order = append(order, string(id))
		return bs.Delete(id)
	})
	if !slices.Equal(order, []string{"a", "b", "d"}) {
		t.Fatalf("after commit, DueBefore visited %v", order)
	}
	if err := bs.commit(t.Context(), Checkpoint{Applied: 3}); err != nil {
		t.Fatal(err)
	}
	if stats, _ := st.Stats(); stats.Timers != 0 || stats.Members != 0 {
		t.Fatalf("timers or members left: %+v", stats)
	}
}
