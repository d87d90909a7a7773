package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/churnflow/churnflow/operators"
	"github.com/churnflow/churnflow/pipeline"
)

// viewerGroup is the consumer group of the demo's alert subscriber: a
// downstream system, as a retention team's tool would be.
const viewerGroup = "churnflow-demo-viewer"

// subscriber reads the dormancy, retention, nudges and dead-letter topics
// with a kafka-go consumer group reader, as a real downstream system
// would, counts what it reads and hands the alerts to the printer.
type subscriber struct {
	r      *kafka.Reader
	topics pipeline.Topics
	print  *printer

	mu      sync.Mutex
	alerts  map[string]int64         // by alert type
	dead    map[string]int64         // dead letters by reason
	next    map[topicPartition]int64 // next offset to read
	invalid int64                    // records that are not alert JSON
}

type topicPartition struct {
	topic     string
	partition int
}

func newSubscriber(brokers []string, topics pipeline.Topics, p *printer) *subscriber {
	return &subscriber{
		r: kafka.NewReader(kafka.ReaderConfig{
			Brokers:           brokers,
			GroupID:           viewerGroup,
			GroupTopics:       []string{topics.Dormancy, topics.Retention, topics.Nudges, topics.DeadLetter},
			StartOffset:       kafka.FirstOffset,
			MinBytes:          1,
			MaxBytes:          1 << 20,
			MaxWait:           500 * time.Millisecond,
			HeartbeatInterval: time.Second,
			SessionTimeout:    10 * time.Second,
			RebalanceTimeout:  10 * time.Second,
			JoinGroupBackoff:  200 * time.Millisecond,
		}),
		topics: topics,
		print:  p,
		alerts: map[string]int64{},
		dead:   map[string]int64{},
		next:   map[topicPartition]int64{},
	}
}

// run reads until ctx ends, then closes the reader. It reads with
// FetchMessage and commits nothing: the demo's viewer always starts from
// the beginning of a fresh broker.
func (s *subscriber) run(ctx context.Context) error {
	defer s.r.Close()
	for {
		m, err := s.r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read alerts: %w", err)
		}
		s.handle(&m)
	}
}

func (s *subscriber) handle(m *kafka.Message) {
	if m.Topic == s.topics.DeadLetter {
		reason := "unknown"
		for _, h := range m.Headers {
			if h.Key == "reason" {
				reason = string(h.Value)
			}
		}
		s.mu.Lock()
		s.dead[reason]++
		s.seen(m)
		s.mu.Unlock()
		return
	}
	var a operators.AlertJSON
	err := json.Unmarshal(m.Value, &a)
	s.mu.Lock()
	if err != nil || a.Type == "" {
		s.invalid++
	} else {
		s.alerts[a.Type]++
	}
	s.seen(m)
	s.mu.Unlock()
	if err == nil && a.Type != "" {
		s.print.alert(&a)
	}
}

// seen records m's offset; s.mu is held.
func (s *subscriber) seen(m *kafka.Message) {
	tp := topicPartition{m.Topic, m.Partition}
	s.next[tp] = max(s.next[tp], m.Offset+1)
}

// counts returns copies of the counters.
func (s *subscriber) counts() (alerts, dead map[string]int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	alerts = make(map[string]int64, len(s.alerts))
	for k, v := range s.alerts {
		alerts[k] = v
	}
	dead = make(map[string]int64, len(s.dead))
	for k, v := range s.dead {
		dead[k] = v
	}
	return alerts, dead
}

// caughtUp reports whether every partition has been read up to ends.
func (s *subscriber) caughtUp(ends map[topicPartition]int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for tp, end := range ends {
		if end > 0 && s.next[tp] < end {
			return false
		}
	}
	return true
}

// endOffsets returns the end offset (high-water mark) of every partition of
// topics.
func endOffsets(ctx context.Context, c *kafka.Client, partitions int, topics ...string) (map[topicPartition]int64, error) {
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, t := range topics {
		for p := range partitions {
			req.Topics[t] = append(req.Topics[t], kafka.LastOffsetOf(p))
		}
	}
	res, err := c.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("list offsets: %w", err)
	}
	out := map[topicPartition]int64{}
	for t, ps := range res.Topics {
		for _, p := range ps {
			if p.Error != nil {
				return nil, fmt.Errorf("list offsets of %s/%d: %w", t, p.Partition, p.Error)
			}
			out[topicPartition{t, p.Partition}] = p.LastOffset
		}
	}
	return out, nil
}
