package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// ReadTopic reads every record of every partition of topic, up to the
// high-water marks of the moment, by partition id. It works against any
// broker (the embedded one or a real cluster); it fails the test on error.
func ReadTopic(t testing.TB, addr, topic string) map[int][]kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := map[int][]kafka.Message{}
	for _, p := range partitions(ctx, t, addr, topic) {
		c, err := kafka.DialLeader(ctx, "tcp", addr, topic, p)
		if err != nil {
			t.Fatal(err)
		}
		first, last, err := c.ReadOffsets()
		if err != nil {
			t.Fatal(err)
		}
		for off := first; off < last; {
			if _, err := c.Seek(off, kafka.SeekAbsolute); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			b := c.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 500 * time.Millisecond})
			for {
				m, err := b.ReadMessage()
				if err != nil {
					break
				}
				out[p] = append(out[p], m)
				off = m.Offset + 1
			}
			if err := b.Close(); err != nil && off < last {
				t.Fatalf("read %s/%d at %d: %v", topic, p, off, err)
			}
		}
		c.Close()
	}
	return out
}

// EndOffsets returns the high-water mark of every partition of topic.
func EndOffsets(t testing.TB, addr, topic string) map[int]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := map[int]int64{}
	for _, p := range partitions(ctx, t, addr, topic) {
		c, err := kafka.DialLeader(ctx, "tcp", addr, topic, p)
		if err != nil {
			t.Fatal(err)
		}
		_, last, err := c.ReadOffsets()
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[p] = last
	}
	return out
}

// partitions returns topic's partition ids, from a metadata request that
// does not ask for auto-creation (kafka-go's Conn.ReadPartitions does: a
// real broker with auto.create.topics.enable would create a missing topic
// with num.partitions).
func partitions(ctx context.Context, t testing.TB, addr, topic string) []int {
	t.Helper()
	md, err := Metadata(ctx, addr, topic)
	if err != nil {
		t.Fatal(err)
	}
	tm := md[topic]
	if tm.Error != nil {
		t.Fatalf("metadata of %s: %v", topic, tm.Error)
	}
	ids := make([]int, len(tm.Partitions))
	for i, p := range tm.Partitions {
		ids[i] = p.ID
	}
	slices.Sort(ids)
	return ids
}

// Metadata returns the metadata of the topics by name, from a metadata
// request that never creates a topic. A missing topic is in the result
// with an Error (kafka.UnknownTopicOrPartition).
func Metadata(ctx context.Context, addr string, topics ...string) (map[string]kafka.Topic, error) {
	c, done := newClient(addr)
	defer done()
	resp, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, err
	}
	out := map[string]kafka.Topic{}
	for _, tm := range resp.Topics {
		out[tm.Name] = tm
	}
	for _, name := range topics {
		if _, ok := out[name]; !ok {
			out[name] = kafka.Topic{Name: name, Error: kafka.UnknownTopicOrPartition}
		}
	}
	return out, nil
}

// CreateTopics creates topics (on any broker: the embedded one, or a real
// cluster, whose brokers forward the request to the controller) and waits
// until the metadata shows each with its partition count and a leader for
// every partition: a real cluster's brokers learn of a new topic a moment
// after the controller answered. A ReplicationFactor of 0 means 1. A topic
// that already exists with the same partition count is fine.
func CreateTopics(t testing.TB, addr string, cfgs ...kafka.TopicConfig) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfgs = slices.Clone(cfgs)
	names := make([]string, len(cfgs))
	for i := range cfgs {
		if cfgs[i].ReplicationFactor == 0 {
			cfgs[i].ReplicationFactor = 1
		}
		names[i] = cfgs[i].Topic
	}
	c, done := newClient(addr)
	defer done()
	resp, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: cfgs})
	if err != nil {
		t.Fatalf("create topics %v: %v", names, err)
	}
	for name, err := range resp.Errors {
		if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			t.Fatalf("create topic %s: %v", name, err)
		}
	}
	if err := waitTopics(ctx, addr, cfgs); err != nil {
		t.Fatal(err)
	}
}

// WaitTopics waits (up to 60 s) until the metadata shows every topic with
// partitions partitions, each with a leader.
func WaitTopics(t testing.TB, addr string, partitions int, topics ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfgs := make([]kafka.TopicConfig, len(topics))
	for i, name := range topics {
		cfgs[i] = kafka.TopicConfig{Topic: name, NumPartitions: partitions}
	}
	if err := waitTopics(ctx, addr, cfgs); err != nil {
		t.Fatal(err)
	}
}

func waitTopics(ctx context.Context, addr string, cfgs []kafka.TopicConfig) error {
	names := make([]string, len(cfgs))
	for i := range cfgs {
		names[i] = cfgs[i].Topic
	}
	var last string
	for {
		md, err := Metadata(ctx, addr, names...)
		last = ""
		if err != nil {
			last = err.Error()
		}
		for _, tc := range cfgs {
			if last != "" {
				break
			}
			tm := md[tc.Topic]
			switch {
			case tm.Error != nil:
				last = fmt.Sprintf("%s: %v", tc.Topic, tm.Error)
			case len(tm.Partitions) != tc.NumPartitions:
				last = fmt.Sprintf("%s has %d partitions, want %d", tc.Topic, len(tm.Partitions), tc.NumPartitions)
			default:
				for _, p := range tm.Partitions {
					if p.Error != nil || p.Leader.Host == "" {
						last = fmt.Sprintf("%s/%d has no leader yet (%v)", tc.Topic, p.ID, p.Error)
						break
					}
				}
			}
		}
		if last == "" {
			// The metadata can name a leader a moment before that broker
			// serves the partition (NOT_LEADER_OR_FOLLOWER on a real cluster):
			// ask every partition for its offsets.
			last = listOffsetsError(ctx, addr, cfgs)
		}
		if last == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topics %v not ready: %s", names, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// listOffsetsError asks for the first offset of every partition of the
// topics and describes the first error ("" when all answered).
func listOffsetsError(ctx context.Context, addr string, cfgs []kafka.TopicConfig) string {
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, tc := range cfgs {
		for p := range tc.NumPartitions {
			req.Topics[tc.Topic] = append(req.Topics[tc.Topic], kafka.FirstOffsetOf(p))
		}
	}
	c, done := newClient(addr)
	defer done()
	resp, err := c.ListOffsets(ctx, req)
	if err != nil {
		return err.Error()
	}
	for _, tc := range cfgs {
		if got := len(resp.Topics[tc.Topic]); got != tc.NumPartitions {
			return fmt.Sprintf("offsets of %d partitions of %s, want %d", got, tc.Topic, tc.NumPartitions)
		}
		for _, po := range resp.Topics[tc.Topic] {
			if po.Error != nil {
				return fmt.Sprintf("%s/%d: %v", tc.Topic, po.Partition, po.Error)
			}
		}
	}
	return ""
}

// Client returns a kafka-go client of addr with a transport of its own,
// closed when the test ends. A client on kafka-go's DefaultTransport
// shares that transport's metadata cache (refreshed every 6 s) with every
// such client of the process: it answers metadata requests from the cache
// (a topic created a moment ago is missing, or shows the partitions it
// had) and routes requests by it. This one's cache starts when the client
// is first used and is refreshed every 5 s (Metadata, CreateTopics and the
// readers of this package use a new transport per call). Its metadata
// requests never create a topic.
func Client(t testing.TB, addr string) *kafka.Client {
	c, done := newClient(addr)
	t.Cleanup(done)
	return c
}

func newClient(addr string) (*kafka.Client, func()) {
	// MetadataTTL is also the timeout of the transport's metadata requests:
	// 100 ms failed them on a loaded machine.
	tr := &kafka.Transport{MetadataTTL: 5 * time.Second}
	return &kafka.Client{Addr: kafka.TCP(addr), Timeout: 30 * time.Second, Transport: tr}, tr.CloseIdleConnections
}
