package pipeline

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/churnflow/churnflow/internal/gen"
	"github.com/churnflow/churnflow/operators"
	"github.com/churnflow/churnflow/state"
)

// BenchmarkPipelineThroughput preloads a generated population's events
// (CHURNFLOW_BENCH_MEMBERS members, default 20,000, over 365 days) into an
// embedded broker with 4 partitions, then times one pipeline consuming all
// of it from an empty state: decode, dedup, operators, timers, Badger
// commit, alerts and changelog produced and acknowledged. The broker runs in
// this process (kfake), so its CPU counts against the pipeline's: a floor
// for what a separate broker would allow. It is the starting point of issue
// 8's harness, not its answer.
//
//	go test ./pipeline -run '^$' -bench PipelineThroughput -benchtime 1x
func BenchmarkPipelineThroughput(b *testing.B) {
	members := envCount(b, "CHURNFLOW_BENCH_MEMBERS", 20_000)
	const partitions = 4
	g, err := operators.NewEngine(operators.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	gc := gen.DefaultConfig()
	gc.Members, gc.Days, gc.Tiers, gc.BadRate = members, 365, operators.DefaultConfig().Tiers, 0
	s, err := gen.NewStream(gc)
	if err != nil {
		b.Fatal(err)
	}
	topics := DefaultTopics()
	var msgs []kafka.Message
	var r gen.Record
	for s.Next(&r) {
		topic := topics.Activity
		if r.Topic == gen.TopicBookings {
			topic = topics.Bookings
		}
		msgs = append(msgs, kafka.Message{Topic: topic, Key: []byte(r.Member), Value: r.AppendJSON(nil)})
	}
	for range b.N {
		b.StopTimer()
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(partitions))
		if err != nil {
			b.Fatal(err)
		}
		addr := c.ListenAddrs()[0]
		for _, t := range topics.Inputs() {
			if err := c.CreateTopic(t, partitions, nil); err != nil {
				b.Fatal(err)
			}
		}
		w := &kafka.Writer{Addr: kafka.TCP(addr), Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll,
			BatchSize: 5000, BatchBytes: 1 << 20, BatchTimeout: time.Millisecond}
		for i := 0; i < len(msgs); i += 50_000 {
			if err := w.WriteMessages(context.Background(), msgs[i:min(i+50_000, len(msgs))]...); err != nil {
				b.Fatal(err)
			}
		}
		w.Close()
		store := openBenchStore(b)
		cfg := DefaultConfig()
		cfg.Brokers, cfg.Group, cfg.CreateTopics = []string{addr}, "throughput", true
		p, err := New(cfg, Deps{Engine: g, Store: store, Clock: func() time.Time { return gc.End() }})
		if err != nil {
			b.Fatal(err)
		}
		took := runUntil(b, p, func() bool {
			consumed := int64(0)
			for part := range partitions {
				offs, err := store.Partition(state.Partition(part)).Offsets()
				if err != nil {
					b.Fatal(err)
				}
				for _, o := range offs {
					consumed += o
				}
			}
			return consumed >= int64(len(msgs))
		})
		st, err := store.Stats()
		if err != nil {
			b.Fatal(err)
		}
		store.Close()
		c.Close()
		b.ReportMetric(float64(len(msgs))/took.Seconds(), "events/s")
		b.Logf("%d events for %d members (%d partitions) in %v: %s events/s; %d members, %d outbox records left",
			len(msgs), members, partitions, took.Round(time.Millisecond), fmt.Sprintf("%.0f", float64(len(msgs))/took.Seconds()), st.Members, st.OutboxDepth)
	}
}
