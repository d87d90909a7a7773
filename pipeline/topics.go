package pipeline

import (
	"fmt"
	"strings"
)

// Topics names the input and output topics (DESIGN.md, "Command line").
type Topics struct {
	Bookings   string `yaml:"bookings"`
	Activity   string `yaml:"activity"`
	Dormancy   string `yaml:"dormancy"`
	Retention  string `yaml:"retention"`
	Nudges     string `yaml:"nudges"`
	Segments   string `yaml:"segments"` // compacted: the latest segment per member
	DeadLetter string `yaml:"dead_letter"`
	// Changelog is the compacted topic each partition's state changes go
	// to, so that another instance can restore it. Empty: "<group>.changelog",
	// one per consumer group, as Kafka Streams names its changelogs after
	// the application id.
	Changelog string `yaml:"changelog"`
}

// DefaultTopics returns the default topic names.
func DefaultTopics() Topics {
	return Topics{
		Bookings:   "churnflow.bookings",
		Activity:   "churnflow.activity",
		Dormancy:   "churnflow.alerts.dormancy",
		Retention:  "churnflow.alerts.retention",
		Nudges:     "churnflow.alerts.nudges",
		Segments:   "churnflow.member-segments",
		DeadLetter: "churnflow.dlq",
	}
}

// Inputs lists the input topics, co-partitioned.
func (t Topics) Inputs() []string { return []string{t.Bookings, t.Activity} }

// Outputs lists the output topics.
func (t Topics) Outputs() []string {
	return []string{t.Dormancy, t.Retention, t.Nudges, t.Segments, t.DeadLetter}
}

// ChangelogFor returns the changelog topic of consumer group group.
func (t Topics) ChangelogFor(group string) string {
	if t.Changelog != "" {
		return t.Changelog
	}
	return group + ".changelog"
}

// Compacted reports whether a topic keeps only the latest record per key.
func (t Topics) Compacted(topic string) bool { return topic == t.Segments }

// ForAlert returns the output topic of an alert's stream ("dormancy",
// "retention", "nudges" or "segments", as operators.AlertType.Topic says).
func (t Topics) ForAlert(stream string) string {
	switch stream {
	case "dormancy":
		return t.Dormancy
	case "retention":
		return t.Retention
	case "nudges":
		return t.Nudges
	}
	return t.Segments
}

// Validate reports an empty or repeated topic name, naming the key.
func (t Topics) Validate() error {
	seen := map[string]string{}
	for _, kv := range [][2]string{{"bookings", t.Bookings}, {"activity", t.Activity}, {"dormancy", t.Dormancy},
		{"retention", t.Retention}, {"nudges", t.Nudges}, {"segments", t.Segments}, {"dead_letter", t.DeadLetter}} {
		if strings.TrimSpace(kv[1]) == "" {
			return fmt.Errorf("topics.%s: empty", kv[0])
		}
		if other, ok := seen[kv[1]]; ok {
			return fmt.Errorf("topics.%s: %q is also topics.%s", kv[0], kv[1], other)
		}
		seen[kv[1]] = kv[0]
	}
	if other, ok := seen[t.Changelog]; ok {
		return fmt.Errorf("topics.changelog: %q is also topics.%s", t.Changelog, other)
	}
	return nil
}
