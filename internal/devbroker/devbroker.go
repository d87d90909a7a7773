// Package devbroker runs an in-memory, Kafka-protocol broker on the loopback
// interface for development, the demo and fast tests. It is
// github.com/twmb/franz-go/pkg/kfake: a fake that keeps every record in RAM
// (about 0.7 KB each), NOT a production broker; whatever it does differently
// from Apache Kafka, Apache Kafka is right.
package devbroker

import (
	"fmt"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/churnflow/churnflow/pipeline"
)

// Config configures the broker. Start from DefaultConfig.
type Config struct {
	// Listen is the address to listen on; the host must be 127.0.0.1 or
	// localhost, and port 0 picks a free port. Default 127.0.0.1:9092.
	Listen string
	// Partitions is the partition count of every topic. Default 8.
	Partitions int32
	// Topics are created at start-up, the member-segments topic compacted.
	Topics pipeline.Topics
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Listen: "127.0.0.1:9092", Partitions: 8, Topics: pipeline.DefaultTopics()}
}

// Broker is a running embedded broker.
type Broker struct {
	c    *kfake.Cluster
	addr string
}

// Start starts the broker and creates the topics.
func Start(cfg Config) (*Broker, error) {
	host, portText, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: want host:port, e.g. 127.0.0.1:9092", cfg.Listen)
	}
	if host != "127.0.0.1" && host != "localhost" {
		return nil, fmt.Errorf("listen address %q: the embedded broker listens on 127.0.0.1 only (it is for development)", cfg.Listen)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("listen address %q: %q is not a port", cfg.Listen, portText)
	}
	if cfg.Partitions < 1 || cfg.Partitions > 1024 {
		return nil, fmt.Errorf("partitions: %d is out of range (1 to 1024)", cfg.Partitions)
	}
	if err := cfg.Topics.Validate(); err != nil {
		return nil, err
	}
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.DefaultNumPartitions(int(cfg.Partitions))}
	if port != 0 {
		opts = append(opts, kfake.Ports(port))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded broker on %s: %w", cfg.Listen, err)
	}
	topics := append(cfg.Topics.Inputs(), cfg.Topics.Outputs()...)
	for _, t := range topics {
		var configs map[string]string
		if cfg.Topics.Compacted(t) {
			configs = map[string]string{"cleanup.policy": "compact"}
		}
		if err := c.CreateTopic(t, cfg.Partitions, configs); err != nil {
			c.Close()
			return nil, fmt.Errorf("create topic %s: %w", t, err)
		}
	}
	return &Broker{c: c, addr: c.ListenAddrs()[0]}, nil
}

// Addr is the bootstrap address (127.0.0.1:port).
func (b *Broker) Addr() string { return b.addr }

// Close stops the broker; its records are gone.
func (b *Broker) Close() { b.c.Close() }
