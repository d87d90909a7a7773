package pipeline

import (
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/churnflow/churnflow/operators"
	"github.com/churnflow/churnflow/state"
)

// Config configures a Pipeline. Start from DefaultConfig: Validate rejects
// a zero value where a positive one is needed.
type Config struct {
	// Brokers are the bootstrap brokers (host:port). Required.
	Brokers []string
	// Group is the consumer group id. Default "churnflow".
	Group string
	// Topics names the input and output topics. Default DefaultTopics().
	Topics Topics
	// BatchMax is the most records a worker applies in one batch (one
	// Badger commit), and so, per topic, about how many records a worker
	// reads ahead. Default 1000: every partition's batch and read-ahead are
	// live heap, and at 1,000,000 members a cap of 2,000 left the collector
	// so little room under the memory limit that it cost 12-27 % more CPU
	// per event (docs/performance.md, fix 20).
	BatchMax int
	// BatchWait is how long a worker waits to fill a batch once it holds a
	// record. Default 50ms.
	BatchWait time.Duration
	// Lateness is the allowed lateness: a partition's watermark is the
	// largest occurred_at it has applied minus Lateness. Default 1h.
	Lateness time.Duration
	// IdleAfter: a partition caught up on both topics that has received no
	// record for this long (by Deps.Clock) lets its watermark follow the
	// wall clock minus Lateness. Default 5s.
	IdleAfter time.Duration
	// MaxFuture: events whose occurred_at is later than the wall clock plus
	// MaxFuture are dead-lettered (future_timestamp). Default 24h.
	MaxFuture time.Duration
	// MaxEventBytes dead-letters larger records (oversize). Default
	// operators.DefaultMaxEventBytes.
	MaxEventBytes int
	// CreateTopics creates missing output topics with the inputs'
	// partition count (the member-segments topic compacted). The input
	// topics must exist either way. Default false.
	CreateTopics bool
	// SessionTimeout, HeartbeatInterval and RebalanceTimeout tune the
	// consumer group. Defaults 10s, 1s, 10s (kafka-go's are 30s, 3s, 30s).
	SessionTimeout, HeartbeatInterval, RebalanceTimeout time.Duration
	// ProduceBatchTimeout is the producer's linger: how long it waits to
	// fill a batch per output partition. Default 5ms.
	ProduceBatchTimeout time.Duration
	// Dialer opens broker connections (TLS, SASL). Nil: plain TCP.
	Dialer *kafka.Dialer
}

// Defaults of Config.
const (
	DefaultGroup               = "churnflow"
	DefaultBatchMax            = 1000
	DefaultBatchWait           = 50 * time.Millisecond
	DefaultLateness            = time.Hour
	DefaultIdleAfter           = 5 * time.Second
	DefaultMaxFuture           = 24 * time.Hour
	DefaultSessionTimeout      = 10 * time.Second
	DefaultHeartbeatInterval   = time.Second
	DefaultRebalanceTimeout    = 10 * time.Second
	DefaultProduceBatchTimeout = 5 * time.Millisecond
)

// DefaultConfig returns the documented defaults (Brokers empty).
func DefaultConfig() Config {
	return Config{
		Group:               DefaultGroup,
		Topics:              DefaultTopics(),
		BatchMax:            DefaultBatchMax,
		BatchWait:           DefaultBatchWait,
		Lateness:            DefaultLateness,
		IdleAfter:           DefaultIdleAfter,
		MaxFuture:           DefaultMaxFuture,
		MaxEventBytes:       operators.DefaultMaxEventBytes,
		SessionTimeout:      DefaultSessionTimeout,
		HeartbeatInterval:   DefaultHeartbeatInterval,
		RebalanceTimeout:    DefaultRebalanceTimeout,
		ProduceBatchTimeout: DefaultProduceBatchTimeout,
	}
}

// maxBatchMax bounds BatchMax so that one batch stays well inside a Badger
// commit and the worker's buffers.
const maxBatchMax = 100000

// Validate reports the first setting that is wrong, naming its field.
func (c *Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("pipeline config %s: %s", field, fmt.Sprintf(format, args...))
	}
	if len(c.Brokers) == 0 {
		return bad("Brokers", "at least one broker address is needed")
	}
	for i, b := range c.Brokers {
		if b == "" {
			return bad(fmt.Sprintf("Brokers[%d]", i), "empty")
		}
	}
	if c.Group == "" {
		return bad("Group", "empty")
	}
	if err := c.Topics.Validate(); err != nil {
		return fmt.Errorf("pipeline config Topics: %w", err)
	}
	switch {
	case c.BatchMax < 1 || c.BatchMax > maxBatchMax:
		return bad("BatchMax", "must be 1 to %d, got %d", maxBatchMax, c.BatchMax)
	case c.BatchWait <= 0:
		return bad("BatchWait", "must be positive, got %v", c.BatchWait)
	case c.Lateness < 0:
		return bad("Lateness", "must not be negative, got %v", c.Lateness)
	case c.IdleAfter <= 0:
		return bad("IdleAfter", "must be positive, got %v", c.IdleAfter)
	case c.MaxFuture <= 0:
		return bad("MaxFuture", "must be positive, got %v", c.MaxFuture)
	case c.MaxEventBytes < 1:
		return bad("MaxEventBytes", "must be positive, got %d", c.MaxEventBytes)
	case c.SessionTimeout <= 0:
		return bad("SessionTimeout", "must be positive, got %v", c.SessionTimeout)
	case c.HeartbeatInterval <= 0 || c.HeartbeatInterval >= c.SessionTimeout:
		return bad("HeartbeatInterval", "must be positive and below SessionTimeout (%v), got %v", c.SessionTimeout, c.HeartbeatInterval)
	case c.RebalanceTimeout <= 0:
		return bad("RebalanceTimeout", "must be positive, got %v", c.RebalanceTimeout)
	case c.ProduceBatchTimeout <= 0:
		return bad("ProduceBatchTimeout", "must be positive, got %v", c.ProduceBatchTimeout)
	}
	return nil
}

// Deps are what a Pipeline runs with.
type Deps struct {
	// Engine applies the rules. Required.
	Engine *operators.Engine
	// Store holds the partitions' state. Required; Run does not close it.
	Store *state.Store
	// Clock is the wall clock: the future-timestamp check, idle watermarks
	// and alerts' emitted_at. Nil: time.Now.
	Clock func() time.Time
	// Log receives the pipeline's logs. The zero value discards them.
	Log zerolog.Logger
	// Metrics receive the pipeline's measurements (NewMetrics). Nil: none.
	Metrics *Metrics
	// AlertLatency, when set, is called from the partition workers for
	// every acknowledged alert an input record caused, with the time from
	// the record's Kafka timestamp to the acknowledgement (Total: the
	// figure of MetricEventToAlert, unbucketed) and where it went, for
	// benchmarks. It must be safe for concurrent use and quick.
	AlertLatency func(AlertTiming)
}

// AlertTiming is where an alert's event-to-alert latency went, in the
// order of its steps; the parts add up to Total.
type AlertTiming struct {
	// Total is from the input record's Kafka timestamp to the broker's
	// acknowledgement of the alert.
	Total time.Duration
	// Fetch is from the timestamp to the worker taking the record from
	// its fetcher: the produce, the broker, the fetch, and the fetcher's
	// wait while the worker's buffer for the topic was full.
	Fetch time.Duration
	// Queue is from there to the start of the batch that applied the
	// record: batches before it, and Config.BatchWait.
	Queue time.Duration
	// Batch is the batch: applying its records, its timers and its
	// commit, up to handing it to the partition's sender.
	Batch time.Duration
	// SendWait is from there to the sender taking it: the sends of the
	// batches before it.
	SendWait time.Duration
	// Send is the produce of the batch's alerts and other records (the
	// changelog's come after), to the broker's acknowledgement.
	Send time.Duration
}

// errNoEngine and errNoStore are returned by New for missing Deps.
var (
	errNoEngine = errors.New("pipeline: Deps.Engine is required")
	errNoStore  = errors.New("pipeline: Deps.Store is required")
)
