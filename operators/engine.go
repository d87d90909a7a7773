package operators

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Outcome says what Apply did with an event.
type Outcome uint8

// Outcomes of Apply.
const (
	// OutcomeApplied: the event updated the member.
	OutcomeApplied Outcome = iota
	// OutcomeErased: a member_deleted event erased the member.
	OutcomeErased
	// OutcomeIgnoredErased: the member was erased; the event is ignored
	// (not dead-lettered: it would carry the erased member's data).
	OutcomeIgnoredErased
	// OutcomeUnmatchedCancellation: a cancellation named a booking this
	// member does not hold (older than the history, or unknown). It still
	// counts as activity.
	OutcomeUnmatchedCancellation
)

func (o Outcome) String() string {
	return [...]string{"applied", "erased", "ignored_erased", "unmatched_cancellation"}[o&3]
}

// Engine applies the rules of one Config to member states. It holds no
// per-member data and no clock: every call takes the time it runs at, so an
// Engine is safe for concurrent use by many partition workers.
//
// The time model: each member has a Clock (the time it was last evaluated)
// and a Due time (when it must next be evaluated, even with no event).
// Apply first evaluates the member at every Due before the event's time,
// then applies the event and evaluates at the event's time. Advance does the
// first half alone; callers run it from a timer index. Because a member's
// evaluations happen at the same instants whether a timer or the next event
// triggers them, the alerts do not depend on how input is batched.
type Engine struct {
	cfg          Config
	dormantAfter []int64 // seconds, per tier index
	minTier      int
	retainSeg    [numSegments]bool
	disabled     [numAlertTypes]bool
	horizonDays  int32
	actions      [numAlertTypes]string
	tombstone    int64
	crossSell    int64
	firstRewardN int64   // points from which the first-redemption nudge goes
	sc           *scorer // the fitted model (Config.Fitted), nil if none
}

// NewEngine validates cfg and returns an Engine for it.
func NewEngine(cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &Engine{cfg: cfg}
	switch {
	case cfg.Fitted != nil:
		sc, err := newScorer(cfg.Fitted)
		if err != nil {
			return nil, fmt.Errorf("config model_file: %w", err)
		}
		g.sc = sc
	case cfg.ModelFile != "":
		return nil, fmt.Errorf("config model_file: %q is named but not loaded (the command loads it with model.Load into Config.Fitted)", cfg.ModelFile)
	}
	g.dormantAfter = make([]int64, len(cfg.Tiers))
	for i, t := range cfg.Tiers {
		g.dormantAfter[i] = cfg.Dormancy.After.Seconds()
		if d, ok := cfg.Dormancy.PerTier[t.Name]; ok {
			g.dormantAfter[i] = d.Seconds()
		}
	}
	g.minTier = len(cfg.Tiers) // no tier qualifies unless configured
	if cfg.Retention.MinTier != "" {
		g.minTier, _ = cfg.TierIndex(cfg.Retention.MinTier)
	}
	for _, s := range cfg.Retention.Segments {
		seg, _ := ParseSegment(s)
		g.retainSeg[seg] = true
	}
	for _, k := range cfg.Nudges.Disabled {
		t, _ := ParseAlertType(k)
		g.disabled[t] = true
	}
	g.horizonDays = int32(max(cfg.Windows.RecentDays+cfg.Windows.BaselineDays, cfg.Windows.FrequencyDays, 366))
	for t := AlertDormancy; t < numAlertTypes; t++ {
		g.actions[t] = cfg.Actions[t.String()]
	}
	g.tombstone = cfg.ErasureTombstone.Seconds()
	g.crossSell = cfg.Nudges.CrossSellWithin.Seconds()
	g.firstRewardN = int64(math.Ceil(cfg.Nudges.FirstRedemptionMinProgress * float64(cfg.Nudges.FirstRewardPoints)))
	return g, nil
}

// Config returns the engine's configuration.
func (g *Engine) Config() *Config { return &g.cfg }

// Apply applies event e to member state s (a zero state for a member not
// seen yet), appending the alerts it causes to out. After Apply, s.Due says
// when the member must next be evaluated; if s.IsNew() the member holds no
// state any more and may be deleted from the store.
func (g *Engine) Apply(s *MemberState, e *Event, out []Alert) ([]Alert, Outcome) {
	id, t := e.MemberID, e.OccurredAt
	out = g.Advance(s, id, t, out)
	if s.has(flagDeleted) {
		return out, OutcomeIgnoredErased
	}
	if s.IsNew() {
		s.Enrolled = t
	}
	now := max(s.Clock, t)
	s.Clock = now
	if e.Type == TypeMemberDeleted {
		*s = MemberState{Clock: now, DeletedAt: t, flags: flagDeleted, Enrolled: s.Enrolled}
		s.Due = g.nextDue(s, nil)
		return out, OutcomeErased
	}

	if s.has(flagDormant) && t >= s.DormantSince {
		alerted := s.has(flagDormancyAlerted)
		s.set(flagDormant|flagDormancyAlerted, false)
		var f figures
		g.compute(s, now, &f)
		a := g.newAlert(s, id, AlertReactivated, now, &f, dayEpisode(s.DormantSince))
		a.Severity = SeverityInfo
		a.Reason = "back after " + itoa(int((t-s.LastSeen())/secondsPerDay)) + " days without booking or activity"
		if alerted { // no "welcome back" for an episode nobody was told of
			out = append(out, a)
		}
		s.DormantSince = 0
	}

	outcome := OutcomeApplied
	if e.Is(FieldRegion) {
		s.Region = e.Region
	}
	if e.Is(FieldAccountManager) {
		s.AccountManager = e.AccountManager
	}
	if e.Is(FieldTier) {
		if i, ok := g.cfg.TierIndex(e.Tier); ok {
			s.Tier = uint8(i)
			s.set(flagTierKnown, true)
		}
	}
	switch e.Type {
	case TypeBooking:
		g.addBooking(s, e, now)
	case TypeCancellation:
		if !g.cancelBooking(s, hashString(e.BookingID)) {
			outcome = OutcomeUnmatchedCancellation
		}
	case TypeEnrolment:
		s.Enrolled = t
		s.set(flagEnrolledKnown, true)
	case TypePointsEarned:
		if e.Is(FieldPoints) {
			s.PointsBalance += e.Points
		}
	case TypeRedemption:
		s.set(flagRedeemed, true)
		if e.Is(FieldPoints) {
			s.PointsBalance = max(s.PointsBalance-e.Points, 0)
		}
	}
	if e.Is(FieldPointsBalance) {
		s.PointsBalance = e.PointsBalance
	}
	if e.Type != TypeBooking && (!s.has(flagHasActivity) || t > s.LastActivity) {
		s.LastActivity = t
		s.set(flagHasActivity, true)
	}
	return g.evaluate(s, id, now, out), outcome
}

// Advance evaluates member s at each of its due times before t (strictly),
// in order, appending the alerts. Timers call it with the partition's
// watermark; Apply calls it with the event's time.
func (g *Engine) Advance(s *MemberState, id MemberID, t int64, out []Alert) []Alert {
	g.sanitize(s)
	for s.Due != 0 && s.Due < t && s.Due > s.Clock {
		d := s.Due
		if s.has(flagDeleted) {
			if d >= s.DeletedAt+g.tombstone {
				*s = MemberState{}
				return out
			}
		}
		s.Clock = d
		out = g.evaluate(s, id, d, out)
	}
	return out
}

// sanitize clamps what a state written under another configuration may
// hold out of range for this one (a ladder that lost tiers).
func (g *Engine) sanitize(s *MemberState) {
	if n := len(g.cfg.Tiers); int(s.Tier) >= n {
		s.Tier = uint8(n - 1)
	}
}

// Snapshot returns the member's figures as an alert would show them now.
func (g *Engine) Snapshot(s *MemberState, now int64) MemberSnapshot {
	g.sanitize(s)
	var f figures
	g.compute(s, now, &f)
	m := g.snapshot(s, &f)
	if g.sc != nil {
		g.addValues(s, &f, &m)
	}
	return m
}

func (g *Engine) addBooking(s *MemberState, e *Event, now int64) {
	t := e.OccurredAt
	if !s.has(flagHasBooked) {
		s.FirstBooking, s.LastBooking = t, t
		s.set(flagHasBooked, true)
	} else {
		s.FirstBooking = min(s.FirstBooking, t)
		s.LastBooking = max(s.LastBooking, t)
	}
	s.Bookings++
	s.set(flagRetentionDisarmed, false)

	b := Booking{IDHash: hashString(e.ID), Day: DayOf(t), Discount: NoDiscount}
	b.Sec = uint32(t - int64(b.Day)*secondsPerDay)
	if e.Is(FieldAmount) {
		b.Revenue = int64(math.Round(e.Amount * 100))
	}
	if e.Is(FieldDistance) {
		b.Km = uint32(math.Round(e.DistanceKm))
	}
	if e.Is(FieldDiscount) {
		b.Discount = uint8(math.Round(e.Discount * 100))
	}
	if e.Is(FieldProduct) {
		b.Product = e.Product
	}
	if e.Is(FieldSegments) {
		b.Segments = uint16(e.Segments)
	} else if b.Product == ProductFlight {
		b.Segments = 1
	}
	// A booking older than the history horizon only counts in the lifetime
	// figures; inside it, it goes in day order.
	oldest := DayOf(now) - g.horizonDays + 1
	if b.Day < oldest {
		s.BookingDays++
		return
	}
	i := len(s.History)
	for i > 0 && s.History[i-1].At() > t {
		i--
	}
	if (i == 0 || s.History[i-1].Day != b.Day) && (i == len(s.History) || s.History[i].Day != b.Day) {
		s.BookingDays++
	}
	s.History = append(s.History, Booking{})
	copy(s.History[i+1:], s.History[i:])
	s.History[i] = b
	if len(s.History) > maxBookingsHeld {
		s.History = append(s.History[:0], s.History[1:]...)
	}

	switch b.Product {
	case ProductFlight:
		deadline := t + g.crossSell
		if deadline > now && !g.disabled[AlertCrossSellNudge] && len(s.Trips) < maxTripsHeld {
			g.addTrip(s, e, b.IDHash, deadline)
		}
	case ProductHotel:
		if j := matchTrip(s.Trips, e); j >= 0 {
			s.Trips = slices.Delete(s.Trips, j, j+1)
		}
	}
}

func (g *Engine) addTrip(s *MemberState, e *Event, bookingHash uint64, deadline int64) {
	tr := Trip{Deadline: deadline, BookingHash: bookingHash, Ref: e.ID}
	if e.Is(FieldTripID) {
		tr.Ref, tr.HasTripID = e.TripID, true
	}
	if e.Is(FieldTripStart) {
		tr.HasDates, tr.StartDay, tr.EndDay = true, e.TripStart, e.TripStart
		if e.Is(FieldTripEnd) {
			tr.EndDay = e.TripEnd
		}
	}
	if e.Is(FieldDestination) {
		tr.DestHash = uint32(hashString(e.Destination)) | 1
	}
	i := len(s.Trips)
	for i > 0 && s.Trips[i-1].Deadline > deadline {
		i--
	}
	s.Trips = append(s.Trips, Trip{})
	copy(s.Trips[i+1:], s.Trips[i:])
	s.Trips[i] = tr
}

// matchTrip finds the open trip a hotel booking belongs to: the same
// trip_id if the hotel has one; else the first trip whose dates contain the
// check-in day (and whose destination agrees, when both are known); else,
// for a hotel with no dates, the first trip to the same destination; else,
// for a hotel with neither, the trip closest to its deadline.
func matchTrip(trips []Trip, e *Event) int {
	if len(trips) == 0 {
		return -1
	}
	if e.Is(FieldTripID) {
		for i := range trips {
			if trips[i].HasTripID && trips[i].Ref == e.TripID {
				return i
			}
		}
		return -1
	}
	var dest uint32
	if e.Is(FieldDestination) {
		dest = uint32(hashString(e.Destination)) | 1
	}
	if e.Is(FieldTripStart) {
		for i := range trips {
			t := &trips[i]
			if t.HasDates && e.TripStart >= t.StartDay && e.TripStart <= t.EndDay && (dest == 0 || t.DestHash == 0 || dest == t.DestHash) {
				return i
			}
		}
		return -1
	}
	if dest != 0 {
		for i := range trips {
			if trips[i].DestHash == dest {
				return i
			}
		}
		return -1
	}
	return 0
}

// cancelBooking reverses the booking with the given id hash.
func (g *Engine) cancelBooking(s *MemberState, h uint64) bool {
	i := -1
	for j := len(s.History) - 1; j >= 0; j-- {
		if s.History[j].IDHash == h {
			i = j
			break
		}
	}
	if i < 0 {
		return false
	}
	removed := s.History[i]
	s.History = slices.Delete(s.History, i, i+1)
	for j := 0; j < len(s.Trips); j++ {
		if s.Trips[j].BookingHash == h {
			s.Trips = slices.Delete(s.Trips, j, j+1)
			j--
		}
	}
	s.Bookings--
	sameDay := false
	for j := range s.History {
		if s.History[j].Day == removed.Day {
			sameDay = true
			break
		}
	}
	if !sameDay {
		s.BookingDays--
	}
	if s.Bookings == 0 {
		s.set(flagHasBooked, false)
		s.FirstBooking, s.LastBooking, s.BookingDays = 0, 0, 0
		return true
	}
	n := len(s.History)
	if removed.At() == s.LastBooking {
		if n > 0 {
			s.LastBooking = s.History[n-1].At()
		} else {
			s.LastBooking = s.FirstBooking // the remaining bookings are older than the history
		}
	}
	// The first booking is known again only if the history holds them all.
	if removed.At() == s.FirstBooking && int(s.Bookings) == n && n > 0 {
		s.FirstBooking = s.History[0].At()
	}
	return true
}

// evaluate runs every rule for s at time now and sets s.Due.
func (g *Engine) evaluate(s *MemberState, id MemberID, now int64, out []Alert) []Alert {
	if s.has(flagDeleted) {
		s.Due = g.nextDue(s, nil)
		return out
	}
	g.prune(s, now)
	var f figures
	g.compute(s, now, &f)
	c := &g.cfg

	// Dormancy.
	if !s.has(flagDormant) {
		if since := s.LastSeen() + g.dormantAfter[s.Tier]; now >= since {
			s.set(flagDormant, true)
			s.DormantSince = since
			seg := g.segmentOf(s, &f)
			if f.valueScore >= c.Dormancy.MinValueScore {
				s.set(flagDormancyAlerted, true)
				a := g.newAlert(s, id, AlertDormancy, since, &f, dayEpisode(since))
				a.Member.Segment, a.Member.Stage = seg, g.stageOf(s, &f)
				a.Reason = "no booking or activity since " + FormatDay(DayOf(s.LastSeen())) + " (threshold " + Duration(g.dormantAfter[s.Tier]*1e9).String() + ")"
				a.Severity = SeverityMedium
				if g.valuable(s, seg, &f) {
					a.Severity = SeverityHigh
				} else if seg == SegmentLowValue {
					a.Severity = SeverityLow
				}
				out = append(out, a)
			}
		}
	}

	// Segment and life-cycle stage.
	seg, stage := g.segmentOf(s, &f), g.stageOf(s, &f)
	if seg != s.Segment || stage != s.Stage {
		prevSeg, prevStage := s.Segment, s.Stage
		s.Segment, s.Stage = seg, stage
		a := g.newAlert(s, id, AlertSegmentChange, now, &f, strconv.FormatInt(now, 10))
		a.PrevSegment, a.PrevStage = prevSeg, prevStage
		a.Severity = SeverityInfo
		a.Reason = "segment " + prevSeg.String() + " → " + seg.String() + ", stage " + prevStage.String() + " → " + stage.String()
		out = append(out, a)
	}

	// Retention.
	if s.has(flagHasBooked) && !s.has(flagRetentionDisarmed) && (s.RetentionAt == 0 || now >= s.RetentionAt+c.Retention.Cooldown.Seconds()) && g.valuable(s, seg, &f) {
		out = g.retention(s, id, now, &f, out)
	}

	// Tier nudges in the last days of the qualification period.
	if now >= int64(f.period.end-int32(c.Nudges.WindowDays))*secondsPerDay {
		out = g.tierNudges(s, id, now, &f, out)
	}

	// First redemption.
	if !s.has(flagRedeemed) && !s.has(flagFirstRedemptionNudged) && g.firstRewardN > 0 && s.PointsBalance >= g.firstRewardN && !g.disabled[AlertFirstRedemptionNudge] {
		s.set(flagFirstRedemptionNudged, true)
		a := g.newAlert(s, id, AlertFirstRedemptionNudge, now, &f, "first")
		a.Severity = SeverityLow
		a.Target = strconv.FormatInt(c.Nudges.FirstRewardPoints, 10)
		a.Reason = strconv.FormatInt(s.PointsBalance, 10) + " points of the " + a.Target + " the first reward needs, never redeemed"
		out = append(out, a)
	}

	// Cross-sell: flights whose hotel did not follow in time.
	for len(s.Trips) > 0 && s.Trips[0].Deadline <= now {
		tr := s.Trips[0]
		s.Trips = slices.Delete(s.Trips, 0, 0+1)
		a := g.newAlert(s, id, AlertCrossSellNudge, tr.Deadline, &f, tr.Ref)
		a.Severity = SeverityLow
		a.Target = tr.Ref
		a.Reason = "flight booked with no hotel within " + c.Nudges.CrossSellWithin.String()
		out = append(out, a)
	}

	s.Due = g.nextDue(s, &f)
	return out
}

// valuable reports whether a member is worth a retention alert.
func (g *Engine) valuable(s *MemberState, seg Segment, f *figures) bool {
	return int(s.Tier) >= g.minTier || g.retainSeg[seg] || f.valueScore >= g.cfg.Retention.MinValueScore
}

func (g *Engine) retention(s *MemberState, id MemberID, now int64, f *figures, out []Alert) []Alert {
	c := &g.cfg
	var codes []string
	var text []string
	if f.declining {
		expected := float64(f.baseline) * float64(c.Windows.RecentDays) / float64(c.Windows.BaselineDays)
		codes = append(codes, "frequency_decline")
		text = append(text, fmt.Sprintf("%d bookings in the last %d days, %.1f expected from the %d before", f.recent, c.Windows.RecentDays, expected, f.baseline))
	}
	if f.overdue {
		codes = append(codes, "overdue")
		text = append(text, fmt.Sprintf("%d days since the last booking, typical gap %.0f days", f.lrfmc.R, f.typicalGap))
	}
	if p, ok := g.alive(s, f); ok && p < c.Retention.PAliveThreshold {
		codes = append(codes, "p_alive")
		text = append(text, fmt.Sprintf("P(alive) %.2f under %.2f", p, c.Retention.PAliveThreshold))
	}
	if len(codes) == 0 {
		return out
	}
	s.RetentionAt = now
	s.set(flagRetentionDisarmed, true)
	a := g.newAlert(s, id, AlertRetention, now, f, dayEpisode(now))
	a.Reasons = codes
	a.Reason = strings.Join(text, "; ")
	a.Severity = SeverityMedium
	if len(codes) > 1 || s.Segment == SegmentImportantRetain {
		a.Severity = SeverityHigh
	}
	// Value at risk: the member's annual revenue, from the better of the
	// last year and the baseline, scaled by the chance the member is gone.
	annual := math.Max(f.revenueF*365/float64(c.Windows.FrequencyDays), f.revenueBaseline*365/float64(c.Windows.BaselineDays))
	if a.Member.HasCLV {
		// With a fitted spend model: the lifetime value the member takes
		// away if gone.
		annual = a.Member.CLV
	}
	if p, ok := g.alive(s, f); ok {
		annual *= 1 - p
	}
	a.ValueAtRisk = math.Round(annual*100) / 100
	return append(out, a)
}

func (g *Engine) tierNudges(s *MemberState, id MemberID, now int64, f *figures, out []Alert) []Alert {
	c := &g.cfg
	pid := f.period.id + 1
	if next := int(s.Tier) + 1; next < len(c.Tiers) && !g.disabled[AlertUpgradeNudge] && !(s.UpgradeNudged == pid && int(s.UpgradeTarget) == next) {
		p := g.progress(next, f)
		if p >= c.Nudges.UpgradeMinProgress && p < 1 {
			s.UpgradeNudged, s.UpgradeTarget = pid, uint8(next)
			name := c.Tiers[next].Name
			a := g.newAlert(s, id, AlertUpgradeNudge, now, f, name+":"+f.period.label())
			a.Severity, a.Target, a.Period = SeverityLow, name, f.period.label()
			a.Reason = fmt.Sprintf("%.0f%% of %s (%s) with %d days left in %s", math.Floor(p*100), name, g.qualText(next, f), f.period.end-f.today, f.period.label())
			out = append(out, a)
		}
	}
	if s.Tier > 0 && !g.disabled[AlertKeepTierNudge] && s.KeepNudged != pid {
		if p := g.progress(int(s.Tier), f); p < 1 {
			s.KeepNudged = pid
			name := c.Tiers[s.Tier].Name
			a := g.newAlert(s, id, AlertKeepTierNudge, now, f, name+":"+f.period.label())
			a.Severity, a.Target, a.Period = SeverityMedium, name, f.period.label()
			a.Reason = fmt.Sprintf("not yet re-qualified for %s: %.0f%% (%s) with %d days left in %s", name, math.Floor(p*100), g.qualText(int(s.Tier), f), f.period.end-f.today, f.period.label())
			out = append(out, a)
		}
	}
	return out
}

// progress is the better of the distance and segment shares of a tier's
// requirement reached in the current period.
func (g *Engine) progress(tier int, f *figures) float64 {
	t := &g.cfg.Tiers[tier]
	p := 0.0
	if t.QualifyKm > 0 {
		p = f.qualKm / t.QualifyKm
	}
	if t.QualifySegments > 0 {
		p = math.Max(p, float64(f.qualSegs)/float64(t.QualifySegments))
	}
	return p
}

func (g *Engine) qualText(tier int, f *figures) string {
	t := &g.cfg.Tiers[tier]
	return fmt.Sprintf("%.0f of %.0f km, %d of %d segments", f.qualKm, t.QualifyKm, f.qualSegs, t.QualifySegments)
}

// prune drops bookings older than every window from the history.
func (g *Engine) prune(s *MemberState, now int64) {
	oldest := DayOf(now) - g.horizonDays + 1
	n := 0
	for n < len(s.History) && s.History[n].Day < oldest {
		n++
	}
	if n > 0 {
		s.History = append(s.History[:0], s.History[n:]...)
		if len(s.History) == 0 {
			s.History = nil
		}
	}
}

// nextDue returns the earliest instant after s.Clock at which a rule's
// outcome can change with no event: a dormancy deadline, a booking leaving a
// window, recency crossing a bar, a nudge window opening, a cool-down
// ending, P(alive) crossing its threshold, a cross-sell deadline, or a
// tombstone expiring. 0 means never.
func (g *Engine) nextDue(s *MemberState, f *figures) int64 {
	clock := s.Clock
	best := int64(0)
	consider := func(t int64) {
		if t > clock && (best == 0 || t < best) {
			best = t
		}
	}
	if s.has(flagDeleted) {
		consider(s.DeletedAt + g.tombstone)
		if best == 0 {
			best = clock + 1
		}
		return best
	}
	c := &g.cfg
	if !s.has(flagDormant) {
		consider(s.LastSeen() + g.dormantAfter[s.Tier])
	}
	today := DayOf(clock)
	day := func(d int32) {
		if d > today {
			consider(int64(d) * secondsPerDay)
		}
	}
	// A booking leaves a window of w days on day Day+w: the first booking
	// with Day+w > today gives the window's next change (history is sorted).
	for _, w := range [...]int32{int32(c.Windows.RecentDays), int32(c.Windows.RecentDays + c.Windows.BaselineDays), int32(c.Windows.FrequencyDays)} {
		h := s.History
		i, j := 0, len(h)
		for i < j {
			m := int(uint(i+j) >> 1)
			if h[m].Day+w <= today {
				i = m + 1
			} else {
				j = m
			}
		}
		if i < len(h) {
			day(h[i].Day + w)
		}
	}
	enrolDay := DayOf(s.Enrolled)
	day(enrolDay + int32(c.Stages.IdentificationDays))
	day(enrolDay + int32(c.Stages.DevelopmentDays))
	day(f.period.end - int32(c.Nudges.WindowDays))
	day(f.period.end)
	if s.has(flagHasBooked) {
		last := DayOf(s.LastBooking)
		day(last + int32(c.Segments.LowRDays) + 1)
		if f.typicalGap > 0 {
			d := last + int32(math.Floor(c.Retention.OverdueFactor*f.typicalGap)) + 1
			day(max(d, last+int32(c.Retention.OverdueMinDays)))
		}
		if !s.has(flagRetentionDisarmed) {
			if s.RetentionAt != 0 {
				consider(s.RetentionAt + c.Retention.Cooldown.Seconds())
			}
			if sc := g.sc; sc != nil {
				x, tx, _ := s.BGNBDStats(clock)
				if x == 0 {
					tx = 0
				}
				if T := sc.pAliveCrossing(x, tx, c.Retention.PAliveThreshold); !math.IsInf(T, 1) && T < 1e7 {
					consider(s.FirstBooking + int64(math.Ceil(T*secondsPerDay)))
				}
			} else if m := c.Model; m != nil {
				x, tx, _ := s.BGNBDStats(clock)
				if T := pAliveCrossing(m, x, tx, c.Retention.PAliveThreshold); !math.IsInf(T, 1) && T < 1e7 {
					consider(s.FirstBooking + int64(math.Ceil(T*secondsPerDay)))
				}
			}
		}
	}
	if len(s.Trips) > 0 {
		consider(s.Trips[0].Deadline)
	}
	g.valueScoreCrossings(s, f, day)
	if g.sc != nil && g.sc.seg != nil {
		if d := g.sc.segmentCrossing(&f.z, f.segIdx); d > 0 {
			day(f.today + d)
		}
	}
	return best
}

// valueScoreCrossings adds the days on which the drifting value score
// crosses the bars the rules compare it with (the low-value bar of the
// segments, the retention bar). Between other due points only L and R
// change, one day a day, each until it reaches its scale, so the score moves
// linearly: the crossing day has a closed form. A day estimated a little
// early only costs an evaluation that changes nothing.
func (g *Engine) valueScoreCrossings(s *MemberState, f *figures, day func(int32)) {
	w, sc := g.cfg.Value.Weights, g.cfg.Value.Scales
	l := &f.lrfmc
	den := w.L + w.R + w.F + w.M
	if l.HasC {
		den += w.C
	}
	if den == 0 {
		return
	}
	slope := 0.0
	if float64(l.L) < sc.L {
		slope += w.L / sc.L
		day(DayOf(s.Enrolled) + int32(math.Ceil(sc.L)))
	}
	if l.R >= 0 && float64(l.R) < sc.R {
		slope -= w.R / sc.R
		day(DayOf(s.LastBooking) + int32(math.Ceil(sc.R)))
	}
	slope /= den
	if slope == 0 {
		return
	}
	for _, bar := range [...]float64{g.cfg.Segments.LowValueMaxScore, g.cfg.Retention.MinValueScore} {
		gap := bar - f.valueScore
		if (slope > 0 && gap >= 0) || (slope < 0 && gap <= 0) {
			k := math.Floor(gap / slope)
			if k < 1 {
				k = 1
			}
			if k < MaxHistoryDays*10 {
				day(f.today + int32(k))
			}
		}
	}
}

// newAlert fills the fields every alert shares.
func (g *Engine) newAlert(s *MemberState, id MemberID, t AlertType, at int64, f *figures, episode string) Alert {
	a := Alert{
		ID:          alertID(t, id, episode),
		Type:        t,
		MemberID:    id,
		TriggeredAt: at,
		Member:      g.snapshot(s, f),
		Action:      g.actions[t],
	}
	// The expectations cost microseconds: only the alerts a retention team
	// acts on carry them (scoring.go).
	if g.sc != nil && (t == AlertDormancy || t == AlertReactivated || t == AlertRetention) {
		g.addValues(s, f, &a.Member)
	}
	return a
}

// addValues fills the fitted model's expected bookings and CLV.
func (g *Engine) addValues(s *MemberState, f *figures, m *MemberSnapshot) {
	if !s.has(flagHasBooked) {
		return
	}
	m.ExpectedBookings, m.CLV, m.HasCLV = g.sc.values(s, f.now)
	m.HasExpected = true
}

func (g *Engine) snapshot(s *MemberState, f *figures) MemberSnapshot {
	g.alive(s, f)
	m := MemberSnapshot{
		Segment:        s.Segment,
		Stage:          s.Stage,
		Region:         s.Region,
		AccountManager: s.AccountManager,
		LRFMC:          f.lrfmc,
		ValueScore:     math.Round(f.valueScore*1000) / 1000,
		PAlive:         f.pAlive,
		HasPAlive:      f.hasPAlive,
		Dormant:        s.has(flagDormant),
	}
	if s.has(flagTierKnown) {
		m.Tier = g.cfg.Tiers[s.Tier].Name
	}
	return m
}

// TierName returns the name of the member's tier ("" if never given).
func (g *Engine) TierName(s *MemberState) string {
	if !s.has(flagTierKnown) {
		return ""
	}
	return g.cfg.Tiers[s.Tier].Name
}

// hashString is 64-bit FNV-1a; it identifies bookings within one member.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
