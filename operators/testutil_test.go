package operators

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// ts parses an RFC 3339 time into Unix seconds; it panics on a typo so that
// a table with a bad time fails loudly.
func ts(s string) int64 {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(fmt.Sprintf("bad test time %q: %v", s, err))
	}
	return t.Unix()
}

// day parses a YYYY-MM-DD date into a day number.
func day(s string) int32 {
	d, ok := parseDate([]byte(s))
	if !ok {
		panic(fmt.Sprintf("bad test date %q", s))
	}
	return d
}

// evOpt sets optional fields of a test event.
type evOpt func(*Event)

// ev builds an event of the given type for member m at time at (RFC 3339).
// The event id defaults to "<type>-<member>-<unix time>", unique enough for
// one member's history; use withID to name it.
func ev(typ string, m string, at string, opts ...evOpt) *Event {
	t := ts(at)
	e := &Event{
		ID:         fmt.Sprintf("%s-%s-%d", typ, m, t),
		Type:       ParseEventType(typ),
		TypeName:   typ,
		MemberID:   MemberID(m),
		OccurredAt: t,
	}
	for _, o := range opts {
		o(e)
	}
	return e
}

func withID(id string) evOpt { return func(e *Event) { e.ID = id } }

// flight makes a booking a flight of km kilometres (one segment unless
// withSegments says otherwise).
func flight(km float64) evOpt {
	return func(e *Event) {
		e.Product, e.ProductName = ProductFlight, "flight"
		e.DistanceKm = km
		e.Has |= FieldProduct | FieldDistance
	}
}

func hotel() evOpt {
	return func(e *Event) {
		e.Product, e.ProductName = ProductHotel, "hotel"
		e.Has |= FieldProduct
	}
}

func withSegments(n int64) evOpt {
	return func(e *Event) { e.Segments = n; e.Has |= FieldSegments }
}

func withAmount(x float64) evOpt {
	return func(e *Event) { e.Amount = x; e.Has |= FieldAmount }
}

func withDiscount(x float64) evOpt {
	return func(e *Event) { e.Discount = x; e.Has |= FieldDiscount }
}

func withTier(name string) evOpt {
	return func(e *Event) { e.Tier = name; e.Has |= FieldTier }
}

func withRegion(r string) evOpt {
	return func(e *Event) { e.Region = r; e.Has |= FieldRegion }
}

func withManager(a string) evOpt {
	return func(e *Event) { e.AccountManager = a; e.Has |= FieldAccountManager }
}

func withTripID(id string) evOpt {
	return func(e *Event) { e.TripID = id; e.Has |= FieldTripID }
}

func withDest(d string) evOpt {
	return func(e *Event) { e.Destination = d; e.Has |= FieldDestination }
}

// withTrip sets trip_start and trip_end (YYYY-MM-DD).
func withTrip(start, end string) evOpt {
	return func(e *Event) {
		e.TripStart, e.TripEnd = day(start), day(end)
		e.Has |= FieldTripStart | FieldTripEnd
	}
}

func withBookingID(id string) evOpt {
	return func(e *Event) { e.BookingID = id; e.Has |= FieldBookingID }
}

func withPoints(n int64) evOpt {
	return func(e *Event) { e.Points = n; e.Has |= FieldPoints }
}

func withBalance(n int64) evOpt {
	return func(e *Event) { e.PointsBalance = n; e.Has |= FieldPointsBalance }
}

// booking, login, enrol and cancel are shorthands for the common events.
func booking(m, at string, opts ...evOpt) *Event { return ev("booking", m, at, opts...) }
func login(m, at string, opts ...evOpt) *Event   { return ev("login", m, at, opts...) }
func enrol(m, at string, opts ...evOpt) *Event   { return ev("enrolment", m, at, opts...) }
func cancel(m, at, bookingID string) *Event {
	return ev("cancellation", m, at, withBookingID(bookingID))
}

// harness drives one Engine over many members the way a partition worker
// (or replay) does: Apply per event, Advance to a watermark.
type harness struct {
	t        testing.TB
	g        *Engine
	states   map[MemberID]*MemberState
	alerts   []Alert
	outcomes []Outcome
}

func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	g, err := NewEngine(cfg)
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	return &harness{t: t, g: g, states: map[MemberID]*MemberState{}}
}

func (h *harness) state(m MemberID) *MemberState {
	s, ok := h.states[m]
	if !ok {
		s = &MemberState{}
		h.states[m] = s
	}
	return s
}

// apply runs Engine.Apply for each event in order.
func (h *harness) apply(events ...*Event) {
	for _, e := range events {
		var o Outcome
		h.alerts, o = h.g.Apply(h.state(e.MemberID), e, h.alerts)
		h.outcomes = append(h.outcomes, o)
	}
}

// advance runs Engine.Advance for every member up to until (timers due
// strictly before until fire), in member order so the output is stable.
func (h *harness) advance(until int64) {
	ids := make([]MemberID, 0, len(h.states))
	for id := range h.states {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		s := h.states[id]
		h.alerts = h.g.Advance(s, id, until, h.alerts)
		if s.IsNew() {
			delete(h.states, id)
		}
	}
}

// run applies the events in order through Engine.Apply, then advances
// every member to until (RFC 3339), and returns all alerts.
func run(t testing.TB, cfg Config, until string, events ...*Event) []Alert {
	t.Helper()
	h := newHarness(t, cfg)
	h.apply(events...)
	h.advance(ts(until))
	return h.alerts
}

// ofType keeps the alerts of the given types.
func ofType(alerts []Alert, types ...AlertType) []Alert {
	var out []Alert
	for _, a := range alerts {
		if slices.Contains(types, a.Type) {
			out = append(out, a)
		}
	}
	return out
}

// withoutSegments drops segment_change alerts, which most rules tests do
// not look at.
func withoutSegments(alerts []Alert) []Alert {
	var out []Alert
	for _, a := range alerts {
		if a.Type != AlertSegmentChange {
			out = append(out, a)
		}
	}
	return out
}

// brief renders alerts as "id@time" lines, for readable comparisons.
func brief(alerts []Alert) []string {
	out := make([]string, 0, len(alerts))
	for _, a := range alerts {
		out = append(out, a.ID+"@"+FormatTime(a.TriggeredAt))
	}
	return out
}

// wantAlerts fails the test unless got (as brief lines) equals want.
func wantAlerts(t testing.TB, got []Alert, want ...string) {
	t.Helper()
	g := brief(got)
	if want == nil {
		want = []string{}
	}
	if !slices.Equal(g, want) {
		t.Errorf("alerts:\n got  %q\n want %q", g, want)
	}
}

// defaultCfg returns DefaultConfig with changes applied.
func defaultCfg(changes ...func(*Config)) Config {
	c := DefaultConfig()
	for _, f := range changes {
		f(&c)
	}
	return c
}

// onePAliveAlert checks that got is one retention alert for P(alive)
// alone, triggered at wantAt (where P(alive) crossed the threshold), and
// returns it.
func onePAliveAlert(t *testing.T, got []Alert, wantAt int64) Alert {
	t.Helper()
	if len(got) != 1 {
		t.Fatalf("got %q, want one p_alive alert", brief(got))
	}
	a := got[0]
	if a.TriggeredAt != wantAt {
		t.Errorf("triggered at %s, want %s (the crossing)", FormatTime(a.TriggeredAt), FormatTime(wantAt))
	}
	if !slices.Equal(a.Reasons, []string{"p_alive"}) {
		t.Errorf("reasons %q", a.Reasons)
	}
	return a
}
