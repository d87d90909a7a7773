package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/churnflow/churnflow/internal/replay"
	"github.com/churnflow/churnflow/operators"
	"github.com/churnflow/churnflow/state"
)

// replayFlags are the settings of "churnflow replay".
type replayFlags struct {
	input      string
	format     string
	csvMap     string
	config     string
	model      string
	until      time.Time
	out        string
	rejects    string
	summary    string
	batch      int
	sortMemory int64
	tempDir    string
	progress   string
	state      string
	memory     int64
}

func newReplayCmd(s streams) *cobra.Command {
	f := &replayFlags{batch: replay.DefaultBatchSize, sortMemory: replay.DefaultSortMemory,
		memory: state.DefaultOptions("").MemoryBudget}
	cmd := &cobra.Command{
		Use:   "replay --input FILE [flags]",
		Short: "Run the rules over a file of events in event time, without Kafka",
		Long: `replay reads events from a file (JSONL, gzip-compressed JSONL, or CSV with a
column mapping), sorts them by occurred_at with bounded memory, applies the
churn rules and fires the members' timers in event time, then writes one alert
JSON object per line. emitted_at is set to triggered_at, so the output of a
replay is reproducible.

Records that fail validation are rejected, not fatal: each goes to --rejects
with its line number and reason, and the run goes on (exit code 0). The summary
on standard error counts events, rejects and alerts, and shows how many members
are active and how many sleeping, by tier and by segment.

With --state DIR the member states live in a Badger store in DIR instead of in
memory, and the replay can be resumed: it commits the states, the alerts and
how many events it has applied after every batch. Run the same command again
with the same --state (after a crash or Ctrl-C) and it carries on where the
last commit left it, appending to --out; together the two runs write the
alerts of one run straight through (an alert written just before the stop
may appear twice, none is lost). A --state directory holds one replay: the
same input and settings are required to resume.`,
		Example: `  churnflow replay --input cmd/churnflow/testdata/sample.jsonl --until 2026-07-01T00:00:00Z
  churnflow replay --input events.jsonl.gz --out alerts.jsonl --rejects rejects.jsonl --summary json
  churnflow replay --input export.csv --csv-map cmd/churnflow/testdata/sample-csv-map.yaml
  zcat events.jsonl.gz | churnflow replay --input - --progress never
  churnflow replay --input events.jsonl.gz --state replay-state --out alerts.jsonl
  churnflow replay --input events.jsonl --model model.json --out alerts.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runReplay(cmd, s, f)
		},
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVar(&f.input, "input", "", `events file to replay (required; "-" for standard input)`)
	fl.Var(newChoice(&f.format, "auto", "auto", "jsonl", "csv"), "format", "input format; auto: gzip by magic bytes, then JSONL if the data starts with '{', else CSV")
	fl.StringVar(&f.csvMap, "csv-map", "", "YAML mapping of CSV columns to event fields (columns, constants, time_layout, time_zone, delimiter)")
	fl.StringVar(&f.config, "config", "", "rules configuration YAML (default: the built-in defaults)")
	fl.StringVar(&f.model, "model", "", "model file written by churnflow fit: P(alive), expected bookings, CLV and fitted segments (docs/model.md; config rules.model_file)")
	fl.Var(timeValue{&f.until}, "until", "event time to replay up to: later events are skipped, timers due until then fire (default: the last event's time)")
	fl.StringVar(&f.out, "out", "", `alerts file, one JSON object per line (default: standard output); with --state, written in place, and appended to when --state holds progress (resume)`)
	fl.StringVar(&f.rejects, "rejects", "", "file for rejected records, one JSON object per line (default: only counted)")
	fl.Var(newChoice(&f.summary, "text", "text", "json", "none"), "summary", "summary on standard error")
	fl.Var(countValue{&f.batch}, "batch", "events applied between two timer firings (alerts do not depend on it)")
	fl.Var(sizeValue{&f.sortMemory}, "sort-memory", "memory for sorting events by time; more input spills to temporary files")
	fl.StringVar(&f.tempDir, "temp-dir", "", "directory for sort spill files (default: the system temporary directory)")
	fl.Var(newChoice(&f.progress, "auto", "auto", "always", "never"), "progress", "progress bar on standard error; auto: only when it is a terminal")
	fl.StringVar(&f.state, "state", "", "directory of a Badger store for the member states: the replay commits its progress there and resumes from it when run again (default: in memory, not resumable)")
	fl.Var(sizeValue{&f.memory}, "memory", "memory budget of the --state store (Badger caches and memtables, member cache); the Go memory limit is set to match, plus --sort-memory, unless GOMEMLIMIT is set")
	return cmd
}

func runReplay(cmd *cobra.Command, s streams, f *replayFlags) (retErr error) {
	if f.input == "" {
		return usagef(`--input: required; give the events file, or "-" for standard input`)
	}
	format, err := replay.ParseFormat(f.format)
	if err != nil {
		return usagef("--format: %v", err)
	}
	engine, err := loadEngine(f.config, f.model)
	if err != nil {
		return err
	}
	if m := engine.Config().Fitted; m != nil {
		fmt.Fprintf(s.err, "churnflow: %s\n", fittedSummary(m))
	}
	var mapping replay.CSVMapping
	if f.csvMap != "" {
		mf, err := openFlagFile("--csv-map", f.csvMap)
		if err != nil {
			return err
		}
		mapping, err = replay.LoadCSVMapping(mf)
		mf.Close()
		if err != nil {
			return fmt.Errorf("--csv-map %s: %w", f.csvMap, err)
		}
		if format == replay.FormatJSONL {
			return usagef("--csv-map: a CSV mapping needs CSV input, but --format is jsonl")
		}
	}

	if f.state == "" && cmd.Flags().Changed("memory") {
		return usagef("--memory: only used with --state")
	}

	in, size, closeIn, err := openInput(s, f.input)
	if err != nil {
		return err
	}
	defer closeIn()

	var store replay.Store
	resuming := false
	if f.state != "" {
		if _, ok := s.getenv("GOMEMLIMIT"); !ok {
			// The store's share, plus the sort's: the sorted events stay
			// on the heap while they are applied.
			old := debug.SetMemoryLimit(state.RecommendedMemoryLimit(f.memory) + f.sortMemory)
			defer debug.SetMemoryLimit(old)
		}
		st, err := openState(f.state, f.memory, "use another --state directory")
		if err != nil {
			return err
		}
		defer func() {
			if cerr := st.Close(); cerr != nil && retErr == nil {
				retErr = fmt.Errorf("--state %s: close: %w", f.state, cerr)
			}
		}()
		bs := replay.NewBadgerStore(st.Partition(0))
		cp, err := bs.Checkpoint()
		if err != nil {
			return fmt.Errorf("--state %s: %w", f.state, err)
		}
		if !cp.IsZero() {
			if size >= 0 && cp.InputBytes != size {
				return differentInput(f.state, cp.InputBytes, size)
			}
			resuming = true
			fmt.Fprintf(s.err, "churnflow: --state %s holds a replay's progress: resuming at event %d of the sorted input%s\n", f.state, cp.Applied, doneNote(cp))
		}
		store = bs
	}

	var out *output
	if f.state != "" {
		out, err = openInPlace(s.out, "--out", f.out, resuming)
	} else {
		out, err = createOutput(s.out, "--out", f.out)
	}
	if err != nil {
		return err
	}
	defer out.abort()
	var rejects *output
	var rejectsW io.Writer
	if f.rejects != "" {
		rejects, err = createOutput(nil, "--rejects", f.rejects)
		if err != nil {
			return err
		}
		defer rejects.abort()
		rejectsW = rejects
	}

	prog := newProgress(s.err, f.progress, size)
	rcfg := replay.Config{
		Engine:     engine,
		Format:     format,
		CSV:        mapping,
		BatchSize:  f.batch,
		SortMemory: f.sortMemory,
		TempDir:    f.tempDir,
		Until:      f.until,
		Progress:   prog.update,
		Store:      store,
	}
	sum, runErr := replay.Run(cmd.Context(), rcfg, prog.wrap(in), out, rejectsW)
	prog.finish()
	if runErr == nil {
		runErr = out.commit()
	}
	if runErr == nil && rejects != nil {
		runErr = rejects.commit()
	}
	if sum != nil {
		if err := writeSummary(s.err, f.summary, sum, f.rejects == ""); err != nil && runErr == nil {
			runErr = err
		}
	}
	var de *replay.DifferentInputError
	switch {
	case errors.As(runErr, &de):
		return differentInput(f.state, de.StoredBytes, de.InputBytes)
	case errors.Is(runErr, replay.ErrSettingsChanged):
		return usagef("--state: %s holds a replay made with other settings (--config, --until, --format, --csv-map); resume it with the same ones, or use a new --state directory", f.state)
	case runErr != nil:
		return fmt.Errorf("replay %s: %w", f.input, runErr)
	}
	return nil
}

func differentInput(dir string, stored, input int64) error {
	if stored == input {
		return usagef("--state: %s holds a replay of a different input (same size, %d bytes, other content); use a new --state directory", dir, input)
	}
	return usagef("--state: %s holds a replay of a different input (%d bytes, this one is %d); use a new --state directory", dir, stored, input)
}

func doneNote(cp replay.Checkpoint) string {
	if cp.Done {
		return " (it was complete: nothing is left to apply)"
	}
	return ""
}

// openState opens the state store in dir with the given memory budget. A
// directory another process holds gets a plain message ending in advice.
func openState(dir string, budget int64, advice string) (*state.Store, error) {
	opts := state.DefaultOptions(dir)
	opts.MemoryBudget = budget
	st, err := state.Open(opts)
	switch {
	case errors.Is(err, state.ErrLocked):
		return nil, fmt.Errorf("--state: %s is in use by another churnflow process; stop it or %s", dir, advice)
	case errors.Is(err, state.ErrNotWritable):
		return nil, usagef("--state: %s is not a writable directory: %w", dir, err)
	case err != nil:
		return nil, fmt.Errorf("--state %s: %w", dir, err)
	}
	return st, nil
}

// openInPlace opens the --out of a replay with --state: standard output,
// or a file written in place (never under a temporary name, since the
// alerts written are acknowledged in the store), appended to when the
// replay resumes.
func openInPlace(stdout io.Writer, flag, path string, appendTo bool) (*output, error) {
	if path == "" || path == "-" {
		return &output{Writer: stdout, done: true}, nil
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return nil, usagef("%s: %q is a directory, not a file", flag, path)
	}
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, usagef("%s: directory %q does not exist", flag, dir)
	}
	mode := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if appendTo {
		mode = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	f, err := os.OpenFile(path, mode, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return &output{Writer: f, f: f, path: path}, nil
}

func writeSummary(w io.Writer, mode string, sum *replay.Summary, noRejectsFile bool) error {
	switch mode {
	case "json":
		return sum.WriteJSON(w)
	case "text":
		if err := sum.WriteText(w); err != nil {
			return err
		}
		if noRejectsFile && sum.RejectedTotal > 0 {
			_, err := fmt.Fprintf(w, "\n%d records were rejected; add --rejects FILE to see which and why.\n", sum.RejectedTotal)
			return err
		}
	}
	return nil
}

// loadRulesConfig reads --config, or returns the defaults.
func loadRulesConfig(path string) (operators.Config, error) {
	if path == "" {
		return operators.DefaultConfig(), nil
	}
	f, err := openFlagFile("--config", path)
	if err != nil {
		return operators.Config{}, err
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return operators.Config{}, fmt.Errorf("--config %s: %w", path, err)
	}
	cfg, err := operators.LoadConfig(bytes.NewReader(rulesSection(data)))
	if err != nil {
		return cfg, fmt.Errorf("--config %s: %w", path, err)
	}
	return cfg, nil
}

// loadEngine builds the rules engine from --config (the defaults when
// empty) and the fitted model of --model or the rules' model_file.
func loadEngine(path, modelPath string) (*operators.Engine, error) {
	rules, err := loadRulesConfig(path)
	if err != nil {
		return nil, err
	}
	if err := applyModelFile(&rules, modelPath); err != nil {
		return nil, err
	}
	engine, err := operators.NewEngine(rules)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	return engine, nil
}

// rulesSection returns the rules of a configuration file: the file itself
// when it is a rules document, or its "rules" section when it is a whole
// `churnflow run` configuration (kafka, state, http, log, rules), so one
// file (and one CHURNFLOW_CONFIG) serves every command.
func rulesSection(data []byte) []byte {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return data // let LoadConfig report what is wrong
	}
	m := doc.Content[0]
	whole := false
	var rules *yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		switch m.Content[i].Value {
		case "kafka", "state", "http", "log":
			whole = true
		case "rules":
			whole, rules = true, m.Content[i+1]
		}
	}
	if !whole {
		return data
	}
	if rules == nil {
		return nil // a run configuration without rules: the defaults
	}
	out, err := yaml.Marshal(rules)
	if err != nil {
		return data
	}
	return out
}

// openFlagFile opens a file named by a flag, with a plain message when it
// is missing or unreadable.
func openFlagFile(flag, path string) (*os.File, error) {
	f, err := os.Open(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, usagef("%s: file %q does not exist", flag, path)
	case errors.Is(err, fs.ErrPermission):
		return nil, usagef("%s: file %q is not readable (permission denied)", flag, path)
	case err != nil:
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	if st, err := f.Stat(); err == nil && st.IsDir() {
		f.Close()
		return nil, usagef("%s: %q is a directory, not a file", flag, path)
	}
	return f, nil
}

// openInput opens --input and returns its size (-1 if unknown).
func openInput(s streams, path string) (io.Reader, int64, func(), error) {
	if path == "-" {
		return s.in, -1, func() {}, nil
	}
	f, err := openFlagFile("--input", path)
	if err != nil {
		return nil, 0, nil, err
	}
	size := int64(-1)
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		size = st.Size()
	}
	return f, size, func() { f.Close() }, nil
}

// output is where results go: standard output; a device, pipe or symlink
// written in place; or a regular file written under a temporary name and
// renamed into place on commit, so that a failed run leaves no
// half-written file behind.
type output struct {
	io.Writer
	f      *os.File
	path   string
	rename bool // f is a temporary file to rename to path
	done   bool
}

func createOutput(stdout io.Writer, flag, path string) (*output, error) {
	if path == "" || path == "-" {
		if stdout == nil {
			return nil, usagef("%s: give a file name", flag)
		}
		return &output{Writer: stdout, done: true}, nil
	}
	if st, err := os.Lstat(path); err == nil && !st.Mode().IsRegular() {
		if st.IsDir() {
			return nil, usagef("%s: %q is a directory, not a file", flag, path)
		}
		// /dev/stdout, a named pipe, a symlink: never replace it.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", flag, err)
		}
		return &output{Writer: f, f: f, path: path}, nil
	}
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, usagef("%s: directory %q does not exist", flag, dir)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return &output{Writer: f, f: f, path: path, rename: true}, nil
}

func (o *output) commit() error {
	if o.done {
		return nil
	}
	o.done = true
	if !o.rename {
		if err := o.f.Close(); err != nil {
			return fmt.Errorf("write %s: %w", o.path, err)
		}
		return nil
	}
	err := o.f.Chmod(0o644)
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(o.f.Name(), o.path)
	}
	if err != nil {
		os.Remove(o.f.Name())
		return fmt.Errorf("write %s: %w", o.path, err)
	}
	return nil
}

// abort discards a temporary file (a file written in place is only closed).
func (o *output) abort() {
	if o.done {
		return
	}
	o.done = true
	o.f.Close()
	if o.rename {
		os.Remove(o.f.Name())
	}
}
