package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/fnv"
	"io"

	"github.com/churnflow/churnflow/operators"
)

// ErrSettingsChanged means the store holds the progress of a replay made
// with other settings (rules, Until, input format, CSV mapping or
// MaxEventBytes): resuming it would mix the alerts of two configurations.
var ErrSettingsChanged = errors.New("replay: the store holds a replay made with other settings (rules, until, format, CSV mapping or max event size)")

// DifferentInputError means the store holds the progress of a replay of
// another input: its size (or, for the same size, its CRC-32) differs.
type DifferentInputError struct {
	// StoredBytes is the size of the input the store's replay read;
	// InputBytes that of this input.
	StoredBytes, InputBytes int64
}

func (e *DifferentInputError) Error() string {
	if e.StoredBytes == e.InputBytes {
		return fmt.Sprintf("replay: the store holds a replay of a different input (same size, %d bytes, other content)", e.InputBytes)
	}
	return fmt.Sprintf("replay: the store holds a replay of a different input (%d bytes, this one is %d)", e.StoredBytes, e.InputBytes)
}

// commitStep names the points of a durable run's commit where the tests'
// hook (Config.afterCommit) is called.
type commitStep uint8

const (
	stepCommitted commitStep = iota // batch committed, alerts not written
	stepWritten                     // alerts written to out, not acknowledged
	stepAcked                       // alerts acknowledged
)

// durableRun is what a run on a durable store keeps besides the runner.
type durableRun struct {
	resume Checkpoint // what the store held at the start
	cp     Checkpoint // what the next commit records

	next       int64 // sorted index of the next event
	batchStart int64 // sorted index of the current batch's first event
	// Events in [resume.Applied, redoEnd) belong to the batch that was
	// being committed when the last run stopped: a member whose part of
	// it was committed (a commit split over transactions) is skipped.
	redoEnd int64
	redo    map[operators.MemberID]bool

	lines   []byte   // alert lines of the batch, to write after the commit
	seqs    []uint64 // their outbox sequence numbers
	batches int      // batches committed by this run
}

// firstBatch returns the size of the first batch: that of the stopped run
// when its last batch may have been partly committed.
func (dr *durableRun) firstBatch(size int) int {
	if dr.redoEnd > dr.resume.Applied {
		return dr.resume.BatchSize
	}
	return size
}

// admit decides what to do with the next sorted event, n events into the
// batch: counts false for an event applied before the resume (skipped,
// not part of any batch); apply false for one whose member's part of the
// redone batch is already committed.
func (dr *durableRun) admit(d durable, ev *operators.Event, n int) (apply, counts bool, err error) {
	idx := dr.next
	dr.next++
	if idx < dr.resume.Applied {
		return false, false, nil
	}
	if n == 0 {
		dr.batchStart = idx
	}
	if idx < dr.redoEnd {
		done, ok := dr.redo[ev.MemberID]
		if !ok {
			if done, err = d.batchDone(ev.MemberID, dr.batchStart); err != nil {
				return false, true, fmt.Errorf("read batch marker: %w", err)
			}
			dr.redo[ev.MemberID] = done
		}
		if done {
			return false, true, nil
		}
	}
	return true, true, nil
}

// fingerprint hashes the settings that decide the alerts besides the input.
func (r *runner) fingerprint(format Format) (uint64, error) {
	h := fnv.New64a()
	rules, err := json.Marshal(r.g.Config())
	if err != nil {
		return 0, fmt.Errorf("fingerprint rules: %w", err)
	}
	csv, err := json.Marshal(r.cfg.CSV)
	if err != nil {
		return 0, fmt.Errorf("fingerprint csv mapping: %w", err)
	}
	h.Write(rules)
	h.Write(csv)
	until := int64(0)
	if r.hasUntil {
		until = r.until
	}
	fmt.Fprintf(h, "\x00%d\x00%s\x00%d", until, format, r.cfg.MaxEventBytes)
	// Offsets are stored as int64: keep the top bit clear so the value
	// reads back the same whatever the sign conventions.
	return h.Sum64() &^ (1 << 63), nil
}

// checkSettings refuses to resume a replay made with other settings.
func (r *runner) checkSettings(format Format) error {
	cp, err := r.dur.Checkpoint()
	if err != nil {
		return err
	}
	fp, err := r.fingerprint(format)
	if err != nil {
		return err
	}
	if !cp.IsZero() && cp.Settings != fp {
		return ErrSettingsChanged
	}
	r.dr.resume = cp
	r.dr.cp = Checkpoint{Settings: fp, BatchSize: r.cfg.BatchSize}
	return nil
}

// startDurable runs once the input is read: it checks that the input is
// the one the store's replay read, writes out what the outbox holds, and
// commits a first checkpoint when the store held none (so that a first
// commit split over transactions is recognised as such on resume).
func (r *runner) startDurable(ctx context.Context, cr *crcReader) error {
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return fmt.Errorf("read input: %w", err)
	}
	dr := &r.dr
	dr.cp.InputBytes, dr.cp.InputCRC = cr.n, cr.h.Sum32()
	if res := dr.resume; !res.IsZero() {
		if res.InputBytes != dr.cp.InputBytes || res.InputCRC != dr.cp.InputCRC {
			return &DifferentInputError{StoredBytes: res.InputBytes, InputBytes: dr.cp.InputBytes}
		}
		if events := r.sum.Events - r.sum.AfterUntil; res.Applied > events {
			return fmt.Errorf("resume replay: the store has %d events applied, the input holds %d", res.Applied, events)
		}
		if !res.Done && res.BatchSize > 0 {
			dr.redoEnd = res.Applied + int64(res.BatchSize)
			dr.redo = make(map[operators.MemberID]bool)
		}
		dr.cp.Applied = res.Applied
		return r.flushOutbox(ctx)
	}
	if err := r.flushOutbox(ctx); err != nil {
		return err
	}
	return r.dur.commit(ctx, dr.cp)
}

// flushOutbox writes out and acknowledges the alerts a stopped run
// committed but did not acknowledge.
func (r *runner) flushOutbox(ctx context.Context) error {
	var seqs []uint64
	err := r.dur.outbox(ctx, func(seq uint64, line []byte) error {
		seqs = append(seqs, seq)
		r.out.Write(line)
		if err := r.out.WriteByte('\n'); err != nil {
			return fmt.Errorf("write alerts: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := r.out.Flush(); err != nil {
		return fmt.Errorf("write alerts: %w", err)
	}
	if err := r.dur.ack(seqs...); err != nil {
		return fmt.Errorf("acknowledge alerts: %w", err)
	}
	return nil
}

// hold adds the alert in r.line to the batch's outbox, to be written out
// after the commit.
func (r *runner) hold(a *operators.Alert) {
	dr := &r.dr
	dr.seqs = append(dr.seqs, r.dur.emit(a.MemberID, a.ID, r.line))
	dr.lines = append(dr.lines, r.line...)
	dr.lines = append(dr.lines, '\n')
}

// checkpoint commits the batch with the progress, then writes out and
// acknowledges its alerts.
func (r *runner) checkpoint(ctx context.Context, done bool) error {
	dr := &r.dr
	dr.cp.Applied, dr.cp.Done, dr.cp.BatchSize = dr.next, done, r.cfg.BatchSize
	if err := r.dur.commit(ctx, dr.cp); err != nil {
		return err
	}
	clear(dr.redo) // only the first batch after a resume is redone
	dr.redoEnd = 0
	if err := r.hook(stepCommitted); err != nil {
		return err
	}
	if _, err := r.out.Write(dr.lines); err != nil {
		return fmt.Errorf("write alerts: %w", err)
	}
	if err := r.out.Flush(); err != nil {
		return fmt.Errorf("write alerts: %w", err)
	}
	if err := r.hook(stepWritten); err != nil {
		return err
	}
	if err := r.dur.ack(dr.seqs...); err != nil {
		return fmt.Errorf("acknowledge alerts: %w", err)
	}
	dr.lines, dr.seqs = dr.lines[:0], dr.seqs[:0]
	err := r.hook(stepAcked)
	dr.batches++
	return err
}

// hook calls the tests' hook with the number of the batch being committed
// (1 for the first of this run).
func (r *runner) hook(step commitStep) error {
	if r.cfg.afterCommit == nil {
		return nil
	}
	return r.cfg.afterCommit(step, r.dr.batches+1)
}

// crcReader counts and checksums what is read through it.
type crcReader struct {
	r io.Reader
	h hash.Hash32
	n int64
}

func newCRCReader(r io.Reader) *crcReader { return &crcReader{r: r, h: crc32.NewIEEE()} }

func (c *crcReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.h.Write(p[:n])
	return n, err
}
