package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
)

// Fetch tuning. fetchMaxWait is sent to the broker as the fetch's max wait.
// It bounds how long a record of one topic waits for proof that the other
// topic has nothing older (worker.next): a fetch issued after the record
// arrived must come back, so an idle topic adds up to two waits to the
// event-to-alert latency (500 ms gave a p50 of 870 ms at 5,000 events/s in
// churnflow bench; 100 ms, 440 ms). An idle partition costs one empty fetch
// per fetchMaxWait. (kafka-go's Reader misbehaves below ~250 ms, DESIGN.md's
// pitfalls; the fetcher uses a Conn, not a Reader.) fetchMaxBytes bounds
// a fetch: about 900 records of the benchmark's 143 bytes, several a
// second per partition at full speed; a record larger than it still comes
// (Kafka returns the first record batch whole).
const (
	fetchMaxWait  = 100 * time.Millisecond
	fetchMaxBytes = 128 << 10
	fetchSlack    = 10 * time.Second // read deadline beyond fetchMaxWait
	backoffMin    = 100 * time.Millisecond
	backoffMax    = 5 * time.Second
)

// fetchResult is one fetch of one topic-partition: the records (possibly
// none), the high-water mark as of the fetch, and the next offset to fetch.
type fetchResult struct {
	msgs   []kafka.Message
	hwm    int64
	next   int64
	issued time.Time // when the fetch request was sent (wall clock)
}

// fetcher reads one topic-partition with its own connection to the leader
// and hands the fetches to the worker over ch. Every fetch, empty or not,
// carries the high-water mark, which tells the worker whether the topic is
// caught up.
type fetcher struct {
	topic     string
	partition int
	start     int64 // first offset to read; -1: the earliest
	brokers   []string
	dialer    *kafka.Dialer
	log       zerolog.Logger
	ch        chan fetchResult
	maxBytes  int     // per fetch; 0: fetchMaxBytes
	status    *status // told of errors and successes; may be nil
}

// run fetches until ctx ends. It retries connection and fetch errors with
// back-off; it never gives up while ctx lives.
func (f *fetcher) run(ctx context.Context) {
	defer close(f.ch)
	client := fmt.Sprintf("fetch %s/%d", f.topic, f.partition)
	defer f.status.kafkaOK(client) // a stopped fetcher is not failing
	var (
		conn    *kafka.Conn
		unguard func() bool
	)
	closeConn := func() {
		if conn != nil {
			unguard()
			conn.Close()
			conn = nil
		}
	}
	defer closeConn()
	next := f.start
	backoff := time.Duration(0)
	lastN := 16
	fail := func(what string, err error) bool {
		closeConn()
		if ctx.Err() != nil {
			return false // stopping (interruptOnDone ended the request): not a failure
		}
		f.status.kafkaFailed(client, err)
		backoff = nextBackoff(backoff)
		f.log.Warn().Err(err).Str("topic", f.topic).Int("partition", f.partition).Dur("retry_in", backoff).Msg(what)
		return sleep(ctx, backoff)
	}
	for ctx.Err() == nil {
		if conn == nil {
			c, err := f.connect(ctx, next)
			if err != nil {
				if !fail("connect to partition leader", err) {
					return
				}
				continue
			}
			conn, unguard = c, interruptOnDone(ctx, c)
			if next < 0 {
				next, _ = conn.Offset()
			}
		}
		if err := conn.SetReadDeadline(time.Now().Add(fetchMaxWait + fetchSlack)); err != nil {
			if !fail("set read deadline", err) {
				return
			}
			continue
		}
		issued := time.Now()
		maxBytes := f.maxBytes
		if maxBytes == 0 {
			maxBytes = fetchMaxBytes
		}
		batch := conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: maxBytes, MaxWait: fetchMaxWait})
		// Sized like the last fetch: appending from nil would copy the
		// records log2(n) times.
		msgs := make([]kafka.Message, 0, lastN)
		for {
			m, err := batch.ReadMessage()
			if err != nil {
				break
			}
			msgs = append(msgs, m)
		}
		lastN = max(len(msgs), 16)
		hwm := batch.HighWaterMark()
		err := batch.Close()
		if errors.Is(err, kafka.RequestTimedOut) {
			// kafka-go's word for a fetch that found nothing new within
			// MaxWait: an empty fetch, with a valid high-water mark.
			err = nil
		}
		if len(msgs) > 0 {
			next = msgs[len(msgs)-1].Offset + 1
			select {
			case f.ch <- fetchResult{msgs: msgs, hwm: max(hwm, next), next: next, issued: issued}:
			case <-ctx.Done():
				return
			}
		}
		if err != nil {
			if errors.Is(err, kafka.OffsetOutOfRange) {
				f.log.Warn().Str("topic", f.topic).Int("partition", f.partition).Int64("offset", next).
					Msg("offset out of range (retention or a recreated topic): reading from the earliest offset")
				next = -1
			}
			if !fail("fetch", err) {
				return
			}
			continue
		}
		if backoff != 0 {
			f.status.kafkaOK(client)
			backoff = 0
		}
		if len(msgs) == 0 {
			select {
			case f.ch <- fetchResult{hwm: hwm, next: next, issued: issued}:
			case <-ctx.Done():
				return
			}
		}
	}
}

// connect dials the partition's leader and seeks to offset (-1: earliest).
func (f *fetcher) connect(ctx context.Context, offset int64) (*kafka.Conn, error) {
	var errs []error
	for _, b := range f.brokers {
		conn, err := f.dialer.DialLeader(ctx, "tcp", b, f.topic, f.partition)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		// A seek is a request too (ListOffsets), and kafka-go's Conn
		// waits for its answer without a deadline or a context.
		unguard := interruptOnDone(ctx, conn)
		err = conn.SetDeadline(time.Now().Add(fetchSlack))
		if err == nil {
			err = f.seek(conn, offset)
		}
		unguard()
		if err != nil {
			conn.Close()
			errs = append(errs, err)
			continue
		}
		return conn, nil
	}
	return nil, errors.Join(errs...)
}

// seek moves conn to offset (-1: the earliest), or to the earliest when
// offset is out of range.
func (f *fetcher) seek(conn *kafka.Conn, offset int64) error {
	var err error
	if offset < 0 {
		_, err = conn.Seek(0, kafka.SeekStart)
	} else {
		_, err = conn.Seek(offset, kafka.SeekAbsolute)
	}
	if errors.Is(err, kafka.OffsetOutOfRange) {
		f.log.Warn().Str("topic", f.topic).Int("partition", f.partition).Int64("offset", offset).
			Msg("stored offset out of range (retention or a recreated topic): reading from the earliest offset")
		_, err = conn.Seek(0, kafka.SeekStart)
	}
	if err != nil {
		return fmt.Errorf("seek to %d: %w", offset, err)
	}
	return nil
}

// interruptOnDone makes conn's operations fail, those blocked now and those
// to come, once ctx ends: kafka-go's Conn methods take no context, and
// wait for a broker's answer as long as the conn's deadline allows (no
// deadline: for ever). A fetcher, a restore or a topic check stuck on a
// broker that does not answer would otherwise keep the pipeline from
// stopping. The returned func undoes it (false if it already happened).
func interruptOnDone(ctx context.Context, conn *kafka.Conn) (stop func() bool) {
	return context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
}

// nextBackoff doubles a retry's back-off, from backoffMin up to backoffMax
// (0: the first retry).
func nextBackoff(d time.Duration) time.Duration { return min(max(2*d, backoffMin), backoffMax) }

// sleep waits d or until ctx ends; it reports whether ctx is still alive.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
