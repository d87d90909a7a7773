package harness

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/churnflow/churnflow/internal/gen"
	"github.com/churnflow/churnflow/operators"
	"github.com/churnflow/churnflow/pipeline"
)

// record is one input record held in memory.
type record struct {
	topic      gen.Topic
	key, value []byte
}

// dataSet describes the preloaded events.
type dataSet struct {
	took  time.Duration
	days  int
	bytes int64
	end   int64 // the generated span's end, Unix seconds: the clock the pipeline runs at
	last  int64 // the last preloaded event's time
	extra []record
	// live are the events that follow extra, for the latency phase
	// (liveEvents), with their generated times.
	live []operators.Event
}

// extraEvents follow the preloaded ones; the restart phase processes them.
const extraEvents = 1000

// genConfig is the population the harness generates: members over days,
// without malformed records.
func genConfig(seed uint64, members, days int) gen.Config {
	gc := gen.DefaultConfig()
	gc.Members, gc.Days, gc.Seed, gc.BadRate = members, days, seed, 0
	gc.Tiers = operators.DefaultConfig().Tiers
	return gc
}

// spanFor picks the number of days over which members produce at least
// events records (with 5 % to spare), from the count of a 2,000-member
// sample scaled up.
func spanFor(seed uint64, members, events int) (int, error) {
	sample := min(members, 2000)
	count := func(days int) (float64, error) {
		s, err := gen.NewStream(genConfig(seed, sample, days))
		if err != nil {
			return 0, err
		}
		var r gen.Record
		n := 0
		for s.Next(&r) {
			n++
		}
		return float64(n) * float64(members) / float64(sample), nil
	}
	want := float64(events) * 1.05
	lo, hi := 1, 1
	for {
		n, err := count(hi)
		if err != nil {
			return 0, err
		}
		if n >= want {
			break
		}
		if hi >= 36500 {
			return 0, fmt.Errorf("%d members do not make %d events in 100 years: give fewer events or more members", members, events)
		}
		lo, hi = hi, min(hi*2, 36500)
	}
	for lo < hi {
		mid := (lo + hi) / 2
		n, err := count(mid)
		if err != nil {
			return 0, err
		}
		if n >= want {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return hi, nil
}

// preload produces cfg.Events generated records to the input topics,
// streaming them (10,000,000 records do not fit comfortably in memory),
// and keeps the extraEvents that follow for the restart phase and, with
// keepLive, the live events after those for the latency phase. The span
// of event time makes room for the live events whether or not they are
// kept, so that the preloaded events do not depend on the phases skipped.
func preload(ctx context.Context, brokers []string, topics pipeline.Topics, cfg Config, keepLive bool) (*dataSet, error) {
	start := time.Now()
	live := cfg.liveEvents()
	days, err := spanFor(cfg.Seed, cfg.Members, cfg.Events+extraEvents+live)
	if err != nil {
		return nil, err
	}
	gc := genConfig(cfg.Seed, cfg.Members, days)
	s, err := gen.NewStream(gc)
	if err != nil {
		return nil, err
	}
	w := gen.NewWriter(brokers, 5000)
	defer w.Close()
	names := [2]string{topics.Bookings, topics.Activity}
	var (
		batch gen.MessageBatch
		r     gen.Record
		ds    = &dataSet{days: days, end: gc.End().Unix()}
		n     int
	)
	flush := func() error {
		if batch.Len() == 0 {
			return nil
		}
		msgs := batch.Messages(names)
		for i := range msgs {
			ds.bytes += int64(len(msgs[i].Value))
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			return fmt.Errorf("preload: %w", err)
		}
		batch.Reset()
		return nil
	}
	for n < cfg.Events && s.Next(&r) {
		batch.Add(&r)
		ds.last = r.At
		n++
		if batch.Len() == 50_000 {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if n < cfg.Events {
		return nil, fmt.Errorf("preload: the generated population made %d events, %d wanted", n, cfg.Events)
	}
	for len(ds.extra) < extraEvents && s.Next(&r) {
		ds.extra = append(ds.extra, record{topic: r.Topic, key: []byte(r.Member), value: r.AppendJSON(nil)})
	}
	if !keepLive {
		live = 0
	}
	ds.live = make([]operators.Event, 0, live)
	for len(ds.live) < live && s.Next(&r) {
		ds.live = append(ds.live, r.Event)
	}
	if len(ds.live) < live {
		return nil, fmt.Errorf("preload: the generated population made %d live events after the preloaded ones, %d wanted", len(ds.live), live)
	}
	ds.took = time.Since(start)
	return ds, nil
}

// produceRecords writes recs to the input topics as fast as they go.
func produceRecords(ctx context.Context, brokers []string, topics pipeline.Topics, recs []record) error {
	w := gen.NewWriter(brokers, 5000)
	defer w.Close()
	names := [2]string{topics.Bookings, topics.Activity}
	msgs := make([]kafka.Message, len(recs))
	for i, r := range recs {
		msgs[i] = kafka.Message{Topic: names[r.topic], Key: r.key, Value: r.value}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	return nil
}

// producePaced writes recs at rate records per second, in a batch every
// 10 ms, each record stamped with the time it was handed to the producer
// (the event-to-alert latency starts there). It returns the rate achieved.
func producePaced(ctx context.Context, brokers []string, topics pipeline.Topics, recs []record, rate float64) (float64, error) {
	// kafka-go allocates a slice of BatchSize messages (152 bytes each) for
	// every partition batch it starts: at 10,000, 1.5 MB per partition and
	// tick. At 20,000/s offered this process allocated about 1.3 GB/s and
	// collected every 250 ms (GODEBUG=gctrace=1), taking CPU from the
	// pipeline it measures on the same cores. A tick holds about a dozen
	// records per partition at the rates this phase offers (at 20,000/s,
	// 200 a tick over 8 partitions of two topics); more would go in a
	// second request.
	w := gen.NewWriter(brokers, 64)
	w.BatchTimeout = time.Millisecond
	defer w.Close()
	names := [2]string{topics.Bookings, topics.Activity}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	sent := 0
	msgs := make([]kafka.Message, 0, 1024)
	for sent < len(recs) {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-tick.C:
		}
		due := min(int(rate*time.Since(start).Seconds()), len(recs))
		if due <= sent {
			continue
		}
		now := time.Now()
		msgs = msgs[:0]
		for _, r := range recs[sent:due] {
			msgs = append(msgs, kafka.Message{Topic: names[r.topic], Key: r.key, Value: r.value, Time: now})
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			return 0, fmt.Errorf("produce: %w", err)
		}
		sent = due
	}
	return float64(sent) / time.Since(start).Seconds(), nil
}

// createTopics creates names with partitions partitions each (replication
// 1 on one broker, else 3) and waits until the cluster reports them.
func createTopics(ctx context.Context, brokers []string, names []string, partitions int) error {
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 30 * time.Second}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		return fmt.Errorf("create topics: cluster metadata: %w", err)
	}
	rf := min(3, len(meta.Brokers))
	req := &kafka.CreateTopicsRequest{}
	for _, n := range names {
		req.Topics = append(req.Topics, kafka.TopicConfig{Topic: n, NumPartitions: partitions, ReplicationFactor: rf})
	}
	resp, err := client.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	for name, e := range resp.Errors {
		if e != nil && !errors.Is(e, kafka.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", name, e)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		m, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
		ok := err == nil
		if ok {
			for _, t := range m.Topics {
				if t.Error != nil || len(t.Partitions) != partitions {
					ok = false
				}
				for _, p := range t.Partitions {
					if p.Error != nil || p.Leader.Host == "" {
						ok = false
					}
				}
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("create topics: not ready after a minute: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
