package model

import (
	"math"
	"testing"
)

// The Gamma-Gamma fit on the 946 CDNOW repeat buyers. Reference values from
// lifetimes 0.11.3 GammaGammaFitter.fit(x, zbar) on the members with x > 0
// (.summary for the standard errors), numpy.corrcoef for the correlation.
// Fader and Hardie (2013) report p = 6.25, q = 3.74, γ = 15.44 and a
// correlation of 0.11.
func TestFitGammaGammaCDNOW(t *testing.T) {
	g, fit, err := FitGammaGamma(loadCDNOW(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name      string
		got, want float64
		se        float64
	}{
		{"p", g.P, 6.248802496075312, 1.189687},
		{"q", g.Q, 3.744588460923114, 0.290166},
		{"gamma", g.Gamma, 15.44774806492914, 4.159994},
	}
	for _, w := range want {
		if !relClose(w.got, w.want, 1e-4) {
			t.Errorf("%s = %.8g, want %.8g", w.name, w.got, w.want)
		}
		if !relClose(fit.StdErr[w.name], w.se, 1e-2) {
			t.Errorf("se(%s) = %.6g, want %.6g", w.name, fit.StdErr[w.name], w.se)
		}
	}
	if math.Abs(fit.LogLikelihood-(-4055.9232435029)) > 1e-4 {
		t.Errorf("LL = %.6f, want -4055.923244", fit.LogLikelihood)
	}
	if !relClose(fit.Correlation, 0.113883910486004, 1e-12) {
		t.Errorf("correlation = %.15g, want 0.113883910486004", fit.Correlation)
	}
	if fit.Members != 946 || !fit.Converged {
		t.Errorf("diagnostics %+v", fit.Diagnostics)
	}
}

// Expected value and log-likelihood at p = 6.25, q = 3.74, γ = 15.44, from
// lifetimes 0.11.3 GammaGammaFitter.conditional_expected_average_profit and
// −_negative_log_likelihood of the single member; for x = 0 the population
// mean pγ/(q−1).
func TestGammaGammaClosedForms(t *testing.T) {
	g := GammaGamma{P: 6.25, Q: 3.74, Gamma: 15.44}
	cases := []struct {
		m      RFM
		ev, ll float64
	}{
		{RFM{X: 1, MeanValue: 11.77}, 18.916852057842, -3.73770967874084},
		{RFM{X: 2, MeanValue: 22.35}, 24.6637139107612, -3.55131675973169},
		{RFM{X: 7, MeanValue: 45}, 44.4235319423532, -4.58668364028478},
		{RFM{X: 0}, 35.2189781021898, math.NaN()},
	}
	for _, c := range cases {
		if got := g.ExpectedValue(c.m); !relClose(got, c.ev, 1e-12) {
			t.Errorf("E[M | %+v] = %.15g, want %.15g", c.m, got, c.ev)
		}
		if c.m.X > 0 {
			if got := g.LogLikelihood(c.m); !relClose(got, c.ll, 1e-12) {
				t.Errorf("LL(%+v) = %.15g, want %.15g", c.m, got, c.ll)
			}
		}
	}
	if v := (GammaGamma{P: 1, Q: 0.8, Gamma: 1}).ExpectedValue(RFM{}); !math.IsInf(v, 1) {
		t.Errorf("population mean with q < 1 = %g, want +Inf", v)
	}
}

// CLV over 12 months at 1 % a month, weekly models (4.345 weeks a month),
// value from the Gamma-Gamma model above. Reference values from lifetimes
// 0.11.3 utils._customer_lifetime_value(model, x, tx, T, value, time=12,
// discount_rate=0.01, freq="W").
func TestCLV(t *testing.T) {
	bg := BGNBD{R: 0.243, Alpha: 4.414, A: 0.793, B: 2.426}
	mbg := MBGNBD{R: 0.525, Alpha: 6.183, A: 0.891, B: 1.614}
	g := GammaGamma{P: 6.25, Q: 3.74, Gamma: 15.44}
	cfg, err := MonthlyCLV(UnitWeek, 12, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		m       RFM
		bg, mbg float64
	}{
		{RFM{X: 2, TX: 30.43, T: 38.86, MeanValue: 22.35}, 36.2892111255995, 37.2018952189233},
		{RFM{X: 7, TX: 35, T: 38, MeanValue: 45}, 240.462771367078, 230.78818448664},
		{RFM{X: 1, TX: 1.71, T: 38.86, MeanValue: 11.77}, 4.63729465974719, 4.28781130797016},
	}
	for _, c := range cases {
		v := g.ExpectedValue(c.m)
		if got := CLV(bg, c.m, v, cfg); !relClose(got, c.bg, 1e-10) {
			t.Errorf("BG/NBD CLV(%+v) = %.15g, want %.15g", c.m, got, c.bg)
		}
		if got := CLV(mbg, c.m, v, cfg); !relClose(got, c.mbg, 1e-10) {
			t.Errorf("MBG/NBD CLV(%+v) = %.15g, want %.15g", c.m, got, c.mbg)
		}
	}
	for _, bad := range []CLVConfig{{Periods: 0, PeriodLength: 1}, {Periods: 1}, {Periods: 1, PeriodLength: 1, DiscountRate: -1}} {
		if bad.Check() == nil {
			t.Errorf("config %+v accepted", bad)
		}
	}
	if _, err := MonthlyCLV("month", 12, 0.01); err == nil {
		t.Error("unknown unit accepted")
	}
}
