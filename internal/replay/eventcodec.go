package replay

import (
	"encoding/binary"
	"errors"
	"math"

	"github.com/churnflow/churnflow/operators"
)

// The sorter holds and spills events in a compact binary encoding, private
// to this package (it is never stored beyond one run):
//
//	uvarint Has | byte Type | varint OccurredAt | 3 bytes present (LE) |
//	the present numbers, in slot order | uvarint length of each present
//	string, in slot order | the bytes of the present strings, concatenated
//
// present has one bit per slot below. A number is present when its value is
// not zero (floats: when its bits are not zero, so -0 and NaN survive), a
// string when it is not empty; every other field decodes as zero. An Event
// with an optional field absent has it zero, so in practice the numbers
// written are the ones whose Has bit is set, but the encoding does not
// depend on that: any Event decodes back equal. Floats are 8 bytes
// little-endian; integers are varints. The strings come last and together
// so that the decoder makes one string for all of them and slices it.
const (
	slotAmount = iota
	slotDistance
	slotSegments
	slotDiscount
	slotProduct
	slotTripStart
	slotTripEnd
	slotPoints
	slotPointsBalance
	numNumberSlots
)

// String slots follow the number slots.
const (
	strID = iota
	strTypeName
	strMemberID
	strCurrency
	strProductName
	strChannel
	strOrigin
	strDestination
	strTripID
	strBookingID
	strTier
	strRegion
	strAccountManager
	numStringSlots
)

const (
	presentBytes = 3
	numSlots     = numNumberSlots + numStringSlots
	// maxFixedEventBytes bounds an encoding's size besides its string bytes.
	maxFixedEventBytes = binary.MaxVarintLen32 + 1 + binary.MaxVarintLen64 + presentBytes +
		numNumberSlots*binary.MaxVarintLen64 + numStringSlots*binary.MaxVarintLen64
)

// Compile-time check that every slot has a bit in present.
var _ [(1<<(8*presentBytes))>>numSlots - 1]struct{}

var errBadEvent = errors.New("corrupt encoded event")

// eventStrings returns pointers to e's string fields in slot order.
func eventStrings(e *operators.Event) [numStringSlots]*string {
	return [numStringSlots]*string{
		&e.ID, &e.TypeName, (*string)(&e.MemberID), &e.Currency, &e.ProductName,
		&e.Channel, &e.Origin, &e.Destination, &e.TripID, &e.BookingID,
		&e.Tier, &e.Region, &e.AccountManager,
	}
}

// eventStringBytes returns the total length of e's strings.
func eventStringBytes(e *operators.Event) int {
	return len(e.ID) + len(e.TypeName) + len(e.MemberID) + len(e.Currency) +
		len(e.ProductName) + len(e.Channel) + len(e.Origin) + len(e.Destination) +
		len(e.TripID) + len(e.BookingID) + len(e.Tier) + len(e.Region) + len(e.AccountManager)
}

// maxEventSize bounds the size of e's encoding.
func maxEventSize(e *operators.Event) int { return maxFixedEventBytes + eventStringBytes(e) }

// appendEvent appends the encoding of e to dst.
func appendEvent(dst []byte, e *operators.Event) []byte {
	dst = binary.AppendUvarint(dst, uint64(e.Has))
	dst = append(dst, byte(e.Type))
	dst = binary.AppendVarint(dst, e.OccurredAt)
	var present uint32
	setF := func(slot int, x float64) {
		if math.Float64bits(x) != 0 {
			present |= 1 << slot
		}
	}
	setI := func(slot int, x int64) {
		if x != 0 {
			present |= 1 << slot
		}
	}
	setF(slotAmount, e.Amount)
	setF(slotDistance, e.DistanceKm)
	setI(slotSegments, e.Segments)
	setF(slotDiscount, e.Discount)
	setI(slotProduct, int64(e.Product))
	setI(slotTripStart, int64(e.TripStart))
	setI(slotTripEnd, int64(e.TripEnd))
	setI(slotPoints, e.Points)
	setI(slotPointsBalance, e.PointsBalance)
	strs := eventStrings(e)
	for i, p := range strs {
		if len(*p) != 0 {
			present |= 1 << (numNumberSlots + i)
		}
	}
	dst = append(dst, byte(present), byte(present>>8), byte(present>>16))
	if present&(1<<numNumberSlots-1) != 0 {
		if present&(1<<slotAmount) != 0 {
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(e.Amount))
		}
		if present&(1<<slotDistance) != 0 {
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(e.DistanceKm))
		}
		if present&(1<<slotSegments) != 0 {
			dst = binary.AppendVarint(dst, e.Segments)
		}
		if present&(1<<slotDiscount) != 0 {
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(e.Discount))
		}
		if present&(1<<slotProduct) != 0 {
			dst = append(dst, byte(e.Product))
		}
		if present&(1<<slotTripStart) != 0 {
			dst = binary.AppendVarint(dst, int64(e.TripStart))
		}
		if present&(1<<slotTripEnd) != 0 {
			dst = binary.AppendVarint(dst, int64(e.TripEnd))
		}
		if present&(1<<slotPoints) != 0 {
			dst = binary.AppendVarint(dst, e.Points)
		}
		if present&(1<<slotPointsBalance) != 0 {
			dst = binary.AppendVarint(dst, e.PointsBalance)
		}
	}
	for _, p := range strs {
		if n := len(*p); n != 0 {
			dst = binary.AppendUvarint(dst, uint64(n))
		}
	}
	for _, p := range strs {
		dst = append(dst, *p...)
	}
	return dst
}

// eventDecoder reads encodings. Its zero value is ready to use.
type eventDecoder struct {
	b []byte
	i int
}

func (d *eventDecoder) uvarint() (uint64, bool) {
	x, n := binary.Uvarint(d.b[d.i:])
	if n <= 0 {
		return 0, false
	}
	d.i += n
	return x, true
}

func (d *eventDecoder) varint() (int64, bool) {
	x, n := binary.Varint(d.b[d.i:])
	if n <= 0 {
		return 0, false
	}
	d.i += n
	return x, true
}

func (d *eventDecoder) float() (float64, bool) {
	if len(d.b)-d.i < 8 {
		return 0, false
	}
	x := math.Float64frombits(binary.LittleEndian.Uint64(d.b[d.i:]))
	d.i += 8
	return x, true
}

func (d *eventDecoder) int32() (int32, bool) {
	x, ok := d.varint()
	if !ok || x < math.MinInt32 || x > math.MaxInt32 {
		return 0, false
	}
	return int32(x), true
}

// decodeEvent decodes the encoding at the start of b into e, overwriting
// it, and returns the number of bytes read. The strings of e share one new
// allocation and do not refer to b. On error e is unspecified.
func decodeEvent(b []byte, e *operators.Event) (int, error) {
	d := eventDecoder{b: b}
	has, ok := d.uvarint()
	if !ok || has > math.MaxUint32 || len(b)-d.i < 1 {
		return 0, errBadEvent
	}
	typ := b[d.i]
	d.i++
	t, ok := d.varint()
	if !ok || len(b)-d.i < presentBytes {
		return 0, errBadEvent
	}
	present := uint32(b[d.i]) | uint32(b[d.i+1])<<8 | uint32(b[d.i+2])<<16
	d.i += presentBytes
	if present>>numSlots != 0 {
		return 0, errBadEvent
	}
	*e = operators.Event{Has: operators.Field(has), Type: operators.EventType(typ), OccurredAt: t}
	if present&(1<<numNumberSlots-1) != 0 {
		if present&(1<<slotAmount) != 0 {
			if e.Amount, ok = d.float(); !ok {
				return 0, errBadEvent
			}
		}
		if present&(1<<slotDistance) != 0 {
			if e.DistanceKm, ok = d.float(); !ok {
				return 0, errBadEvent
			}
		}
		if present&(1<<slotSegments) != 0 {
			if e.Segments, ok = d.varint(); !ok {
				return 0, errBadEvent
			}
		}
		if present&(1<<slotDiscount) != 0 {
			if e.Discount, ok = d.float(); !ok {
				return 0, errBadEvent
			}
		}
		if present&(1<<slotProduct) != 0 {
			if d.i >= len(b) {
				return 0, errBadEvent
			}
			e.Product = operators.Product(b[d.i])
			d.i++
		}
		if present&(1<<slotTripStart) != 0 {
			if e.TripStart, ok = d.int32(); !ok {
				return 0, errBadEvent
			}
		}
		if present&(1<<slotTripEnd) != 0 {
			if e.TripEnd, ok = d.int32(); !ok {
				return 0, errBadEvent
			}
		}
		if present&(1<<slotPoints) != 0 {
			if e.Points, ok = d.varint(); !ok {
				return 0, errBadEvent
			}
		}
		if present&(1<<slotPointsBalance) != 0 {
			if e.PointsBalance, ok = d.varint(); !ok {
				return 0, errBadEvent
			}
		}
	}
	strPresent := present >> numNumberSlots
	if strPresent == 0 {
		return d.i, nil
	}
	var lens [numStringSlots]int
	total := 0
	for i := range lens {
		if strPresent&(1<<i) == 0 {
			continue
		}
		n, ok := d.uvarint()
		if !ok || n > uint64(len(b)) {
			return 0, errBadEvent
		}
		lens[i] = int(n)
		if total += int(n); total > len(b) {
			return 0, errBadEvent
		}
	}
	if total > len(b)-d.i {
		return 0, errBadEvent
	}
	// One allocation for every string of the event.
	all := string(b[d.i : d.i+total])
	d.i += total
	strs := eventStrings(e)
	p := 0
	for i, n := range lens {
		if n != 0 {
			*strs[i] = all[p : p+n]
			p += n
		}
	}
	return d.i, nil
}
