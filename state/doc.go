// Package state is churnflow's durable per-partition state: member states,
// the timers index, input offsets, the outbox and dedup markers, in one
// Badger database per process, with the working set of member states held
// in memory. It is the only package that imports Badger.
//
// # Keyspace
//
// Every key starts with its kind and the partition in decimal, so that one
// partition's state can be listed, dropped or rebuilt on its own:
//
//	m/<p>/<member>          0xFE, varint(timer entry's due, 0: none), member state
//	                        (operators.MemberState.AppendEncode)
//	t/<p>/<due:8>/<member>  timer entry: member may be due at due (empty value);
//	                        lazy: at or before the member's Due, see Batch
//	o/<p>/<topic>           next input offset of topic (8-byte big-endian)
//	x/<p>/<seq:8>           outbox record not yet acknowledged
//	d/<p>/<event_id>        dedup marker (empty value, Badger TTL = DedupTTL)
//	q/<p>/next              next outbox sequence number
//
// Times and sequence numbers are fixed-width big-endian, so timers sort by
// due time and the outbox by sequence.
//
// # The run loop of a partition worker
//
//	ps := store.Partition(p)
//	offsets, _ := ps.Offsets()               // seek the consumer here
//	ps.Outbox(ctx, produce)                   // flush what a crash left, then Ack
//	for {
//		b := ps.NewBatch()
//		for _, rec := range fetch() {
//			if seen, _ := b.Seen(ev.ID); seen { /* duplicate */ continue }
//			var s operators.MemberState
//			prior, _ := ps.Read(ev.MemberID, &s) // memory first, Badger if cold
//			alerts, _ := engine.Apply(&s, ev, nil)
//			b.PutPrior(ev.MemberID, &s, prior)
//			b.MarkSeen(ev.MemberID, ev.ID)
//			for _, a := range alerts { b.Append(ev.MemberID, record(a)) }
//			b.SetOffset(rec.Topic, rec.Offset+1)
//		}
//		ps.Due(ctx, watermark, 0, collect)      // then Read, Advance, PutPrior, Append
//		                                        // (some may not be due yet: Put them back)
//		b.Commit(ctx)                           // one transaction (see Batch)
//		ps.Outbox(ctx, produce); ps.Ack(acked...)
//	}
//
// # Memory
//
// Options.MemoryBudget is split between Badger's memtables, index cache and
// working memory and the member cache (see memorySplit); set GOMEMLIMIT to
// RecommendedMemoryLimit(budget).
package state
