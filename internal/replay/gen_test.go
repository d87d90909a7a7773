package replay

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// genEvent is the wire form the test generator writes.
type genEvent struct {
	EventID        string   `json:"event_id"`
	Type           string   `json:"type"`
	MemberID       string   `json:"member_id"`
	OccurredAt     string   `json:"occurred_at"`
	Amount         *float64 `json:"amount,omitempty"`
	Currency       string   `json:"currency,omitempty"`
	DistanceKm     *float64 `json:"distance_km,omitempty"`
	Segments       *int     `json:"segments,omitempty"`
	Discount       *float64 `json:"discount,omitempty"`
	Product        string   `json:"product,omitempty"`
	Channel        string   `json:"channel,omitempty"`
	Origin         string   `json:"origin,omitempty"`
	Destination    string   `json:"destination,omitempty"`
	TripStart      string   `json:"trip_start,omitempty"`
	TripEnd        string   `json:"trip_end,omitempty"`
	TripID         string   `json:"trip_id,omitempty"`
	BookingID      string   `json:"booking_id,omitempty"`
	Tier           string   `json:"tier,omitempty"`
	Region         string   `json:"region,omitempty"`
	AccountManager string   `json:"account_manager,omitempty"`
	Points         *int64   `json:"points,omitempty"`

	at time.Time
}

var (
	genStart  = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	genTiers  = []string{"base", "silver", "gold", "platinum"}
	genCities = []string{"PEK", "PVG", "CAN", "CTU", "JFK", "LHR", "NRT", "SYD", "SIN", "FRA"}
)

func ptr[T any](v T) *T { return &v }

// genInput generates a two-year history for n members: enrolments with
// tiers, flights (most followed by a hotel within hours, some not), other
// bookings, cancellations (matched and not), logins and searches, points,
// tier changes, members who go quiet and some who come back, and a few
// erasures followed by late events. Times fall on whole minutes so that
// ties between members are common. Lines are returned in time order.
func genInput(seed uint64, n int) [][]byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var evs []genEvent
	seq := 0
	id := func(prefix string) string { seq++; return fmt.Sprintf("%s-%06d", prefix, seq) }
	at := func(day float64) time.Time {
		return genStart.Add(time.Duration(day*24*60) * time.Minute)
	}
	const days = 730.0
	for m := 0; m < n; m++ {
		member := fmt.Sprintf("M%04d", m)
		tier := genTiers[rng.IntN(len(genTiers))]
		enrol := rng.Float64() * 120
		evs = append(evs, genEvent{
			EventID: id("en"), Type: "enrolment", MemberID: member, at: at(enrol),
			Tier: tier, Region: []string{"north", "south", "east", "west"}[rng.IntN(4)],
			AccountManager: fmt.Sprintf("A-%02d", rng.IntN(20)),
		})
		gap := 3 + rng.Float64()*40 // mean days between bookings
		stop := days + 1            // quiet from this day on
		if rng.IntN(10) < 4 {
			stop = enrol + 30 + rng.Float64()*500
		}
		back := days + 1 // comes back on this day
		if stop < days && rng.IntN(3) == 0 {
			back = stop + 100 + rng.Float64()*150
		}
		var bookings []string
		day := enrol + rng.ExpFloat64()*gap
		for day < days {
			if day >= stop && day < back {
				day = back
				continue
			}
			t := at(day)
			switch k := rng.IntN(10); {
			case k < 5: // flight, usually with a hotel
				bid := id("bk")
				bookings = append(bookings, bid)
				dest := genCities[rng.IntN(len(genCities))]
				start := t.AddDate(0, 0, 1+rng.IntN(30))
				end := start.AddDate(0, 0, rng.IntN(10))
				trip := ""
				if rng.IntN(2) == 0 {
					trip = "T" + bid
				}
				evs = append(evs, genEvent{
					EventID: bid, Type: "booking", MemberID: member, at: t,
					Amount: ptr(float64(200+rng.IntN(3000)) + 0.5), Currency: "CNY",
					DistanceKm: ptr(float64(300 + rng.IntN(9000))), Segments: ptr(1 + rng.IntN(2)),
					Discount: ptr(float64(50+rng.IntN(90)) / 100), Product: "flight", Channel: "app",
					Origin: "PEK", Destination: dest, TripStart: start.Format(time.DateOnly),
					TripEnd: end.Format(time.DateOnly), TripID: trip,
				})
				if rng.IntN(10) < 7 {
					hid := id("bk")
					bookings = append(bookings, hid)
					h := genEvent{
						EventID: hid, Type: "booking", MemberID: member,
						at:     t.Add(time.Duration(rng.IntN(10*60)) * time.Minute),
						Amount: ptr(float64(100 + rng.IntN(800))), Currency: "CNY", Product: "hotel",
						Destination: dest, TripID: trip,
					}
					if rng.IntN(2) == 0 {
						h.TripStart = start.Format(time.DateOnly)
					}
					evs = append(evs, h)
				}
			case k < 6: // another product
				bid := id("bk")
				bookings = append(bookings, bid)
				evs = append(evs, genEvent{
					EventID: bid, Type: "booking", MemberID: member, at: t,
					Amount: ptr(float64(50 + rng.IntN(500))), Product: []string{"train", "package", "car"}[rng.IntN(3)],
				})
			case k < 7 && len(bookings) > 0: // cancellation, sometimes of an unknown booking
				ref := bookings[rng.IntN(len(bookings))]
				if rng.IntN(5) == 0 {
					ref = "unknown-" + ref
				}
				evs = append(evs, genEvent{EventID: id("cx"), Type: "cancellation", MemberID: member, at: t, BookingID: ref})
			case k < 8:
				evs = append(evs, genEvent{EventID: id("pt"), Type: "points_earned", MemberID: member, at: t, Points: ptr(int64(500 + rng.IntN(3000)))})
			case k < 9 && rng.IntN(20) == 0:
				tier = genTiers[rng.IntN(len(genTiers))]
				evs = append(evs, genEvent{EventID: id("tc"), Type: "tier_change", MemberID: member, at: t, Tier: tier})
			default:
				evs = append(evs, genEvent{EventID: id("ac"), Type: []string{"login", "search", "app_open", "wishlist"}[rng.IntN(4)], MemberID: member, at: t})
			}
			day += rng.ExpFloat64() * gap
		}
		if rng.IntN(12) == 0 { // erasure, then a late event or two
			del := at(enrol + rng.Float64()*600)
			evs = append(evs, genEvent{EventID: id("del"), Type: "member_deleted", MemberID: member, at: del})
			evs = append(evs, genEvent{EventID: id("ac"), Type: "login", MemberID: member, at: del.Add(24 * time.Hour)})
		}
	}
	// No member has two events at the same instant: the order of such
	// events is the input order, which the shuffling tests change.
	type key struct {
		m  string
		at time.Time
	}
	seen := make(map[key]bool, len(evs))
	for i := range evs {
		for seen[key{evs[i].MemberID, evs[i].at}] {
			evs[i].at = evs[i].at.Add(time.Second)
		}
		seen[key{evs[i].MemberID, evs[i].at}] = true
	}
	slices.SortStableFunc(evs, func(a, b genEvent) int { return a.at.Compare(b.at) })
	lines := make([][]byte, len(evs))
	for i := range evs {
		evs[i].OccurredAt = evs[i].at.Format(time.RFC3339)
		b, err := json.Marshal(evs[i])
		if err != nil {
			panic(err)
		}
		lines[i] = b
	}
	return lines
}

func joinLines(lines [][]byte) []byte {
	var out []byte
	for _, l := range lines {
		out = append(out, l...)
		out = append(out, '\n')
	}
	return out
}
