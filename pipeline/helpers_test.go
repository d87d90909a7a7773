package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/churnflow/churnflow/internal/devbroker"
	"github.com/churnflow/churnflow/internal/gen"
	"github.com/churnflow/churnflow/internal/kafkatest"
	"github.com/churnflow/churnflow/internal/replay"
	"github.com/churnflow/churnflow/operators"
	"github.com/churnflow/churnflow/pipeline"
	"github.com/churnflow/churnflow/state"
)

// testClock is a settable wall clock.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func startBroker(t *testing.T, partitions int32) *devbroker.Broker {
	t.Helper()
	cfg := devbroker.DefaultConfig()
	cfg.Listen, cfg.Partitions = "127.0.0.1:0", partitions
	b, err := devbroker.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func openStore(t *testing.T) *state.Store {
	t.Helper()
	opts := state.DefaultOptions(t.TempDir())
	opts.MemoryBudget = 32 << 20
	opts.GCInterval = 0
	s, err := state.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func newEngine(t *testing.T) *operators.Engine {
	t.Helper()
	g, err := operators.NewEngine(operators.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func testLogger(t *testing.T) zerolog.Logger {
	if testing.Verbose() {
		return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	}
	return zerolog.Nop()
}

// produce writes msgs (Topic and Key set) in order, keyed like the
// pipeline's producer, and waits for the acks.
func produce(t *testing.T, addr string, msgs []kafka.Message) {
	t.Helper()
	w, closeWriter := newTestWriter(addr)
	defer closeWriter()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	for len(msgs) > 0 {
		n := min(len(msgs), 5000)
		if err := w.WriteMessages(ctx, msgs[:n]...); err != nil {
			t.Fatal(err)
		}
		msgs = msgs[n:]
	}
}

// newTestWriter returns a writer keyed like the pipeline's producer, with
// a transport of its own: kafka-go's DefaultTransport caches metadata per
// address for 6 s, and on the real Kafka the tests share, a topic a test
// created a moment ago could be unknown to it. done closes the writer
// and the transport's connections.
func newTestWriter(addr string) (w *kafka.Writer, done func()) {
	tr := &kafka.Transport{}
	w = &kafka.Writer{Addr: kafka.TCP(addr), Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond, BatchSize: 1000, Transport: tr}
	return w, func() {
		w.Close()
		tr.CloseIdleConnections()
	}
}

// readTopic reads every record of topic, partition after partition.
func readTopic(t *testing.T, addr, topic string) []kafka.Message {
	t.Helper()
	byPart := kafkatest.ReadTopic(t, addr, topic)
	var out []kafka.Message
	for _, p := range slices.Sorted(maps.Keys(byPart)) {
		out = append(out, byPart[p]...)
	}
	return out
}

// header returns a header's value.
func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// genRecords generates a population: its good records, in stream order.
func genRecords(t *testing.T, members, days int, seed uint64) (gen.Config, []gen.Record) {
	t.Helper()
	cfg := gen.DefaultConfig()
	cfg.Members, cfg.Days, cfg.Seed = members, days, seed
	cfg.Tiers = operators.DefaultConfig().Tiers
	s, err := gen.NewStream(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var recs []gen.Record
	var r gen.Record
	for s.Next(&r) {
		if r.Bad != "" {
			continue
		}
		c := r
		c.Raw = nil
		recs = append(recs, c)
	}
	return cfg, recs
}

// toMessages turns good records into Kafka messages on their topics.
func toMessages(recs []gen.Record, topics pipeline.Topics) []kafka.Message {
	msgs := make([]kafka.Message, len(recs))
	for i := range recs {
		r := &recs[i]
		topic := topics.Activity
		if r.Topic == gen.TopicBookings {
			topic = topics.Bookings
		}
		msgs[i] = kafka.Message{Topic: topic, Key: []byte(r.Member), Value: r.AppendJSON(nil)}
	}
	return msgs
}

// pipelineOrder returns the records in the order the pipeline applies
// them: by occurred_at, bookings before activity at equal times, each topic
// in production order.
func pipelineOrder(recs []gen.Record) []gen.Record {
	ordered := slices.Clone(recs)
	slices.SortStableFunc(ordered, func(a, b gen.Record) int {
		switch {
		case a.At != b.At:
			return int(a.At - b.At)
		case a.Topic != b.Topic:
			return int(a.Topic) - int(b.Topic)
		}
		return 0
	})
	return ordered
}

// replayAlerts runs internal/replay over the records and returns the
// alert ids, firing timers up to until (inclusive). The input is ordered
// as the pipeline applies it: by (occurred_at, topic: bookings first),
// each topic in production order; replay keeps input order at equal times.
func replayAlerts(t *testing.T, g *operators.Engine, recs []gen.Record, until time.Time) map[string]bool {
	t.Helper()
	ordered := pipelineOrder(recs)
	var in bytes.Buffer
	for i := range ordered {
		in.Write(ordered[i].AppendJSON(nil))
		in.WriteByte('\n')
	}
	var out bytes.Buffer
	sum, err := replay.Run(t.Context(), replay.Config{Engine: g, Until: until}, &in, &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.RejectedTotal != 0 || sum.AfterUntil != 0 {
		t.Fatalf("replay rejected %d records and skipped %d after until", sum.RejectedTotal, sum.AfterUntil)
	}
	ids := map[string]bool{}
	dec := json.NewDecoder(&out)
	for {
		var a struct {
			AlertID string `json:"alert_id"`
		}
		if err := dec.Decode(&a); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		ids[a.AlertID] = true
	}
	return ids
}

// runPipeline starts p.Run and returns a stop function that cancels it and
// checks that Run returns nil within a bound.
func runPipeline(t *testing.T, p *pipeline.Pipeline) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				buf := make([]byte, 4<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Fatalf("Run did not return within 30s of cancel; goroutines:\n%s", buf)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// alertJSON is the structure every alert must have.
type alertJSON struct {
	AlertID       string          `json:"alert_id"`
	Type          string          `json:"type"`
	MemberID      string          `json:"member_id"`
	TriggeredAt   time.Time       `json:"triggered_at"`
	EmittedAt     time.Time       `json:"emitted_at"`
	Reason        string          `json:"reason"`
	Severity      string          `json:"severity"`
	Member        json.RawMessage `json:"member"`
	SchemaVersion int             `json:"schema_version"`
}

// collectAlerts reads the alert topics and returns the count per alert id,
// checking each record's structure, key and headers.
func collectAlerts(t *testing.T, addr string, topics pipeline.Topics, strict bool) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, topic := range []string{topics.Dormancy, topics.Retention, topics.Nudges, topics.Segments} {
		for _, m := range readTopic(t, addr, topic) {
			var a alertJSON
			dec := json.NewDecoder(bytes.NewReader(m.Value))
			if err := dec.Decode(&a); err != nil {
				t.Fatalf("alert on %s does not parse: %v: %s", topic, err, m.Value)
			}
			if strict {
				switch {
				case a.AlertID == "" || a.Type == "" || a.MemberID == "" || a.TriggeredAt.IsZero() || a.EmittedAt.IsZero() ||
					a.SchemaVersion != operators.AlertSchemaVersion || len(a.Member) == 0:
					t.Errorf("alert on %s misses fields: %s", topic, m.Value)
				case string(m.Key) != a.MemberID:
					t.Errorf("alert %s has key %q", a.AlertID, m.Key)
				case header(m, pipeline.HeaderAlertID) != a.AlertID || header(m, pipeline.HeaderAlertType) != a.Type:
					t.Errorf("alert %s has headers %v", a.AlertID, m.Headers)
				case topics.ForAlert(mustType(t, a.Type).Topic()) != topic:
					t.Errorf("alert %s of type %s on topic %s", a.AlertID, a.Type, topic)
				}
			}
			got[a.AlertID]++
		}
	}
	return got
}

func mustType(t *testing.T, s string) operators.AlertType {
	at, ok := operators.ParseAlertType(s)
	if !ok {
		t.Fatalf("unknown alert type %q", s)
	}
	return at
}

func contextWithTimeout(t *testing.T, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.Context(), d)
}

// waitFor polls cond every 200ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// caughtUp reports whether the store's committed offsets reached the ends.
func caughtUp(t *testing.T, s *state.Store, topics pipeline.Topics, ends map[string]map[int]int64) bool {
	t.Helper()
	for topic, parts := range ends {
		for p, end := range parts {
			offs, err := s.Partition(state.Partition(p)).Offsets()
			if err != nil {
				t.Fatal(err)
			}
			if end > 0 && offs[topic] < end {
				return false
			}
		}
	}
	return true
}

// checkNoPipelineGoroutines fails if a goroutine of the pipeline package
// (workers, fetchers, their timers) is still running after Run returned.
func checkNoPipelineGoroutines(t *testing.T) {
	t.Helper()
	var left string
	for range 20 {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		left = ""
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "churnflow/pipeline.") && !strings.Contains(g, "pipeline_test.") {
				left = g
				break
			}
		}
		if left == "" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("a pipeline goroutine is still running after Run returned:\n%s", left)
}
