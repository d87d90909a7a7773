package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/churnflow/churnflow/operators"
	"github.com/churnflow/churnflow/state"
)

// ErrRunning is returned by Run when the Pipeline is already running.
var ErrRunning = errors.New("pipeline: already running")

// shutdownGrace bounds how long a stopping worker keeps trying to flush its
// outbox once its context ended (broker away): what is not sent stays in
// the outbox, committed, and goes out on the next assignment.
const shutdownGrace = 10 * time.Second

// Pipeline consumes the input topics in a consumer group and runs one
// partition worker per assigned partition id. Create it with New; Run it
// once at a time.
type Pipeline struct {
	cfg     Config
	engine  *operators.Engine
	store   *state.Store
	clock   func() time.Time
	log     zerolog.Logger
	dialer  *kafka.Dialer
	running atomic.Bool
	// changelog is the changelog topic's name (Topics.ChangelogFor).
	changelog string
	status    *status
	metrics   *Metrics
	// alertLatency is Deps.AlertLatency.
	alertLatency func(AlertTiming)
}

// New validates cfg and deps and returns a Pipeline. It does no I/O.
func New(cfg Config, deps Deps) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Engine == nil {
		return nil, errNoEngine
	}
	if deps.Store == nil {
		return nil, errNoStore
	}
	if deps.Clock == nil {
		deps.Clock = time.Now
	}
	cfg.Brokers = slices.Clone(cfg.Brokers)
	d := cfg.Dialer
	if d == nil {
		d = &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true}
	}
	return &Pipeline{cfg: cfg, engine: deps.Engine, store: deps.Store, clock: deps.Clock, log: deps.Log, dialer: d,
		changelog: cfg.Topics.ChangelogFor(cfg.Group), status: newStatus(deps.Metrics.failingClients), metrics: deps.Metrics,
		alertLatency: deps.AlertLatency}, nil
}

// Run checks the topics (both inputs must exist with the same partition
// count; with CreateTopics missing outputs are created), joins the consumer
// group and processes the partitions it is assigned until ctx ends. On
// ctx's end every worker finishes its batch, commits it, flushes its
// outbox; then Run leaves the group, closes the producer and returns nil.
// It returns an error when start-up fails or a worker meets an error it
// cannot retry (the state store failing, a commit failing); Kafka being
// away is retried, not an error.
func (p *Pipeline) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer p.running.Store(false)
	p.status.setRunning(true)
	defer p.status.setRunning(false)
	n, err := p.checkTopics(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped during start-up
		}
		return err
	}
	p.status.setPartitions(n)
	p.log.Info().Int("partitions", n).Str("group", p.cfg.Group).Msg("pipeline starting")

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	t := p.cfg.Topics
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                p.cfg.Group,
		Brokers:           p.cfg.Brokers,
		Dialer:            p.dialer,
		Topics:            t.Inputs(),
		GroupBalancers:    []kafka.GroupBalancer{CoPartitionBalancer{}},
		HeartbeatInterval: p.cfg.HeartbeatInterval,
		SessionTimeout:    p.cfg.SessionTimeout,
		RebalanceTimeout:  p.cfg.RebalanceTimeout,
		JoinGroupBackoff:  time.Second,
		StartOffset:       kafka.FirstOffset,
		Logger:            kafkaLogger{p.log, zerolog.DebugLevel},
		ErrorLogger:       kafkaLogger{p.log, zerolog.WarnLevel},
	})
	if err != nil {
		return fmt.Errorf("consumer group: %w", err)
	}
	prod := newProducer(&p.cfg, p.transport(), p.log)
	prod.status, prod.metrics = p.status, p.metrics

	var (
		wg       sync.WaitGroup
		fatalMu  sync.Mutex
		fatalErr error
	)
	for {
		gen, err := cg.Next(runCtx)
		if runCtx.Err() != nil {
			break
		}
		if err != nil {
			if errors.Is(err, kafka.ErrGroupClosed) {
				break
			}
			p.log.Warn().Err(err).Msg("consumer group")
			continue
		}
		ids := assignedIDs(gen.Assignments, t)
		p.metrics.rebalance()
		p.log.Info().Int32("generation", gen.ID).Ints("partitions", ids).Msg("partitions assigned")
		for _, id := range ids {
			wg.Add(1)
			gen.Start(func(gctx context.Context) {
				defer wg.Done()
				p.status.assign(id, true)
				defer p.status.assign(id, false)
				p.metrics.assignedDelta(1)
				defer p.metrics.assignedDelta(-1)
				wctx, wcancel := context.WithCancel(runCtx)
				defer wcancel()
				stop := context.AfterFunc(gctx, wcancel)
				defer stop()
				w := newWorker(p, id, gen, prod)
				if err := w.run(wctx); err != nil {
					fatalMu.Lock()
					if fatalErr == nil {
						fatalErr = err
					}
					fatalMu.Unlock()
					cancel()
				}
			})
		}
	}
	// Closing the group ends the generation, waits for the workers (each
	// finishes its batch, commits, flushes its outbox) and leaves the group.
	cerr := cg.Close()
	wg.Wait()
	perr := prod.close()
	p.log.Info().Msg("pipeline stopped")
	fatalMu.Lock()
	defer fatalMu.Unlock()
	if fatalErr != nil {
		return fatalErr
	}
	if cerr != nil {
		p.log.Warn().Err(cerr).Msg("close consumer group")
	}
	if perr != nil {
		p.log.Warn().Err(perr).Msg("close producer")
	}
	return nil
}

// assignedIDs returns the partition ids assigned in both input topics.
func assignedIDs(a map[string][]kafka.PartitionAssignment, t Topics) []int {
	act := map[int]bool{}
	for _, pa := range a[t.Activity] {
		act[pa.ID] = true
	}
	var ids []int
	for _, pa := range a[t.Bookings] {
		if act[pa.ID] {
			ids = append(ids, pa.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// kafkaLogger adapts zerolog to kafka-go's Logger.
type kafkaLogger struct {
	l     zerolog.Logger
	level zerolog.Level
}

func (k kafkaLogger) Printf(format string, args ...any) {
	k.l.WithLevel(k.level).Str("component", "kafka-go").Msgf(format, args...)
}

// PartitionError is a worker's error, with the partition it happened on.
type PartitionError struct {
	Partition int
	Err       error
}

func (e *PartitionError) Error() string { return fmt.Sprintf("partition %d: %v", e.Partition, e.Err) }

// Unwrap returns the cause.
func (e *PartitionError) Unwrap() error { return e.Err }
