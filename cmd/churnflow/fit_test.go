package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/churnflow/churnflow/model"
)

// genHistory writes two years of a small generated population and returns
// the file.
func genHistory(t *testing.T, dir string, extra ...string) string {
	t.Helper()
	p := filepath.Join(dir, "events.jsonl")
	args := append([]string{"gen", "--members", "800", "--days", "730", "--start", "2024-01-01", "--seed", "3", "--out", p}, extra...)
	if code, _, stderr := run(t, "", nil, args...); code != exitOK {
		t.Fatalf("gen exit %d: %s", code, stderr)
	}
	return p
}

func loadModel(t *testing.T, path string) *model.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := model.Load(f)
	if err != nil {
		t.Fatalf("the model file does not load: %v", err)
	}
	return m
}

func TestFitEndToEnd(t *testing.T) {
	dir := t.TempDir()
	events := genHistory(t, dir)
	out := filepath.Join(dir, "model.json")
	code, stdout, stderr := run(t, "", nil, "fit", "--input", events, "--calibration-end", "2025-07-01T00:00:00Z",
		"--holdout-end", "2026-01-01T00:00:00Z", "--unit", "week", "--out", out, "--progress", "never")
	if code != exitOK {
		t.Fatalf("fit exit %d: %s", code, stderr)
	}
	for _, want := range []string{"BG/NBD", "MBG/NBD", "log-likelihood", "Gamma-Gamma", "correlation of frequency and mean spend",
		"LRFMC segments", "important_retain", "AUC", "P(alive) BG/NBD", "P(alive) MBG/NBD", "recency baseline",
		"Predicted vs actual hold-out transactions", "Chosen for live scoring:"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, "fit: done") {
		t.Errorf("no progress on standard error: %q", stderr)
	}
	m := loadModel(t, out)
	if m.Unit != model.UnitWeek || m.BGNBD == nil || m.MBGNBD == nil || m.GammaGamma == nil || m.Segments == nil || m.Evaluation == nil || m.HoldoutEnd == nil {
		t.Fatalf("model file incomplete: %+v", m)
	}
	if len(m.Evaluation.AUC) != 5 || m.Evaluation.Members == 0 || m.Reason == "" {
		t.Errorf("evaluation %+v, reason %q", m.Evaluation, m.Reason)
	}
	if m.BGNBD.Fit.Members != m.Evaluation.Members {
		t.Errorf("fitted %d members, evaluated %d", m.BGNBD.Fit.Members, m.Evaluation.Members)
	}

	// The model scores a replay: alerts carry P(alive), expected bookings
	// and CLV.
	code, stdout, stderr = run(t, "", nil, "replay", "--input", events, "--model", out, "--summary", "none")
	if code != exitOK {
		t.Fatalf("replay --model exit %d: %s", code, stderr)
	}
	for _, want := range []string{`"p_alive":`, `"expected_bookings_90d":`, `"clv":`} {
		if !strings.Contains(stdout, want) {
			t.Errorf("replay --model alerts lack %s", want)
		}
	}
	// run takes the same file (as rules.model_file).
	code, stdout, stderr = run(t, "", nil, "run", "--print-config", "--model", out)
	if code != exitOK || !strings.Contains(stdout, "model_file: "+out) {
		t.Errorf("run --print-config --model: exit %d, %s %s", code, stdout, stderr)
	}
	// gen draws members from it.
	code, _, stderr = run(t, "", nil, "gen", "--members", "50", "--days", "60", "--model", out, "--out", filepath.Join(dir, "from-model.jsonl"))
	if code != exitOK {
		t.Errorf("gen --model exit %d: %s", code, stderr)
	}

	// Without a hold-out the model with the higher likelihood is chosen.
	out2 := filepath.Join(dir, "model2.json")
	code, stdout, stderr = run(t, "", nil, "fit", "--input", events, "--calibration-end", "2025-07-01T00:00:00Z", "--unit", "day", "--out", out2)
	if code != exitOK {
		t.Fatalf("fit without hold-out: exit %d: %s", code, stderr)
	}
	if m := loadModel(t, out2); m.Evaluation != nil || !strings.Contains(m.Reason, "log-likelihood") || strings.Contains(stdout, "AUC") {
		t.Errorf("without hold-out: evaluation %+v, reason %q", m.Evaluation, m.Reason)
	}
}

func TestFitFromState(t *testing.T) {
	dir := t.TempDir()
	events := genHistory(t, dir)
	st := filepath.Join(dir, "state")
	if code, _, stderr := run(t, "", nil, "replay", "--input", events, "--state", st, "--out", filepath.Join(dir, "alerts.jsonl"), "--summary", "none"); code != exitOK {
		t.Fatalf("replay --state exit %d: %s", code, stderr)
	}
	out := filepath.Join(dir, "model.json")
	code, stdout, stderr := run(t, "", nil, "fit", "--state", st, "--unit", "day", "--out", out)
	if code != exitOK {
		t.Fatalf("fit --state exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "no hold-out evaluation") {
		t.Errorf("report: %s", stdout)
	}
	loadModel(t, out)
	// A calibration end before the states' last booking cannot be honoured.
	code, _, stderr = run(t, "", nil, "fit", "--state", st, "--calibration-end", "2025-01-01T00:00:00Z", "--out", out)
	if code != exitUsage || !strings.Contains(stderr, "cannot be split") {
		t.Errorf("early --calibration-end: exit %d %q", code, stderr)
	}
}

func TestFitFlagErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.jsonl")
	if err := os.WriteFile(empty, []byte(`{"event_id":"a","type":"login","member_id":"M1","occurred_at":"2025-01-01T00:00:00Z"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "m.json")
	cal := "2025-07-01T00:00:00Z"
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"fit", "--out", out, "--calibration-end", cal}, exitUsage, "--input: required"},
		{[]string{"fit", "--input", empty, "--calibration-end", cal}, exitUsage, "--out: required"},
		{[]string{"fit", "--input", empty, "--out", out}, exitUsage, "--calibration-end: required"},
		{[]string{"fit", "--input", empty, "--out", out, "--calibration-end", "July"}, exitUsage, `--calibration-end: "July" is not an RFC 3339 time`},
		{[]string{"fit", "--input", empty, "--out", out, "--calibration-end", cal, "--holdout-end", "2025-01-01T00:00:00Z"}, exitUsage, "--holdout-end: 2025-01-01T00:00:00Z is not after --calibration-end"},
		{[]string{"fit", "--input", empty, "--out", out, "--calibration-end", cal, "--unit", "month"}, exitUsage, `--unit: "month" is not one of day, week`},
		{[]string{"fit", "--input", empty, "--out", out, "--calibration-end", cal, "--discount", "1.5"}, exitUsage, "--discount: 1.5"},
		{[]string{"fit", "--input", empty, "--out", out, "--calibration-end", cal, "--horizon-months", "0"}, exitUsage, "--horizon-months: 0"},
		{[]string{"fit", "--input", empty, "--state", dir, "--out", out}, exitUsage, "give one of them, not both"},
		{[]string{"fit", "--state", dir, "--out", out, "--holdout-end", "2026-01-01T00:00:00Z"}, exitUsage, "--holdout-end: not available with --state"},
		{[]string{"fit", "--input", filepath.Join(dir, "missing.jsonl"), "--out", out, "--calibration-end", cal}, exitUsage, "does not exist"},
		{[]string{"fit", "--input", empty, "--out", out, "--calibration-end", cal}, exitFatal, "no member booked by --calibration-end"},
		{[]string{"fit", "--input", empty, "--out", out, "--calibration-end", cal, "--holdout-end", "2026-01-01T00:00:00Z"}, exitUsage, "no event after --calibration-end"},
	} {
		code, _, stderr := run(t, "", nil, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d containing %q", c.args, code, stderr, c.code, c.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed fit left a model file")
	}
}

func TestModelFlagErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"version": 1, "unit": "fortnight"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	newer := filepath.Join(dir, "newer.json")
	if err := os.WriteFile(newer, []byte(`{"version": 99}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"replay", "--input", sample, "--model", filepath.Join(dir, "none.json")}, "--model: model file"},
		{[]string{"replay", "--input", sample, "--model", bad}, "not a usable model file"},
		{[]string{"replay", "--input", sample, "--model", newer}, "refit with this build"},
		{[]string{"run", "--print-config", "--model", bad}, "not a usable model file"},
		{[]string{"gen", "--out", "-", "--model", bad}, "not a usable model file"},
		{[]string{"gen", "--out", "-", "--purchase-params", "1,2,3"}, "--purchase-params: \"1,2,3\"; give four positive numbers"},
		{[]string{"gen", "--out", "-", "--purchase-model", "pareto"}, `--purchase-model: "pareto" is not one of bgnbd, mbgnbd`},
	} {
		code, _, stderr := run(t, "", nil, c.args...)
		if code != exitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want usage error containing %q", c.args, code, stderr, c.want)
		}
	}
}

func TestGenPurchaseModel(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{}
	for _, pm := range []string{"bgnbd", "mbgnbd"} {
		p := filepath.Join(dir, pm+".jsonl")
		code, _, stderr := run(t, "", nil, "gen", "--members", "300", "--days", "200", "--purchase-model", pm, "--purchase-params", "0.5,45,0.6,10", "--out", p)
		if code != exitOK {
			t.Fatalf("%s: exit %d %s", pm, code, stderr)
		}
		files[pm] = readFile(t, p)
	}
	def := filepath.Join(dir, "default.jsonl")
	if code, _, stderr := run(t, "", nil, "gen", "--members", "300", "--days", "200", "--out", def); code != exitOK {
		t.Fatalf("default: %s", stderr)
	}
	if files["bgnbd"] != readFile(t, def) {
		t.Error("--purchase-model bgnbd with the default parameters changed the output")
	}
	if files["mbgnbd"] == files["bgnbd"] {
		t.Error("--purchase-model mbgnbd made no difference")
	}
	// MBG/NBD members may drop out after their first booking: fewer
	// bookings overall.
	if b, m := strings.Count(files["bgnbd"], `"type":"booking"`), strings.Count(files["mbgnbd"], `"type":"booking"`); m >= b {
		t.Errorf("bookings: bgnbd %d, mbgnbd %d; want fewer under mbgnbd", b, m)
	}
}
