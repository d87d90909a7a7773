package model

import (
	"math"
	"testing"
)

// relClose reports whether got is within rel of want (relative), or within
// rel absolutely when want is 0.
func relClose(got, want, rel float64) bool {
	if want == 0 {
		return math.Abs(got) <= rel
	}
	return math.Abs(got/want-1) <= rel
}

// The CDNOW fits: reference values from lifetimes 0.11.3 (BetaGeoFitter,
// ModifiedBetaGeoFitter .fit(x, t_x, T) on testdata/cdnow_summary.csv, with
// scipy 1.17.1; standard errors from .summary, log-likelihoods from
// _negative_log_likelihood at the estimate times 2,357). The BG/NBD values
// are those of Fader, Hardie and Lee (2005), Table 1: r = 0.243,
// α = 4.414, a = 0.793, b = 2.426, LL = −9,582.4.
func TestFitCDNOW(t *testing.T) {
	data := loadCDNOW(t)
	type want struct {
		params [4]float64
		se     [4]float64
		ll     float64
	}
	check := func(t *testing.T, got [4]float64, d Diagnostics, w want) {
		t.Helper()
		for i, name := range purchaseParamNames {
			if !relClose(got[i], w.params[i], 1e-4) {
				t.Errorf("%s = %.6g, want %.6g", name, got[i], w.params[i])
			}
			if !relClose(d.StdErr[name], w.se[i], 1e-2) {
				t.Errorf("se(%s) = %.6g, want %.6g", name, d.StdErr[name], w.se[i])
			}
		}
		if math.Abs(d.LogLikelihood-w.ll) > 1e-4 {
			t.Errorf("LL = %.6f, want %.6f", d.LogLikelihood, w.ll)
		}
		if !d.Converged || d.Members != 2357 || d.Distinct >= 2357 {
			t.Errorf("diagnostics %+v", d)
		}
	}
	t.Run("bgnbd", func(t *testing.T) {
		p, d, err := FitBGNBD(data)
		if err != nil {
			t.Fatal(err)
		}
		check(t, p.params(), d, want{
			params: [4]float64{0.24259292827982182, 4.413532265271819, 0.7928859664406882, 2.42575238262586},
			se:     [4]float64{0.012557, 0.378221, 0.185719, 0.705345},
			ll:     -9582.4255605674,
		})
	})
	t.Run("mbgnbd", func(t *testing.T) {
		p, d, err := FitMBGNBD(data)
		if err != nil {
			t.Fatal(err)
		}
		check(t, p.params(), d, want{
			params: [4]float64{0.524837725567698, 6.182988479134173, 0.8913562809310741, 1.6140000256718765},
			se:     [4]float64{0.083264, 0.695597, 0.154785, 0.537472},
			ll:     -9582.1326848999,
		})
	})
}

// Closed forms at fixed parameters. Reference values from lifetimes 0.11.3
// with scipy 1.17.1: conditional_probability_alive,
// conditional_expected_number_of_purchases_up_to_time (which uses
// scipy.special.hyp2f1) and −_negative_log_likelihood of the single member,
// for BetaGeoFitter with r = 0.243, α = 4.414, a = 0.793, b = 2.426 and
// ModifiedBetaGeoFitter with r = 0.525, α = 6.183, a = 0.891, b = 1.614.
func TestClosedForms(t *testing.T) {
	bg := BGNBD{R: 0.243, Alpha: 4.414, A: 0.793, B: 2.426}
	mbg := MBGNBD{R: 0.525, Alpha: 6.183, A: 0.891, B: 1.614}
	const BG, MBG = 0, 1
	models := []Purchase{bg, mbg}
	cases := []struct {
		model          int
		m              RFM
		t              float64
		pAlive, ey, ll float64
	}{
		{BG, RFM{X: 0, TX: 0, T: 38.86}, 39, 1, 0.195098052011254, -0.554713276438158},
		{BG, RFM{X: 1, TX: 1.71, T: 38.86}, 39, 0.212100985377379, 0.203186987079752, -4.46909327503259},
		{BG, RFM{X: 2, TX: 30.43, T: 38.86}, 39, 0.726578570080673, 1.22602817476714, -9.45860630706627},
		{BG, RFM{X: 7, TX: 35, T: 38}, 52, 0.861991065093433, 5.72868166434611, -22.0129201344972},
		{BG, RFM{X: 7, TX: 5, T: 38}, 52, 0.000195551184803605, 0.00129960800313417, -13.621742110236},
		{BG, RFM{X: 50, TX: 30, T: 32}, 10, 0.791477749661204, 9.92878381839984, -38.2979078435617},
		{BG, RFM{X: 3, TX: 20, T: 30}, 300, 0.647047131204645, 7.49721023684929, -11.7242920098284},
		{BG, RFM{X: 0, TX: 0, T: 5}, 200, 1, 2.07486821443835, -0.184052242340091},
		{MBG, RFM{X: 0, TX: 0, T: 38.86}, 39, 0.389735080918763, 0.154012746675146, -0.539837463531015},
		{MBG, RFM{X: 1, TX: 1.71, T: 38.86}, 39, 0.170836484310408, 0.188836541364341, -4.46036061258432},
		{MBG, RFM{X: 2, TX: 30.43, T: 38.86}, 39, 0.706202265118487, 1.26296062326734, -9.48555131453393},
		{MBG, RFM{X: 7, TX: 35, T: 38}, 52, 0.850646751682222, 5.49568913330694, -21.9433529814242},
		{MBG, RFM{X: 7, TX: 5, T: 38}, 52, 0.000312642037018887, 0.00201985541243977, -14.0346596423261},
		{MBG, RFM{X: 50, TX: 30, T: 32}, 10, 0.792639308671801, 9.46884808645392, -39.8818033299158},
		{MBG, RFM{X: 3, TX: 20, T: 30}, 300, 0.623455782335123, 6.86811613942846, -11.6467912213171},
		{MBG, RFM{X: 0, TX: 0, T: 5}, 200, 0.570285493934171, 1.93409209225622, -0.189065355866475},
	}
	for _, c := range cases {
		pm := models[c.model]
		if got := pm.PAlive(c.m); !relClose(got, c.pAlive, 1e-12) {
			t.Errorf("%s P(alive | %+v) = %.15g, want %.15g", pm.Name(), c.m, got, c.pAlive)
		}
		if got := pm.ExpectedTransactions(c.m, c.t); !relClose(got, c.ey, 1e-10) {
			t.Errorf("%s E[Y(%g) | %+v] = %.15g, want %.15g", pm.Name(), c.t, c.m, got, c.ey)
		}
		if got := pm.LogLikelihood(c.m); !relClose(got, c.ll, 1e-12) {
			t.Errorf("%s LL(%+v) = %.15g, want %.15g", pm.Name(), c.m, got, c.ll)
		}
	}
	// E[X(t)] of a new member: lifetimes expected_number_of_purchases_up_to_time.
	news := []struct {
		model   int
		t, want float64
	}{
		{BG, 1, 0.0532678911716563}, {BG, 39, 1.1967231933208}, {BG, 78, 1.86051905794275}, {BG, 1000, 6.5803916137379},
		{MBG, 1, 0.0530847952636987}, {MBG, 39, 1.18295366559717}, {MBG, 78, 1.80475757755313}, {MBG, 1000, 5.6122559658847},
	}
	for _, c := range news {
		if got := models[c.model].ExpectedNew(c.t); !relClose(got, c.want, 1e-10) {
			t.Errorf("%s E[X(%g)] = %.15g, want %.15g", models[c.model].Name(), c.t, got, c.want)
		}
	}
}

// TestExpectInvP checks J(A, a, B, u) = E[(1 − (1+pu)^−A)/p], p ~ Beta(a, B),
// on both sides of the series/quadrature switch, near a = 1 and for large
// arguments. Reference values from mpmath 1.3 at 30 digits:
// C/(a−1)·(1 − (1−z)^A·hyp2f1(A, B, C, z)) with C = a+B−1, z = u/(1+u), and
// for a = 1 mp.quad of the Beta expectation itself.
func TestExpectInvP(t *testing.T) {
	cases := [][5]float64{ // A, a, B, u, J
		{0.2, 0.15, 0.4, 0.01, 0.0019967449599608196984},
		{0.2, 0.8, 2.4, 10000.0, 19.972270906702157859},
		{0.2, 1, 150.4, 30, 5.4317718467858765321},
		{0.2, 6, 2.4, 2, 0.22956016043288951528},
		{1.3, 0.15, 150.4, 0.51, 0.66261420775734841374},
		{1.3, 1, 2.4, 0.5, 0.56136256690636657126},
		{1.3, 1, 12, 0.01, 0.012988518032677645808},
		{1.3, 1, 12, 0.5, 0.62329402756316068476},
		{1.3, 1, 12, 0.51, 0.63525360212428390127},
		{1.3, 1, 12, 10000.0, 79.220293056282207197},
		{1.3, 1.7, 150.4, 0.3, 0.38850483869428820052},
		{6, 0.15, 0.4, 10000.0, 9772.1260882431615399},
		{6, 0.8, 12, 10000.0, 264.00594182198568791},
		{6, 1.7, 0.4, 30, 1.5515867265643630458},
		{6, 6, 12, 2, 3.0940030564961291126},
		{25, 0.8, 0.4, 0.51, 2.3969400399222091015},
		{25, 1.7, 0.4, 2, 1.526358260252765418},
		{25, 6, 0.4, 0.3, 1.0766317610838220691},
		{150.2, 0.15, 12, 0.01, 1.4885692882832647863},
		{150.2, 0.8, 150.4, 10000.0, 3987.5844230488269254},
		{150.2, 1, 150.4, 0.3, 39.413389226080271026},
		{150.2, 1, 150.4, 2, 165.09760033060291528},
	}
	for _, c := range cases {
		if got := expectInvP(c[0], c[1], c[2], c[3]); !relClose(got, c[4], 1e-11) {
			t.Errorf("J(%g, %g, %g, %g) = %.15g, want %.15g", c[0], c[1], c[2], c[3], got, c[4])
		}
	}
	// Series and quadrature agree where both apply.
	for _, u := range []float64{0.05, 0.2, 0.45} {
		s, q := expectInvPSeries(3.2, 0.9, 4.1, u), expectInvPQuad(3.2, 0.9, 4.1, u)
		if !relClose(s, q, 1e-12) {
			t.Errorf("u = %g: series %.15g, quadrature %.15g", u, s, q)
		}
	}
}

// TestExpectedSmoothAtAOne: the hypergeometric form has a 0/0 at a = 1; the
// expectation must be continuous there.
func TestExpectedSmoothAtAOne(t *testing.T) {
	m := RFM{X: 3, TX: 20, T: 30}
	at := BGNBD{R: 0.5, Alpha: 5, A: 1, B: 2}.ExpectedTransactions(m, 100)
	for _, d := range []float64{-1e-7, 1e-7} {
		near := BGNBD{R: 0.5, Alpha: 5, A: 1 + d, B: 2}.ExpectedTransactions(m, 100)
		if !relClose(near, at, 1e-6) || !finite(at) {
			t.Errorf("E at a = 1: %.12g, at a = 1%+g: %.12g", at, d, near)
		}
	}
}

// TestGradient compares the analytic gradient of the negative
// log-likelihood with central differences.
func TestGradient(t *testing.T) {
	s, err := compress(loadCDNOW(t))
	if err != nil {
		t.Fatal(err)
	}
	theta := []float64{math.Log(0.3), math.Log(5), math.Log(0.7), math.Log(2)}
	for _, mod := range []bool{false, true} {
		grad := make([]float64, 4)
		negLogLik(s, mod, theta, grad)
		for i := range theta {
			x := append([]float64(nil), theta...)
			const h = 1e-6
			x[i] = theta[i] + h
			fp := negLogLik(s, mod, x, nil)
			x[i] = theta[i] - h
			fm := negLogLik(s, mod, x, nil)
			if num := (fp - fm) / (2 * h); math.Abs(num-grad[i]) > 1e-6 {
				t.Errorf("modified=%v: dθ%d analytic %.9g, numeric %.9g", mod, i, grad[i], num)
			}
		}
		// The sample LL is the sum of the per-member ones.
		var sum float64
		for _, m := range loadCDNOW(t) {
			v := [4]float64{0.3, 5, 0.7, 2}
			sum += logLik(v, mod, m)
		}
		if got := -negLogLik(s, mod, theta, nil) * s.total; !relClose(got, sum, 1e-12) {
			t.Errorf("modified=%v: sample LL %.12g, sum of members %.12g", mod, got, sum)
		}
	}
}

func TestFitErrors(t *testing.T) {
	if _, _, err := FitBGNBD(nil); err == nil {
		t.Error("fit of no members: no error")
	}
	if _, _, err := FitBGNBD([]RFM{{X: 0, T: 10}, {X: 0, T: 5}}); err == nil {
		t.Error("fit with no repeat transaction: no error")
	}
	if _, _, err := FitMBGNBD([]RFM{{X: 2, TX: 11, T: 10}}); err == nil {
		t.Error("fit with tx > T: no error")
	}
}
