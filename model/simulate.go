package model

import (
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/stat/distuv"
)

// SimConfig sets a simulation of members from a purchase model.
type SimConfig struct {
	// Members is the number of members to draw.
	Members int
	// TMin and TMax bound each member's age at the end of calibration,
	// drawn uniformly (cohorts starting uniformly over a period); equal
	// values give a single cohort.
	TMin, TMax float64
	// Spend, when set, draws a value for every transaction from the
	// Gamma-Gamma model.
	Spend *GammaGamma
	// Seed seeds the PCG generator: the same seed gives the same members.
	Seed uint64
}

// History is one simulated member.
type History struct {
	// T is the member's age at the end of calibration.
	T float64
	// Times are the transaction times in [0, T], ascending; Times[0] = 0 is
	// the first transaction.
	Times []float64
	// Values are the transaction values, aligned with Times (nil without
	// SimConfig.Spend).
	Values []float64
}

// RFM summarises the history.
func (h History) RFM() RFM {
	x := len(h.Times) - 1
	m := RFM{X: float64(x), TX: h.Times[x], T: h.T}
	if x > 0 && len(h.Values) == len(h.Times) {
		var s float64
		for _, v := range h.Values[1:] {
			s += v
		}
		m.MeanValue = s / float64(x)
	}
	return m
}

// maxSimTransactions caps one simulated member's transactions.
const maxSimTransactions = 1 << 20

// SimulateTimes draws members from pm: each gets λ ~ Gamma(r, α) and
// p ~ Beta(a, b), buys at 0 and then as a Poisson process with rate λ, and
// drops out with probability p after each repeat transaction (and, under
// MBG/NBD, also right after the first). Transactions after T are not seen.
func SimulateTimes(pm Purchase, c SimConfig) ([]History, error) {
	if err := pm.Check(); err != nil {
		return nil, fmt.Errorf("simulate: %w", err)
	}
	if c.Members < 0 || !(c.TMin > 0) || c.TMax < c.TMin || math.IsInf(c.TMax, 1) {
		return nil, fmt.Errorf("simulate: bad configuration %d members, T in [%g, %g]", c.Members, c.TMin, c.TMax)
	}
	if c.Spend != nil {
		if err := c.Spend.Check(); err != nil {
			return nil, fmt.Errorf("simulate: %w", err)
		}
	}
	v := pm.params()
	src := rand.NewPCG(c.Seed, 0x9e3779b97f4a7c15)
	rng := rand.New(src)
	rates := distuv.Gamma{Alpha: v[0], Beta: v[1], Src: src}
	drops := distuv.Beta{Alpha: v[2], Beta: v[3], Src: src}
	out := make([]History, c.Members)
	for i := range out {
		T := c.TMin + (c.TMax-c.TMin)*rng.Float64()
		lambda, p := rates.Rand(), drops.Rand()
		times := []float64{0}
		alive := !pm.modified() || rng.Float64() >= p
		for t := 0.0; alive && len(times) < maxSimTransactions; {
			t += rng.ExpFloat64() / lambda
			if t > T {
				break
			}
			times = append(times, t)
			alive = rng.Float64() >= p
		}
		h := History{T: T, Times: times}
		if c.Spend != nil {
			nu := distuv.Gamma{Alpha: c.Spend.Q, Beta: c.Spend.Gamma, Src: src}.Rand()
			value := distuv.Gamma{Alpha: c.Spend.P, Beta: nu, Src: src}
			h.Values = make([]float64, len(times))
			for j := range h.Values {
				h.Values[j] = value.Rand()
			}
		}
		out[i] = h
	}
	return out, nil
}

// Simulate draws members as SimulateTimes does and returns their summaries.
func Simulate(pm Purchase, c SimConfig) ([]RFM, error) {
	hs, err := SimulateTimes(pm, c)
	if err != nil {
		return nil, err
	}
	out := make([]RFM, len(hs))
	for i, h := range hs {
		out[i] = h.RFM()
	}
	return out, nil
}
