package operators_test

// Micro-benchmarks of the per-event hot path: Engine.Apply on a realistic
// member, Decoder.Decode against encoding/json, and the member state codec.
// Run with
//
//	go test ./operators -run XXX -bench . -benchmem -count 5
//
// The benchmarks live in the external test package so that they use only
// the exported API, as the pipeline does.

import (
	"cmp"
	"encoding/json"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/churnflow/churnflow/model"
	"github.com/churnflow/churnflow/operators"
)

// benchHistory builds one member's events from `from` for `days` days, in
// time order: flights at flightsPerYear (gaps uniform in 0.5–1.5 times the
// mean, so that the history has the size asked for), 40 % of them
// followed within hours by a hotel for the same trip, 5 % cancelled a few
// days later, points after each flown trip, occasional redemptions, and app
// activity (login, app_open, search) about every three days. The events go
// through JSON and the Decoder, so they are exactly what a worker applies.
func benchHistory(tb testing.TB, member string, from time.Time, days int, flightsPerYear float64, seed uint64) []operators.Event {
	tb.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	start := from.Unix()
	end := start + int64(days)*86400
	var evs []operators.Event
	n := 0
	add := func(e operators.Event) {
		n++
		e.ID = e.TypeName[:2] + "-" + member + "-" + strconv.Itoa(n)
		e.MemberID = operators.MemberID(member)
		evs = append(evs, e)
	}
	dests := []string{"PVG", "CAN", "SZX", "CTU", "HKG", "NRT", "LHR", "JFK"}
	kms := []float64{1178, 1967, 2076, 1697, 1970, 2098, 8147, 11000}
	points := int64(0)
	gap := 365 * 86400 / flightsPerYear
	for t := start + int64(r.Float64()*gap); t < end; t += int64((0.5 + r.Float64()) * gap) {
		d := r.IntN(len(dests))
		km := kms[d] * 2
		day := operators.DayOf(t)
		trip := operators.Event{
			Type: operators.TypeBooking, TypeName: "booking", OccurredAt: t,
			Amount: math.Round(km*0.6*100) / 100, Currency: "CNY", DistanceKm: km, Segments: 2,
			Discount: 0.95, Product: operators.ProductFlight, ProductName: "flight", Channel: "app",
			Origin: "PEK", Destination: dests[d], TripStart: day + 14, TripEnd: day + 18,
			Has: operators.FieldAmount | operators.FieldCurrency | operators.FieldDistance | operators.FieldSegments |
				operators.FieldDiscount | operators.FieldProduct | operators.FieldChannel | operators.FieldOrigin |
				operators.FieldDestination | operators.FieldTripStart | operators.FieldTripEnd | operators.FieldTripID,
		}
		trip.TripID = "tr-" + strconv.FormatInt(t, 36)
		add(trip)
		flightID := evs[len(evs)-1].ID
		if r.Float64() < 0.4 {
			h := trip
			h.OccurredAt = t + 600 + r.Int64N(4*3600)
			h.Product, h.ProductName = operators.ProductHotel, "hotel"
			h.Amount, h.Has = 1600, h.Has&^(operators.FieldDistance|operators.FieldSegments|operators.FieldDiscount|operators.FieldOrigin)
			add(h)
		}
		if r.Float64() < 0.05 {
			add(operators.Event{Type: operators.TypeCancellation, TypeName: "cancellation", OccurredAt: t + 86400 + r.Int64N(5*86400),
				BookingID: flightID, Has: operators.FieldBookingID})
		} else {
			p := int64(km * 1.5)
			points += p
			add(operators.Event{Type: operators.TypePointsEarned, TypeName: "points_earned", OccurredAt: int64(day+19) * 86400,
				Points: p, PointsBalance: points, Has: operators.FieldPoints | operators.FieldPointsBalance})
		}
	}
	types := []string{"login", "app_open", "search"}
	for t := start + r.Int64N(3*86400); t < end; t += 1 + int64(r.ExpFloat64()*3*86400) {
		name := types[r.IntN(len(types))]
		if r.Float64() < 0.02 {
			name = "redemption"
		}
		e := operators.Event{Type: operators.ParseEventType(name), TypeName: name, OccurredAt: t}
		if name == "redemption" {
			e.Points, e.Has = 10000, operators.FieldPoints
		}
		add(e)
	}
	slices.SortStableFunc(evs, func(a, b operators.Event) int { return cmp.Compare(a.OccurredAt, b.OccurredAt) })
	// Through the wire, as a worker sees them.
	cfg := operators.DefaultConfig()
	dec := operators.NewDecoder(cfg.TierNames())
	var buf []byte
	out := make([]operators.Event, 0, len(evs))
	for i := range evs {
		if evs[i].OccurredAt >= end {
			continue
		}
		buf = evs[i].AppendJSON(buf[:0])
		var e operators.Event
		if err := dec.Decode(buf, &e); err != nil {
			tb.Fatalf("decode %s: %v", buf, err)
		}
		out = append(out, e)
	}
	return out
}

// benchEnrolment is the member's enrolment: gold, with a region and an
// account manager.
func benchEnrolment(member string, at time.Time) operators.Event {
	return operators.Event{
		ID: "en-" + member, Type: operators.TypeEnrolment, TypeName: "enrolment", MemberID: operators.MemberID(member),
		OccurredAt: at.Unix(), Tier: "gold", Region: "north", AccountManager: "A-17",
		Has: operators.FieldTier | operators.FieldRegion | operators.FieldAccountManager,
	}
}

// benchMember returns the state of a member after a year of activity at
// flightsPerYear flights (and 40 % as many hotels), and the events of the
// following two years.
func benchMember(tb testing.TB, g *operators.Engine, flightsPerYear float64) (operators.MemberState, []operators.Event) {
	tb.Helper()
	const member = "M0042"
	y0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	y1 := y0.AddDate(1, 0, 0)
	var s operators.MemberState
	var out []operators.Alert
	en := benchEnrolment(member, y0)
	out, _ = g.Apply(&s, &en, out[:0])
	for _, e := range benchHistory(tb, member, y0, 366, flightsPerYear, 1) {
		out, _ = g.Apply(&s, &e, out[:0])
	}
	return s, benchHistory(tb, member, y1, 2*365, flightsPerYear, 2)
}

// restore copies base into s, reusing s's slices (no allocation).
func restore(s, base *operators.MemberState) {
	h, tr := s.History[:0], s.Trips[:0]
	*s = *base
	s.History = append(h, base.History...)
	s.Trips = append(tr, base.Trips...)
}

// benchFitted is a fitted model file (churnflow fit) over the generator's
// default population: MBG/NBD in days, a spend model, 12-month CLV and
// five segments.
func benchFitted() *model.File {
	clv := model.CLVConfig{Periods: 12, PeriodLength: model.DaysPerMonth, DiscountRate: 0.01}
	return &model.File{
		Version: model.FileVersion, Unit: model.UnitDay,
		CalibrationStart: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), CalibrationEnd: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		Chosen:     model.NameMBGNBD,
		MBGNBD:     &model.FittedMBGNBD{Params: model.MBGNBD{R: 0.5, Alpha: 45, A: 0.6, B: 10}},
		GammaGamma: &model.FittedGammaGamma{Params: model.GammaGamma{P: 2.2, Q: 4.7, Gamma: 3185}},
		CLV:        &clv,
		Segments: &model.Segments{
			Stats: model.Standardizer{Mean: []float64{1097, 156, 5.3, 11994, 0.67}, Std: []float64{757, 150, 7.2, 20214, 0.13}},
			Centres: []model.Centre{
				{Name: model.SegmentImportantDevelop, Z: []float64{-0.61, -0.34, -0.11, -0.15, 0.89}},
				{Name: model.SegmentImportantRetain, Z: []float64{0, -0.84, 2.69, 2.55, 1.09}},
				{Name: model.SegmentGeneral, Z: []float64{0.04, 1.62, -0.65, -0.53, -0.07}},
				{Name: model.SegmentLowValue, Z: []float64{-0.56, -0.45, -0.07, -0.08, -0.86}},
				{Name: model.SegmentImportantWinBack, Z: []float64{1.37, -0.37, -0.2, -0.2, -0.1}},
			},
		},
	}
}

func BenchmarkApply(b *testing.B) {
	bgnbd := &operators.BGNBDParams{R: 0.5, Alpha: 45, A: 0.6, B: 10, Unit: "day"}
	for _, bc := range []struct {
		name   string
		model  *operators.BGNBDParams
		fitted *model.File
	}{{"default", nil, nil}, {"model", bgnbd, nil}, {"fitted", nil, benchFitted()}} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := operators.DefaultConfig()
			cfg.Model, cfg.Fitted = bc.model, bc.fitted
			g, err := operators.NewEngine(cfg)
			if err != nil {
				b.Fatal(err)
			}
			base, evs := benchMember(b, g, 15)
			b.ReportMetric(float64(len(base.History)), "bookings_held")
			var s operators.MemberState
			restore(&s, &base)
			out := make([]operators.Alert, 0, 16)
			alerts := 0
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			b.ReportAllocs()
			b.ResetTimer()
			for i, j := 0, 0; i < b.N; i, j = i+1, j+1 {
				if j == len(evs) { // two years applied: start over from the same member
					j = 0
					restore(&s, &base)
				}
				out, _ = g.Apply(&s, &evs[j], out[:0])
				alerts += len(out)
			}
			b.StopTimer()
			runtime.ReadMemStats(&ms1)
			// allocs/op above is truncated to an integer; this is the exact
			// share, and what of it is not alerts (each alert allocates its
			// id and reason strings: output, not hot-path overhead).
			b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(b.N), "mallocs/event")
			b.ReportMetric(float64(alerts)/float64(b.N), "alerts/op")
		})
	}
}

// jsonEvent is the struct a plain encoding/json consumer would decode an
// event into: optional fields as pointers (absent means unknown), times as
// time.Time (RFC 3339). It does not validate.
type jsonEvent struct {
	EventID        string    `json:"event_id"`
	Type           string    `json:"type"`
	MemberID       string    `json:"member_id"`
	OccurredAt     time.Time `json:"occurred_at"`
	Amount         *float64  `json:"amount"`
	Currency       *string   `json:"currency"`
	DistanceKm     *float64  `json:"distance_km"`
	Segments       *int64    `json:"segments"`
	Discount       *float64  `json:"discount"`
	Product        *string   `json:"product"`
	Channel        *string   `json:"channel"`
	Origin         *string   `json:"origin"`
	Destination    *string   `json:"destination"`
	TripStart      *string   `json:"trip_start"`
	TripEnd        *string   `json:"trip_end"`
	TripID         *string   `json:"trip_id"`
	BookingID      *string   `json:"booking_id"`
	Tier           *string   `json:"tier"`
	Region         *string   `json:"region"`
	AccountManager *string   `json:"account_manager"`
	Points         *int64    `json:"points"`
	PointsBalance  *int64    `json:"points_balance"`
}

var benchRecords = []struct{ name, json string }{
	{"booking", `{"event_id":"bk-000123","type":"booking","member_id":"M0042","occurred_at":"2026-03-01T10:00:00Z",` +
		`"amount":420.5,"currency":"CNY","distance_km":1250,"segments":1,"discount":0.85,` +
		`"product":"flight","channel":"app","origin":"PEK","destination":"JFK",` +
		`"trip_start":"2026-04-10","trip_end":"2026-04-17","trip_id":"tr-9k2"}`},
	{"activity", `{"event_id":"ac-77","type":"login","member_id":"M0042","occurred_at":"2026-03-02T08:00:00Z"}`},
}

func BenchmarkDecode(b *testing.B) {
	cfg := operators.DefaultConfig()
	for _, rc := range benchRecords {
		data := []byte(rc.json)
		b.Run(rc.name+"/churnflow", func(b *testing.B) {
			dec := operators.NewDecoder(cfg.TierNames())
			var e operators.Event
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if err := dec.Decode(data, &e); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(rc.name+"/encoding_json", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				var e jsonEvent
				if err := json.Unmarshal(data, &e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkStateCodec(b *testing.B) {
	g, err := operators.NewEngine(operators.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	for _, rate := range []float64{15, 80} {
		s, _ := benchMember(b, g, rate)
		enc := s.AppendEncode(nil)
		name := strconv.Itoa(len(s.History)) + "_bookings"
		b.Run(name+"/encode", func(b *testing.B) {
			buf := make([]byte, 0, 2*len(enc))
			b.ReportAllocs()
			for b.Loop() {
				buf = s.AppendEncode(buf[:0])
			}
			b.ReportMetric(float64(len(enc)), "bytes/member")
		})
		b.Run(name+"/decode", func(b *testing.B) {
			var d operators.MemberState
			b.ReportAllocs()
			for b.Loop() {
				if err := operators.DecodeState(enc, &d); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(enc)), "bytes/member")
		})
	}
}
