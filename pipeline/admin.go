package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

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
	t := p.cfg.Topics
	counts := map[string]int{}
	for _, name := range append(t.Inputs(), t.Outputs()...) {
		parts, err := conn.ReadPartitions(name)
		if errors.Is(err, kafka.UnknownTopicOrPartition) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("read partitions of %s: %w", name, err)
		}
		n := 0
		for _, pt := range parts {
			if pt.Topic == name {
				n++
			}
		}
		if n > 0 {
			counts[name] = n
		}
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

// createTopics creates topics on the controller with n partitions and a
// replication factor of min(3, brokers).
func (p *Pipeline) createTopics(ctx context.Context, conn *kafka.Conn, names []string, n int) error {
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
	rf := min(3, len(brokers))
	var cfgs []kafka.TopicConfig
	for _, name := range names {
		tc := kafka.TopicConfig{Topic: name, NumPartitions: n, ReplicationFactor: rf}
		if p.cfg.Topics.Compacted(name) {
			tc.ConfigEntries = []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}}
		}
		cfgs = append(cfgs, tc)
	}
	if err := cc.CreateTopics(cfgs...); err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("create topics %v: %w", names, err)
	}
	p.log.Info().Strs("topics", names).Int("partitions", n).Int("replication_factor", rf).Msg("created output topics")
	return nil
}
