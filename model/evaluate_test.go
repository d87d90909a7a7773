package model

import (
	"errors"
	"math"
	"testing"
)

func TestAUC(t *testing.T) {
	cases := []struct {
		name  string
		score []float64
		pos   []bool
		want  float64
	}{
		{"perfect", []float64{1, 2, 3, 4}, []bool{false, false, true, true}, 1},
		{"reversed", []float64{1, 2, 3, 4}, []bool{true, true, false, false}, 0},
		{"all tied", []float64{5, 5, 5, 5}, []bool{true, false, true, false}, 0.5},
		// Positives {3, 2}, negatives {1, 2}: 3>1, 3>2 and 2>1 win, 2=2
		// ties: (3 + 0.5)/4.
		{"one tie", []float64{3, 2, 1, 2}, []bool{true, true, false, false}, 0.875},
		// sklearn.metrics.roc_auc_score([0,0,1,1], [0.1,0.4,0.35,0.8]) = 0.75.
		{"sklearn example", []float64{0.1, 0.4, 0.35, 0.8}, []bool{false, false, true, true}, 0.75},
	}
	for _, c := range cases {
		got, err := AUC(c.score, c.pos)
		if err != nil || math.Abs(got-c.want) > 1e-15 {
			t.Errorf("%s: AUC = %g, %v; want %g", c.name, got, err, c.want)
		}
	}
	if _, err := AUC([]float64{1, 2}, []bool{true, true}); !errors.Is(err, ErrOneClass) {
		t.Errorf("one class: %v", err)
	}
	if _, err := AUC([]float64{1}, []bool{true, false}); err == nil {
		t.Error("length mismatch accepted")
	}
}

// TestEvaluate simulates members over calibration plus hold-out, fits both
// models on the calibration part and checks the report: the model scores
// must beat chance and the predicted total must be near the actual one.
func TestEvaluate(t *testing.T) {
	const hold = 26.0 // weeks
	hs, err := SimulateTimes(MBGNBD{R: 2, Alpha: 10, A: 0.5, B: 2}, SimConfig{Members: 3000, TMin: 52 + hold, TMax: 156 + hold, Seed: 21})
	if err != nil {
		t.Fatal(err)
	}
	members := make([]Holdout, len(hs))
	cal := make([]RFM, len(hs))
	for i, h := range hs {
		end := h.T - hold
		c := History{T: end}
		for _, tt := range h.Times {
			if tt <= end {
				c.Times = append(c.Times, tt)
			} else {
				members[i].Transactions++
			}
		}
		cal[i] = c.RFM()
		members[i].Calibration = cal[i]
	}
	bg, _, err := FitBGNBD(cal)
	if err != nil {
		t.Fatal(err)
	}
	mbg, _, err := FitMBGNBD(cal)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := Evaluate(bg, mbg, members, hold)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", ev)
	for _, s := range ev.AUC {
		if s.AUC < 0.6 {
			t.Errorf("%s AUC %.3f: no better than chance", s.Score, s.AUC)
		}
	}
	for _, tot := range ev.Totals {
		if !relClose(tot.Predicted, tot.Actual, 0.1) {
			t.Errorf("%s predicted %.0f hold-out transactions, actual %.0f", tot.Model, tot.Predicted, tot.Actual)
		}
	}
	if ev.Members != 3000 || ev.Inactive == 0 || ev.Inactive == 3000 {
		t.Errorf("members %d inactive %d", ev.Members, ev.Inactive)
	}
	// The data come from MBG/NBD, where one-time buyers drop out: BG/NBD's
	// P(alive) = 1 for them ranks worse.
	if name, why := ev.Choose(); name != NameMBGNBD || why == "" {
		t.Errorf("chose %s (%s), want mbgnbd", name, why)
	}
}

func TestChoose(t *testing.T) {
	ev := Evaluation{AUC: []ScoreAUC{{ScorePAliveBGNBD, 0.7}, {ScorePAliveMBGNBD, 0.8}}}
	if name, _ := ev.Choose(); name != NameMBGNBD {
		t.Errorf("chose %s, want mbgnbd", name)
	}
	ev.AUC[1].AUC = 0.7
	if name, _ := ev.Choose(); name != NameBGNBD {
		t.Errorf("tie: chose %s, want bgnbd", name)
	}
	if name, _ := (Evaluation{}).Choose(); name != NameBGNBD {
		t.Errorf("no evaluation: chose %s", name)
	}
}
