package pipeline

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/churnflow/churnflow/operators"
)

// Metrics are the pipeline's Prometheus metrics (docs/operations.md,
// "Metrics"). Labels are bounded: topics, partitions, reasons, alert
// types, tiers, segments; never a member id. Create them with NewMetrics
// and pass them in Deps.Metrics; every method is a no-op on a nil
// *Metrics, so a Pipeline without them pays nothing.
type Metrics struct {
	consumed         *prometheus.CounterVec
	deadLetters      *prometheus.CounterVec
	lag              *prometheus.GaugeVec
	watermarkLag     *prometheus.GaugeVec
	batchDuration    prometheus.Histogram
	commitDuration   prometheus.Histogram
	eventToAlert     prometheus.Histogram
	alerts           *prometheus.CounterVec
	timersFired      prometheus.Counter
	produceErrors    *prometheus.CounterVec
	outboxRecords    *prometheus.GaugeVec
	rebalances       prometheus.Counter
	assigned         prometheus.Gauge
	restoring        prometheus.Gauge
	restoreRecords   prometheus.Counter
	restoreDuration  prometheus.Histogram
	changelogRecords prometheus.Counter
	changelogBytes   prometheus.Counter
	kafkaFailing     prometheus.Gauge
	members          *prometheus.GaugeVec
}

// Metric names, for dashboards and alerting rules (deploy/).
const (
	MetricRecordsConsumed  = "churnflow_records_consumed_total"
	MetricDeadLetters      = "churnflow_dead_letters_total"
	MetricConsumerLag      = "churnflow_consumer_lag_records"
	MetricWatermarkLag     = "churnflow_watermark_lag_seconds"
	MetricBatchDuration    = "churnflow_batch_duration_seconds"
	MetricCommitDuration   = "churnflow_state_commit_duration_seconds"
	MetricEventToAlert     = "churnflow_event_to_alert_seconds"
	MetricAlerts           = "churnflow_alerts_total"
	MetricTimersFired      = "churnflow_timers_fired_total"
	MetricProduceErrors    = "churnflow_produce_errors_total"
	MetricOutboxRecords    = "churnflow_outbox_records"
	MetricRebalances       = "churnflow_rebalances_total"
	MetricAssigned         = "churnflow_assigned_partitions"
	MetricRestoring        = "churnflow_restoring_partitions"
	MetricRestoreRecords   = "churnflow_restore_records_total"
	MetricRestoreDuration  = "churnflow_restore_duration_seconds"
	MetricChangelogRecords = "churnflow_changelog_records_total"
	MetricChangelogBytes   = "churnflow_changelog_bytes_total"
	MetricKafkaFailing     = "churnflow_kafka_failing_clients"
	MetricMembers          = "churnflow_members"
)

// Label values and names.
const (
	outcomeApplied       = "applied"
	outcomeDeadLettered  = "dead_lettered"
	produceKindOutput    = "output"
	produceKindChangelog = "changelog"
	activityActive       = "active"
	activitySleeping     = "sleeping"
	tierUnknown          = "unknown"
	partitionLabel       = "partition"
	topicLabel           = "topic"
)

// Histogram buckets: batch and commit durations from 0.5 ms to about 16 s,
// latencies from 5 ms to about 2.7 min, restores from 0.1 s to about 3.4 min.
var (
	durationBuckets = prometheus.ExponentialBuckets(0.0005, 2, 16)
	latencyBuckets  = prometheus.ExponentialBuckets(0.005, 2, 16)
	restoreBuckets  = prometheus.ExponentialBuckets(0.1, 2, 12)
)

// NewMetrics creates the pipeline's metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricRecordsConsumed,
			Help: "Input records taken from Kafka and processed, by topic and outcome (applied, dead_lettered)."},
			[]string{topicLabel, "outcome"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricDeadLetters,
			Help: "Input records sent to the dead-letter topic, by reason."}, []string{"reason"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: MetricConsumerLag,
			Help: "Records of an input partition not yet applied (high-water mark minus the next offset), as of its last fetch."},
			[]string{topicLabel, partitionLabel}),
		watermarkLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: MetricWatermarkLag,
			Help: "Wall clock minus the partition's watermark: how far behind timers fire."}, []string{partitionLabel}),
		batchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: MetricBatchDuration,
			Help:    "Time to apply a batch: operators, timers, state commit, produce and acknowledgement.",
			Buckets: durationBuckets}),
		commitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: MetricCommitDuration,
			Help:    "Time of a batch's Badger commit.",
			Buckets: durationBuckets}),
		eventToAlert: prometheus.NewHistogram(prometheus.HistogramOpts{Name: MetricEventToAlert,
			Help:    "From an input record's Kafka timestamp to the broker's acknowledgement of the alert it caused (alerts of timers excluded).",
			Buckets: latencyBuckets}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricAlerts,
			Help: "Alerts and segment changes produced (and acknowledged), by type and the member's tier."},
			[]string{"type", "tier"}),
		timersFired: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricTimersFired,
			Help: "Members evaluated because their timer was due (not because of an event)."}),
		produceErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricProduceErrors,
			Help: "Failed produce attempts (retried), by kind: output (alerts, segments, dead letters) or changelog."},
			[]string{"kind"}),
		outboxRecords: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: MetricOutboxRecords,
			Help: "Records committed to a partition's outbox and not yet acknowledged by Kafka."}, []string{partitionLabel}),
		rebalances: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricRebalances,
			Help: "Consumer group generations this instance joined."}),
		assigned: prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricAssigned,
			Help: "Partition ids (of both input topics) assigned to this instance."}),
		restoring: prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricRestoring,
			Help: "Assigned partitions restoring their state from the changelog."}),
		restoreRecords: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricRestoreRecords,
			Help: "Changelog records loaded by restores."}),
		restoreDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: MetricRestoreDuration,
			Help:    "Time to restore a partition from the changelog.",
			Buckets: restoreBuckets}),
		changelogRecords: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricChangelogRecords,
			Help: "Records written to the changelog topic."}),
		changelogBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricChangelogBytes,
			Help: "Key and value bytes written to the changelog topic."}),
		kafkaFailing: prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricKafkaFailing,
			Help: "Kafka clients of this instance (fetchers, producer, changelog writers) failing and retrying now."}),
		members: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: MetricMembers,
			Help: "Members held by this instance's partitions, by tier, activity (active, sleeping) and segment."},
			[]string{"tier", "activity", "segment"}),
	}
	reg.MustRegister(m.consumed, m.deadLetters, m.lag, m.watermarkLag, m.batchDuration, m.commitDuration,
		m.eventToAlert, m.alerts, m.timersFired, m.produceErrors, m.outboxRecords, m.rebalances, m.assigned,
		m.restoring, m.restoreRecords, m.restoreDuration, m.changelogRecords, m.changelogBytes, m.kafkaFailing,
		m.members)
	return m
}

// MetricNames lists every metric NewMetrics registers.
func MetricNames() []string {
	return []string{MetricRecordsConsumed, MetricDeadLetters, MetricConsumerLag, MetricWatermarkLag,
		MetricBatchDuration, MetricCommitDuration, MetricEventToAlert, MetricAlerts, MetricTimersFired,
		MetricProduceErrors, MetricOutboxRecords, MetricRebalances, MetricAssigned, MetricRestoring,
		MetricRestoreRecords, MetricRestoreDuration, MetricChangelogRecords, MetricChangelogBytes,
		MetricKafkaFailing, MetricMembers}
}

// memberClass is what the members gauge counts a member under.
type memberClass struct {
	tier     uint8
	sleeping bool
	segment  operators.Segment
}

func classOf(s *operators.MemberState) memberClass {
	return memberClass{tier: s.Tier, sleeping: s.Dormant(), segment: s.Segment}
}

// partMetrics is one worker's view of the metrics: its partition's label
// values, resolved once, and its share of the members gauge, withdrawn
// when the worker stops.
type partMetrics struct {
	m       *Metrics
	part    string
	tiers   []string
	records [2][2]prometheus.Counter // consumed, [topic][applied, dead-lettered]
	lag     [2]prometheus.Gauge
	wmLag   prometheus.Gauge
	outbox  prometheus.Gauge
	members map[memberClass]int64
	// counting: the worker's member scan has not reported yet; members
	// holds only the changes since its snapshot, kept off the gauge.
	counting  bool
	outboxLen atomic.Int64 // the worker adds, its sender subtracts
}

func (m *Metrics) forPartition(part int, topics [2]string, tiers []string) *partMetrics {
	if m == nil {
		return nil
	}
	p := strconv.Itoa(part)
	pm := &partMetrics{m: m, part: p, tiers: tiers, members: map[memberClass]int64{}, counting: true,
		wmLag: m.watermarkLag.WithLabelValues(p), outbox: m.outboxRecords.WithLabelValues(p)}
	for i, t := range topics {
		pm.records[i][0] = m.consumed.WithLabelValues(t, outcomeApplied)
		pm.records[i][1] = m.consumed.WithLabelValues(t, outcomeDeadLettered)
		pm.lag[i] = m.lag.WithLabelValues(t, p)
	}
	return pm
}

// stop withdraws the partition's series and its members.
func (pm *partMetrics) stop(topics [2]string) {
	if pm == nil {
		return
	}
	if !pm.counting {
		for c, n := range pm.members {
			pm.memberGauge(c).Sub(float64(n))
		}
	}
	clear(pm.members)
	for _, t := range topics {
		pm.m.lag.DeleteLabelValues(t, pm.part)
	}
	pm.m.watermarkLag.DeleteLabelValues(pm.part)
	pm.m.outboxRecords.DeleteLabelValues(pm.part)
}

func (pm *partMetrics) tierName(t uint8) string {
	if int(t) < len(pm.tiers) {
		return pm.tiers[t]
	}
	return tierUnknown
}

func (pm *partMetrics) memberGauge(c memberClass) prometheus.Gauge {
	act := activityActive
	if c.sleeping {
		act = activitySleeping
	}
	return pm.m.members.WithLabelValues(pm.tierName(c.tier), act, c.segment.String())
}

// member moves one member between classes: from old (if had) to new (if
// has). Before counted, only the partition's tally moves.
func (pm *partMetrics) member(old memberClass, had bool, new memberClass, has bool) {
	if pm == nil || (had && has && old == new) {
		return
	}
	if had {
		pm.members[old]--
		if !pm.counting {
			pm.memberGauge(old).Dec()
		}
	}
	if has {
		pm.members[new]++
		if !pm.counting {
			pm.memberGauge(new).Inc()
		}
	}
}

// counted adds the members the worker's scan counted in its snapshot to
// the changes since, and puts the partition's members on the gauge.
func (pm *partMetrics) counted(snapshot map[memberClass]int64) {
	if pm == nil || !pm.counting {
		return
	}
	for c, n := range snapshot {
		pm.members[c] += n
	}
	for c, n := range pm.members {
		pm.memberGauge(c).Add(float64(n))
	}
	pm.counting = false
}

func (pm *partMetrics) consumed(topic int, dead bool) {
	if pm == nil {
		return
	}
	if dead {
		pm.records[topic][1].Inc()
	} else {
		pm.records[topic][0].Inc()
	}
}

func (pm *partMetrics) deadLetter(r operators.Reason) {
	if pm != nil {
		pm.m.deadLetters.WithLabelValues(string(r)).Inc()
	}
}

func (pm *partMetrics) lagAfter(topic int, in *input) {
	if pm != nil && in.known && in.applied >= 0 {
		pm.lag[topic].Set(float64(max(in.hwm-in.applied, 0)))
	}
}

func (pm *partMetrics) watermark(now time.Time, wm int64) {
	if pm != nil && wm > 0 {
		pm.wmLag.Set(float64(now.Unix() - wm))
	}
}

func (pm *partMetrics) outboxDelta(n int64) {
	if pm != nil {
		pm.outbox.Set(float64(max(pm.outboxLen.Add(n), 0)))
	}
}

func (pm *partMetrics) alert(a *operators.Alert) {
	if pm != nil {
		tier := a.Member.Tier
		if tier == "" {
			tier = tierUnknown
		}
		pm.m.alerts.WithLabelValues(a.Type.String(), tier).Inc()
	}
}

// Methods of the instance-wide metrics, nil-safe.

func (m *Metrics) observeBatch(d time.Duration) {
	if m != nil {
		m.batchDuration.Observe(d.Seconds())
	}
}

func (m *Metrics) observeCommit(d time.Duration) {
	if m != nil {
		m.commitDuration.Observe(d.Seconds())
	}
}

func (m *Metrics) observeEventToAlert(d time.Duration) {
	if m != nil {
		m.eventToAlert.Observe(d.Seconds())
	}
}

func (m *Metrics) timers(n int) {
	if m != nil {
		m.timersFired.Add(float64(n))
	}
}

func (m *Metrics) produceError(kind string) {
	if m != nil {
		m.produceErrors.WithLabelValues(kind).Inc()
	}
}

func (m *Metrics) rebalance() {
	if m != nil {
		m.rebalances.Inc()
	}
}

func (m *Metrics) assignedDelta(n int) {
	if m != nil {
		m.assigned.Add(float64(n))
	}
}

func (m *Metrics) restoringDelta(n int) {
	if m != nil {
		m.restoring.Add(float64(n))
	}
}

func (m *Metrics) restored(records int64, d time.Duration) {
	if m != nil {
		m.restoreRecords.Add(float64(records))
		m.restoreDuration.Observe(d.Seconds())
	}
}

func (m *Metrics) changelogWritten(records, bytes int) {
	if m != nil {
		m.changelogRecords.Add(float64(records))
		m.changelogBytes.Add(float64(bytes))
	}
}

func (m *Metrics) failingClients(n int) {
	if m != nil {
		m.kafkaFailing.Set(float64(n))
	}
}
