package pipeline_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/churnflow/churnflow/pipeline"
)

func TestCoPartitionBalancer(t *testing.T) {
	topics := []string{"churnflow.bookings", "churnflow.activity"}
	var parts []kafka.Partition
	for _, topic := range topics {
		// Listed in a scrambled order, as metadata may come.
		for _, id := range []int{5, 0, 7, 2, 1, 6, 3, 4} {
			parts = append(parts, kafka.Partition{Topic: topic, ID: id})
		}
	}
	tests := []struct {
		name    string
		members []string
	}{
		{"two members", []string{"m-b", "m-a"}},
		{"three members", []string{"m-c", "m-a", "m-b"}},
		{"one member", []string{"m-a"}},
		{"more members than partitions", []string{"1", "2", "3", "4", "5", "6", "7", "8", "9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var members []kafka.GroupMember
			for _, id := range tt.members {
				members = append(members, kafka.GroupMember{ID: id, Topics: topics})
			}
			got := pipeline.CoPartitionBalancer{}.AssignGroups(members, parts)
			owner := map[int]string{}
			for m, byTopic := range got {
				b, a := byTopic[topics[0]], byTopic[topics[1]]
				if !slices.Equal(b, a) {
					t.Errorf("member %s: bookings %v, activity %v: not the same ids", m, b, a)
				}
				for _, id := range b {
					if prev, ok := owner[id]; ok {
						t.Errorf("partition %d assigned to %s and %s", id, prev, m)
					}
					owner[id] = m
				}
			}
			if len(owner) != 8 {
				t.Errorf("%d partition ids assigned, want 8: %v", len(owner), got)
			}
			// Balanced: counts differ by at most one.
			lo, hi := 8, 0
			for _, m := range tt.members {
				n := len(got[m][topics[0]])
				lo, hi = min(lo, n), max(hi, n)
			}
			if hi-lo > 1 {
				t.Errorf("unbalanced: %v", got)
			}
		})
	}
	t.Run("deterministic whatever the member order", func(t *testing.T) {
		a := pipeline.CoPartitionBalancer{}.AssignGroups([]kafka.GroupMember{{ID: "x", Topics: topics}, {ID: "y", Topics: topics}}, parts)
		b := pipeline.CoPartitionBalancer{}.AssignGroups([]kafka.GroupMember{{ID: "y", Topics: topics}, {ID: "x", Topics: topics}}, parts)
		for _, m := range []string{"x", "y"} {
			if !slices.Equal(a[m][topics[0]], b[m][topics[0]]) {
				t.Errorf("member %s: %v vs %v", m, a[m], b[m])
			}
		}
	})
}

func TestStartupRejectsMismatchedPartitions(t *testing.T) {
	eachBroker(t, 0, func(t *testing.T, b testBroker) {
		topics := b.Topics
		b.CreateTopic(t, topics.Bookings, 8)
		b.CreateTopic(t, topics.Activity, 4)
		cfg, err := runStartup(t, b)
		if !errors.Is(err, pipeline.ErrNotCoPartitioned) {
			t.Fatalf("Run: %v, want ErrNotCoPartitioned", err)
		}
		want := topics.Bookings + " has 8 partitions but " + topics.Activity + " has 4: the input topics must be co-partitioned"
		if !strings.HasPrefix(err.Error(), want) {
			t.Errorf("error %q does not start with %q", err, want)
		}
		checkTopicsAbsent(t, b, append(topics.Outputs(), topics.ChangelogFor(cfg.Group)))
	})
}

// runStartup runs a pipeline of b's configuration, which must fail at
// start-up, and returns the configuration and Run's error.
func runStartup(t *testing.T, b testBroker) (pipeline.Config, error) {
	t.Helper()
	cfg := pipeline.DefaultConfig()
	b.Configure(&cfg)
	p, err := pipeline.New(cfg, pipeline.Deps{Engine: newEngine(t), Store: openStore(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextWithTimeout(t, 20*time.Second)
	defer cancel()
	return cfg, p.Run(ctx)
}

func TestStartupMissingInputTopic(t *testing.T) {
	eachBroker(t, 0, func(t *testing.T, b testBroker) {
		topics := b.Topics
		b.CreateTopic(t, topics.Bookings, 2)
		cfg, err := runStartup(t, b)
		if !errors.Is(err, pipeline.ErrTopicMissing) || !strings.Contains(err.Error(), topics.Activity) {
			t.Fatalf("Run: %v, want ErrTopicMissing naming %s", err, topics.Activity)
		}
		// Checking must not create: the missing input stays missing, and
		// no output was made while the inputs are wrong.
		checkTopicsAbsent(t, b, append([]string{topics.Activity, topics.ChangelogFor(cfg.Group)}, topics.Outputs()...))
	})
}

// TestStartupCreatesTopics: with CreateTopics and only the inputs there,
// Run creates the output topics with the inputs' partition count (the
// member-segments topic compacted) and the changelog topic, compacted,
// with as many partitions (docs/pipeline.md, "Start-up"). Checking which
// topics exist must not create any: real Kafka auto-creates a topic a
// metadata request asks for (auto.create.topics.enable, true by default)
// with num.partitions partitions and no compaction.
func TestStartupCreatesTopics(t *testing.T) {
	eachBroker(t, 0, func(t *testing.T, b testBroker) {
		b.Partitions = 3
		for _, topic := range b.Topics.Inputs() {
			b.CreateTopic(t, topic, int(b.Partitions))
		}
		cfg := pipeline.DefaultConfig()
		b.Configure(&cfg)
		logs := newLogWatch(t)
		p, err := pipeline.New(cfg, pipeline.Deps{Engine: newEngine(t), Store: openStore(t), Log: logs.logger()})
		if err != nil {
			t.Fatal(err)
		}
		stop := runPipeline(t, p)
		waitFor(t, 30*time.Second, "Run to check the topics and start", func() bool { return logs.count("pipeline starting") > 0 })
		stop()
		checkOutputsAsDocumented(t, b)
		changelog := cfg.Topics.ChangelogFor(cfg.Group)
		checkTopicLayout(t, b, []string{changelog}, func(string) bool { return true })
	})
}

func TestConfigValidateNamesField(t *testing.T) {
	tests := []struct {
		field string
		mod   func(*pipeline.Config)
	}{
		{"Brokers", func(c *pipeline.Config) { c.Brokers = nil }},
		{"Group", func(c *pipeline.Config) { c.Group = "" }},
		{"Topics", func(c *pipeline.Config) { c.Topics.Nudges = c.Topics.Dormancy }},
		{"BatchMax", func(c *pipeline.Config) { c.BatchMax = 0 }},
		{"BatchWait", func(c *pipeline.Config) { c.BatchWait = 0 }},
		{"Lateness", func(c *pipeline.Config) { c.Lateness = -time.Second }},
		{"IdleAfter", func(c *pipeline.Config) { c.IdleAfter = 0 }},
		{"MaxFuture", func(c *pipeline.Config) { c.MaxFuture = 0 }},
		{"MaxEventBytes", func(c *pipeline.Config) { c.MaxEventBytes = 0 }},
		{"HeartbeatInterval", func(c *pipeline.Config) { c.HeartbeatInterval = c.SessionTimeout }},
		{"ProduceBatchTimeout", func(c *pipeline.Config) { c.ProduceBatchTimeout = 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			c := pipeline.DefaultConfig()
			c.Brokers = []string{"127.0.0.1:9092"}
			if err := c.Validate(); err != nil {
				t.Fatalf("defaults: %v", err)
			}
			tt.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("Validate: %v, want an error naming %s", err, tt.field)
			}
		})
	}
}
