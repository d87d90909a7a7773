package main

import (
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/churnflow/churnflow/internal/devbroker"
	"github.com/churnflow/churnflow/internal/gen"
	"github.com/churnflow/churnflow/internal/kafkatest"
	"github.com/churnflow/churnflow/operators"
)

func TestGenIsReproducibleAndReplays(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl")
	for _, p := range []string{a, b} {
		code, _, stderr := run(t, "", nil, "gen", "--members", "200", "--days", "120", "--seed", "9", "--bad-rate", "0.02", "--out", p)
		if code != exitOK || !strings.Contains(stderr, "gen: ") {
			t.Fatalf("gen exit %d: %s", code, stderr)
		}
	}
	if readFile(t, a) != readFile(t, b) {
		t.Fatal("the same flags gave different files")
	}
	lines := strings.Count(readFile(t, a), "\n")
	if lines < 1000 {
		t.Fatalf("only %d records for 200 members over 120 days", lines)
	}
	// The file replays: every record is either applied or rejected as bad.
	code, stdout, stderr := run(t, "", nil, "replay", "--input", a, "--summary", "json")
	if code != exitOK {
		t.Fatalf("replay exit %d: %s", code, stderr)
	}
	if len(jsonLines(t, stdout)) == 0 {
		t.Fatal("replay of generated events gave no alerts")
	}
	if !strings.Contains(stderr, `"rejected"`) {
		t.Fatalf("the 2%% bad records were not rejected: %s", stderr)
	}
}

func TestGenFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"gen"}, "--out: required"},
		{[]string{"gen", "--out", "-", "--bad-rate", "0.9"}, "--bad-rate: 0.9 is out of range"},
		{[]string{"gen", "--out", "-", "--start", "2025-13-01"}, `--start: "2025-13-01" is not a date`},
		{[]string{"gen", "--out", "-", "--members", "0"}, "--members"},
		{[]string{"gen", "--out", "-", "--seed", "-1"}, "--seed: -1 is negative"},
	} {
		code, _, stderr := run(t, "", nil, c.args...)
		if code != exitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want usage error containing %q", c.args, code, stderr, c.want)
		}
	}
}

func startBroker(t *testing.T, partitions int32) string {
	t.Helper()
	cfg := devbroker.DefaultConfig()
	cfg.Listen, cfg.Partitions = "127.0.0.1:0", partitions
	b, err := devbroker.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b.Addr()
}

func TestGenToKafka(t *testing.T) {
	addr := startBroker(t, 3)
	args := []string{"--members", "300", "--days", "90", "--seed", "5", "--bad-rate", "0.02"}
	code, _, stderr := run(t, "", nil, append([]string{"gen", "--brokers", addr}, args...)...)
	if code != exitOK {
		t.Fatalf("gen exit %d: %s", code, stderr)
	}
	// What gen produced is what it would have written to a file.
	file := filepath.Join(t.TempDir(), "events.jsonl")
	if code, _, stderr := run(t, "", nil, append([]string{"gen", "--out", file}, args...)...); code != exitOK {
		t.Fatal(stderr)
	}
	lines := strings.Split(strings.TrimSuffix(readFile(t, file), "\n"), "\n")
	want := map[string]int{}
	for _, l := range lines {
		want[l]++
	}
	cfg := gen.DefaultConfig()
	cfg.Members, cfg.Days, cfg.Seed, cfg.BadRate = 300, 90, 5, 0.02
	cfg.Tiers = operators.DefaultConfig().Tiers
	st, err := gen.NewStream(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var rec gen.Record
	wantTopic := map[gen.Topic]int{}
	for st.Next(&rec) {
		wantTopic[rec.Topic]++
	}
	stats := st.Stats()

	got := map[string]int{}
	total := 0
	for topic, wantN := range map[string]int{"churnflow.bookings": wantTopic[gen.TopicBookings], "churnflow.activity": wantTopic[gen.TopicActivity]} {
		n := 0
		keyPart := map[string]int{}
		for p, msgs := range kafkatest.ReadTopic(t, addr, topic) {
			for _, m := range msgs {
				n++
				got[string(m.Value)]++
				key := string(m.Key)
				if !strings.HasPrefix(key, "M") || strings.Contains(string(m.Value), `"member_id":"`) && !strings.Contains(string(m.Value), `"member_id":"`+key+`"`) {
					t.Fatalf("%s: key %q does not match the record %s", topic, key, m.Value)
				}
				if q, ok := keyPart[key]; ok && q != p {
					t.Fatalf("%s: member %s in partitions %d and %d", topic, key, q, p)
				}
				keyPart[key] = p
			}
		}
		if n != wantN {
			t.Errorf("%s: %d messages, gen generated %d for it", topic, n, wantN)
		}
		total += n
	}
	if int64(total) != stats.Records || total != len(lines) {
		t.Errorf("%d messages, gen's stats say %d records, the file has %d", total, stats.Records, len(lines))
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the produced values differ from the file's lines")
	}
	if !strings.Contains(stderr, fmt.Sprintf("churnflow.bookings %d, churnflow.activity %d", wantTopic[gen.TopicBookings], wantTopic[gen.TopicActivity])) {
		t.Errorf("stats line: %s", stderr)
	}
}

func TestGenToKafkaRateAndTopics(t *testing.T) {
	addr := startBroker(t, 2)
	// Topics of another name must exist; the broker has only churnflow's.
	code, _, stderr := run(t, "", nil, "gen", "--brokers", addr, "--members", "10", "--days", "10", "--topic-bookings", "nope")
	if code != exitFatal || !strings.Contains(stderr, `topic "nope"`) {
		t.Fatalf("missing topic: exit %d %q", code, stderr)
	}
	// Swapped topic names go where they are told; --rate paces.
	start := time.Now()
	code, _, stderr = run(t, "", nil, "gen", "--brokers", addr, "--members", "20", "--days", "30", "--rate", "2000",
		"--topic-bookings", "churnflow.activity", "--topic-activity", "churnflow.bookings")
	if code != exitOK {
		t.Fatal(stderr)
	}
	n := 0
	for _, msgs := range kafkatest.ReadTopic(t, addr, "churnflow.bookings") {
		for _, m := range msgs {
			n++
			if strings.Contains(string(m.Value), `"type":"booking"`) {
				t.Fatalf("a booking went to the activity topic: %s", m.Value)
			}
		}
	}
	var total int
	if _, err := fmt.Sscanf(stderr[strings.Index(stderr, "produced ")+len("produced "):], "%d", &total); err != nil {
		t.Fatalf("stats line: %s", stderr)
	}
	if min := time.Duration(float64(total) / 2000 * 0.8 * float64(time.Second)); time.Since(start) < min {
		t.Errorf("%d records at --rate 2000 took %v, want at least %v", total, time.Since(start), min)
	}
	if n == 0 {
		t.Fatal("nothing produced")
	}
}

func TestGenTargetFlags(t *testing.T) {
	out := filepath.Join(t.TempDir(), "x.jsonl")
	for _, c := range []struct {
		env  map[string]string
		args []string
		code int
		want string
	}{
		{nil, []string{"gen", "--out", out, "--brokers", "127.0.0.1:1"}, exitUsage, "--out and --brokers: give one, not both"},
		{nil, []string{"gen", "--brokers", ""}, exitUsage, "--brokers: empty"},
		{nil, []string{"gen", "--out", out, "--rate", "10"}, exitUsage, "--rate: only with --brokers"},
		{nil, []string{"gen", "--brokers", "127.0.0.1:1", "--rate", "-1"}, exitUsage, "--rate: -1"},
		{nil, []string{"gen", "--brokers", "127.0.0.1:1", "--topic-activity", "churnflow.bookings"}, exitUsage, "both are \"churnflow.bookings\""},
		{nil, []string{"gen", "--brokers", "127.0.0.1:1", "--members", "5"}, exitFatal, "cannot reach any broker"},
		// CHURNFLOW_BROKERS (shared with run) does not stop gen --out.
		{map[string]string{"CHURNFLOW_BROKERS": "127.0.0.1:1"}, []string{"gen", "--out", out, "--members", "5", "--days", "5"}, exitOK, "gen: "},
	} {
		code, _, stderr := run(t, "", c.env, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v %v: exit %d, %q; want exit %d and %q", c.env, c.args, code, stderr, c.code, c.want)
		}
	}
}
