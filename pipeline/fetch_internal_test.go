package pipeline

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFetcherStopsWhileBrokerSilent: a fetcher whose broker never answers
// its seek (a ListOffsets request) still stops when its context ends.
// kafka-go's Conn waits for an answer without a deadline or a context, so
// without interruptOnDone the fetcher (and with it a pipeline's shutdown)
// hung for ever.
func TestFetcherStopsWhileBrokerSilent(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "in"))
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	c.ControlKey(int16(kmsg.ListOffsets), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		once.Do(func() { close(held) })
		c.SleepControl(func() { <-release })
		return nil, nil, false
	})
	t.Cleanup(func() { close(release); c.Close() })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := make(chan fetchResult, 1)
	var logged bytes.Buffer
	f := &fetcher{topic: "in", partition: 0, start: -1, brokers: []string{c.ListenAddrs()[0]},
		dialer: &kafka.Dialer{Timeout: 5 * time.Second}, log: zerolog.New(&logged), ch: ch}
	done := make(chan struct{})
	go func() { defer close(done); f.run(ctx) }()
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the fetcher did not seek within 10s")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("the fetcher did not stop within 3s of its context ending while the broker held its seek")
	}
	if logged.Len() > 0 { // the interrupted request is the stop, not a failure
		t.Errorf("the fetcher logged on a clean stop:\n%s", logged.String())
	}
}
