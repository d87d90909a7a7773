package operators

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/churnflow/churnflow/model"
)

// testFitted is a fitted model file in days whose chosen purchase model
// makes P(alive) fall fast: r = 2, α = 45, a = 2, b = 3. Its segments are
// hand-made in raw units (every standard deviation 1, means 0): the five
// centres differ in R (0 and 100) or sit far away in F, M and C, so a
// member with one booking moves from important_retain to general when R
// passes 50.
func testFitted(chosen string) *model.File {
	clv := model.CLVConfig{Periods: 12, PeriodLength: model.DaysPerMonth, DiscountRate: 0.01}
	f := &model.File{
		Version: model.FileVersion, Unit: model.UnitDay,
		CalibrationStart: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), CalibrationEnd: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		Chosen:     chosen,
		BGNBD:      &model.FittedBGNBD{Params: model.BGNBD{R: 2, Alpha: 45, A: 2, B: 3}},
		MBGNBD:     &model.FittedMBGNBD{Params: model.MBGNBD{R: 2, Alpha: 45, A: 2, B: 3}},
		GammaGamma: &model.FittedGammaGamma{Params: model.GammaGamma{P: 2, Q: 5, Gamma: 400}},
		CLV:        &clv,
		Segments: &model.Segments{
			Stats: model.Standardizer{Mean: []float64{0, 0, 0, 0, 0}, Std: []float64{1, 1, 1, 1, 1}},
			Centres: []model.Centre{
				{Name: model.SegmentImportantRetain, Z: []float64{0, 0, 1, 0, 0}},
				{Name: model.SegmentGeneral, Z: []float64{0, 100, 1, 0, 0}},
				{Name: model.SegmentImportantDevelop, Z: []float64{0, 0, 1000, 0, 0}},
				{Name: model.SegmentImportantWinBack, Z: []float64{0, 0, 0, 1e6, 0}},
				{Name: model.SegmentLowValue, Z: []float64{0, 0, 0, 0, 1000}},
			},
		},
	}
	return f
}

func fittedCfg(chosen string) Config {
	return defaultCfg(func(c *Config) { c.Fitted = testFitted(chosen) })
}

// TestFittedPAliveTimer: under MBG/NBD a member with a single booking is not
// certainly alive; P(alive) = 1/(1 + a/b · ((α+T)/α)^r) falls under 0.3 at
// T = 45(√3.5 − 1) = 39.19 days (hand computation), and the timer fires the
// retention alert there with no event. Its value at risk is CLV × (1 −
// P(alive)).
func TestFittedPAliveTimer(t *testing.T) {
	first := ts("2026-01-01T00:00:00Z")
	events := []*Event{
		enrol("F1", "2025-12-01T00:00:00Z", withTier("gold")),
		booking("F1", "2026-01-01T00:00:00Z", hotel(), withAmount(1000)),
	}
	crossDays := 45 * (math.Sqrt(3.5) - 1)
	wantAt := first + int64(math.Ceil(crossDays*secondsPerDay))
	got := ofType(run(t, fittedCfg(model.NameMBGNBD), "2026-06-01T00:00:00Z", events...), AlertRetention)
	a := onePAliveAlert(t, got, wantAt)
	pm := model.MBGNBD{R: 2, Alpha: 45, A: 2, B: 3}
	rfm := model.RFM{T: float64(wantAt-first) / secondsPerDay}
	p := pm.PAlive(rfm)
	if before := pm.PAlive(model.RFM{T: rfm.T - 1.0/secondsPerDay}); !(before >= 0.3 && p < 0.3) {
		t.Errorf("P(alive) one second before %v, at %v: not the crossing", before, p)
	}
	if !a.Member.HasPAlive || math.Abs(a.Member.PAlive-p) > 1e-12 {
		t.Errorf("alert p_alive %v (has %v), want %v", a.Member.PAlive, a.Member.HasPAlive, p)
	}
	// No repeat booking: the expected value of a transaction is the
	// population mean pγ/(q−1) = 200.
	clv := model.CLV(pm, rfm, 200, model.CLVConfig{Periods: 12, PeriodLength: 30, DiscountRate: 0.01})
	if !a.Member.HasCLV || math.Abs(a.Member.CLV-clv) > 1e-9*clv {
		t.Errorf("alert clv %v (has %v), want %v", a.Member.CLV, a.Member.HasCLV, clv)
	}
	if want := math.Round(clv*(1-p)*100) / 100; a.ValueAtRisk != want {
		t.Errorf("value at risk %v, want CLV × (1 − P(alive)) = %v", a.ValueAtRisk, want)
	}
	if e := pm.ExpectedTransactions(rfm, 90); !a.Member.HasExpected || math.Abs(a.Member.ExpectedBookings-e) > 1e-12 {
		t.Errorf("expected bookings %v (has %v), want %v", a.Member.ExpectedBookings, a.Member.HasExpected, e)
	}
	// Under BG/NBD the same member is alive with probability 1: no alert.
	if got := ofType(run(t, fittedCfg(model.NameBGNBD), "2026-06-01T00:00:00Z", events...), AlertRetention); len(got) != 0 {
		t.Errorf("BG/NBD: got %q", brief(got))
	}
}

// TestFittedSegments: the segment is the nearest fitted centre, and a timer
// moves the member to the next centre on the day R crosses the midpoint
// (R = 50 is a tie, kept by the first centre; R = 51 moves).
func TestFittedSegments(t *testing.T) {
	events := []*Event{
		enrol("S1", "2026-01-01T08:00:00Z"),
		booking("S1", "2026-01-01T10:00:00Z", hotel(), withAmount(100)),
	}
	got := ofType(run(t, fittedCfg(model.NameBGNBD), "2026-03-31T00:00:00Z", events...), AlertSegmentChange)
	var segs []string
	for _, a := range got {
		segs = append(segs, FormatTime(a.TriggeredAt)+" "+a.Member.Segment.String())
	}
	want := []string{"2026-01-01T08:00:00Z important_retain", "2026-02-21T00:00:00Z general"}
	if !slices.Equal(segs, want) {
		t.Errorf("segment changes %q, want %q", segs, want)
	}
}

// TestFittedSnapshotAndReport: the report carries the fitted figures, which
// match the model package computed from the member's summary.
func TestFittedSnapshotAndReport(t *testing.T) {
	cfg := fittedCfg(model.NameMBGNBD)
	h := newHarness(t, cfg)
	h.apply(
		enrol("R1", "2025-06-01T00:00:00Z"),
		booking("R1", "2025-06-01T10:00:00Z", hotel(), withAmount(100)),
		booking("R1", "2025-07-01T10:00:00Z", hotel(), withAmount(300)),
		booking("R1", "2025-07-01T12:00:00Z", hotel(), withAmount(100)), // same day: one transaction of 400
		booking("R1", "2025-08-01T10:00:00Z", hotel(), withAmount(200)),
	)
	now := ts("2025-09-01T10:00:00Z")
	s := h.states["R1"]
	snap := h.g.Snapshot(s, now)
	pm := cfg.Fitted.MBGNBD.Params
	rfm := model.RFM{X: 2, TX: 61, T: 92}
	gg := cfg.Fitted.GammaGamma.Params
	v := gg.ExpectedValue(model.RFM{X: 2, MeanValue: 300})
	if p := pm.PAlive(rfm); math.Abs(snap.PAlive-p) > 1e-12 {
		t.Errorf("p_alive %v, want %v", snap.PAlive, p)
	}
	if e := pm.ExpectedTransactions(rfm, 90); math.Abs(snap.ExpectedBookings-e) > 1e-12 {
		t.Errorf("expected %v, want %v", snap.ExpectedBookings, e)
	}
	if c := model.CLV(pm, rfm, v, *cfg.Fitted.CLV); math.Abs(snap.CLV-c) > 1e-9*c {
		t.Errorf("clv %v, want %v", snap.CLV, c)
	}
	b, err := json.Marshal(h.g.Report("R1", s, now))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"p_alive":`, `"expected_bookings_90d":`, `"clv":`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("report lacks %s: %s", key, b)
		}
	}
	// Without a model the report has none of them.
	g0, _ := NewEngine(DefaultConfig())
	b, _ = json.Marshal(g0.Report("R1", s, now))
	for _, key := range []string{`"p_alive":`, `"expected_bookings_90d":`, `"clv":`} {
		if strings.Contains(string(b), key) {
			t.Errorf("report without a model has %s: %s", key, b)
		}
	}
}

func TestFittedConfig(t *testing.T) {
	cfg := fittedCfg(model.NameBGNBD)
	cfg.Model = &BGNBDParams{R: 1, Alpha: 1, A: 1, B: 1, Unit: "day"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "config model:") {
		t.Errorf("model and fitted model: %v", err)
	}
	cfg = DefaultConfig()
	cfg.ModelFile = "model.json"
	if _, err := NewEngine(cfg); err == nil || !strings.Contains(err.Error(), "config model_file:") {
		t.Errorf("model_file not loaded: %v", err)
	}
	cfg = fittedCfg("pareto")
	if _, err := NewEngine(cfg); err == nil || !strings.Contains(err.Error(), `chosen model "pareto"`) {
		t.Errorf("unknown chosen model: %v", err)
	}
}
