// Package pipeline is churnflow's Kafka I/O: the consumer group, partition
// workers, watermarks and timers, the commit protocol, the outbox producer
// and dead letters. docs/pipeline.md describes it at length.
//
// # Model
//
// The input topics (bookings, activity) are co-partitioned: partition p of
// both belongs to one worker, which the consumer group's CoPartitionBalancer
// guarantees. A worker owns partition p's state in the state.Store; Badger,
// not Kafka, holds the truth about how far it has read. Its run loop:
//
//	ps := store.Partition(p)
//	flush ps.Outbox (what a previous run committed but did not send)
//	seek both topics to ps.Offsets() (absent: earliest)
//	for {
//		fetch; merge the two topics by (occurred_at, topic, offset)
//		b := ps.NewBatch()
//		for each record: reject to the dead-letter outbox, or
//			Get the member, Engine.Apply, MarkSeen, outbox its alerts
//		watermark = max occurred_at − Lateness (wall clock − Lateness when idle)
//		ps.Due(watermark) → Get, Engine.Advance, outbox the alerts
//		Put every member touched, SetOffset for both topics
//		b.Commit(ctx)                   // ONE transaction (or split by member)
//		produce the batch's outbox (acks=all), then ps.Ack
//		gen.CommitOffsets               // for lag monitoring only
//	}
//
// State is exactly-once; alerts and dead letters are at-least-once with
// stable ids.
package pipeline
