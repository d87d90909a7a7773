package main

import (
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDemo runs the whole demo in-process on a small population: broker,
// pipeline, generator and subscriber. It checks that alerts of the main
// kinds were read back from the output topics and printed, segment changes
// produced, dead letters counted, and that everything shut down.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo for 8 s")
	}
	before := runtime.NumGoroutine()
	started := time.Now()
	code, stdout, stderr := run(t, "", nil, "demo", "--members", "300", "--duration", "8s", "--speed", "864000",
		"--summary-every", "3s", "--alerts-per-second", "20")
	if code != exitOK {
		t.Fatalf("demo exit %d\nstderr: %s\nstdout: %s", code, stderr, stdout)
	}
	if took := time.Since(started); took > 20*time.Second {
		t.Errorf("the demo took %v for --duration 8s", took)
	}
	final := stdout[strings.LastIndex(stdout, "── final summary"):]
	if final == "" {
		t.Fatalf("no final summary:\n%s", stdout)
	}
	count := func(label string) int {
		m := regexp.MustCompile(`\b` + label + ` ([0-9,]+)`).FindStringSubmatch(final)
		if m == nil {
			t.Fatalf("final summary has no %q count:\n%s", label, final)
		}
		n, _ := strconv.Atoi(strings.ReplaceAll(m[1], ",", ""))
		return n
	}
	for _, typ := range []string{"dormancy", "retention", "keep_tier_nudge", "cross_sell_nudge", "segment_change"} {
		if count(typ) == 0 {
			t.Errorf("no %s alerts in the final summary:\n%s", typ, final)
		}
	}
	// Printed alert lines, read from the output topics.
	for _, label := range []string{"dormancy", "retention", "cross-sell"} {
		if !regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\d ` + label + ` +M\d+ `).MatchString(stdout) {
			t.Errorf("no %s alert line printed:\n%s", label, stdout)
		}
	}
	if !strings.Contains(stdout, "→ win-back call within 7 days") {
		t.Errorf("no suggested action printed")
	}
	m := regexp.MustCompile(`dead letters +([0-9,]+): `).FindStringSubmatch(final)
	if m == nil || m[1] == "0" {
		t.Errorf("no dead letters counted:\n%s", final)
	}
	if !regexp.MustCompile(`members +[0-9,]+: [0-9,]+ active, [0-9,]+ sleeping`).MatchString(final) ||
		!strings.Contains(final, "  tier ") {
		t.Errorf("no members by tier in the final summary:\n%s", final)
	}
	if strings.Contains(stdout, "\x1b[") {
		t.Error("colour codes written to a buffer that is not a terminal")
	}
	// Everything the demo started has stopped (a few goroutines of the
	// runtime and the test framework may come and go).
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+2 {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("%d goroutines before the demo, %d after:\n%s", before, n, buf)
	}
}

func TestDemoFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"demo", "--duration", "0s"}, "--duration"},
		{[]string{"demo", "--speed", "0"}, "--speed"},
		{[]string{"demo", "--members", "0"}, "--members"},
		{[]string{"demo", "--bad-rate", "0.9"}, "--bad-rate"},
		{[]string{"demo", "--members", "1000000"}, "too many records"},
	} {
		code, _, stderr := run(t, "", nil, c.args...)
		if code != exitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", c.args, code, stderr, exitUsage, c.want)
		}
	}
}

func TestDemoHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo")
	}
	code, stdout, stderr := run(t, "", nil, "demo", "--members", "50", "--duration", "1s", "--speed", "86400",
		"--http", "127.0.0.1:0", "--api-token", "tok")
	if code != exitOK || !strings.Contains(stdout, "http: http://127.0.0.1:") || !strings.Contains(stdout, "Bearer tok") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, head(stdout, 600), stderr)
	}
}

func head(s string, n int) string { return s[:min(len(s), n)] }
