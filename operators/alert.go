package operators

import (
	"strconv"
	"time"
)

// Segment is one of the five LRFMC value segments (DESIGN.md).
type Segment uint8

// Value segments. SegmentNone means not yet assigned.
const (
	SegmentNone Segment = iota
	SegmentImportantRetain
	SegmentImportantDevelop
	SegmentImportantWinBack
	SegmentGeneral
	SegmentLowValue
	numSegments
)

var segmentNames = [numSegments]string{"none", "important_retain", "important_develop", "important_win_back", "general", "low_value"}

func (s Segment) String() string {
	if s < numSegments {
		return segmentNames[s]
	}
	return "invalid"
}

// Segments lists the five assignable segments in order.
func Segments() []Segment {
	return []Segment{SegmentImportantRetain, SegmentImportantDevelop, SegmentImportantWinBack, SegmentGeneral, SegmentLowValue}
}

// ParseSegment maps a segment name to its Segment.
func ParseSegment(s string) (Segment, bool) {
	for i := SegmentImportantRetain; i < numSegments; i++ {
		if segmentNames[i] == s {
			return i, true
		}
	}
	return SegmentNone, false
}

// Stage is a member's life-cycle stage.
type Stage uint8

// Life-cycle stages. StageNone means not yet assigned.
const (
	StageNone Stage = iota
	StageIdentification
	StageDevelopment
	StageStable
	StageDecline
	numStages
)

var stageNames = [numStages]string{"none", "identification", "development", "stable", "decline"}

func (s Stage) String() string {
	if s < numStages {
		return stageNames[s]
	}
	return "invalid"
}

// AlertType is the kind of an output record.
type AlertType uint8

// Alert types. AlertSegmentChange goes to the member-segments topic.
const (
	AlertDormancy AlertType = iota + 1
	AlertReactivated
	AlertRetention
	AlertUpgradeNudge
	AlertKeepTierNudge
	AlertFirstRedemptionNudge
	AlertCrossSellNudge
	AlertSegmentChange
	numAlertTypes
)

var alertTypeNames = [numAlertTypes]string{"", "dormancy", "reactivated", "retention", "upgrade_nudge", "keep_tier_nudge", "first_redemption_nudge", "cross_sell_nudge", "segment_change"}

func (t AlertType) String() string {
	if t > 0 && t < numAlertTypes {
		return alertTypeNames[t]
	}
	return "invalid"
}

// AlertTypes lists every alert type in order.
func AlertTypes() []AlertType {
	out := make([]AlertType, 0, numAlertTypes-1)
	for t := AlertDormancy; t < numAlertTypes; t++ {
		out = append(out, t)
	}
	return out
}

// ParseAlertType maps a wire name to its AlertType.
func ParseAlertType(s string) (AlertType, bool) {
	for t := AlertDormancy; t < numAlertTypes; t++ {
		if alertTypeNames[t] == s {
			return t, true
		}
	}
	return 0, false
}

// IsNudge reports whether the type is one of the four nudges.
func (t AlertType) IsNudge() bool { return t >= AlertUpgradeNudge && t <= AlertCrossSellNudge }

// Topic names the output stream an alert type belongs to: "dormancy",
// "retention", "nudges" or "segments". The pipeline maps these to topics.
func (t AlertType) Topic() string {
	switch {
	case t == AlertDormancy || t == AlertReactivated:
		return "dormancy"
	case t == AlertRetention:
		return "retention"
	case t.IsNudge():
		return "nudges"
	default:
		return "segments"
	}
}

// Severity of an alert.
type Severity uint8

// Severities, lowest first.
const (
	SeverityInfo Severity = iota
	SeverityLow
	SeverityMedium
	SeverityHigh
)

func (s Severity) String() string {
	return [...]string{"info", "low", "medium", "high"}[s&3]
}

// LRFMC holds the five figures of the LRFMC model for one member at one time.
// L and R are in days, F is bookings in the frequency window, M is km or
// revenue in the window, C the mean discount coefficient (HasC false when no
// booking in the window carried one). R is -1 when the member never booked.
type LRFMC struct {
	L, R int
	F    int
	M    float64
	C    float64
	HasC bool
}

// MemberSnapshot is the member context every alert carries.
type MemberSnapshot struct {
	Tier           string
	Segment        Segment
	Stage          Stage
	Region         string
	AccountManager string
	LRFMC          LRFMC
	ValueScore     float64
	PAlive         float64 // meaningful when HasPAlive
	HasPAlive      bool
	Dormant        bool
	// With a fitted model: the expected bookings (booking days) in the next
	// ExpectedHorizonDays days, meaningful when HasExpected, and the
	// customer lifetime value (model.CLV), meaningful when HasCLV.
	ExpectedBookings float64
	CLV              float64
	HasExpected      bool
	HasCLV           bool
}

// Alert is one output record of the operators.
type Alert struct {
	ID          string
	Type        AlertType
	MemberID    MemberID
	TriggeredAt int64 // Unix seconds, event time
	Reason      string
	Reasons     []string // machine-readable reason codes (retention)
	Severity    Severity
	Member      MemberSnapshot
	Action      string
	ValueAtRisk float64 // retention only
	Target      string  // nudges: the tier aimed at; cross-sell: the trip
	Period      string  // upgrade and keep-tier nudges: the period (e.g. 2026)
	// Segment changes: the previous segment and stage.
	PrevSegment Segment
	PrevStage   Stage
}

// Time returns TriggeredAt as a time.Time in UTC.
func (a *Alert) Time() time.Time { return time.Unix(a.TriggeredAt, 0).UTC() }

// alertID builds the deterministic id "type:member:episode".
func alertID(t AlertType, m MemberID, episode string) string {
	return t.String() + ":" + string(m) + ":" + episode
}

func dayEpisode(unix int64) string { return FormatDay(DayOf(unix)) }

func itoa(n int) string { return strconv.Itoa(n) }
