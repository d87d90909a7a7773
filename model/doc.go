// Package model is the numerical core of churnflow's churn model: the
// BG/NBD and MBG/NBD purchase models, the Gamma-Gamma spend model, customer
// lifetime value, LRFMC segments by k-means, the hold-out evaluation and the
// versioned model file.
//
// Everything here is a pure function of its arguments: no clock, no files,
// no goroutines. The time unit (day or week) is the caller's: a member's
// [RFM] summary, the parameters fitted from it and every horizon passed to
// an expectation are in the same unit, and the model [File] records which.
//
// The conventions follow the published analyses (Fader, Hardie and Lee
// 2005): a member's first transaction starts the clock; X counts the repeat
// transactions after it, TX is the time of the last one (0 when X = 0) and
// T the time from the first transaction to the end of the calibration
// period.
//
// A fit, in outline:
//
//	bg, diag, err := model.FitBGNBD(members)           // maximum likelihood
//	p := bg.PAlive(members[i])                           // P(alive | x, tx, T)
//	n90 := bg.ExpectedTransactions(members[i], 90)       // E[Y(90) | x, tx, T]
//	gg, _, err := model.FitGammaGamma(members)           // spend per transaction
//	clv := model.CLV(bg, members[i], gg.ExpectedValue(members[i]), cfg)
//
// and for segments:
//
//	seg, err := model.FitSegments(lrfmc, model.DefaultKMeansConfig())
//	name := seg.Nearest(v).Name
package model
