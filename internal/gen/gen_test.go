package gen

import (
	"bytes"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/churnflow/churnflow/operators"
)

// smallConfig is a population that runs in well under a second.
func smallConfig() Config {
	cfg := DefaultConfig()
	cfg.Members = 2000
	cfg.Days = 200
	cfg.Start = time.Date(2025, 9, 1, 0, 0, 0, 0, time.UTC) // spans a period boundary
	return cfg
}

// newDecoder returns the decoder a pipeline with the default config uses.
func newDecoder() *operators.Decoder {
	oc := operators.DefaultConfig()
	return operators.NewDecoder(oc.TierNames())
}

// collect runs a stream to the end and returns copies of its records.
func collect(t *testing.T, cfg Config) ([]Record, *Stream) {
	t.Helper()
	s, err := NewStream(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out []Record
	var r Record
	for s.Next(&r) {
		c := r
		c.Raw = append([]byte(nil), r.Raw...)
		out = append(out, c)
	}
	return out, s
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*Config)
		field string // "" if valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"no members", func(c *Config) { c.Members = 0 }, "Members"},
		{"zero start", func(c *Config) { c.Start = time.Time{} }, "Start"},
		{"no days", func(c *Config) { c.Days = 0 }, "Days"},
		{"negative bad rate", func(c *Config) { c.BadRate = -0.1 }, "BadRate"},
		{"bad rate over half", func(c *Config) { c.BadRate = 0.6 }, "BadRate"},
		{"NaN bad rate", func(c *Config) { c.BadRate = math.NaN() }, "BadRate"},
		{"new share", func(c *Config) { c.NewMemberShare = 1.5 }, "NewMemberShare"},
		{"tenure", func(c *Config) { c.TenureYears = 0 }, "TenureYears"},
		{"month", func(c *Config) { c.QualificationStartMonth = 13 }, "QualificationStartMonth"},
		{"no tiers", func(c *Config) { c.Tiers = nil }, "Tiers"},
		{"unnamed tier", func(c *Config) { c.Tiers = []operators.TierConfig{{Name: ""}} }, "Tiers[0].Name"},
		{"tier without bar", func(c *Config) { c.Tiers = []operators.TierConfig{{Name: "a"}, {Name: "b"}} }, "Tiers[1]"},
		{"alpha", func(c *Config) { c.Purchases.Alpha = 0 }, "Purchases.Alpha"},
		{"b", func(c *Config) { c.Purchases.B = math.Inf(1) }, "Purchases.B"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.edit(&cfg)
			err := cfg.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "config "+tt.field+":") {
				t.Fatalf("Validate = %v, want an error naming %s", err, tt.field)
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	cfg := smallConfig()
	cfg.Members = 500
	cfg.BadRate = 0.05
	var a, b, c bytes.Buffer
	sa, err := WriteJSONL(&a, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteJSONL(&b, cfg); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two runs with the same config differ")
	}
	if sa.Bytes != int64(a.Len()) || sa.Records != int64(bytes.Count(a.Bytes(), []byte("\n"))) {
		t.Errorf("stats say %d bytes, %d records; wrote %d bytes, %d lines", sa.Bytes, sa.Records, a.Len(), bytes.Count(a.Bytes(), []byte("\n")))
	}
	cfg.Seed++
	if _, err := WriteJSONL(&c, cfg); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Fatal("a different seed gives the same bytes")
	}
}

// TestGoodEventsIndependentOfBadRate: malformed records are added, never
// substituted, so the good events do not depend on BadRate.
func TestGoodEventsIndependentOfBadRate(t *testing.T) {
	cfg := smallConfig()
	cfg.Members = 300
	clean, _ := collect(t, cfg)
	cfg.BadRate = 0.2
	dirty, _ := collect(t, cfg)
	var good []Record
	for _, r := range dirty {
		if r.Bad == "" {
			good = append(good, r)
		}
	}
	if len(good) != len(clean) {
		t.Fatalf("%d good records with bad rate 0.2, %d with 0", len(good), len(clean))
	}
	for i := range good {
		if good[i].Event != clean[i].Event {
			t.Fatalf("record %d differs: %+v vs %+v", i, good[i].Event, clean[i].Event)
		}
	}
}

func TestOrderDecodeAndIDs(t *testing.T) {
	cfg := smallConfig()
	recs, s := collect(t, cfg)
	if len(recs) < 10*cfg.Members {
		t.Fatalf("only %d records for %d members", len(recs), cfg.Members)
	}
	dec := newDecoder()
	start, end := cfg.Start.Unix(), cfg.End().Unix()
	ids := map[string]bool{}
	var prev int64 = math.MinInt64
	var buf []byte
	for i, r := range recs {
		if r.At < prev {
			t.Fatalf("record %d at %d before the previous one at %d", i, r.At, prev)
		}
		prev = r.At
		if r.At >= end {
			t.Fatalf("record %d at %d, after the span", i, r.At)
		}
		e := &r.Event
		if r.At < start && e.Type != operators.TypeEnrolment {
			t.Fatalf("record %d (%s) before the span", i, e.TypeName)
		}
		if r.At != e.OccurredAt || r.Member != e.MemberID || r.Topic != TopicOf(e.Type) {
			t.Fatalf("record %d: header %d %s %s does not match its event", i, r.At, r.Member, r.Topic)
		}
		if ids[e.ID] {
			t.Fatalf("duplicate event id %s", e.ID)
		}
		ids[e.ID] = true
		buf = r.AppendJSON(buf[:0])
		var got operators.Event
		if err := dec.Decode(buf, &got); err != nil {
			t.Fatalf("record %d does not decode: %v\n%s", i, err, buf)
		}
		if got != *e {
			t.Fatalf("record %d decodes to\n%+v\nwant\n%+v", i, got, *e)
		}
	}
	if st := s.Stats(); st.Records != int64(len(recs)) || st.Bad != 0 {
		t.Errorf("stats: %d records, %d bad; want %d, 0", st.Records, st.Bad, len(recs))
	}
}

func TestBadRecords(t *testing.T) {
	cfg := smallConfig()
	cfg.BadRate = 0.1
	recs, s := collect(t, cfg)
	dec := newDecoder()
	var bad int
	kinds := map[BadKind]int{}
	var e operators.Event
	for _, r := range recs {
		if r.Bad == "" {
			continue
		}
		bad++
		kinds[r.Bad]++
		err := dec.Decode(r.Raw, &e)
		if err == nil {
			t.Fatalf("%s record decodes: %s", r.Bad, r.Raw)
		}
		want := map[BadKind]operators.Reason{
			BadInvalidJSON:      operators.ReasonInvalidJSON,
			BadMissingField:     operators.ReasonMissingField,
			BadWrongType:        operators.ReasonInvalidField,
			BadNegativeDistance: operators.ReasonInvalidField,
			BadTimestamp:        operators.ReasonInvalidField,
		}[r.Bad]
		if got := operators.ReasonOf(err); got != want {
			t.Errorf("%s record rejected as %s (%v), want %s: %s", r.Bad, got, err, want, r.Raw)
		}
		if !bytes.Equal(r.AppendJSON(nil), r.Raw) {
			t.Fatal("AppendJSON of a bad record is not its bytes")
		}
	}
	n := float64(len(recs))
	share := float64(bad) / n
	sd := math.Sqrt(cfg.BadRate * (1 - cfg.BadRate) / n)
	if math.Abs(share-cfg.BadRate) > 5*sd {
		t.Errorf("bad share %.4f of %d records, want %.2f ± %.4f", share, len(recs), cfg.BadRate, 5*sd)
	}
	for _, k := range BadKinds() {
		if kinds[k] < bad/10 {
			t.Errorf("only %d %s records of %d bad", kinds[k], k, bad)
		}
	}
	if st := s.Stats(); st.Bad != int64(bad) {
		t.Errorf("Stats.Bad = %d, counted %d", st.Bad, bad)
	}
}

// TestFollowUps checks that cancellations name real earlier bookings of the
// same member, once, and that hotels follow their flight.
func TestFollowUps(t *testing.T) {
	cfg := smallConfig()
	recs, _ := collect(t, cfg)
	type booking struct {
		member    operators.MemberID
		at        int64
		product   operators.Product
		cancelled bool
	}
	bookings := map[string]*booking{}
	flights := map[string]*operators.Event{} // by trip id
	var nFlights, nHotels, nCancels, nSoon int
	for i := range recs {
		e := &recs[i].Event
		switch e.Type {
		case operators.TypeBooking:
			bookings[e.ID] = &booking{member: e.MemberID, at: e.OccurredAt, product: e.Product}
			switch e.Product {
			case operators.ProductFlight:
				nFlights++
				flights[e.TripID] = e
				if e.TripEnd < e.TripStart || e.TripStart <= operators.DayOf(e.OccurredAt) {
					t.Fatalf("flight %s: trip %d–%d booked on day %d", e.ID, e.TripStart, e.TripEnd, operators.DayOf(e.OccurredAt))
				}
				if e.Origin == e.Destination || e.DistanceKm <= 0 || e.Segments < 1 || e.Discount <= 0 || e.Amount <= 0 {
					t.Fatalf("implausible flight %+v", *e)
				}
			case operators.ProductHotel:
				nHotels++
				f := flights[e.TripID]
				if f == nil || f.MemberID != e.MemberID || f.Destination != e.Destination || f.TripStart != e.TripStart {
					t.Fatalf("hotel %s (trip %s) does not follow a flight of its member", e.ID, e.TripID)
				}
				if d := e.OccurredAt - f.OccurredAt; d <= 0 || d > 3*secondsPerDay {
					t.Fatalf("hotel %s %d s after its flight", e.ID, d)
				} else if d <= 6*3600 {
					nSoon++
				}
			}
		case operators.TypeCancellation:
			nCancels++
			b := bookings[e.BookingID]
			if b == nil || b.member != e.MemberID || b.at >= e.OccurredAt {
				t.Fatalf("cancellation %s names %s, not an earlier booking of %s", e.ID, e.BookingID, e.MemberID)
			}
			if b.cancelled {
				t.Fatalf("booking %s cancelled twice", e.BookingID)
			}
			b.cancelled = true
		}
	}
	if nFlights == 0 || nCancels == 0 {
		t.Fatalf("%d flights, %d cancellations", nFlights, nCancels)
	}
	if r := float64(nHotels) / float64(nFlights); r < 0.25 || r > 0.75 {
		t.Errorf("%d hotels for %d flights: want some flights with and some without a hotel", nHotels, nFlights)
	}
	if r := float64(nSoon) / float64(nHotels); r < 0.7 || r == 1 {
		t.Errorf("%.2f of hotels within 6 h of the flight: want most, not all", r)
	}
	if r := float64(nCancels) / float64(nFlights+nHotels); r < 0.01 || r > 0.1 {
		t.Errorf("cancellation share %.3f", r)
	}
}

// TestPopulation checks the behaviour the churn rules rely on: enrolments
// over time, a tier pyramid, and dropouts who never come back.
func TestPopulation(t *testing.T) {
	cfg := smallConfig()
	cfg.Members = 5000
	cfg.Days = 365
	recs, s := collect(t, cfg)
	start, mid := cfg.Start.Unix(), cfg.Start.Unix()+int64(cfg.Days)*secondsPerDay/2
	var enrolBefore, enrolFirstHalf, enrolSecondHalf int
	lastMember := map[operators.MemberID]int64{} // last member-initiated event
	typeCount := map[operators.EventType]int{}
	for i := range recs {
		e := &recs[i].Event
		typeCount[e.Type]++
		switch {
		case e.Type == operators.TypeEnrolment && e.OccurredAt < start:
			enrolBefore++
		case e.Type == operators.TypeEnrolment && e.OccurredAt < mid:
			enrolFirstHalf++
		case e.Type == operators.TypeEnrolment:
			enrolSecondHalf++
		}
		if memberInitiated(e) {
			lastMember[e.MemberID] = e.OccurredAt
		}
	}
	if enrolBefore+enrolFirstHalf+enrolSecondHalf != cfg.Members {
		t.Errorf("%d enrolments for %d members", enrolBefore+enrolFirstHalf+enrolSecondHalf, cfg.Members)
	}
	if enrolFirstHalf < cfg.Members/20 || enrolSecondHalf < cfg.Members/20 {
		t.Errorf("enrolments in the span: %d in the first half, %d in the second", enrolFirstHalf, enrolSecondHalf)
	}
	for _, ty := range []operators.EventType{operators.TypeBooking, operators.TypeCancellation, operators.TypeEnrolment,
		operators.TypeProfileUpdate, operators.TypeLogin, operators.TypeSearch, operators.TypeAppOpen, operators.TypePointsEarned,
		operators.TypeRedemption, operators.TypeTierChange, operators.TypeComplaint, operators.TypeMemberDeleted, operators.TypeOther} {
		if typeCount[ty] == 0 {
			t.Errorf("no %s event", ty)
		}
	}
	st := s.Stats()
	tiers := st.Tiers
	names := cfg.TierNames()
	if tiers[names[0]]*10 < st.Members*8 {
		t.Errorf("tiers %v: want a base majority", tiers)
	}
	for _, n := range names[1:] {
		if tiers[n] == 0 {
			t.Errorf("tiers %v: nobody in %s", tiers, n)
		}
	}
	if tiers[names[1]] <= tiers[names[len(names)-1]] {
		t.Errorf("tiers %v: want fewer members in higher tiers", tiers)
	}

	var dropped, lambdaSum float64
	for i := range s.Members() {
		tr := s.Truth(i)
		lambdaSum += tr.BookingsPerYear
		if tr.DroppedAt == 0 {
			continue
		}
		dropped++
		if tr.Alive {
			t.Fatalf("member %s dropped out and is alive", tr.ID)
		}
		if last := lastMember[tr.ID]; last > tr.DroppedAt {
			t.Fatalf("member %s dropped out at %d and came back at %d", tr.ID, tr.DroppedAt, last)
		}
	}
	if dropped < float64(cfg.Members)/100 || dropped != float64(st.DroppedOut) {
		t.Errorf("%g members dropped out (stats: %d)", dropped, st.DroppedOut)
	}
	// λ ~ Gamma(R, Alpha) per day: the population mean is R/Alpha.
	want := cfg.Purchases.R / cfg.Purchases.Alpha * 365.25
	if got := lambdaSum / float64(cfg.Members); math.Abs(got-want) > 0.15*want {
		t.Errorf("mean bookings a year %.2f, want %.2f (R/Alpha)", got, want)
	}
}

// memberInitiated reports whether the member, not the programme, made the
// event: a dropped-out member makes none (their trip's hotel, cancellation
// and points may still follow the last booking).
func memberInitiated(e *operators.Event) bool {
	switch e.Type {
	case operators.TypeLogin, operators.TypeSearch, operators.TypeAppOpen, operators.TypeRedemption,
		operators.TypeComplaint, operators.TypeOther:
		return true
	case operators.TypeBooking:
		return e.Product == operators.ProductFlight
	}
	return false
}

// TestMemoryBounded checks the structure that keeps memory O(members): a
// heap entry per member, at most maxPending follow-ups each, and no buffer
// that grows with the number of records.
func TestMemoryBounded(t *testing.T) {
	cfg := smallConfig()
	cfg.Members = 1000
	cfg.Days = 3 * 365
	cfg.BadRate = 0.05
	s, err := NewStream(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var r Record
	var n, maxTotal int
	idCap := 0
	for s.Next(&r) {
		n++
		if len(s.heap) > cfg.Members || len(s.members) != cfg.Members {
			t.Fatalf("heap %d, members %d", len(s.heap), len(s.members))
		}
		if n%1000 != 0 {
			continue
		}
		total := 0
		for i := range s.members {
			p := len(s.members[i].pend)
			if p > maxPending || cap(s.members[i].pend) > 2*maxPending {
				t.Fatalf("member %d holds %d follow-ups (cap %d)", i, p, cap(s.members[i].pend))
			}
			total += p
		}
		maxTotal = max(maxTotal, total)
		idCap = max(idCap, cap(s.idBuf), cap(r.Raw))
	}
	if n < 50*cfg.Members {
		t.Fatalf("only %d records", n)
	}
	if maxTotal > 3*cfg.Members {
		t.Errorf("up to %d follow-ups held for %d members", maxTotal, cfg.Members)
	}
	if idCap > 4096 {
		t.Errorf("scratch buffers grew to %d bytes", idCap)
	}
}

func TestEmptySpanEnds(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Members = 3
	cfg.Days = 1
	cfg.NewMemberShare = 0
	s, err := NewStream(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var r Record
	n := 0
	for s.Next(&r) {
		n++
	}
	if n < 3 {
		t.Fatalf("%d records, want at least the 3 enrolments", n)
	}
	if s.Next(&r) {
		t.Fatal("Next after the end returned a record")
	}
}

// BenchmarkWriteJSONL measures generation speed (records/s) for the default
// population, writing to io.Discard.
func BenchmarkWriteJSONL(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Members = 2000
	cfg.BadRate = 0.01
	var st Stats
	for b.Loop() {
		var err error
		if st, err = WriteJSONL(io.Discard, cfg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(st.Records)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(st.Bytes)/float64(st.Records), "bytes/record")
}
