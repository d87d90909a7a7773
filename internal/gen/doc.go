// Package gen generates a synthetic, reproducible population of loyalty
// programme members and the events they send, for tests, demos, replay and
// benchmarks.
//
// # Model
//
// Each member has hidden parameters drawn once from its own random stream
// (a PCG seeded with Config.Seed and the member's index, so a member's
// behaviour does not depend on the other members):
//
//   - Flight bookings follow BG/NBD (Fader, Hardie and Lee 2005): a Poisson
//     process with rate λ ~ Gamma(R, Alpha), and after each repeat booking
//     the member drops out for good with probability p ~ Beta(A, B). A
//     dropped-out member sends nothing of their own again: no bookings, no
//     app activity, no profile updates. Only the follow-ups of the last
//     booking (its hotel, its cancellation, its points) still arrive.
//   - Tiers follow from the booking rate: a member's typical year of flights
//     (segments and km) against Config.Tiers gives the tier existing members
//     hold at the start and the cabin mix (discount coefficient: premium
//     members fly higher fares). During the span members are promoted
//     (tier_change) when their flights in the qualification period reach the
//     next tier, get an account manager (profile_update) from the middle of
//     the ladder up, and at the start of a period go down one tier if they
//     did not re-qualify (only members still alive are reviewed: the event
//     counts as activity and would hide a dropout).
//   - A flight has an origin (the member's home airport, which gives the
//     region), a destination (domestic, short-haul international or
//     long-haul, by the member's travel mix), great-circle distance, 1, 2 or 4
//     segments (one-way or return, direct or through a hub), a discount, an amount in CNY, trip dates and a trip_id. A
//     share of flights (per member, about 45 % on average) is followed by a
//     hotel booking for the same trip, most within 5 hours, some later than
//     a cross-sell window of 6 hours; 5 % of flights and 4 % of hotels are
//     cancelled before the trip (booking_id names the booking's event_id);
//     the others earn points_earned a day or two after the trip.
//   - App activity (app_open, login, search, and 2 % of a type churnflow
//     does not know) is a Poisson process with a per-member rate, heavier
//     for frequent flyers; most bookings are preceded by a search. Members
//     holding enough points sometimes redeem them. Profile updates (moves)
//     and complaints are rare; member_deleted rarer still (0.3 % a year).
//   - A quarter of the members (NewMemberShare) enrol during the span, at
//     uniformly spread times, half of them with a first booking within
//     three days. The others enrolled up to TenureYears before Start; their
//     enrolment events open the stream, in time order, and whether they are
//     still alive at Start is drawn from the same model (P = exp(−λ·p·age)).
//
// # Streaming
//
// A Stream holds one generator per member (about 270 bytes plus at most
// maxPending decided follow-ups) and a binary heap of the members ordered by
// their next event time (ties by member index). Next pops the earliest
// member, lets it produce one event and re-inserts it: records come in
// non-decreasing time, memory is O(members) whatever the number of events.
//
// Malformed records (Config.BadRate) are drawn from a separate stream and
// inserted before the good event they were made from, so the good events
// are the same whatever the bad rate.
//
// The same Config gives the same bytes on the same platform and Go release
// (the float formulas may round differently where the compiler fuses
// multiply-adds, as on arm64).
//
//	s, err := gen.NewStream(cfg)
//	...
//	var rec gen.Record
//	for s.Next(&rec) {
//		line = rec.AppendJSON(line[:0])  // or rec.Event, rec.Member, rec.Topic
//	}
//
// WriteJSONL writes a whole population as JSON lines.
package gen
