package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/churnflow/churnflow/operators"
	"github.com/churnflow/churnflow/state"
)

// inspectMemory is the memory budget of a store opened for inspection.
// Inspection reads little, but Badger replays the write-ahead log a crash
// left into a memtable sized from the budget, and exits the process when
// the log does not fit (a memtable smaller than the writer's): so take the
// default budget, the one replay and the pipeline use unless told
// otherwise.
var inspectMemory = state.DefaultOptions("").MemoryBudget

// inspectFlags are the settings of "churnflow inspect".
type inspectFlags struct {
	state  string
	config string
	model  string
	json   bool
}

func newInspectCmd(s streams) *cobra.Command {
	f := &inspectFlags{}
	cmd := &cobra.Command{
		Use:   "inspect",
		Short: "Show what a state directory holds: one member, or counts",
		Long: `inspect opens a state directory (of "churnflow replay --state" or of the
pipeline) and shows one member's state or what the store holds. The directory
must not be in use: stop the process that holds it, or inspect a copy.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usagef("give what to inspect: member ID or stats")
		},
	}
	cmd.PersistentFlags().StringVar(&f.state, "state", "", "state directory to inspect (required)")

	member := &cobra.Command{
		Use:   "member ID --state DIR",
		Short: "Print one member's state as JSON",
		Long: `member finds the member in any partition of the store and prints its state as
one JSON object: tier, region, account manager, segment, stage, dormancy, the
LRFMC figures and value score as of the member's clock (under the rules of
--config, default the built-in ones; with --model also P(alive), the expected
bookings of the next 90 days and the CLV), the clock and next timer (due), bookings,
booking days, points balance, booking history length and open trips. An
unknown member exits with code 1.`,
		Example: `  churnflow inspect member M0042 --state replay-state`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInspectMember(s, f, operators.MemberID(args[0]))
		},
	}
	member.Flags().StringVar(&f.config, "config", "", "rules configuration YAML for the figures (default: the built-in defaults)")
	member.Flags().StringVar(&f.model, "model", "", "model file written by churnflow fit: adds P(alive), expected bookings and CLV, and the fitted segment")

	stats := &cobra.Command{
		Use:   "stats --state DIR",
		Short: "Count members, timers, outbox records, dedup markers and bytes on disk",
		Example: `  churnflow inspect stats --state replay-state
  churnflow inspect stats --state replay-state --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runInspectStats(s, f)
		},
	}
	stats.Flags().BoolVar(&f.json, "json", false, "print one JSON object instead of text")

	cmd.AddCommand(member, stats)
	return cmd
}

// openInspected opens the store of --state for reading. It refuses a
// missing directory or one that holds no Badger store, rather than
// creating one.
func openInspected(dir string) (*state.Store, error) {
	if dir == "" {
		return nil, usagef("--state: required; give the state directory to inspect")
	}
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, usagef("--state: directory %q does not exist", dir)
	case err != nil:
		return nil, fmt.Errorf("--state: %w", err)
	case !st.IsDir():
		return nil, usagef("--state: %q is not a directory", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); err != nil {
		return nil, usagef("--state: %q holds no churnflow state", dir)
	}
	return openState(dir, inspectMemory, "inspect a copy")
}

// runInspectMember prints the member's operators.MemberReport as JSON.
func runInspectMember(s streams, f *inspectFlags, id operators.MemberID) (retErr error) {
	engine, err := loadEngine(f.config, f.model)
	if err != nil {
		return err
	}
	st, err := openInspected(f.state)
	if err != nil {
		return err
	}
	defer func() { retErr = errors.Join(retErr, closeInspected(f.state, st)) }()
	parts, err := st.Partitions()
	if err != nil {
		return fmt.Errorf("--state %s: %w", f.state, err)
	}
	var ms operators.MemberState
	for _, p := range parts {
		found, err := st.Partition(p).Get(id, &ms)
		if err != nil {
			return fmt.Errorf("--state %s: read member: %w", f.state, err)
		}
		if !found {
			continue
		}
		rep := engine.Report(id, &ms, ms.Clock)
		rep.Partition = int32(p)
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return fmt.Errorf("encode member: %w", err)
		}
		_, err = s.out.Write(append(b, '\n'))
		return err
	}
	return fmt.Errorf("member %q: not found in --state %s (%d partitions searched)", id, f.state, len(parts))
}

func closeInspected(dir string, st *state.Store) error {
	if err := st.Close(); err != nil {
		return fmt.Errorf("--state %s: close: %w", dir, err)
	}
	return nil
}

// statsReport is the JSON "inspect stats --json" prints.
type statsReport struct {
	Dir          string            `json:"dir"`
	Partitions   []state.Partition `json:"partitions"`
	Members      int64             `json:"members"`
	Timers       int64             `json:"timers"`
	OutboxDepth  int64             `json:"outbox_depth"`
	DedupMarkers int64             `json:"dedup_markers"`
	DiskBytes    int64             `json:"disk_bytes"`
}

func runInspectStats(s streams, f *inspectFlags) (retErr error) {
	st, err := openInspected(f.state)
	if err != nil {
		return err
	}
	defer func() { retErr = errors.Join(retErr, closeInspected(f.state, st)) }()
	stats, err := st.Stats()
	if err != nil {
		return fmt.Errorf("--state %s: %w", f.state, err)
	}
	rep := statsReport{
		Dir: f.state, Partitions: stats.Partitions, Members: stats.Members, Timers: stats.Timers,
		OutboxDepth: stats.OutboxDepth, DedupMarkers: stats.DedupMarkers, DiskBytes: stats.DiskBytes,
	}
	if rep.Partitions == nil {
		rep.Partitions = []state.Partition{}
	}
	if f.json {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return fmt.Errorf("encode stats: %w", err)
		}
		_, err = s.out.Write(append(b, '\n'))
		return err
	}
	return writeStatsText(s.out, &rep)
}

func writeStatsText(w io.Writer, r *statsReport) error {
	parts := make([]string, len(r.Partitions))
	for i, p := range r.Partitions {
		parts[i] = strconv.Itoa(int(p))
	}
	partText := strings.Join(parts, ", ")
	if partText == "" {
		partText = "none"
	}
	rows := [][2]string{
		{"state", r.Dir},
		{"partitions", partText},
		{"members", strconv.FormatInt(r.Members, 10)},
		{"timers", strconv.FormatInt(r.Timers, 10)},
		{"outbox depth", strconv.FormatInt(r.OutboxDepth, 10)},
		{"dedup markers", strconv.FormatInt(r.DedupMarkers, 10)},
		{"bytes on disk", fmt.Sprintf("%d (%s)", r.DiskBytes, humanBytes(r.DiskBytes))},
	}
	var b strings.Builder
	for _, row := range rows {
		fmt.Fprintf(&b, "%-14s %s\n", row[0], row[1])
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// humanBytes renders a byte count with a binary unit, one decimal.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
