package pipeline_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/churnflow/churnflow/internal/gen"
	"github.com/churnflow/churnflow/operators"
	"github.com/churnflow/churnflow/pipeline"
	"github.com/churnflow/churnflow/state"
)

// knownAnswer runs the pipeline over msgs (already produced) and checks that
// the alert ids on the output topics (cfg.Topics, as mod leaves them) are
// exactly replay's over the good records recs.
//
// How the two are made to end at the same point: replay fires the timers
// due at or before --until; the pipeline fires the timers due strictly
// before its watermark. The pipeline's clock is frozen at the end of the
// generated span while it consumes (no record is in the future, and a
// frozen clock never makes a partition idle, so the watermark stays at the
// largest event time − Lateness, behind every event). Once the committed
// offsets reach the end of both input topics, the clock jumps to
// end + Lateness + 1 min: every partition is caught up and idle, so its
// watermark becomes clock − Lateness = end + 1 min exactly, after every
// event. Replay runs with until = end + 1 min − 1 s, which takes in every
// event and fires the same timers. Both apply events in the same order
// (occurred_at, then bookings before activity, then production order).
func knownAnswer(t *testing.T, addr string, recs []gen.Record, end time.Time, mod func(*pipeline.Config)) (*pipeline.Pipeline, func()) {
	t.Helper()
	return knownAnswerWith(t, addr, recs, end, mod, nil, nil)
}

// knownAnswerWith is knownAnswer with metrics (may be nil) and a check run
// while the pipeline still runs, once the alerts are all out (may be nil).
func knownAnswerWith(t *testing.T, addr string, recs []gen.Record, end time.Time, mod func(*pipeline.Config),
	metrics *pipeline.Metrics, whileRunning func(p *pipeline.Pipeline, store *state.Store)) (*pipeline.Pipeline, func()) {
	t.Helper()
	g := newEngine(t)
	cfg := pipeline.DefaultConfig()
	cfg.Brokers, cfg.Group = []string{addr}, "test"
	cfg.IdleAfter = 200 * time.Millisecond
	cfg.BatchMax = 500 // several batches per partition
	if mod != nil {
		mod(&cfg)
	}
	topics := cfg.Topics
	final := end.Add(cfg.Lateness + time.Minute)
	watermark := final.Add(-cfg.Lateness)
	want := replayAlerts(t, g, recs, watermark.Add(-time.Second))
	if len(want) == 0 {
		t.Fatal("replay gives no alerts: the test would prove nothing")
	}

	clock := &testClock{now: end}
	store := openStore(t)
	p, err := pipeline.New(cfg, pipeline.Deps{Engine: g, Store: store, Clock: clock.Now, Log: testLogger(t), Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	stop := runPipeline(t, p)
	ends := allInputEnds(t, addr, topics)
	awaitCreatedTopics(t, cfg, len(ends[topics.Bookings]))
	waitFor(t, 90*time.Second, "the pipeline to consume the inputs", func() bool { return caughtUp(t, store, topics, ends) })
	consumed := time.Since(started)
	clock.Set(final)
	got := awaitAlerts(t, addr, topics, want, 60*time.Second)
	if whileRunning != nil {
		whileRunning(p, store)
	}
	stop()
	checkNoPipelineGoroutines(t)
	dups := compareAlerts(t, want, got)
	st, err := store.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.OutboxDepth != 0 {
		t.Errorf("outbox holds %d records after a clean stop", st.OutboxDepth)
	}
	t.Logf("%d events, %d alerts (%d duplicate deliveries), consumed in %v", len(recs), len(want), dups, consumed.Round(time.Millisecond))
	return p, stop
}

func head(s []string) []string { return s[:min(len(s), 10)] }

func TestEndToEndMatchesReplay(t *testing.T) {
	eachBroker(t, 4, func(t *testing.T, b testBroker) {
		gcfg, recs := genRecords(t, 300, 180, 42)
		produce(t, b.Addr, toMessages(recs, b.Topics))
		knownAnswer(t, b.Addr, recs, gcfg.End(), b.Configure)
		checkOutputsAsDocumented(t, b)
	})
}

// TestBadInput mixes one record of each kind of bad input into a generated
// stream: each lands in the dead-letter topic with its reason and original
// bytes, and the good records around them give exactly replay's alerts.
func TestBadInput(t *testing.T) {
	eachBroker(t, 3, testBadInput)
}

func testBadInput(t *testing.T, b testBroker) {
	topics := b.Topics
	gcfg, recs := genRecords(t, 80, 90, 7)
	msgs := toMessages(recs, topics)

	mid := len(recs) / 2
	member := string(recs[mid].Member)
	ts := time.Unix(recs[mid].At, 0).UTC().Format(time.RFC3339)
	future := gcfg.End().Add(48 * time.Hour).Format(time.RFC3339)
	login := func(id, extra string) []byte {
		return fmt.Appendf(nil, `{"event_id":%q,"type":"login","member_id":%q,"occurred_at":%q%s}`, id, member, ts, extra)
	}
	type bad struct {
		msg    kafka.Message
		reason operators.Reason
	}
	act := func(key string, v []byte) kafka.Message {
		return kafka.Message{Topic: topics.Activity, Key: []byte(key), Value: v}
	}
	bads := []bad{
		{act(member, []byte(`{"event_id":"bad-1","type":"login",`)), operators.ReasonInvalidJSON},
		{act(member, fmt.Appendf(nil, `{"event_id":"bad-2","type":"login","occurred_at":%q}`, ts)), operators.ReasonMissingField},
		{act(member, fmt.Appendf(nil, `{"event_id":"bad-3","type":"login","member_id":%q,"occurred_at":12345}`, member)), operators.ReasonInvalidField},
		{act(member, fmt.Appendf(nil, `{"event_id":"bad-4","type":"login","member_id":%q,"occurred_at":%q}`, member, future)), operators.ReasonFuture},
		{act(member, login("bad-5", `,"padding":"`+strings.Repeat("x", 5000)+`"`)), operators.ReasonOversize},
		{msgs[mid], operators.ReasonDuplicate}, // the same record again, right after it
		{act(member, fmt.Appendf(nil, `{"event_id":"bad-7","type":"booking","member_id":%q,"occurred_at":%q,"product":"flight"}`, member, ts)), operators.ReasonWrongTopic},
		{act("someone-else", login("bad-8", "")), operators.ReasonKeyMismatch},
		// Larger than a fetch's byte limit (fetchMaxBytes, 128 KiB): the
		// broker still returns it, alone, and it goes to the dead letters.
		{act(member, login("bad-9", `,"padding":"`+strings.Repeat("y", 300<<10)+`"`)), operators.ReasonOversize},
	}
	all := slices.Clone(msgs[:mid+1])
	for _, x := range bads {
		all = append(all, x.msg)
	}
	all = append(all, msgs[mid+1:]...)
	produce(t, b.Addr, all)

	knownAnswer(t, b.Addr, recs, gcfg.End(), func(c *pipeline.Config) {
		b.Configure(c)
		c.MaxEventBytes = 4096
	})

	dlq := readTopic(t, b.Addr, topics.DeadLetter)
	byReason := map[string][]kafka.Message{}
	for _, m := range dlq {
		r := header(m, pipeline.HeaderReason)
		byReason[r] = append(byReason[r], m)
		if header(m, pipeline.HeaderSourceTopic) == "" || header(m, pipeline.HeaderSourcePartition) == "" ||
			header(m, pipeline.HeaderSourceOffset) == "" || header(m, pipeline.HeaderError) == "" {
			t.Errorf("dead letter (%s) lacks headers: %v", r, m.Headers)
		}
	}
	for _, x := range bads {
		got := byReason[string(x.reason)]
		i := slices.IndexFunc(got, func(m kafka.Message) bool { return string(m.Value) == string(x.msg.Value) })
		if i < 0 {
			t.Errorf("reason %s: no dead letter with the original value %.80q among %d", x.reason, x.msg.Value, len(got))
			continue
		}
		m := got[i]
		if string(m.Key) != string(x.msg.Key) {
			t.Errorf("reason %s: dead letter key %q, want the original %q", x.reason, m.Key, x.msg.Key)
		}
		if header(m, pipeline.HeaderSourceTopic) != x.msg.Topic {
			t.Errorf("reason %s: source_topic %q, want %q", x.reason, header(m, pipeline.HeaderSourceTopic), x.msg.Topic)
		}
		t.Logf("%s: %s", x.reason, header(m, pipeline.HeaderError))
	}
	if len(dlq) != len(bads) {
		t.Errorf("%d dead letters, want %d", len(dlq), len(bads))
	}
}
