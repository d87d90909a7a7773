package gen

import (
	"bytes"
	"strconv"

	"github.com/churnflow/churnflow/operators"
)

// BadKind names the damage of a malformed record.
type BadKind string

// Kinds of malformed records. Each one fails operators.Decoder.Decode.
const (
	BadInvalidJSON      BadKind = "invalid_json"      // truncated, trailing garbage, not JSON at all
	BadMissingField     BadKind = "missing_field"     // a required field left out
	BadWrongType        BadKind = "wrong_type"        // a string where a number belongs, or the reverse
	BadNegativeDistance BadKind = "negative_distance" // a flight booking with distance_km < 0
	BadTimestamp        BadKind = "bad_timestamp"     // occurred_at not RFC 3339
)

// BadKinds lists the kinds of malformed records.
func BadKinds() []BadKind {
	return []BadKind{BadInvalidJSON, BadMissingField, BadWrongType, BadNegativeDistance, BadTimestamp}
}

// malform appends to dst a malformed record made from the good event g
// (which it does not change) and returns it with its kind.
func (s *Stream) malform(dst []byte, g *operators.Event) ([]byte, BadKind) {
	r := &s.r
	kinds := BadKinds()
	kind := kinds[r.intn(len(kinds))]
	e := *g
	e.ID = "bad-" + strconv.FormatInt(s.stats.Bad+1, 10)
	switch kind {
	case BadInvalidJSON:
		b := e.AppendJSON(dst)
		switch r.intn(3) {
		case 0: // cut short, as by a producer that died mid-write
			return b[:len(dst)+1+r.intn(len(b)-len(dst)-1)], kind
		case 1:
			return append(b, "}"...), kind
		default: // a CSV line on the wrong topic
			b = append(dst, e.ID...)
			b = append(b, ',')
			b = append(b, e.MemberID...)
			b = append(b, ',')
			return append(b, e.TypeName...), kind
		}
	case BadMissingField:
		keys := []string{"event_id", "type", "member_id", "occurred_at"}
		if e.Type == operators.TypeCancellation {
			keys = append(keys, "booking_id")
		}
		return removeKey(e.AppendJSON(dst), len(dst), keys[r.intn(len(keys))]), kind
	case BadWrongType:
		var key, val string
		switch r.intn(4) {
		case 0:
			key, val = "occurred_at", strconv.FormatInt(e.OccurredAt, 10)
		case 1:
			key, val = "member_id", strconv.Itoa(1+r.intn(1_000_000))
		case 2:
			key, e.Has = "amount", e.Has&^operators.FieldAmount
			val = `"` + strconv.FormatFloat(e.Amount+1, 'f', 2, 64) + `"`
		default:
			key, e.Has = "segments", e.Has&^operators.FieldSegments
			val = `"` + strconv.Itoa(1+r.intn(4)) + `"`
		}
		b := e.AppendJSON(dst)
		if key == "occurred_at" || key == "member_id" {
			return replaceValue(b, len(dst), key, val), kind
		}
		return append(append(append(b[:len(b)-1], `,"`+key+`":`...), val...), '}'), kind
	case BadNegativeDistance:
		if e.Type != operators.TypeBooking {
			e.Type, e.TypeName = operators.TypeBooking, "booking"
			e.Product, e.ProductName = operators.ProductFlight, "flight"
			e.Has |= operators.FieldProduct
			e.DistanceKm = float64(300 + r.intn(3000))
		}
		e.DistanceKm = -max(1, e.DistanceKm)
		e.Has |= operators.FieldDistance
		return e.AppendJSON(dst), kind
	default: // BadTimestamp
		ts := operators.FormatTime(e.OccurredAt) // 2006-01-02T15:04:05Z
		var val string
		switch r.intn(5) {
		case 0:
			val = ts[:10] + " " + ts[11:19] // no T, no zone
		case 1:
			val = ts[:19] // no zone
		case 2:
			val = ts[:5] + "13" + ts[7:] // month 13
		case 3:
			val = ts[:8] + "32" + ts[10:] // day 32
		default:
			val = "yesterday"
		}
		return replaceValue(e.AppendJSON(dst), len(dst), "occurred_at", `"`+val+`"`), kind
	}
}

// valueSpan returns the start and end of the value of key in the flat JSON
// object b[from:], as written by operators.Event.AppendJSON (no nesting,
// strings without escaped quotes), and the start of the key.
func valueSpan(b []byte, from int, key string) (keyStart, start, end int) {
	i := bytes.Index(b[from:], []byte(`"`+key+`":`))
	if i < 0 {
		return -1, -1, -1
	}
	keyStart = from + i
	start = keyStart + len(key) + 3
	end = start
	if b[start] == '"' {
		end = start + 1 + bytes.IndexByte(b[start+1:], '"') + 1
	} else {
		for end < len(b) && b[end] != ',' && b[end] != '}' {
			end++
		}
	}
	return keyStart, start, end
}

// replaceValue replaces the value of key in the object b[from:].
func replaceValue(b []byte, from int, key, val string) []byte {
	_, start, end := valueSpan(b, from, key)
	if start < 0 {
		return b
	}
	tail := append([]byte(val), b[end:]...)
	return append(b[:start], tail...)
}

// removeKey removes key and its value from the object b[from:].
func removeKey(b []byte, from int, key string) []byte {
	ks, _, end := valueSpan(b, from, key)
	if ks < 0 {
		return b
	}
	if b[end] == ',' { // first or middle member: drop the comma after it
		end++
	} else if b[ks-1] == ',' { // last member: drop the comma before it
		ks--
	}
	return append(b[:ks], b[end:]...)
}
