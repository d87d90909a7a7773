// Package demo runs churnflow's one-command demo: an embedded Kafka-protocol
// broker (internal/devbroker), the real pipeline in-process talking to it
// over TCP, a synthetic population (internal/gen) produced into the input
// topics in compressed time, and a subscriber that reads the alert and
// dead-letter topics back and prints them for people, with a periodic
// summary.
//
// # Time
//
// The demo runs a simulated clock at Config.Speed simulated seconds per
// wall second, starting at Config.Now. The generator's span starts
// Config.HistoryDays before that: the history is produced as fast as the
// broker takes it (the back-fill), and every later record is produced when
// the simulated clock reaches its time (the live part).
//
// The pipeline's clock (pipeline.Deps.Clock) is the simulated clock, except
// during the back-fill (until the generator first catches up with the
// simulated clock, and a second after): there it is the generator's
// frontier (every record before it has been produced and acknowledged) as
// it was a second of wall time earlier. A partition counts as idle after
// half a second of wall time without records (pipeline.Config.IdleAfter,
// in simulated time). An idle, caught-up partition's watermark follows the
// pipeline's clock; were it the simulated clock during the back-fill, a
// partition that caught up with the producer for a moment would fire the
// timers of the whole history before the history's later records arrived
// (spurious dormancy alerts). The second of lag covers records produced but
// not yet fetched. Because that clock trails the records during the
// back-fill, the demo widens the pipeline's future-timestamp check
// (pipeline.Config.MaxFuture) to the whole span; the generator makes no
// future timestamps.
//
// # Run loop
//
//	broker := devbroker.Start(...)        // 127.0.0.1:0, topics created
//	store  := state.Open(tempdir)
//	go pipeline.New(cfg, deps).Run(ctx)   // consumer group over TCP
//	go producer.run(genCtx)               // gen.Stream -> kafka.Writer, paced
//	go subscriber.run(subCtx)             // kafka.Reader group on the alert topics
//	every SummaryEvery: summary           // offsets, counters, state Range
//	at the end: stop the generator, stop the pipeline (it finishes its batch
//	and flushes its outbox), read the alerts up to the topics' ends, print
//	the final summary, close the store and the broker, remove the tempdir.
package demo
