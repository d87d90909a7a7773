package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/churnflow/churnflow/model"
	"github.com/churnflow/churnflow/operators"
)

// isModelFile reports whether data is a model file written by "churnflow
// fit" (a JSON object with a version), as opposed to the older YAML file of
// BG/NBD parameters (r, alpha, a, b, unit) that sets rules.model.
func isModelFile(data []byte) bool {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return false
	}
	var head struct {
		Version *int `json:"version"`
	}
	return json.Unmarshal(data, &head) == nil && head.Version != nil
}

// readModelFile loads and validates a model file; source names where the
// path came from in errors (a flag or a configuration key).
func readModelFile(source, path string) (*model.File, error) {
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, usagef("%s: model file %q does not exist (write one with churnflow fit)", source, path)
	case errors.Is(err, fs.ErrPermission):
		return nil, usagef("%s: model file %q is not readable (permission denied)", source, path)
	case err != nil:
		return nil, usagef("%s: cannot read model file %q: %v", source, path, err)
	}
	f, err := model.Load(bytes.NewReader(data))
	switch {
	case errors.Is(err, model.ErrVersion):
		return nil, usagef("%s %s: %v; refit with this build's churnflow fit", source, path, err)
	case err != nil:
		return nil, usagef("%s %s: not a usable model file: %v (write one with churnflow fit)", source, path, err)
	}
	return f, nil
}

// applyModelFile loads the fitted model that flagPath (--model, wins) or
// the rules' model_file names into rules.Fitted. Nothing to load: no-op.
func applyModelFile(rules *operators.Config, flagPath string) error {
	source := "config rules.model_file"
	if flagPath != "" {
		rules.ModelFile, source = flagPath, "--model"
	}
	if rules.ModelFile == "" {
		return nil
	}
	f, err := readModelFile(source, rules.ModelFile)
	if err != nil {
		return err
	}
	if rules.Model != nil {
		return usagef("%s %s: the rules also set model (BG/NBD parameters); give one or the other", source, rules.ModelFile)
	}
	rules.Fitted = f
	return nil
}

// fittedSummary is one line saying which model is loaded, for standard
// error.
func fittedSummary(f *model.File) string {
	s := fmt.Sprintf("model: %s (unit %s, calibration to %s)", f.Chosen, f.Unit, f.CalibrationEnd.Format("2006-01-02"))
	if f.Segments != nil {
		s += ", LRFMC segments from fitted centres"
	}
	if f.GammaGamma != nil {
		s += ", CLV"
	}
	return s
}
