package pipeline_test

// Interoperability with Kafka clients nobody here wrote, on both brokers:
// the embedded one (what `churnflow broker` runs) and a real Apache Kafka
// (internal/kafkatest, with CHURNFLOW_REAL_KAFKA=1). kcat_test.go drives
// kcat (Debian's librdkafka tool); this file drives confluent-kafka, PyPI's
// librdkafka-based Python client, through testdata/interop/
// confluent_client.py. scripts/test.sh installs confluent-kafka in a venv
// under .cache/pyenv and passes its interpreter as CHURNFLOW_PYTHON; under
// CI=true a missing interpreter or module fails the test, elsewhere it
// skips.
//
// Both clients produce the input events keyed by member id with
// librdkafka's murmur2_random partitioner, not its default
// consistent_random (CRC32): the pipeline's own producers (kafka-go's
// Murmur2Balancer) and Java's put a key in partition murmur2(key) % n, and
// a member's records must all land in one partition number whoever wrote
// them. checkInputPlacement checks where they landed.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/churnflow/churnflow/internal/kafkatest"
	"github.com/churnflow/churnflow/pipeline"
)

// interopPartitions is the input topics' partition count on both brokers.
const interopPartitions = 3

// interopEvent is one input record of the interop tests.
type interopEvent struct{ topic, member, json string }

// interopEvents returns the input events of the interop tests, in time
// order per topic, and one more record whose value does not parse (member
// M9004, on the activity topic), for the dead-letter topic.
func interopEvents(topics pipeline.Topics) (events []interopEvent, bad interopEvent) {
	ev := func(topic, member, id, typ, at, extra string) interopEvent {
		return interopEvent{topic, member, fmt.Sprintf(`{"event_id":%q,"type":%q,"member_id":%q,"occurred_at":%q%s}`, id, typ, member, at, extra)}
	}
	flight := `,"amount":420.5,"currency":"CNY","distance_km":1250,"segments":1,"discount":0.85,"product":"flight","channel":"app","origin":"PEK","destination":"JFK"`
	events = []interopEvent{
		ev(topics.Activity, "M9001", "en-1", "enrolment", "2026-01-02T09:00:00Z", `,"tier":"gold","region":"north","account_manager":"A-17"`),
		ev(topics.Activity, "M9002", "en-2", "enrolment", "2026-01-03T09:00:00Z", `,"tier":"base","region":"east"`),
		ev(topics.Activity, "M9003", "en-3", "enrolment", "2026-01-04T09:00:00Z", `,"tier":"silver"`),
		ev(topics.Bookings, "M9001", "bk-1", "booking", "2026-01-05T10:00:00Z", flight),
		ev(topics.Activity, "M9001", "ac-1", "login", "2026-01-10T08:00:00Z", ""),
		ev(topics.Activity, "M9002", "ac-2", "login", "2026-01-20T08:00:00Z", ""),
		ev(topics.Bookings, "M9002", "bk-2", "booking", "2026-02-01T10:00:00Z", flight),
		ev(topics.Activity, "M9003", "ac-3", "login", "2026-05-10T08:00:00Z", ""),
	}
	return events, interopEvent{topics.Activity, "M9004", `{"event_id":"bad-1","type":"login",`}
}

// interopEnd is past the last event: the pipeline's clock while it reads
// them.
var interopEnd = time.Date(2026, 5, 15, 0, 0, 0, 0, time.UTC)

// onBothBrokers runs fn as subtest "embedded", on the embedded broker, and
// as subtest "kafka", on the package's shared Apache Kafka (skipped
// unless CHURNFLOW_REAL_KAFKA=1), each given a bootstrap address and the
// topic names, the inputs existing, empty, with interopPartitions
// partitions.
func onBothBrokers(t *testing.T, fn func(t *testing.T, addr string, topics pipeline.Topics)) {
	t.Run("embedded", func(t *testing.T) {
		fn(t, startBroker(t, interopPartitions).Addr(), pipeline.DefaultTopics())
	})
	t.Run("kafka", func(t *testing.T) {
		if !kafkatest.Enabled() {
			t.Skipf("real Apache Kafka: set %s=1 to run it (scripts/test.sh does; needs java 17+, and mvn on first use)", kafkatest.EnvVar)
		}
		b := realBroker(t, interopPartitions) // the shared broker; this test's own topics
		topics := b.Topics
		topics.Changelog = b.prefix + "changelog" // not derived from a group other tests may use
		fn(t, b.Addr, topics)
	})
}

// adminClient returns a kafka-go client with a transport of its own,
// closed when the test ends. (A client on kafka-go's DefaultTransport
// shares its metadata cache, refreshed every 6s, with every other such
// client in the process: it can say a topic created a moment ago is
// missing, or show the partitions it had.) Its metadata requests never
// create a topic, unlike kafka.Conn.ReadPartitions.
func adminClient(t *testing.T, addr string) *kafka.Client {
	tr := &kafka.Transport{MetadataTTL: 5 * time.Second} // also the metadata request timeout: not shorter
	t.Cleanup(tr.CloseIdleConnections)
	return &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second, Transport: tr}
}

// murmur2Partition is the input partition of key as the pipeline's
// producers (kafka-go's Murmur2Balancer) and Java's default partitioner
// pick it: murmur2(key) % interopPartitions.
func murmur2Partition(key []byte) int {
	ids := make([]int, interopPartitions)
	for i := range ids {
		ids[i] = i
	}
	var bal kafka.Murmur2Balancer
	return bal.Balance(kafka.Message{Key: key}, ids...)
}

// checkInputPlacement checks that every record of the input topics sits in
// murmur2Partition of its key, and returns how many distinct keys there
// are and how many of them librdkafka's default partitioner
// (consistent_random: CRC32 of the key modulo the partition count) would
// have put in another partition.
func checkInputPlacement(t *testing.T, addr string, topics pipeline.Topics, client string) (keys, crcElsewhere int) {
	t.Helper()
	seen := map[string]bool{}
	for _, topic := range topics.Inputs() {
		for _, m := range readTopic(t, addr, topic) {
			if want := murmur2Partition(m.Key); m.Partition != want {
				t.Errorf("%s put key %s in %s/%d; murmur2 (the pipeline's, Java's) says %d", client, m.Key, topic, m.Partition, want)
			}
			if !seen[string(m.Key)] {
				seen[string(m.Key)] = true
				if int(crc32.ChecksumIEEE(m.Key)%interopPartitions) != m.Partition {
					crcElsewhere++
				}
			}
		}
	}
	return len(seen), crcElsewhere
}

// interopRun runs the pipeline (consumer group group, its clock at
// interopEnd) over the records the inputs hold, records of them, all
// produced before it starts so that it merges them in replay's order;
// waits until it has applied them and checks the output topics; then
// moves its clock past interopEnd so that every timer fires. It returns
// replay's answer over lines, the good events' values: id -> alert type
// and id -> member, and a function that stops the pipeline.
func interopRun(t *testing.T, addr string, topics pipeline.Topics, group string, lines []string, records int) (types, members map[string]string, stop func()) {
	t.Helper()
	cfg := faultConfig(addr, group)
	cfg.Topics = topics
	// Real Kafka has only the inputs: the pipeline creates the outputs, as
	// in production. (The embedded broker has them all.)
	cfg.CreateTopics = true
	final, until := faultTimes(cfg, interopEnd)
	types, members = replayLines(t, lines, until)
	dormant := 0
	for _, typ := range types {
		if typ == "dormancy" {
			dormant++
		}
	}
	if dormant < 2 {
		t.Fatalf("replay gives %d dormancy alerts (%v): the test would prove little", dormant, types)
	}

	clock := &testClock{now: interopEnd}
	store := openStore(t)
	p, err := pipeline.New(cfg, pipeline.Deps{Engine: newEngine(t), Store: store, Clock: clock.Now, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	stop = runPipeline(t, p)
	ends := allInputEnds(t, addr, topics)
	if n := sumOffsets(ends, nil); n != int64(records) {
		t.Fatalf("the inputs hold %d records, want the %d produced", n, records)
	}
	for deadline := time.Now().Add(60 * time.Second); !caughtUp(t, store, topics, ends); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 60s waiting for the pipeline to consume the records (input ends %v); the broker's topics:\n%s",
				ends, describeTopics(t, addr))
		}
		time.Sleep(200 * time.Millisecond)
	}
	checkOutputTopics(t, addr, topics)
	clock.Set(final)
	return types, members, stop
}

// describeTopics lists the broker's topics with their partition counts
// and cleanup policies, for failure messages.
func describeTopics(t *testing.T, addr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := adminClient(t, addr)
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		return err.Error()
	}
	var req kafka.DescribeConfigsRequest
	for _, tp := range md.Topics {
		req.Resources = append(req.Resources, kafka.DescribeConfigRequestResource{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: tp.Name, ConfigNames: []string{"cleanup.policy"}})
	}
	policy := map[string]string{}
	if resp, err := c.DescribeConfigs(ctx, &req); err == nil {
		for _, r := range resp.Resources {
			for _, e := range r.ConfigEntries {
				policy[r.ResourceName] = e.ConfigValue
			}
		}
	}
	var lines []string
	for _, tp := range md.Topics {
		lines = append(lines, fmt.Sprintf("  %s: %d partitions, cleanup.policy %s (%v)", tp.Name, len(tp.Partitions), policy[tp.Name], tp.Error))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// checkOutputTopics checks that the output topics have the inputs'
// partition count and that the compacted ones are: on real Kafka the
// pipeline created them (CreateTopics), and a topic the broker had
// auto-created first (auto.create.topics.enable) would have num.partitions
// and no compaction.
func checkOutputTopics(t *testing.T, addr string, topics pipeline.Topics) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c := adminClient(t, addr)
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: topics.Outputs()})
	if err != nil {
		t.Fatalf("metadata of the output topics: %v", err)
	}
	found, errs := map[string]int{}, map[string]error{}
	for _, tp := range md.Topics {
		found[tp.Name], errs[tp.Name] = len(tp.Partitions), tp.Error
	}
	var res []kafka.DescribeConfigRequestResource
	for _, name := range topics.Outputs() {
		if found[name] != interopPartitions {
			t.Errorf("output topic %s has %d partitions (metadata error %v), want %d (the inputs')", name, found[name], errs[name], interopPartitions)
		}
		if topics.Compacted(name) {
			res = append(res, kafka.DescribeConfigRequestResource{ResourceType: kafka.ResourceTypeTopic, ResourceName: name, ConfigNames: []string{"cleanup.policy"}})
		}
	}
	resp, err := c.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: res})
	if err != nil {
		t.Fatalf("describe the compacted topics' configs: %v", err)
	}
	for _, r := range resp.Resources {
		policy := ""
		for _, e := range r.ConfigEntries {
			if e.ConfigName == "cleanup.policy" {
				policy = e.ConfigValue
			}
		}
		if r.Error != nil || policy != "compact" {
			t.Errorf("topic %s: cleanup.policy %q (%v), want compact", r.ResourceName, policy, r.Error)
		}
	}
	if len(resp.Resources) != len(res) {
		t.Errorf("described %d compacted topics, want %d", len(resp.Resources), len(res))
	}
}

// needPython returns the interpreter that has confluent-kafka
// (CHURNFLOW_PYTHON, else the venv scripts/test.sh makes), or skips (fails
// under CI=true).
func needPython(t *testing.T) string {
	t.Helper()
	missing := func(why string) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s, and CI must run the confluent-kafka interoperability test: scripts/test.sh makes the venv (.cache/pyenv) and sets CHURNFLOW_PYTHON", why)
		}
		t.Skipf("%s: run scripts/test.sh once (it makes .cache/pyenv with confluent-kafka), or set CHURNFLOW_PYTHON to a python3 that has confluent-kafka", why)
	}
	py := os.Getenv("CHURNFLOW_PYTHON")
	if py == "" {
		venv, err := filepath.Abs(filepath.Join("..", ".cache", "pyenv", "bin", "python"))
		if _, serr := os.Stat(venv); err != nil || serr != nil {
			missing("CHURNFLOW_PYTHON is not set and there is no .cache/pyenv")
		}
		py = venv
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "-c",
		"import confluent_kafka as c; print(c.__version__, 'librdkafka', c.libversion()[0])").CombinedOutput()
	if err != nil {
		missing(fmt.Sprintf("%s cannot import confluent_kafka (%v: %s)", py, err, bytes.TrimSpace(out)))
	}
	t.Logf("confluent-kafka %s (%s)", bytes.TrimSpace(out), py)
	return py
}

// confluentClient runs testdata/interop/confluent_client.py with args and
// stdin, bounded by d (killed then, or when the test ends), and returns
// its standard output; its standard error (librdkafka's logs) goes to the
// test log.
func confluentClient(t *testing.T, py string, d time.Duration, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, append([]string{filepath.Join("testdata", "interop", "confluent_client.py")}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if s := strings.TrimSpace(stderr.String()); s != "" {
		t.Logf("confluent_client.py %s: stderr:\n%s", args[0], s)
	}
	if err != nil {
		t.Fatalf("confluent_client.py %s: %v", strings.Join(args, " "), err)
	}
	return stdout.String()
}

// pyRecord is a record as confluent_client.py prints it.
type pyRecord struct {
	Topic     string            `json:"topic"`
	Partition int               `json:"partition"`
	Offset    int64             `json:"offset"`
	Key       *string           `json:"key"`
	Value     string            `json:"value"`
	Headers   map[string]string `json:"headers"`
}

func parsePyRecords(t *testing.T, out string) []pyRecord {
	t.Helper()
	var recs []pyRecord
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var r pyRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("confluent_client.py printed %q: %v", line, err)
		}
		recs = append(recs, r)
	}
	return recs
}

func TestConfluentKafkaInterop(t *testing.T) {
	py := needPython(t)
	onBothBrokers(t, func(t *testing.T, addr string, topics pipeline.Topics) {
		events, bad := interopEvents(topics)
		all := append(slices.Clone(events), bad)
		var in bytes.Buffer
		enc := json.NewEncoder(&in)
		var lines []string
		for _, e := range all {
			if err := enc.Encode(map[string]string{"topic": e.topic, "key": e.member, "value": e.json}); err != nil {
				t.Fatal(err)
			}
			if e != bad {
				lines = append(lines, e.json)
			}
		}

		// confluent-kafka produces, before the pipeline starts (so the
		// merge order is replay's), and reports where each record went.
		t0 := time.Now()
		reports := parsePyRecords(t, confluentClient(t, py, 60*time.Second, in.String(), "produce", addr))
		if len(reports) != len(all) {
			t.Fatalf("confluent-kafka reported %d deliveries, want %d", len(reports), len(all))
		}
		for i, r := range reports {
			if r.Topic != all[i].topic || r.Key == nil || *r.Key != all[i].member {
				t.Errorf("delivery %d: %s key %v, want %s key %s", i, r.Topic, r.Key, all[i].topic, all[i].member)
			}
		}
		keys, crcElsewhere := checkInputPlacement(t, addr, topics, "confluent-kafka")
		produced := time.Since(t0)

		types, members, stop := interopRun(t, addr, topics, "confluent", lines, len(all))

		// confluent-kafka reads every alert topic and the dead letters,
		// as a consumer group, until it holds every alert replay gives
		// and the dead letter, and then a second more (to see extras).
		t1 := time.Now()
		read := append([]string{topics.Dormancy, topics.Retention, topics.Nudges, topics.Segments}, topics.DeadLetter)
		args := append([]string{"consume", addr, "confluent-reader", strconv.Itoa(len(types) + 1), "60"}, read...)
		recs := parsePyRecords(t, confluentClient(t, py, 90*time.Second, "", args...))
		consumed := time.Since(t1)

		got := map[string]int{}
		var dead []pyRecord
		for _, r := range recs {
			if r.Topic == topics.DeadLetter {
				dead = append(dead, r)
				continue
			}
			var a alertJSON
			if err := json.Unmarshal([]byte(r.Value), &a); err != nil {
				t.Fatalf("confluent-kafka read an alert that does not parse: %v: %s", err, r.Value)
			}
			switch {
			case r.Key == nil || *r.Key != a.MemberID:
				t.Errorf("alert %s: key %v, member_id %q", a.AlertID, r.Key, a.MemberID)
			case r.Headers[pipeline.HeaderAlertID] != a.AlertID || r.Headers[pipeline.HeaderAlertType] != a.Type:
				t.Errorf("alert %s: headers %v", a.AlertID, r.Headers)
			case topics.ForAlert(mustType(t, a.Type).Topic()) != r.Topic:
				t.Errorf("alert %s of type %s on %s", a.AlertID, a.Type, r.Topic)
			case types[a.AlertID] != "" && (types[a.AlertID] != a.Type || members[a.AlertID] != a.MemberID):
				t.Errorf("alert %s: %s for %s, replay says %s for %s", a.AlertID, a.Type, a.MemberID, types[a.AlertID], members[a.AlertID])
			}
			got[a.AlertID]++
		}
		want := map[string]bool{}
		for id := range types {
			want[id] = true
		}
		dups := compareAlerts(t, want, got)

		if len(dead) != 1 {
			t.Fatalf("confluent-kafka read %d dead letters, want 1: %+v", len(dead), dead)
		}
		d := dead[0]
		if d.Key == nil || *d.Key != bad.member || d.Value != bad.json {
			t.Errorf("dead letter key %v value %q, want the original %s %q", d.Key, d.Value, bad.member, bad.json)
		}
		for h, v := range map[string]string{
			pipeline.HeaderReason:          "invalid_json",
			pipeline.HeaderSourceTopic:     topics.Activity,
			pipeline.HeaderSourcePartition: strconv.Itoa(murmur2Partition([]byte(bad.member))),
			pipeline.HeaderSourceOffset:    "",
			pipeline.HeaderError:           "",
		} {
			got, ok := d.Headers[h]
			if !ok || (v != "" && got != v) {
				t.Errorf("dead letter header %s = %q (present %v), want %q", h, got, ok, v)
			}
		}
		stop()
		t.Logf("confluent-kafka produced %d records in %v (%d of the %d keys would be in another partition under librdkafka's default CRC32 partitioner), then read %d alerts (%d duplicates) and the dead letter in %v",
			len(all), produced.Round(time.Millisecond), crcElsewhere, keys, len(got), dups, consumed.Round(time.Millisecond))
	})
}
