package operators

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// Reason is a short, fixed code saying why a record was rejected. Reasons
// label dead-letter records and metrics, so the set is small and stable.
type Reason string

// Rejection reasons.
const (
	ReasonInvalidJSON  Reason = "invalid_json"
	ReasonMissingField Reason = "missing_field"
	ReasonInvalidField Reason = "invalid_field"
	ReasonUnknownTier  Reason = "unknown_tier"
	ReasonOversize     Reason = "oversize"
	ReasonFuture       Reason = "future_timestamp"
	ReasonDuplicate    Reason = "duplicate"
	ReasonWrongTopic   Reason = "wrong_topic"
	// ReasonKeyMismatch: the Kafka message key is not the event's member_id
	// (the record would land in another member's partition).
	ReasonKeyMismatch Reason = "key_mismatch"
)

// ValidationError says which field of an event is wrong and how. Its Error
// text is meant for people ("occurred_at: not RFC 3339"); Reason is the code.
type ValidationError struct {
	Reason  Reason
	Field   string // empty when the problem is the whole record
	Problem string
}

func (e *ValidationError) Error() string {
	if e.Field == "" {
		return e.Problem
	}
	return e.Field + ": " + e.Problem
}

// ReasonOf returns the rejection reason carried by err, or ReasonInvalidField
// if err is not a *ValidationError.
func ReasonOf(err error) Reason {
	var ve *ValidationError
	if errors.As(err, &ve) {
		return ve.Reason
	}
	return ReasonInvalidField
}

func invalid(field, problem string) *ValidationError {
	return &ValidationError{Reason: ReasonInvalidField, Field: field, Problem: problem}
}

func missing(field string) *ValidationError {
	return &ValidationError{Reason: ReasonMissingField, Field: field, Problem: "missing"}
}

// Limits on decoded values. They keep one bad producer from bloating state.
const (
	// DefaultMaxEventBytes is the default size limit of one encoded event.
	DefaultMaxEventBytes = 64 << 10
	maxIDLen             = 128
	maxTextLen           = 256
	maxSegments          = 1000
	maxDiscount          = 1.5
	maxAmount            = 1e12
	maxDistance          = 1e6
	maxPoints            = 1e15
)

// Decoder decodes and validates JSON events. It reuses its buffers, so one
// Decoder must not be used by two goroutines at once; give each worker its own.
// A decoded Event's strings share one allocation per event.
//
// The record is read in one strict pass (RFC 8259 JSON; a field the decoder
// reads may appear only once). Errors come in this order: oversize, not
// JSON, the first field in the record with a wrong value, a missing
// required field, the tier check.
type Decoder struct {
	// MaxBytes rejects larger records as oversize (0: DefaultMaxEventBytes).
	MaxBytes int
	// Tiers, when non-nil, is the set of tier names events may carry.
	Tiers map[string]bool

	buf     []byte // unescaped string fields of the event being decoded
	tmp     []byte // scratch: escaped keys, timestamps and dates
	spans   [numStringFields]span
	hasTime bool // occurred_at was read
}

type span struct{ start, end int32 }

// String fields gathered into one buffer and converted once.
const (
	sfEventID = iota
	sfType
	sfMember
	sfCurrency
	sfProduct
	sfChannel
	sfOrigin
	sfDestination
	sfTripID
	sfBookingID
	sfTier
	sfRegion
	sfAccountManager
	numStringFields
)

// NewDecoder returns a decoder that accepts the given tier names (nil: any).
func NewDecoder(tiers []string) *Decoder {
	d := &Decoder{}
	if tiers != nil {
		d.Tiers = make(map[string]bool, len(tiers))
		for _, t := range tiers {
			d.Tiers[t] = true
		}
	}
	return d
}

// Known keys, by bit in the seen-set.
const (
	kEventID = iota
	kType
	kMember
	kOccurredAt
	kAmount
	kCurrency
	kDistance
	kSegments
	kDiscount
	kProduct
	kChannel
	kOrigin
	kDestination
	kTripStart
	kTripEnd
	kTripID
	kBookingID
	kTier
	kRegion
	kAccountManager
	kPoints
	kPointsBalance
	numKnownKeys
)

// knownKeys are the fields the decoder reads, in schema order.
var knownKeys = [numKnownKeys]string{"event_id", "type", "member_id", "occurred_at", "amount", "currency",
	"distance_km", "segments", "discount", "product", "channel", "origin", "destination",
	"trip_start", "trip_end", "trip_id", "booking_id", "tier", "region", "account_manager",
	"points", "points_balance"}

func keyIndex(k []byte) int {
	switch string(k) {
	case "event_id":
		return kEventID
	case "type":
		return kType
	case "member_id":
		return kMember
	case "occurred_at":
		return kOccurredAt
	case "amount":
		return kAmount
	case "currency":
		return kCurrency
	case "distance_km":
		return kDistance
	case "segments":
		return kSegments
	case "discount":
		return kDiscount
	case "product":
		return kProduct
	case "channel":
		return kChannel
	case "origin":
		return kOrigin
	case "destination":
		return kDestination
	case "trip_start":
		return kTripStart
	case "trip_end":
		return kTripEnd
	case "trip_id":
		return kTripID
	case "booking_id":
		return kBookingID
	case "tier":
		return kTier
	case "region":
		return kRegion
	case "account_manager":
		return kAccountManager
	case "points":
		return kPoints
	case "points_balance":
		return kPointsBalance
	}
	return -1
}

func notJSON(problem string) *ValidationError {
	return &ValidationError{Reason: ReasonInvalidJSON, Problem: "not valid JSON: " + problem}
}

// Decode parses one JSON event into e, overwriting it. On error e is
// unspecified and the error is a *ValidationError naming the field.
func (d *Decoder) Decode(data []byte, e *Event) error {
	maxBytes := d.MaxBytes
	if maxBytes <= 0 {
		maxBytes = DefaultMaxEventBytes
	}
	if len(data) > maxBytes {
		return &ValidationError{Reason: ReasonOversize, Problem: fmt.Sprintf("record is %d bytes, limit %d", len(data), maxBytes)}
	}
	*e = Event{}
	d.buf = d.buf[:0]
	d.spans = [numStringFields]span{}
	d.hasTime = false
	sc := scanner{b: data}
	sc.ws()
	if sc.peek() != '{' {
		if sc.i < len(data) && sc.skip(0) {
			sc.ws()
			if sc.i == len(data) {
				return &ValidationError{Reason: ReasonInvalidJSON, Problem: "not a JSON object"}
			}
		}
		if len(data) == 0 {
			return notJSON("empty record")
		}
		return notJSON("syntax error at byte " + itoa(sc.i))
	}
	sc.i++
	var fieldErr, dupErr *ValidationError
	var seen uint32
	sc.ws()
	if !sc.consume('}') {
		for {
			sc.ws()
			if sc.peek() != '"' {
				return notJSON("expected a field name at byte " + itoa(sc.i))
			}
			// Keys without escapes are read in place.
			var key []byte
			if j := indexQuoteOrEscape(data[sc.i+1:]); j >= 0 && data[sc.i+1+j] == '"' {
				key = data[sc.i+1 : sc.i+1+j]
				sc.i += j + 2
			} else {
				var ok bool
				d.tmp, ok = sc.str(d.tmp[:0])
				if !ok {
					return notJSON("bad field name at byte " + itoa(sc.i))
				}
				key = d.tmp
			}
			sc.ws()
			if !sc.consume(':') {
				return notJSON("expected ':' at byte " + itoa(sc.i))
			}
			sc.ws()
			k := keyIndex(key)
			if k >= 0 && seen&(1<<k) != 0 {
				if dupErr == nil {
					dupErr = &ValidationError{Reason: ReasonInvalidJSON, Field: knownKeys[k], Problem: "appears more than once"}
				}
				k = -1 // the copy is checked as JSON, not read
			} else if k >= 0 {
				seen |= 1 << k
			}
			ok, err := d.field(&sc, k, e)
			if !ok {
				return notJSON("bad value at byte " + itoa(sc.i))
			}
			if err != nil && fieldErr == nil {
				fieldErr = err
			}
			sc.ws()
			if sc.consume('}') {
				break
			}
			if !sc.consume(',') {
				return notJSON("expected ',' or '}' at byte " + itoa(sc.i))
			}
		}
	}
	sc.ws()
	if sc.i != len(data) {
		return notJSON("data after the object at byte " + itoa(sc.i))
	}
	if dupErr != nil {
		return dupErr
	}
	if fieldErr != nil {
		return fieldErr
	}
	// Required fields (null counts as missing).
	for _, k := range [...]int{kEventID, kType, kMember} {
		if sp := d.spans[stringSlot(k)]; sp.end == sp.start {
			return missing(knownKeys[k])
		}
	}
	if !d.hasTime {
		return missing("occurred_at")
	}
	if e.Is(FieldTripStart) && e.Is(FieldTripEnd) && e.TripEnd < e.TripStart {
		return invalid("trip_end", "before trip_start")
	}

	// One allocation for every string of the event.
	all := string(d.buf)
	sub := func(i int) string { s := d.spans[i]; return all[s.start:s.end] }
	e.ID = sub(sfEventID)
	e.TypeName = sub(sfType)
	e.Type = ParseEventType(e.TypeName)
	e.MemberID = MemberID(sub(sfMember))
	e.Currency = sub(sfCurrency)
	e.ProductName = sub(sfProduct)
	if e.Is(FieldProduct) {
		e.Product = parseProduct(e.ProductName)
	}
	e.Channel = sub(sfChannel)
	e.Origin = sub(sfOrigin)
	e.Destination = sub(sfDestination)
	e.TripID = sub(sfTripID)
	e.BookingID = sub(sfBookingID)
	e.Tier = sub(sfTier)
	e.Region = sub(sfRegion)
	e.AccountManager = sub(sfAccountManager)

	// Type-specific requirements.
	switch e.Type {
	case TypeCancellation:
		if !e.Is(FieldBookingID) {
			return missing("booking_id")
		}
	case TypeTierChange:
		if !e.Is(FieldTier) {
			return missing("tier")
		}
	}
	if e.Is(FieldTier) && d.Tiers != nil && !d.Tiers[e.Tier] {
		return &ValidationError{Reason: ReasonUnknownTier, Field: "tier", Problem: fmt.Sprintf("unknown tier %q", truncate(e.Tier, 40))}
	}
	return nil
}

func indexQuoteOrEscape(b []byte) int {
	for i, c := range b {
		if !plain[c] {
			return i
		}
	}
	return -1
}

// stringSlot maps a known key holding a string to its slot in spans.
func stringSlot(k int) int {
	switch k {
	case kEventID:
		return sfEventID
	case kType:
		return sfType
	case kMember:
		return sfMember
	case kCurrency:
		return sfCurrency
	case kProduct:
		return sfProduct
	case kChannel:
		return sfChannel
	case kOrigin:
		return sfOrigin
	case kDestination:
		return sfDestination
	case kTripID:
		return sfTripID
	case kBookingID:
		return sfBookingID
	case kTier:
		return sfTier
	case kRegion:
		return sfRegion
	case kAccountManager:
		return sfAccountManager
	}
	return -1
}

// field reads the value of known key k (or skips an unknown key's value).
// ok false means the JSON itself is broken; err is a problem with the value.
func (d *Decoder) field(sc *scanner, k int, e *Event) (ok bool, err *ValidationError) {
	if k < 0 {
		return sc.skip(0), nil
	}
	key := knownKeys[k]
	if sc.peek() == 'n' { // null: absent
		if !sc.literal("null") {
			return false, nil
		}
		return true, nil
	}
	switch k {
	case kOccurredAt, kTripStart, kTripEnd:
		if sc.peek() != '"' {
			return sc.skip(0), invalid(key, "not a string")
		}
		d.tmp, ok = sc.str(d.tmp[:0])
		if !ok {
			return false, nil
		}
		if k == kOccurredAt {
			t, good := parseRFC3339(d.tmp)
			if !good {
				return true, invalid(key, "not RFC 3339")
			}
			e.OccurredAt, d.hasTime = t, true
			return true, nil
		}
		day, good := parseDate(d.tmp)
		if !good {
			return true, invalid(key, "not a date (YYYY-MM-DD)")
		}
		if k == kTripStart {
			e.TripStart, e.Has = day, e.Has|FieldTripStart
		} else {
			e.TripEnd, e.Has = day, e.Has|FieldTripEnd
		}
		return true, nil
	case kAmount, kDistance, kDiscount, kSegments, kPoints, kPointsBalance:
		c := sc.peek()
		if c != '-' && (c < '0' || c > '9') {
			return sc.skip(0), invalid(key, "not a number")
		}
		var x float64
		x, ok = sc.num()
		if !ok {
			return false, nil
		}
		return true, setNumber(e, k, key, x)
	}
	// String fields.
	slot := stringSlot(k)
	if sc.peek() != '"' {
		return sc.skip(0), invalid(key, "not a string")
	}
	start := len(d.buf)
	d.buf, ok = sc.str(d.buf)
	if !ok {
		return false, nil
	}
	b := d.buf[start:]
	maxLen, required := maxTextLen, false
	switch k {
	case kEventID, kMember:
		maxLen, required = maxIDLen, true
	case kType:
		maxLen, required = 64, true
	case kCurrency:
		maxLen = 3
	}
	if problem := checkText(b, maxLen); problem != "" {
		d.buf = d.buf[:start]
		if len(b) == 0 && !required {
			return true, nil // an empty optional string is absent
		}
		return true, invalid(key, problem)
	}
	if k == kCurrency && !isCurrency(b) {
		d.buf = d.buf[:start]
		return true, invalid(key, "not a three-letter ISO 4217 code")
	}
	d.spans[slot] = span{int32(start), int32(len(d.buf))}
	if f := stringField(k); f != 0 {
		e.Has |= f
	}
	return true, nil
}

// checkText returns what is wrong with a string field's bytes, or "".
func checkText(b []byte, maxLen int) string {
	if len(b) == 0 {
		return "empty"
	}
	if len(b) > maxLen {
		return "longer than " + itoa(maxLen) + " bytes"
	}
	ascii := true
	for _, c := range b {
		if c < 0x20 || c == 0x7f {
			return "contains a control character"
		}
		ascii = ascii && c < 0x80
	}
	if !ascii && !utf8.Valid(b) {
		return "not valid UTF-8"
	}
	return ""
}

func stringField(k int) Field {
	switch k {
	case kCurrency:
		return FieldCurrency
	case kProduct:
		return FieldProduct
	case kChannel:
		return FieldChannel
	case kOrigin:
		return FieldOrigin
	case kDestination:
		return FieldDestination
	case kTripID:
		return FieldTripID
	case kBookingID:
		return FieldBookingID
	case kTier:
		return FieldTier
	case kRegion:
		return FieldRegion
	case kAccountManager:
		return FieldAccountManager
	}
	return 0
}

// setNumber range-checks a numeric field and stores it.
func setNumber(e *Event, k int, key string, x float64) *ValidationError {
	if !finite(x) {
		return invalid(key, "not a finite number")
	}
	if x < 0 {
		return invalid(key, "negative")
	}
	hi, whole := 0.0, false
	switch k {
	case kAmount:
		hi = maxAmount
	case kDistance:
		hi = maxDistance
	case kDiscount:
		hi = maxDiscount
	case kSegments:
		hi, whole = maxSegments, true
	case kPoints, kPointsBalance:
		hi, whole = maxPoints, true
	}
	if x > hi {
		return invalid(key, "greater than "+strconv.FormatFloat(hi, 'g', -1, 64))
	}
	if whole && x != math.Trunc(x) {
		return invalid(key, "not a whole number")
	}
	switch k {
	case kAmount:
		e.Amount, e.Has = x, e.Has|FieldAmount
	case kDistance:
		e.DistanceKm, e.Has = x, e.Has|FieldDistance
	case kDiscount:
		e.Discount, e.Has = x, e.Has|FieldDiscount
	case kSegments:
		e.Segments, e.Has = int64(x), e.Has|FieldSegments
	case kPoints:
		e.Points, e.Has = int64(x), e.Has|FieldPoints
	case kPointsBalance:
		e.PointsBalance, e.Has = int64(x), e.Has|FieldPointsBalance
	}
	return nil
}

func isCurrency(b []byte) bool {
	if len(b) != 3 {
		return false
	}
	for _, c := range b {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// parseDate parses YYYY-MM-DD into days since the epoch.
func parseDate(b []byte) (int32, bool) {
	if len(b) != 10 || b[4] != '-' || b[7] != '-' {
		return 0, false
	}
	y, ok1 := digits(b[0:4])
	m, ok2 := digits(b[5:7])
	dd, ok3 := digits(b[8:10])
	if !ok1 || !ok2 || !ok3 || m < 1 || m > 12 || dd < 1 || dd > daysIn(y, m) {
		return 0, false
	}
	return int32(daysFromCivil(y, m, dd)), true
}

// parseRFC3339 parses an RFC 3339 timestamp into Unix seconds (fractions of
// a second are truncated). The common forms are parsed by hand, anything
// else falls back to the time package, so acceptance is exactly RFC 3339.
func parseRFC3339(b []byte) (int64, bool) {
	// YYYY-MM-DDTHH:MM:SS then [.frac] then Z | ±HH:MM
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != 't') || b[13] != ':' || b[16] != ':' {
		return 0, false
	}
	y, ok1 := digits(b[0:4])
	mo, ok2 := digits(b[5:7])
	d, ok3 := digits(b[8:10])
	h, ok4 := digits(b[11:13])
	mi, ok5 := digits(b[14:16])
	s, ok6 := digits(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) || h > 23 || mi > 59 || s > 59 {
		return 0, false
	}
	rest := b[19:]
	if len(rest) > 0 && rest[0] == '.' {
		i := 1
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 1 {
			return 0, false
		}
		rest = rest[i:]
	}
	var off int64
	switch {
	case len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z'):
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, okh := digits(rest[1:3])
		om, okm := digits(rest[4:6])
		if !okh || !okm || oh > 23 || om > 59 {
			return 0, false
		}
		off = int64(oh*3600 + om*60)
		if rest[0] == '-' {
			off = -off
		}
	default:
		return 0, false
	}
	// Leap seconds (:60) are refused, as time.Parse refuses them. The
	// instant, once in UTC, must stay within years 0001-9999 so that it
	// can be written back as RFC 3339.
	t := daysFromCivil(y, mo, d)*secondsPerDay + int64(h*3600+mi*60+s) - off
	if t < minTime || t > maxTime {
		return 0, false
	}
	return t, true
}

// The range of instants an event may carry: 0001-01-01T00:00:00Z to
// 9999-12-31T23:59:59Z.
const (
	minTime = -62135596800
	maxTime = 253402300799
)

func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

func daysIn(y, m int) int {
	switch m {
	case 2:
		if isLeap(y) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil returns days since 1970-01-01 for a proleptic Gregorian date
// (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

// civilFromDays is the inverse of daysFromCivil.
func civilFromDays(z int64) (y, m, d int) {
	z += 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	yy := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = int(doy - (153*mp+2)/5 + 1)
	if mp < 10 {
		m = int(mp + 3)
	} else {
		m = int(mp - 9)
	}
	if m <= 2 {
		yy++
	}
	return int(yy), m, d
}

// FormatDay renders a day number as YYYY-MM-DD.
func FormatDay(day int32) string {
	y, m, d := civilFromDays(int64(day))
	return fmt.Sprintf("%04d-%02d-%02d", y, m, d)
}
