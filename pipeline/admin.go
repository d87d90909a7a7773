package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// ErrNotCoPartitioned means the input topics have different partition
// counts, so partition p of both cannot go to one worker.
var ErrNotCoPartitioned = errors.New("the input topics must be co-partitioned (same partition count, keyed by member_id)")

// ErrTopicMissing means a topic the pipeline needs does not exist.
var ErrTopicMissing = errors.New("topic does not exist")

// dial connects to the first reachable bootstrap broker.
func (p *Pipeline) dial(ctx context.Context) (*kafka.Conn, error) {
	var errs []error
	for _, b := range p.cfg.Brokers {
		c, err := p.dialer.DialContext(ctx, "tcp", b)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("connect to brokers %v: %w", p.cfg.Brokers, errors.Join(errs...))
}

// checkTopics verifies that both input topics exist with the same partition
// count, creates missing output topics if configured, and returns the count.
func (p *Pipeline) checkTopics(ctx context.Context) (int, error) {
	conn, err := p.dial(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	defer interruptOnDone(ctx, conn)()
	t := p.cfg.Topics
	counts, err := p.partitionCounts(ctx, append(append(t.Inputs(), t.Outputs()...), p.changelog))
	if err != nil {
		return 0, err
	}
	nb, na := counts[t.Bookings], counts[t.Activity]
	switch {
	case nb == 0:
		return 0, fmt.Errorf("input topic %s: %w", t.Bookings, ErrTopicMissing)
	case na == 0:
		return 0, fmt.Errorf("input topic %s: %w", t.Activity, ErrTopicMissing)
	case nb != na:
		return 0, fmt.Errorf("%s has %d partitions but %s has %d: %w", t.Bookings, nb, t.Activity, na, ErrNotCoPartitioned)
	}
	if err := p.ensureChangelog(ctx, conn, counts, nb); err != nil {
		return 0, err
	}
	var missing []string
	for _, name := range t.Outputs() {
		if counts[name] == 0 {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		return nb, nil
	}
	if !p.cfg.CreateTopics {
		// Producing to a missing topic fails (auto-creation is off), and the
		// outbox keeps the records until it exists: warn, do not fail.
		p.log.Warn().Strs("topics", missing).Msg("output topics missing; records wait in the outbox until they exist (or use CreateTopics)")
		return nb, nil
	}
	return nb, p.createTopics(ctx, conn, missing, nb)
}

// partitionCounts returns the partition count of each of names that
// exists. It asks with a Metadata request that does not allow topic
// creation: kafka-go's Conn.ReadPartitions allows it, and a broker with
// auto.create.topics.enable (Kafka's default) would then create every
// topic it is asked about, with the broker's default partition count and
// cleanup policy.
func (p *Pipeline) partitionCounts(ctx context.Context, names []string) (map[string]int, error) {
	tr := p.transport()
	defer tr.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(p.cfg.Brokers...), Timeout: 30 * time.Second, Transport: tr}
	resp, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
	if err != nil {
		return nil, fmt.Errorf("read topic metadata: %w", err)
	}
	counts := map[string]int{}
	for _, tp := range resp.Topics {
		switch {
		case errors.Is(tp.Error, kafka.UnknownTopicOrPartition):
		case tp.Error != nil:
			return nil, fmt.Errorf("read partitions of %s: %w", tp.Name, tp.Error)
		case len(tp.Partitions) > 0:
			counts[tp.Name] = len(tp.Partitions)
		}
	}
	return counts, nil
}

// changelogConfig is the changelog topic's configuration: compacted, and
// never deleted by time or size; a dirty ratio lower than Kafka's default
// keeps a restore's reading closer to one record per member.
var changelogConfig = []kafka.ConfigEntry{
	{ConfigName: "cleanup.policy", ConfigValue: "compact"},
	{ConfigName: "min.cleanable.dirty.ratio", ConfigValue: "0.1"},
	{ConfigName: "segment.bytes", ConfigValue: strconv.Itoa(64 << 20)},
}

// ErrChangelog means the changelog topic exists but cannot serve as one.
var ErrChangelog = errors.New("changelog topic unusable")

// ensureChangelog creates the changelog topic when it is missing (always:
// it is churnflow's own, as Kafka Streams creates its internal topics), or
// checks that it has one partition per input partition and is compacted.
func (p *Pipeline) ensureChangelog(ctx context.Context, conn *kafka.Conn, counts map[string]int, n int) error {
	name := p.changelog
	if got, ok := counts[name]; ok {
		if got != n {
			return fmt.Errorf("%s has %d partitions but the inputs have %d (delete it, or set topics.changelog to a new name, and it is created; state is then rebuilt from the local state directories): %w", name, got, n, ErrChangelog)
		}
		return p.checkCompacted(ctx, name)
	}
	if err := p.createTopicsWith(ctx, conn, []string{name}, n, changelogConfig); err != nil {
		return err
	}
	// Another instance may have created it first (or the broker, from a
	// metadata request of some other client): check what exists.
	after, err := p.partitionCounts(ctx, []string{name})
	if err != nil {
		return err
	}
	if got := after[name]; got != n && got != 0 {
		return fmt.Errorf("%s has %d partitions but the inputs have %d (created meanwhile by another client; delete it and start again): %w", name, got, n, ErrChangelog)
	}
	if err := p.checkCompacted(ctx, name); err != nil {
		return err
	}
	p.log.Info().Str("topic", name).Int("partitions", n).Msg("changelog topic ready")
	return nil
}

// checkCompacted verifies that topic's cleanup.policy compacts and does not
// delete: a changelog whose records expire loses the state of quiet members.
func (p *Pipeline) checkCompacted(ctx context.Context, topic string) error {
	tr := p.transport()
	defer tr.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(p.cfg.Brokers...), Timeout: 30 * time.Second, Transport: tr}
	var resp *kafka.DescribeConfigsResponse
	// A topic just created may not be known yet to the broker asked.
	for attempt := 0; ; attempt++ {
		var err error
		resp, err = c.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{"cleanup.policy"},
		}}})
		if err != nil {
			return fmt.Errorf("describe %s: %w", topic, err)
		}
		unknown := false
		for _, r := range resp.Resources {
			unknown = unknown || errors.Is(r.Error, kafka.UnknownTopicOrPartition)
		}
		if !unknown || attempt == 50 {
			break
		}
		if !sleep(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
	}
	for _, r := range resp.Resources {
		if r.Error != nil {
			return fmt.Errorf("describe %s: %w", topic, r.Error)
		}
		for _, e := range r.ConfigEntries {
			if e.ConfigName != "cleanup.policy" {
				continue
			}
			policy := "," + strings.ReplaceAll(e.ConfigValue, " ", "") + ","
			if !strings.Contains(policy, ",compact,") || strings.Contains(policy, ",delete,") {
				return fmt.Errorf("%s has cleanup.policy=%s; it must be \"compact\" alone (kafka-configs --alter --entity-type topics --entity-name %s --add-config cleanup.policy=compact): %w",
					topic, e.ConfigValue, topic, ErrChangelog)
			}
		}
	}
	return nil
}

// transport is a kafka.Transport that dials as the pipeline's Dialer does.
func (p *Pipeline) transport() *kafka.Transport {
	if d := p.cfg.Dialer; d != nil {
		return &kafka.Transport{Dial: d.DialFunc, TLS: d.TLS, SASL: d.SASLMechanism, ClientID: d.ClientID}
	}
	return &kafka.Transport{}
}

// createTopics creates topics on the controller with n partitions and a
// replication factor of min(3, brokers).
func (p *Pipeline) createTopics(ctx context.Context, conn *kafka.Conn, names []string, n int) error {
	if err := p.createTopicsWith(ctx, conn, names, n, nil); err != nil {
		return err
	}
	p.log.Info().Strs("topics", names).Int("partitions", n).Msg("created output topics")
	return nil
}

// createTopicsWith creates topics with extra configuration entries.
func (p *Pipeline) createTopicsWith(ctx context.Context, conn *kafka.Conn, names []string, n int, extra []kafka.ConfigEntry) error {
	brokers, err := conn.Brokers()
	if err != nil {
		return fmt.Errorf("list brokers: %w", err)
	}
	ctrl, err := conn.Controller()
	if err != nil {
		return fmt.Errorf("find controller: %w", err)
	}
	cc, err := p.dialer.DialContext(ctx, "tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		return fmt.Errorf("connect to controller: %w", err)
	}
	defer cc.Close()
	defer interruptOnDone(ctx, cc)()
	rf := min(3, len(brokers))
	var cfgs []kafka.TopicConfig
	for _, name := range names {
		tc := kafka.TopicConfig{Topic: name, NumPartitions: n, ReplicationFactor: rf, ConfigEntries: extra}
		if p.cfg.Topics.Compacted(name) && extra == nil {
			tc.ConfigEntries = []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}}
		}
		cfgs = append(cfgs, tc)
	}
	if err := cc.CreateTopics(cfgs...); err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("create topics %v: %w", names, err)
	}
	p.log.Debug().Strs("topics", names).Int("replication_factor", rf).Msg("created topics")
	return nil
}

// PartitionOwner says which member of the consumer group processes
// partition id part now: its member id and the host it connects from, as
// the group coordinator describes the group. ok is false when no member
// holds it (a rebalance in progress, or the group empty).
func (p *Pipeline) PartitionOwner(ctx context.Context, part int) (owner string, ok bool, err error) {
	tr := p.transport()
	defer tr.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(p.cfg.Brokers...), Timeout: 10 * time.Second, Transport: tr}
	resp, err := c.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{p.cfg.Group}})
	if err != nil {
		return "", false, fmt.Errorf("describe group %s: %w", p.cfg.Group, err)
	}
	for _, g := range resp.Groups {
		if g.Error != nil {
			return "", false, fmt.Errorf("describe group %s: %w", p.cfg.Group, g.Error)
		}
		for _, m := range g.Members {
			for _, t := range m.MemberAssignments.Topics {
				if t.Topic == p.cfg.Topics.Bookings && slices.Contains(t.Partitions, part) {
					return fmt.Sprintf("group member %s at %s", m.MemberID, strings.TrimPrefix(m.ClientHost, "/")), true, nil
				}
			}
		}
	}
	return "", false, nil
}
