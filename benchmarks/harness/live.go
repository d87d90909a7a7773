package harness

import (
	"time"

	"github.com/churnflow/churnflow/internal/gen"
	"github.com/churnflow/churnflow/operators"
)

// warmEvents is how many live events the latency phase sends ahead of the
// measured ones, unpaced and not measured: enough to move every
// partition's watermark to the live events' time.
const warmEvents = 1000

// liveEvents is how many events the latency phase uses: the warm-up and
// LatencyFor at LatencyRate.
func (c *Config) liveEvents() int { return warmEvents + c.pacedEvents() }

func (c *Config) pacedEvents() int { return int(c.LatencyRate * c.LatencyFor.Seconds()) }

// liveRecords are the latency phase's records, their event times moved to
// run at the wall clock's pace from base.
type liveRecords struct {
	base  int64 // the warm-up's event time, Unix seconds
	warm  []record
	paced []record
}

// restamp makes the latency phase's records from the events that follow
// the preloaded ones. The generator packs days of event time into the
// preloaded events (that is how a few million events reach a million
// members' histories), so at 20,000 events/s the live events would move
// event time on by hours per second of wall time, and every member's
// day-boundary timers would come due again and again. In production event
// time moves at the wall clock's pace. So the first warm events are stamped
// base, and paced event i base + i/rate seconds; the events keep their
// members, ids, kinds and order, and trips move with their bookings.
//
// base is the first live event's time, unless the measured events'
// watermark (occurred_at minus lateness) would cross a midnight: then base
// is just past that midnight's watermark, so that the warm-up, not the
// measured events, carries the day-boundary timers that come due at
// midnight (once a day in production: fix 9 in docs/performance.md keeps
// them from holding up the live events; the latency phase reports how many
// fired and how long they took).
func restamp(events []operators.Event, warm int, rate float64, lateness, dur time.Duration) liveRecords {
	warm = min(warm, len(events))
	lat := int64(lateness / time.Second)
	base := events[0].OccurredAt
	end := base + int64(dur/time.Second) + 60
	if operators.DayOf(base-lat) != operators.DayOf(end-lat) {
		base = int64(operators.DayOf(end-lat))*86400 + lat + 60
	}
	out := liveRecords{base: base, warm: make([]record, 0, warm), paced: make([]record, 0, len(events)-warm)}
	for i := range events {
		e := events[i]
		at := base
		if i >= warm {
			at += int64(float64(i-warm) / rate)
		}
		shift := operators.DayOf(at) - operators.DayOf(e.OccurredAt)
		e.OccurredAt = at
		if e.Is(operators.FieldTripStart) {
			e.TripStart += shift
		}
		if e.Is(operators.FieldTripEnd) {
			e.TripEnd += shift
		}
		r := record{topic: gen.TopicOf(e.Type), key: []byte(e.MemberID), value: e.AppendJSON(nil)}
		if i < warm {
			out.warm = append(out.warm, r)
		} else {
			out.paced = append(out.paced, r)
		}
	}
	return out
}
