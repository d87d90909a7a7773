package pipeline_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/churnflow/churnflow/pipeline"
)

// Log messages of the changelog's start-up decision.
const (
	msgRestored = "restored partition state from the changelog"
	msgCurrent  = "local state is current with the changelog"
	msgSeeding  = "changelog is empty: seeding it from the local state"
)

// TestStateMovesThroughChangelog runs the pipeline as three instances in
// turn, each with its own state directory, while the events flow in three
// segments: A, then B (no state: restores every partition from the
// changelog), then A again (its copy is now older than the changelog:
// restores again rather than trusting it), then A once more (current:
// restores nothing). The alerts must be replay's, as if one instance had
// run throughout.
func TestStateMovesThroughChangelog(t *testing.T) {
	const partitions = 4
	run, st := newStreamedRun(t, "moves", partitions, 300, 300, 3)
	clock := &testClock{now: run.end}
	dirA, dirB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	logs := newLogWatch(t)

	phase := func(name, dir string, release, last bool) {
		t.Helper()
		runPhase(t, run, st, clock, logs, run.cfg, name, dir, release, last)
	}

	phase("A", dirA, true, false)
	if n := logs.count(msgRestored); n != 0 {
		t.Errorf("A restored %d partitions from an empty changelog", n)
	}
	phase("B", dirB, true, false)
	if n := logs.count(msgRestored); n != partitions {
		t.Errorf("B, with no state, restored %d partitions, want %d", n, partitions)
	}
	// The markers of the events B applied are B's own; those of A's events
	// came with the states B restored (the test clock is in 2025: their
	// expiry must not follow it).
	storeB, closeB := openStoreAt(t, dirB)
	written, _ := st.Written()
	if stats, err := storeB.Stats(); err != nil || stats.DedupMarkers != int64(written) {
		t.Errorf("B holds %d dedup markers (%v), want one per event so far, %d", stats.DedupMarkers, err, written)
	}
	closeB()
	phase("A again", dirA, true, true)
	if n := logs.count(msgRestored); n != 2*partitions {
		t.Errorf("A, whose copy B overtook, restored %d partitions, want %d", n-partitions, partitions)
	}
	current := logs.count(msgCurrent)
	phase("A once more", dirA, false, false)
	if n := logs.count(msgCurrent) - current; n != partitions {
		t.Errorf("A, current, kept its local state for %d partitions, want %d", n, partitions)
	}
	if n := logs.count(msgRestored); n != 2*partitions {
		t.Errorf("A, current, restored %d partitions, want none", n-2*partitions)
	}
	if dlq := readTopic(t, run.addr, run.topics.DeadLetter); len(dlq) > 0 {
		t.Errorf("%d dead letters (first: %s), want none: an input record was read twice", len(dlq), header(dlq[0], pipeline.HeaderReason))
	}
}

// runPhase runs one instance on dir until it has consumed the inputs
// (releasing the next segment of events first if release), and when last
// moves the clock on and checks the alerts against replay's, with no
// duplicate.
func runPhase(t *testing.T, run *streamedRun, st *streamer, clock *testClock, logs *logWatch, cfg pipeline.Config,
	name, dir string, release, last bool) {
	t.Helper()
	store, closeStore := openStoreAt(t, dir)
	defer closeStore()
	p, err := pipeline.New(cfg, pipeline.Deps{Engine: newEngine(t), Store: store, Clock: clock.Now, Log: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	seeked := logs.count(msgSeeked)
	stop := runPipeline(t, p)
	logs.waitWorkers(t, seeked, run.partitions)
	if s := p.Status(); !s.Ready() || len(s.Assigned) != run.partitions {
		t.Errorf("%s: status %+v once every worker reads, want ready with %d partitions", name, s, run.partitions)
	}
	if release {
		st.Release(time.Second)
		waitFor(t, 60*time.Second, "the segment to be produced", func() bool { return !st.Flowing() })
	}
	ends := allInputEnds(t, run.addr, run.topics)
	waitFor(t, 60*time.Second, name+" to consume the inputs", func() bool {
		return offsetsReach(storeOffsets(t, store, run.partitions), ends)
	})
	if last {
		clock.Set(run.final)
		got := awaitAlerts(t, run.addr, run.topics, run.want, 60*time.Second)
		dups := compareAlerts(t, run.want, got)
		t.Logf("%d events, %d alerts, %d duplicate deliveries", run.events, len(run.want), dups)
		if dups != 0 {
			// Every stop was clean: an instance that read input its
			// predecessor had applied would emit its alerts again.
			t.Errorf("%d duplicate alert deliveries after clean hand-overs, want none", dups)
		}
	}
	stop()
}

// TestChangelogSeededFromLocalState: an instance whose state directory
// predates its changelog (here: the changelog topic is renamed, as after
// deleting it) seeds the new, empty changelog from its local state, and a
// fresh instance restores from that seed.
func TestChangelogSeededFromLocalState(t *testing.T) {
	const partitions = 2
	run, st := newStreamedRun(t, "seeded", partitions, 200, 300, 2)
	clock := &testClock{now: run.end}
	dirA, dirB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	logs := newLogWatch(t)
	cfg := run.cfg
	cfg.Topics.Changelog = "seeded.changelog.old"
	runPhase(t, run, st, clock, logs, cfg, "A", dirA, true, false)
	cfg.Topics.Changelog = "seeded.changelog.new"
	runPhase(t, run, st, clock, logs, cfg, "A on a new changelog", dirA, false, false)
	if n := logs.count(msgSeeding); n != partitions {
		t.Errorf("A seeded %d partitions of the new changelog, want %d", n, partitions)
	}
	runPhase(t, run, st, clock, logs, cfg, "B", dirB, true, true)
	if n := logs.count(msgRestored); n != partitions {
		t.Errorf("B restored %d partitions, want %d", n, partitions)
	}
}
