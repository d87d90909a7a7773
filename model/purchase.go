package model

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mathext"
)

// BGNBD holds the four parameters of the BG/NBD model (Fader, Hardie and
// Lee 2005, "Counting Your Customers the Easy Way: An Alternative to the
// Pareto/NBD Model", Marketing Science 24(2)). While alive a member buys as
// a Poisson process with rate λ ~ Gamma(r, α) across members; after each
// repeat transaction the member drops out with probability p ~ Beta(a, b).
// α is in the model's time unit.
type BGNBD struct {
	R     float64 `json:"r"`
	Alpha float64 `json:"alpha"`
	A     float64 `json:"a"`
	B     float64 `json:"b"`
}

// MBGNBD holds the four parameters of the modified BG/NBD model (Batislam,
// Denizel and Filiztekin 2007, "Empirical validation and comparison of
// models for customer base analysis", IJRM 24(3)): as BG/NBD, but a member
// may also drop out right after the first transaction, so a member with no
// repeat transaction is not certainly alive. The formulas follow the
// lifetimes library's ModifiedBetaGeoFitter (Davidson-Pilon, lifetimes
// 0.11, fitters/modified_beta_geo_fitter.py).
type MBGNBD struct {
	R     float64 `json:"r"`
	Alpha float64 `json:"alpha"`
	A     float64 `json:"a"`
	B     float64 `json:"b"`
}

// Purchase is a fitted purchase model: BGNBD or MBGNBD.
type Purchase interface {
	// Name is "bgnbd" or "mbgnbd".
	Name() string
	// Check reports whether the parameters are all positive and finite.
	Check() error
	// LogLikelihood is the log-likelihood of one member's summary.
	LogLikelihood(m RFM) float64
	// PAlive is the probability that the member is still alive at T.
	PAlive(m RFM) float64
	// ExpectedTransactions is E[Y(t) | x, tx, T], the expected number of
	// transactions in (T, T+t].
	ExpectedTransactions(m RFM, t float64) float64
	// ExpectedNew is E[X(t)], the expected number of repeat transactions in
	// (0, t] of a member whose first transaction was at 0.
	ExpectedNew(t float64) float64

	params() [4]float64
	modified() bool
}

// Model names, as recorded in the model file.
const (
	NameBGNBD  = "bgnbd"
	NameMBGNBD = "mbgnbd"
)

// Name returns "bgnbd".
func (BGNBD) Name() string { return NameBGNBD }

// Name returns "mbgnbd".
func (MBGNBD) Name() string { return NameMBGNBD }

func (p BGNBD) params() [4]float64  { return [4]float64{p.R, p.Alpha, p.A, p.B} }
func (p MBGNBD) params() [4]float64 { return [4]float64{p.R, p.Alpha, p.A, p.B} }
func (BGNBD) modified() bool        { return false }
func (MBGNBD) modified() bool       { return true }

// Check reports whether the parameters are all positive and finite.
func (p BGNBD) Check() error { return checkParams(NameBGNBD, p.params()) }

// Check reports whether the parameters are all positive and finite.
func (p MBGNBD) Check() error { return checkParams(NameMBGNBD, p.params()) }

var purchaseParamNames = [4]string{"r", "alpha", "a", "b"}

func checkParams(model string, v [4]float64) error {
	for i, x := range v {
		if !(x > 0) || math.IsInf(x, 1) {
			return fmt.Errorf("model: %s parameter %s = %g, want positive and finite", model, purchaseParamNames[i], x)
		}
	}
	return nil
}

// LogLikelihood is the BG/NBD log-likelihood of one member (Fader, Hardie
// and Lee 2005, eq. 6):
//
//	log L = A1 + A2 + log(e^A3 + [x > 0] e^A4), with
//	A1 = log Γ(r+x) − log Γ(r) + r log α
//	A2 = log Γ(a+b) + log Γ(b+x) − log Γ(b) − log Γ(a+b+x)
//	A3 = −(r+x) log(α+T)
//	A4 = log a − log(b+x−1) − (r+x) log(α+tx)
func (p BGNBD) LogLikelihood(m RFM) float64 { return logLik(p.params(), false, m) }

// LogLikelihood is the MBG/NBD log-likelihood of one member (Batislam et
// al. 2007; lifetimes ModifiedBetaGeoFitter._negative_log_likelihood):
//
//	log L = A1 + A2 + A3 + log(1 + e^A4), with A1 as in BG/NBD and
//	A2 = log Γ(a+b) + log Γ(b+x+1) − log Γ(b) − log Γ(a+b+x+1)
//	A3 = −(r+x) log(α+T)
//	A4 = log a − log(b+x) + (r+x)(log(α+T) − log(α+tx))
func (p MBGNBD) LogLikelihood(m RFM) float64 { return logLik(p.params(), true, m) }

func logLik(v [4]float64, mod bool, m RFM) float64 {
	r, alpha, a, b := v[0], v[1], v[2], v[3]
	k := 0.0
	if mod {
		k = 1
	}
	x := m.X
	ll := lgamma(r+x) - lgamma(r) + r*math.Log(alpha) +
		lgamma(a+b) + lgamma(b+x+k) - lgamma(b) - lgamma(a+b+x+k)
	a3 := -(r + x) * math.Log(alpha+m.T)
	if x == 0 && !mod {
		return ll + a3
	}
	d := math.Log(a) - math.Log(b+x+k-1) + (r+x)*(math.Log(alpha+m.T)-math.Log(alpha+m.TX))
	sp, _ := softplus(d)
	return ll + a3 + sp
}

// PAlive is P(alive | x, tx, T) (Fader, Hardie and Lee 2008, "Computing
// P(alive) Using the BG/NBD Model", eq. 2):
//
//	1 / (1 + [x > 0] a/(b+x−1) · ((α+T)/(α+tx))^(r+x)).
//
// A member with no repeat transaction is alive with probability 1 under
// BG/NBD; MBGNBD.PAlive does not have that flaw.
func (p BGNBD) PAlive(m RFM) float64 { return pAlive(p.params(), false, m) }

// PAlive is P(alive | x, tx, T) under MBG/NBD (lifetimes
// ModifiedBetaGeoFitter.conditional_probability_alive):
//
//	1 / (1 + a/(b+x) · ((α+T)/(α+tx))^(r+x)).
func (p MBGNBD) PAlive(m RFM) float64 { return pAlive(p.params(), true, m) }

func pAlive(v [4]float64, mod bool, m RFM) float64 {
	r, alpha, a, b := v[0], v[1], v[2], v[3]
	if m.X == 0 && !mod {
		return 1
	}
	k := 0.0
	if mod {
		k = 1
	}
	lr := math.Log(a/(b+m.X+k-1)) + (r+m.X)*(math.Log(alpha+m.T)-math.Log(alpha+m.TX))
	_, s := softplus(-lr) // 1/(1+e^lr)
	return s
}

// ExpectedTransactions is E[Y(t) | x, tx, T] under BG/NBD (Fader, Hardie
// and Lee 2005, eq. 10), evaluated as described in expect.go: P(alive)
// times the posterior mean of (1 − e^(−λpt))/p.
func (p BGNBD) ExpectedTransactions(m RFM, t float64) float64 {
	return expected(p.params(), false, m, t)
}

// ExpectedTransactions is E[Y(t) | x, tx, T] under MBG/NBD (lifetimes
// ModifiedBetaGeoFitter.conditional_expected_number_of_purchases_up_to_time).
func (p MBGNBD) ExpectedTransactions(m RFM, t float64) float64 {
	return expected(p.params(), true, m, t)
}

func expected(v [4]float64, mod bool, m RFM, t float64) float64 {
	if t <= 0 {
		return 0
	}
	r, alpha, a, b := v[0], v[1], v[2], v[3]
	post := b + m.X // posterior Beta(a, b+x) of p given alive at T
	if mod {
		post++ // one more dropout chance survived: the first transaction
	}
	return pAlive(v, mod, m) * expectInvP(r+m.X, a, post, t/(alpha+m.T))
}

// ExpectedNew is E[X(t)] under BG/NBD (Fader, Hardie and Lee 2005, eq. 7):
// (a+b−1)/(a−1) · [1 − (α/(α+t))^r · 2F1(r, b; a+b−1; t/(α+t))].
func (p BGNBD) ExpectedNew(t float64) float64 {
	if t <= 0 {
		return 0
	}
	return expectInvP(p.R, p.A, p.B, t/p.Alpha)
}

// ExpectedNew is E[X(t)] under MBG/NBD (lifetimes
// ModifiedBetaGeoFitter.expected_number_of_purchases_up_to_time):
// b/(a−1) · [1 − (α/(α+t))^r · 2F1(r, b+1; a+b; t/(α+t))].
func (p MBGNBD) ExpectedNew(t float64) float64 {
	if t <= 0 {
		return 0
	}
	return p.B / (p.A + p.B) * expectInvP(p.R, p.A, p.B+1, t/p.Alpha)
}

// negLogLik returns the negative log-likelihood of the sample per member
// at θ = log(r, α, a, b) and, when grad is not nil, its gradient in θ.
func negLogLik(s *rfmSet, mod bool, theta, grad []float64) float64 {
	r, alpha, a, b := math.Exp(theta[0]), math.Exp(theta[1]), math.Exp(theta[2]), math.Exp(theta[3])
	k := 0.0
	if mod {
		k = 1
	}
	// Per distinct x: the parts that do not depend on tx or T.
	var ll, gr, ga, gb float64
	for i, x := range s.xs {
		w := s.xw[i]
		ll += w * (lgamma(r+x) - lgamma(r) + lgamma(a+b) + lgamma(b+x+k) - lgamma(b) - lgamma(a+b+x+k))
		if grad != nil {
			gr += w * (digamma(r+x) - digamma(r))
			ga += w * (digamma(a+b) - digamma(a+b+x+k))
			gb += w * (digamma(a+b) + digamma(b+x+k) - digamma(b) - digamma(a+b+x+k))
		}
	}
	ll += s.total * r * math.Log(alpha)
	var gAlpha float64
	if grad != nil {
		gr += s.total * math.Log(alpha)
		gAlpha = s.total * r / alpha
	}
	la := math.Log(a)
	// Per distinct x: log(b+x+k−1), the denominator of the dropout odds.
	lbx := make([]float64, len(s.xs))
	for i, x := range s.xs {
		lbx[i] = math.Log(b + x + k - 1)
	}
	for j, w := range s.w {
		xi := s.xi[j]
		x := s.xs[xi]
		rx := r + x
		lT := math.Log(alpha + s.T[j])
		ll -= w * rx * lT
		if grad != nil {
			gr -= w * lT
			gAlpha -= w * rx / (alpha + s.T[j])
		}
		if x == 0 && !mod {
			continue
		}
		ltx := math.Log(alpha + s.tx[j])
		d := la - lbx[xi] + rx*(lT-ltx)
		sp, sig := softplus(d)
		ll += w * sp
		if grad != nil {
			ws := w * sig
			gr += ws * (lT - ltx)
			gAlpha += ws * rx * (1/(alpha+s.T[j]) - 1/(alpha+s.tx[j]))
			ga += ws / a
			gb -= ws / (b + x + k - 1)
		}
	}
	n := s.total
	if grad != nil {
		// d/dθ = param · d/dparam; negate and average.
		grad[0] = -gr * r / n
		grad[1] = -gAlpha * alpha / n
		grad[2] = -ga * a / n
		grad[3] = -gb * b / n
	}
	return -ll / n
}

func digamma(v float64) float64 { return mathext.Digamma(v) }
