package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/churnflow/churnflow/internal/devbroker"
	"github.com/churnflow/churnflow/internal/gen"
	"github.com/churnflow/churnflow/internal/httpapi"
	"github.com/churnflow/churnflow/model"
	"github.com/churnflow/churnflow/operators"
	"github.com/churnflow/churnflow/pipeline"
	"github.com/churnflow/churnflow/state"
)

// Config configures a demo run. Start from DefaultConfig; Validate names
// the bad field.
type Config struct {
	// Duration is how long the demo runs in wall time. Default 60s.
	Duration time.Duration
	// Members is the population size. Default 10000.
	Members int
	// Speed is simulated seconds per wall second. Default 86400 (a day a
	// second).
	Speed float64
	// Seed selects the population. Default 1.
	Seed uint64
	// BadRate is the share of malformed records produced (dead letters).
	// Default 0.002.
	BadRate float64
	// Now is the simulated time when the demo starts. Default 2025-10-15:
	// in the default minute the simulated clock crosses 1 November, when
	// the last 60 days of the calendar-year tier qualification period (the
	// upgrade and keep-tier nudges' window) begin.
	Now time.Time
	// HistoryDays is how much history before Now is back-filled. Default
	// 365.
	HistoryDays int
	// Partitions of every topic. Default 8.
	Partitions int32
	// AlertsPerSecond bounds the alert lines printed a second. Default 10.
	AlertsPerSecond int
	// SummaryEvery is the period of the summary. Default 5s.
	SummaryEvery time.Duration
	// Color colours the output (for a terminal). Default false.
	Color bool
	// Log receives the broker's, the pipeline's and the store's logs. The
	// zero value discards them.
	Log zerolog.Logger
	// TempDir is where the state directory is created (and removed at the
	// end). Default "": os.TempDir().
	TempDir string
	// HTTP is the address of /metrics, /healthz, /readyz and the member
	// API (internal/httpapi). Empty: none.
	HTTP string
	// APIToken is the member API's bearer token (with HTTP).
	APIToken string
	// Model is a fitted model (churnflow fit) the rules score members with
	// (operators.Config.Fitted). Nil: the threshold rules.
	Model *model.File
}

// Defaults of Config.
const (
	DefaultDuration        = 60 * time.Second
	DefaultMembers         = 10000
	DefaultSpeed           = 86400
	DefaultBadRate         = 0.002
	DefaultHistoryDays     = 365
	DefaultAlertsPerSecond = 10
	DefaultSummaryEvery    = 5 * time.Second
)

// MaxRecords bounds the records the demo may produce: the embedded broker
// keeps every record in RAM, about 0.7 KB each, so a million records take
// about 700 MB.
const MaxRecords = 1_000_000

// DefaultNow is the default simulated start.
var DefaultNow = time.Date(2025, 10, 15, 0, 0, 0, 0, time.UTC)

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Duration:        DefaultDuration,
		Members:         DefaultMembers,
		Speed:           DefaultSpeed,
		Seed:            1,
		BadRate:         DefaultBadRate,
		Now:             DefaultNow,
		HistoryDays:     DefaultHistoryDays,
		Partitions:      8,
		AlertsPerSecond: DefaultAlertsPerSecond,
		SummaryEvery:    DefaultSummaryEvery,
	}
}

// SimulatedDays is the span the generator covers: the history and the
// simulated time the run lasts, plus a day.
func (c *Config) SimulatedDays() int {
	live := c.Duration.Seconds() * c.Speed / 86400
	return c.HistoryDays + int(math.Ceil(live)) + 1
}

// EstimatedRecords estimates the records the demo produces (measured with
// the default generator: about 0.1 records per member and simulated day,
// plus the enrolments of the members who joined before the span).
func (c *Config) EstimatedRecords() int64 {
	return int64(float64(c.Members) * (0.75 + 0.11*float64(c.SimulatedDays())))
}

// Validate reports the first setting that is wrong, naming its field.
func (c *Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("demo config %s: %s", field, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Duration <= 0 || c.Duration > 24*time.Hour:
		return bad("Duration", "must be positive and at most 24h, got %v", c.Duration)
	case c.Members < 1:
		return bad("Members", "must be at least 1, got %d", c.Members)
	case !(c.Speed >= 1 && c.Speed <= 1e7):
		return bad("Speed", "must be 1 to 10000000 simulated seconds per second, got %g", c.Speed)
	case !(c.BadRate >= 0 && c.BadRate <= 0.5):
		return bad("BadRate", "must be in [0, 0.5], got %g", c.BadRate)
	case c.Now.IsZero():
		return bad("Now", "must be set")
	case c.HistoryDays < 1 || c.HistoryDays > 3650:
		return bad("HistoryDays", "must be 1 to 3650, got %d", c.HistoryDays)
	case c.Partitions < 1 || c.Partitions > 64:
		return bad("Partitions", "must be 1 to 64, got %d", c.Partitions)
	case c.AlertsPerSecond < 0:
		return bad("AlertsPerSecond", "must not be negative, got %d", c.AlertsPerSecond)
	case c.SummaryEvery <= 0:
		return bad("SummaryEvery", "must be positive, got %v", c.SummaryEvery)
	case c.SimulatedDays() > 36500-c.HistoryDays:
		return bad("Duration", "%v at speed %g is more than a century of simulated time", c.Duration, c.Speed)
	}
	if n := c.EstimatedRecords(); n > MaxRecords {
		return fmt.Errorf("%w: %d members over %d simulated days make about %d records (at most %d: about 0.7 KB each in the embedded broker's RAM); give fewer members, a shorter duration or a lower speed",
			ErrTooBig, c.Members, c.SimulatedDays(), n, MaxRecords)
	}
	return nil
}

// ErrTooBig means the run would produce more records than the embedded
// broker should hold in RAM (MaxRecords).
var ErrTooBig = errors.New("demo: too many records for the embedded broker")

// Result is what a run saw, for tests.
type Result struct {
	Produced     int64            // records produced to the input topics
	Processed    int64            // records the pipeline committed
	Alerts       map[string]int64 // alerts read back, by type (segment changes: records on the topic)
	DeadLetters  map[string]int64 // dead letters read back, by reason
	Active       int64            // members active at the end
	Sleeping     int64            // members sleeping at the end
	SimulatedEnd time.Time        // the simulated clock at the end
}

// Run runs the demo until cfg.Duration has passed or ctx ends, printing to
// out, and cleans up after itself: the pipeline, the generator and the
// subscriber stop, the broker closes and the state directory is removed.
// Ending by ctx is not an error.
func Run(ctx context.Context, cfg Config, out io.Writer) (res Result, err error) {
	if err := cfg.Validate(); err != nil {
		return res, err
	}
	log := cfg.Log
	topics := pipeline.DefaultTopics()

	bcfg := devbroker.DefaultConfig()
	bcfg.Listen, bcfg.Partitions, bcfg.Topics = "127.0.0.1:0", cfg.Partitions, topics
	broker, err := devbroker.Start(bcfg)
	if err != nil {
		return res, fmt.Errorf("start the embedded broker: %w", err)
	}
	defer broker.Close()
	brokers := []string{broker.Addr()}

	dir, err := os.MkdirTemp(cfg.TempDir, "churnflow-demo-")
	if err != nil {
		return res, fmt.Errorf("create the state directory: %w", err)
	}
	defer func() {
		if rerr := os.RemoveAll(dir); rerr != nil {
			err = errors.Join(err, fmt.Errorf("remove the state directory: %w", rerr))
		}
	}()
	opts := state.DefaultOptions(dir)
	opts.MemoryBudget = 128 << 20
	opts.GCInterval = 0
	opts.Logger = log.With().Str("component", "state").Logger()
	store, err := state.Open(opts)
	if err != nil {
		return res, fmt.Errorf("open the state store: %w", err)
	}
	defer func() {
		if cerr := store.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close the state store: %w", cerr))
		}
	}()

	rules := operators.DefaultConfig()
	rules.Fitted = cfg.Model
	engine, err := operators.NewEngine(rules)
	if err != nil {
		return res, fmt.Errorf("rules: %w", err)
	}
	gcfg := gen.DefaultConfig()
	gcfg.Members, gcfg.Seed, gcfg.BadRate = cfg.Members, cfg.Seed, cfg.BadRate
	gcfg.Start = cfg.Now.AddDate(0, 0, -cfg.HistoryDays)
	gcfg.Days = cfg.SimulatedDays()
	gcfg.Tiers = rules.Tiers
	gcfg.QualificationStartMonth = rules.Period.StartMonth
	stream, err := gen.NewStream(gcfg)
	if err != nil {
		return res, fmt.Errorf("generator: %w", err)
	}

	sim := newSimClock(cfg.Now, cfg.Speed)
	// The first records are the enrolments of members who joined up to
	// TenureYears before the span.
	first := gcfg.Start.Add(-time.Duration(gcfg.TenureYears*366) * 24 * time.Hour)
	pclock := newPipelineClock(sim, time.Second, first.Unix())
	pcfg := pipeline.DefaultConfig()
	pcfg.Brokers, pcfg.Group, pcfg.Topics, pcfg.CreateTopics = brokers, "churnflow-demo", topics, true
	// Idle means no record for half a second of wall time.
	pcfg.IdleAfter = max(pipeline.DefaultIdleAfter, time.Duration(cfg.Speed*float64(500*time.Millisecond)))
	// The pipeline's clock trails the records during the back-fill (doc.go).
	pcfg.MaxFuture = gcfg.End().Sub(first) + 24*time.Hour
	deps := pipeline.Deps{Engine: engine, Store: store, Clock: pclock.Now, Log: log.With().Str("component", "pipeline").Logger()}
	var reg *prometheus.Registry
	if cfg.HTTP != "" {
		reg, deps.Metrics = httpapi.NewRegistry(store)
	}
	p, err := pipeline.New(pcfg, deps)
	if err != nil {
		return res, fmt.Errorf("pipeline: %w", err)
	}
	if cfg.HTTP != "" {
		api, err := httpapi.New(httpapi.Options{Gatherer: reg, Status: p.Status, Store: store, Engine: engine,
			Token: cfg.APIToken, Owner: p.PartitionOwner, Clock: pclock.Now, Log: log})
		if err != nil {
			return res, err
		}
		ln, err := httpapi.Listen(cfg.HTTP, api, log)
		if err != nil {
			return res, err
		}
		defer ln.Close()
		sctx, stopSampling := context.WithCancel(ctx)
		defer stopSampling()
		go api.SampleEvery(sctx, time.Minute)
		fmt.Fprintf(out, "http: http://%s/metrics, /healthz, /readyz; member API: curl -H 'Authorization: Bearer %s' http://%s/v1/members/M0000001\n",
			ln.Addr, cfg.APIToken, ln.Addr)
	}

	pr := newPrinter(out, cfg.Color, cfg.AlertsPerSecond)
	sub := newSubscriber(brokers, topics, pr)
	prod := newProducer(stream, brokers, topics, sim, pclock)
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second, Transport: &kafka.Transport{}}
	defer client.Transport.(*kafka.Transport).CloseIdleConnections()
	sum := &summarizer{cfg: &cfg, sim: sim, pclock: pclock, prod: prod, sub: sub, store: store, engine: engine,
		client: client, topics: topics, print: pr, start: time.Now()}

	pr.block(sum.banner(broker.Addr(), dir, gcfg))

	// The pipeline and the subscriber stop after the generator, each in
	// its turn (below), whatever ends the run.
	failed := make(chan struct{}, 3)
	start := func(ctx context.Context, name string, f func(context.Context) error) *task {
		t := &task{name: name, done: make(chan struct{})}
		go func() {
			defer close(t.done)
			if t.err = f(ctx); t.err != nil {
				failed <- struct{}{}
			}
		}()
		return t
	}
	pctx, stopPipeline := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPipeline()
	gctx, stopGen := context.WithCancel(ctx)
	defer stopGen()
	sctx, stopSub := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSub()
	pipeTask := start(pctx, "pipeline", func(ctx context.Context) error {
		err := p.Run(ctx)
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	})
	genTask := start(gctx, "generator", prod.run)
	subTask := start(sctx, "subscriber", sub.run)

	deadline := time.NewTimer(cfg.Duration)
	defer deadline.Stop()
	tick := time.NewTicker(cfg.SummaryEvery)
	defer tick.Stop()
	stopped := "after " + cfg.Duration.String()
loop:
	for {
		select {
		case <-ctx.Done():
			stopped = "interrupted"
			break loop
		case <-deadline.C:
			break loop
		case <-failed:
			stopped = "on an error"
			break loop
		case <-tick.C:
			pr.block(sum.text(ctx, "", sim.Now()))
		}
	}
	simEnd := sim.Now()

	// Stop the generator, then the pipeline (it finishes its batch and
	// flushes its outbox), then read the alerts up to the topics' ends.
	stopGen()
	<-genTask.done
	stopPipeline()
	<-pipeTask.done
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
	if ends, err := endOffsets(dctx, client, int(cfg.Partitions), topics.Dormancy, topics.Retention, topics.Nudges, topics.DeadLetter); err == nil {
		for dctx.Err() == nil && !sub.caughtUp(ends) && !subTask.finished() {
			select {
			case <-dctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	cancel()
	stopSub()
	<-subTask.done

	final := sum.text(context.WithoutCancel(ctx), "stopped "+stopped, simEnd)
	pr.block(final)
	res = sum.result()
	res.SimulatedEnd = simEnd
	for _, t := range []*task{pipeTask, genTask, subTask} {
		if t.err != nil {
			err = errors.Join(err, fmt.Errorf("%s: %w", t.name, t.err))
		}
	}
	return res, err
}

// drainTimeout bounds the wait for the subscriber to read the last alerts.
const drainTimeout = 10 * time.Second

// task is a goroutine of the demo.
type task struct {
	name string
	done chan struct{}
	err  error // set before done closes
}

func (t *task) finished() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}
