// Package replay runs the churn rules over a file of events, in event-time
// order, with no Kafka: the batch twin of the streaming pipeline, for
// back-testing rules on historical exports and for benchmarks.
//
// The input is JSONL (one event per line, optionally gzip-compressed,
// detected by its magic bytes) or CSV with a column mapping (CSVMapping).
// Every record goes through the same operators.Decoder as a Kafka message,
// so validation is identical; a record that fails goes to the rejects
// writer with its line number and reason and the run goes on.
//
// Valid events are sorted by (occurred_at, input position) with an external
// merge sort bounded by Config.SortMemory, then applied in batches:
//
//	for each batch of events in time order:
//		for each event e:
//			s := store.Get(e.member)
//			alerts += engine.Apply(s, e)
//			store.Put(s), or store.Delete if s.IsNew()
//		watermark := time of the batch's last event
//		for each member due strictly before the watermark (store.DueBefore):
//			alerts += engine.Advance(s, member, watermark)
//			store.Put(s), or store.Delete if s.IsNew()
//	fire the timers due at or before Config.Until (default: the last event)
//
// Because the engine evaluates a member at the same instants whether an
// event or a timer triggers it, the alerts do not depend on the batch size
// (the tests check this). Alerts are written as JSONL with emitted_at set to
// triggered_at, so a replay's output is reproducible byte for byte.
//
// # Resuming
//
// With a BadgerStore (member states in a state.Store partition), each
// batch ends with one commit holding the batch's member states, its alerts
// (in the store's outbox) and a Checkpoint: the number of sorted events
// applied, the input's size and CRC-32 and a fingerprint of the settings.
// The alerts are written out after the commit, then acknowledged. A run on
// a store that holds a Checkpoint writes out what the outbox holds (at
// least once: an alert may be written twice across the two runs, never
// lost), re-reads and re-sorts the input (the sort is deterministic), skips
// the events applied and carries on. A commit that the store had to split
// over several transactions is recognised by per-member batch markers
// (state.Batch.MarkSeen), so no event is applied twice.
//
// Run is not safe to call twice on the same Store at once; separate runs
// with separate stores may run concurrently.
package replay
