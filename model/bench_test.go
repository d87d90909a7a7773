package model

import (
	"testing"
)

// BenchmarkFitBGNBD fits BG/NBD to 1,000,000 simulated members (days: r = 2,
// α = 70, a = 0.5, b = 2, ages one to three years). The simulation is not
// timed.
func BenchmarkFitBGNBD(b *testing.B) {
	data, err := Simulate(BGNBD{R: 2, Alpha: 70, A: 0.5, B: 2}, SimConfig{Members: 1_000_000, TMin: 365, TMax: 1095, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		p, d, err := FitBGNBD(data)
		if err != nil || !d.Converged {
			b.Fatalf("%v %+v", err, d)
		}
		b.ReportMetric(float64(d.Evaluations), "evals")
		b.ReportMetric(float64(d.Distinct), "distinct")
		_ = p
	}
}

// BenchmarkFitMBGNBD is BenchmarkFitBGNBD for MBG/NBD.
func BenchmarkFitMBGNBD(b *testing.B) {
	data, err := Simulate(MBGNBD{R: 2, Alpha: 70, A: 0.5, B: 2}, SimConfig{Members: 1_000_000, TMin: 365, TMax: 1095, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		_, d, err := FitMBGNBD(data)
		if err != nil || !d.Converged {
			b.Fatalf("%v %+v", err, d)
		}
		b.ReportMetric(float64(d.Evaluations), "evals")
	}
}

// BenchmarkExpectedTransactions is the live scoring cost of E[Y(90 days)].
func BenchmarkExpectedTransactions(b *testing.B) {
	p := MBGNBD{R: 2, Alpha: 70, A: 0.5, B: 2}
	members := []RFM{{X: 3, TX: 200, T: 400}, {X: 0, T: 30}, {X: 12, TX: 700, T: 720}}
	for b.Loop() {
		for _, m := range members {
			p.ExpectedTransactions(m, 90)
		}
	}
}
