package model

import (
	"errors"
	"fmt"
	"math"
)

// RFM is one member's summary over the calibration period, in the model's
// time unit, measured from the member's first transaction.
type RFM struct {
	// X is the number of repeat transactions (transactions after the first).
	X float64 `json:"x"`
	// TX is the time of the last transaction; 0 when X is 0.
	TX float64 `json:"tx"`
	// T is the member's age: the time from the first transaction to the end
	// of the calibration period.
	T float64 `json:"T"`
	// MeanValue is the mean value of the repeat transactions (0 when X is 0).
	// Only the Gamma-Gamma spend model reads it.
	MeanValue float64 `json:"mean_value,omitempty"`
}

// ErrNoData is returned by a fit given no usable members.
var ErrNoData = errors.New("model: no usable members")

// Check reports whether m is a valid summary: X a non-negative whole
// number, 0 ≤ TX ≤ T, TX = 0 when X = 0, all finite.
func (m RFM) Check() error {
	switch {
	case !finite(m.X) || !finite(m.TX) || !finite(m.T) || !finite(m.MeanValue):
		return fmt.Errorf("model: non-finite summary %+v", m)
	case m.X < 0 || m.X != math.Trunc(m.X):
		return fmt.Errorf("model: x = %g is not a non-negative whole number", m.X)
	case m.TX < 0 || m.TX > m.T:
		return fmt.Errorf("model: tx = %g outside [0, T = %g]", m.TX, m.T)
	case m.X == 0 && m.TX != 0:
		return fmt.Errorf("model: tx = %g with no repeat transaction", m.TX)
	case m.MeanValue < 0:
		return fmt.Errorf("model: negative mean value %g", m.MeanValue)
	}
	return nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// rfmSet is a calibration sample compressed to distinct (x, tx, T) rows with
// weights, and the distinct x values, so that the parts of a likelihood that
// depend on x alone are computed once per x.
type rfmSet struct {
	xs     []float64 // distinct x values
	xw     []float64 // total weight of each distinct x
	xi     []int32   // per row: index into xs
	tx, T  []float64 // per row
	w      []float64 // per row: number of members
	total  float64   // members
	sumT   float64   // Σ w·T, for starting values
	sumX   float64   // Σ w·x
	maxAge float64
}

// compress checks the members and folds identical (x, tx, T) triples.
func compress(data []RFM) (*rfmSet, error) {
	s := &rfmSet{}
	rows := make(map[[3]float64]int, len(data))
	xIndex := map[float64]int32{}
	for i, m := range data {
		if err := m.Check(); err != nil {
			return nil, fmt.Errorf("member %d: %w", i, err)
		}
		if m.T <= 0 {
			return nil, fmt.Errorf("member %d: age T = %g must be positive", i, m.T)
		}
		s.total++
		s.sumT += m.T
		s.sumX += m.X
		s.maxAge = max(s.maxAge, m.T)
		key := [3]float64{m.X, m.TX, m.T}
		if r, ok := rows[key]; ok {
			s.w[r]++
			s.xw[s.xi[r]]++
			continue
		}
		xi, ok := xIndex[m.X]
		if !ok {
			xi = int32(len(s.xs))
			xIndex[m.X] = xi
			s.xs = append(s.xs, m.X)
			s.xw = append(s.xw, 0)
		}
		rows[key] = len(s.w)
		s.xi = append(s.xi, xi)
		s.tx = append(s.tx, m.TX)
		s.T = append(s.T, m.T)
		s.w = append(s.w, 1)
		s.xw[xi]++
	}
	if s.total == 0 {
		return nil, ErrNoData
	}
	return s, nil
}

// softplus returns log(1 + e^d) without overflow, and the logistic σ(d),
// its derivative.
func softplus(d float64) (sp, sigma float64) {
	if d > 0 {
		e := math.Exp(-d)
		return d + math.Log1p(e), 1 / (1 + e)
	}
	e := math.Exp(d)
	return math.Log1p(e), e / (1 + e)
}
