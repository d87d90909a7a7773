package kafkatest_test

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/churnflow/churnflow/internal/kafkatest"
)

// TestRealKafkaSmoke starts a single-node Apache Kafka, creates a topic,
// produces one message and consumes it back through a consumer group with
// kafka-go. Gated on CHURNFLOW_REAL_KAFKA=1.
func TestRealKafkaSmoke(t *testing.T) {
	if !kafkatest.Enabled() {
		t.Skip("real Apache Kafka test: set CHURNFLOW_REAL_KAFKA=1 (needs java 17+, and mvn on first use)")
	}
	bootstrap := kafkatest.Start(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	const topic = "smoke"
	createTopic(t, bootstrap, kafka.TopicConfig{Topic: topic, NumPartitions: 3, ReplicationFactor: 1})

	w := &kafka.Writer{
		Addr:         kafka.TCP(bootstrap),
		Topic:        topic,
		RequiredAcks: kafka.RequireAll,
		Balancer:     &kafka.Hash{},
	}
	defer w.Close()
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte("hello real kafka")}); err != nil {
		t.Fatalf("produce: %v", err)
	}

	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:     []string{bootstrap},
		Topic:       topic,
		GroupID:     "smoke-group",
		StartOffset: kafka.FirstOffset,
		MaxWait:     200 * time.Millisecond,
		// The first JoinGroup can fail while __consumer_offsets is being
		// created; kafka-go's default backoff before retrying is 5 s.
		JoinGroupBackoff: 200 * time.Millisecond,
	})
	defer r.Close()
	t0 := time.Now()
	m, err := r.FetchMessage(ctx)
	if err != nil {
		t.Fatalf("consume: %v", err)
	}
	if string(m.Key) != "k" || string(m.Value) != "hello real kafka" {
		t.Fatalf("consumed %q=%q, want k=hello real kafka", m.Key, m.Value)
	}
	if err := r.CommitMessages(ctx, m); err != nil {
		t.Fatalf("commit: %v", err)
	}
	t.Logf("consumed partition %d offset %d via group in %v", m.Partition, m.Offset, time.Since(t0).Round(time.Millisecond))
}

func createTopic(t *testing.T, bootstrap string, cfg kafka.TopicConfig) {
	t.Helper()
	conn, err := kafka.Dial("tcp", bootstrap)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	ctrl, err := conn.Controller()
	if err != nil {
		t.Fatalf("controller: %v", err)
	}
	cc, err := kafka.Dial("tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		t.Fatalf("dial controller: %v", err)
	}
	defer cc.Close()
	if err := cc.CreateTopics(cfg); err != nil {
		t.Fatalf("create topic %s: %v", cfg.Topic, err)
	}
	parts, err := conn.ReadPartitions(cfg.Topic)
	if err != nil {
		t.Fatalf("read partitions: %v", err)
	}
	if len(parts) != cfg.NumPartitions {
		t.Fatalf("topic %s has %d partitions, want %d", cfg.Topic, len(parts), cfg.NumPartitions)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	kafkatest.StopShared(code != 0)
	os.Exit(code)
}

// TestSharedCreateTopics creates topics on the shared cluster and checks
// that Metadata does not create a missing topic (the broker runs with
// auto.create.topics.enable=true, as Apache Kafka does by default).
func TestSharedCreateTopics(t *testing.T) {
	if !kafkatest.Enabled() {
		t.Skip("real Apache Kafka test: set CHURNFLOW_REAL_KAFKA=1 (needs java 17+, and mvn on first use)")
	}
	addr := kafkatest.Shared(t)
	if again := kafkatest.Shared(t); again != addr {
		t.Fatalf("Shared gave %s, then %s", addr, again)
	}
	kafkatest.CreateTopics(t, addr,
		kafka.TopicConfig{Topic: "shared.a", NumPartitions: 3},
		kafka.TopicConfig{Topic: "shared.b", NumPartitions: 5})
	// Once more: an existing topic is fine.
	kafkatest.CreateTopics(t, addr, kafka.TopicConfig{Topic: "shared.a", NumPartitions: 3})
	ends := kafkatest.EndOffsets(t, addr, "shared.b")
	if len(ends) != 5 {
		t.Fatalf("shared.b end offsets %v, want 5 partitions", ends)
	}
	for range 2 {
		md, err := kafkatest.Metadata(t.Context(), addr, "shared.missing")
		if err != nil {
			t.Fatal(err)
		}
		if err := md["shared.missing"].Error; !errors.Is(err, kafka.UnknownTopicOrPartition) {
			t.Fatalf("metadata of a missing topic: %v, want UnknownTopicOrPartition", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
