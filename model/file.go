package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// FileVersion is the version of the model file this package writes.
const FileVersion = 1

// Time units of a model.
const (
	UnitDay  = "day"
	UnitWeek = "week"
)

// File is the model file: what `churnflow fit` writes and `run`, `replay`
// and `demo` load with --model. Durations and rates inside it are in Unit.
type File struct {
	// Version is FileVersion.
	Version int `json:"version"`
	// Unit is the time unit of the purchase models: "day" or "week".
	Unit string `json:"unit"`
	// CalibrationStart and CalibrationEnd bound the calibration data.
	CalibrationStart time.Time `json:"calibration_start"`
	CalibrationEnd   time.Time `json:"calibration_end"`
	// HoldoutEnd ends the hold-out period of the evaluation, if any.
	HoldoutEnd *time.Time `json:"holdout_end,omitempty"`
	// Chosen names the purchase model for live scoring ("bgnbd" or
	// "mbgnbd") and Reason says why it was chosen.
	Chosen string `json:"chosen"`
	Reason string `json:"reason,omitempty"`
	// BGNBD and MBGNBD are the fitted purchase models; the chosen one must
	// be present.
	BGNBD  *FittedBGNBD  `json:"bgnbd,omitempty"`
	MBGNBD *FittedMBGNBD `json:"mbgnbd,omitempty"`
	// GammaGamma is the spend model; CLV its valuation settings, required
	// with it.
	GammaGamma *FittedGammaGamma `json:"gamma_gamma,omitempty"`
	CLV        *CLVConfig        `json:"clv,omitempty"`
	// Segments are the LRFMC segments, if fitted.
	Segments *Segments `json:"segments,omitempty"`
	// Evaluation is the hold-out report, if a hold-out was given.
	Evaluation *Evaluation `json:"evaluation,omitempty"`
}

// FittedBGNBD is a BG/NBD fit.
type FittedBGNBD struct {
	Params BGNBD       `json:"params"`
	Fit    Diagnostics `json:"fit"`
}

// FittedMBGNBD is an MBG/NBD fit.
type FittedMBGNBD struct {
	Params MBGNBD      `json:"params"`
	Fit    Diagnostics `json:"fit"`
}

// FittedGammaGamma is a Gamma-Gamma fit.
type FittedGammaGamma struct {
	Params GammaGamma `json:"params"`
	Fit    SpendFit   `json:"fit"`
}

// Errors from Load and Validate.
var (
	// ErrVersion is returned for a file version this build does not know.
	ErrVersion = errors.New("model: unknown model file version")
	// ErrInvalid is returned for a file that is not a usable model.
	ErrInvalid = errors.New("model: invalid model file")
)

// Validate reports the first thing that makes f unusable.
func (f *File) Validate() error {
	if f.Version != FileVersion {
		return fmt.Errorf("%w %d (this build reads %d)", ErrVersion, f.Version, FileVersion)
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
	}
	if f.Unit != UnitDay && f.Unit != UnitWeek {
		return bad("unit %q, want %q or %q", f.Unit, UnitDay, UnitWeek)
	}
	if f.CalibrationEnd.IsZero() || !f.CalibrationEnd.After(f.CalibrationStart) {
		return bad("calibration period %s to %s is empty", f.CalibrationStart.Format(time.RFC3339), f.CalibrationEnd.Format(time.RFC3339))
	}
	if f.HoldoutEnd != nil && !f.HoldoutEnd.After(f.CalibrationEnd) {
		return bad("hold-out end %s is not after the calibration end", f.HoldoutEnd.Format(time.RFC3339))
	}
	if f.BGNBD != nil {
		if err := f.BGNBD.Params.Check(); err != nil {
			return bad("%v", err)
		}
	}
	if f.MBGNBD != nil {
		if err := f.MBGNBD.Params.Check(); err != nil {
			return bad("%v", err)
		}
	}
	if _, err := f.Purchase(); err != nil {
		return err
	}
	if f.GammaGamma != nil {
		if err := f.GammaGamma.Params.Check(); err != nil {
			return bad("%v", err)
		}
		if f.CLV == nil {
			return bad("gamma-gamma model without clv settings")
		}
	}
	if f.CLV != nil {
		if err := f.CLV.Check(); err != nil {
			return bad("%v", err)
		}
	}
	if f.Segments != nil {
		if err := f.Segments.Check(); err != nil {
			return bad("%v", err)
		}
	}
	return nil
}

// Purchase returns the chosen purchase model.
func (f *File) Purchase() (Purchase, error) {
	switch f.Chosen {
	case NameBGNBD:
		if f.BGNBD == nil {
			return nil, fmt.Errorf("%w: chosen model %q has no parameters", ErrInvalid, f.Chosen)
		}
		return f.BGNBD.Params, nil
	case NameMBGNBD:
		if f.MBGNBD == nil {
			return nil, fmt.Errorf("%w: chosen model %q has no parameters", ErrInvalid, f.Chosen)
		}
		return f.MBGNBD.Params, nil
	}
	return nil, fmt.Errorf("%w: chosen model %q, want %q or %q", ErrInvalid, f.Chosen, NameBGNBD, NameMBGNBD)
}

// Load reads and validates a model file. Unknown fields are an error, so a
// misspelt field is not silently ignored.
func Load(r io.Reader) (*File, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read model file: %w", err)
	}
	var head struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("decode model file: %w", err)
	}
	if head.Version == nil {
		return nil, fmt.Errorf("%w: no version field", ErrInvalid)
	}
	if *head.Version != FileVersion {
		return nil, fmt.Errorf("%w %d (this build reads %d)", ErrVersion, *head.Version, FileVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("decode model file: %w", err)
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

// Save validates f and writes it as indented JSON.
func Save(w io.Writer, f *File) error {
	if err := f.Validate(); err != nil {
		return err
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("encode model file: %w", err)
	}
	if _, err := w.Write(append(data, '\n')); err != nil {
		return fmt.Errorf("write model file: %w", err)
	}
	return nil
}
