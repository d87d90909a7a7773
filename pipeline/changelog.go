package pipeline

// The changelog: every committed state change of partition p also goes,
// through the outbox, to partition p of a compacted changelog topic, so an
// instance that is assigned p restores p's state from Kafka instead of
// needing another instance's disk (docs/operations.md, "Scaling out").
//
// Records (key -> value):
//
//	m/<member> -> version, uvarint n, n x (uvarint len, event id, varint expires),
//	              MemberState encoding; nil (tombstone) when the member was deleted
//	o          -> version, uvarint n, n x (uvarint len, input topic, varint next offset)
//	s          -> version: a seed from local state begins (seedChangelog)
//
// A batch writes its changed members, then one "o" record with the input
// offsets the batch reached. The member records carry the event ids the
// batch applied to that member, with their dedup expiry. The argument that
// a restore never runs ahead of the input is the one of state/batch.go's
// split commits, applied to the changelog: the changelog is written in
// order, one produce request after the other, so restoring it to its end
// gives every batch up to the last "o" record in full, plus possibly some
// members of the batch after it. Those members' events are re-read from
// the restored offsets and recognised as duplicates by the markers that
// came with their state, so nothing is applied twice; the other events of
// that batch are applied as if for the first time.
//
// A batch's alerts and dead letters are produced and acknowledged before
// any of its changelog records, so state a restore sees never hides an
// alert that was not sent.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/churnflow/churnflow/operators"
	"github.com/churnflow/churnflow/state"
)

const (
	changelogVersion    = 1
	changelogOffsetsKey = "o"
	// changelogSeedKey opens a seed (seedChangelog); the seed's "o" record
	// closes it. A restore that finds a seed opened and not closed stops.
	changelogSeedKey     = "s"
	changelogMemberStart = "m/"
	// changelogChunkBytes bounds one produce request to the changelog,
	// under the 1 MiB default of message.max.bytes.
	changelogChunkBytes = 512 << 10
	// changelogWriteTimeout bounds one produce request.
	changelogWriteTimeout = 30 * time.Second
	// restoreFetchBytes is the fetch size while restoring.
	restoreFetchBytes = 8 << 20
)

// changelogMark is an event id applied to a member, with its dedup expiry.
type changelogMark struct {
	id      string
	expires int64 // Unix seconds
}

// appendChangelogMember appends a member record's value; enc is the
// member's state encoding (operators.MemberState.AppendEncode).
func appendChangelogMember(dst []byte, marks []changelogMark, enc []byte) []byte {
	dst = append(dst, changelogVersion)
	dst = binary.AppendUvarint(dst, uint64(len(marks)))
	for _, m := range marks {
		dst = binary.AppendUvarint(dst, uint64(len(m.id)))
		dst = append(dst, m.id...)
		dst = binary.AppendVarint(dst, m.expires)
	}
	return append(dst, enc...)
}

// errChangelogCorrupt is wrapped by the decoders' errors.
var errChangelogCorrupt = errors.New("corrupt changelog record")

// changelogReader decodes a record value.
type changelogReader struct {
	b   []byte
	err error
}

func (r *changelogReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad length")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *changelogReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad number")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *changelogReader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail("truncated")
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *changelogReader) version() {
	switch {
	case len(r.b) == 0:
		r.fail("empty value")
	case r.b[0] != changelogVersion:
		r.fail(fmt.Sprintf("version %d (this build reads %d)", r.b[0], changelogVersion))
	default:
		r.b = r.b[1:]
	}
}

func (r *changelogReader) fail(why string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", errChangelogCorrupt, why)
	}
	r.b = nil
}

// decodeChangelogMember splits a member record's value into its marks
// (passed to fn) and its state encoding.
func decodeChangelogMember(v []byte, fn func(id []byte, expires int64)) (enc []byte, err error) {
	r := changelogReader{b: v}
	r.version()
	n := r.uvarint()
	for i := uint64(0); i < n && r.err == nil; i++ {
		id := r.bytes()
		exp := r.varint()
		if r.err == nil {
			fn(id, exp)
		}
	}
	return r.b, r.err
}

// appendChangelogOffsets appends an offsets record's value.
func appendChangelogOffsets(dst []byte, offs map[string]int64) []byte {
	dst = append(dst, changelogVersion)
	dst = binary.AppendUvarint(dst, uint64(len(offs)))
	for topic, next := range offs {
		dst = binary.AppendUvarint(dst, uint64(len(topic)))
		dst = append(dst, topic...)
		dst = binary.AppendVarint(dst, next)
	}
	return dst
}

func decodeChangelogOffsets(v []byte) (map[string]int64, error) {
	r := changelogReader{b: v}
	r.version()
	n := r.uvarint()
	offs := make(map[string]int64, min(n, 16))
	for i := uint64(0); i < n && r.err == nil; i++ {
		topic := r.bytes()
		next := r.varint()
		if r.err == nil {
			offs[string(topic)] = next
		}
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	return offs, r.err
}

// changelogWriter appends a partition's changelog records in order: one
// produce request (acks=all) at a time on its own connection to the
// partition's leader, each acknowledged before the next is sent. That is
// what keeps the changelog in the order the outbox committed it; a shared
// kafka.Writer may retry one batch after a later one went through.
type changelogWriter struct {
	p     *Pipeline
	topic string
	part  int
	conn  *kafka.Conn
}

// write appends recs and returns the changelog's next offset after them.
// It retries (reconnecting, with back-off) until every record is
// acknowledged or ctx ends; a retried request may append records twice,
// which is harmless (the later copy of a key wins and is the same).
func (c *changelogWriter) write(ctx context.Context, recs []outRecord) (int64, error) {
	var next int64 = -1
	backoff := time.Duration(0)
	for len(recs) > 0 {
		n, size, kv := 0, 0, 0
		for n < len(recs) && (n == 0 || size+len(recs[n].rec.Key)+len(recs[n].rec.Value)+64 <= changelogChunkBytes) {
			kv += len(recs[n].rec.Key) + len(recs[n].rec.Value)
			size += len(recs[n].rec.Key) + len(recs[n].rec.Value) + 64
			n++
		}
		msgs := make([]kafka.Message, n)
		for i := range msgs {
			msgs[i] = kafka.Message{Key: recs[i].rec.Key, Value: recs[i].rec.Value}
		}
		base, err := c.send(ctx, msgs)
		if err == nil {
			if backoff != 0 {
				c.p.status.kafkaOK(c.client())
			}
			c.p.metrics.changelogWritten(n, kv)
			next, recs, backoff = base+int64(n), recs[n:], 0
			continue
		}
		c.close()
		if ctx.Err() != nil {
			return -1, ctx.Err()
		}
		c.p.status.kafkaFailed(c.client(), err)
		c.p.metrics.produceError(produceKindChangelog)
		backoff = nextBackoff(backoff)
		c.p.log.Warn().Err(err).Str("topic", c.topic).Int("partition", c.part).Int("pending", len(recs)).
			Dur("retry_in", backoff).Msg("write changelog")
		if !sleep(ctx, backoff) {
			return -1, ctx.Err()
		}
	}
	return next, nil
}

// send writes msgs in one produce request and returns the first's offset.
func (c *changelogWriter) send(ctx context.Context, msgs []kafka.Message) (int64, error) {
	if c.conn == nil {
		conn, err := c.p.dialLeader(ctx, c.topic, c.part)
		if err != nil {
			return 0, err
		}
		c.conn = conn
	}
	if err := c.conn.SetWriteDeadline(time.Now().Add(changelogWriteTimeout)); err != nil {
		return 0, err
	}
	_, _, base, _, err := c.conn.WriteCompressedMessagesAt(nil, msgs...)
	if err != nil {
		return 0, fmt.Errorf("produce to changelog %s/%d: %w", c.topic, c.part, err)
	}
	return base, nil
}

// endOffset returns the changelog partition's high-water mark (the offset
// the next record will get), retrying until ctx ends.
func (c *changelogWriter) endOffset(ctx context.Context) (int64, error) {
	backoff := time.Duration(0)
	for {
		var err error
		if c.conn == nil {
			var conn *kafka.Conn
			if conn, err = c.p.dialLeader(ctx, c.topic, c.part); err == nil {
				c.conn = conn
			} else if ctx.Err() != nil {
				return 0, ctx.Err()
			}
		}
		if c.conn != nil {
			c.conn.SetDeadline(time.Now().Add(changelogWriteTimeout))
			var end int64
			if end, err = c.conn.ReadLastOffset(); err == nil {
				if backoff != 0 {
					c.p.status.kafkaOK(c.client())
				}
				return end, nil
			}
			c.close()
		}
		c.p.status.kafkaFailed(c.client(), err)
		backoff = nextBackoff(backoff)
		c.p.log.Warn().Err(err).Str("topic", c.topic).Int("partition", c.part).Dur("retry_in", backoff).
			Msg("read changelog end offset")
		if !sleep(ctx, backoff) {
			return 0, ctx.Err()
		}
	}
}

// client names the writer in Status.KafkaErrors.
func (c *changelogWriter) client() string { return "changelog " + strconv.Itoa(c.part) }

// stop closes the connection and clears the writer's failure, if any.
func (c *changelogWriter) stop() {
	c.close()
	c.p.status.kafkaOK(c.client())
}

func (c *changelogWriter) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// dialLeader connects to the leader of topic's partition through the
// first bootstrap broker that answers.
func (p *Pipeline) dialLeader(ctx context.Context, topic string, part int) (*kafka.Conn, error) {
	var errs []error
	for _, b := range p.cfg.Brokers {
		// kafka-go's leader lookup retries a missing partition until its
		// context ends: bound it so the caller logs and retries.
		dctx, cancel := context.WithTimeout(ctx, changelogWriteTimeout)
		conn, err := p.dialer.DialLeader(dctx, "tcp", b, topic, part)
		cancel()
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("connect to the leader of %s/%d: %w", topic, part, errors.Join(errs...))
}

// restoreStats describes a restore, for the log.
type restoreStats struct {
	records, members, markers, bytes int64
	took                             time.Duration
}

// restore replaces the partition's local state with the changelog's, read
// from its start up to end (its high-water mark when the worker started;
// nothing else writes it meanwhile: this worker owns the partition). It
// returns the changelog position the restored state stands at (end).
func (w *worker) restore(ctx context.Context, end int64) (restoreStats, error) {
	t0 := time.Now()
	var st restoreStats
	ld, err := w.ps.NewLoader(ctx)
	if err != nil {
		return st, err
	}
	defer ld.Abort()
	ch := make(chan fetchResult, 2)
	fctx, fcancel := context.WithCancel(ctx)
	f := &fetcher{topic: w.clTopic, partition: w.part, start: -1, brokers: w.p.cfg.Brokers,
		dialer: w.p.dialer, log: w.log, ch: ch, maxBytes: restoreFetchBytes}
	done := make(chan struct{})
	go func() { defer close(done); f.run(fctx) }()
	defer func() {
		fcancel()
		for range ch {
		}
		<-done
	}()

	var rs restoreState
	next := int64(0)
	lastLog := time.Now()
	for next < end {
		var r fetchResult
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case r = <-ch:
		}
		for i := range r.msgs {
			m := &r.msgs[i]
			if m.Offset >= end {
				break
			}
			st.records++
			st.bytes += int64(len(m.Key) + len(m.Value))
			if err := w.restoreRecord(ld, m, &rs); err != nil {
				return st, fmt.Errorf("restore from changelog %s/%d, offset %d: %w", w.clTopic, w.part, m.Offset, err)
			}
		}
		next = max(next, r.next)
		if len(r.msgs) == 0 && r.hwm >= end {
			break // nothing left below end (the tail was compacted away)
		}
		if time.Since(lastLog) >= 5*time.Second {
			lastLog = time.Now()
			w.log.Info().Int64("offset", next).Int64("end", end).Int64("records", st.records).
				Msg("restoring partition state from the changelog")
		}
	}
	offsets, err := rs.result()
	if err != nil {
		return st, fmt.Errorf("changelog %s/%d: %w", w.clTopic, w.part, err)
	}
	st.members, st.markers, err = ld.Finish(ctx, offsets, end)
	st.took = time.Since(t0)
	return st, err
}

// restoreState is what a restore learns from the records besides states.
type restoreState struct {
	offsets  map[string]int64 // of the last offsets record; nil: none yet
	seedOpen bool             // a seed record came after the last offsets record
}

// errSeedInterrupted means the changelog ends in an unfinished seed.
var errSeedInterrupted = errors.New("it ends in a seed from a local state directory that was interrupted: run the instance that holds that directory again so it seeds the changelog anew, or delete the changelog to rebuild from the input topics")

// result returns the input offsets the restored state reflects.
func (rs *restoreState) result() (map[string]int64, error) {
	switch {
	case rs.seedOpen:
		// A seed's states carry no dedup markers: without its offsets
		// record they cannot say which input they reflect.
		return nil, errSeedInterrupted
	case rs.offsets == nil:
		// The first batch's members without its offsets record (its
		// writer died between two produce requests): the input is read
		// from the start, and those members' events are recognised by
		// the dedup markers that came with them.
		return map[string]int64{}, nil
	}
	return rs.offsets, nil
}

// restoreRecord loads one changelog record.
func (w *worker) restoreRecord(ld *state.Loader, m *kafka.Message, rs *restoreState) error {
	key := string(m.Key)
	switch key {
	case changelogOffsetsKey:
		offs, err := decodeChangelogOffsets(m.Value)
		if err != nil {
			return err
		}
		rs.offsets, rs.seedOpen = offs, false
		return nil
	case changelogSeedKey:
		rs.seedOpen = true
		return nil
	}
	id, ok := strings.CutPrefix(key, changelogMemberStart)
	if !ok || id == "" {
		return fmt.Errorf("%w: unknown key %q", errChangelogCorrupt, key)
	}
	if len(m.Value) == 0 { // a tombstone: kafka-go reads a null value as empty
		return ld.Member(operators.MemberID(id), nil)
	}
	var merr error
	enc, err := decodeChangelogMember(m.Value, func(ev []byte, exp int64) {
		if merr == nil {
			merr = ld.Marker(string(ev), time.Unix(exp, 0))
		}
	})
	if err != nil {
		return err
	}
	if merr != nil {
		return merr
	}
	return ld.Member(operators.MemberID(id), enc)
}

// seedChangelog writes the partition's whole local state to an empty
// changelog: for a state directory from before the changelog existed, or
// a changelog topic that was deleted and created again. It returns the
// changelog position after it.
func (w *worker) seedChangelog(ctx context.Context, offs map[string]int64) (int64, error) {
	recs := []outRecord{{rec: state.OutboxRecord{Key: []byte(changelogSeedKey), Value: []byte{changelogVersion}}}}
	next := int64(0)
	size := 0
	flush := func() error {
		if len(recs) == 0 {
			return nil
		}
		n, err := w.clw.write(ctx, recs)
		if err != nil {
			return err
		}
		next, recs, size = n, recs[:0], 0
		return nil
	}
	err := w.ps.Range(ctx, func(id operators.MemberID, s *operators.MemberState) error {
		rec := state.OutboxRecord{Key: []byte(changelogMemberStart + string(id)), Value: appendChangelogMember(nil, nil, s.AppendEncode(nil))}
		recs = append(recs, outRecord{rec: rec})
		if size += len(rec.Key) + len(rec.Value); size >= 4*changelogChunkBytes {
			return flush()
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	inputs := map[string]int64{}
	for _, t := range w.p.cfg.Topics.Inputs() {
		if o, ok := offs[t]; ok {
			inputs[t] = o
		}
	}
	recs = append(recs, outRecord{rec: state.OutboxRecord{Key: []byte(changelogOffsetsKey), Value: appendChangelogOffsets(nil, inputs)}})
	if err := flush(); err != nil {
		return 0, err
	}
	return next, nil
}

// syncChangelog makes the partition's local state the changelog's before
// the worker processes anything:
//
//   - the local state is at the changelog's end (this instance wrote it
//     last): keep it; its outbox holds what the changelog still lacks;
//   - the changelog is empty but the local state is not: seed the
//     changelog with it;
//   - otherwise (no local state, or an older or newer copy: another
//     instance wrote since, or this one crashed between writing the
//     changelog and recording how far): restore from the changelog,
//     dropping the local state and its outbox (what that outbox held was
//     never part of the changelog, so the restored state is from before
//     it, and its input is processed again).
//
// The restore stops when ctx (the partition's assignment) ends, so that a
// long restore does not hold up a rebalance; what it loaded has no offsets
// and is loaded again next time. Seeding runs under flushCtx: it goes on
// for the shutdown grace, as a flush does.
func (w *worker) syncChangelog(ctx, flushCtx context.Context) error {
	offs, err := w.ps.Offsets()
	if err != nil {
		return err
	}
	end, err := w.clw.endOffset(ctx)
	if err != nil {
		return err
	}
	pos, known, err := w.ps.ChangelogOffset()
	if err != nil {
		return err
	}
	local := len(offs) > 0 || known
	switch {
	case known && pos == end:
		w.log.Info().Int64("changelog_offset", end).Msg("local state is current with the changelog")
		return nil
	case end == 0 && local:
		w.log.Warn().Int64("recorded_offset", pos).Msg("changelog is empty: seeding it from the local state")
		next, err := w.seedChangelog(flushCtx, offs)
		if err != nil {
			return fmt.Errorf("seed changelog: %w", err)
		}
		return w.ps.SetChangelogOffset(next)
	case end == 0:
		return nil // a new partition
	}
	w.p.status.setRestoring(w.part, true)
	defer w.p.status.setRestoring(w.part, false)
	w.p.metrics.restoringDelta(1)
	defer w.p.metrics.restoringDelta(-1)
	w.log.Info().Int64("changelog_end", end).Bool("had_local_state", local).Int64("local_changelog_offset", pos).
		Msg("restoring partition state from the changelog")
	st, err := w.restore(ctx, end)
	if err != nil {
		return err
	}
	w.p.metrics.restored(st.records, st.took)
	w.log.Info().Int64("records", st.records).Int64("members", st.members).Int64("dedup_markers", st.markers).
		Int64("bytes", st.bytes).Dur("took", st.took).Msg("restored partition state from the changelog")
	return nil
}
