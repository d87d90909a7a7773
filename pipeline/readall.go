package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
)

// ReadAll reads every record of topics, from each partition's earliest
// offset up to its high-water mark as ReadAll starts, with the fetcher the
// partition workers use (a connection per partition leader, the same fetch
// sizes and waits), and hands each non-empty fetch to fn. fn runs on one
// goroutine per partition id, which reads that partition of every topic in
// turn, as a worker does; calls for different partition ids run
// concurrently. ReadAll returns when every partition is read, fn fails, or
// ctx ends. It joins no consumer group and commits nothing: it is the
// client side of churnflow with nothing behind it, for benchmarks (the raw
// consume limit and the Badger floor of churnflow bench).
func ReadAll(ctx context.Context, cfg Config, topics []string, fn func(partition int, msgs []kafka.Message) error) error {
	if len(cfg.Brokers) == 0 {
		return errors.New("read all: no brokers")
	}
	p := &Pipeline{cfg: cfg, dialer: cfg.Dialer}
	if p.dialer == nil {
		p.dialer = &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true}
	}
	counts, err := p.partitionCounts(ctx, topics)
	if err != nil {
		return err
	}
	n := -1
	for _, t := range topics {
		c, ok := counts[t]
		if !ok {
			return fmt.Errorf("read all: topic %s does not exist", t)
		}
		if n >= 0 && c != n {
			return fmt.Errorf("read all: topics have %d and %d partitions", n, c)
		}
		n = c
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errMu    sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
		cancel()
	}
	for part := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.readPartition(ctx, topics, part, fn); err != nil {
				fail(fmt.Errorf("partition %d: %w", part, err))
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// readPartition reads partition part of every topic up to the high-water
// marks it finds first, taking fetches from the topics' fetchers as they
// come.
func (p *Pipeline) readPartition(ctx context.Context, topics []string, part int, fn func(int, []kafka.Message) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type source struct {
		f   *fetcher
		end int64
	}
	var srcs []*source
	for _, t := range topics {
		end, err := p.lastOffset(ctx, t, part)
		if err != nil {
			return err
		}
		if end == 0 {
			continue
		}
		f := &fetcher{topic: t, partition: part, start: -1, brokers: p.cfg.Brokers, dialer: p.dialer,
			log: zerolog.Nop(), ch: make(chan fetchResult, 4)}
		go f.run(ctx)
		srcs = append(srcs, &source{f: f, end: end})
	}
	for len(srcs) > 0 {
		for i := 0; i < len(srcs); i++ {
			s := srcs[i]
			var r fetchResult
			var ok bool
			select {
			case r, ok = <-s.f.ch:
				if !ok {
					return ctx.Err()
				}
			case <-ctx.Done():
				return ctx.Err()
			}
			if len(r.msgs) > 0 {
				if err := fn(part, r.msgs); err != nil {
					return err
				}
			}
			if r.next >= s.end {
				srcs = append(srcs[:i], srcs[i+1:]...)
				i--
			}
		}
	}
	return nil
}

// lastOffset returns topic/part's high-water mark.
func (p *Pipeline) lastOffset(ctx context.Context, topic string, part int) (int64, error) {
	var errs []error
	for _, b := range p.cfg.Brokers {
		conn, err := p.dialer.DialLeader(ctx, "tcp", b, topic, part)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		unguard := interruptOnDone(ctx, conn)
		err = conn.SetDeadline(time.Now().Add(fetchSlack))
		var end int64
		if err == nil {
			end, err = conn.ReadLastOffset()
		}
		unguard()
		conn.Close()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return end, nil
	}
	return 0, fmt.Errorf("high-water mark of %s/%d: %w", topic, part, errors.Join(errs...))
}
