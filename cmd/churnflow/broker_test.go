package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestBrokerCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	var out, errb syncBuffer
	s := streams{in: strings.NewReader(""), out: &out, err: &errb, getenv: func(string) (string, bool) { return "", false }}
	done := make(chan int, 1)
	go func() { done <- execute(ctx, []string{"broker", "--listen", "127.0.0.1:0", "--partitions", "3"}, s) }()

	var addr string
	deadline := time.Now().Add(10 * time.Second)
	for addr == "" && time.Now().Before(deadline) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(out.String()), "BOOTSTRAP="); ok {
			addr = v
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if addr == "" {
		cancel()
		t.Fatalf("no BOOTSTRAP line; stderr: %s", errb.String())
	}
	if !strings.Contains(errb.String(), "NOT for production") {
		t.Errorf("the broker does not say it is not for production: %s", errb.String())
	}
	conn, err := kafka.DialContext(ctx, "tcp", addr)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	parts, err := conn.ReadPartitions("churnflow.bookings", "churnflow.activity")
	conn.Close()
	if err != nil || len(parts) != 6 {
		t.Errorf("partitions of the input topics: %d, %v; want 6", len(parts), err)
	}
	cancel()
	waitExit(t, "broker", done, &errb, 10*time.Second)
}

// waitExit waits for a command stopped by cancelling its context to exit
// with exitOK within d.
func waitExit(t *testing.T, name string, done <-chan int, logs fmt.Stringer, d time.Duration) {
	t.Helper()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("%s exit %d: %s", name, code, logs.String())
		}
	case <-time.After(d):
		t.Fatalf("%s did not stop on cancel within %v: %s", name, d, logs.String())
	}
}

func TestBrokerRejectsPublicListen(t *testing.T) {
	code, _, stderr := run(t, "", nil, "broker", "--listen", "0.0.0.0:9092")
	if code != exitUsage || !strings.Contains(stderr, "127.0.0.1 only") {
		t.Fatalf("exit %d, %q", code, stderr)
	}
}
