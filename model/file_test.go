package model

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sampleFile() *File {
	hold := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	clv := CLVConfig{Periods: 12, PeriodLength: DaysPerMonth, DiscountRate: 0.01}
	return &File{
		Version:          FileVersion,
		Unit:             UnitDay,
		CalibrationStart: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
		CalibrationEnd:   time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		HoldoutEnd:       &hold,
		Chosen:           NameMBGNBD,
		Reason:           "higher AUC",
		BGNBD:            &FittedBGNBD{Params: BGNBD{R: 0.24, Alpha: 4.4, A: 0.79, B: 2.4}, Fit: Diagnostics{LogLikelihood: -9582.4, Members: 2357, StdErr: map[string]float64{"r": 0.01}}},
		MBGNBD:           &FittedMBGNBD{Params: MBGNBD{R: 0.52, Alpha: 6.2, A: 0.89, B: 1.6}},
		GammaGamma:       &FittedGammaGamma{Params: GammaGamma{P: 6.25, Q: 3.74, Gamma: 15.44}, Fit: SpendFit{Correlation: 0.11}},
		CLV:              &clv,
		Segments: &Segments{
			Stats:   Standardizer{Mean: []float64{1, 2, 3, 4, 5}, Std: []float64{1, 1, 1, 1, 1}},
			Centres: []Centre{{Name: SegmentGeneral, Z: []float64{0, 0, 0, 0, 0}, Share: 1}},
		},
		Evaluation: &Evaluation{Length: 181, Members: 10, AUC: []ScoreAUC{{ScoreRecency, 0.7}}},
	}
}

func TestFileRoundTrip(t *testing.T) {
	f := sampleFile()
	var buf bytes.Buffer
	if err := Save(&buf, f); err != nil {
		t.Fatal(err)
	}
	g, err := Load(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f, g) {
		t.Errorf("round trip:\n%+v\n%+v", f, g)
	}
	pm, err := g.Purchase()
	if err != nil || pm.Name() != NameMBGNBD {
		t.Errorf("purchase model %v, %v", pm, err)
	}
}

func TestFileErrors(t *testing.T) {
	cases := []struct {
		name   string
		edit   func(f *File)
		want   error
		substr string
	}{
		{"unknown version", func(f *File) { f.Version = 2 }, ErrVersion, "2"},
		{"bad unit", func(f *File) { f.Unit = "month" }, ErrInvalid, "unit"},
		{"empty calibration", func(f *File) { f.CalibrationEnd = f.CalibrationStart }, ErrInvalid, "calibration"},
		{"chosen missing", func(f *File) { f.MBGNBD = nil }, ErrInvalid, "no parameters"},
		{"unknown model", func(f *File) { f.Chosen = "pareto" }, ErrInvalid, "pareto"},
		{"non-positive param", func(f *File) { f.BGNBD.Params.A = 0 }, ErrInvalid, "parameter a"},
		{"negative gamma", func(f *File) { f.GammaGamma.Params.Q = -1 }, ErrInvalid, "parameter q"},
		{"gamma-gamma without clv", func(f *File) { f.CLV = nil }, ErrInvalid, "clv"},
		{"bad segments", func(f *File) { f.Segments.Centres[0].Name = "vip" }, ErrInvalid, "vip"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := sampleFile()
			c.edit(f)
			err := Save(&bytes.Buffer{}, f)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.substr) {
				t.Errorf("Save: %v, want %v mentioning %q", err, c.want, c.substr)
			}
		})
	}
	loads := []struct {
		name, json string
		want       error
	}{
		{"no version", `{"unit":"day"}`, ErrInvalid},
		{"newer version", `{"version":9,"whatever":1}`, ErrVersion},
	}
	for _, c := range loads {
		if _, err := Load(strings.NewReader(c.json)); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := Load(strings.NewReader(`{"version":1,"unti":"day"}`)); err == nil || !strings.Contains(err.Error(), "unti") {
		t.Errorf("misspelt field: %v", err)
	}
	if _, err := Load(strings.NewReader(`not json`)); err == nil {
		t.Error("garbage accepted")
	}
}
