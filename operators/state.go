package operators

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// MaxHistoryDays bounds the booking history a member keeps: bookings older
// than the longest window (at most this) are dropped from the history. The
// lifetime counters (bookings, first and last booking) keep them.
const MaxHistoryDays = 1100

// maxBookingsHeld bounds one member's booking history; past it the oldest
// entries are dropped (a cancellation of those is then unmatched).
const maxBookingsHeld = 1024

// maxTripsHeld bounds a member's open trips awaiting a hotel.
const maxTripsHeld = 32

// NoDiscount marks a booking whose discount was not given.
const NoDiscount = 0xff

// Booking is one booking in a member's history. Amounts are rounded:
// revenue to hundredths, distance to whole km.
type Booking struct {
	IDHash   uint64 // hash of the booking's event_id, for cancellations
	Revenue  int64  // amount × 100
	Day      int32  // day of occurred_at
	Sec      uint32 // second of that day (0-86399)
	Km       uint32
	Segments uint16 // flight segments (1 when a flight omits it)
	Discount uint8  // discount × 100, NoDiscount if absent
	Product  Product
}

// At returns the booking's time in Unix seconds.
func (b *Booking) At() int64 { return int64(b.Day)*secondsPerDay + int64(b.Sec) }

// qualifies reports whether the booking counts towards tier qualification:
// flights, and bookings with no product that carry a distance.
func (b *Booking) qualifies() bool {
	return b.Product == ProductFlight || (b.Product == ProductUnknown && b.Km > 0)
}

// Trip is a flight booking waiting for a hotel booking (cross-sell).
type Trip struct {
	Deadline    int64  // Unix seconds: no hotel by then gives the nudge
	BookingHash uint64 // the flight booking's event_id hash
	Ref         string // trip_id, or the flight booking's event_id
	StartDay    int32  // trip_start, if HasDates
	EndDay      int32  // trip_end (StartDay when not given), if HasDates
	DestHash    uint32 // hash of destination, 0 if not given
	HasTripID   bool
	HasDates    bool
}

// stateFlags are boolean facts about a member.
type stateFlags uint16

const (
	flagEnrolledKnown stateFlags = 1 << iota
	flagTierKnown
	flagHasBooked
	flagHasActivity
	flagDormant
	flagRedeemed
	flagRetentionDisarmed
	flagFirstRedemptionNudged
	flagDeleted
	flagDormancyAlerted // the current episode's dormancy alert was sent
	numStateFlags       = iota
)

// MemberState is everything churnflow keeps about one member. Times are
// Unix seconds. The zero value is a member not seen yet.
type MemberState struct {
	Clock         int64 // time of the last evaluation
	Due           int64 // when the member must next be evaluated, 0 if never
	Enrolled      int64 // enrolment, or first event seen
	FirstBooking  int64 // valid if flagHasBooked
	LastBooking   int64 // valid if flagHasBooked
	LastActivity  int64 // valid if flagHasActivity
	DormantSince  int64 // episode start, valid if flagDormant
	RetentionAt   int64 // last retention alert, 0 if none
	DeletedAt     int64 // valid if flagDeleted
	PointsBalance int64
	Bookings      uint32 // lifetime bookings, net of cancellations
	BookingDays   uint32 // distinct days with a booking (BG/NBD x = BookingDays-1)
	UpgradeNudged uint32 // period id + 1 of the last upgrade nudge, 0 if none
	KeepNudged    uint32 // period id + 1 of the last keep-tier nudge, 0 if none
	UpgradeTarget uint8  // tier of the last upgrade nudge
	Tier          uint8
	Segment       Segment
	Stage         Stage
	flags         stateFlags

	Region         string
	AccountManager string
	History        []Booking // ascending by time
	Trips          []Trip    // ascending by Deadline
}

func (s *MemberState) has(f stateFlags) bool { return s.flags&f != 0 }
func (s *MemberState) set(f stateFlags, on bool) {
	if on {
		s.flags |= f
	} else {
		s.flags &^= f
	}
}

// IsNew reports whether the state holds no member yet.
func (s *MemberState) IsNew() bool { return s.Enrolled == 0 && s.flags == 0 && s.Clock == 0 }

// Dormant reports whether the member is sleeping.
func (s *MemberState) Dormant() bool { return s.has(flagDormant) }

// Deleted reports whether the member was erased (a tombstone).
func (s *MemberState) Deleted() bool { return s.has(flagDeleted) }

// HasBooked reports whether the member has at least one booking.
func (s *MemberState) HasBooked() bool { return s.has(flagHasBooked) }

// TierKnown reports whether a tier was ever given for the member.
func (s *MemberState) TierKnown() bool { return s.has(flagTierKnown) }

// LastSeen is the later of the last booking and the last activity.
func (s *MemberState) LastSeen() int64 {
	t := s.Enrolled
	if s.has(flagHasBooked) && s.LastBooking > t {
		t = s.LastBooking
	}
	if s.has(flagHasActivity) && s.LastActivity > t {
		t = s.LastActivity
	}
	return t
}

// BGNBDStats returns the BG/NBD sufficient statistics in days: x repeat
// booking days, t_x the age at the last booking, T the age now, measured
// from the first booking.
func (s *MemberState) BGNBDStats(now int64) (x int, tx, T float64) {
	if !s.has(flagHasBooked) || s.BookingDays == 0 {
		return 0, 0, 0
	}
	x = int(s.BookingDays) - 1
	tx = float64(s.LastBooking-s.FirstBooking) / secondsPerDay
	T = float64(now-s.FirstBooking) / secondsPerDay
	return x, tx, T
}

// stateVersion is the current encoding version. Decode keeps accepting
// every earlier version; the golden test in testdata pins each one.
const stateVersion = 1

// Errors from DecodeState.
var (
	// ErrStateVersion is returned for an encoding newer than this build.
	ErrStateVersion = errors.New("operators: unknown member state encoding version")
	// ErrStateCorrupt is returned for bytes that are not a valid encoding.
	ErrStateCorrupt = errors.New("operators: corrupt member state encoding")
)

// AppendEncode appends the versioned binary encoding of s to dst.
//
// Layout (version 1): version byte, flags (uvarint), then signed varints of
// Clock, and of Due, Enrolled, FirstBooking, LastBooking, LastActivity,
// DormantSince, RetentionAt and DeletedAt relative to Clock (appendTime), then
// PointsBalance, the counters, tier and segment bytes, the two routing
// strings, the history (count, then per booking: day delta, id hash,
// revenue, km, segments, discount, product) and the open trips.
func (s *MemberState) AppendEncode(dst []byte) []byte {
	dst = append(dst, stateVersion)
	dst = binary.AppendUvarint(dst, uint64(s.flags))
	dst = binary.AppendVarint(dst, s.Clock)
	for _, t := range [...]int64{s.Due, s.Enrolled, s.FirstBooking, s.LastBooking, s.LastActivity, s.DormantSince, s.RetentionAt, s.DeletedAt} {
		dst = appendTime(dst, t, s.Clock)
	}
	dst = binary.AppendVarint(dst, s.PointsBalance)
	dst = binary.AppendUvarint(dst, uint64(s.Bookings))
	dst = binary.AppendUvarint(dst, uint64(s.BookingDays))
	dst = binary.AppendUvarint(dst, uint64(s.UpgradeNudged))
	dst = binary.AppendUvarint(dst, uint64(s.KeepNudged))
	dst = append(dst, s.UpgradeTarget, s.Tier, byte(s.Segment), byte(s.Stage))
	dst = appendString(dst, s.Region)
	dst = appendString(dst, s.AccountManager)
	dst = binary.AppendUvarint(dst, uint64(len(s.History)))
	prev := int32(0)
	for i := range s.History {
		b := &s.History[i]
		if i == 0 {
			dst = binary.AppendVarint(dst, int64(b.Day))
		} else {
			dst = binary.AppendUvarint(dst, uint64(int64(b.Day)-int64(prev)))
		}
		prev = b.Day
		dst = binary.AppendUvarint(dst, uint64(b.Sec))
		dst = binary.LittleEndian.AppendUint64(dst, b.IDHash)
		dst = binary.AppendVarint(dst, b.Revenue)
		dst = binary.AppendUvarint(dst, uint64(b.Km))
		dst = binary.AppendUvarint(dst, uint64(b.Segments))
		dst = append(dst, b.Discount, byte(b.Product))
	}
	dst = binary.AppendUvarint(dst, uint64(len(s.Trips)))
	for i := range s.Trips {
		t := &s.Trips[i]
		var f byte
		if t.HasTripID {
			f |= 1
		}
		if t.HasDates {
			f |= 2
		}
		dst = append(dst, f)
		dst = appendTime(dst, t.Deadline, s.Clock)
		dst = binary.LittleEndian.AppendUint64(dst, t.BookingHash)
		dst = appendString(dst, t.Ref)
		dst = binary.AppendVarint(dst, int64(t.StartDay))
		dst = binary.AppendVarint(dst, int64(t.EndDay)-int64(t.StartDay))
		dst = binary.LittleEndian.AppendUint32(dst, t.DestHash)
	}
	return dst
}

// appendTime writes a time as 0 when unset, else as 1 + the zig-zag delta
// from the clock, which is small for the times a member holds.
func appendTime(dst []byte, t, clock int64) []byte {
	if t == 0 {
		return append(dst, 0)
	}
	d := t - clock
	return binary.AppendUvarint(dst, (uint64(d<<1)^uint64(d>>63))+1)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// DecodeState decodes an encoding made by AppendEncode (any version up to
// the current one) into s, replacing its contents. It accepts exactly the
// canonical encodings, so a decoded state re-encodes to the same bytes.
func DecodeState(data []byte, s *MemberState) error {
	if len(data) == 0 {
		return fmt.Errorf("%w: empty", ErrStateCorrupt)
	}
	if data[0] != 1 {
		if data[0] > stateVersion {
			return fmt.Errorf("%w: version %d", ErrStateVersion, data[0])
		}
		return fmt.Errorf("%w: version %d", ErrStateCorrupt, data[0])
	}
	r := reader{b: data[1:]}
	*s = MemberState{History: s.History[:0], Trips: s.Trips[:0]}
	flags := r.uvarint()
	if flags >= 1<<numStateFlags {
		return fmt.Errorf("%w: unknown flags %#x", ErrStateCorrupt, flags)
	}
	s.flags = stateFlags(flags)
	s.Clock = r.varint()
	for _, p := range [...]*int64{&s.Due, &s.Enrolled, &s.FirstBooking, &s.LastBooking, &s.LastActivity, &s.DormantSince, &s.RetentionAt, &s.DeletedAt} {
		*p = r.time(s.Clock)
	}
	s.PointsBalance = r.varint()
	s.Bookings = r.uint32()
	s.BookingDays = r.uint32()
	s.UpgradeNudged = r.uint32()
	s.KeepNudged = r.uint32()
	s.UpgradeTarget = r.byte()
	s.Tier = r.byte()
	s.Segment = Segment(r.byte())
	s.Stage = Stage(r.byte())
	if s.Segment >= numSegments || s.Stage >= numStages {
		r.fail("segment or stage out of range")
	}
	s.Region = r.string()
	s.AccountManager = r.string()
	n := r.count(maxBookingsHeld, 12)
	if r.err == nil && n > 0 {
		if cap(s.History) < n {
			s.History = make([]Booking, n)
		}
		s.History = s.History[:n]
		prev := int64(0)
		for i := 0; i < n && r.err == nil; i++ {
			b := &s.History[i]
			var day int64
			if i == 0 {
				day = r.varint()
			} else {
				delta := r.uvarint()
				if delta > math.MaxUint32 {
					r.fail("booking day out of order")
				}
				day = prev + int64(delta)
			}
			if day < math.MinInt32 || day > math.MaxInt32 {
				r.fail("booking day out of range")
			}
			b.Day = int32(day)
			prev = day
			sec := r.uvarint()
			if sec >= secondsPerDay {
				r.fail("booking second out of range")
			}
			b.Sec = uint32(sec)
			b.IDHash = r.uint64le()
			b.Revenue = r.varint()
			b.Km = r.uint32()
			seg := r.uvarint()
			if seg > math.MaxUint16 {
				r.fail("segments out of range")
			}
			b.Segments = uint16(seg)
			b.Discount = r.byte()
			b.Product = Product(r.byte())
			if b.Product >= numProducts {
				r.fail("product out of range")
			}
		}
	}
	m := r.count(maxTripsHeld, 14)
	if r.err == nil && m > 0 {
		if cap(s.Trips) < m {
			s.Trips = make([]Trip, m)
		}
		s.Trips = s.Trips[:m]
		for i := 0; i < m && r.err == nil; i++ {
			t := &s.Trips[i]
			f := r.byte()
			if f > 3 {
				r.fail("trip flags out of range")
			}
			t.HasTripID, t.HasDates = f&1 != 0, f&2 != 0
			t.Deadline = r.time(s.Clock)
			t.BookingHash = r.uint64le()
			t.Ref = r.string()
			start := r.varint()
			end := start + r.varint()
			if start < math.MinInt32 || start > math.MaxInt32 || end < math.MinInt32 || end > math.MaxInt32 {
				r.fail("trip day out of range")
			}
			t.StartDay, t.EndDay = int32(start), int32(end)
			t.DestHash = r.uint32le()
		}
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return r.err
	}
	if len(s.History) == 0 {
		s.History = nil
	}
	if len(s.Trips) == 0 {
		s.Trips = nil
	}
	return nil
}

// reader decodes canonical varints and fixed fields, remembering the first
// error so that the decoder reads straight through.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrStateCorrupt, what)
	}
	r.b = nil
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	// Canonical: no redundant high zero groups.
	if n > 1 && r.b[n-1] == 0 {
		r.fail("non-canonical varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	u := r.uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

// time reads what appendTime wrote.
func (r *reader) time(clock int64) int64 {
	u := r.uvarint()
	if u == 0 || r.err != nil {
		return 0
	}
	u--
	d := int64(u >> 1)
	if u&1 != 0 {
		d = ^d
	}
	t := r.addClock(clock, d)
	if t == 0 {
		r.fail("non-canonical time")
	}
	return t
}

// addClock adds a delta to the clock, failing on overflow, so that the
// re-encoded delta is the one read.
func (r *reader) addClock(clock, delta int64) int64 {
	res := int64(uint64(clock) + uint64(delta))
	if (delta > 0 && res < clock) || (delta < 0 && res > clock) {
		r.fail("time out of range")
		return 0
	}
	return res
}

func (r *reader) uint32() uint32 {
	v := r.uvarint()
	if v > math.MaxUint32 {
		r.fail("counter out of range")
		return 0
	}
	return uint32(v)
}

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 1 {
		r.fail("truncated")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uint64le() uint64 {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 8 {
		r.fail("truncated")
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) uint32le() uint32 {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 4 {
		r.fail("truncated")
		return 0
	}
	v := binary.LittleEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *reader) string() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) || n > maxTextLen {
		r.fail("bad string length")
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// count reads a list length, checking it against a limit and against the
// bytes left (each element takes at least minBytes).
func (r *reader) count(limit, minBytes int) int {
	n := r.uvarint()
	if r.err != nil {
		return 0
	}
	if n > uint64(limit) || n*uint64(minBytes) > uint64(len(r.b)) {
		r.fail("bad list length")
		return 0
	}
	return int(n)
}
