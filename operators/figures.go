package operators

import (
	"math"
)

// figures are the derived numbers the rules read, computed from a member's
// state at one instant in a single pass over the booking history.
type figures struct {
	today int32
	now   int64

	recent, baseline int     // bookings in the recent and baseline windows
	baselineM        float64 // M over the baseline window
	lrfmc            LRFMC
	revenueF         float64 // revenue in the frequency window (currency units)
	revenueBaseline  float64 // revenue in the baseline window

	qualKm   float64 // qualifying distance in the current period
	qualSegs int64   // qualifying segments in the current period
	period   period

	typicalGap float64 // median gap between booking days in the history; 0 if unknown
	gaps       int     // number of gaps the median is taken over

	valueScore float64
	pAlive     float64
	hasPAlive  bool
	declining  bool
	overdue    bool
	pAliveDue  bool       // a fitted model's P(alive) is yet to be computed (Engine.alive)
	segIdx     int        // nearest fitted centre, with a fitted model's segments
	z          [5]float64 // the LRFMC z-scores of that model
}

// alive returns the member's P(alive) and whether there is one, computing
// a fitted model's on first use.
func (g *Engine) alive(s *MemberState, f *figures) (float64, bool) {
	if f.pAliveDue {
		f.pAliveDue = false
		f.pAlive, f.hasPAlive = g.sc.pm.PAlive(g.sc.rfm(s, f.now)), true
	}
	return f.pAlive, f.hasPAlive
}

// period is one tier-qualification period.
type period struct {
	id         uint32 // year the period starts in
	startMonth int
	start, end int32 // days; end exclusive
}

// label names the period: "2026" for calendar years, else "2026-04".
func (p period) label() string {
	l := itoa(int(p.id))
	if p.startMonth != 1 {
		l += "-" + twoDigits(p.startMonth)
	}
	return l
}

func (g *Engine) periodOf(day int32) period {
	y, m, _ := civilFromDays(int64(day))
	sm := g.cfg.Period.StartMonth
	if m < sm {
		y--
	}
	start := int32(daysFromCivil(y, sm, 1))
	end := int32(daysFromCivil(y+1, sm, 1))
	return period{id: uint32(y), startMonth: sm, start: start, end: end}
}

func twoDigits(n int) string {
	return string([]byte{byte('0' + n/10), byte('0' + n%10)})
}

// compute fills f for state s at time now.
func (g *Engine) compute(s *MemberState, now int64, f *figures) {
	c := &g.cfg
	today := DayOf(now)
	f.today, f.now = today, now
	recentFrom := today - int32(c.Windows.RecentDays) + 1
	baselineFrom := recentFrom - int32(c.Windows.BaselineDays)
	freqFrom := today - int32(c.Windows.FrequencyDays) + 1
	f.period = g.periodOf(today)

	var mKm, mRev, baseKm, baseRev float64
	var discSum float64
	var discN int
	var gaps [64]int32
	ng := 0
	prevDay := int32(math.MinInt32)
	for i := range s.History {
		b := &s.History[i]
		if prevDay != math.MinInt32 && b.Day != prevDay {
			gaps[ng%len(gaps)] = b.Day - prevDay // the last 64 gaps, in any order
			ng++
		}
		prevDay = b.Day
		rev := float64(b.Revenue) / 100
		if b.Day >= recentFrom {
			f.recent++
		} else if b.Day >= baselineFrom {
			f.baseline++
			baseKm += float64(b.Km)
			baseRev += rev
		}
		if b.Day >= freqFrom {
			f.lrfmc.F++
			mKm += float64(b.Km)
			mRev += rev
			if b.Discount != NoDiscount {
				discSum += float64(b.Discount) / 100
				discN++
			}
		}
		if b.Day >= f.period.start && b.qualifies() {
			f.qualKm += float64(b.Km)
			f.qualSegs += int64(b.Segments)
		}
	}
	f.revenueF, f.revenueBaseline = mRev, baseRev
	if c.Value.Measure == "revenue" {
		f.lrfmc.M, f.baselineM = mRev, baseRev
	} else {
		f.lrfmc.M, f.baselineM = mKm, baseKm
	}
	if discN > 0 {
		f.lrfmc.C = discSum / float64(discN)
		f.lrfmc.HasC = true
	}
	f.lrfmc.L = int(today - DayOf(s.Enrolled))
	if f.lrfmc.L < 0 {
		f.lrfmc.L = 0
	}
	f.lrfmc.R = -1
	if s.has(flagHasBooked) {
		f.lrfmc.R = int(today - DayOf(s.LastBooking))
		if f.lrfmc.R < 0 {
			f.lrfmc.R = 0
		}
	}
	ng = min(ng, len(gaps))
	f.gaps = ng
	f.typicalGap = 0
	// Only the overdue rule reads the typical gap.
	if ng > 0 && int(s.BookingDays) >= c.Retention.OverdueMinBookings {
		gs := gaps[:ng]
		insertionSort(gs)
		if ng%2 == 1 {
			f.typicalGap = float64(gs[ng/2])
		} else {
			f.typicalGap = float64(gs[ng/2-1]+gs[ng/2]) / 2
		}
	}

	r := &c.Retention
	// Frequency decline: recent count well under what the baseline rate predicts.
	f.declining = false
	if f.baseline >= r.MinBaselineBookings {
		expected := float64(f.baseline) * float64(c.Windows.RecentDays) / float64(c.Windows.BaselineDays)
		f.declining = float64(f.recent) < r.DeclineRatio*expected
	}
	// Overdue: recency far past the member's own typical gap.
	f.overdue = false
	if f.lrfmc.R >= 0 && int(s.BookingDays) >= r.OverdueMinBookings && f.typicalGap > 0 {
		f.overdue = float64(f.lrfmc.R) > r.OverdueFactor*f.typicalGap && f.lrfmc.R >= r.OverdueMinDays
	}
	f.valueScore = g.valueScore(&f.lrfmc)
	f.hasPAlive = false
	f.pAliveDue = false
	if sc := g.sc; sc != nil {
		// Computed on first use (Engine.alive): most evaluations read no
		// P(alive).
		f.pAliveDue = s.has(flagHasBooked)
		if sc.seg != nil {
			f.segIdx = sc.segmentIndex(&f.lrfmc, &f.z)
		}
	} else if c.Model != nil && s.has(flagHasBooked) {
		x, tx, T := s.BGNBDStats(now)
		f.pAlive = PAlive(c.Model, x, tx, T)
		f.hasPAlive = true
	}
}

// insertionSort sorts the few gaps a member has; for these sizes it beats
// the generic sort.
func insertionSort(a []int32) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

// valueScore is the weighted mean of the LRFMC figures scaled to [0, 1].
// R counts inversely (recent is valuable); an unknown C drops out.
func (g *Engine) valueScore(l *LRFMC) float64 {
	w, sc := g.cfg.Value.Weights, g.cfg.Value.Scales
	capped := func(x, scale float64) float64 {
		v := x / scale
		if v > 1 {
			return 1
		}
		if v < 0 {
			return 0
		}
		return v
	}
	num := w.L*capped(float64(l.L), sc.L) + w.F*capped(float64(l.F), sc.F) + w.M*capped(l.M, sc.M)
	den := w.L + w.R + w.F + w.M
	if l.R >= 0 {
		num += w.R * (1 - capped(float64(l.R), sc.R))
	}
	if l.HasC {
		num += w.C * capped(l.C, sc.C)
		den += w.C
	}
	if den == 0 {
		return 0
	}
	return num / den
}

// segmentOf applies the five segment rules in order (docs/rules.md), or,
// with a fitted model's segments, names the nearest fitted centre.
func (g *Engine) segmentOf(s *MemberState, f *figures) Segment {
	if g.sc != nil && g.sc.seg != nil {
		return g.sc.segOf[f.segIdx]
	}
	sc := &g.cfg.Segments
	l := &f.lrfmc
	highC := l.HasC && l.C >= sc.HighC
	lowR := l.R >= 0 && l.R <= sc.LowRDays
	highFM := l.F >= sc.HighF || l.M >= sc.HighM
	pastFM := f.baseline >= sc.HighF || f.baselineM >= sc.HighM
	switch {
	case highC && lowR && highFM:
		return SegmentImportantRetain
	case highC && lowR:
		return SegmentImportantDevelop
	case s.has(flagHasBooked) && (highC || highFM || pastFM) && (!lowR || f.declining):
		return SegmentImportantWinBack
	case f.valueScore > sc.LowValueMaxScore:
		return SegmentGeneral
	default:
		return SegmentLowValue
	}
}

// stageOf applies the four life-cycle stage rules in order: a sleeping
// member is in decline whatever its age.
func (g *Engine) stageOf(s *MemberState, f *figures) Stage {
	st := &g.cfg.Stages
	switch {
	case s.has(flagDormant):
		return StageDecline
	case f.lrfmc.L < st.IdentificationDays || s.BookingDays < 2:
		return StageIdentification
	case f.declining || f.overdue:
		return StageDecline
	case f.lrfmc.L < st.DevelopmentDays:
		return StageDevelopment
	case f.baseline > 0 && float64(f.recent)*float64(g.cfg.Windows.BaselineDays) > st.GrowthRatio*float64(f.baseline)*float64(g.cfg.Windows.RecentDays):
		return StageDevelopment
	default:
		return StageStable
	}
}

// PAlive is the BG/NBD probability that a member with x repeat purchases,
// the last at age tx, is still alive at age T (ages in days; the model's
// unit converts them): 1 for x = 0, else
// 1 / (1 + a/(b+x−1) · ((α+T)/(α+tx))^(r+x)).
func PAlive(m *BGNBDParams, x int, tx, T float64) float64 {
	if x <= 0 {
		return 1
	}
	if m.Unit == "week" {
		tx, T = tx/7, T/7
	}
	fx := float64(x)
	lr := math.Log(m.A/(m.B+fx-1)) + (m.R+fx)*(math.Log(m.Alpha+T)-math.Log(m.Alpha+tx))
	if lr > 700 {
		return 0
	}
	return 1 / (1 + math.Exp(lr))
}

// pAliveCrossing returns the age (days) at which P(alive) falls under the
// threshold θ for fixed x and tx, or +Inf if it never does (x = 0).
func pAliveCrossing(m *BGNBDParams, x int, tx, theta float64) float64 {
	if x <= 0 || theta <= 0 {
		return math.Inf(1)
	}
	unit := 1.0
	if m.Unit == "week" {
		unit = 7
	}
	fx := float64(x)
	// P < θ ⇔ a/(b+x−1)·((α+T)/(α+tx))^(r+x) > 1/θ − 1
	k := (1/theta - 1) * (m.B + fx - 1) / m.A
	if k <= 0 {
		return 0
	}
	T := (m.Alpha+tx/unit)*math.Exp(math.Log(k)/(m.R+fx)) - m.Alpha
	return T * unit
}
