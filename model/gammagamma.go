package model

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/stat"
)

// GammaGamma holds the parameters of the Gamma-Gamma spend model (Fader,
// Hardie and Lee 2005, "RFM and CLV: Using Iso-Value Curves for Customer
// Base Analysis", JMR 42(4); Fader and Hardie 2013, "The Gamma-Gamma Model
// of Monetary Value"). A member's transaction values are Gamma(p, ν) with
// ν ~ Gamma(q, γ) across members, independent of the purchase process.
type GammaGamma struct {
	P     float64 `json:"p"`
	Q     float64 `json:"q"`
	Gamma float64 `json:"gamma"`
}

var gammaGammaNames = []string{"p", "q", "gamma"}

// Check reports whether the parameters are all positive and finite.
func (g GammaGamma) Check() error {
	for i, v := range []float64{g.P, g.Q, g.Gamma} {
		if !(v > 0) || math.IsInf(v, 1) {
			return fmt.Errorf("model: gamma-gamma parameter %s = %g, want positive and finite", gammaGammaNames[i], v)
		}
	}
	return nil
}

// LogLikelihood is the log-likelihood of a member's mean value m̄ over
// x ≥ 1 repeat transactions (Fader and Hardie 2013, eq. 1; lifetimes
// GammaGammaFitter._negative_log_likelihood):
//
//	log Γ(px+q) − log Γ(px) − log Γ(q) + q log γ + (px−1) log m̄
//	+ px log x − (px+q) log(γ + x m̄).
func (g GammaGamma) LogLikelihood(m RFM) float64 {
	px := g.P * m.X
	return lgamma(px+g.Q) - lgamma(px) - lgamma(g.Q) + g.Q*math.Log(g.Gamma) +
		(px-1)*math.Log(m.MeanValue) + px*math.Log(m.X) - (px+g.Q)*math.Log(g.Gamma+m.X*m.MeanValue)
}

// ExpectedValue is the expected value of one of the member's future
// transactions, E[M | p, q, γ, m̄, x] = p(γ + x m̄)/(px + q − 1) (Fader and
// Hardie 2013, eq. 3), a weighted mean of the population mean pγ/(q−1) and
// the member's own m̄. For x = 0 it is the population mean, which is +Inf
// when q ≤ 1.
func (g GammaGamma) ExpectedValue(m RFM) float64 {
	den := g.P*m.X + g.Q - 1
	if den <= 0 {
		return math.Inf(1)
	}
	return g.P * (g.Gamma + m.X*m.MeanValue) / den
}

// SpendFit is a Gamma-Gamma fit with the check of its assumption.
type SpendFit struct {
	Diagnostics
	// Correlation is the Pearson correlation between x and m̄ over the
	// members fitted. The model assumes spend independent of frequency;
	// a correlation far from 0 (say |ρ| > 0.3) says it does not hold.
	Correlation float64 `json:"correlation"`
}

// ErrTooFewRepeaters is returned when fewer than two members have a repeat
// transaction with a positive mean value.
var ErrTooFewRepeaters = errors.New("model: fewer than two members with repeat transactions and positive spend")

// FitGammaGamma fits the Gamma-Gamma model by maximum likelihood on the
// members with x ≥ 1 and MeanValue > 0; the others are skipped.
func FitGammaGamma(data []RFM) (GammaGamma, SpendFit, error) {
	var xs, ms []float64
	for i, m := range data {
		if err := m.Check(); err != nil {
			return GammaGamma{}, SpendFit{}, fmt.Errorf("fit gamma-gamma: member %d: %w", i, err)
		}
		if m.X >= 1 && m.MeanValue > 0 {
			xs = append(xs, m.X)
			ms = append(ms, m.MeanValue)
		}
	}
	if len(xs) < 2 {
		return GammaGamma{}, SpendFit{}, fmt.Errorf("fit gamma-gamma: %w", ErrTooFewRepeaters)
	}
	fit := SpendFit{Correlation: stat.Correlation(xs, ms, nil)}
	if !finite(fit.Correlation) {
		fit.Correlation = 0 // no spread in x or m̄
	}
	n := float64(len(xs))
	obj := func(theta, grad []float64) float64 { return ggNegLogLik(xs, ms, theta, grad) }
	mean := stat.Mean(ms, nil)
	// Start at p = 1, q = 2, so that the population mean pγ/(q−1) is m̄.
	theta, d, err := maximise(obj, []float64{0, math.Log(2), math.Log(mean)}, n, gammaGammaNames)
	d.Members, d.Distinct = len(xs), len(xs)
	fit.Diagnostics = d
	if err != nil {
		return GammaGamma{}, fit, fmt.Errorf("fit gamma-gamma: %w", err)
	}
	g := GammaGamma{P: math.Exp(theta[0]), Q: math.Exp(theta[1]), Gamma: math.Exp(theta[2])}
	if err := g.Check(); err != nil {
		return g, fit, fmt.Errorf("fit gamma-gamma: %w", err)
	}
	return g, fit, nil
}

// ggNegLogLik is the Gamma-Gamma negative log-likelihood per member at
// θ = log(p, q, γ), with its gradient in θ when grad is not nil.
func ggNegLogLik(xs, ms, theta, grad []float64) float64 {
	p, q, g := math.Exp(theta[0]), math.Exp(theta[1]), math.Exp(theta[2])
	var ll, gp, gq, gg float64
	lg := math.Log(g)
	for i, x := range xs {
		m := ms[i]
		px := p * x
		lm, lx, ls := math.Log(m), math.Log(x), math.Log(g+x*m)
		ll += lgamma(px+q) - lgamma(px) - lgamma(q) + q*lg + (px-1)*lm + px*lx - (px+q)*ls
		if grad != nil {
			dpq := digamma(px + q)
			gp += x * (dpq - digamma(px) + lm + lx - ls)
			gq += dpq - digamma(q) + lg - ls
			gg += q/g - (px+q)/(g+x*m)
		}
	}
	n := float64(len(xs))
	if grad != nil {
		grad[0], grad[1], grad[2] = -gp*p/n, -gq*q/n, -gg*g/n
	}
	return -ll / n
}
