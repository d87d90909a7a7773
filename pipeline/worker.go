package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/churnflow/churnflow/operators"
	"github.com/churnflow/churnflow/state"
)

// Dead-letter and alert headers.
const (
	HeaderAlertID         = "alert_id"
	HeaderAlertType       = "alert_type"
	HeaderSourceTopic     = "source_topic"
	HeaderSourcePartition = "source_partition"
	HeaderSourceOffset    = "source_offset"
	HeaderReason          = "reason"
	HeaderError           = "error"
)

// Topic indexes in a worker: bookings sort before activity at equal times.
const (
	tBookings = 0
	tActivity = 1
)

// rejected is the sort key of a rejected record: it goes out first, it
// changes no state.
const rejected = math.MinInt64

// pending is a fetched record waiting to be applied.
type pending struct {
	arrived time.Time // wall clock when its fetch reached the worker
	msg     kafka.Message
	ev      operators.Event
	t       int64 // occurred_at, or rejected
	reason  operators.Reason
	errMsg  string
}

// input is one topic of the worker's partition.
type input struct {
	name    string
	ch      chan fetchResult
	buf     []*pending
	head    int
	hwm     int64
	fetched int64     // next offset to fetch, as of the last fetch
	known   bool      // a fetch has arrived: hwm and fetched are meaningful
	asOf    time.Time // when the last fetch taken was issued
	applied int64     // next offset after the last applied record; -1: none yet
	dirty   bool      // applied changed since the last commit
}

func (in *input) buffered() int { return len(in.buf) - in.head }

func (in *input) peek() *pending {
	if in.head < len(in.buf) {
		return in.buf[in.head]
	}
	return nil
}

func (in *input) pop() *pending {
	p := in.buf[in.head]
	in.buf[in.head] = nil
	in.head++
	switch {
	case in.head == len(in.buf):
		in.buf, in.head = in.buf[:0], 0
	case in.head >= 1024 && in.head >= len(in.buf)/2:
		// A buffer that never quite empties would otherwise grow with
		// every append: move the live records to the front.
		n := copy(in.buf, in.buf[in.head:])
		clear(in.buf[n:])
		in.buf, in.head = in.buf[:n], 0
	}
	return p
}

// caughtUp reports whether every record up to the high-water mark of the
// last fetch has been fetched and applied.
func (in *input) caughtUp() bool { return in.known && in.fetched >= in.hwm && in.buffered() == 0 }

// caughtUpSince reports whether the topic is caught up as of a fetch issued
// after t. A record of the other topic that arrived at t may go ahead of
// this topic's records only then: an older "caught up" may predate records
// written to this topic before that record was written (the problem Kafka
// Streams' max.task.idle.ms addresses). It costs at most one long poll of
// latency while this topic is idle.
func (in *input) caughtUpSince(t time.Time) bool { return in.caughtUp() && in.asOf.After(t) }

// member is a member state held for one batch.
type member struct {
	s     operators.MemberState
	prior state.Prior     // the committed state, as read, for the batch's Put
	class memberClass     // as read, for the members gauge (if found)
	enc   []byte          // the state's encoding, from Batch.Put
	marks []changelogMark // events applied in this batch, for the changelog
}

// timersPerBatch is how many members a batch takes from the timers index:
// a quarter of BatchMax. A backlog of due timers (event time crossing a
// day boundary, when every member's windows move; a restart) is worked off
// over several batches, each as short as a quarter of a full one, so that
// the events arriving meanwhile wait behind no more than that. Firing
// BatchMax per batch made every batch of a live stream BatchMax members
// long while a backlog lasted (churnflow bench's latency phase: three timer
// firings per event, p50 event-to-alert latency over a second at a quarter
// of the pipeline's capacity).
func timersPerBatch(batchMax int) int { return max(batchMax/4, 1) }

// batchHint is the size of the worker's last batch, which the next one
// allocates for: its members, alerts and outbox records grown from nothing
// (doubling as they filled, with a heap object per member and per alert
// value) were about a fifth of what the pipeline allocated per event
// (churnflow bench). Only the counts are kept, not the buffers: kept
// buffers stay live, and a larger live heap under the memory limit makes
// the collector run more often (state.batchHint).
type batchHint struct{ members, alerts, valueBytes int }

// grown is a hint with an eighth added, so that a batch slightly larger
// than the last does not grow its slices.
func grown(n int) int { return n + n/8 }

// memberSlab hands out a batch's members from chunks: one allocation per
// chunk instead of one per member.
type memberSlab struct{ chunk []member }

func (sl *memberSlab) next(size int) *member {
	if len(sl.chunk) == cap(sl.chunk) {
		sl.chunk = make([]member, 0, max(size, 64))
	}
	sl.chunk = append(sl.chunk, member{})
	return &sl.chunk[len(sl.chunk)-1]
}

// worker processes partition p of both input topics.
type worker struct {
	p        *Pipeline
	part     int
	ps       *state.PartitionStore
	gen      *kafka.Generation
	prod     *producer
	dec      *operators.Decoder
	log      zerolog.Logger
	in       [2]input
	lateness int64

	maxEvent    int64 // largest occurred_at applied; 0: none
	wm          int64 // watermark timers have fired up to (exclusive); never decreases
	lastArrival time.Time
	moreTimers  bool
	firstBuf    time.Time // when the oldest buffered record arrived
	flushCtx    context.Context
	sendq       chan sendJob // committed batches for the sender
	hint        batchHint    // the last batch's sizes, for the next

	pm       *partMetrics     // nil without Deps.Metrics
	clTopic  string           // the changelog topic
	clw      *changelogWriter // appends to partition part of it
	dedupTTL int64            // seconds
	// timeReads says the batch log line is on (debug), so the member
	// reads are timed for it; off, the per-member clock reads are skipped.
	timeReads bool
	warmed    chan warmResult // the member scan's report; nil once taken
	warmErr   error           // the member scan failed
}

func newWorker(p *Pipeline, part int, gen *kafka.Generation, prod *producer) *worker {
	dec := operators.NewDecoder(p.engine.Config().TierNames())
	dec.MaxBytes = p.cfg.MaxEventBytes
	w := &worker{
		p: p, part: part, gen: gen, prod: prod, dec: dec,
		ps:       p.store.Partition(state.Partition(part)),
		log:      p.log.With().Int("partition", part).Logger(),
		lateness: int64(p.cfg.Lateness / time.Second),
	}
	dbg := w.log.Debug() // nil when debug lines are off (or the logger has no writer)
	w.timeReads = dbg.Enabled()
	dbg.Discard()
	w.clTopic = p.changelog
	w.clw = &changelogWriter{p: p, topic: p.changelog, part: part}
	w.dedupTTL = int64(p.store.DedupTTL() / time.Second)
	w.in[tBookings].name = p.cfg.Topics.Bookings
	w.in[tActivity].name = p.cfg.Topics.Activity
	return w
}

// wants reports whether the worker takes another fetch of topic ti: while it
// holds fewer than BatchMax of the topic's records. Beyond that the fetcher
// waits, with one fetch in the channel and one in hand. A batch takes far
// longer than a fetch (about a second for 2,000 records, the BatchMax of
// the time, at 1,000,000
// members, from 19,000 events/s over 8 partitions), so a batch's worth per
// topic is enough; twice that (before) held about 90 MB of decoded records
// across 8 partitions, live heap that made the collector run more often
// under the memory limit (churnflow bench, 1 M members: 96 -> 91 CPU s per
// million events, together with the smaller fetches of fetchMaxBytes). A cap
// on both topics together held less still, but changed how batches form: the
// timers reported by the index rose from 715,429 to 818,644 on the same data
// (likely shorter batches, cut when one topic's buffer ran out first; not
// measured directly).
func (w *worker) wants(ti int) bool { return w.in[ti].buffered() < w.p.cfg.BatchMax }

// run processes the partition until ctx ends (the generation ended or the
// pipeline stops): first it flushes the outbox, then it reads both topics
// from the offsets committed with the state. It returns nil when ctx ended
// and an error only for what cannot be retried (the state store).
func (w *worker) run(ctx context.Context) error {
	flushCtx, flushCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer flushCancel()
	stopGrace := context.AfterFunc(ctx, func() { time.AfterFunc(shutdownGrace, flushCancel) })
	defer stopGrace()
	w.flushCtx = flushCtx

	defer w.clw.stop()
	w.log.Info().Msg("partition worker started")
	if err := w.syncChangelog(ctx, flushCtx); err != nil {
		if ctx.Err() != nil || flushCtx.Err() != nil {
			return nil
		}
		return &PartitionError{w.part, fmt.Errorf("changelog: %w", err)}
	}
	if err := w.flushOutbox(); err != nil {
		if ctx.Err() != nil || flushCtx.Err() != nil {
			return nil
		}
		return &PartitionError{w.part, err}
	}
	w.sendq = make(chan sendJob, sendCap)
	sent := make(chan struct{})
	go func() { defer close(sent); w.sender(w.sendq) }()
	defer func() { close(w.sendq); <-sent }()
	offs, err := w.ps.Offsets()
	if err != nil {
		return &PartitionError{w.part, err}
	}
	fctx, fcancel := context.WithCancel(ctx)
	var fwg sync.WaitGroup
	defer func() {
		fcancel()
		for i := range w.in {
			for range w.in[i].ch { // unblock the fetcher
			}
		}
		fwg.Wait()
	}()
	for i := range w.in {
		in := &w.in[i]
		start, ok := offs[in.name]
		if !ok {
			start = -1
		}
		in.applied = start
		in.ch = make(chan fetchResult, 1)
		f := &fetcher{topic: in.name, partition: w.part, start: start, brokers: w.p.cfg.Brokers,
			dialer: w.p.dialer, log: w.log, ch: in.ch, status: w.p.status}
		fwg.Add(1)
		go func() { defer fwg.Done(); f.run(fctx) }()
	}
	w.log.Info().Int64("bookings_offset", offs[w.in[tBookings].name]).Int64("activity_offset", offs[w.in[tActivity].name]).
		Msg("partition seeked to stored offsets")
	w.lastArrival = w.p.clock()
	names := [2]string{w.in[tBookings].name, w.in[tActivity].name}
	if w.pm = w.p.metrics.forPartition(w.part, names, w.p.engine.Config().TierNames()); w.pm != nil {
		defer w.pm.stop(names)
	}
	stopWarm, err := w.warm(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return &PartitionError{w.part, err}
	}
	defer stopWarm()
	w.p.status.setProcessing(w.part)

	stalled := false
	for ctx.Err() == nil {
		if !w.gather(ctx, stalled) {
			break
		}
		progress, err := w.batch(ctx)
		if err != nil {
			return &PartitionError{w.part, err}
		}
		stalled = !progress
	}
	if w.warmErr != nil && ctx.Err() == nil {
		return &PartitionError{w.part, w.warmErr}
	}
	w.log.Info().Msg("partition worker stopped")
	return nil
}

// take moves a fetch result into its topic's buffer, decoding and
// validating each record.
func (w *worker) take(ti int, r fetchResult) {
	in := &w.in[ti]
	in.hwm, in.fetched, in.known = r.hwm, r.next, true
	if r.issued.After(in.asOf) {
		in.asOf = r.issued
	}
	if len(r.msgs) == 0 {
		return
	}
	arrived := time.Now()
	now := w.p.clock()
	w.lastArrival = now
	if w.firstBuf.IsZero() {
		w.firstBuf = time.Now()
	}
	future := now.Add(w.p.cfg.MaxFuture).Unix()
	// One allocation for the fetch's records, not one per record: fewer
	// objects for the garbage collector to allocate, mark and sweep.
	slab := make([]pending, len(r.msgs))
	for i := range r.msgs {
		pd := &slab[i]
		pd.msg, pd.arrived = r.msgs[i], arrived
		w.validate(ti, pd, future)
		in.buf = append(in.buf, pd)
	}
}

func (w *worker) validate(ti int, pd *pending, future int64) {
	reject := func(r operators.Reason, msg string) {
		pd.t, pd.reason, pd.errMsg = rejected, r, msg
	}
	if err := w.dec.Decode(pd.msg.Value, &pd.ev); err != nil {
		reject(operators.ReasonOf(err), err.Error())
		return
	}
	ev := &pd.ev
	switch {
	case ti == tBookings && !ev.Type.IsBookingTopic():
		reject(operators.ReasonWrongTopic, "a "+strconv.Quote(ev.TypeName)+" event on the bookings topic (only booking and cancellation belong there)")
	case ti == tActivity && ev.Type.IsBookingTopic():
		reject(operators.ReasonWrongTopic, "a "+strconv.Quote(ev.TypeName)+" event on the activity topic (it belongs on the bookings topic)")
	case string(pd.msg.Key) != string(ev.MemberID):
		reject(operators.ReasonKeyMismatch, "the message key is not the event's member_id")
	case ev.OccurredAt > future:
		reject(operators.ReasonFuture, "occurred_at is more than "+w.p.cfg.MaxFuture.String()+" after the wall clock")
	default:
		pd.t = ev.OccurredAt
	}
}

// drain takes every fetch result available without blocking, up to the
// buffer cap.
func (w *worker) drain() {
	for i := range w.in {
		in := &w.in[i]
		for in.ch != nil && w.wants(i) {
			select {
			case r, ok := <-in.ch:
				if !ok {
					in.ch = nil
					break
				}
				w.take(i, r)
				continue
			default:
			}
			break
		}
	}
}

// gather waits until there is a batch's worth of work: BatchMax records
// buffered, records buffered for BatchWait, timers left over, or an idle
// watermark to advance. stalled says the last round could apply nothing
// (one topic held back): then it waits for a fetch first. It returns false
// when ctx ended.
func (w *worker) gather(ctx context.Context, stalled bool) bool {
	for {
		if ctx.Err() != nil {
			return false
		}
		select {
		case r := <-w.warmed:
			if !w.takeWarm(r) {
				return false
			}
		default:
		}
		w.drain()
		n := w.in[0].buffered() + w.in[1].buffered()
		var wait time.Duration
		switch {
		case stalled:
			wait = time.Second
			stalled = false
		case w.moreTimers || n >= w.p.cfg.BatchMax:
			return true
		case n > 0:
			left := w.p.cfg.BatchWait - time.Since(w.firstBuf)
			if left <= 0 {
				return true
			}
			wait = left
		default:
			if w.watermark() > w.wm {
				return true
			}
			wait = time.Second
		}
		var c0, c1 chan fetchResult
		if w.wants(0) {
			c0 = w.in[0].ch
		}
		if w.wants(1) {
			c1 = w.in[1].ch
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case r, ok := <-c0:
			if ok {
				w.take(0, r)
			} else {
				w.in[0].ch = nil
			}
		case r, ok := <-c1:
			if ok {
				w.take(1, r)
			} else {
				w.in[1].ch = nil
			}
		case r := <-w.warmed:
			if !w.takeWarm(r) {
				t.Stop()
				return false
			}
		case <-t.C:
		}
		t.Stop()
	}
}

// next returns the next record to apply in (occurred_at, topic, offset)
// order, or nil. A topic's records are held back while the other topic
// has no buffered record and is not known to be caught up by a fetch
// issued after the record arrived: a record from it may still come first.
// Rejected records go at once.
func (w *worker) next() *pending {
	b, a := w.in[tBookings].peek(), w.in[tActivity].peek()
	switch {
	case b != nil && a != nil:
		if a.t < b.t {
			return w.in[tActivity].pop()
		}
		return w.in[tBookings].pop()
	case b != nil:
		if b.t == rejected || w.in[tActivity].caughtUpSince(b.arrived) {
			return w.in[tBookings].pop()
		}
	case a != nil:
		if a.t == rejected || w.in[tBookings].caughtUpSince(a.arrived) {
			return w.in[tActivity].pop()
		}
	}
	return nil
}

// watermark returns the watermark the partition may fire timers up to:
// the largest occurred_at applied minus Lateness, or, when the partition
// is caught up on both topics and idle for IdleAfter, the wall clock
// minus Lateness; never less than before.
func (w *worker) watermark() int64 {
	wm := w.wm
	if w.maxEvent != 0 {
		wm = max(wm, w.maxEvent-w.lateness)
	}
	if w.in[0].caughtUp() && w.in[1].caughtUp() {
		now := w.p.clock()
		if now.Sub(w.lastArrival) >= w.p.cfg.IdleAfter {
			wm = max(wm, now.Unix()-w.lateness)
		}
	}
	return wm
}

// warmResult is what a worker's member scan reports: the members of its
// snapshot by class (nil without metrics), or why it failed.
type warmResult struct {
	members map[memberClass]int64
	err     error
}

// warm starts reading every member state of the partition once, from a
// snapshot taken now, before the first batch, while the worker processes:
// it counts the members for the members gauge and loads their states into
// the member cache (state.MemberScan; a state a batch commits after the
// snapshot is not overwritten). It reports on w.warmed; the partition is
// in Status.Warming until the worker takes the report. stop ends the scan
// and waits for it.
//
// A restarted process starts with an empty cache; without the scan its
// events each read their member from Badger, one at a time. The scan reads
// the states in key order: 963,000 members on 8 partitions took 1.1 s, the
// workers scanning in parallel on 2 cores (churnflow bench, embedded
// broker), and the latency phase at 10,000 events/s then found 91.6 % of
// its members in the cache instead of 31.3 %; its p99 fell from 1.7 s to
// 0.49 s (benchmarks/RESULTS.md, eighth sitting). The workers used to wait
// for it: after 10 M events the scans took 2.4-5.5 s, and the restart
// waited for them (eleventh sitting).
func (w *worker) warm(ctx context.Context) (stop func(), err error) {
	sc, err := w.ps.ScanMembers()
	if err != nil {
		return nil, fmt.Errorf("read the members into the cache: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	w.warmed = make(chan warmResult, 1)
	w.p.status.setWarming(w.part, true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer sc.Close()
		start := time.Now()
		var counts map[memberClass]int64
		if w.pm != nil {
			counts = map[memberClass]int64{}
		}
		n := 0
		err := sc.Range(ctx, func(_ operators.MemberID, s *operators.MemberState) error {
			n++
			if counts != nil {
				counts[classOf(s)]++
			}
			return nil
		})
		if err != nil {
			w.warmed <- warmResult{err: fmt.Errorf("read the members into the cache: %w", err)}
			return
		}
		w.log.Info().Int("members", n).Dur("took", time.Since(start)).Msg("member states read into the member cache")
		w.warmed <- warmResult{members: counts}
	}()
	return func() { cancel(); <-done; w.p.status.setWarming(w.part, false) }, nil
}

// takeWarm takes the member scan's report: the members onto the gauge. It
// returns false, with w.warmErr set, when the scan failed.
func (w *worker) takeWarm(r warmResult) bool {
	w.warmed = nil
	if r.err != nil {
		w.warmErr = r.err
		return false
	}
	w.pm.counted(r.members)
	w.p.status.setWarming(w.part, false)
	return true
}

// batch applies up to BatchMax records and fires the timers due before the
// watermark, commits it all in one state batch, produces the outbox records
// and acknowledges them. It reports whether it did anything.
func (w *worker) batch(ctx context.Context) (bool, error) {
	started := time.Now()
	cfg := &w.p.cfg
	g := w.p.engine
	b := w.ps.NewBatch()
	committed := false
	defer func() {
		if !committed {
			b.Discard()
		}
	}()
	members := make(map[operators.MemberID]*member, grown(w.hint.members))
	var readsTook time.Duration
	var slab memberSlab
	get := func(id operators.MemberID) (*member, error) {
		if m, ok := members[id]; ok {
			return m, nil
		}
		m := slab.next(grown(w.hint.members))
		var gs time.Time
		if w.timeReads {
			gs = time.Now()
		}
		prior, err := w.ps.Read(id, &m.s)
		if w.timeReads {
			readsTook += time.Since(gs)
		}
		if err != nil {
			return nil, err
		}
		m.prior = prior
		if prior.Found {
			m.class = classOf(&m.s)
		}
		members[id] = m
		return m, nil
	}
	var (
		alerts    = make([]operators.Alert, 0, grown(w.hint.alerts))
		alertFrom = make([]time.Time, 0, grown(w.hint.alerts)) // per alert: the Kafka timestamp of the record that caused it (zero: a timer)
		arrived   []time.Time                                  // per alert of alertFrom: when the record was taken (AlertLatency only)
		dead      []*pending
		applied   int
	)
	// Dedup markers expire by the store's clock (the real one), not
	// Deps.Clock: the expiry the changelog carries must agree with it.
	expires := time.Now().Unix() + w.dedupTTL
	for n := 0; n < cfg.BatchMax; n++ {
		pd := w.next()
		if pd == nil {
			break
		}
		ti := tBookings
		if pd.msg.Topic == w.in[tActivity].name {
			ti = tActivity
		}
		in := &w.in[ti]
		in.applied, in.dirty = pd.msg.Offset+1, true
		if pd.reason == "" {
			seen, err := b.Seen(pd.ev.ID)
			if err != nil {
				return false, err
			}
			if seen {
				pd.reason, pd.errMsg = operators.ReasonDuplicate, "event_id already applied within the dedup horizon"
			}
		}
		w.pm.consumed(ti, pd.reason != "")
		if pd.reason != "" {
			w.pm.deadLetter(pd.reason)
			dead = append(dead, pd)
			continue
		}
		ev := &pd.ev
		m, err := get(ev.MemberID)
		if err != nil {
			return false, err
		}
		alerts, _ = g.Apply(&m.s, ev, alerts)
		for len(alertFrom) < len(alerts) {
			alertFrom = append(alertFrom, pd.msg.Time)
			if w.p.alertLatency != nil {
				arrived = append(arrived, pd.arrived)
			}
		}
		b.MarkSeen(ev.MemberID, ev.ID)
		m.marks = append(m.marks, changelogMark{id: ev.ID, expires: expires})
		w.maxEvent = max(w.maxEvent, ev.OccurredAt)
		applied++
	}
	if w.in[0].buffered()+w.in[1].buffered() == 0 {
		w.firstBuf = time.Time{}
	}

	// Timers: every member of the batch, then the timers index, up to the
	// watermark (exclusive), at most timersPerBatch members per round.
	wm := w.watermark()
	fired := 0
	w.moreTimers = false
	if wm > 0 {
		for id, m := range members {
			alerts = g.Advance(&m.s, id, wm, alerts)
		}
		var due []operators.MemberID
		limit := timersPerBatch(cfg.BatchMax)
		err := w.ps.Due(ctx, wm, limit, func(id operators.MemberID, _ int64) error {
			due = append(due, id)
			return nil
		})
		if err != nil && ctx.Err() == nil {
			return false, err
		}
		w.moreTimers = len(due) >= limit
		for _, id := range due {
			if _, ok := members[id]; ok {
				continue // advanced above, from its current state
			}
			m, err := get(id)
			if err != nil {
				return false, err
			}
			if !m.prior.Found {
				continue
			}
			alerts = g.Advance(&m.s, id, wm, alerts)
			fired++
		}
	}
	advanced := wm > w.wm
	w.wm = wm
	w.p.metrics.timers(fired)
	w.pm.watermark(w.p.clock(), wm)
	for i := range w.in {
		w.pm.lagAfter(i, &w.in[i])
	}

	if len(members) == 0 && len(dead) == 0 && !w.in[0].dirty && !w.in[1].dirty {
		return advanced, nil
	}
	for id, m := range members {
		switch {
		case !m.s.IsNew():
			m.enc = b.PutPrior(id, &m.s, m.prior)
		case m.prior.Found:
			b.DeletePrior(id, m.prior)
		}
	}
	emitted := w.p.clock().Unix()
	out := make([]outRecord, 0, len(alerts)+len(dead)+len(members)+1)
	// The alerts' and the changelog's values are slices of one buffer (of
	// another when it fills: a slice of a full one stays valid).
	vals := make([]byte, 0, grown(w.hint.valueBytes))
	for i := range alerts {
		a := &alerts[i]
		start := len(vals)
		vals = a.AppendJSON(vals, emitted)
		rec := state.OutboxRecord{
			Topic:   cfg.Topics.ForAlert(a.Type.Topic()),
			Key:     []byte(a.MemberID),
			Value:   vals[start:len(vals):len(vals)],
			Headers: map[string]string{HeaderAlertID: a.ID, HeaderAlertType: a.Type.String()},
		}
		out = append(out, outRecord{seq: b.Append(a.MemberID, rec), rec: rec})
	}
	for _, pd := range dead {
		rec := state.OutboxRecord{
			Topic: cfg.Topics.DeadLetter,
			Key:   pd.msg.Key,
			Value: pd.msg.Value,
			Headers: map[string]string{
				HeaderSourceTopic:     pd.msg.Topic,
				HeaderSourcePartition: strconv.Itoa(pd.msg.Partition),
				HeaderSourceOffset:    strconv.FormatInt(pd.msg.Offset, 10),
				HeaderReason:          string(pd.reason),
				HeaderError:           pd.errMsg,
			},
		}
		out = append(out, outRecord{seq: b.Append("", rec), rec: rec})
		w.log.Debug().Str("topic", pd.msg.Topic).Int64("offset", pd.msg.Offset).Str("reason", string(pd.reason)).
			Str("error", pd.errMsg).Msg("dead letter")
	}
	// The changelog's records go last: out is sent in this order, and a
	// batch's changelog records only once its alerts are acknowledged.
	regularEnd := len(out)
	for id, m := range members {
		rec := state.OutboxRecord{Topic: w.clTopic, Key: []byte(changelogMemberStart + string(id))}
		switch {
		case !m.s.IsNew():
			start := len(vals)
			vals = appendChangelogMember(vals, m.marks, m.enc)
			rec.Value = vals[start:len(vals):len(vals)]
		case !m.prior.Found:
			continue
		}
		out = append(out, outRecord{seq: b.Append(id, rec), rec: rec})
	}
	inOffsets := [2]int64{-1, -1}
	clOffsets := map[string]int64{}
	for i := range w.in {
		in := &w.in[i]
		if in.dirty {
			b.SetOffset(in.name, in.applied)
			inOffsets[i] = in.applied
		}
		if in.applied >= 0 {
			clOffsets[in.name] = in.applied
		}
	}
	if len(clOffsets) > 0 {
		rec := state.OutboxRecord{Topic: w.clTopic, Key: []byte(changelogOffsetsKey), Value: appendChangelogOffsets(nil, clOffsets)}
		out = append(out, outRecord{seq: b.Append("", rec), rec: rec})
	}
	committed = true
	commitStart := time.Now()
	if err := b.Commit(context.WithoutCancel(ctx)); err != nil {
		return false, err
	}
	commitTook := time.Since(commitStart)
	w.p.metrics.observeCommit(commitTook)
	w.pm.outboxDelta(int64(len(out)))
	if w.pm != nil {
		for _, m := range members {
			w.pm.member(m.class, m.prior.Found, classOf(&m.s), !m.s.IsNew())
		}
	}
	w.in[0].dirty, w.in[1].dirty = false, false
	w.log.Debug().Int("applied", applied).Int("dead_letters", len(dead)).Int("timers_fired", fired).
		Int("members", len(members)).Int("outbox", len(out)).Int64("watermark", wm).
		Dur("took", time.Since(started)).Dur("commit_took", commitTook).Dur("member_reads_took", readsTook).Msg("batch committed")
	w.hint = batchHint{members: len(members), alerts: len(alerts), valueBytes: len(vals)}
	w.sendq <- sendJob{regular: out[:regularEnd:regularEnd], changelog: out[regularEnd:], alerts: alerts, alertFrom: alertFrom, alertArrived: arrived, started: started,
		committed: time.Now(), inOffsets: inOffsets}
	return true, nil
}

// sendJob is a committed batch's outbox records, handed to the worker's
// sender, with what the metrics need once they are acknowledged.
type sendJob struct {
	// regular (alerts and dead letters) and changelog are the batch's
	// outbox records, in seq order: the changelog's come after the others.
	regular, changelog []outRecord
	alerts             []operators.Alert
	alertFrom          []time.Time
	// alertArrived is, per alert of alertFrom, when the worker took the
	// record from its fetcher (only with Deps.AlertLatency).
	alertArrived []time.Time
	started      time.Time
	committed    time.Time // handed to the sender
	inOffsets    [2]int64  // per input topic, the offset this batch committed; -1: none
}

// sendCap bounds the committed batches waiting for the sender: the worker
// runs at most this many batches ahead of the broker's acknowledgements of
// their alerts.
const sendCap = 2

// logCap bounds the batches whose alerts are acknowledged and that wait
// for the logger (their changelog write and outbox acknowledgement): with
// the one each stage holds, a worker has at most sendCap + logCap + 2
// committed batches in memory.
const logCap = 1

// sender produces the committed batches' outbox records in commit order
// while the worker applies the next batches, so that a batch's broker round
// trips overlap the next batch's work instead of adding to it. It works in
// two stages, each in commit order: this goroutine produces a batch's
// alerts and dead letters and hands the batch to the logger (w.logger),
// which writes its changelog records and then deletes its records from the
// outbox. A batch's alerts thus wait only for the alerts before them, not
// for the changelog write and the Badger transaction of the batch before.
// (churnflow bench at 20,000 events/s, over the slowest 1 % of alerts: the
// wait behind the sender went from 228-248 ms to 23-125 ms, but the waits
// before the batch grew by about as much, the p99 unchanged: the stalls
// that fill these queues are the whole process's; docs/performance.md.)
//
// After a failed send (the flush context ended) a stage sends nothing
// more, nor does the logger after the sender's failure: the records wait in
// the outbox for the next assignment, and the changelog's order is kept (a
// later batch's changelog records never go ahead of an earlier one's).
func (w *worker) sender(jobs <-chan sendJob) {
	logq := make(chan sendJob, logCap)
	logged := make(chan struct{})
	go func() { defer close(logged); w.logger(logq) }()
	defer func() { close(logq); <-logged }()
	failed := false
	for j := range jobs {
		taken := time.Now()
		if failed {
			continue
		}
		if err := w.sendAlerts(j.regular); err != nil {
			failed = true
			continue
		}
		w.delivered(&j, taken, time.Now())
		logq <- j
	}
}

// logger is the sender's second stage: per batch, the changelog records
// (once the batch's alerts are acknowledged), then the outbox's deletes.
//
// The consumer group's offsets (for lag monitoring only: the state holds
// the offsets processing resumes from) are committed at most every
// groupCommitEvery, and once more when the worker stops. Committing them
// after every batch was a third broker round trip per batch: with the small
// batches of a pipeline that keeps up (tens of records), the sender fell
// behind and held the worker back.
func (w *worker) logger(jobs <-chan sendJob) {
	failed := false
	offsets := groupOffsets{applied: [2]int64{-1, -1}}
	tick := time.NewTicker(groupCommitEvery)
	defer tick.Stop()
	for {
		var j sendJob
		select {
		case <-tick.C:
			if !failed {
				offsets.commit(w)
			}
			continue
		case job, ok := <-jobs:
			if !ok {
				if !failed {
					offsets.commit(w)
				}
				return
			}
			j = job
		}
		if failed {
			continue
		}
		if err := w.sendChangelog(j.regular, j.changelog); err != nil {
			failed = true
			continue
		}
		offsets.add(j.inOffsets)
	}
}

// delivered accounts for a sent batch's alerts: the alerts counter, the
// event-to-alert latency (to acked, the broker's acknowledgement) and its
// parts, and the batch's duration. taken is when the sender took it.
func (w *worker) delivered(j *sendJob, taken, acked time.Time) {
	if w.pm == nil && w.p.alertLatency == nil {
		return
	}
	for i := range j.alerts {
		w.pm.alert(&j.alerts[i])
		if i < len(j.alertFrom) && !j.alertFrom[i].IsZero() { // timers' alerts come after the events'
			d := acked.Sub(j.alertFrom[i])
			w.p.metrics.observeEventToAlert(d)
			if w.p.alertLatency != nil {
				arrived := j.alertArrived[i]
				w.p.alertLatency(AlertTiming{Total: d, Fetch: arrived.Sub(j.alertFrom[i]), Queue: j.started.Sub(arrived),
					Batch: j.committed.Sub(j.started), SendWait: taken.Sub(j.committed), Send: acked.Sub(taken)})
			}
		}
	}
	w.p.metrics.observeBatch(acked.Sub(j.started))
}

// groupCommitEvery is how often a worker commits its partition's offsets
// to the consumer group.
const groupCommitEvery = time.Second

// groupOffsets are the latest acknowledged input offsets of the worker's
// partition, per input topic (-1: none yet), and whether they moved since
// the last commit to the consumer group.
type groupOffsets struct {
	applied [2]int64
	moved   bool
}

// add records a batch's offsets (-1: that topic did not move).
func (g *groupOffsets) add(applied [2]int64) {
	for i, o := range applied {
		if o >= 0 {
			g.applied[i], g.moved = o, true
		}
	}
}

// commit commits the recorded offsets, if they moved.
func (g *groupOffsets) commit(w *worker) {
	if !g.moved {
		return
	}
	offs := map[string]map[int]int64{}
	for i, o := range g.applied {
		if o >= 0 {
			offs[w.in[i].name] = map[int]int64{w.part: o}
		}
	}
	if err := w.gen.CommitOffsets(offs); err != nil {
		w.log.Debug().Err(err).Msg("commit consumer group offsets (lag monitoring only)")
	}
	g.moved = false
}

// send produces records (in seq order) and acknowledges them in the state
// store: first the alerts and dead letters, then, once the broker
// acknowledged those, the changelog's records, so the changelog never
// holds state whose alerts were not sent. It returns an error only when the
// worker's flush context ended; then the records stay in the outbox.
func (w *worker) send(out []outRecord) error {
	regular, changelog := w.split(out)
	if err := w.sendAlerts(regular); err != nil {
		return err
	}
	return w.sendChangelog(regular, changelog)
}

// split divides records read back from the outbox (several batches',
// interleaved), keeping their order, into the changelog's and the rest
// (alerts and dead letters). A committed batch's come divided (sendJob).
func (w *worker) split(out []outRecord) (regular, changelog []outRecord) {
	for _, r := range out {
		if r.rec.Topic == w.clTopic {
			changelog = append(changelog, r)
		} else {
			regular = append(regular, r)
		}
	}
	return regular, changelog
}

// sendAlerts produces a batch's alerts and dead letters and returns when
// the broker acknowledged them (their event-to-alert latency ends there).
func (w *worker) sendAlerts(regular []outRecord) error {
	if len(regular) == 0 {
		return nil
	}
	if err := w.prod.write(w.flushCtx, regular); err != nil {
		w.log.Warn().Err(err).Int("records", len(regular)).Msg("outbox not flushed; it is sent on the next assignment")
		return err
	}
	return nil
}

// sendChangelog writes a batch's changelog records, whose alerts and dead
// letters (regular) the broker acknowledged, then deletes all of them from
// the outbox.
func (w *worker) sendChangelog(regular, changelog []outRecord) error {
	if len(changelog) == 0 {
		w.ack(-1, regular, nil)
		return nil
	}
	next, err := w.clw.write(w.flushCtx, changelog)
	if err != nil {
		w.log.Warn().Err(err).Int("records", len(changelog)).Msg("changelog not written; it is sent on the next assignment")
		w.ack(-1, regular, nil)
		return err
	}
	w.ack(next, regular, changelog)
	return nil
}

// ack deletes produced records from the outbox and, if changelogNext is
// not -1, records in the same transaction how far the changelog holds
// this instance's state. A failure is logged: the records are sent again
// on the next assignment (at least once).
func (w *worker) ack(changelogNext int64, regular, changelog []outRecord) {
	seqs := make([]uint64, 0, len(regular)+len(changelog))
	for _, r := range regular {
		seqs = append(seqs, r.seq)
	}
	for _, r := range changelog {
		seqs = append(seqs, r.seq)
	}
	var err error
	if changelogNext >= 0 {
		err = w.ps.AckChangelog(changelogNext, seqs...)
	} else {
		err = w.ps.Ack(seqs...)
	}
	if err != nil {
		w.log.Warn().Err(err).Msg("acknowledge outbox")
		return
	}
	w.pm.outboxDelta(-int64(len(seqs)))
}

// errChunk stops an outbox scan after a chunk.
var errChunk = errors.New("outbox chunk full")

// flushOutbox sends what a previous run committed but did not get
// acknowledged, in seq order, in chunks.
func (w *worker) flushOutbox() error {
	total := 0
	for {
		var recs []outRecord
		err := w.ps.Outbox(w.flushCtx, func(seq uint64, rec state.OutboxRecord) error {
			recs = append(recs, outRecord{seq: seq, rec: rec})
			if len(recs) >= produceChunk {
				return errChunk
			}
			return nil
		})
		if err != nil && !errors.Is(err, errChunk) {
			return err
		}
		if len(recs) == 0 {
			break
		}
		if err := w.send(recs); err != nil {
			return err
		}
		total += len(recs)
		if len(recs) < produceChunk {
			break
		}
	}
	if total > 0 {
		w.log.Info().Int("records", total).Msg("flushed outbox left by a previous run")
	}
	return nil
}
