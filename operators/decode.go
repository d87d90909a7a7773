package operators

import (
	"errors"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/valyala/fastjson"
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
type Decoder struct {
	// MaxBytes rejects larger records as oversize (0: DefaultMaxEventBytes).
	MaxBytes int
	// Tiers, when non-nil, is the set of tier names events may carry.
	Tiers map[string]bool

	parser fastjson.Parser
	buf    []byte
	spans  [numStringFields]span
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
	// fastjson's parser is lenient (it takes 01, .5 and \x escapes); the
	// validator is exact JSON, so run it first.
	if err := fastjson.ValidateBytes(data); err != nil {
		return &ValidationError{Reason: ReasonInvalidJSON, Problem: "not valid JSON: " + truncate(err.Error(), 120)}
	}
	v, err := d.parser.ParseBytes(data)
	if err != nil {
		return &ValidationError{Reason: ReasonInvalidJSON, Problem: "not valid JSON: " + truncate(err.Error(), 120)}
	}
	o, err := v.Object()
	if err != nil {
		return &ValidationError{Reason: ReasonInvalidJSON, Problem: "not a JSON object"}
	}
	if k := duplicateKnownKey(o); k != "" {
		return &ValidationError{Reason: ReasonInvalidJSON, Field: k, Problem: "appears more than once"}
	}
	*e = Event{}
	d.buf = d.buf[:0]
	d.spans = [numStringFields]span{}

	if err := d.str(o, "event_id", sfEventID, maxIDLen, true); err != nil {
		return err
	}
	if err := d.str(o, "type", sfType, 64, true); err != nil {
		return err
	}
	if err := d.str(o, "member_id", sfMember, maxIDLen, true); err != nil {
		return err
	}
	e.Type = ParseEventType(d.spanString(sfType))

	at := o.Get("occurred_at")
	if isAbsent(at) {
		return missing("occurred_at")
	}
	atb, err := at.StringBytes()
	if err != nil {
		return invalid("occurred_at", "not a string")
	}
	t, ok := parseRFC3339(atb)
	if !ok {
		return invalid("occurred_at", "not RFC 3339")
	}
	e.OccurredAt = t

	// Optional fields, in schema order.
	if err := d.number(o, "amount", &e.Amount, FieldAmount, e, 0, maxAmount); err != nil {
		return err
	}
	if err := d.str(o, "currency", sfCurrency, 3, false); err != nil {
		return err
	}
	if s := d.spans[sfCurrency]; s.end > s.start {
		if !isCurrency(d.buf[s.start:s.end]) {
			return invalid("currency", "not a three-letter ISO 4217 code")
		}
		e.Has |= FieldCurrency
	}
	if err := d.number(o, "distance_km", &e.DistanceKm, FieldDistance, e, 0, maxDistance); err != nil {
		return err
	}
	if err := d.integer(o, "segments", &e.Segments, FieldSegments, e, maxSegments); err != nil {
		return err
	}
	if err := d.number(o, "discount", &e.Discount, FieldDiscount, e, 0, maxDiscount); err != nil {
		return err
	}
	if err := d.optStr(o, "product", sfProduct, FieldProduct, e); err != nil {
		return err
	}
	if err := d.optStr(o, "channel", sfChannel, FieldChannel, e); err != nil {
		return err
	}
	if err := d.optStr(o, "origin", sfOrigin, FieldOrigin, e); err != nil {
		return err
	}
	if err := d.optStr(o, "destination", sfDestination, FieldDestination, e); err != nil {
		return err
	}
	if err := d.date(o, "trip_start", &e.TripStart, FieldTripStart, e); err != nil {
		return err
	}
	if err := d.date(o, "trip_end", &e.TripEnd, FieldTripEnd, e); err != nil {
		return err
	}
	if e.Is(FieldTripStart) && e.Is(FieldTripEnd) && e.TripEnd < e.TripStart {
		return invalid("trip_end", "before trip_start")
	}
	if err := d.optStr(o, "trip_id", sfTripID, FieldTripID, e); err != nil {
		return err
	}
	if err := d.optStr(o, "booking_id", sfBookingID, FieldBookingID, e); err != nil {
		return err
	}
	if err := d.optStr(o, "tier", sfTier, FieldTier, e); err != nil {
		return err
	}
	if err := d.optStr(o, "region", sfRegion, FieldRegion, e); err != nil {
		return err
	}
	if err := d.optStr(o, "account_manager", sfAccountManager, FieldAccountManager, e); err != nil {
		return err
	}
	if err := d.integer(o, "points", &e.Points, FieldPoints, e, maxPoints); err != nil {
		return err
	}
	if err := d.integer(o, "points_balance", &e.PointsBalance, FieldPointsBalance, e, maxPoints); err != nil {
		return err
	}

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

	// One allocation for every string of the event.
	all := string(d.buf)
	sub := func(i int) string { s := d.spans[i]; return all[s.start:s.end] }
	e.ID = sub(sfEventID)
	e.TypeName = sub(sfType)
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
	if e.Is(FieldTier) && d.Tiers != nil && !d.Tiers[e.Tier] {
		return &ValidationError{Reason: ReasonUnknownTier, Field: "tier", Problem: fmt.Sprintf("unknown tier %q", truncate(e.Tier, 40))}
	}
	return nil
}

// knownKeys are the fields the decoder reads, in schema order.
var knownKeys = [...]string{"event_id", "type", "member_id", "occurred_at", "amount", "currency",
	"distance_km", "segments", "discount", "product", "channel", "origin", "destination",
	"trip_start", "trip_end", "trip_id", "booking_id", "tier", "region", "account_manager",
	"points", "points_balance"}

// duplicateKnownKey returns a field the decoder reads that appears twice in
// o (JSON parsers disagree on which copy wins, so such a record is
// ambiguous), or "".
func duplicateKnownKey(o *fastjson.Object) string {
	var seen uint32
	dup := ""
	o.Visit(func(key []byte, _ *fastjson.Value) {
		if dup != "" {
			return
		}
		for i := range knownKeys {
			if string(key) == knownKeys[i] {
				if seen&(1<<i) != 0 {
					dup = knownKeys[i]
				}
				seen |= 1 << i
				return
			}
		}
	})
	return dup
}

func (d *Decoder) spanString(i int) string {
	s := d.spans[i]
	return string(d.buf[s.start:s.end])
}

func isAbsent(v *fastjson.Value) bool { return v == nil || v.Type() == fastjson.TypeNull }

// str copies the string field key into the shared buffer.
func (d *Decoder) str(o *fastjson.Object, key string, slot, maxLen int, required bool) error {
	v := o.Get(key)
	if isAbsent(v) {
		if required {
			return missing(key)
		}
		return nil
	}
	b, err := v.StringBytes()
	if err != nil {
		return invalid(key, "not a string")
	}
	if len(b) == 0 {
		if required {
			return invalid(key, "empty")
		}
		return nil
	}
	if len(b) > maxLen {
		return invalid(key, fmt.Sprintf("longer than %d bytes", maxLen))
	}
	if !utf8.Valid(b) {
		return invalid(key, "not valid UTF-8")
	}
	for _, c := range b {
		if c < 0x20 || c == 0x7f {
			return invalid(key, "contains a control character")
		}
	}
	start := int32(len(d.buf))
	d.buf = append(d.buf, b...)
	d.spans[slot] = span{start, int32(len(d.buf))}
	return nil
}

func (d *Decoder) optStr(o *fastjson.Object, key string, slot int, f Field, e *Event) error {
	if err := d.str(o, key, slot, maxTextLen, false); err != nil {
		return err
	}
	if s := d.spans[slot]; s.end > s.start {
		e.Has |= f
	}
	return nil
}

func (d *Decoder) number(o *fastjson.Object, key string, dst *float64, f Field, e *Event, lo, hi float64) error {
	v := o.Get(key)
	if isAbsent(v) {
		return nil
	}
	if v.Type() != fastjson.TypeNumber {
		return invalid(key, "not a number")
	}
	x, err := v.Float64()
	if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
		return invalid(key, "not a finite number")
	}
	if x < lo {
		return invalid(key, "negative")
	}
	if x > hi {
		return invalid(key, fmt.Sprintf("greater than %g", hi))
	}
	*dst = x
	e.Has |= f
	return nil
}

func (d *Decoder) integer(o *fastjson.Object, key string, dst *int64, f Field, e *Event, hi float64) error {
	var x float64
	var tmp Event
	if err := d.number(o, key, &x, f, &tmp, 0, hi); err != nil {
		return err
	}
	if tmp.Has == 0 {
		return nil
	}
	if x != math.Trunc(x) {
		return invalid(key, "not a whole number")
	}
	*dst = int64(x)
	e.Has |= f
	return nil
}

func (d *Decoder) date(o *fastjson.Object, key string, dst *int32, f Field, e *Event) error {
	v := o.Get(key)
	if isAbsent(v) {
		return nil
	}
	b, err := v.StringBytes()
	if err != nil {
		return invalid(key, "not a string")
	}
	day, ok := parseDate(b)
	if !ok {
		return invalid(key, "not a date (YYYY-MM-DD)")
	}
	*dst = day
	e.Has |= f
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
