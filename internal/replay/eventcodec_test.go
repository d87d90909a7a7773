package replay

import (
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/churnflow/churnflow/operators"
)

// allFields is every optional-field bit.
const allFields = operators.FieldPointsBalance<<1 - 1

// randString returns "" or a string of up to n bytes (any bytes, so that
// lengths and non-UTF-8 content are both exercised).
func randString(rng *rand.Rand, n int) string {
	if rng.IntN(4) == 0 {
		return ""
	}
	b := make([]byte, rng.IntN(n+1))
	for i := range b {
		b[i] = byte(rng.IntN(256))
	}
	return string(b)
}

func randFloat(rng *rand.Rand) float64 {
	switch rng.IntN(7) {
	case 0:
		return 0
	case 5:
		return math.NaN()
	case 1:
		return math.Copysign(0, -1)
	case 2:
		return math.Inf(1 - 2*rng.IntN(2))
	case 3:
		return math.MaxFloat64
	}
	return (rng.Float64() - 0.5) * 1e6
}

func randInt(rng *rand.Rand) int64 {
	switch rng.IntN(5) {
	case 0:
		return 0
	case 1:
		return math.MinInt64
	case 2:
		return math.MaxInt64
	}
	return rng.Int64N(1<<40) - 1<<39
}

// randEvent returns an event with the optional fields in has present (set
// to random values, zero included) and the others absent (zero), as the
// operators decoder makes them.
func randEvent(rng *rand.Rand, has operators.Field) operators.Event {
	e := operators.Event{
		ID:         randString(rng, 40),
		Type:       operators.EventType(rng.IntN(16)),
		TypeName:   randString(rng, 20),
		MemberID:   operators.MemberID(randString(rng, 300)),
		OccurredAt: randInt(rng),
		Has:        has,
	}
	str := func(f operators.Field) string {
		if has&f == 0 {
			return ""
		}
		return randString(rng, 200)
	}
	if has&operators.FieldAmount != 0 {
		e.Amount = randFloat(rng)
	}
	e.Currency = str(operators.FieldCurrency)
	if has&operators.FieldDistance != 0 {
		e.DistanceKm = randFloat(rng)
	}
	if has&operators.FieldSegments != 0 {
		e.Segments = randInt(rng)
	}
	if has&operators.FieldDiscount != 0 {
		e.Discount = randFloat(rng)
	}
	if has&operators.FieldProduct != 0 {
		e.Product = operators.Product(rng.IntN(256))
		e.ProductName = randString(rng, 20)
	}
	e.Channel = str(operators.FieldChannel)
	e.Origin = str(operators.FieldOrigin)
	e.Destination = str(operators.FieldDestination)
	if has&operators.FieldTripStart != 0 {
		e.TripStart = int32(randInt(rng))
	}
	if has&operators.FieldTripEnd != 0 {
		e.TripEnd = int32(randInt(rng))
	}
	e.TripID = str(operators.FieldTripID)
	e.BookingID = str(operators.FieldBookingID)
	e.Tier = str(operators.FieldTier)
	e.Region = str(operators.FieldRegion)
	e.AccountManager = str(operators.FieldAccountManager)
	if has&operators.FieldPoints != 0 {
		e.Points = randInt(rng)
	}
	if has&operators.FieldPointsBalance != 0 {
		e.PointsBalance = randInt(rng)
	}
	return e
}

// sameEvent compares events, floats by their bits (so -0 differs from 0).
func sameEvent(a, b *operators.Event) bool {
	fa := [3]uint64{math.Float64bits(a.Amount), math.Float64bits(a.DistanceKm), math.Float64bits(a.Discount)}
	fb := [3]uint64{math.Float64bits(b.Amount), math.Float64bits(b.DistanceKm), math.Float64bits(b.Discount)}
	x, y := *a, *b
	x.Amount, x.DistanceKm, x.Discount = 0, 0, 0 // NaN != NaN
	y.Amount, y.DistanceKm, y.Discount = 0, 0, 0
	return fa == fb && reflect.DeepEqual(x, y)
}

// hasMasks returns Has masks covering no field, every field, each single
// field, each field left out, and random subsets.
func hasMasks(rng *rand.Rand, random int) []operators.Field {
	masks := []operators.Field{0, allFields}
	for f := operators.Field(1); f <= operators.FieldPointsBalance; f <<= 1 {
		masks = append(masks, f, allFields&^f)
	}
	for range random {
		masks = append(masks, operators.Field(rng.Uint32())&allFields)
	}
	return masks
}

func TestEventCodecRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var buf []byte
	var want []operators.Event
	for _, has := range hasMasks(rng, 5000) {
		e := randEvent(rng, has)
		want = append(want, e)
		start := len(buf)
		buf = appendEvent(buf, &e)
		if n := len(buf) - start; n > maxEventSize(&e) {
			t.Fatalf("encoding of %d bytes, bound %d", n, maxEventSize(&e))
		}
	}
	// Unknown Has bits round-trip too.
	e := randEvent(rng, allFields)
	e.Has = math.MaxUint32
	want = append(want, e)
	buf = appendEvent(buf, &e)

	off := 0
	for i := range want {
		var got operators.Event
		got.Points = 99 // stale content is overwritten
		n, err := decodeEvent(buf[off:], &got)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if !sameEvent(&got, &want[i]) {
			t.Fatalf("event %d: decoded\n%+v\nwant\n%+v", i, got, want[i])
		}
		m, err := skipEvent(buf[off:])
		if err != nil || m != n {
			t.Fatalf("event %d: skipEvent = %d, %v; decodeEvent read %d", i, m, err, n)
		}
		// Every proper prefix is an error, never a panic or a short read.
		if i < 200 {
			for k := range n {
				if _, err := decodeEvent(buf[off:off+k], &got); err == nil {
					t.Fatalf("event %d: prefix of %d/%d bytes decoded", i, k, n)
				}
			}
		}
		off += n
	}
	if off != len(buf) {
		t.Fatalf("decoded %d of %d bytes", off, len(buf))
	}
}

func TestEventCodecOneAllocation(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	e := randEvent(rng, allFields)
	e.ID, e.TypeName, e.MemberID, e.TripID = "E1", "booking", "M1", "T1"
	b := appendEvent(nil, &e)
	var got operators.Event
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := decodeEvent(b, &got); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 1 {
		t.Fatalf("decodeEvent makes %v allocations, want 1", allocs)
	}
	// The strings do not alias the encoding.
	for i := range b {
		b[i] = 0
	}
	if got.ID != "E1" || got.MemberID != "M1" || got.TripID != "T1" {
		t.Fatalf("strings changed with the buffer: %+v", got)
	}
}

func TestEventCodecDecodedEventFromOperators(t *testing.T) {
	// Events as the operators decoder makes them round-trip.
	dec := operators.NewDecoder(nil)
	for i, line := range strings.Split(strings.TrimSpace(string(generated(7, 40))), "\n") {
		var e, got operators.Event
		if err := dec.Decode([]byte(line), &e); err != nil {
			continue
		}
		b := appendEvent(nil, &e)
		if _, err := decodeEvent(b, &got); err != nil || !sameEvent(&got, &e) {
			t.Fatalf("line %d: got %+v, %v; want %+v", i+1, got, err, e)
		}
	}
}

func FuzzDecodeEvent(f *testing.F) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, has := range hasMasks(rng, 10) {
		e := randEvent(rng, has)
		f.Add(appendEvent(nil, &e))
	}
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		var e operators.Event
		n, err := decodeEvent(b, &e)
		m, serr := skipEvent(b)
		if err != nil {
			return
		}
		if n < 0 || n > len(b) {
			t.Fatalf("read %d of %d bytes", n, len(b))
		}
		if serr != nil || m != n {
			t.Fatalf("skipEvent = %d, %v; decodeEvent read %d", m, serr, n)
		}
		// What decodes re-encodes to something that decodes equal.
		var again operators.Event
		enc := appendEvent(nil, &e)
		if k, err := decodeEvent(enc, &again); err != nil || k != len(enc) || !sameEvent(&again, &e) {
			t.Fatalf("re-encoding: %+v, %v; want %+v", again, err, e)
		}
	})
}
