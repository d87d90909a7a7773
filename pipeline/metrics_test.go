package pipeline_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/churnflow/churnflow/internal/gen"
	"github.com/churnflow/churnflow/operators"
	"github.com/churnflow/churnflow/pipeline"
	"github.com/churnflow/churnflow/state"
)

// sumMetric sums every series of a metric family (counters and gauges;
// histograms by their count), 0 if it has none.
func sumMetric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				sum += m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				sum += m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}

// membersInState counts the member states of partitions 0 to parts-1.
func membersInState(t *testing.T, store *state.Store, parts int) float64 {
	t.Helper()
	var members float64
	for part := range parts {
		err := store.Partition(state.Partition(part)).Range(t.Context(), func(operators.MemberID, *operators.MemberState) error {
			members++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return members
}

// TestMetrics runs the known-answer pipeline with metrics and checks the
// figures against what is known: every record consumed, every alert
// counted, the members gauge equal to the members in the state, no lag
// once caught up, and the partition's series withdrawn after the stop.
func TestMetrics(t *testing.T) {
	eachBroker(t, 4, func(t *testing.T, b testBroker) {
		gcfg, recs := genRecords(t, 300, 180, 42)
		produce(t, b.Addr, toMessages(recs, b.Topics))
		reg := prometheus.NewPedanticRegistry()
		metrics := pipeline.NewMetrics(reg)
		var alerts float64
		knownAnswerWith(t, b.Addr, recs, gcfg.End(), b.Configure, metrics, func(p *pipeline.Pipeline, store *state.Store) {
			members := membersInState(t, store, 4)
			if got := sumMetric(t, reg, pipeline.MetricMembers); got != members {
				t.Errorf("%s sums to %v, the state holds %v members", pipeline.MetricMembers, got, members)
			}
			if got := sumMetric(t, reg, pipeline.MetricAssigned); got != 4 {
				t.Errorf("%s = %v, want 4", pipeline.MetricAssigned, got)
			}
			if got := sumMetric(t, reg, pipeline.MetricConsumerLag); got != 0 {
				t.Errorf("%s sums to %v once caught up, want 0", pipeline.MetricConsumerLag, got)
			}
			alerts = sumMetric(t, reg, pipeline.MetricAlerts)
			// The group's description names this instance as the owner.
			owner, ok, err := p.PartitionOwner(t.Context(), 3)
			if err != nil || !ok || !strings.Contains(owner, "group member ") {
				t.Errorf("PartitionOwner(3) = %q, %v, %v; want this instance", owner, ok, err)
			}
			if _, ok, err := p.PartitionOwner(t.Context(), 99); ok || err != nil {
				t.Errorf("PartitionOwner(99) = %v, %v; want none", ok, err)
			}
		})
		if got := sumMetric(t, reg, pipeline.MetricRecordsConsumed); got != float64(len(recs)) {
			t.Errorf("%s = %v, want the %d records", pipeline.MetricRecordsConsumed, got, len(recs))
		}
		delivered := float64(len(collectAlerts(t, b.Addr, b.Topics, false)))
		if alerts < delivered {
			t.Errorf("%s = %v, but %v distinct alerts were delivered", pipeline.MetricAlerts, alerts, delivered)
		}
		for _, name := range []string{pipeline.MetricMembers, pipeline.MetricAssigned, pipeline.MetricConsumerLag} {
			if got := sumMetric(t, reg, name); got != 0 {
				t.Errorf("%s = %v after the stop, want 0 (the partitions' series withdrawn)", name, got)
			}
		}
		for _, name := range []string{pipeline.MetricBatchDuration, pipeline.MetricCommitDuration, pipeline.MetricEventToAlert,
			pipeline.MetricChangelogRecords, pipeline.MetricRebalances} {
			if sumMetric(t, reg, name) == 0 {
				t.Errorf("%s recorded nothing", name)
			}
		}
		// Every registered name is documented and no label is a member id.
		n, err := testutil.GatherAndCount(reg)
		if err != nil || n == 0 {
			t.Fatalf("gather: %d series, %v", n, err)
		}
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if !slices.Contains(pipeline.MetricNames(), mf.GetName()) {
				t.Errorf("metric %s is not in MetricNames", mf.GetName())
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if strings.HasPrefix(l.GetValue(), "M0") {
						t.Errorf("metric %s has a member id as label %s", mf.GetName(), l.GetName())
					}
				}
			}
		}
	})
}

// TestMembersGaugeAfterRestart: a pipeline restarted on a state that holds
// members counts them with its member scan, beside its first batches, and
// the members gauge ends equal to the members in the state, with the
// batches' changes since the scan's snapshot (members moved, new ones)
// counted once.
func TestMembersGaugeAfterRestart(t *testing.T) {
	b := embeddedBroker(t, 2)
	_, recs := genRecords(t, 300, 180, 7)
	half := len(recs) / 2
	store := openStore(t)
	cfg := pipeline.DefaultConfig()
	cfg.Brokers, cfg.Group = []string{b.Addr}, "test"
	cfg.IdleAfter = 200 * time.Millisecond
	cfg.BatchMax = 200
	run := func(part []gen.Record, metrics *pipeline.Metrics) (*pipeline.Pipeline, func()) {
		t.Helper()
		produce(t, b.Addr, toMessages(part, cfg.Topics))
		p, err := pipeline.New(cfg, pipeline.Deps{Engine: newEngine(t), Store: store, Log: testLogger(t), Metrics: metrics})
		if err != nil {
			t.Fatal(err)
		}
		stop := runPipeline(t, p)
		ends := allInputEnds(t, b.Addr, cfg.Topics)
		waitFor(t, 60*time.Second, "the pipeline to consume the inputs", func() bool { return caughtUp(t, store, cfg.Topics, ends) })
		return p, stop
	}
	_, stop := run(recs[:half], nil)
	stop()

	reg := prometheus.NewPedanticRegistry()
	p, stop := run(recs[half:], pipeline.NewMetrics(reg))
	defer stop()
	waitFor(t, 30*time.Second, "the member scans to report", func() bool { return len(p.Status().Warming) == 0 })
	members := membersInState(t, store, 2)
	if got := sumMetric(t, reg, pipeline.MetricMembers); got != members || members == 0 {
		t.Errorf("%s sums to %v after the restart, the state holds %v members", pipeline.MetricMembers, got, members)
	}
}
