package pipeline_test

// Interoperability with a Kafka client nobody here wrote: Debian's kcat
// (librdkafka) produces events and consumes the alerts and dead letters
// the pipeline writes, on the embedded broker (what `churnflow broker`
// runs) and on real Apache Kafka (subtests "embedded" and "kafka";
// interop_test.go has the harness both interop tests share). scripts/
// test.sh installs kcat; under CI=true a missing kcat fails the test,
// elsewhere it skips.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/churnflow/churnflow/internal/replay"
	"github.com/churnflow/churnflow/pipeline"
)

// needKcat returns kcat's path, or skips (fails under CI=true).
func needKcat(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("kcat")
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("kcat is not installed, and CI must run the interoperability test: scripts/test.sh installs it (apt-get install -y kcat)")
	}
	t.Skip("kcat is not installed: apt-get install -y kcat (Debian's package; scripts/test.sh installs it)")
	return ""
}

// kcat runs kcat with args and stdin and returns its standard output.
func kcat(t *testing.T, bin string, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// replayLines runs replay over JSON lines and returns its alerts: id ->
// type, and id -> member.
func replayLines(t *testing.T, lines []string, until time.Time) (types, members map[string]string) {
	t.Helper()
	var out bytes.Buffer
	sum, err := replay.Run(t.Context(), replay.Config{Engine: newEngine(t), Until: until},
		strings.NewReader(strings.Join(lines, "\n")+"\n"), &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.RejectedTotal != 0 {
		t.Fatalf("replay rejected %d records", sum.RejectedTotal)
	}
	types, members = map[string]string{}, map[string]string{}
	dec := json.NewDecoder(&out)
	for {
		var a alertJSON
		if err := dec.Decode(&a); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		types[a.AlertID], members[a.AlertID] = a.Type, a.MemberID
	}
	return types, members
}

func TestKcatInterop(t *testing.T) {
	bin := needKcat(t)
	onBothBrokers(t, func(t *testing.T, addr string, topics pipeline.Topics) {
		testKcat(t, bin, addr, topics)
	})
}

func testKcat(t *testing.T, bin, addr string, topics pipeline.Topics) {
	events, bad := interopEvents(topics)
	var bookings, activity strings.Builder
	var lines []string
	for _, e := range events {
		w := &activity
		if e.topic == topics.Bookings {
			w = &bookings
		}
		fmt.Fprintf(w, "%s:%s\n", e.member, e.json)
		lines = append(lines, e.json)
	}
	badValue := bad.json
	fmt.Fprintf(&activity, "%s:%s\n", bad.member, badValue)

	// kcat produces, keyed by member id (-K :), before the pipeline starts
	// (so the merge order is replay's), with librdkafka's Java-compatible
	// partitioner (interop_test.go says why).
	kcat(t, bin, bookings.String(), "-P", "-b", addr, "-t", topics.Bookings, "-K", ":", "-X", "partitioner=murmur2_random")
	kcat(t, bin, activity.String(), "-P", "-b", addr, "-t", topics.Activity, "-K", ":", "-X", "partitioner=murmur2_random")
	keys, crcElsewhere := checkInputPlacement(t, addr, topics, "kcat")

	types, members, stop := interopRun(t, addr, topics, "kcat", lines, len(events)+1)
	want := map[string]string{} // id -> member of the alerts on the dormancy topic
	dormant := 0
	for id, typ := range types {
		if topics.ForAlert(mustType(t, typ).Topic()) == topics.Dormancy {
			want[id] = members[id]
		}
		if typ == "dormancy" {
			dormant++
		}
	}

	// kcat consumes the dormancy topic (dormancy and reactivated alerts):
	// key, then the value.
	got := map[string]string{}
	var out string
	waitFor(t, 30*time.Second, "kcat to read every dormancy alert", func() bool {
		out = kcat(t, bin, "", "-C", "-b", addr, "-t", topics.Dormancy, "-o", "beginning", "-e", "-q", "-f", `%k %s\n`)
		clear(got)
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if line == "" {
				continue
			}
			key, value, _ := strings.Cut(line, " ")
			var a alertJSON
			if err := json.Unmarshal([]byte(value), &a); err != nil {
				t.Fatalf("kcat read an alert that does not parse: %v: %s", err, line)
			}
			if key != a.MemberID {
				t.Errorf("alert %s: key %q, member_id %q", a.AlertID, key, a.MemberID)
			}
			if topics.ForAlert(mustType(t, a.Type).Topic()) != topics.Dormancy {
				t.Errorf("alert %s of type %s on %s", a.AlertID, a.Type, topics.Dormancy)
			}
			got[a.AlertID] = key
		}
		return len(got) >= len(want)
	})
	for id, member := range want {
		if got[id] != member {
			t.Errorf("dormancy alert %s (member %s): kcat read key %q", id, member, got[id])
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("kcat read dormancy alert %s, which replay does not give", id)
		}
	}

	// The dead letter, with its headers in kcat's %h format (k=v,k=v).
	dlq := kcat(t, bin, "", "-C", "-b", addr, "-t", topics.DeadLetter, "-o", "beginning", "-e", "-q", "-f", `%k|%h|%s\n`)
	lines = strings.Split(strings.TrimSpace(dlq), "\n")
	if len(lines) != 1 {
		t.Fatalf("kcat read %d dead letters, want 1:\n%s", len(lines), dlq)
	}
	parts := strings.SplitN(lines[0], "|", 3)
	if len(parts) != 3 {
		t.Fatalf("dead letter line %q: want key|headers|value", lines[0])
	}
	if parts[0] != "M9004" || parts[2] != badValue {
		t.Errorf("dead letter key %q value %q, want the original M9004 %q", parts[0], parts[2], badValue)
	}
	for _, h := range []string{
		pipeline.HeaderReason + "=invalid_json",
		pipeline.HeaderSourceTopic + "=" + topics.Activity,
		pipeline.HeaderSourcePartition + "=",
		pipeline.HeaderSourceOffset + "=",
		pipeline.HeaderError + "=",
	} {
		if !strings.Contains(parts[1], h) {
			t.Errorf("dead letter headers %q lack %q", parts[1], h)
		}
	}
	stop()
	t.Logf("kcat read %d alerts (%d dormancy) and the dead letter (headers %s); %d of the %d keys would be in another partition under librdkafka's default CRC32 partitioner",
		len(got), dormant, parts[1], crcElsewhere, keys)
}
