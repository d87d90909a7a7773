package gen

import (
	"time"

	"github.com/segmentio/kafka-go"
)

// NewWriter returns the producer churnflow's tools feed the input topics
// with: acks from all replicas, the Java client's key hashing (a member's
// records stay on one partition, in order), a few milliseconds of linger and
// batches of up to batch records. Set Message.Topic on every message.
func NewWriter(brokers []string, batch int) *kafka.Writer {
	return &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		RequiredAcks: kafka.RequireAll,
		Balancer:     &kafka.Murmur2Balancer{},
		BatchTimeout: 5 * time.Millisecond,
		BatchSize:    batch,
		WriteTimeout: 30 * time.Second,
		Transport:    &kafka.Transport{},
	}
}

// MessageBatch turns records into Kafka messages keyed by member id, with
// one buffer for all keys and values. Reset it between batches; the messages
// are valid until then.
type MessageBatch struct {
	buf    []byte
	ends   []int
	topics []Topic
	types  []string
	msgs   []kafka.Message
}

// Reset empties the batch, keeping its buffers.
func (b *MessageBatch) Reset() {
	b.buf, b.ends, b.topics, b.types, b.msgs = b.buf[:0], b.ends[:0], b.topics[:0], b.types[:0], b.msgs[:0]
}

// Add appends a record: its member id as key, its JSON (or raw bad bytes)
// as value.
func (b *MessageBatch) Add(r *Record) {
	b.buf = append(b.buf, r.Member...)
	b.ends = append(b.ends, len(b.buf))
	b.buf = r.AppendJSON(b.buf)
	b.ends = append(b.ends, len(b.buf))
	b.topics = append(b.topics, r.Topic)
	t := ""
	if r.Bad == "" {
		t = r.Event.TypeName
	}
	b.types = append(b.types, t)
}

// Len is the number of records added.
func (b *MessageBatch) Len() int { return len(b.topics) }

// Topics are the records' input topics, in order.
func (b *MessageBatch) Topics() []Topic { return b.topics }

// Types are the records' event types, in order ("" for a malformed record).
func (b *MessageBatch) Types() []string { return b.types }

// Messages returns the batch as messages, the topic of each named by
// names[record topic].
func (b *MessageBatch) Messages(names [2]string) []kafka.Message {
	b.msgs = b.msgs[:0]
	start := 0
	for i, t := range b.topics {
		k, v := b.ends[2*i], b.ends[2*i+1]
		b.msgs = append(b.msgs, kafka.Message{Topic: names[t], Key: b.buf[start:k:k], Value: b.buf[k:v:v]})
		start = v
	}
	return b.msgs
}
