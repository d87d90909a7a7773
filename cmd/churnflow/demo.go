package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/spf13/cobra"

	"github.com/churnflow/churnflow/internal/demo"
)

type demoFlags struct {
	duration     time.Duration
	members      int
	speed        float64
	http         string
	apiToken     string
	seed         int
	badRate      float64
	perSecond    int
	summaryEvery time.Duration
	logLevel     string
	model        string
}

func newDemoCmd(s streams) *cobra.Command {
	def := demo.DefaultConfig()
	f := &demoFlags{duration: def.Duration, members: def.Members, speed: def.Speed, http: "127.0.0.1:8080",
		seed: int(def.Seed), badRate: def.BadRate, perSecond: def.AlertsPerSecond, summaryEvery: def.SummaryEvery}
	cmd := &cobra.Command{
		Use:   "demo [--duration 60s] [--members 10000] [--speed 86400] [--seed N]",
		Short: "Show churnflow at work in one command: broker, generator and pipeline in-process",
		Long: fmt.Sprintf(`demo needs nothing installed and nothing set up. It starts an embedded,
in-memory Kafka-protocol broker on 127.0.0.1 (a free port), the real pipeline
(talking to that broker over TCP exactly as to a Kafka cluster, with its state
in a temporary directory) and a synthetic loyalty programme that produces
booking and activity events into the input topics. It prints the alerts as a
downstream subscriber reads them from the output topics (who, why, what to
do), a summary every few seconds (events/s, alerts by type, dead letters by
reason, members active and sleeping by tier), and stops after --duration or on
Ctrl-C: the generator stops, the pipeline finishes its batch and flushes its
outbox, a final summary is printed, the broker closes and the temporary
directory is removed.

Time is compressed: a simulated clock runs --speed simulated seconds per wall
second (86400: a day a second) from %s. A year of history is back-filled as
fast as the broker takes it, then each event is produced when the simulated
clock reaches it; the pipeline's clock is the simulated clock, so silent
members fall dormant. In the default minute the simulated clock crosses
1 November, when the tier qualification period's last 60 days begin: every
kind of alert shows up (dormancy, reactivated, retention, upgrade and
keep-tier nudges, first redemption, cross-sell, segment changes), and
--bad-rate malformed records go to the dead-letter topic.

Memory: the embedded broker keeps every record in RAM (about 0.7 KB each), so
the demo refuses runs of more than about %d records (~700 MB): roughly
members x (0.75 + 0.11 x simulated days), where simulated days are 365 of
history plus --duration x --speed. The defaults make about 470,000 records
(~330 MB); --members 20000 still fits the default minute.

--http ADDR serves the pipeline's /metrics, /healthz, /readyz and the member
API (/v1/members/{id}, /v1/stats) while the demo runs; the API's bearer token
is --api-token, or a random one printed at the start.`,
			demo.DefaultNow.Format(time.DateOnly), demo.MaxRecords),
		Example: `  go run ./cmd/churnflow demo
  churnflow demo --duration 30s --members 2000
  churnflow demo --speed 432000 --duration 20s   # five days a second
  churnflow demo --model model.json             # score with a fitted model (churnflow fit)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDemo(cmd, s, f) },
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.DurationVar(&f.duration, "duration", f.duration, "how long to run (wall time)")
	fl.Var(countValue{&f.members}, "members", "population size")
	fl.Float64Var(&f.speed, "speed", f.speed, "simulated seconds per wall second (86400: a day a second)")
	fl.StringVar(&f.http, "http", f.http, "serve /metrics, /healthz, /readyz and the member API on this address (only when given)")
	fl.StringVar(&f.apiToken, "api-token", "", "bearer token of the member API with --http (default: a random one, printed)")
	fl.IntVar(&f.seed, "seed", f.seed, "seed: the same seed gives the same population")
	fl.Float64Var(&f.badRate, "bad-rate", f.badRate, "share of malformed records produced (0 to 0.5): they show as dead letters")
	fl.IntVar(&f.perSecond, "alerts-per-second", f.perSecond, "most alert lines printed a second (0: none; the others are counted)")
	fl.DurationVar(&f.summaryEvery, "summary-every", f.summaryEvery, "how often to print the summary")
	fl.Var(newChoice(&f.logLevel, "warn", logLevels...), "log-level", "level of the pipeline's logs (on standard error)")
	fl.StringVar(&f.model, "model", "", "model file written by churnflow fit: score members with it (P(alive), expected bookings, CLV, fitted segments)")
	return cmd
}

func runDemo(cmd *cobra.Command, s streams, f *demoFlags) error {
	switch {
	case f.duration <= 0 || f.duration > 24*time.Hour:
		return usagef("--duration: %v; give a positive duration up to 24h, e.g. 60s", f.duration)
	case !(f.speed >= 1 && f.speed <= 1e7) || math.IsNaN(f.speed):
		return usagef("--speed: %v; give simulated seconds per second from 1 to 10000000 (86400: a day a second)", f.speed)
	case f.seed < 0:
		return usagef("--seed: %d is negative; give a whole number from 0", f.seed)
	case !(f.badRate >= 0 && f.badRate <= 0.5):
		return usagef("--bad-rate: %v is out of range; give a share from 0 to 0.5, e.g. 0.002", f.badRate)
	case f.perSecond < 0:
		return usagef("--alerts-per-second: %d is negative", f.perSecond)
	case f.summaryEvery < 100*time.Millisecond:
		return usagef("--summary-every: %v; give at least 100ms, e.g. 5s", f.summaryEvery)
	}
	cfg := demo.DefaultConfig()
	cfg.Duration, cfg.Members, cfg.Speed, cfg.Seed, cfg.BadRate = f.duration, f.members, f.speed, uint64(f.seed), f.badRate
	cfg.AlertsPerSecond, cfg.SummaryEvery = f.perSecond, f.summaryEvery
	cfg.Color = isTerminal(s.out)
	cfg.Log = newLogger(s.err, LogConfig{Level: f.logLevel, Format: "auto"})
	if err := cfg.Validate(); err != nil {
		if errors.Is(err, demo.ErrTooBig) {
			return usagef("--members, --duration, --speed: %v", err)
		}
		return usagef("%v", err)
	}
	if f.model != "" {
		m, err := readModelFile("--model", f.model)
		if err != nil {
			return err
		}
		cfg.Model = m
		fmt.Fprintf(s.err, "churnflow: %s\n", fittedSummary(m))
	}
	if cmd.Flags().Changed("http") {
		cfg.HTTP, cfg.APIToken = f.http, f.apiToken
		if cfg.APIToken == "" {
			var b [16]byte
			if _, err := rand.Read(b[:]); err != nil {
				return fmt.Errorf("api token: %w", err)
			}
			cfg.APIToken = hex.EncodeToString(b[:])
		}
	}
	if _, err := demo.Run(cmd.Context(), cfg, s.out); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return nil
}
