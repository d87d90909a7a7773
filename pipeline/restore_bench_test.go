package pipeline

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/churnflow/churnflow/internal/gen"
	"github.com/churnflow/churnflow/internal/kafkatest"
	"github.com/churnflow/churnflow/operators"
	"github.com/churnflow/churnflow/state"
)

// BenchmarkRestore measures how long a fresh instance (empty state
// directory) takes from Run's start until it is ready, when the one input
// partition it is assigned holds CHURNFLOW_RESTORE_MEMBERS members
// (default 1,000,000) in its changelog. The states are real ones: a
// generated population's, after its events, repeated under new ids.
// Broker: real Apache Kafka when CHURNFLOW_REAL_KAFKA=1, else the embedded
// one. Run with -benchtime=1x (benchmarks/RESULTS.md has the figures):
//
//	CHURNFLOW_REAL_KAFKA=1 go test ./pipeline -run '^$' -bench Restore -benchtime 1x
func BenchmarkRestore(b *testing.B) {
	members := envCount(b, "CHURNFLOW_RESTORE_MEMBERS", 1_000_000)
	var addr, broker string
	if kafkatest.Enabled() {
		addr, broker = kafkatest.Start(b, 1), "kafka"
	} else {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(1))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(c.Close)
		addr, broker = c.ListenAddrs()[0], "embedded"
	}
	cfg := DefaultConfig()
	cfg.Brokers, cfg.Group = []string{addr}, "restore-bench"
	topic := cfg.Topics.ChangelogFor(cfg.Group)
	createBenchTopics(b, addr, cfg.Topics.Inputs(), topic)
	bytes := fillChangelog(b, addr, topic, members)
	b.Logf("%s broker, %d members, %d changelog bytes (%.0f per member)", broker, members, bytes, float64(bytes)/float64(members))

	g, err := operators.NewEngine(operators.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	// With metrics the worker also counts the restored members by tier,
	// activity and segment (a scan) before it is ready.
	for _, withMetrics := range []bool{false, true} {
		b.Run(fmt.Sprintf("metrics=%v", withMetrics), func(b *testing.B) {
			benchRestore(b, cfg, g, members, withMetrics)
		})
	}
}

func benchRestore(b *testing.B, cfg Config, g *operators.Engine, members int, withMetrics bool) {
	for range b.N {
		b.StopTimer()
		store := openBenchStore(b)
		deps := Deps{Engine: g, Store: store}
		if withMetrics {
			deps.Metrics = NewMetrics(prometheus.NewRegistry())
		}
		p, err := New(cfg, deps)
		if err != nil {
			b.Fatal(err)
		}
		took := runUntil(b, p, func() bool { return p.Status().Ready() })
		st, err := store.Stats()
		if err != nil {
			b.Fatal(err)
		}
		if st.Members != int64(members) {
			b.Fatalf("restored %d members, want %d", st.Members, members)
		}
		if err := store.Close(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(took.Seconds(), "s/restore")
		b.ReportMetric(float64(members)/took.Seconds(), "members/s")
		b.Logf("restored %d members (%d timers, disk %d MiB) in %v", st.Members, st.Timers, st.DiskBytes>>20, took.Round(time.Millisecond))
	}
}

// openBenchStore opens a store in a fresh directory with the default
// budget, value-log GC off.
func openBenchStore(b *testing.B) *state.Store {
	b.Helper()
	opts := state.DefaultOptions(b.TempDir())
	opts.GCInterval = 0
	store, err := state.Open(opts)
	if err != nil {
		b.Fatal(err)
	}
	return store
}

// runUntil runs p, timed, until done reports true (polled every 10 ms),
// then stops it untimed and checks Run's return. It returns the time.
func runUntil(b *testing.B, p *Pipeline, done func() bool) time.Duration {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	b.StartTimer()
	start := time.Now()
	go func() { ran <- p.Run(ctx) }()
	for !done() {
		select {
		case err := <-ran:
			b.Fatalf("Run returned early: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	took := time.Since(start)
	b.StopTimer()
	cancel()
	if err := <-ran; err != nil {
		b.Fatal(err)
	}
	return took
}

func createBenchTopics(b *testing.B, addr string, inputs []string, changelog string) {
	b.Helper()
	conn, err := kafka.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ctrl, err := conn.Controller()
	if err != nil {
		b.Fatal(err)
	}
	cc, err := kafka.Dial("tcp", fmt.Sprintf("%s:%d", ctrl.Host, ctrl.Port))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	tcs := []kafka.TopicConfig{{Topic: changelog, NumPartitions: 1, ReplicationFactor: 1, ConfigEntries: changelogConfig}}
	for _, in := range inputs {
		tcs = append(tcs, kafka.TopicConfig{Topic: in, NumPartitions: 1, ReplicationFactor: 1})
	}
	if err := cc.CreateTopics(tcs...); err != nil {
		b.Fatal(err)
	}
}

// fillChangelog writes n member records and an offsets record, as a
// worker would have, and returns the bytes of keys and values.
func fillChangelog(b *testing.B, addr, topic string, n int) int64 {
	b.Helper()
	samples := sampleStates(b)
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: topic, Balancer: &kafka.LeastBytes{}, RequiredAcks: kafka.RequireAll,
		BatchSize: 5000, BatchBytes: 1 << 20, BatchTimeout: time.Millisecond}
	defer w.Close()
	var total int64
	msgs := make([]kafka.Message, 0, 5000)
	flush := func() {
		if err := w.WriteMessages(context.Background(), msgs...); err != nil {
			b.Fatal(err)
		}
		msgs = msgs[:0]
	}
	marks := []changelogMark{{id: "00000000-0000-4000-8000-000000000000", expires: time.Now().Add(7 * 24 * time.Hour).Unix()}}
	for i := range n {
		s := &samples[i%len(samples)]
		m := kafka.Message{Key: fmt.Appendf(nil, "%sM%09d", changelogMemberStart, i), Value: appendChangelogMember(nil, marks, s.AppendEncode(nil))}
		total += int64(len(m.Key) + len(m.Value))
		if msgs = append(msgs, m); len(msgs) == cap(msgs) {
			flush()
		}
	}
	off := appendChangelogOffsets(nil, map[string]int64{"churnflow.bookings": 0, "churnflow.activity": 0})
	msgs = append(msgs, kafka.Message{Key: []byte(changelogOffsetsKey), Value: off})
	flush()
	return total
}

// sampleStates returns the member states of a generated population after
// two years of its events.
func sampleStates(b *testing.B) []operators.MemberState {
	b.Helper()
	g, err := operators.NewEngine(operators.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	gc := gen.DefaultConfig()
	gc.Members, gc.Days, gc.Tiers = 5000, 730, g.Config().Tiers
	states, err := gen.States(g, gc)
	if err != nil {
		b.Fatal(err)
	}
	out := make([]operators.MemberState, 0, len(states))
	for _, st := range states {
		out = append(out, *st)
	}
	return out
}

// envCount returns the positive integer in the environment variable name,
// or def when it is unset.
func envCount(b *testing.B, name string, def int) int {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}
