package operators

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The -rewrite flag regenerates testdata/golden/expected.jsonl. Another
// test file of this package may already define -rewrite (the state codec's
// golden test does); the flag is shared, so it is looked up at run time and
// defined here only when nobody else did.
func init() {
	if flag.Lookup("rewrite") == nil {
		flag.Bool("rewrite", false, "rewrite golden files from the current output")
	}
}

func rewriteGolden() bool {
	f := flag.Lookup("rewrite")
	if f == nil {
		return false
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return false
	}
	b, _ := g.Get().(bool)
	return b
}

const goldenUntil = "2026-12-31T00:00:00Z"

// handWorked is the expectation worked out by hand in
// testdata/golden/README.md, before the engine was run. -rewrite never
// changes it.
var handWorked = []struct {
	id, typ, at, severity string
	reasons               []string
	target, period        string
	valueAtRisk           float64 // retention only
	tier, region, manager string
	r                     *int // nil: never booked
	f                     int
}{
	{"cross_sell_nudge:C1:c1-f2", "cross_sell_nudge", "2026-06-10T16:00:00Z", "low", nil, "c1-f2", "", 0, "base", "south", "A-5", ip(0), 3},
	{"dormancy:C1:2026-09-08", "dormancy", "2026-09-08T10:00:00Z", "medium", nil, "", "", 0, "base", "south", "A-5", ip(90), 3},
	{"retention:F1:2025-12-26", "retention", "2025-12-26T00:00:00Z", "medium", []string{"frequency_decline"}, "", "", 4800, "base", "east", "A-3", ip(90), 16},
	{"retention:F1:2026-04-10", "retention", "2026-04-10T00:00:00Z", "medium", []string{"frequency_decline"}, "", "", 5400, "base", "east", "A-3", ip(90), 14},
	{"dormancy:F1:2026-04-10", "dormancy", "2026-04-10T09:00:00Z", "high", nil, "", "", 0, "base", "east", "A-3", ip(90), 14},
	{"retention:G1:2026-04-02", "retention", "2026-04-02T00:00:00Z", "medium", []string{"overdue"}, "", "", 2400, "gold", "north", "A-17", ip(31), 3},
	{"dormancy:G1:2026-06-03", "dormancy", "2026-06-03T08:00:00Z", "high", nil, "", "", 0, "gold", "north", "A-17", ip(93), 3},
	{"keep_tier_nudge:G1:gold:2026", "keep_tier_nudge", "2026-11-02T00:00:00Z", "medium", nil, "gold", "2026", 0, "gold", "north", "A-17", ip(245), 3},
	{"upgrade_nudge:U1:gold:2026", "upgrade_nudge", "2026-11-02T00:00:00Z", "low", nil, "gold", "2026", 0, "silver", "west", "A-9", ip(13), 4},
	{"first_redemption_nudge:X1:first", "first_redemption_nudge", "2026-08-03T11:00:00Z", "low", nil, "10000", "", 0, "gold", "north", "A-17", ip(0), 1},
	{"dormancy:X1:2026-12-30", "dormancy", "2026-12-30T09:00:00Z", "low", nil, "", "", 0, "", "", "", nil, 0},
}

func ip(n int) *int { return &n }

// goldenRun replays events.jsonl and returns the alert lines (segment
// changes left out, grouped by member in emission order) and the outcomes.
func goldenRun(t *testing.T) ([][]byte, map[Outcome]int) {
	t.Helper()
	cfg := DefaultConfig()
	h := newHarness(t, cfg)
	data, err := os.ReadFile(filepath.Join("testdata", "golden", "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	dec := NewDecoder(cfg.TierNames())
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	for sc.Scan() {
		line++
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		e := new(Event)
		if err := dec.Decode(sc.Bytes(), e); err != nil {
			t.Fatalf("events.jsonl:%d: %v", line, err)
		}
		h.apply(e)
	}
	h.advance(ts(goldenUntil))
	alerts := withoutSegments(h.alerts)
	slices.SortStableFunc(alerts, func(a, b Alert) int { return strings.Compare(string(a.MemberID), string(b.MemberID)) })
	var out [][]byte
	for i := range alerts {
		out = append(out, alerts[i].AppendJSON(nil, alerts[i].TriggeredAt))
	}
	counts := map[Outcome]int{}
	for _, o := range h.outcomes {
		counts[o]++
	}
	return out, counts
}

func TestGolden(t *testing.T) {
	got, outcomes := goldenRun(t)
	path := filepath.Join("testdata", "golden", "expected.jsonl")
	if rewriteGolden() {
		var buf bytes.Buffer
		for _, l := range got {
			buf.Write(l)
			buf.WriteByte('\n')
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %s (%d alerts)", path, len(got))
	}

	t.Run("hand-worked", func(t *testing.T) {
		var ws []AlertJSON
		for _, l := range got {
			var w AlertJSON
			if err := json.Unmarshal(l, &w); err != nil {
				t.Fatal(err)
			}
			ws = append(ws, w)
		}
		var gotIDs, wantIDs []string
		for _, w := range ws {
			gotIDs = append(gotIDs, w.AlertID+"@"+w.TriggeredAt)
		}
		for _, h := range handWorked {
			wantIDs = append(wantIDs, h.id+"@"+h.at)
		}
		if !slices.Equal(gotIDs, wantIDs) {
			t.Errorf("alerts:\n got  %q\n want %q", gotIDs, wantIDs)
		}
		for _, h := range handWorked {
			i := slices.IndexFunc(ws, func(w AlertJSON) bool { return w.AlertID == h.id })
			if i < 0 {
				continue
			}
			w := ws[i]
			check := func(field string, got, want any) {
				if got != want {
					t.Errorf("%s: %s = %v, want %v", h.id, field, got, want)
				}
			}
			check("type", w.Type, h.typ)
			check("triggered_at", w.TriggeredAt, h.at)
			check("severity", w.Severity, h.severity)
			check("reasons", strings.Join(w.Reasons, ","), strings.Join(h.reasons, ","))
			check("target", w.Target, h.target)
			check("period", w.Period, h.period)
			check("tier", w.Member.Tier, h.tier)
			check("region", w.Member.Region, h.region)
			check("account_manager", w.Member.AccountManager, h.manager)
			check("lrfmc.F", w.Member.LRFMC.F, h.f)
			if (w.Member.LRFMC.R == nil) != (h.r == nil) || (h.r != nil && *w.Member.LRFMC.R != *h.r) {
				t.Errorf("%s: lrfmc.R = %v, want %v", h.id, deref(w.Member.LRFMC.R), deref(h.r))
			}
			if h.typ == "retention" {
				if w.ValueAtRisk == nil || *w.ValueAtRisk != h.valueAtRisk {
					t.Errorf("%s: value_at_risk = %v, want %v", h.id, deref(w.ValueAtRisk), h.valueAtRisk)
				}
			}
			check("emitted_at", w.EmittedAt, h.at)
			check("member_id", w.MemberID, strings.Split(h.id, ":")[1])
		}
		// X1: one event inside the tombstone is ignored, one erases.
		if outcomes[OutcomeErased] != 1 || outcomes[OutcomeIgnoredErased] != 1 || outcomes[OutcomeUnmatchedCancellation] != 0 {
			t.Errorf("outcomes %v", outcomes)
		}
	})

	t.Run("expected.jsonl", func(t *testing.T) {
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test ./operators -run Golden -rewrite to create it)", err)
		}
		wantLines := bytes.Split(bytes.TrimRight(want, "\n"), []byte("\n"))
		if len(bytes.TrimSpace(want)) == 0 {
			wantLines = nil
		}
		for i := 0; i < max(len(got), len(wantLines)); i++ {
			var g, w []byte
			if i < len(got) {
				g = got[i]
			}
			if i < len(wantLines) {
				w = wantLines[i]
			}
			if !jsonEqual(g, w) {
				t.Errorf("line %d:\n got  %s\n want %s", i+1, g, w)
			}
		}
	})
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// jsonEqual compares two JSON documents by value (key order and spacing
// do not matter).
func jsonEqual(a, b []byte) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}
