package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/churnflow/churnflow/state"
)

// Producer tuning.
const (
	// produceChunk is the most records handed to one WriteMessages call.
	produceChunk = 5000
	// produceBatchBytes keeps a produce request under the embedded broker's
	// 1 MiB limit (DESIGN.md, pitfalls).
	produceBatchBytes = 1 << 20
	// produceBatchSize is the most messages in one partition's produce
	// request. kafka-go allocates a slice of this many messages (152 bytes
	// each) for every partition batch it starts, however few it then holds.
	// The writer carries alerts, member segments and dead letters, spread
	// over many partitions: a worker's batch of 2,000 events (BatchMax
	// before fix 20) makes about 450 alerts (0.23 per event in churnflow
	// bench), some 20 per partition of three 8-partition alert topics,
	// and a small batch one or two. With 1,000 messages
	// per produce request (before) each alert of a small batch cost 152 KB
	// of garbage for the collector. The changelog does not go
	// through this writer (changelogWriter).
	produceBatchSize = 128
)

// outRecord is an outbox record with its sequence number.
type outRecord struct {
	seq uint64
	rec state.OutboxRecord
}

// messagePool holds the message slices of finished writes (the writer
// copies what it sends, and write returns only once it is acknowledged).
var messagePool sync.Pool

// producer writes outbox records with acks=all and a key-hashing balancer.
// It is shared by the workers (kafka.Writer is safe for concurrent use);
// each worker writes its own partition's records in seq order, and a member
// always hashes to the same output partition, so per-member order holds.
type producer struct {
	w       *kafka.Writer
	log     zerolog.Logger
	status  *status  // may be nil
	metrics *Metrics // may be nil
}

func newProducer(cfg *Config, transport *kafka.Transport, log zerolog.Logger) *producer {
	w := &kafka.Writer{
		Addr:         kafka.TCP(cfg.Brokers...),
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: cfg.ProduceBatchTimeout,
		BatchSize:    produceBatchSize,
		BatchBytes:   produceBatchBytes,
		MaxAttempts:  3,
		// Topics are per message; the writer's own Topic stays empty.
		// Its own transport (not kafka-go's shared DefaultTransport), so
		// that closing the producer closes its connections too.
		Transport: transport,
	}
	return &producer{w: w, log: log}
}

// write sends recs in order and returns once the broker acknowledged every
// one. While the broker is away it retries with exponential back-off (up
// to backoffMax), from the first record not acknowledged onwards, so a
// member's records are never reordered (a retry may duplicate records:
// at-least-once). It gives up only when ctx ends, returning ctx's error.
func (pr *producer) write(ctx context.Context, recs []outRecord) error {
	pooled, _ := messagePool.Get().(*[]kafka.Message)
	if pooled == nil {
		pooled = new([]kafka.Message)
	}
	msgs := slices.Grow((*pooled)[:0], len(recs))[:len(recs)]
	defer func() {
		clear(msgs)
		*pooled = msgs[:0]
		messagePool.Put(pooled)
	}()
	for i := range recs {
		r := &recs[i].rec
		m := kafka.Message{Topic: r.Topic, Key: r.Key, Value: r.Value}
		if len(r.Headers) > 0 {
			keys := make([]string, 0, len(r.Headers))
			for k := range r.Headers {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			m.Headers = make([]kafka.Header, len(keys))
			for j, k := range keys {
				m.Headers[j] = kafka.Header{Key: k, Value: []byte(r.Headers[k])}
			}
		}
		msgs[i] = m
	}
	backoff := time.Duration(0)
	for msgs := msgs; len(msgs) > 0; {
		n := min(len(msgs), produceChunk)
		err := pr.w.WriteMessages(ctx, msgs[:n]...)
		if err == nil {
			if backoff != 0 {
				pr.status.kafkaOK("produce")
			}
			msgs, backoff = msgs[n:], 0
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		pr.status.kafkaFailed("produce", err)
		pr.metrics.produceError(produceKindOutput)
		first := 0
		var we kafka.WriteErrors
		if errors.As(err, &we) {
			for first < len(we) && we[first] == nil {
				first++
			}
		}
		msgs = msgs[first:]
		backoff = nextBackoff(backoff)
		pr.log.Warn().Err(err).Int("pending", len(msgs)).Dur("retry_in", backoff).Msg("produce outbox")
		if !sleep(ctx, backoff) {
			return fmt.Errorf("produce outbox: %w", ctx.Err())
		}
	}
	return nil
}

func (pr *producer) close() error {
	err := pr.w.Close()
	pr.w.Transport.(*kafka.Transport).CloseIdleConnections()
	return err
}
