package replay

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/churnflow/churnflow/operators"
)

// Defaults of Config.
const (
	// DefaultBatchSize is the number of events applied between two timer
	// firings.
	DefaultBatchSize = 4096
	// DefaultSortMemory is the byte budget of the event-time sort.
	DefaultSortMemory = 256 << 20
	// maxRejectRecordBytes caps the original text copied into a reject.
	maxRejectRecordBytes = 64 << 10
)

// Config configures Run. The zero value of each field but Engine is a
// documented default.
type Config struct {
	// Engine applies the rules. Required.
	Engine *operators.Engine
	// Store holds member states. Nil: a new MemStore. Run does not close
	// it; the states are left in it, timers fired up to the end. A
	// BadgerStore makes the replay resumable: Run commits it after each
	// batch and resumes from what it holds (see Run).
	Store Store
	// Format of the input. FormatAuto (the default) detects it.
	Format Format
	// CSV maps CSV columns to event fields. Zero: headers are field names.
	CSV CSVMapping
	// BatchSize is the number of events applied between two timer firings
	// (0: DefaultBatchSize). The alerts do not depend on it.
	BatchSize int
	// SortMemory is the byte budget for holding events while sorting them
	// by time (0: DefaultSortMemory). Input that does not fit is sorted in
	// chunks spilled to temporary files, then merged.
	SortMemory int64
	// TempDir is where spill files go, in a private directory removed at
	// the end ("" : os.TempDir()).
	TempDir string
	// Until is the event time to replay up to: events after it are skipped
	// (and counted) and timers due at or before it fire at the end. Zero:
	// the time of the last event.
	Until time.Time
	// MaxEventBytes rejects larger records as oversize (0:
	// operators.DefaultMaxEventBytes).
	MaxEventBytes int
	// Progress, if not nil, is called from Run's goroutine as work goes
	// on: at least once per phase and about every 64 k records or events.
	Progress func(Progress)
	// Clock gives the wall time for Summary.Duration (nil: time.Now). Event
	// processing never reads it.
	Clock func() time.Time
	// Observe, if not nil, is called with every valid event as it is read,
	// in input order (not time order), including the events after Until,
	// which are not applied. The event is reused after the call returns.
	// `churnflow fit` counts the hold-out period's bookings with it.
	Observe func(e *operators.Event)

	// afterCommit, if not nil, is called by a durable run at each step of
	// writing out a committed batch (tests stop the run there with an
	// error, as a crash would).
	afterCommit func(step commitStep, batches int) error
}

// Validate reports the first setting that is wrong, naming its field.
func (c *Config) Validate() error {
	if c.Engine == nil {
		return errors.New("replay config Engine: required")
	}
	if c.BatchSize < 0 {
		return fmt.Errorf("replay config BatchSize: must not be negative, got %d", c.BatchSize)
	}
	if c.SortMemory < 0 {
		return fmt.Errorf("replay config SortMemory: must not be negative, got %d", c.SortMemory)
	}
	if c.MaxEventBytes < 0 {
		return fmt.Errorf("replay config MaxEventBytes: must not be negative, got %d", c.MaxEventBytes)
	}
	if c.Format > FormatCSV {
		return fmt.Errorf("replay config Format: unknown format %d", c.Format)
	}
	if err := c.CSV.Validate(); err != nil {
		return err
	}
	return nil
}

// Phase names a stage of Run for progress reports.
type Phase uint8

// Phases of Run.
const (
	// PhaseRead: reading, validating and sorting the input.
	PhaseRead Phase = iota
	// PhaseApply: applying the sorted events and firing timers.
	PhaseApply
	// PhaseDone: everything applied, timers flushed.
	PhaseDone
)

// Progress reports how far Run has come.
type Progress struct {
	Phase   Phase
	Records int64 // input records read (valid or not)
	Events  int64 // valid events to apply
	Applied int64 // events handed to the engine so far
}

// Run replays the input through cfg.Engine in event-time order, writing one
// alert JSON object per line to out (emitted_at = triggered_at, so output is
// reproducible) and one JSON object per rejected record to rejects (nil:
// rejects are only counted). Rejected records do not stop the run; an error
// is returned only for what makes the result wrong or incomplete (reading
// the input, writing the output, the store, the sort files, ctx ending), in
// which case the Summary describes the work done so far.
//
// With a BadgerStore (any Store implementing its commit methods), the run
// is resumable. After each batch of events and the timers fired after it,
// Run commits the member states, the batch's alerts (in the store's
// outbox) and a Checkpoint (events applied so far, the input's size and
// CRC-32, a fingerprint of the settings) in one commit, then writes the
// alerts to out and acknowledges them. If the store already holds a
// Checkpoint, Run first checks that the input and settings are the same
// (else *DifferentInputError or ErrSettingsChanged), writes out the alerts
// a stopped run left in the outbox (so an alert may be written twice
// across the two runs, never lost), then re-reads and re-sorts the input
// and skips the events already applied. The alerts of the two runs
// together are those of one run straight through.
func Run(ctx context.Context, cfg Config, in io.Reader, out, rejects io.Writer) (*Summary, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := newRunner(cfg, out, rejects)
	err := r.run(ctx, in)
	if cerr := r.sort.close(); err == nil {
		err = cerr
	}
	if ferr := r.out.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("write alerts: %w", ferr)
	}
	if r.rej != nil {
		if ferr := r.rej.Flush(); err == nil && ferr != nil {
			err = fmt.Errorf("write rejects: %w", ferr)
		}
	}
	r.finishSummary()
	return &r.sum, err
}

type runner struct {
	cfg      Config
	g        *operators.Engine
	store    Store
	sort     *sorter
	dec      *operators.Decoder
	out      *bufio.Writer
	rej      *bufio.Writer
	until    int64 // valid if hasUntil
	hasUntil bool
	start    time.Time
	sum      Summary
	dur      durable // nil unless the store is durable (durable.go)
	dr       durableRun
	alerts   []operators.Alert
	line     []byte
	state    operators.MemberState
	prog     Progress
	// counts indexed by type/outcome before they go into the Summary.
	alertN [16]int64
	reject map[operators.Reason]int64
}

func newRunner(cfg Config, out, rejects io.Writer) *runner {
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.SortMemory == 0 {
		cfg.SortMemory = DefaultSortMemory
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Store == nil {
		cfg.Store = NewMemStore()
	}
	d, _ := cfg.Store.(durable)
	r := &runner{
		cfg:    cfg,
		g:      cfg.Engine,
		store:  cfg.Store,
		sort:   newSorter(cfg.SortMemory, cfg.TempDir),
		dec:    operators.NewDecoder(cfg.Engine.Config().TierNames()),
		out:    bufio.NewWriterSize(out, 256<<10),
		reject: make(map[operators.Reason]int64),
		dur:    d,
	}
	r.dec.MaxBytes = cfg.MaxEventBytes
	if rejects != nil {
		r.rej = bufio.NewWriterSize(rejects, 64<<10)
	}
	if !cfg.Until.IsZero() {
		r.until, r.hasUntil = cfg.Until.Unix(), true
	}
	r.start = cfg.Clock()
	return r
}

func (r *runner) progress(p Phase) {
	if r.cfg.Progress != nil {
		r.prog.Phase = p
		r.cfg.Progress(r.prog)
	}
}

func (r *runner) run(ctx context.Context, in io.Reader) error {
	m, err := newCSVMapper(r.cfg.CSV)
	if err != nil {
		return err
	}
	maxBytes := r.cfg.MaxEventBytes
	if maxBytes <= 0 {
		maxBytes = operators.DefaultMaxEventBytes
	}
	var cr *crcReader
	if r.dur != nil {
		cr = newCRCReader(in)
		in = cr
	}
	rr, format, err := openInput(in, r.cfg.Format, m, maxBytes)
	r.sum.Format = format.String()
	if err != nil {
		return err
	}
	if r.dur != nil {
		if err := r.checkSettings(format); err != nil {
			return err
		}
	}
	if err := r.read(ctx, rr); err != nil {
		return err
	}
	if r.dur != nil {
		if err := r.startDurable(ctx, cr); err != nil {
			return err
		}
	}
	it, err := r.sort.finish()
	if err != nil {
		return err
	}
	r.sum.SpillFiles = r.sort.spills()
	return r.apply(ctx, it)
}

// read validates every record and feeds the sorter.
func (r *runner) read(ctx context.Context, rr recordReader) error {
	r.progress(PhaseRead)
	var ev operators.Event
	for {
		rec, err := rr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read input: %w", err)
		}
		r.sum.Records++
		if r.sum.Records&0xffff == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			r.prog.Records = r.sum.Records
			r.progress(PhaseRead)
		}
		err = rec.err
		if err == nil {
			err = r.dec.Decode(rec.json, &ev)
		}
		if err != nil {
			if err := r.writeReject(rec, err); err != nil {
				return err
			}
			continue
		}
		r.sum.Events++
		if r.cfg.Observe != nil {
			r.cfg.Observe(&ev)
		}
		if r.hasUntil && ev.OccurredAt > r.until {
			r.sum.AfterUntil++
			continue
		}
		if r.sum.FirstEvent == 0 || ev.OccurredAt < r.sum.FirstEvent {
			r.sum.FirstEvent = ev.OccurredAt
		}
		r.sum.LastEvent = max(r.sum.LastEvent, ev.OccurredAt)
		if err := r.sort.add(&ev); err != nil {
			return err
		}
	}
	r.prog.Records = r.sum.Records
	r.prog.Events = r.sum.Events - r.sum.AfterUntil
	return nil
}

type rejectJSON struct {
	Line   int64  `json:"line"`
	Reason string `json:"reason"`
	Error  string `json:"error"`
	Record string `json:"record"`
}

func (r *runner) writeReject(rec *record, err error) error {
	reason := operators.ReasonOf(err)
	r.reject[reason]++
	r.sum.RejectedTotal++
	if r.rej == nil {
		return nil
	}
	raw := rec.raw
	text := ""
	if len(raw) > maxRejectRecordBytes {
		text = validUTF8(raw[:maxRejectRecordBytes]) + "…"
	} else {
		text = validUTF8(raw)
	}
	b, merr := json.Marshal(rejectJSON{Line: rec.line, Reason: string(reason), Error: err.Error(), Record: text})
	if merr != nil {
		return fmt.Errorf("encode reject: %w", merr)
	}
	r.rej.Write(b)
	if werr := r.rej.WriteByte('\n'); werr != nil {
		return fmt.Errorf("write rejects: %w", werr)
	}
	return nil
}

// apply runs the sorted events through the engine in batches, firing the
// timers due before each batch's last event time, then flushes the timers
// up to the end.
func (r *runner) apply(ctx context.Context, it iterator) error {
	r.progress(PhaseApply)
	var ev operators.Event
	batch := r.cfg.BatchSize
	n := 0
	var last int64
	seen := false
	if r.dur != nil {
		batch = r.dr.firstBatch(batch)
	}
	for {
		ok, err := it.next(&ev)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		apply := true
		if r.dur != nil {
			var counts bool
			apply, counts, err = r.dr.admit(r.dur, &ev, n)
			if err != nil {
				return err
			}
			if !counts { // applied before the resume
				last, seen = ev.OccurredAt, true
				continue
			}
		}
		if apply {
			if err := r.applyOne(&ev); err != nil {
				return err
			}
		}
		last, seen = ev.OccurredAt, true
		n++
		if n == batch {
			n = 0
			if err := r.fire(last); err != nil {
				return err
			}
			if r.dur != nil {
				batch = r.cfg.BatchSize
				if err := r.checkpoint(ctx, false); err != nil {
					return err
				}
			}
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if r.prog.Applied&0xffff == 0 {
			r.progress(PhaseApply)
		}
	}
	if n > 0 {
		if err := r.fire(last); err != nil {
			return err
		}
		if r.dur != nil {
			if err := r.checkpoint(ctx, false); err != nil {
				return err
			}
		}
	}
	end, has := r.until, r.hasUntil
	if !has && seen {
		end, has = last, true
	}
	if has {
		r.sum.Until = end
		if end < math.MaxInt64 {
			end++
		}
		if err := r.fire(end); err != nil {
			return err
		}
	}
	if r.dur != nil {
		if err := r.checkpoint(ctx, true); err != nil {
			return err
		}
	}
	r.progress(PhaseDone)
	return nil
}

func (r *runner) applyOne(ev *operators.Event) error {
	s := &r.state
	if _, err := r.store.Get(ev.MemberID, s); err != nil {
		return fmt.Errorf("get member: %w", err)
	}
	var outcome operators.Outcome
	r.alerts, outcome = r.g.Apply(s, ev, r.alerts[:0])
	r.prog.Applied++
	switch outcome {
	case operators.OutcomeApplied:
		r.sum.Applied++
	case operators.OutcomeErased:
		r.sum.Applied++
		r.sum.Erased++
	case operators.OutcomeIgnoredErased:
		r.sum.IgnoredErased++
	case operators.OutcomeUnmatchedCancellation:
		r.sum.Applied++
		r.sum.UnmatchedCancellations++
	}
	if err := r.save(ev.MemberID, s); err != nil {
		return err
	}
	if r.dur != nil {
		r.dur.markBatch(ev.MemberID, r.dr.batchStart)
	}
	return r.emit()
}

// save puts the state back, or deletes it once it holds nothing.
func (r *runner) save(id operators.MemberID, s *operators.MemberState) error {
	if s.IsNew() {
		if err := r.store.Delete(id); err != nil {
			return fmt.Errorf("delete member: %w", err)
		}
		return nil
	}
	if err := r.store.Put(id, s); err != nil {
		return fmt.Errorf("put member: %w", err)
	}
	return nil
}

// fire advances every member due strictly before t.
func (r *runner) fire(t int64) error {
	return r.store.DueBefore(t, func(id operators.MemberID) error {
		s := &r.state
		ok, err := r.store.Get(id, s)
		if err != nil {
			return fmt.Errorf("get member: %w", err)
		}
		if !ok {
			return nil
		}
		r.alerts = r.g.Advance(s, id, t, r.alerts[:0])
		if err := r.save(id, s); err != nil {
			return err
		}
		return r.emit()
	})
}

func (r *runner) emit() error {
	for i := range r.alerts {
		a := &r.alerts[i]
		if int(a.Type) < len(r.alertN) {
			r.alertN[a.Type]++
		}
		r.line = a.AppendJSON(r.line[:0], a.TriggeredAt)
		if r.dur != nil {
			r.hold(a)
			continue
		}
		r.line = append(r.line, '\n')
		if _, err := r.out.Write(r.line); err != nil {
			return fmt.Errorf("write alerts: %w", err)
		}
	}
	clear(r.alerts) // drop references to member strings
	return nil
}
