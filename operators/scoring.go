package operators

import (
	"fmt"
	"math"

	"github.com/churnflow/churnflow/model"
)

// Live scoring with a fitted model (Config.Fitted, written by `churnflow
// fit`). What each evaluation needs is cheap and computed every time:
// P(alive) of the chosen purchase model is a closed form (tens of
// nanoseconds), and the segment is the nearest of five fitted centres. The
// expected bookings of the next 90 days and the CLV are expectations that
// cost from one to a few hundred microseconds (model/expect.go), so they are
// computed only when something reads them: the alerts a retention team acts
// on (dormancy, reactivated, retention, whose value at risk is CLV × (1 −
// P(alive))) and the member report. They are pure functions of the state
// and the time, so computing them when read gives the same figures as
// refreshing them on every event and timer.

// ExpectedHorizonDays is the horizon of MemberSnapshot.ExpectedBookings.
const ExpectedHorizonDays = 90

// scorer is a fitted model in the form the rules read it.
type scorer struct {
	file     *model.File
	pm       model.Purchase
	unitDays float64 // days per model time unit
	modified bool    // MBG/NBD: members with no repeat booking may be gone
	r, alpha float64 // purchase parameters, for the P(alive) crossing
	a, b     float64
	spend    *model.GammaGamma
	clv      model.CLVConfig
	seg      *model.Segments
	segOf    []Segment // per centre of seg
}

// newScorer checks f and prepares it for the rules.
func newScorer(f *model.File) (*scorer, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	pm, err := f.Purchase()
	if err != nil {
		return nil, err
	}
	sc := &scorer{file: f, pm: pm, unitDays: 1}
	if f.Unit == model.UnitWeek {
		sc.unitDays = 7
	}
	switch p := pm.(type) {
	case model.BGNBD:
		sc.r, sc.alpha, sc.a, sc.b = p.R, p.Alpha, p.A, p.B
	case model.MBGNBD:
		sc.r, sc.alpha, sc.a, sc.b, sc.modified = p.R, p.Alpha, p.A, p.B, true
	default:
		return nil, fmt.Errorf("%w: purchase model %q", model.ErrInvalid, pm.Name())
	}
	if f.GammaGamma != nil && f.CLV != nil {
		gg := f.GammaGamma.Params
		sc.spend, sc.clv = &gg, *f.CLV
	}
	if f.Segments != nil {
		sc.seg = f.Segments
		for i, c := range f.Segments.Centres {
			s, ok := ParseSegment(c.Name)
			if !ok {
				return nil, fmt.Errorf("%w: segment centre %d has unknown name %q", model.ErrInvalid, i, c.Name)
			}
			sc.segOf = append(sc.segOf, s)
		}
	}
	return sc, nil
}

// rfm is the member's summary at now in the model's unit: x repeat booking
// days, t_x and T from the first booking (x, t_x, T of Config.Model, in
// days, divided by the unit).
func (sc *scorer) rfm(s *MemberState, now int64) model.RFM {
	x, tx, T := s.BGNBDStats(now)
	if x == 0 {
		tx = 0
	}
	T = max(T, tx)
	return model.RFM{X: float64(x), TX: tx / sc.unitDays, T: T / sc.unitDays}
}

// pAliveCrossing is the age in days at which the member's P(alive) falls
// under theta with x and tx fixed, +Inf if never (x = 0 under BG/NBD).
func (sc *scorer) pAliveCrossing(x int, txDays, theta float64) float64 {
	if theta <= 0 || (x <= 0 && !sc.modified) {
		return math.Inf(1)
	}
	fx := float64(x)
	den := sc.b + fx - 1 // BG/NBD: a/(b+x−1)
	if sc.modified {
		den = sc.b + fx // MBG/NBD: a/(b+x)
	}
	// P < θ ⇔ a/den · ((α+T)/(α+tx))^(r+x) > 1/θ − 1
	k := (1/theta - 1) * den / sc.a
	if k <= 0 {
		return 0
	}
	T := (sc.alpha+txDays/sc.unitDays)*math.Exp(math.Log(k)/(sc.r+fx)) - sc.alpha
	return T * sc.unitDays
}

// spendRFM is what the Gamma-Gamma model reads of a member: the booking
// days held in the history after the first booking day (x) and the mean of
// their values (revenue of the day's bookings). `churnflow fit` takes the
// same figures from the same states, so the fitted and live values agree;
// bookings older than the history (the longest window) do not count.
func spendRFM(s *MemberState) model.RFM {
	first := DayOf(s.FirstBooking)
	var n, sum, day float64
	prev := int32(math.MinInt32)
	for i := range s.History {
		b := &s.History[i]
		if b.Day == first {
			continue
		}
		if b.Day != prev {
			if prev != math.MinInt32 {
				n++
				sum += day
			}
			prev, day = b.Day, 0
		}
		day += float64(b.Revenue) / 100
	}
	if prev != math.MinInt32 {
		n++
		sum += day
	}
	if n == 0 || sum <= 0 {
		return model.RFM{}
	}
	return model.RFM{X: n, MeanValue: sum / n}
}

// SpendSummary is the Gamma-Gamma input of a member's state: the repeat
// booking days held in the history and their mean value. `churnflow fit`
// uses it so that fitted and live figures agree.
func SpendSummary(s *MemberState) (days, meanValue float64) {
	m := spendRFM(s)
	return m.X, m.MeanValue
}

// values returns the expected bookings in the next 90 days and the CLV of
// the member at now; hasCLV is false without a spend model (or when the
// expected value of a transaction is not finite).
func (sc *scorer) values(s *MemberState, now int64) (exp90, clv float64, hasCLV bool) {
	m := sc.rfm(s, now)
	exp90 = sc.pm.ExpectedTransactions(m, ExpectedHorizonDays/sc.unitDays)
	if sc.spend == nil {
		return exp90, 0, false
	}
	v := sc.spend.ExpectedValue(spendRFM(s))
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return exp90, 0, false
	}
	clv = model.CLV(sc.pm, m, v, sc.clv)
	if math.IsNaN(clv) || math.IsInf(clv, 0) {
		return exp90, 0, false
	}
	return exp90, clv, true
}

// ModelLRFMC converts operators' LRFMC figures to the form the fitted
// segments read: R of a member who never booked counts as L (the start of
// the relationship stands in for a last booking), and an unknown C as
// meanC (a z-score of 0: no information).
func ModelLRFMC(l LRFMC, meanC float64) model.LRFMC {
	v := model.LRFMC{L: float64(l.L), R: float64(l.R), F: float64(l.F), M: l.M, C: meanC}
	if l.R < 0 {
		v.R = float64(l.L)
	}
	if l.HasC {
		v.C = l.C
	}
	return v
}

// segmentIndex returns the centre nearest to the member's figures and
// leaves their z-scores in z, without allocating.
func (sc *scorer) segmentIndex(l *LRFMC, z *[5]float64) int {
	st := &sc.seg.Stats
	v := ModelLRFMC(*l, st.Mean[4])
	raw := [5]float64{v.L, v.R, v.F, v.M, v.C}
	for j := range z {
		z[j] = (raw[j] - st.Mean[j]) / st.Std[j]
	}
	best, bd := 0, math.Inf(1)
	for k := range sc.seg.Centres {
		c := sc.seg.Centres[k].Z
		var d float64
		for j := range z {
			d += (z[j] - c[j]) * (z[j] - c[j])
		}
		if d < bd {
			best, bd = k, d
		}
	}
	return best
}

// segmentCrossing returns the number of whole days from today after which
// another centre becomes nearer than the current one (k), as L and R grow
// by a day a day with F, M and C fixed (their changes are due points of
// their own); 0 if none does within the bound. Distances differ linearly
// in time, so each crossing has a closed form. z are the member's z-scores
// (segmentIndex).
func (sc *scorer) segmentCrossing(z *[5]float64, k int) int32 {
	st := &sc.seg.Stats
	var dir [5]float64
	dir[0] = 1 / st.Std[0]
	dir[1] = 1 / st.Std[1]
	ck := sc.seg.Centres[k].Z
	best := math.Inf(1)
	for j := range sc.seg.Centres {
		if j == k {
			continue
		}
		cj := sc.seg.Centres[j].Z
		// |z+t·dir−cj|² − |z+t·dir−ck|² = c0 + t·c1
		var c0, c1 float64
		for m := range z {
			c0 += (z[m]-cj[m])*(z[m]-cj[m]) - (z[m]-ck[m])*(z[m]-ck[m])
			c1 += 2 * dir[m] * (ck[m] - cj[m])
		}
		if c1 < 0 && c0 >= 0 {
			best = min(best, c0/-c1)
		}
	}
	if math.IsInf(best, 1) || best > MaxHistoryDays*10 {
		return 0
	}
	return int32(max(1, math.Ceil(best)))
}
