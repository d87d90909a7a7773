package model

import (
	"encoding/csv"
	"os"
	"strconv"
	"testing"
)

// loadCDNOW reads testdata/cdnow_summary.csv: the CDNOW sample of 2,357
// customers of Fader, Hardie and Lee (2005), 39 weeks of calibration, as
// shipped with the lifetimes library (lifetimes/datasets/
// cdnow_customers_summary_with_transactions.csv; columns ID, x, t_x, T in
// weeks, zbar the mean value of the repeat transactions in dollars).
func loadCDNOW(t testing.TB) []RFM {
	t.Helper()
	f, err := os.Open("testdata/cdnow_summary.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var out []RFM
	for _, row := range rows[1:] {
		var v [4]float64
		for i := range v {
			if v[i], err = strconv.ParseFloat(row[i+1], 64); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, RFM{X: v[0], TX: v[1], T: v[2], MeanValue: v[3]})
	}
	return out
}
