package devbroker

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

func TestBrokerServesKafkaGo(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Listen, cfg.Partitions = "127.0.0.1:0", 4
	b, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !strings.HasPrefix(b.Addr(), "127.0.0.1:") {
		t.Fatalf("address %q is not on loopback", b.Addr())
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	conn, err := kafka.DialContext(ctx, "tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	all := append(cfg.Topics.Inputs(), cfg.Topics.Outputs()...)
	parts, err := conn.ReadPartitions(all...)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, p := range parts {
		count[p.Topic]++
	}
	for _, topic := range all {
		if count[topic] != 4 {
			t.Errorf("topic %s has %d partitions, want 4", topic, count[topic])
		}
	}

	cl := &kafka.Client{Addr: kafka.TCP(b.Addr()), Timeout: 10 * time.Second}
	resp, err := cl.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{
		{ResourceType: kafka.ResourceTypeTopic, ResourceName: cfg.Topics.Segments, ConfigNames: []string{"cleanup.policy"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	policy := ""
	for _, r := range resp.Resources {
		for _, e := range r.ConfigEntries {
			if e.ConfigName == "cleanup.policy" {
				policy = e.ConfigValue
			}
		}
	}
	if policy != "compact" {
		t.Errorf("%s cleanup.policy = %q, want compact", cfg.Topics.Segments, policy)
	}

	w := &kafka.Writer{Addr: kafka.TCP(b.Addr()), Topic: cfg.Topics.Bookings, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond}
	defer w.Close()
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("M1"), Value: []byte(`{"event_id":"e1"}`)}); err != nil {
		t.Fatal(err)
	}
	got := 0
	for p := 0; p < 4; p++ {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{b.Addr()}, Topic: cfg.Topics.Bookings, Partition: p, MaxWait: 500 * time.Millisecond})
		last, err := func() (int64, error) {
			c, err := kafka.DialLeader(ctx, "tcp", b.Addr(), cfg.Topics.Bookings, p)
			if err != nil {
				return 0, err
			}
			defer c.Close()
			return c.ReadLastOffset()
		}()
		if err != nil {
			r.Close()
			t.Fatal(err)
		}
		if last > 0 {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				r.Close()
				t.Fatal(err)
			}
			if string(m.Key) != "M1" || string(m.Value) != `{"event_id":"e1"}` {
				t.Errorf("read back %q=%q", m.Key, m.Value)
			}
			got++
		}
		r.Close()
	}
	if got != 1 {
		t.Fatalf("the record landed in %d partitions, want 1", got)
	}
}

func TestStartRejectsBadConfig(t *testing.T) {
	for _, c := range []struct {
		listen     string
		partitions int32
		want       string
	}{
		{"0.0.0.0:9092", 8, "127.0.0.1 only"},
		{"9092", 8, "want host:port"},
		{"127.0.0.1:http", 8, "is not a port"},
		{"127.0.0.1:0", 0, "partitions: 0 is out of range"},
	} {
		cfg := DefaultConfig()
		cfg.Listen, cfg.Partitions = c.listen, c.partitions
		b, err := Start(cfg)
		if err == nil {
			b.Close()
			t.Errorf("Start(%q, %d) succeeded", c.listen, c.partitions)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("Start(%q, %d) = %v, want %q", c.listen, c.partitions, err, c.want)
		}
	}
}
