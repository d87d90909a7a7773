package operators

// MemberReport is one member's state as people read it: `churnflow inspect
// member` and the member API (GET /v1/members/{id}) print it as JSON.
type MemberReport struct {
	MemberID  string `json:"member_id"`
	Partition int32  `json:"partition"`
	MemberJSON
	Erased       bool    `json:"erased"`
	Clock        string  `json:"clock"`
	Due          *string `json:"due"` // the member's pending timer: when it is next evaluated
	Enrolled     string  `json:"enrolled,omitempty"`
	LastBooking  string  `json:"last_booking,omitempty"`
	LastActivity string  `json:"last_activity,omitempty"`
	Bookings     uint32  `json:"bookings"`
	BookingDays  uint32  `json:"booking_days"`
	Points       int64   `json:"points"`
	History      int     `json:"history"`
	OpenTrips    int     `json:"open_trips"`
	// Alerts is what the state remembers of the member's last alerts.
	Alerts AlertHistoryJSON `json:"alerts"`
}

// AlertHistoryJSON is what a member's state remembers of its alerts (the
// alerts themselves are on the alert topics).
type AlertHistoryJSON struct {
	// DormantSince is when the current dormancy episode began.
	DormantSince string `json:"dormant_since,omitempty"`
	// DormancyAlerted says the current episode's dormancy alert was sent.
	DormancyAlerted bool `json:"dormancy_alerted"`
	// LastRetention is when the last retention alert fired.
	LastRetention string `json:"last_retention,omitempty"`
}

// Report describes member id's state s as of now (Unix seconds; usually the
// member's clock, or the wall clock for a live view). Partition is left 0
// for the caller to set.
func (g *Engine) Report(id MemberID, s *MemberState, now int64) MemberReport {
	a := Alert{Member: g.Snapshot(s, now)}
	r := MemberReport{
		MemberID:    string(id),
		MemberJSON:  a.Wire(0).Member,
		Erased:      s.Deleted(),
		Clock:       formatOrEmpty(s.Clock),
		Enrolled:    formatOrEmpty(s.Enrolled),
		Bookings:    s.Bookings,
		BookingDays: s.BookingDays,
		Points:      s.PointsBalance,
		History:     len(s.History),
		OpenTrips:   len(s.Trips),
	}
	if s.Due != 0 {
		d := FormatTime(s.Due)
		r.Due = &d
	}
	if s.HasBooked() {
		r.LastBooking = FormatTime(s.LastBooking)
	}
	if s.has(flagHasActivity) {
		r.LastActivity = FormatTime(s.LastActivity)
	}
	if s.Dormant() {
		r.Alerts.DormantSince = FormatTime(s.DormantSince)
		r.Alerts.DormancyAlerted = s.has(flagDormancyAlerted)
	}
	r.Alerts.LastRetention = formatOrEmpty(s.RetentionAt)
	return r
}

func formatOrEmpty(t int64) string {
	if t == 0 {
		return ""
	}
	return FormatTime(t)
}
