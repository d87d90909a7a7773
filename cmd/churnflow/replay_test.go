package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/churnflow/churnflow/state"
)

// run executes churnflow in-process with the given arguments, standard
// input and environment, and returns the exit code and what it printed.
func run(t *testing.T, stdin string, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	s := streams{
		in:  strings.NewReader(stdin),
		out: &out,
		err: &errb,
		getenv: func(k string) (string, bool) {
			v, ok := env[k]
			if !ok && k == "CHURNFLOW_HTTP_LISTEN" && !slices.Contains(args, "--config") && !slices.Contains(args, "--print-config") {
				// run serves HTTP on 127.0.0.1:8080 by default: tests that
				// do not configure it take a free port, so that they do
				// not collide.
				return "127.0.0.1:0", true
			}
			return v, ok
		},
	}
	code = execute(t.Context(), args, s)
	return code, out.String(), errb.String()
}

const sample = "testdata/sample.jsonl"

func jsonLines(t *testing.T, text string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON line: %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestReplaySample(t *testing.T) {
	dir := t.TempDir()
	outPath, rejPath := filepath.Join(dir, "alerts.jsonl"), filepath.Join(dir, "rejects.jsonl")
	code, stdout, stderr := run(t, "", nil, "replay", "--input", sample, "--until", "2026-07-01T00:00:00Z",
		"--out", outPath, "--rejects", rejPath, "--summary", "json", "--batch", "5")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if stdout != "" {
		t.Errorf("alerts went to standard output despite --out: %q", stdout)
	}

	alerts := jsonLines(t, readFile(t, outPath))
	types := map[string]int{}
	for _, a := range alerts {
		types[a["type"].(string)]++
		if a["emitted_at"] != a["triggered_at"] {
			t.Errorf("emitted_at %v differs from triggered_at %v", a["emitted_at"], a["triggered_at"])
		}
	}
	for _, want := range []string{"dormancy", "reactivated", "retention", "cross_sell_nudge", "first_redemption_nudge", "segment_change"} {
		if types[want] == 0 {
			t.Errorf("no %s alert in the sample's output: %v", want, types)
		}
	}

	rejects := jsonLines(t, readFile(t, rejPath))
	wantRejects := []struct {
		line   float64
		reason string
	}{{21, "invalid_field"}, {42, "invalid_json"}, {56, "unknown_tier"}}
	if len(rejects) != len(wantRejects) {
		t.Fatalf("rejects: %v", rejects)
	}
	lines := strings.Split(readFile(t, sample), "\n")
	for i, w := range wantRejects {
		r := rejects[i]
		if r["line"] != w.line || r["reason"] != w.reason || r["error"] == "" || r["record"] != lines[int(w.line)-1] {
			t.Errorf("reject %d: %v, want line %v reason %s and the original record", i, r, w.line, w.reason)
		}
	}

	var sum struct {
		Records       int64            `json:"records"`
		Events        int64            `json:"events"`
		RejectedTotal int64            `json:"rejected_total"`
		AlertsTotal   int64            `json:"alerts_total"`
		Alerts        map[string]int64 `json:"alerts"`
		Until         string           `json:"until"`
		Active        int64            `json:"active"`
		Sleeping      int64            `json:"sleeping"`
		ByTier        []struct {
			Name             string
			Active, Sleeping int64
		} `json:"by_tier"`
	}
	if err := json.Unmarshal([]byte(stderr), &sum); err != nil {
		t.Fatalf("summary is not JSON: %v\n%s", err, stderr)
	}
	if sum.Records != 91 || sum.Events != 88 || sum.RejectedTotal != 3 || sum.AlertsTotal != int64(len(alerts)) || sum.Until != "2026-07-01T00:00:00Z" {
		t.Errorf("summary: %+v", sum)
	}
	if sum.Active == 0 || sum.Sleeping == 0 || len(sum.ByTier) == 0 {
		t.Errorf("summary lacks the active/sleeping split: %+v", sum)
	}

	// The same replay to standard output, with a text summary and another
	// batch size, writes the same alerts.
	code, stdout, stderr = run(t, "", nil, "replay", "--input", sample, "--until", "2026-07-01T00:00:00Z")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if len(jsonLines(t, stdout)) != len(alerts) {
		t.Errorf("stdout has %d alerts, --out had %d", len(jsonLines(t, stdout)), len(alerts))
	}
	for _, want := range []string{"replay summary", "records read", "tier", "platinum", "segment", "sleeping %", "3 records were rejected; add --rejects FILE"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("text summary lacks %q:\n%s", want, stderr)
		}
	}
}

func TestReplayStdinAndEnvironment(t *testing.T) {
	in := readFile(t, sample)
	env := map[string]string{"CHURNFLOW_SUMMARY": "json", "CHURNFLOW_UNTIL": "2026-07-01T00:00:00Z", "CHURNFLOW_INPUT": "-"}
	code, stdout, stderr := run(t, in, env, "replay")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.HasPrefix(strings.TrimSpace(stderr), "{") || !strings.Contains(stderr, `"until": "2026-07-01T00:00:00Z"`) {
		t.Errorf("CHURNFLOW_SUMMARY/CHURNFLOW_UNTIL not applied:\n%s", stderr)
	}
	if len(jsonLines(t, stdout)) == 0 {
		t.Error("no alerts from standard input")
	}
	// A flag wins over the environment.
	code, _, stderr = run(t, in, env, "replay", "--summary", "none")
	if code != 0 || stderr != "" {
		t.Errorf("--summary none did not win over CHURNFLOW_SUMMARY=json: exit %d, stderr %q", code, stderr)
	}
}

func TestReplayCSVSample(t *testing.T) {
	code, stdout, stderr := run(t, "", nil, "replay", "--input", "testdata/sample.csv", "--csv-map", "testdata/sample-csv-map.yaml",
		"--rejects", filepath.Join(t.TempDir(), "r.jsonl"), "--summary", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, `"format": "csv"`) || !strings.Contains(stderr, `"rejected_total": 2`) {
		t.Errorf("summary:\n%s", stderr)
	}
	if len(jsonLines(t, stdout)) == 0 {
		t.Error("no alerts from the CSV sample")
	}
}

func TestReplayCommandLineErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.jsonl")
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"bad until", nil, []string{"replay", "--input", sample, "--until", "2026-13-01"}, 2,
			`--until: "2026-13-01" is not an RFC 3339 time (example: 2026-06-01T00:00:00Z)`},
		{"no input", nil, []string{"replay"}, 2, `--input: required`},
		{"missing input file", nil, []string{"replay", "--input", missing}, 2, `--input: file "` + missing + `" does not exist`},
		{"bad format", nil, []string{"replay", "--input", sample, "--format", "xml"}, 2, `--format: "xml" is not one of auto, jsonl, csv`},
		{"bad batch", nil, []string{"replay", "--input", sample, "--batch", "0"}, 2, `--batch: "0" is not a positive whole number`},
		{"bad size", nil, []string{"replay", "--input", sample, "--sort-memory", "lots"}, 2, `--sort-memory: "lots" is not a size (examples: 256MiB`},
		{"unknown flag", nil, []string{"replay", "--inptu", sample}, 2, `unknown flag: --inptu`},
		{"bad environment", map[string]string{"CHURNFLOW_BATCH": "many"}, []string{"replay", "--input", sample}, 2, `CHURNFLOW_BATCH: "many" is not a positive whole number`},
		{"missing config", nil, []string{"replay", "--input", sample, "--config", missing}, 2, `--config: file "` + missing + `" does not exist`},
		{"bad csv map", nil, []string{"replay", "--input", "testdata/sample.csv", "--csv-map", sample}, 1, `--csv-map testdata/sample.jsonl: parse csv mapping`},
		{"missing out dir", nil, []string{"replay", "--input", sample, "--out", filepath.Join(missing, "a.jsonl")}, 2, `--out: directory`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(t, "", tc.env, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d (want %d), stderr:\n%s\nwant it to contain: %s", code, tc.code, stderr, tc.want)
			}
			if stdout != "" {
				t.Errorf("stdout: %q", stdout)
			}
			if tc.code == 2 && !strings.Contains(stderr, "--help") {
				t.Errorf("usage error without a pointer to --help:\n%s", stderr)
			}
		})
	}
}

func TestReplayFailedRunLeavesNoOutputFile(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "alerts.jsonl")
	// Not gzip after all: the header is broken, which is fatal.
	bad := filepath.Join(dir, "bad.gz")
	os.WriteFile(bad, []byte{0x1f, 0x8b, 0, 0}, 0o644)
	code, _, stderr := run(t, "", nil, "replay", "--input", bad, "--out", out)
	if code != 1 || !strings.Contains(stderr, "gzip") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("files left behind: %v", ents)
	}
}

func TestRootHelp(t *testing.T) {
	code, stdout, _ := run(t, "", nil, "--help")
	if code != 0 || !strings.Contains(stdout, "replay") || !strings.Contains(stdout, "CHURNFLOW_") {
		t.Fatalf("exit %d:\n%s", code, stdout)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"256MiB": 256 << 20, "1GiB": 1 << 30, "500MB": 500e6, "64k": 64 << 10, "1048576": 1 << 20, "1.5g": 3 << 29} {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "0", "MiB", "lots", "1e30GiB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

// summaryPopulations is the part of a JSON summary that comes from the
// store.
type summaryPopulations struct {
	AlertsTotal int64 `json:"alerts_total"`
	Members     int64 `json:"members"`
	Active      int64 `json:"active"`
	Sleeping    int64 `json:"sleeping"`
	ByTier      []any `json:"by_tier"`
	BySegment   []any `json:"by_segment"`
}

// parseSummary reads the JSON summary at the end of stderr (a resumed
// replay prints a line before it).
func parseSummary(t *testing.T, stderr string) summaryPopulations {
	t.Helper()
	i := strings.Index(stderr, "{")
	if i < 0 {
		t.Fatalf("no JSON summary in:\n%s", stderr)
	}
	var p summaryPopulations
	if err := json.Unmarshal([]byte(stderr[i:]), &p); err != nil {
		t.Fatalf("summary is not JSON: %v\n%s", err, stderr)
	}
	return p
}

func TestReplayStateResumes(t *testing.T) {
	dir := t.TempDir()
	stateDir, outPath := filepath.Join(dir, "state"), filepath.Join(dir, "alerts.jsonl")
	args := []string{"replay", "--input", sample, "--until", "2026-07-01T00:00:00Z", "--summary", "json"}

	code, want, stderr := run(t, "", nil, args...)
	if code != 0 {
		t.Fatalf("in memory: exit %d: %s", code, stderr)
	}
	mem := parseSummary(t, stderr)

	stateArgs := append(slices.Clone(args), "--state", stateDir, "--out", outPath, "--memory", "32MiB", "--batch", "7")
	code, stdout, stderr := run(t, "", nil, stateArgs...)
	if code != 0 || stdout != "" {
		t.Fatalf("with --state: exit %d, stdout %q: %s", code, stdout, stderr)
	}
	first := readFile(t, outPath)
	if got, w := sortedText(first), sortedText(want); got != w {
		t.Errorf("alerts with --state differ from those in memory:\n%s\nwant\n%s", got, w)
	}
	if got := parseSummary(t, stderr); !reflect.DeepEqual(got, mem) {
		t.Errorf("summary with --state: %+v, in memory %+v", got, mem)
	}
	if strings.Contains(stderr, "resuming") {
		t.Errorf("a new --state directory claims to resume:\n%s", stderr)
	}

	// Again: it resumes at the end, keeps --out as it was (append mode),
	// and takes the populations from the store.
	code, _, stderr = run(t, "", nil, stateArgs...)
	if code != 0 {
		t.Fatalf("second run: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "--state "+stateDir+" holds a replay's progress: resuming at event 88") {
		t.Errorf("second run does not say it resumes:\n%s", stderr)
	}
	if got := readFile(t, outPath); got != first {
		t.Errorf("second run changed --out:\n%s", got)
	}
	got := parseSummary(t, stderr)
	if got.AlertsTotal != 0 || got.Members != mem.Members || got.Active != mem.Active || got.Sleeping != mem.Sleeping ||
		!reflect.DeepEqual(got.ByTier, mem.ByTier) || !reflect.DeepEqual(got.BySegment, mem.BySegment) {
		t.Errorf("resumed summary: %+v, want no alerts and the populations %+v", got, mem)
	}

	// Another input is refused, before anything is written.
	other := filepath.Join(dir, "other.jsonl")
	text := readFile(t, sample)
	if err := os.WriteFile(other, []byte(text+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	otherArgs := append(slices.Clone(stateArgs), "--input", other)
	code, _, stderr = run(t, "", nil, otherArgs...)
	wantMsg := fmt.Sprintf("--state: %s holds a replay of a different input (%d bytes, this one is %d); use a new --state directory", stateDir, len(text), len(text)+1)
	if code != 2 || !strings.Contains(stderr, wantMsg) {
		t.Errorf("other input: exit %d:\n%s\nwant: %s", code, stderr, wantMsg)
	}
	// From standard input, the size is known only once it is read.
	stdinArgs := append(slices.Clone(stateArgs), "--input", "-")
	code, _, stderr = run(t, text+"\n", nil, stdinArgs...)
	if code != 2 || !strings.Contains(stderr, wantMsg[len("--state: "+stateDir):]) {
		t.Errorf("other input on stdin: exit %d:\n%s", code, stderr)
	}
	// Other settings are refused too.
	code, _, stderr = run(t, "", nil, append(slices.Clone(stateArgs), "--until", "2026-08-01T00:00:00Z")...)
	if code != 2 || !strings.Contains(stderr, "holds a replay made with other settings") {
		t.Errorf("other --until: exit %d:\n%s", code, stderr)
	}
	if got := readFile(t, outPath); got != first {
		t.Errorf("a refused run changed --out:\n%s", got)
	}
}

func sortedText(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func TestReplayStateErrors(t *testing.T) {
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	st, err := state.Open(state.DefaultOptions(stateDir))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	code, _, stderr := run(t, "", nil, "replay", "--input", sample, "--state", stateDir)
	if want := "--state: " + stateDir + " is in use by another churnflow process; stop it or use another --state directory"; code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("locked: exit %d:\n%s\nwant: %s", code, stderr, want)
	}
	code, _, stderr = run(t, "", nil, "replay", "--input", sample, "--memory", "64MiB")
	if code != 2 || !strings.Contains(stderr, "--memory: only used with --state") {
		t.Errorf("--memory without --state: exit %d:\n%s", code, stderr)
	}
	code, _, stderr = run(t, "", nil, "replay", "--input", sample, "--state", filepath.Join(dir, "s2"), "--memory", "1MiB")
	if code != 1 || !strings.Contains(stderr, "MemoryBudget") {
		t.Errorf("--memory too small: exit %d:\n%s", code, stderr)
	}
}

// TestReplayReadsRulesFromARunConfig: one configuration file serves every
// command; replay and inspect take its rules section.
func TestReplayReadsRulesFromARunConfig(t *testing.T) {
	dir := t.TempDir()
	whole := filepath.Join(dir, "churnflow.yaml")
	if err := os.WriteFile(whole, []byte("kafka:\n  brokers: [127.0.0.1:9092]\nrules:\n  nudges:\n    disabled: [cross_sell_nudge]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := run(t, "", nil, "replay", "--input", sample, "--config", whole, "--summary", "none")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if strings.Contains(stdout, `"cross_sell_nudge"`) {
		t.Error("the rules section of a run configuration was not applied")
	}
	_, defaults, _ := run(t, "", nil, "replay", "--input", sample, "--summary", "none")
	if !strings.Contains(defaults, `"cross_sell_nudge"`) {
		t.Fatal("the sample gives no cross-sell nudge with the defaults: the test proves nothing")
	}
	noRules := filepath.Join(dir, "norules.yaml")
	os.WriteFile(noRules, []byte("kafka:\n  brokers: [127.0.0.1:9092]\n"), 0o644)
	if code, _, stderr := run(t, "", nil, "replay", "--input", sample, "--config", noRules, "--summary", "none"); code != exitOK {
		t.Fatalf("run configuration without rules: exit %d: %s", code, stderr)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("rules:\n  dormancy:\n    after: 0s\n"), 0o644)
	if code, _, stderr := run(t, "", nil, "replay", "--input", sample, "--config", bad); code == exitOK || !strings.Contains(stderr, "dormancy.after") {
		t.Fatalf("bad rules in a run configuration: exit %d: %s", code, stderr)
	}
}
