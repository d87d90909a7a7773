package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestGenIsReproducibleAndReplays(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl")
	for _, p := range []string{a, b} {
		code, _, stderr := run(t, "", nil, "gen", "--members", "200", "--days", "120", "--seed", "9", "--bad-rate", "0.02", "--out", p)
		if code != exitOK || !strings.Contains(stderr, "gen: ") {
			t.Fatalf("gen exit %d: %s", code, stderr)
		}
	}
	if readFile(t, a) != readFile(t, b) {
		t.Fatal("the same flags gave different files")
	}
	lines := strings.Count(readFile(t, a), "\n")
	if lines < 1000 {
		t.Fatalf("only %d records for 200 members over 120 days", lines)
	}
	// The file replays: every record is either applied or rejected as bad.
	code, stdout, stderr := run(t, "", nil, "replay", "--input", a, "--summary", "json")
	if code != exitOK {
		t.Fatalf("replay exit %d: %s", code, stderr)
	}
	if len(jsonLines(t, stdout)) == 0 {
		t.Fatal("replay of generated events gave no alerts")
	}
	if !strings.Contains(stderr, `"rejected"`) {
		t.Fatalf("the 2%% bad records were not rejected: %s", stderr)
	}
}

func TestGenFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"gen"}, "--out: required"},
		{[]string{"gen", "--out", "-", "--bad-rate", "0.9"}, "--bad-rate: 0.9 is out of range"},
		{[]string{"gen", "--out", "-", "--start", "2025-13-01"}, `--start: "2025-13-01" is not a date`},
		{[]string{"gen", "--out", "-", "--members", "0"}, "--members"},
		{[]string{"gen", "--out", "-", "--seed", "-1"}, "--seed: -1 is negative"},
	} {
		code, _, stderr := run(t, "", nil, c.args...)
		if code != exitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want usage error containing %q", c.args, code, stderr, c.want)
		}
	}
}
