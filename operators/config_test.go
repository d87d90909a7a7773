package operators

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestDocumentedDefaults keeps docs/rules.md honest: its YAML block of
// defaults must load to exactly DefaultConfig.
func TestDocumentedDefaults(t *testing.T) {
	doc, err := os.ReadFile("../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(doc), "```yaml\n")
	if !ok {
		t.Fatal("docs/rules.md has no yaml block")
	}
	block, _, _ = strings.Cut(block, "```")
	got, err := LoadConfig(strings.NewReader(block))
	if err != nil {
		t.Fatalf("documented defaults do not load: %v", err)
	}
	want := DefaultConfig()
	// The file spells empty collections; the defaults leave them nil.
	if len(got.Dormancy.PerTier) == 0 {
		got.Dormancy.PerTier = nil
	}
	if len(got.Nudges.Disabled) == 0 {
		got.Nudges.Disabled = nil
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("docs/rules.md defaults differ from DefaultConfig:\n doc:  %+v\n code: %+v", got, want)
	}
}

func TestLoadConfigErrorsNameTheKey(t *testing.T) {
	cases := []struct {
		yaml, want string
	}{
		{"dormancy:\n  after: 0s\n", "config dormancy.after: must be at least 1h"},
		{"dormancy:\n  after: ninety\n", `"ninety" is not a duration`},
		{"dormancy:\n  per_tier: {diamond: 30d}\n", "config dormancy.per_tier.diamond: no such tier"},
		{"retention:\n  min_tier: diamond\n", "config retention.min_tier: no such tier"},
		{"retention:\n  segments: [vip]\n", "config retention.segments[0]: unknown segment"},
		{"nudges:\n  upgrade_min_progress: 1.2\n", "config nudges.upgrade_min_progress"},
		{"nudges:\n  disabled: [dormancy]\n", `config nudges.disabled[0]: "dormancy" is not a nudge kind`},
		{"qualification_period:\n  start_month: 13\n", "config qualification_period.start_month: must be 1 to 12"},
		{"windows:\n  recent_days: 0\n", "config windows"},
		{"value:\n  measure: smiles\n", "config value.measure"},
		{"value:\n  weights: {L: 0, R: 0, F: 0, M: 0, C: 0}\n", "config value.weights: at least one weight"},
		{"tiers:\n  - name: base\n  - name: base\n    qualify_km: 10\n", `config tiers[1].name: tier "base" appears twice`},
		{"tiers:\n  - name: base\n  - name: silver\n", "config tiers[1]: tier \"silver\" above the first needs"},
		{"model:\n  r: 1\n  alpha: 1\n  a: 1\n  b: 0\n  unit: day\n", "config model: r, alpha, a and b must all be positive"},
		{"actions:\n  party: cake\n", "config actions.party: no such alert type"},
		{"dormancy:\n  aftr: 30d\n", "field aftr not found"},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			_, err := LoadConfig(strings.NewReader(c.yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("LoadConfig(%q) = %v, want an error containing %q", c.yaml, err, c.want)
			}
		})
	}
}

func TestLoadConfigOverridesOnlyWhatIsGiven(t *testing.T) {
	cfg, err := LoadConfig(strings.NewReader("dormancy:\n  after: 60d\n  per_tier: {platinum: 120d}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := time.Duration(cfg.Dormancy.After); got != 60*24*time.Hour {
		t.Errorf("after = %v", got)
	}
	if got := time.Duration(cfg.Dormancy.PerTier["platinum"]); got != 120*24*time.Hour {
		t.Errorf("per_tier platinum = %v", got)
	}
	if cfg.Retention.MinTier != "gold" || len(cfg.Tiers) != 4 {
		t.Errorf("defaults lost: %+v", cfg.Retention)
	}
	empty, err := LoadConfig(strings.NewReader(""))
	if err != nil || !reflect.DeepEqual(empty, DefaultConfig()) {
		t.Errorf("empty file: %v", err)
	}
}

func TestDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"90d": 90 * 24 * time.Hour, "1.5d": 36 * time.Hour, "6h": 6 * time.Hour, "30m": 30 * time.Minute} {
		d, err := ParseDuration(in)
		if err != nil || time.Duration(d) != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, time.Duration(d), err, want)
		}
	}
	for d, want := range map[time.Duration]string{90 * 24 * time.Hour: "90d", 6 * time.Hour: "6h", 30 * time.Minute: "30m", 90 * time.Second: "1m30s"} {
		if got := Duration(d).String(); got != want {
			t.Errorf("Duration(%v).String() = %q, want %q", d, got, want)
		}
	}
	if _, err := ParseDuration("xd"); err == nil {
		t.Error("ParseDuration(xd) accepted")
	}
}
