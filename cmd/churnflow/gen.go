package main

import (
	"bufio"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/churnflow/churnflow/internal/gen"
	"github.com/churnflow/churnflow/operators"
)

type genFlags struct {
	members int
	start   time.Time
	days    int
	seed    int
	badRate float64
	out     string
}

func newGenCmd(s streams) *cobra.Command {
	def := gen.DefaultConfig()
	f := &genFlags{members: def.Members, start: def.Start, days: def.Days, seed: int(def.Seed), badRate: def.BadRate}
	cmd := &cobra.Command{
		Use:   "gen --out FILE [flags]",
		Short: "Generate a synthetic, reproducible member population's events",
		Long: `gen writes the booking and activity events of a synthetic loyalty programme as
JSON lines in time order: members enrol over time, book at heterogeneous rates
(BG/NBD: Poisson bookings with gamma-distributed rates, and a chance to drop
out for good after each booking), cancel, use the app, earn and redeem points,
change tier. With --bad-rate a share of malformed records is mixed in. The
same flags give the same bytes.`,
		Example: `  churnflow gen --members 10000 --days 730 --out events.jsonl
  churnflow gen --members 500 --bad-rate 0.01 --seed 7 --out - | churnflow replay --input -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runGen(s, f) },
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.Var(countValue{&f.members}, "members", "population size")
	fl.Var(dateValue{&f.start}, "start", "first day of the simulated span (YYYY-MM-DD)")
	fl.Var(countValue{&f.days}, "days", "length of the simulated span in days")
	fl.IntVar(&f.seed, "seed", f.seed, "seed: the same seed gives the same population")
	fl.Float64Var(&f.badRate, "bad-rate", f.badRate, "share of malformed records to mix in (0 to 0.5)")
	fl.StringVar(&f.out, "out", "", `output file ("-" for standard output)`)
	return cmd
}

func runGen(s streams, f *genFlags) error {
	if f.out == "" {
		return usagef(`--out: required; give a file name, or "-" for standard output`)
	}
	if f.badRate < 0 || f.badRate > 0.5 {
		return usagef("--bad-rate: %v is out of range; give a share from 0 to 0.5, e.g. 0.01", f.badRate)
	}
	if f.seed < 0 {
		return usagef("--seed: %d is negative; give a whole number from 0", f.seed)
	}
	cfg := gen.DefaultConfig()
	cfg.Members, cfg.Start, cfg.Days, cfg.Seed, cfg.BadRate = f.members, f.start, f.days, uint64(f.seed), f.badRate
	cfg.Tiers = operators.DefaultConfig().Tiers
	if err := cfg.Validate(); err != nil {
		return usagef("%v", err)
	}
	out, err := createOutput(s.out, "--out", f.out)
	if err != nil {
		return err
	}
	defer out.abort()
	w := bufio.NewWriterSize(out, 1<<20)
	st, err := gen.WriteJSONL(w, cfg)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = out.commit()
	}
	if err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	fmt.Fprintf(s.err, "gen: %d records (%d malformed) for %d members, %s to %s, %s\n",
		st.Records, st.Bad, st.Members, operators.FormatTime(st.First), operators.FormatTime(st.Last), byteSize(st.Bytes))
	return nil
}

// dateValue is a YYYY-MM-DD date at midnight UTC.
type dateValue struct{ v *time.Time }

func (d dateValue) String() string { return d.v.Format(time.DateOnly) }
func (d dateValue) Type() string   { return "YYYY-MM-DD" }
func (d dateValue) Set(s string) error {
	v, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return fmt.Errorf("%q is not a date (example: 2025-01-01)", s)
	}
	*d.v = v
	return nil
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<30), 'f', 1, 64) + " GiB"
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}
