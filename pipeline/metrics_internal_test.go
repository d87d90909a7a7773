package pipeline

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMembersGaugeAfterScan: while the worker's member scan runs, the
// batches' member changes stay off the gauge; the scan's counts (of its
// snapshot) plus those changes go on it together, the later changes move
// it, and the stop takes the partition's members off. A stop before the
// scan reported leaves the gauge as it was.
func TestMembersGaugeAfterScan(t *testing.T) {
	m := NewMetrics(prometheus.NewPedanticRegistry())
	topics, tiers := [2]string{"b", "a"}, []string{"blue", "silver", "gold"}
	gold, silver := memberClass{tier: 2}, memberClass{tier: 1}
	gauge := func(c memberClass) float64 {
		return testutil.ToFloat64(m.members.WithLabelValues(tiers[c.tier], activityActive, c.segment.String()))
	}
	pm := m.forPartition(0, topics, tiers)
	pm.member(silver, true, gold, true)           // a snapshot member moves up
	pm.member(memberClass{}, false, silver, true) // a new member
	if g, s := gauge(gold), gauge(silver); g != 0 || s != 0 {
		t.Fatalf("before the scan reported: gold %v, silver %v; want 0, 0", g, s)
	}
	pm.counted(map[memberClass]int64{silver: 5, gold: 2})
	if g, s := gauge(gold), gauge(silver); g != 3 || s != 5 {
		t.Fatalf("after the scan: gold %v, silver %v; want 3, 5", g, s)
	}
	pm.member(gold, true, memberClass{}, false) // deleted
	if g := gauge(gold); g != 2 {
		t.Fatalf("after a delete: gold %v, want 2", g)
	}
	pm.stop(topics)
	if g, s := gauge(gold), gauge(silver); g != 0 || s != 0 {
		t.Fatalf("after the stop: gold %v, silver %v; want 0, 0", g, s)
	}

	early := m.forPartition(1, topics, tiers)
	early.member(memberClass{}, false, gold, true)
	early.stop(topics)
	if g := gauge(gold); g != 0 {
		t.Fatalf("after a stop before the scan reported: gold %v, want 0", g)
	}
}
