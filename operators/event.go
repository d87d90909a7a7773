package operators

import (
	"time"
)

// MemberID identifies a loyalty-programme member. It is the Kafka message key
// of every input and output record.
type MemberID string

// EventType is the kind of an input event. Unknown types decode as
// TypeOther and count as member activity.
type EventType uint8

// Event types of the booking and activity topics (DESIGN.md, "Events in").
const (
	TypeOther EventType = iota
	TypeBooking
	TypeCancellation
	TypeEnrolment
	TypeProfileUpdate
	TypeLogin
	TypeSearch
	TypeAppOpen
	TypePointsEarned
	TypeRedemption
	TypeTierChange
	TypeComplaint
	TypeMemberDeleted
	numEventTypes
)

var eventTypeNames = [numEventTypes]string{
	TypeOther:         "other",
	TypeBooking:       "booking",
	TypeCancellation:  "cancellation",
	TypeEnrolment:     "enrolment",
	TypeProfileUpdate: "profile_update",
	TypeLogin:         "login",
	TypeSearch:        "search",
	TypeAppOpen:       "app_open",
	TypePointsEarned:  "points_earned",
	TypeRedemption:    "redemption",
	TypeTierChange:    "tier_change",
	TypeComplaint:     "complaint",
	TypeMemberDeleted: "member_deleted",
}

// String returns the wire name of the type ("other" for unknown types).
func (t EventType) String() string {
	if t < numEventTypes {
		return eventTypeNames[t]
	}
	return "other"
}

// ParseEventType maps a wire type name to its EventType; unknown names give
// TypeOther.
func ParseEventType(s string) EventType {
	for i, n := range eventTypeNames {
		if i != int(TypeOther) && n == s {
			return EventType(i)
		}
	}
	return TypeOther
}

// IsBookingTopic reports whether events of this type belong on the booking
// topic (booking and cancellation); every other type is an activity event.
func (t EventType) IsBookingTopic() bool { return t == TypeBooking || t == TypeCancellation }

// Field is a bit naming one optional event field. Event.Has records which
// optional fields were present: an absent field is unknown, not zero.
type Field uint32

// Optional event fields.
const (
	FieldAmount Field = 1 << iota
	FieldCurrency
	FieldDistance
	FieldSegments
	FieldDiscount
	FieldProduct
	FieldChannel
	FieldOrigin
	FieldDestination
	FieldTripStart
	FieldTripEnd
	FieldTripID
	FieldBookingID
	FieldTier
	FieldRegion
	FieldAccountManager
	FieldPoints
	FieldPointsBalance
)

// Product is the product of a booking.
type Product uint8

// Booking products. Unknown product names decode as ProductOther.
const (
	ProductUnknown Product = iota // product field absent
	ProductFlight
	ProductHotel
	ProductTrain
	ProductPackage
	ProductCar
	ProductOther
	numProducts
)

var productNames = [numProducts]string{"unknown", "flight", "hotel", "train", "package", "car", "other"}

// String returns the product's wire name.
func (p Product) String() string {
	if p < numProducts {
		return productNames[p]
	}
	return "other"
}

func parseProduct(s string) Product {
	for i := ProductFlight; i < ProductOther; i++ {
		if productNames[i] == s {
			return i
		}
	}
	return ProductOther
}

// Event is one decoded, validated input event. Times are Unix seconds (UTC);
// dates (trip start and end) are days since the Unix epoch. Optional fields
// are meaningful only when their bit is set in Has.
type Event struct {
	ID         string
	Type       EventType
	TypeName   string // the wire type, kept for unknown types
	MemberID   MemberID
	OccurredAt int64 // Unix seconds
	Has        Field

	Amount         float64
	Currency       string
	DistanceKm     float64
	Segments       int64
	Discount       float64
	Product        Product
	ProductName    string
	Channel        string
	Origin         string
	Destination    string
	TripStart      int32 // days since epoch
	TripEnd        int32 // days since epoch
	TripID         string
	BookingID      string
	Tier           string
	Region         string
	AccountManager string
	Points         int64
	PointsBalance  int64
}

// Time returns OccurredAt as a time.Time in UTC.
func (e *Event) Time() time.Time { return time.Unix(e.OccurredAt, 0).UTC() }

// Is reports whether the optional field f was present.
func (e *Event) Is(f Field) bool { return e.Has&f != 0 }

// IsActivity reports whether the event counts as member activity (everything
// but bookings, which are tracked separately, and erasure).
func (e *Event) IsActivity() bool {
	return e.Type != TypeBooking && e.Type != TypeMemberDeleted
}

const secondsPerDay = 86400

// DayOf returns the UTC day number (days since the Unix epoch) of a Unix time.
func DayOf(unix int64) int32 {
	d := unix / secondsPerDay
	if unix < 0 && unix%secondsPerDay != 0 {
		d--
	}
	return int32(d)
}
