package gen

import (
	"math"
	"strconv"

	"github.com/churnflow/churnflow/operators"
)

const (
	prefixBooking = "bk-"
	prefixCancel  = "cx-"
	prefixEvent   = "ev-"
)

// newEvent starts an event of member m at t with the member's next event id
// ("<prefix><member>-<n>": unique, and stable for a given seed).
func (s *Stream) newEvent(m *member, e *operators.Event, prefix string, typ operators.EventType, name string, t int64) {
	m.seq++
	*e = operators.Event{
		ID:         s.eventID(prefix, m, m.seq),
		Type:       typ,
		TypeName:   name,
		MemberID:   m.id,
		OccurredAt: t,
	}
}

func (s *Stream) eventID(prefix string, m *member, seq uint32) string {
	b := append(s.idBuf[:0], prefix...)
	b = append(b, m.id...)
	b = append(b, '-')
	b = strconv.AppendUint(b, uint64(seq), 10)
	s.idBuf = b
	return string(b)
}

func tripID(m *member, seq uint32) string {
	return "tr-" + string(m.id) + "-" + strconv.FormatUint(uint64(seq), 10)
}

// step produces member m's next event into rec and advances the process
// that made it. It reports false when the step emitted nothing (a tier
// review that kept the tier, a follow-up that no longer applies).
func (s *Stream) step(m *member, rec *Record) bool {
	e := &rec.Event
	t := m.next
	switch {
	case t == m.enrolAt:
		m.enrolAt = never
		s.enrol(m, e, t)
	case len(m.pend) > 0 && m.pend[0].at == t:
		return s.followUp(m, e, m.popPending())
	case t == m.deleteAt:
		s.newEvent(m, e, prefixEvent, operators.TypeMemberDeleted, "member_deleted", t)
		m.stop()
		m.deleted, m.deleteAt, m.pend = true, never, nil
		s.stats.Deleted++
	case t == m.buyAt:
		s.book(m, e, t)
	case t == m.reviewAt:
		return s.review(m, e, t)
	case t == m.profileAt:
		m.profileAt = m.after(t, profileRatePerYear/secondsPerYear)
		if m.r.chance(0.3) { // moved house
			m.home = uint8(netw.byKind[domestic][m.r.pick(s.cumHome)])
		}
		s.profile(m, e, t)
	case t == m.complaintAt:
		m.complaintAt = m.after(t, complaintRatePerYear/secondsPerYear)
		s.newEvent(m, e, prefixEvent, operators.TypeComplaint, "complaint", t)
	case t == m.actAt:
		m.actAt = m.after(t, m.act)
		s.activity(m, e, t)
	default:
		panic("gen: member has no event at its next time")
	}
	return true
}

func (s *Stream) enrol(m *member, e *operators.Event, t int64) {
	s.newEvent(m, e, prefixEvent, operators.TypeEnrolment, "enrolment", t)
	e.Tier, e.Region = s.cfg.Tiers[m.tier].Name, netw.regions[netw.regionOf[m.home]]
	e.Channel = channels[m.channel]
	e.Has |= operators.FieldTier | operators.FieldRegion | operators.FieldChannel
	if m.manager != 0 {
		e.AccountManager = managerName(m.manager)
		e.Has |= operators.FieldAccountManager
	}
	if !m.alive {
		return // an existing member who dropped out before the span
	}
	from := max(t, s.start)
	if !m.existing {
		s.stats.Enrolled++
		if m.r.chance(0.5) { // enrolled while booking a first flight
			m.buyAt = t + 300 + int64(m.r.float()*3*secondsPerDay)
		} else {
			m.buyAt = m.after(t, m.lambda)
		}
		m.actAt = t + 60 + int64(m.r.float()*2*3600) // first app session
	} else {
		m.buyAt = m.after(from, m.lambda)
		m.actAt = m.after(from, m.act)
	}
	m.preSearch(from, s.end)
	m.profileAt = m.after(from, profileRatePerYear/secondsPerYear)
	m.complaintAt = m.after(from, complaintRatePerYear/secondsPerYear)
	m.reviewAt = s.nextReview(m, from)
}

// preSearch schedules a search shortly before the next booking.
func (m *member) preSearch(now, end int64) {
	if m.buyAt == never || m.act == 0 || !m.r.chance(preSearchShare) {
		return
	}
	at := m.buyAt - 600 - int64(m.r.float()*2*secondsPerDay)
	if at > now {
		m.addPending(pending{at: at, kind: pendSearch}, end)
	}
}

func (s *Stream) nextReview(m *member, t int64) int64 {
	sm := s.cfg.QualificationStartMonth
	return periodStart(periodOf(t, sm)+1, sm) + int64(m.r.float()*3*secondsPerDay)
}

func managerName(n uint16) string { return "A-" + strconv.Itoa(int(n)) }

func (s *Stream) profile(m *member, e *operators.Event, t int64) {
	s.newEvent(m, e, prefixEvent, operators.TypeProfileUpdate, "profile_update", t)
	e.Region = netw.regions[netw.regionOf[m.home]]
	e.Has |= operators.FieldRegion
	if m.manager != 0 {
		e.AccountManager = managerName(m.manager)
		e.Has |= operators.FieldAccountManager
	}
}

// activity is an app event: app_open, login or search, a redemption when
// the member holds enough points, and now and then a type churnflow does
// not know.
func (s *Stream) activity(m *member, e *operators.Event, t int64) {
	r := &m.r
	if m.points >= rewardPoints && r.chance(redeemChance) {
		n := int64(1+r.intn(int(min(3, m.points/rewardPoints)))) * rewardPoints
		m.points -= n
		s.newEvent(m, e, prefixEvent, operators.TypeRedemption, "redemption", t)
		e.Points, e.PointsBalance = n, m.points
		e.Has |= operators.FieldPoints | operators.FieldPointsBalance
		return
	}
	u := r.float()
	switch {
	case u < unknownTypeShare:
		s.newEvent(m, e, prefixEvent, operators.TypeOther, unknownTypeName, t)
	case u < 0.45:
		s.newEvent(m, e, prefixEvent, operators.TypeAppOpen, "app_open", t)
	case u < 0.72:
		s.newEvent(m, e, prefixEvent, operators.TypeLogin, "login", t)
	default:
		s.search(m, e, t)
	}
}

func (s *Stream) search(m *member, e *operators.Event, t int64) {
	s.newEvent(m, e, prefixEvent, operators.TypeSearch, "search", t)
	e.Channel = "app"
	e.Has |= operators.FieldChannel
}

// book makes a flight booking, decides its follow-ups (hotel, cancellation,
// points, promotion) and, after a repeat booking, whether the member drops
// out for good (BG/NBD).
func (s *Stream) book(m *member, e *operators.Event, t int64) {
	r := &m.r
	s.newEvent(m, e, prefixBooking, operators.TypeBooking, "booking", t)
	seq := m.seq
	m.buys++

	// Where to: domestic, short-haul international or long-haul.
	kind := domestic
	if u := r.float(); u < m.longP {
		kind = longHaul
	} else if u < m.longP+m.regP {
		kind = regional
	}
	dest := int(m.home)
	for dest == int(m.home) {
		dest = netw.byKind[kind][r.pick(netw.cumKind[kind])]
	}
	roundTrip := r.chance(0.7)
	connect := r.chance([...]float64{0.12, 0.25, 0.45}[kind])
	if kind == longHaul && !netw.hubs[m.home] {
		connect = true
	}
	legs := 1
	if connect {
		legs = 2
	}
	km := float64(netw.km[m.home][dest])
	if connect {
		km *= 1.12 // the detour through the hub
	}
	if roundTrip {
		legs *= 2
		km *= 2
	}
	km = math.Round(km)
	lead := 1 + int32(min(300, 21*r.exp()))
	today := int32(t / secondsPerDay)
	start := today + lead
	end := start
	if roundTrip {
		end = start + 1 + int32(min(30, 5*r.exp()))
	}
	disc := math.Round(min(1.5, max(0.3, m.cabin+0.12*r.norm()))*100) / 100
	amount := math.Round(max(300, km*0.55*disc*(0.8+0.4*r.float()))*100) / 100

	e.Amount, e.Currency = amount, "CNY"
	e.DistanceKm, e.Segments, e.Discount = km, int64(legs), disc
	e.Product, e.ProductName = operators.ProductFlight, "flight"
	e.Channel = channels[m.channel]
	if r.chance(0.2) {
		e.Channel = channels[r.pick(channelCum)]
	}
	e.Origin, e.Destination = airports[m.home].code, airports[dest].code
	e.TripStart, e.TripEnd = start, end
	e.TripID = tripID(m, seq)
	e.Has |= operators.FieldAmount | operators.FieldCurrency | operators.FieldDistance | operators.FieldSegments |
		operators.FieldDiscount | operators.FieldProduct | operators.FieldChannel | operators.FieldOrigin |
		operators.FieldDestination | operators.FieldTripStart | operators.FieldTripEnd | operators.FieldTripID

	// Qualification in the booking's period.
	sm := s.cfg.QualificationStartMonth
	per := periodOf(t, sm)
	if per != m.qualPer {
		if per == m.qualPer+1 {
			m.prevKm, m.prevSeg = m.qualKm, m.qualSeg
		} else {
			m.prevKm, m.prevSeg = 0, 0
		}
		m.qualPer, m.qualKm, m.qualSeg = per, 0, 0
	}
	m.qualKm += km
	m.qualSeg += int32(legs)
	if q := tierFor(s.cfg.Tiers, m.qualKm, int64(m.qualSeg)); q > m.tier && !m.tierSet {
		if m.addPending(pending{at: t + 1800 + int64(r.float()*86400), kind: pendTier, val: int64(q)}, s.end) {
			m.tierSet = true
		}
	}

	// Follow-ups: a hotel for the trip, or a cancellation, and the points
	// once the trip is flown.
	hotelP := m.hotelP
	if kind == longHaul {
		hotelP = min(1, hotelP*1.4)
	}
	if r.chance(hotelP) {
		d := hotelDelayMin + int64(r.float()*(hotelDelayMax-hotelDelayMin))
		if r.chance(lateHotelShare) {
			d = 6*3600 + int64(r.float()*66*3600)
		}
		hEnd := end
		if hEnd == start {
			hEnd = start + 1 + int32(r.intn(6))
		}
		m.addPending(pending{at: t + d, kind: pendHotel, seq: seq, start: start, end: hEnd, dest: uint8(dest)}, s.end)
	}
	leadSec := int64(start)*secondsPerDay - t
	if r.chance(cancelShare) && leadSec > 7200 {
		at := t + 3600 + int64(r.float()*float64(min(leadSec-3600, 20*secondsPerDay)))
		m.addPending(pending{at: at, kind: pendCancel, seq: seq, val: int64(km), segs: uint8(legs), start: per}, s.end)
	} else {
		mult := 1 + 0.25*float64(m.tier)
		if disc >= 1 {
			mult *= 1.5
		}
		at := int64(end+1)*secondsPerDay + int64(r.float()*2*secondsPerDay)
		m.addPending(pending{at: at, kind: pendPoints, seq: seq, val: int64(km * mult)}, s.end)
	}

	// BG/NBD: after a repeat purchase the member drops out with
	// probability p and never comes back; MBG/NBD: after the first one too.
	if (m.buys > 1 || s.cfg.Purchases.Modified) && r.chance(m.p) {
		m.stop()
		m.dropped = t
		s.stats.DroppedOut++
		return
	}
	m.buyAt = m.after(t, m.lambda)
	m.preSearch(t, s.end)
}

// followUp emits a decided follow-up event.
func (s *Stream) followUp(m *member, e *operators.Event, p pending) bool {
	t := p.at
	switch p.kind {
	case pendSearch:
		if !m.alive {
			return false
		}
		s.search(m, e, t)
	case pendHotel:
		s.newEvent(m, e, prefixBooking, operators.TypeBooking, "booking", t)
		nights := float64(p.end - p.start)
		rate := (300 + 220*float64(m.tier)) * math.Exp(0.3*m.r.norm())
		e.Amount, e.Currency = math.Round(nights*rate*100)/100, "CNY"
		e.Product, e.ProductName = operators.ProductHotel, "hotel"
		e.Channel = channels[m.channel]
		e.Destination = airports[p.dest].code
		e.TripStart, e.TripEnd = p.start, p.end
		e.TripID = tripID(m, p.seq)
		e.Has |= operators.FieldAmount | operators.FieldCurrency | operators.FieldProduct | operators.FieldChannel |
			operators.FieldDestination | operators.FieldTripStart | operators.FieldTripEnd | operators.FieldTripID
		if m.r.chance(hotelCancelShare) {
			lead := int64(p.start)*secondsPerDay - t
			if lead > 7200 {
				at := t + 3600 + int64(m.r.float()*float64(min(lead-3600, 20*secondsPerDay)))
				m.addPending(pending{at: at, kind: pendCancel, seq: m.seq, segs: 0}, s.end)
			}
		}
	case pendCancel:
		s.newEvent(m, e, prefixCancel, operators.TypeCancellation, "cancellation", t)
		e.BookingID = s.eventID(prefixBooking, m, p.seq)
		e.Has |= operators.FieldBookingID
		s.stats.Cancelled++
		if p.segs > 0 && p.start == m.qualPer { // a flight: no longer qualifies
			m.qualKm = max(0, m.qualKm-float64(p.val))
			m.qualSeg = max(0, m.qualSeg-int32(p.segs))
		}
	case pendPoints:
		m.points += p.val
		s.newEvent(m, e, prefixEvent, operators.TypePointsEarned, "points_earned", t)
		e.Points, e.PointsBalance = p.val, m.points
		e.Has |= operators.FieldPoints | operators.FieldPointsBalance
	case pendTier:
		m.tierSet = false
		if uint8(p.val) <= m.tier {
			return false
		}
		m.tier = uint8(p.val)
		s.tierChange(m, e, t)
		s.stats.Promotions++
		if m.tier >= s.mgrTier && m.manager == 0 && m.alive {
			m.manager = uint16(1 + m.r.intn(managers))
			m.addPending(pending{at: t + secondsPerDay + int64(m.r.float()*13*secondsPerDay), kind: pendManager}, s.end)
		}
	case pendManager:
		s.profile(m, e, t)
	}
	return true
}

func (s *Stream) tierChange(m *member, e *operators.Event, t int64) {
	s.newEvent(m, e, prefixEvent, operators.TypeTierChange, "tier_change", t)
	e.Tier = s.cfg.Tiers[m.tier].Name
	e.Has |= operators.FieldTier
}

// review is the tier review at the start of a qualification period: a
// member who did not re-qualify for the tier held goes down one tier (or
// to the tier earned). Only alive members are reviewed: the event would
// count as activity and hide a dropout from the churn rules.
func (s *Stream) review(m *member, e *operators.Event, t int64) bool {
	m.reviewAt = s.nextReview(m, t)
	sm := s.cfg.QualificationStartMonth
	ended := periodOf(t, sm) - 1
	var km float64
	var segs int32
	switch m.qualPer {
	case ended:
		km, segs = m.qualKm, m.qualSeg
	case ended + 1:
		km, segs = m.prevKm, m.prevSeg
	}
	q := tierFor(s.cfg.Tiers, km, int64(segs))
	if m.tier == 0 || q >= m.tier {
		return false
	}
	m.tier = max(q, m.tier-1)
	s.tierChange(m, e, t)
	s.stats.Demotions++
	return true
}
