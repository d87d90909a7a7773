package demo

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/churnflow/churnflow/internal/gen"
	"github.com/churnflow/churnflow/pipeline"
)

// produceBatch is the most records handed to the writer at once, as in
// "churnflow gen --brokers".
const produceBatch = 4096

// producer produces a gen.Stream into the input topics: the records before
// the simulated clock as fast as the broker takes them, every later one
// when the simulated clock reaches its time.
type producer struct {
	stream *gen.Stream
	w      *kafka.Writer
	sim    *simClock
	pclock *pipelineClock
	topics [2]string // by gen.Topic

	produced atomic.Int64 // records acknowledged, good and malformed
	bad      atomic.Int64 // malformed records acknowledged
	live     atomic.Bool  // caught up with the simulated clock once
	ended    atomic.Bool  // the stream has no more records

	mu     sync.Mutex
	byType map[string]int64 // good events acknowledged, by wire type
}

// newProducer makes the writer the way "churnflow gen --brokers" does:
// acks from all replicas, the Java client's key hashing (a member's
// records stay on one partition, in order), a few milliseconds of linger.
func newProducer(stream *gen.Stream, brokers []string, topics pipeline.Topics, sim *simClock, pclock *pipelineClock) *producer {
	return &producer{
		stream: stream,
		w:      gen.NewWriter(brokers, produceBatch),
		sim:    sim,
		pclock: pclock,
		topics: [2]string{gen.TopicBookings: topics.Bookings, gen.TopicActivity: topics.Activity},
		byType: map[string]int64{},
	}
}

// run produces until the stream ends or ctx ends, then closes the writer.
// It returns nil when ctx ended.
func (p *producer) run(ctx context.Context) (err error) {
	defer func() {
		cerr := p.w.Close()
		p.w.Transport.(*kafka.Transport).CloseIdleConnections()
		if err == nil && cerr != nil && ctx.Err() == nil {
			err = fmt.Errorf("close producer: %w", cerr)
		}
	}()
	var (
		rec gen.Record
		mb  gen.MessageBatch
	)
	have := p.stream.Next(&rec)
	if have {
		p.pclock.publish(rec.At)
	}
	for have && ctx.Err() == nil {
		now := p.sim.Now().Unix()
		if rec.At > now {
			if !p.live.Load() {
				p.live.Store(true)
				p.pclock.publish(liveFrontier)
			}
			wait := time.Until(p.sim.wallAt(time.Unix(rec.At, 0)))
			t := time.NewTimer(max(wait, time.Millisecond))
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
			continue
		}
		mb.Reset()
		for have && rec.At <= now && mb.Len() < produceBatch {
			mb.Add(&rec)
			have = p.stream.Next(&rec)
		}
		msgs := mb.Messages(p.topics)
		if err := p.w.WriteMessages(ctx, msgs...); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("produce to the input topics: %w", err)
		}
		p.count(mb.Types())
		if !p.live.Load() {
			switch {
			case have && rec.At > now:
				// Caught up with the simulated clock: the back-fill is done.
				p.live.Store(true)
				p.pclock.publish(liveFrontier)
			case have:
				p.pclock.publish(rec.At)
			}
		}
	}
	if !have {
		p.ended.Store(true)
		p.pclock.publish(liveFrontier)
	}
	return nil
}

func (p *producer) count(types []string) {
	bad := int64(0)
	p.mu.Lock()
	for _, t := range types {
		if t == "" {
			bad++
			continue
		}
		p.byType[t]++
	}
	p.mu.Unlock()
	p.bad.Add(bad)
	p.produced.Add(int64(len(types)))
}

// eventCounts returns the good events produced so far, by type.
func (p *producer) eventCounts() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int64, len(p.byType))
	for k, v := range p.byType {
		out[k] = v
	}
	return out
}
