package pipeline_test

// Every integration test of the pipeline runs against two brokers
// (eachBroker): the embedded one (internal/devbroker, kfake), always, and
// a real Apache Kafka (internal/kafkatest), only with CHURNFLOW_REAL_KAFKA=1
// (scripts/test.sh sets it; without it the "kafka" subtests skip, an
// explicit opt-out for the inner loop).
//
// The embedded broker is started per test, so its topics have the default
// names. The real one is a single-node cluster shared by the whole test
// binary (kafkatest.Shared, stopped in TestMain), so every test gets topic
// names and consumer groups of its own (a unique prefix).

import (
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/churnflow/churnflow/internal/kafkatest"
	"github.com/churnflow/churnflow/pipeline"
)

func TestMain(m *testing.M) {
	code := m.Run()
	kafkatest.StopShared(code != 0)
	os.Exit(code)
}

// testBroker is the broker one subtest of eachBroker runs against.
type testBroker struct {
	Name       string          // "embedded" or "kafka": the subtest's name
	Addr       string          // bootstrap address
	Real       bool            // Apache Kafka, not the embedded broker
	Partitions int32           // the input topics' partitions (0: no topic was created)
	Topics     pipeline.Topics // this test's topic names
	prefix     string          // of this test's topic names and group ids ("" on the embedded broker)
}

// eachBroker runs f as subtest "embedded" against a fresh embedded broker
// and as subtest "kafka" against real Apache Kafka (skipped unless
// CHURNFLOW_REAL_KAFKA=1). With partitions > 0 the input topics exist with
// that many partitions (on the embedded broker, every default topic does,
// the outputs too); with 0 no topic exists (b.CreateTopic makes them).
func eachBroker(t *testing.T, partitions int32, f func(t *testing.T, b testBroker)) {
	t.Helper()
	t.Run("embedded", func(t *testing.T) { f(t, embeddedBroker(t, partitions)) })
	t.Run("kafka", func(t *testing.T) { f(t, realBroker(t, partitions)) })
}

// embeddedBroker starts an embedded broker: startBroker's (every default
// topic with partitions), or with partitions 0 a bare one without topics.
func embeddedBroker(t *testing.T, partitions int32) testBroker {
	t.Helper()
	b := testBroker{Name: "embedded", Partitions: partitions, Topics: pipeline.DefaultTopics()}
	if partitions > 0 {
		b.Addr = startBroker(t, partitions).Addr()
		return b
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	b.Addr = c.ListenAddrs()[0]
	return b
}

// skipUnlessRealKafka skips the test unless CHURNFLOW_REAL_KAFKA=1.
func skipUnlessRealKafka(t *testing.T) {
	t.Helper()
	if !kafkatest.Enabled() {
		t.Skipf("real Apache Kafka subtest: set %s=1 to run it (scripts/test.sh and CI do; needs java 17+, and mvn on first use)",
			kafkatest.EnvVar)
	}
}

// testSeq numbers the real-Kafka subtests of this process.
var testSeq atomic.Int64

// realBroker returns the shared real Kafka with this test's topic names
// and, with partitions > 0, its input topics created.
func realBroker(t *testing.T, partitions int32) testBroker {
	t.Helper()
	skipUnlessRealKafka(t)
	addr := kafkatest.Shared(t)
	name, _, _ := strings.Cut(t.Name(), "/")
	prefix := fmt.Sprintf("%s-%d.", name, testSeq.Add(1))
	b := testBroker{Name: "kafka", Addr: addr, Real: true, Partitions: partitions,
		Topics: prefixTopics(pipeline.DefaultTopics(), prefix), prefix: prefix}
	if partitions > 0 {
		for _, topic := range b.Topics.Inputs() {
			b.CreateTopic(t, topic, int(partitions))
		}
	}
	return b
}

// prefixTopics puts prefix before every topic name of topics (whatever
// fields Topics has; an empty one, a name derived from others, such as
// the changelog's from the group, stays empty).
func prefixTopics(topics pipeline.Topics, prefix string) pipeline.Topics {
	v := reflect.ValueOf(&topics).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.String && f.CanSet() && f.String() != "" {
			f.SetString(prefix + f.String())
		}
	}
	return topics
}

// Group returns this test's consumer group id for name.
func (b testBroker) Group(name string) string { return b.prefix + name }

// Configure points cfg at the broker: Brokers, this test's Topics, its
// own group (cfg.Group made unique, so call it once per cfg), and
// CreateTopics (the outputs exist on the embedded broker; real Kafka's
// are created by Run, as in production).
func (b testBroker) Configure(cfg *pipeline.Config) {
	cfg.Brokers = []string{b.Addr}
	cfg.Topics = b.Topics
	cfg.Group = b.Group(cfg.Group)
	cfg.CreateTopics = true
}

// CreateTopic creates a topic with partitions partitions and waits until
// the broker serves all of them.
func (b testBroker) CreateTopic(t *testing.T, topic string, partitions int) {
	t.Helper()
	kafkatest.CreateTopics(t, b.Addr, kafka.TopicConfig{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1})
}

// allowShortSessions lets consumer-group sessions as short as
// childSessionTimeout: lowerMinSessionTimeout on the embedded broker; on
// real Kafka group.min.session.timeout.ms is not a dynamic setting, so
// scripts/kafka-local.sh sets it in server.properties, checked here.
func (b testBroker) allowShortSessions(t *testing.T) {
	t.Helper()
	if !b.Real {
		lowerMinSessionTimeout(t, b.Addr)
		return
	}
	const name = "group.min.session.timeout.ms"
	id := onlyBrokerID(t, b.Addr)
	resp, err := kafkatest.Client(t, b.Addr).DescribeConfigs(t.Context(), &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeBroker, ResourceName: id, ConfigNames: []string{name},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Resources {
		if r.Error != nil {
			t.Fatalf("describe %s: %v", name, r.Error)
		}
		for _, e := range r.ConfigEntries {
			if e.ConfigName != name {
				continue
			}
			ms, err := strconv.Atoi(e.ConfigValue)
			if err != nil || time.Duration(ms)*time.Millisecond > childSessionTimeout {
				t.Fatalf("real Kafka has %s=%s; the test needs at most %v (scripts/kafka-local.sh sets 500)",
					name, e.ConfigValue, childSessionTimeout)
			}
			return
		}
	}
	t.Fatalf("real Kafka did not describe %s", name)
}

// checkOutputsAsDocumented checks that the output topics exist as the
// pipeline documents them (docs/pipeline.md, "Start-up"): the inputs'
// partition count, and cleanup.policy=compact for the compacted ones. On the
// embedded broker devbroker made them so; on real Kafka, Run
// (Config.CreateTopics).
func checkOutputsAsDocumented(t *testing.T, b testBroker) {
	t.Helper()
	checkTopicLayout(t, b, b.Topics.Outputs(), b.Topics.Compacted)
}

// checkTopicLayout checks that topics exist with b.Partitions partitions
// each and cleanup.policy compact where compacted says, delete elsewhere.
func checkTopicLayout(t *testing.T, b testBroker, topics []string, compacted func(string) bool) {
	t.Helper()
	md, err := kafkatest.Metadata(t.Context(), b.Addr, topics...)
	if err != nil {
		t.Fatal(err)
	}
	req := &kafka.DescribeConfigsRequest{}
	for _, name := range topics {
		tm := md[name]
		switch {
		case tm.Error != nil:
			t.Errorf("topic %s: %v", name, tm.Error)
		case len(tm.Partitions) != int(b.Partitions):
			t.Errorf("topic %s has %d partitions, want the inputs' %d", name, len(tm.Partitions), b.Partitions)
		}
		req.Resources = append(req.Resources, kafka.DescribeConfigRequestResource{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: name, ConfigNames: []string{"cleanup.policy"}})
	}
	resp, err := kafkatest.Client(t, b.Addr).DescribeConfigs(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	policy := map[string]string{}
	for _, r := range resp.Resources {
		for _, e := range r.ConfigEntries {
			if e.ConfigName == "cleanup.policy" {
				policy[r.ResourceName] = e.ConfigValue
			}
		}
	}
	for _, name := range topics {
		want := "delete"
		if compacted(name) {
			want = "compact"
		}
		if got := policy[name]; got != want {
			t.Errorf("topic %s has cleanup.policy %q, want %q", name, got, want)
		}
	}
}

// checkTopicsAbsent fails if one of topics exists on b, now or within a
// second (real Kafka creates a topic a metadata request asked to
// auto-create a moment after it answered "unknown topic").
func checkTopicsAbsent(t *testing.T, b testBroker, topics []string) {
	t.Helper()
	for deadline := time.Now().Add(time.Second); ; {
		md, err := kafkatest.Metadata(t.Context(), b.Addr, topics...)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range topics {
			if tm := md[name]; tm.Error == nil {
				t.Errorf("topic %s exists (%d partitions) after a start-up that failed", name, len(tm.Partitions))
				return
			}
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// awaitCreatedTopics waits until the output topics and the changelog
// topic of a pipeline started with cfg exist (Run creates them at start-up
// when missing), checks that they are as docs/pipeline.md says (the
// inputs' partition count; member-segments and the changelog compacted)
// and stops the test at once if not: a pipeline on wrongly made topics can
// stall (a worker waiting for a changelog partition that does not exist)
// rather than fail.
func awaitCreatedTopics(t *testing.T, cfg pipeline.Config, partitions int) {
	t.Helper()
	b := testBroker{Addr: cfg.Brokers[0], Partitions: int32(partitions), Topics: cfg.Topics}
	changelog := cfg.Topics.ChangelogFor(cfg.Group)
	topics := append(cfg.Topics.Outputs(), changelog)
	waitFor(t, 60*time.Second, "the pipeline's output and changelog topics", func() bool {
		md, err := kafkatest.Metadata(t.Context(), b.Addr, topics...)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range topics {
			if md[name].Error != nil {
				return false
			}
		}
		return true
	})
	checkTopicLayout(t, b, topics, func(name string) bool { return name == changelog || cfg.Topics.Compacted(name) })
	if t.Failed() {
		t.FailNow()
	}
}
