package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/churnflow/churnflow/state"
)

// TestRunEndToEnd runs "churnflow run" in-process against the embedded
// broker: events in, a dormancy alert out, a clean stop on cancel.
func TestRunEndToEnd(t *testing.T) {
	addr := startBroker(t, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	w := &kafka.Writer{Addr: kafka.TCP(addr), RequiredAcks: kafka.RequireAll, Balancer: &kafka.Murmur2Balancer{}, BatchTimeout: 5 * time.Millisecond}
	err := w.WriteMessages(ctx,
		kafka.Message{Topic: "churnflow.activity", Key: []byte("M0001"), Value: []byte(`{"event_id":"en-1","type":"enrolment","member_id":"M0001","occurred_at":"2025-01-01T09:00:00Z","tier":"gold","region":"north"}`)},
		kafka.Message{Topic: "churnflow.bookings", Key: []byte("M0001"), Value: []byte(`{"event_id":"bk-1","type":"booking","member_id":"M0001","occurred_at":"2025-01-02T10:00:00Z","amount":420.5,"distance_km":1250,"segments":1,"discount":0.85,"product":"flight"}`)},
		kafka.Message{Topic: "churnflow.activity", Key: []byte("M0002"), Value: []byte(`{"event_id":"lg-2","type":"login","member_id":"M0002","occurred_at":"2025-05-01T08:00:00Z"}`)},
		kafka.Message{Topic: "churnflow.activity", Key: []byte("M0003"), Value: []byte(`{not json`)},
	)
	w.Close()
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "churnflow.yaml")
	if err := os.WriteFile(cfgFile, []byte("kafka:\n  group: e2e\nlog:\n  level: debug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	httpAddr := freeAddr(t)
	var out, errb syncBuffer
	s := streams{in: strings.NewReader(""), out: &out, err: &errb, getenv: func(k string) (string, bool) {
		v, ok := map[string]string{
			"CHURNFLOW_KAFKA_BROKERS": addr,
			"CHURNFLOW_STATE":         filepath.Join(dir, "state"),
			"CHURNFLOW_HTTP":          httpAddr,
			"CHURNFLOW_API_TOKEN":     "t0ken",
		}[k]
		return v, ok
	}}
	done := make(chan int, 1)
	go func() { done <- execute(runCtx, []string{"run", "--config", cfgFile, "--memory", "64MiB"}, s) }()

	alert := readAlert(t, ctx, addr, "churnflow.alerts.dormancy", done, &errb)
	if alert.Key != "M0001" || alert.ID != "dormancy:M0001:2025-04-02" {
		t.Errorf("dormancy alert: key %q id %q", alert.Key, alert.ID)
	}
	dead := readAlert(t, ctx, addr, "churnflow.dlq", done, &errb)
	if dead.Key != "M0003" {
		t.Errorf("dead letter key %q", dead.Key)
	}

	// The HTTP endpoints of the running instance.
	get := func(path, token string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(20 * time.Second)
	for code, _ := get("/readyz", ""); code != http.StatusOK && time.Now().Before(deadline); code, _ = get("/readyz", "") {
		time.Sleep(100 * time.Millisecond)
	}
	if code, body := get("/readyz", ""); code != http.StatusOK {
		t.Errorf("/readyz: %d %s", code, body)
	}
	if code, body := get("/metrics", ""); code != http.StatusOK || !strings.Contains(body, `churnflow_records_consumed_total{outcome="dead_lettered",topic="churnflow.activity"} 1`) {
		t.Errorf("/metrics: %d, lacks the dead letter counted:\n%.2000s", code, body)
	}
	if code, body := get("/v1/members/M0001", "t0ken"); code != http.StatusOK || !strings.Contains(body, `"tier": "gold"`) {
		t.Errorf("/v1/members/M0001: %d %s", code, body)
	}
	if code, _ := get("/v1/members/M0001", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("/v1/members/M0001 with a wrong token: %d, want 401", code)
	}
	if code, body := get("/v1/stats", "t0ken"); code != http.StatusOK || !strings.Contains(body, `"total": 2`) {
		t.Errorf("/v1/stats: %d %s", code, body)
	}

	stop()
	waitExit(t, "run", done, &errb, 30*time.Second)
	logs := errb.String()
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		if !json.Valid([]byte(l)) {
			t.Fatalf("log line is not JSON (format auto, not a terminal): %q", l)
		}
	}
	for _, want := range []string{`"message":"churnflow run: start"`, `"message":"churnflow run: stopped"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
	// The state directory is released: a second run can open it.
	code, _, stderr := run(t, "", map[string]string{"CHURNFLOW_BROKERS": "127.0.0.1:1"}, "run", "--state", filepath.Join(dir, "state"))
	if code != exitFatal || !strings.Contains(stderr, "cannot reach any Kafka broker") {
		t.Errorf("after stop: exit %d %q; want the broker error, not a locked state", code, stderr)
	}
}

type readMsg struct{ Key, ID string }

// readAlert returns the first message of topic, failing if run exits first.
func readAlert(t *testing.T, ctx context.Context, addr, topic string, done chan int, logs *syncBuffer) readMsg {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: 0, MaxWait: 500 * time.Millisecond})
	defer r.Close()
	got := make(chan kafka.Message, 1)
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	go func() {
		m, err := r.ReadMessage(rctx)
		if err == nil {
			got <- m
		}
		close(got)
	}()
	select {
	case m, ok := <-got:
		if !ok {
			t.Fatalf("no message on %s: %s", topic, logs.String())
		}
		var v struct {
			ID string `json:"alert_id"`
		}
		json.Unmarshal(m.Value, &v)
		return readMsg{Key: string(m.Key), ID: v.ID}
	case code := <-done:
		t.Fatalf("run exited %d before a message on %s: %s", code, topic, logs.String())
	}
	return readMsg{}
}

func TestRunStateErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, "", nil, "run", "--state", file)
	if code != exitFatal || !strings.Contains(stderr, "state.dir") || !strings.Contains(stderr, "--state") {
		t.Fatalf("state dir is a file: exit %d %q", code, stderr)
	}
}

func TestSetMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	limit, restore := setMemoryLimit(func(string) (string, bool) { return "", false }, 256<<20)
	if want := state.RecommendedMemoryLimit(256 << 20); limit != want || debug.SetMemoryLimit(-1) != want {
		t.Errorf("limit %d, in effect %d, want %d", limit, debug.SetMemoryLimit(-1), want)
	}
	restore()
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("not restored: %d, was %d", got, before)
	}
	_, restore = setMemoryLimit(func(k string) (string, bool) { return "1GiB", k == "GOMEMLIMIT" }, 256<<20)
	if restore != nil || debug.SetMemoryLimit(-1) != before {
		t.Error("GOMEMLIMIT in the environment must win")
	}
}

func TestLoggerFormats(t *testing.T) {
	for _, c := range []struct {
		format string
		json   bool
	}{{"json", true}, {"auto", true}, {"console", false}} {
		var b strings.Builder
		log := newLogger(&b, LogConfig{Level: "info", Format: c.format})
		log.Debug().Msg("hidden")
		log.Info().Str("k", "v").Msg("shown")
		out := strings.TrimSpace(b.String())
		if strings.Contains(out, "hidden") || !strings.Contains(out, "shown") || json.Valid([]byte(out)) != c.json {
			t.Errorf("format %s: %q", c.format, out)
		}
	}
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
