package model

import (
	"errors"
	"fmt"
	"slices"
)

// ErrOneClass is returned by AUC when all outcomes are alike.
var ErrOneClass = errors.New("model: AUC needs both positive and negative outcomes")

// AUC is the area under the ROC curve of score for the outcome positive:
// the probability that a randomly chosen positive scores higher than a
// randomly chosen negative, ties counting one half. It is computed from
// the Mann-Whitney U statistic with average ranks for ties.
func AUC(score []float64, positive []bool) (float64, error) {
	if len(score) != len(positive) {
		return 0, fmt.Errorf("model: %d scores for %d outcomes", len(score), len(positive))
	}
	idx := make([]int, len(score))
	for i := range idx {
		if !finite(score[i]) {
			return 0, fmt.Errorf("model: score %d is %g", i, score[i])
		}
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case score[a] < score[b]:
			return -1
		case score[a] > score[b]:
			return 1
		}
		return 0
	})
	var rankSum, nPos float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && score[idx[j]] == score[idx[i]] {
			j++
		}
		avg := float64(i+j+1) / 2 // mean of ranks i+1 … j
		for _, k := range idx[i:j] {
			if positive[k] {
				rankSum += avg
				nPos++
			}
		}
		i = j
	}
	nNeg := float64(len(idx)) - nPos
	if nPos == 0 || nNeg == 0 {
		return 0, ErrOneClass
	}
	return (rankSum - nPos*(nPos+1)/2) / (nPos * nNeg), nil
}

// Holdout is one member's calibration summary and what the member did in
// the hold-out period that followed.
type Holdout struct {
	Calibration RFM
	// Transactions is the number of transactions in the hold-out period.
	Transactions float64
}

// Score names of the evaluation report.
const (
	ScorePAliveBGNBD    = "p_alive_bgnbd"
	ScorePAliveMBGNBD   = "p_alive_mbgnbd"
	ScoreExpectedBGNBD  = "expected_bgnbd"
	ScoreExpectedMBGNBD = "expected_mbgnbd"
	ScoreRecency        = "recency"
)

// ScoreAUC is how well one score ranks the members inactive in the
// hold-out.
type ScoreAUC struct {
	// Score is one of the Score… names.
	Score string `json:"score"`
	// AUC is the area under the ROC curve for "no transaction in the
	// hold-out": 0.5 is no better than chance, 1 a perfect ranking.
	AUC float64 `json:"auc"`
}

// Totals compares a model's predicted hold-out transactions with the
// actual ones.
type Totals struct {
	Model     string  `json:"model"`
	Predicted float64 `json:"predicted"`
	Actual    float64 `json:"actual"`
}

// Evaluation is the hold-out report.
type Evaluation struct {
	// Length is the hold-out period in the model's time unit.
	Length float64 `json:"length"`
	// Members is the members evaluated; Inactive those with no transaction
	// in the hold-out.
	Members  int `json:"members"`
	Inactive int `json:"inactive"`
	// AUC holds each score's AUC, in the order: P(alive) BG/NBD, P(alive)
	// MBG/NBD, expected transactions BG/NBD, MBG/NBD, recency baseline.
	AUC []ScoreAUC `json:"auc"`
	// Totals holds each model's predicted and the actual hold-out totals.
	Totals []Totals `json:"totals"`
}

// Evaluate scores every member with each model and the recency baseline,
// and reports how well each score ranks the members with no transaction
// in the hold-out of the given length. Each score is oriented so that a
// higher value means "more likely inactive": 1 − P(alive) for P(alive),
// −E[Y(length)] for the expected transactions, and T − tx (the time since
// the last transaction, at the end of calibration) for recency.
func Evaluate(bg BGNBD, mbg MBGNBD, members []Holdout, length float64) (Evaluation, error) {
	if !(length > 0) {
		return Evaluation{}, fmt.Errorf("model: hold-out length %g, want positive", length)
	}
	n := len(members)
	scores := make([][]float64, 5)
	for i := range scores {
		scores[i] = make([]float64, n)
	}
	inactive := make([]bool, n)
	ev := Evaluation{Length: length, Members: n}
	tot := []Totals{{Model: NameBGNBD}, {Model: NameMBGNBD}}
	for i, h := range members {
		m := h.Calibration
		if err := m.Check(); err != nil {
			return Evaluation{}, fmt.Errorf("evaluate member %d: %w", i, err)
		}
		eb, em := bg.ExpectedTransactions(m, length), mbg.ExpectedTransactions(m, length)
		scores[0][i] = 1 - bg.PAlive(m)
		scores[1][i] = 1 - mbg.PAlive(m)
		scores[2][i] = -eb
		scores[3][i] = -em
		scores[4][i] = m.T - m.TX
		inactive[i] = h.Transactions == 0
		if inactive[i] {
			ev.Inactive++
		}
		tot[0].Predicted += eb
		tot[1].Predicted += em
		tot[0].Actual += h.Transactions
		tot[1].Actual += h.Transactions
	}
	for i, name := range []string{ScorePAliveBGNBD, ScorePAliveMBGNBD, ScoreExpectedBGNBD, ScoreExpectedMBGNBD, ScoreRecency} {
		auc, err := AUC(scores[i], inactive)
		if err != nil {
			return Evaluation{}, fmt.Errorf("evaluate %s: %w", name, err)
		}
		ev.AUC = append(ev.AUC, ScoreAUC{Score: name, AUC: auc})
	}
	ev.Totals = tot
	return ev, nil
}

// AUCOf returns the AUC of the named score, and false if it is absent.
func (e Evaluation) AUCOf(score string) (float64, bool) {
	for _, s := range e.AUC {
		if s.Score == score {
			return s.AUC, true
		}
	}
	return 0, false
}

// Choose picks the purchase model for live scoring: the one whose P(alive)
// ranks the hold-out inactive members better (higher AUC), BG/NBD on a
// tie, and says why.
func (e Evaluation) Choose() (name, reason string) {
	b, okB := e.AUCOf(ScorePAliveBGNBD)
	m, okM := e.AUCOf(ScorePAliveMBGNBD)
	if !okB || !okM {
		return NameBGNBD, "no hold-out evaluation: BG/NBD by default"
	}
	if m > b {
		return NameMBGNBD, fmt.Sprintf("P(alive) AUC for hold-out inactivity %.4f (MBG/NBD) > %.4f (BG/NBD)", m, b)
	}
	return NameBGNBD, fmt.Sprintf("P(alive) AUC for hold-out inactivity %.4f (BG/NBD) ≥ %.4f (MBG/NBD)", b, m)
}
