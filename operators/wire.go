package operators

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// AlertSchemaVersion is the schema_version every alert carries
// (docs/schemas/alert.schema.json).
const AlertSchemaVersion = 1

// AlertJSON is the wire form of an alert (DESIGN.md, "Alerts out").
type AlertJSON struct {
	AlertID         string       `json:"alert_id"`
	Type            string       `json:"type"`
	MemberID        string       `json:"member_id"`
	TriggeredAt     string       `json:"triggered_at"`
	EmittedAt       string       `json:"emitted_at"`
	Reason          string       `json:"reason"`
	Reasons         []string     `json:"reasons,omitempty"`
	Severity        string       `json:"severity"`
	Member          MemberJSON   `json:"member"`
	SuggestedAction string       `json:"suggested_action,omitempty"`
	ValueAtRisk     *float64     `json:"value_at_risk,omitempty"`
	Target          string       `json:"target,omitempty"`
	Period          string       `json:"period,omitempty"`
	Previous        *PrevSegJSON `json:"previous,omitempty"`
	SchemaVersion   int          `json:"schema_version"`
}

// MemberJSON is the member context inside an alert.
type MemberJSON struct {
	Tier           string    `json:"tier,omitempty"`
	Segment        string    `json:"segment"`
	Stage          string    `json:"stage"`
	Region         string    `json:"region,omitempty"`
	AccountManager string    `json:"account_manager,omitempty"`
	Dormant        bool      `json:"dormant"`
	LRFMC          LRFMCJSON `json:"lrfmc"`
	ValueScore     float64   `json:"value_score"`
	PAlive         *float64  `json:"p_alive,omitempty"`
	// With a fitted model (docs/model.md): expected bookings in the next 90
	// days, rounded to thousandths, and the customer lifetime value,
	// rounded to hundredths.
	ExpectedBookings90d *float64 `json:"expected_bookings_90d,omitempty"`
	CLV                 *float64 `json:"clv,omitempty"`
}

// LRFMCJSON is the wire form of the LRFMC figures; R and C are null when
// unknown (never booked; no discount given).
type LRFMCJSON struct {
	L int      `json:"L"`
	R *int     `json:"R"`
	F int      `json:"F"`
	M float64  `json:"M"`
	C *float64 `json:"C"`
}

// PrevSegJSON is the segment and stage before a segment change.
type PrevSegJSON struct {
	Segment string `json:"segment"`
	Stage   string `json:"stage"`
}

// FormatTime renders Unix seconds as RFC 3339 in UTC.
func FormatTime(unix int64) string { return time.Unix(unix, 0).UTC().Format(time.RFC3339) }

// Wire returns the wire form of a; emittedAt is when it leaves churnflow
// (replay uses the trigger time, so its output is reproducible).
func (a *Alert) Wire(emittedAt int64) AlertJSON {
	m := &a.Member
	w := AlertJSON{
		AlertID:         a.ID,
		Type:            a.Type.String(),
		MemberID:        string(a.MemberID),
		TriggeredAt:     FormatTime(a.TriggeredAt),
		EmittedAt:       FormatTime(emittedAt),
		Reason:          a.Reason,
		Reasons:         a.Reasons,
		Severity:        a.Severity.String(),
		SuggestedAction: a.Action,
		Target:          a.Target,
		Period:          a.Period,
		SchemaVersion:   AlertSchemaVersion,
		Member: MemberJSON{
			Tier:           m.Tier,
			Segment:        m.Segment.String(),
			Stage:          m.Stage.String(),
			Region:         m.Region,
			AccountManager: m.AccountManager,
			Dormant:        m.Dormant,
			ValueScore:     m.ValueScore,
			LRFMC:          LRFMCJSON{L: m.LRFMC.L, F: m.LRFMC.F, M: round2(m.LRFMC.M)},
		},
	}
	if m.LRFMC.R >= 0 {
		r := m.LRFMC.R
		w.Member.LRFMC.R = &r
	}
	if m.LRFMC.HasC {
		c := round2(m.LRFMC.C)
		w.Member.LRFMC.C = &c
	}
	if m.HasPAlive {
		p := math.Round(m.PAlive*1000) / 1000
		w.Member.PAlive = &p
	}
	if m.HasExpected {
		e := math.Round(m.ExpectedBookings*1000) / 1000
		w.Member.ExpectedBookings90d = &e
	}
	if m.HasCLV {
		c := round2(m.CLV)
		w.Member.CLV = &c
	}
	if a.Type == AlertRetention {
		v := a.ValueAtRisk
		w.ValueAtRisk = &v
	}
	if a.Type == AlertSegmentChange {
		w.Previous = &PrevSegJSON{Segment: a.PrevSegment.String(), Stage: a.PrevStage.String()}
	}
	return w
}

// AppendJSON appends the alert's JSON object (no newline) to dst: the same
// document as json.Marshal(a.Wire(emittedAt)), written without reflection
// (replay and the pipeline encode every alert on the hot path).
func (a *Alert) AppendJSON(dst []byte, emittedAt int64) []byte {
	m := &a.Member
	dst = append(dst, `{"alert_id":`...)
	dst = appendJSONString(dst, a.ID)
	dst = append(dst, `,"type":"`...)
	dst = append(dst, a.Type.String()...)
	dst = append(dst, `","member_id":`...)
	dst = appendJSONString(dst, string(a.MemberID))
	dst = append(dst, `,"triggered_at":"`...)
	dst = appendRFC3339(dst, a.TriggeredAt)
	dst = append(dst, `","emitted_at":"`...)
	dst = appendRFC3339(dst, emittedAt)
	dst = append(dst, `","reason":`...)
	dst = appendJSONString(dst, a.Reason)
	if len(a.Reasons) > 0 {
		dst = append(dst, `,"reasons":[`...)
		for i, r := range a.Reasons {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, r)
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `,"severity":"`...)
	dst = append(dst, a.Severity.String()...)
	dst = append(dst, `","member":{`...)
	if m.Tier != "" {
		dst = append(dst, `"tier":`...)
		dst = appendJSONString(dst, m.Tier)
		dst = append(dst, ',')
	}
	dst = append(dst, `"segment":"`...)
	dst = append(dst, m.Segment.String()...)
	dst = append(dst, `","stage":"`...)
	dst = append(dst, m.Stage.String()...)
	dst = append(dst, '"')
	if m.Region != "" {
		dst = append(dst, `,"region":`...)
		dst = appendJSONString(dst, m.Region)
	}
	if m.AccountManager != "" {
		dst = append(dst, `,"account_manager":`...)
		dst = appendJSONString(dst, m.AccountManager)
	}
	dst = append(dst, `,"dormant":`...)
	dst = strconv.AppendBool(dst, m.Dormant)
	dst = append(dst, `,"lrfmc":{"L":`...)
	dst = strconv.AppendInt(dst, int64(m.LRFMC.L), 10)
	dst = append(dst, `,"R":`...)
	if m.LRFMC.R >= 0 {
		dst = strconv.AppendInt(dst, int64(m.LRFMC.R), 10)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"F":`...)
	dst = strconv.AppendInt(dst, int64(m.LRFMC.F), 10)
	dst = append(dst, `,"M":`...)
	dst = appendJSONFloat(dst, round2(m.LRFMC.M))
	dst = append(dst, `,"C":`...)
	if m.LRFMC.HasC {
		dst = appendJSONFloat(dst, round2(m.LRFMC.C))
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `},"value_score":`...)
	dst = appendJSONFloat(dst, m.ValueScore)
	if m.HasPAlive {
		dst = append(dst, `,"p_alive":`...)
		dst = appendJSONFloat(dst, math.Round(m.PAlive*1000)/1000)
	}
	if m.HasExpected {
		dst = append(dst, `,"expected_bookings_90d":`...)
		dst = appendJSONFloat(dst, math.Round(m.ExpectedBookings*1000)/1000)
	}
	if m.HasCLV {
		dst = append(dst, `,"clv":`...)
		dst = appendJSONFloat(dst, round2(m.CLV))
	}
	dst = append(dst, '}')
	if a.Action != "" {
		dst = append(dst, `,"suggested_action":`...)
		dst = appendJSONString(dst, a.Action)
	}
	if a.Type == AlertRetention {
		dst = append(dst, `,"value_at_risk":`...)
		dst = appendJSONFloat(dst, a.ValueAtRisk)
	}
	if a.Target != "" {
		dst = append(dst, `,"target":`...)
		dst = appendJSONString(dst, a.Target)
	}
	if a.Period != "" {
		dst = append(dst, `,"period":`...)
		dst = appendJSONString(dst, a.Period)
	}
	if a.Type == AlertSegmentChange {
		dst = append(dst, `,"previous":{"segment":"`...)
		dst = append(dst, a.PrevSegment.String()...)
		dst = append(dst, `","stage":"`...)
		dst = append(dst, a.PrevStage.String()...)
		dst = append(dst, `"}`...)
	}
	dst = append(dst, `,"schema_version":`...)
	dst = strconv.AppendInt(dst, AlertSchemaVersion, 10)
	return append(dst, '}')
}

// appendRFC3339 appends Unix seconds as YYYY-MM-DDTHH:MM:SSZ.
func appendRFC3339(dst []byte, unix int64) []byte {
	return time.Unix(unix, 0).UTC().AppendFormat(dst, time.RFC3339)
}

// appendJSONFloat formats a float as encoding/json does.
func appendJSONFloat(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, '0') // never produced by the rules; JSON has no NaN
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

func round2(x float64) float64 { return math.Round(x*100) / 100 }

// AppendJSON appends the event's JSON object (no newline) to dst, with the
// fields that were present. Decoding the result gives back an equal Event
// (times are whole seconds).
func (e *Event) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"event_id":`...)
	dst = appendJSONString(dst, e.ID)
	dst = append(dst, `,"type":`...)
	dst = appendJSONString(dst, e.TypeName)
	dst = append(dst, `,"member_id":`...)
	dst = appendJSONString(dst, string(e.MemberID))
	dst = append(dst, `,"occurred_at":"`...)
	dst = time.Unix(e.OccurredAt, 0).UTC().AppendFormat(dst, time.RFC3339)
	dst = append(dst, '"')
	num := func(key string, f Field, v float64) {
		if e.Has&f != 0 {
			dst = append(dst, `,"`...)
			dst = append(dst, key...)
			dst = append(dst, `":`...)
			dst = strconv.AppendFloat(dst, v, 'f', -1, 64)
		}
	}
	str := func(key string, f Field, v string) {
		if e.Has&f != 0 {
			dst = append(dst, `,"`...)
			dst = append(dst, key...)
			dst = append(dst, `":`...)
			dst = appendJSONString(dst, v)
		}
	}
	num("amount", FieldAmount, e.Amount)
	str("currency", FieldCurrency, e.Currency)
	num("distance_km", FieldDistance, e.DistanceKm)
	num("segments", FieldSegments, float64(e.Segments))
	num("discount", FieldDiscount, e.Discount)
	str("product", FieldProduct, e.ProductName)
	str("channel", FieldChannel, e.Channel)
	str("origin", FieldOrigin, e.Origin)
	str("destination", FieldDestination, e.Destination)
	if e.Is(FieldTripStart) {
		str("trip_start", FieldTripStart, FormatDay(e.TripStart))
	}
	if e.Is(FieldTripEnd) {
		str("trip_end", FieldTripEnd, FormatDay(e.TripEnd))
	}
	str("trip_id", FieldTripID, e.TripID)
	str("booking_id", FieldBookingID, e.BookingID)
	str("tier", FieldTier, e.Tier)
	str("region", FieldRegion, e.Region)
	str("account_manager", FieldAccountManager, e.AccountManager)
	num("points", FieldPoints, float64(e.Points))
	num("points_balance", FieldPointsBalance, float64(e.PointsBalance))
	return append(dst, '}')
}

// appendJSONString appends s as a JSON string literal. Invalid UTF-8 is
// replaced by U+FFFD, as encoding/json does.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
