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
// Run is not safe to call twice on the same Store at once; separate runs
// with separate stores may run concurrently.
package replay
