package gen

import (
	"math"
	"strconv"

	"github.com/churnflow/churnflow/operators"
)

// Topic says which input topic a record belongs on.
type Topic uint8

// Input topics (DESIGN.md, "Events in").
const (
	TopicBookings Topic = iota // booking and cancellation
	TopicActivity              // every other type
)

// String returns "bookings" or "activity".
func (t Topic) String() string {
	if t == TopicBookings {
		return "bookings"
	}
	return "activity"
}

// TopicOf returns the topic of an event type.
func TopicOf(t operators.EventType) Topic {
	if t.IsBookingTopic() {
		return TopicBookings
	}
	return TopicActivity
}

// Record is one record of the stream: a good event, or a malformed record
// (Bad != "") whose bytes are in Raw.
type Record struct {
	// At is the record's place in the stream, Unix seconds: the event's
	// occurred_at for a good record; for a malformed record, the time of the
	// good event it was made from (its own timestamp may be unreadable).
	// Records come in non-decreasing At.
	At int64
	// Member is the message key.
	Member operators.MemberID
	// Topic is where the record belongs.
	Topic Topic
	// Event is the event of a good record (meaningless when Bad != "").
	Event operators.Event
	// Bad is the kind of damage of a malformed record, "" for a good one.
	Bad BadKind
	// Raw holds a malformed record's bytes; Next reuses its buffer.
	Raw []byte
}

// AppendJSON appends the record's bytes (no newline): the event's JSON for
// a good record, Raw for a malformed one.
func (r *Record) AppendJSON(dst []byte) []byte {
	if r.Bad != "" {
		return append(dst, r.Raw...)
	}
	return r.Event.AppendJSON(dst)
}

// Stream yields a population's records in event-time order. It holds one
// small generator per member (O(members) memory, independent of the number
// of events) and a priority queue of the members ordered by their next
// event time. A Stream is not safe for concurrent use.
type Stream struct {
	cfg        Config
	start, end int64
	members    []member
	heap       []int32 // member indexes, a binary min-heap on (next, index)
	r          rng     // malformed records
	good       Record
	hasGood    bool
	stats      Stats
	byType     [16]int64
	idBuf      []byte
	mgrTier    uint8 // lowest tier that gets an account manager
	cumHome    []float64
}

// NewStream validates cfg and returns the stream of its population.
func NewStream(cfg Config) (*Stream, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Tiers = append([]operators.TierConfig(nil), cfg.Tiers...)
	s := &Stream{
		cfg:     cfg,
		start:   cfg.Start.Unix(),
		end:     cfg.End().Unix(),
		members: make([]member, cfg.Members),
		heap:    make([]int32, 0, cfg.Members),
		r:       newRNG(cfg.Seed, math.MaxUint64),
	}
	s.mgrTier = uint8(max(1, len(cfg.Tiers)/2))
	if len(cfg.Tiers) < 3 {
		s.mgrTier = uint8(len(cfg.Tiers)) // nobody
	}
	var w []float64
	for _, i := range netw.byKind[domestic] {
		w = append(w, airports[i].weight)
	}
	s.cumHome = cumulative(w)
	width := max(7, len(strconv.Itoa(cfg.Members)))
	for i := range s.members {
		s.initMember(i, width)
		s.heap = append(s.heap, int32(i))
	}
	for i := len(s.heap)/2 - 1; i >= 0; i-- {
		s.down(i)
	}
	s.stats.Members = cfg.Members
	return s, nil
}

// initMember draws member i's hidden parameters and its enrolment.
func (s *Stream) initMember(i, width int) {
	m := &s.members[i]
	m.r = newRNG(s.cfg.Seed, uint64(i))
	r := &m.r
	id := make([]byte, 0, width+1)
	id = append(id, 'M')
	n := strconv.Itoa(i + 1)
	for range width - len(n) {
		id = append(id, '0')
	}
	m.id = operators.MemberID(append(id, n...))

	pc := s.cfg.Purchases
	lambdaDay := r.gamma(pc.R) / pc.Alpha
	m.lambda = lambdaDay / secondsPerDay
	m.p = r.beta(pc.A, pc.B)
	m.longP = r.beta(0.5, 6)
	m.regP = r.beta(1, 7)
	if m.longP+m.regP > 0.9 {
		m.regP = 0.9 - m.longP
	}
	m.hotelP = r.beta(2, 2.5)
	m.act = (0.15*r.gamma(0.7) + 2.5*lambdaDay) / secondsPerDay
	m.home = uint8(netw.byKind[domestic][r.pick(s.cumHome)])
	m.channel = uint8(r.pick(channelCum))

	// The tier the member's booking rate earns in a typical year: it sets
	// the cabin mix, and existing members hold it at the start.
	legs := 1.7 * (1 + 0.15 + 0.3*m.longP)
	kmPerBooking := 1.7 * (1150*(1-m.longP-m.regP) + 2600*m.regP + 8500*m.longP)
	year := lambdaDay * 365 * math.Exp(0.35*r.norm()-0.06)
	expected := tierFor(s.cfg.Tiers, year*kmPerBooking, int64(year*legs))
	top := float64(max(1, len(s.cfg.Tiers)-1))
	m.cabin = min(1.4, max(0.35, 0.65+0.45*float64(expected)/top+0.08*r.norm()))

	m.buyAt, m.actAt, m.profileAt, m.complaintAt, m.reviewAt = never, never, never, never, never
	if r.chance(s.cfg.NewMemberShare) {
		m.enrolAt = s.start + int64(r.float()*float64(s.end-s.start))
		m.alive = true
	} else {
		m.existing = true
		tenure := s.cfg.TenureYears * secondsPerYear
		age := tenure * (1 - math.Sqrt(r.float())) // more recent enrolments: a growing programme
		m.enrolAt = s.start - 1 - int64(age)
		// BG/NBD: dropouts come at rate λp, so P(alive) = exp(−λ p age).
		m.alive = r.chance(math.Exp(-m.lambda * m.p * age))
		if s.cfg.Purchases.Modified && m.alive {
			// MBG/NBD: the first booking, before the span, was a chance
			// to drop out too.
			m.alive = !r.chance(m.p)
		}
		m.buys = 1 + uint32(min(1e6, m.lambda*age))
		if m.alive {
			m.tier = expected
			// The part of the current period before the span.
			per := periodOf(s.start, s.cfg.QualificationStartMonth)
			frac := float64(s.start-max(periodStart(per, s.cfg.QualificationStartMonth), m.enrolAt)) / secondsPerYear
			if frac > 0 {
				m.qualPer = per
				m.qualKm = math.Round(year * kmPerBooking * frac)
				m.qualSeg = int32(year * legs * frac)
			}
			if m.tier >= s.mgrTier {
				m.manager = uint16(1 + r.intn(managers))
			}
		}
	}
	m.joined = m.enrolAt
	m.deleteAt = m.after(max(m.enrolAt, s.start), deleteRatePerYear/secondsPerYear)
	m.next = m.earliest()
}

var (
	channels   = []string{"app", "web", "agent", "call_center"}
	channelCum = cumulative([]float64{0.45, 0.3, 0.15, 0.1})
)

// Next fills r with the next record and reports whether there was one. r's
// Raw buffer is reused; everything else is overwritten.
func (s *Stream) Next(r *Record) bool {
	if !s.hasGood {
		if !s.generate(&s.good) {
			return false
		}
		s.hasGood = true
	}
	raw := r.Raw[:0]
	if s.cfg.BadRate > 0 && s.r.chance(s.cfg.BadRate) {
		*r = Record{At: s.good.At, Member: s.good.Member, Topic: s.good.Topic}
		r.Raw, r.Bad = s.malform(raw, &s.good.Event)
		s.count(r)
		return true
	}
	*r = s.good
	r.Raw = raw
	s.hasGood = false
	s.count(r)
	return true
}

func (s *Stream) count(r *Record) {
	st := &s.stats
	if st.Records == 0 {
		st.First = r.At
	}
	st.Last = r.At
	st.Records++
	if r.Bad != "" {
		st.Bad++
		if st.BadByKind == nil {
			st.BadByKind = map[BadKind]int64{}
		}
		st.BadByKind[r.Bad]++
		return
	}
	s.byType[r.Event.Type]++
	if r.Event.Type == operators.TypeOther {
		st.Unknown++
	}
}

// generate produces the next good event into rec.
func (s *Stream) generate(rec *Record) bool {
	for len(s.heap) > 0 {
		i := s.heap[0]
		m := &s.members[i]
		if m.next >= s.end {
			s.pop()
			continue
		}
		ok := s.step(m, rec)
		m.next = m.earliest()
		if m.next >= s.end {
			s.pop()
		} else {
			s.down(0)
		}
		if ok {
			rec.At = rec.Event.OccurredAt
			rec.Member = rec.Event.MemberID
			rec.Topic = TopicOf(rec.Event.Type)
			rec.Bad = ""
			return true
		}
	}
	return false
}

// less orders the heap by next event time, then member index, so that the
// order of simultaneous events is fixed.
func (s *Stream) less(a, b int32) bool {
	ta, tb := s.members[a].next, s.members[b].next
	return ta < tb || (ta == tb && a < b)
}

func (s *Stream) down(i int) {
	h := s.heap
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		c := l
		if r := l + 1; r < len(h) && s.less(h[r], h[l]) {
			c = r
		}
		if !s.less(h[c], h[i]) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

func (s *Stream) pop() {
	n := len(s.heap) - 1
	s.heap[0] = s.heap[n]
	s.heap = s.heap[:n]
	if n > 0 {
		s.down(0)
	}
}

// Stats returns the counts so far.
func (s *Stream) Stats() Stats {
	st := s.stats
	st.ByType = map[string]int64{}
	for t, n := range s.byType {
		if n > 0 {
			st.ByType[operators.EventType(t).String()] = n
		}
	}
	if s.stats.BadByKind != nil {
		st.BadByKind = make(map[BadKind]int64, len(s.stats.BadByKind))
		for k, v := range s.stats.BadByKind {
			st.BadByKind[k] = v
		}
	}
	st.Tiers = map[string]int{}
	for i := range s.members {
		m := &s.members[i]
		if m.deleted || m.joined > st.Last || st.Records == 0 {
			continue
		}
		st.Tiers[s.cfg.Tiers[m.tier].Name]++
		if m.alive {
			st.Alive++
		}
	}
	return st
}

// Stats counts what a stream produced. ByType counts good events by wire
// type ("other" for unknown types); Tiers and Alive describe the members
// enrolled and not deleted by the last record (Alive: not dropped out, the
// hidden BG/NBD state that churn detection tries to guess).
type Stats struct {
	Members     int
	Records     int64 // good and malformed
	Bad         int64
	Bytes       int64 // bytes written, newlines included (WriteJSONL)
	First, Last int64 // At of the first and the last record
	ByType      map[string]int64
	BadByKind   map[BadKind]int64
	Unknown     int64 // good events of a type churnflow does not know
	Enrolled    int64 // members who enrolled during the span
	DroppedOut  int64 // members who dropped out during the span
	Deleted     int64
	Cancelled   int64 // cancellation events
	Promotions  int64 // tier_change events up
	Demotions   int64 // tier_change events down (period reviews)
	Tiers       map[string]int
	Alive       int
}

// Truth is the hidden state of one member, for scoring churn detection
// against what really happened.
type Truth struct {
	ID       operators.MemberID
	Enrolled int64 // Unix seconds; before the span for existing members
	Existing bool  // enrolled before the span
	// Alive reports that the member has not dropped out (as of the records
	// produced so far). DroppedAt is the time of the booking after which the
	// member dropped out during the span, 0 if none.
	Alive     bool
	DroppedAt int64
	Deleted   bool
	Tier      string
	// BookingsPerYear (λ) and DropoutP (p) are the member's BG/NBD
	// parameters.
	BookingsPerYear float64
	DropoutP        float64
}

// Members returns the population size.
func (s *Stream) Members() int { return len(s.members) }

// Truth returns member i's hidden state (0 <= i < Members()).
func (s *Stream) Truth(i int) Truth {
	m := &s.members[i]
	return Truth{
		ID:              m.id,
		Enrolled:        m.joined,
		Existing:        m.existing,
		Alive:           m.alive,
		DroppedAt:       m.dropped,
		Deleted:         m.deleted,
		Tier:            s.cfg.Tiers[m.tier].Name,
		BookingsPerYear: m.lambda * secondsPerYear,
		DropoutP:        m.p,
	}
}
