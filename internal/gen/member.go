package gen

import (
	"math"
	"time"

	"github.com/churnflow/churnflow/operators"
)

// never is the time of a process that will not fire again.
const never = math.MaxInt64

// Behaviour constants of the population model. They are not configuration:
// Config holds what a benchmark or a test needs to vary.
const (
	hotelDelayMin        = 10 * 60  // a hotel follows its flight after 10 min ...
	hotelDelayMax        = 5 * 3600 // ... to 5 h,
	lateHotelShare       = 0.15     // or, for this share, 6 h to 3 days later
	cancelShare          = 0.05     // share of bookings cancelled later
	hotelCancelShare     = 0.04     // share of hotel bookings cancelled later
	preSearchShare       = 0.6      // share of bookings preceded by a search
	redeemChance         = 0.12     // chance an activity is a redemption, given enough points
	rewardPoints         = 10000    // points one reward costs
	profileRatePerYear   = 0.25     // profile updates of an alive member
	complaintRatePerYear = 0.05     // complaints of an alive member
	deleteRatePerYear    = 0.003    // erasure requests, alive or not
	unknownTypeShare     = 0.02     // share of activity with a type churnflow does not know
	unknownTypeName      = "newsletter_click"
	managers             = 142 // account managers (the seeds' sales offices)
	maxPending           = 16  // follow-up events one member holds at most
	secondsPerDay        = 86400
	secondsPerYear       = 365.25 * secondsPerDay
)

// Kinds of pending (already decided, future) events.
const (
	pendSearch uint8 = iota
	pendHotel
	pendCancel
	pendPoints
	pendTier
	pendManager
)

// pending is a follow-up event a member has already decided on: a hotel
// after a flight, a cancellation, the points of a flown trip, a promotion.
type pending struct {
	at    int64
	val   int64  // points (pendPoints), km (pendCancel), target tier (pendTier)
	seq   uint32 // the booking or trip the event refers to
	start int32  // trip dates (pendHotel); period of the booking (pendCancel)
	end   int32
	kind  uint8
	dest  uint8 // airport index (pendHotel)
	segs  uint8 // flight segments (pendCancel); 1 for a hotel cancellation
}

// member is one member's generator: its hidden BG/NBD parameters, the next
// time of each of its processes and the few follow-ups it has decided on.
// Its size does not grow with the events it produced.
type member struct {
	r    rng
	id   operators.MemberID
	next int64 // earliest of the times below (never when done)

	joined  int64 // enrolment time
	dropped int64 // time of the booking after which the member dropped out, 0 if none in the span

	enrolAt, buyAt, actAt, profileAt, complaintAt, reviewAt, deleteAt int64

	lambda  float64 // bookings per second while alive
	act     float64 // activity events per second while alive
	p       float64 // dropout probability after each repeat booking
	cabin   float64 // mean discount coefficient
	hotelP  float64 // share of flights followed by a hotel
	longP   float64 // share of long-haul trips
	regP    float64 // share of short-haul international trips
	points  int64
	qualKm  float64 // qualifying km in period qualPer
	prevKm  float64 // ... and in the period before it
	qualSeg int32
	prevSeg int32
	qualPer int32 // period (its start year) of qualKm and qualSeg

	seq      uint32 // per-member event counter: event ids are unique
	buys     uint32 // bookings so far, including those before the span
	manager  uint16 // account manager number, 0 if none
	tier     uint8
	home     uint8 // home airport
	channel  uint8 // preferred booking channel
	alive    bool
	existing bool // enrolled before the span
	deleted  bool
	tierSet  bool // a promotion is pending

	pend []pending // ascending by at
}

// earliest returns the time of the member's next event.
func (m *member) earliest() int64 {
	t := min(m.enrolAt, m.buyAt, m.actAt, m.profileAt, m.complaintAt, m.reviewAt, m.deleteAt)
	if len(m.pend) > 0 && m.pend[0].at < t {
		t = m.pend[0].at
	}
	return t
}

// addPending inserts a follow-up in time order; it reports false (and drops
// it) when the member already holds maxPending follow-ups or the event would
// fall after the span.
func (m *member) addPending(p pending, end int64) bool {
	if len(m.pend) >= maxPending || p.at >= end {
		return false
	}
	i := len(m.pend)
	for i > 0 && m.pend[i-1].at > p.at {
		i--
	}
	m.pend = append(m.pend, pending{})
	copy(m.pend[i+1:], m.pend[i:])
	m.pend[i] = p
	return true
}

// popPending removes the first follow-up, releasing the slice when empty so
// that idle members hold no follow-up storage.
func (m *member) popPending() pending {
	p := m.pend[0]
	copy(m.pend, m.pend[1:])
	m.pend = m.pend[:len(m.pend)-1]
	if len(m.pend) == 0 {
		m.pend = nil
	}
	return p
}

// stop ends every process that needs the member alive.
func (m *member) stop() {
	m.alive = false
	m.buyAt, m.actAt, m.profileAt, m.complaintAt, m.reviewAt = never, never, never, never, never
}

// after returns t plus an exponential delay with the given rate per second
// (never for a zero rate).
func (m *member) after(t int64, rate float64) int64 {
	if rate <= 0 {
		return never
	}
	d := m.r.exp() / rate
	if d > 1e11 {
		return never
	}
	return t + 1 + int64(d)
}

// periodOf returns the qualification period (the year it starts in) of a
// Unix time.
func periodOf(t int64, startMonth int) int32 {
	y, mo, _ := time.Unix(t, 0).UTC().Date()
	if int(mo) < startMonth {
		y--
	}
	return int32(y)
}

// periodStart returns the first instant of a qualification period.
func periodStart(p int32, startMonth int) int64 {
	return time.Date(int(p), time.Month(startMonth), 1, 0, 0, 0, 0, time.UTC).Unix()
}

// tierFor returns the highest tier whose qualification km OR segments are
// reached.
func tierFor(tiers []operators.TierConfig, km float64, segs int64) uint8 {
	best := 0
	for i := 1; i < len(tiers); i++ {
		t := &tiers[i]
		if (t.QualifyKm > 0 && km >= t.QualifyKm) || (t.QualifySegments > 0 && segs >= t.QualifySegments) {
			best = i
		}
	}
	return uint8(best)
}
