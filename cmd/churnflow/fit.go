package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/churnflow/churnflow/internal/replay"
	"github.com/churnflow/churnflow/model"
	"github.com/churnflow/churnflow/operators"
	"github.com/churnflow/churnflow/state"
)

// fitFlags are the settings of "churnflow fit".
type fitFlags struct {
	input         string
	stateDir      string
	format        string
	csvMap        string
	config        string
	calEnd        time.Time
	holdoutEnd    time.Time
	unit          string
	horizonMonths int
	discount      float64
	out           string
	seed          int
	segmentSample int
	sortMemory    int64
	tempDir       string
	progress      string
	memory        int64
}

func newFitCmd(s streams) *cobra.Command {
	f := &fitFlags{sortMemory: replay.DefaultSortMemory, memory: state.DefaultOptions("").MemoryBudget}
	cmd := &cobra.Command{
		Use:   "fit --input FILE --calibration-end TIME --out MODEL [flags]",
		Short: "Fit the churn model (BG/NBD, MBG/NBD, Gamma-Gamma, LRFMC segments) from history",
		Long: `fit reads a history of events and writes a model file that run, replay and demo
load with --model (docs/model.md explains the models and how to read this
report).

Calibration data are the events at or before --calibration-end. Per member
who booked by then: x is the number of repeat transactions (a member's
bookings on the same UTC day count as one transaction), t_x and T the time
from the first transaction to the last one and to --calibration-end, in
--unit. A cancellation in the calibration period removes its booking (and
the day's transaction if it was the day's only booking); a cancellation
after --calibration-end of a calibration booking is ignored. The same rules
engine as run and replay computes these figures and the LRFMC figures (with
--config's windows and value.measure), so fitted and live figures agree.

It fits BG/NBD and MBG/NBD (maximum likelihood, standard errors from the
Hessian), the Gamma-Gamma spend model on the members with repeat bookings
(value of a transaction: the amounts of the day's bookings; the mean is
taken over the booking days the member's history holds, the longest rules
window) with the correlation between frequency and spend the model assumes
to be zero, the CLV settings (--horizon-months, --discount per month), and
five LRFMC segments (z-scores, k-means++, named after the segments of
docs/rules.md).

With --holdout-end the events after --calibration-end and up to it are the
hold-out: fit reports how well each score (P(alive) of each model, expected
transactions, and a plain recency baseline) ranks the members who make no
transaction in it (AUC), and the predicted and actual hold-out totals. The
model whose P(alive) ranks better is chosen for live scoring; without a
hold-out, the one with the higher log-likelihood.

--state DIR fits from the member states a "replay --state" left instead of
an event file. The states hold each member's figures as of the end of that
replay only, so there is no hold-out (no --holdout-end) and the calibration
end is the replay's end (default: the latest member clock; a --calibration-end
before a member's last booking is refused).

The report goes to standard output, progress to standard error.`,
		Example: `  churnflow gen --members 20000 --days 730 --out events.jsonl
  churnflow fit --input events.jsonl --calibration-end 2026-01-01T00:00:00Z --holdout-end 2026-07-01T00:00:00Z --unit week --out model.json
  churnflow replay --input events.jsonl --model model.json --out alerts.jsonl
  churnflow fit --state replay-state --unit day --out model.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runFit(cmd, s, f) },
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVar(&f.input, "input", "", `events file (JSONL, gzip-compressed JSONL or CSV, as replay reads; "-" for standard input)`)
	fl.StringVar(&f.stateDir, "state", "", "fit from the member states of a \"replay --state\" directory instead of --input (no hold-out)")
	fl.Var(newChoice(&f.format, "auto", "auto", "jsonl", "csv"), "format", "input format; auto: gzip by magic bytes, then JSONL if the data starts with '{', else CSV")
	fl.StringVar(&f.csvMap, "csv-map", "", "YAML mapping of CSV columns to event fields (as replay)")
	fl.StringVar(&f.config, "config", "", "rules configuration YAML: its windows and value.measure define the LRFMC figures (default: the built-in defaults)")
	fl.Var(timeValue{&f.calEnd}, "calibration-end", "end of the calibration period: events at or before it are calibration data (required with --input)")
	fl.Var(timeValue{&f.holdoutEnd}, "holdout-end", "end of the hold-out period after --calibration-end; enables the evaluation")
	fl.Var(newChoice(&f.unit, model.UnitWeek, model.UnitDay, model.UnitWeek), "unit", "time unit of the purchase models")
	fl.IntVar(&f.horizonMonths, "horizon-months", 12, "CLV horizon in months")
	fl.Float64Var(&f.discount, "discount", 0.01, "CLV discount rate per month (0.01 = 1 %)")
	fl.StringVar(&f.out, "out", "", "model file to write (JSON; required)")
	fl.IntVar(&f.seed, "seed", 1, "seed of the k-means starts: the same seed gives the same segments")
	fl.Var(countValue{&f.segmentSample}, "segment-sample", "most members the k-means runs on (a deterministic sample; shares are counted over all members) (default 200000)")
	fl.Var(sizeValue{&f.sortMemory}, "sort-memory", "memory for sorting events by time (as replay)")
	fl.StringVar(&f.tempDir, "temp-dir", "", "directory for sort spill files (default: the system temporary directory)")
	fl.Var(newChoice(&f.progress, "auto", "auto", "always", "never"), "progress", "progress bar on standard error; auto: only when it is a terminal")
	fl.Var(sizeValue{&f.memory}, "memory", "memory budget of the --state store")
	f.segmentSample = 200000
	return cmd
}

// fitMember is one member's calibration summary.
type fitMember struct {
	id      operators.MemberID
	rfm     model.RFM // purchase summary, in the unit
	spend   model.RFM // Gamma-Gamma input (X: repeat days held, MeanValue)
	lrfmc   operators.LRFMC
	lastDay int32 // UTC day of the last calibration booking
}

func runFit(cmd *cobra.Command, s streams, f *fitFlags) (retErr error) {
	switch {
	case f.input == "" && f.stateDir == "":
		return usagef(`--input: required; give the events file ("-" for standard input), or --state DIR for the states of a "replay --state"`)
	case f.input != "" && f.stateDir != "":
		return usagef("--input and --state: give one of them, not both")
	case f.out == "":
		return usagef("--out: required; give the model file to write, e.g. --out model.json")
	case f.input != "" && f.calEnd.IsZero():
		return usagef("--calibration-end: required with --input; give the end of the calibration period, e.g. 2026-01-01T00:00:00Z")
	case f.stateDir != "" && !f.holdoutEnd.IsZero():
		return usagef("--holdout-end: not available with --state (the states hold each member's figures at the end of the replay only); fit from the event file with --input to evaluate")
	case !f.holdoutEnd.IsZero() && !f.holdoutEnd.After(f.calEnd):
		return usagef("--holdout-end: %s is not after --calibration-end %s", f.holdoutEnd.Format(time.RFC3339), f.calEnd.Format(time.RFC3339))
	case f.horizonMonths < 1 || f.horizonMonths > 1200:
		return usagef("--horizon-months: %d; give the CLV horizon in months, 1 to 1200 (e.g. 12)", f.horizonMonths)
	case !(f.discount >= 0 && f.discount < 1):
		return usagef("--discount: %v; give a monthly discount rate from 0 to below 1 (0.01 = 1 %% a month)", f.discount)
	case f.seed < 0:
		return usagef("--seed: %d is negative; give a whole number from 0", f.seed)
	case f.stateDir == "" && cmd.Flags().Changed("memory"):
		return usagef("--memory: only used with --state")
	}
	clvCfg, err := model.MonthlyCLV(f.unit, f.horizonMonths, f.discount)
	if err != nil {
		return usagef("--horizon-months, --discount: %v", err)
	}
	rules, err := loadRulesConfig(f.config)
	if err != nil {
		return err
	}
	// The figures do not depend on a model: fit with none loaded.
	rules.Model, rules.ModelFile, rules.Fitted = nil, "", nil
	engine, err := operators.NewEngine(rules)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	unitDays := 1.0
	if f.unit == model.UnitWeek {
		unitDays = 7
	}
	out, err := createOutput(nil, "--out", f.out)
	if err != nil {
		return err
	}
	defer out.abort()

	start := time.Now()
	var members []fitMember
	var holdout map[operators.MemberID]float64
	var calStart time.Time
	if f.stateDir != "" {
		members, calStart, err = fitFromState(s, f, engine, unitDays)
	} else {
		members, holdout, calStart, err = fitFromEvents(cmd, s, f, engine, unitDays)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(s.err, "fit: %d members with a booking by %s (%.1fs)\n", len(members), f.calEnd.Format(time.RFC3339), time.Since(start).Seconds())
	if len(members) == 0 {
		return fmt.Errorf("no member booked by --calibration-end %s: give a later --calibration-end, or an input with bookings before it", f.calEnd.Format(time.RFC3339))
	}

	file := &model.File{Version: model.FileVersion, Unit: f.unit, CalibrationStart: calStart.UTC(), CalibrationEnd: f.calEnd.UTC(), CLV: &clvCfg}
	if !file.CalibrationEnd.After(file.CalibrationStart) {
		file.CalibrationStart = file.CalibrationEnd.Add(-24 * time.Hour)
	}
	rfms := make([]model.RFM, len(members))
	for i := range members {
		rfms[i] = members[i].rfm
	}
	t0 := time.Now()
	bg, bgDiag, err := model.FitBGNBD(rfms)
	if err != nil {
		return explainFitError(err, f)
	}
	file.BGNBD = &model.FittedBGNBD{Params: bg, Fit: bgDiag}
	fmt.Fprintf(s.err, "fit: BG/NBD in %.2fs\n", time.Since(t0).Seconds())
	t0 = time.Now()
	mbg, mbgDiag, err := model.FitMBGNBD(rfms)
	if err != nil {
		return explainFitError(err, f)
	}
	file.MBGNBD = &model.FittedMBGNBD{Params: mbg, Fit: mbgDiag}
	fmt.Fprintf(s.err, "fit: MBG/NBD in %.2fs\n", time.Since(t0).Seconds())

	var notes []string
	spend := make([]model.RFM, 0, len(members))
	for i := range members {
		spend = append(spend, members[i].spend)
	}
	t0 = time.Now()
	gg, ggFit, err := model.FitGammaGamma(spend)
	switch {
	case errors.Is(err, model.ErrTooFewRepeaters):
		notes = append(notes, "no spend model: fewer than two members with repeat bookings that carry an amount; no CLV")
		file.CLV = nil
	case err != nil:
		notes = append(notes, fmt.Sprintf("no spend model: %v; no CLV", err))
		file.CLV = nil
	default:
		file.GammaGamma = &model.FittedGammaGamma{Params: gg, Fit: ggFit}
		fmt.Fprintf(s.err, "fit: Gamma-Gamma in %.2fs\n", time.Since(t0).Seconds())
	}

	t0 = time.Now()
	seg, err := fitSegments(members, f.segmentSample, uint64(f.seed))
	if err != nil {
		notes = append(notes, fmt.Sprintf("no segments: %v", err))
	} else {
		file.Segments = seg
		fmt.Fprintf(s.err, "fit: segments in %.2fs\n", time.Since(t0).Seconds())
	}

	if holdout != nil {
		end := f.holdoutEnd.UTC()
		file.HoldoutEnd = &end
		hs := make([]model.Holdout, len(members))
		for i := range members {
			hs[i] = model.Holdout{Calibration: members[i].rfm, Transactions: holdout[members[i].id]}
		}
		length := f.holdoutEnd.Sub(f.calEnd).Hours() / 24 / unitDays
		t0 = time.Now()
		ev, err := model.Evaluate(bg, mbg, hs, length)
		if err != nil {
			notes = append(notes, fmt.Sprintf("no evaluation: %v", err))
		} else {
			file.Evaluation = &ev
			fmt.Fprintf(s.err, "fit: evaluation in %.2fs\n", time.Since(t0).Seconds())
		}
	}
	if file.Evaluation != nil {
		file.Chosen, file.Reason = file.Evaluation.Choose()
	} else if mbgDiag.LogLikelihood > bgDiag.LogLikelihood {
		file.Chosen = model.NameMBGNBD
		file.Reason = fmt.Sprintf("no hold-out evaluation: higher log-likelihood on the calibration data, %.1f (MBG/NBD) > %.1f (BG/NBD)", mbgDiag.LogLikelihood, bgDiag.LogLikelihood)
	} else {
		file.Chosen = model.NameBGNBD
		file.Reason = fmt.Sprintf("no hold-out evaluation: higher log-likelihood on the calibration data, %.1f (BG/NBD) ≥ %.1f (MBG/NBD)", bgDiag.LogLikelihood, mbgDiag.LogLikelihood)
	}

	if err := model.Save(out, file); err != nil {
		return fmt.Errorf("--out %s: %w", f.out, err)
	}
	if err := out.commit(); err != nil {
		return err
	}
	if err := writeFitReport(s.out, file, members, notes, f.out); err != nil {
		return err
	}
	fmt.Fprintf(s.err, "fit: done in %.1fs\n", time.Since(start).Seconds())
	return nil
}

// explainFitError says what to do about a purchase model that cannot be
// fitted.
func explainFitError(err error, f *fitFlags) error {
	if errors.Is(err, model.ErrNoRepeat) {
		return fmt.Errorf("%w: no member booked on two different days by --calibration-end %s; give a later --calibration-end or a longer history", err, f.calEnd.Format(time.RFC3339))
	}
	return err
}

// summarise turns a member's state at the calibration end into its
// calibration summary; ok is false for members who did not book before it
// (or were erased).
func summarise(engine *operators.Engine, id operators.MemberID, st *operators.MemberState, calEnd int64, unitDays float64) (fitMember, bool) {
	if st.Deleted() || !st.HasBooked() || st.FirstBooking >= calEnd {
		return fitMember{}, false
	}
	x, tx, T := st.BGNBDStats(calEnd)
	if x == 0 {
		tx = 0
	}
	T = max(T, tx)
	m := fitMember{id: operators.MemberID(strings.Clone(string(id))), rfm: model.RFM{X: float64(x), TX: tx / unitDays, T: T / unitDays},
		lastDay: operators.DayOf(st.LastBooking)}
	m.spend.X, m.spend.MeanValue = operators.SpendSummary(st)
	m.lrfmc = engine.Snapshot(st, calEnd).LRFMC
	return m, true
}

// holdoutMember gathers one member's hold-out bookings and cancellations.
type holdoutMember struct {
	bookings []holdoutBooking
	cancels  []uint64
}

type holdoutBooking struct {
	id  uint64
	day int32
}

func hashID(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// fitFromEvents replays the input up to the calibration end (the member
// states there give the summaries) and collects the hold-out bookings on
// the way.
func fitFromEvents(cmd *cobra.Command, s streams, f *fitFlags, engine *operators.Engine, unitDays float64) ([]fitMember, map[operators.MemberID]float64, time.Time, error) {
	format, err := replay.ParseFormat(f.format)
	if err != nil {
		return nil, nil, time.Time{}, usagef("--format: %v", err)
	}
	var mapping replay.CSVMapping
	if f.csvMap != "" {
		mf, err := openFlagFile("--csv-map", f.csvMap)
		if err != nil {
			return nil, nil, time.Time{}, err
		}
		mapping, err = replay.LoadCSVMapping(mf)
		mf.Close()
		if err != nil {
			return nil, nil, time.Time{}, fmt.Errorf("--csv-map %s: %w", f.csvMap, err)
		}
	}
	in, size, closeIn, err := openInput(s, f.input)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	defer closeIn()

	calEnd := f.calEnd.Unix()
	hasHold := !f.holdoutEnd.IsZero()
	holdEnd := f.holdoutEnd.Unix()
	held := map[operators.MemberID]*holdoutMember{}
	var lastSeen int64
	observe := func(e *operators.Event) {
		lastSeen = max(lastSeen, e.OccurredAt)
		if !hasHold || e.OccurredAt <= calEnd || e.OccurredAt > holdEnd {
			return
		}
		if e.Type != operators.TypeBooking && e.Type != operators.TypeCancellation {
			return
		}
		h := held[e.MemberID]
		if h == nil {
			h = &holdoutMember{}
			held[operators.MemberID(strings.Clone(string(e.MemberID)))] = h
		}
		if e.Type == operators.TypeBooking {
			h.bookings = append(h.bookings, holdoutBooking{id: hashID(e.ID), day: operators.DayOf(e.OccurredAt)})
		} else {
			h.cancels = append(h.cancels, hashID(e.BookingID))
		}
	}
	store := replay.NewMemStore()
	prog := newProgress(s.err, f.progress, size)
	sum, err := replay.Run(cmd.Context(), replay.Config{
		Engine: engine, Store: store, Format: format, CSV: mapping, SortMemory: f.sortMemory, TempDir: f.tempDir,
		Until: f.calEnd, Progress: prog.update, Observe: observe,
	}, prog.wrap(in), io.Discard, nil)
	prog.finish()
	if err != nil {
		return nil, nil, time.Time{}, fmt.Errorf("read %s: %w", f.input, err)
	}
	if sum.RejectedTotal > 0 {
		fmt.Fprintf(s.err, "fit: %d records rejected (run replay with --rejects FILE to see which and why)\n", sum.RejectedTotal)
	}
	if hasHold && lastSeen <= calEnd {
		// Nothing after the calibration end was read: the hold-out is
		// empty, not a period of inactivity.
		return nil, nil, time.Time{}, usagef("--holdout-end: the input has no event after --calibration-end %s; give an earlier --calibration-end", f.calEnd.Format(time.RFC3339))
	}
	var members []fitMember
	first := int64(math.MaxInt64)
	err = store.Range(func(id operators.MemberID, st *operators.MemberState) error {
		if m, ok := summarise(engine, id, st, calEnd, unitDays); ok {
			members = append(members, m)
			first = min(first, st.FirstBooking)
		}
		return nil
	})
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	slices.SortFunc(members, func(a, b fitMember) int { return strings.Compare(string(a.id), string(b.id)) })
	var holdout map[operators.MemberID]float64
	if hasHold {
		holdout = make(map[operators.MemberID]float64, len(held))
		for i := range members {
			h := held[members[i].id]
			if h == nil {
				continue
			}
			holdout[members[i].id] = holdoutTransactions(h, members[i].lastDay)
		}
	}
	calStart := f.calEnd
	if first != math.MaxInt64 {
		calStart = time.Unix(first, 0)
	}
	return members, holdout, calStart, nil
}

// holdoutTransactions counts the distinct UTC days with a hold-out booking
// that was not cancelled in the hold-out, leaving out the day of the last
// calibration booking (the same day is the same transaction).
func holdoutTransactions(h *holdoutMember, lastDay int32) float64 {
	var days []int32
	for _, b := range h.bookings {
		if b.day == lastDay || slices.Contains(h.cancels, b.id) {
			continue
		}
		if !slices.Contains(days, b.day) {
			days = append(days, b.day)
		}
	}
	return float64(len(days))
}

// fitFromState reads the member states of a "replay --state" directory.
func fitFromState(s streams, f *fitFlags, engine *operators.Engine, unitDays float64) (members []fitMember, calStart time.Time, retErr error) {
	st, err := openState(f.stateDir, f.memory, "stop the replay first")
	if err != nil {
		return nil, time.Time{}, err
	}
	defer func() {
		if cerr := st.Close(); cerr != nil && retErr == nil {
			retErr = fmt.Errorf("--state %s: close: %w", f.stateDir, cerr)
		}
	}()
	bs := replay.NewBadgerStore(st.Partition(0))
	cp, err := bs.Checkpoint()
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("--state %s: %w", f.stateDir, err)
	}
	if cp.IsZero() {
		return nil, time.Time{}, usagef("--state: %s holds no replay; run \"churnflow replay --input FILE --state %s\" first, or fit from the events with --input", f.stateDir, f.stateDir)
	}
	if !cp.Done {
		fmt.Fprintf(s.err, "fit: warning: the replay in %s did not finish; fitting on the states it committed\n", f.stateDir)
	}
	var lastClock, lastBooking int64
	var states int
	if err := bs.Range(func(_ operators.MemberID, ms *operators.MemberState) error {
		states++
		lastClock = max(lastClock, ms.Clock)
		if ms.HasBooked() {
			lastBooking = max(lastBooking, ms.LastBooking)
		}
		return nil
	}); err != nil {
		return nil, time.Time{}, fmt.Errorf("--state %s: %w", f.stateDir, err)
	}
	if states == 0 {
		return nil, time.Time{}, usagef("--state: %s holds no member", f.stateDir)
	}
	if f.calEnd.IsZero() {
		f.calEnd = time.Unix(lastClock, 0).UTC()
	} else if f.calEnd.Unix() < lastBooking {
		return nil, time.Time{}, usagef("--calibration-end: the states in %s hold bookings up to %s, after %s, and cannot be split; give a --calibration-end at or after it, or fit from the event file with --input",
			f.stateDir, operators.FormatTime(lastBooking), f.calEnd.Format(time.RFC3339))
	}
	calEnd := f.calEnd.Unix()
	first := int64(math.MaxInt64)
	if err := bs.Range(func(id operators.MemberID, ms *operators.MemberState) error {
		if m, ok := summarise(engine, id, ms, calEnd, unitDays); ok {
			members = append(members, m)
			first = min(first, ms.FirstBooking)
		}
		return nil
	}); err != nil {
		return nil, time.Time{}, fmt.Errorf("--state %s: %w", f.stateDir, err)
	}
	slices.SortFunc(members, func(a, b fitMember) int { return strings.Compare(string(a.id), string(b.id)) })
	calStart = f.calEnd
	if first != math.MaxInt64 {
		calStart = time.Unix(first, 0)
	}
	return members, calStart, nil
}

// fitSegments fits the five LRFMC segments on at most sample members (every
// k-th in member order) and sets each centre's share of all members.
func fitSegments(members []fitMember, sample int, seed uint64) (*model.Segments, error) {
	var sumC float64
	var nC int
	for i := range members {
		if members[i].lrfmc.HasC {
			sumC += members[i].lrfmc.C
			nC++
		}
	}
	meanC := 0.0
	if nC > 0 {
		meanC = sumC / float64(nC)
	}
	step := max(1, (len(members)+sample-1)/sample)
	var rows []model.LRFMC
	for i := 0; i < len(members); i += step {
		rows = append(rows, operators.ModelLRFMC(members[i].lrfmc, meanC))
	}
	kc := model.DefaultKMeansConfig()
	kc.Seed = seed
	seg, err := model.FitSegments(rows, kc)
	if err != nil {
		return nil, err
	}
	// Shares over every member, as live scoring assigns them (an unknown C
	// counts as the fitted mean).
	counts := make([]float64, len(seg.Centres))
	for i := range members {
		c := seg.Nearest(operators.ModelLRFMC(members[i].lrfmc, seg.Stats.Mean[4]))
		for k := range seg.Centres {
			if seg.Centres[k].Name == c.Name {
				counts[k]++
				break
			}
		}
	}
	for k := range counts {
		counts[k] /= float64(len(members))
		seg.Centres[k].Share = counts[k]
	}
	return &seg, nil
}

// writeFitReport prints what was fitted, for people.
func writeFitReport(w io.Writer, file *model.File, members []fitMember, notes []string, path string) error {
	var b strings.Builder
	unit := file.Unit
	fmt.Fprintf(&b, "churnflow fit: %d members who booked by the calibration end (time unit: %s)\n", len(members), unit)
	fmt.Fprintf(&b, "calibration %s to %s", file.CalibrationStart.Format(time.RFC3339), file.CalibrationEnd.Format(time.RFC3339))
	if file.HoldoutEnd != nil {
		fmt.Fprintf(&b, "; hold-out to %s", file.HoldoutEnd.Format(time.RFC3339))
	}
	b.WriteString("\n\n")
	var repeaters int
	for i := range members {
		if members[i].rfm.X > 0 {
			repeaters++
		}
	}
	fmt.Fprintf(&b, "members with a repeat booking day: %d (%.1f %%)\n\n", repeaters, 100*float64(repeaters)/float64(len(members)))

	b.WriteString("Purchase models (maximum likelihood; standard errors in brackets)\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "model\tr\talpha (%ss)\ta\tb\tlog-likelihood\titerations\tconverged\n", unit)
	row := func(name string, v [4]float64, d model.Diagnostics) {
		se := func(k string) string {
			if e, ok := d.StdErr[k]; ok {
				return fmt.Sprintf(" (%.3g)", e)
			}
			return ""
		}
		fmt.Fprintf(tw, "%s\t%.4g%s\t%.4g%s\t%.4g%s\t%.4g%s\t%.2f\t%d\t%v\n", name,
			v[0], se("r"), v[1], se("alpha"), v[2], se("a"), v[3], se("b"), d.LogLikelihood, d.Iterations, d.Converged)
	}
	p := file.BGNBD.Params
	row("BG/NBD", [4]float64{p.R, p.Alpha, p.A, p.B}, file.BGNBD.Fit)
	q := file.MBGNBD.Params
	row("MBG/NBD", [4]float64{q.R, q.Alpha, q.A, q.B}, file.MBGNBD.Fit)
	tw.Flush()
	for _, d := range []struct {
		name string
		d    model.Diagnostics
	}{{"BG/NBD", file.BGNBD.Fit}, {"MBG/NBD", file.MBGNBD.Fit}} {
		if d.d.StdErrNote != "" {
			fmt.Fprintf(&b, "%s: %s\n", d.name, d.d.StdErrNote)
		}
	}
	b.WriteString("\n")

	if gg := file.GammaGamma; gg != nil {
		fmt.Fprintf(&b, "Spend (Gamma-Gamma) on %d members with repeat bookings: p %.4g, q %.4g, gamma %.4g, log-likelihood %.2f\n",
			gg.Fit.Members, gg.Params.P, gg.Params.Q, gg.Params.Gamma, gg.Fit.LogLikelihood)
		verdict := "small: the independence the model assumes is plausible"
		if math.Abs(gg.Fit.Correlation) > 0.3 {
			verdict = "large: spend is not independent of frequency here, read the CLV with care"
		}
		fmt.Fprintf(&b, "correlation of frequency and mean spend: %.3f (%s)\n", gg.Fit.Correlation, verdict)
		if gg.Params.Q > 1 {
			fmt.Fprintf(&b, "population mean value of a transaction: %.2f\n", gg.Params.P*gg.Params.Gamma/(gg.Params.Q-1))
		}
	}
	if c := file.CLV; c != nil {
		fmt.Fprintf(&b, "CLV: %d periods of %g %ss, discount %.4g per period\n", c.Periods, c.PeriodLength, unit, c.DiscountRate)
	}
	b.WriteString("\n")

	if sg := file.Segments; sg != nil {
		b.WriteString("LRFMC segments (k-means, k = 5; centres in original units: L, R days, F bookings a window, M km or revenue, C discount)\n")
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "segment\tshare\tL\tR\tF\tM\tC\t\n")
		order := slices.Clone(sg.Centres)
		slices.SortStableFunc(order, func(x, y model.Centre) int {
			return slices.Index(model.SegmentNames[:], x.Name) - slices.Index(model.SegmentNames[:], y.Name)
		})
		for _, c := range order {
			fmt.Fprintf(tw, "%s\t%.1f %%\t%.0f\t%.0f\t%.1f\t%.0f\t%.2f\t\n", c.Name, 100*c.Share, c.Value.L, c.Value.R, c.Value.F, c.Value.M, c.Value.C)
		}
		tw.Flush()
		b.WriteString("\n")
	}

	if ev := file.Evaluation; ev != nil {
		fmt.Fprintf(&b, "Hold-out evaluation: %d members, %d (%.1f %%) with no booking in the %.1f %ss of hold-out\n",
			ev.Members, ev.Inactive, 100*float64(ev.Inactive)/float64(max(1, ev.Members)), ev.Length, unit)
		b.WriteString("AUC for \"no booking in the hold-out\" (0.5: chance, 1: perfect ranking)\n")
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "score\tAUC\n")
		labels := map[string]string{
			model.ScorePAliveBGNBD:    "P(alive) BG/NBD",
			model.ScorePAliveMBGNBD:   "P(alive) MBG/NBD",
			model.ScoreExpectedBGNBD:  "expected transactions BG/NBD",
			model.ScoreExpectedMBGNBD: "expected transactions MBG/NBD",
			model.ScoreRecency:        "recency baseline (time since last booking)",
		}
		for _, a := range ev.AUC {
			fmt.Fprintf(tw, "%s\t%.4f\n", labels[a.Score], a.AUC)
		}
		tw.Flush()
		b.WriteString("Predicted vs actual hold-out transactions\n")
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "model\tpredicted\tactual\terror\n")
		for _, t := range ev.Totals {
			e := math.NaN()
			if t.Actual > 0 {
				e = 100 * (t.Predicted - t.Actual) / t.Actual
			}
			fmt.Fprintf(tw, "%s\t%.1f\t%.0f\t%+.1f %%\n", t.Model, t.Predicted, t.Actual, e)
		}
		tw.Flush()
		if rec, ok := ev.AUCOf(model.ScoreRecency); ok {
			best, _ := ev.AUCOf(model.ScorePAliveBGNBD)
			if m, _ := ev.AUCOf(model.ScorePAliveMBGNBD); m > best {
				best = m
			}
			if best > rec {
				fmt.Fprintf(&b, "The better P(alive) ranks the inactive members better than recency alone (%.4f > %.4f).\n", best, rec)
			} else {
				fmt.Fprintf(&b, "Recency alone ranks the inactive members at least as well as P(alive) here (%.4f ≥ %.4f): the model adds little on this data.\n", rec, best)
			}
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "Chosen for live scoring: %s (%s)\n", file.Chosen, file.Reason)
	for _, n := range notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	fmt.Fprintf(&b, "wrote %s\n", path)
	_, err := io.WriteString(w, b.String())
	return err
}
