package kafkatest

import (
	"context"
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

func partitions(ctx context.Context, t testing.TB, addr, topic string) []int {
	t.Helper()
	conn, err := kafka.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int, len(parts))
	for i, p := range parts {
		ids[i] = p.ID
	}
	return ids
}
