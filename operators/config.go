package operators

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/churnflow/churnflow/model"
)

// Duration is a time.Duration that reads and writes YAML as "90d", "6h" or
// any time.ParseDuration string.
type Duration time.Duration

// Seconds returns the duration in whole seconds.
func (d Duration) Seconds() int64 { return int64(time.Duration(d) / time.Second) }

// String formats whole days as "Nd" and everything else as time.Duration does.
func (d Duration) String() string {
	td := time.Duration(d)
	switch {
	case td != 0 && td%(24*time.Hour) == 0:
		return strconv.FormatInt(int64(td/(24*time.Hour)), 10) + "d"
	case td != 0 && td%time.Hour == 0:
		return strconv.FormatInt(int64(td/time.Hour), 10) + "h"
	case td != 0 && td%time.Minute == 0:
		return strconv.FormatInt(int64(td/time.Minute), 10) + "m"
	}
	return td.String()
}

// ParseDuration accepts "90d", "1.5d" and time.ParseDuration syntax.
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if strings.HasSuffix(s, "d") {
		n, err := strconv.ParseFloat(strings.TrimSuffix(s, "d"), 64)
		if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
			return 0, fmt.Errorf("%q is not a duration (examples: 90d, 36h, 30m)", s)
		}
		return Duration(n * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (examples: 90d, 36h, 30m)", s)
	}
	return Duration(d), nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Config holds every rule's settings. The zero value is not useful: start
// from DefaultConfig, which documents each default, or LoadConfig.
type Config struct {
	// Tiers is the tier ladder from lowest to highest. A member qualifies for
	// a tier in a qualification period with QualifyKm flown distance OR
	// QualifySegments flight segments. The first tier needs nothing.
	Tiers []TierConfig `yaml:"tiers"`
	// Period is the tier qualification period.
	Period PeriodConfig `yaml:"qualification_period"`
	// Windows are the rolling windows the LRFMC figures use.
	Windows WindowsConfig `yaml:"windows"`
	// Value weighs the LRFMC figures into one value score in [0, 1].
	Value ValueConfig `yaml:"value"`
	// Segments sets the thresholds of the five LRFMC value segments.
	Segments SegmentsConfig `yaml:"segments"`
	// Stages sets the thresholds of the four life-cycle stages.
	Stages StagesConfig `yaml:"stages"`
	// Dormancy configures the dormancy and reactivated alerts.
	Dormancy DormancyConfig `yaml:"dormancy"`
	// Retention configures the retention alert.
	Retention RetentionConfig `yaml:"retention"`
	// Nudges configures the four nudges.
	Nudges NudgesConfig `yaml:"nudges"`
	// Model holds BG/NBD parameters; absent means no P(alive) rule unless
	// a fitted model file (ModelFile) is loaded. Give one or the other.
	Model *BGNBDParams `yaml:"model,omitempty"`
	// ModelFile is the path of a model file written by `churnflow fit`
	// (docs/model.md). The commands read it into Fitted before building the
	// Engine; empty: none. With a fitted model every member carries
	// P(alive), the expected bookings of the next 90 days and the CLV, the
	// retention rule's p_alive reason and value at risk use them, and the
	// segment is the nearest fitted centre instead of the threshold rules.
	ModelFile string `yaml:"model_file" json:",omitempty"`
	// Fitted is the model file ModelFile names, loaded (model.Load). It is
	// not read from YAML: the caller loads it. Nil: no fitted model.
	Fitted *model.File `yaml:"-" json:",omitempty"`
	// Erasure configures how long a deleted member's tombstone is kept so
	// that late events for it are recognised and ignored.
	ErasureTombstone Duration `yaml:"erasure_tombstone"`
	// Actions is the suggested action text per alert type.
	Actions map[string]string `yaml:"actions"`
}

// TierConfig is one rung of the tier ladder.
type TierConfig struct {
	Name            string  `yaml:"name"`
	QualifyKm       float64 `yaml:"qualify_km"`
	QualifySegments int64   `yaml:"qualify_segments"`
}

// PeriodConfig is the qualification period: twelve months starting on the
// first day of StartMonth (1 = calendar year).
type PeriodConfig struct {
	StartMonth int `yaml:"start_month"`
}

// WindowsConfig sizes the rolling windows, in days.
type WindowsConfig struct {
	// RecentDays is the "recent" window of the frequency-decline rule.
	RecentDays int `yaml:"recent_days"`
	// BaselineDays is the window before the recent one that gives the
	// member's own baseline rate.
	BaselineDays int `yaml:"baseline_days"`
	// FrequencyDays is the window of the F, M and C figures.
	FrequencyDays int `yaml:"frequency_days"`
}

// ValueConfig weighs the standardised LRFMC figures. Each figure is scaled
// to [0, 1] by dividing by its Scale and capping at 1 (R inverted: recent is
// valuable); the score is the weighted mean.
type ValueConfig struct {
	Weights LRFMCWeights `yaml:"weights"`
	Scales  LRFMCWeights `yaml:"scales"`
	// Measure chooses M: "distance" (km flown) or "revenue".
	Measure string `yaml:"measure"`
}

// LRFMCWeights is one number per LRFMC letter.
type LRFMCWeights struct {
	L float64 `yaml:"L"`
	R float64 `yaml:"R"`
	F float64 `yaml:"F"`
	M float64 `yaml:"M"`
	C float64 `yaml:"C"`
}

// SegmentsConfig holds the bars of the LRFMC segment rules (DESIGN.md).
type SegmentsConfig struct {
	HighC            float64 `yaml:"high_c"`
	LowRDays         int     `yaml:"low_r_days"`
	HighF            int     `yaml:"high_f"`
	HighM            float64 `yaml:"high_m"`
	LowValueMaxScore float64 `yaml:"low_value_max_score"`
}

// StagesConfig holds the bars of the life-cycle stage rules.
type StagesConfig struct {
	IdentificationDays int     `yaml:"identification_days"`
	DevelopmentDays    int     `yaml:"development_days"`
	GrowthRatio        float64 `yaml:"growth_ratio"`
}

// DormancyConfig configures dormancy.
type DormancyConfig struct {
	After   Duration            `yaml:"after"`
	PerTier map[string]Duration `yaml:"per_tier"`
	// MinValueScore limits dormancy alerts to members at least this
	// valuable; every member still counts as active or sleeping.
	MinValueScore float64 `yaml:"min_value_score"`
}

// RetentionConfig configures the retention alert.
type RetentionConfig struct {
	// A member is valuable if any of the three bars is met.
	MinTier       string   `yaml:"min_tier"`
	Segments      []string `yaml:"segments"`
	MinValueScore float64  `yaml:"min_value_score"`

	// Frequency decline: bookings in the recent window fewer than Ratio ×
	// the count the member's baseline rate predicts, with at least
	// MinBaselineBookings bookings in the baseline window.
	DeclineRatio        float64 `yaml:"decline_ratio"`
	MinBaselineBookings int     `yaml:"min_baseline_bookings"`

	// Overdue: recency greater than OverdueFactor × the member's typical
	// gap between bookings (median of the gaps in the history held), with
	// at least OverdueMinBookings bookings and OverdueMinDays days.
	OverdueFactor      float64 `yaml:"overdue_factor"`
	OverdueMinBookings int     `yaml:"overdue_min_bookings"`
	OverdueMinDays     int     `yaml:"overdue_min_days"`

	// PAliveThreshold applies when a model is configured.
	PAliveThreshold float64 `yaml:"p_alive_threshold"`

	Cooldown Duration `yaml:"cooldown"`
}

// NudgesConfig configures the nudges.
type NudgesConfig struct {
	// UpgradeMinProgress is the share of the next tier's miles or segments
	// from which an upgrade nudge is sent.
	UpgradeMinProgress float64 `yaml:"upgrade_min_progress"`
	// WindowDays is how many days before the period ends the upgrade and
	// keep-tier nudges may be sent.
	WindowDays int `yaml:"window_days"`
	// FirstRewardPoints and FirstRedemptionMinProgress: a member who never
	// redeemed and holds at least this share of the first reward's points.
	FirstRewardPoints          int64   `yaml:"first_reward_points"`
	FirstRedemptionMinProgress float64 `yaml:"first_redemption_min_progress"`
	// CrossSellWithin is how long after a flight booking a hotel booking
	// for the same trip may arrive before the cross-sell nudge is sent.
	CrossSellWithin Duration `yaml:"cross_sell_within"`
	// Disabled lists nudge kinds not to send.
	Disabled []string `yaml:"disabled"`
}

// BGNBDParams are the four parameters of a BG/NBD model (Fader, Hardie and
// Lee 2005), with the time unit they were fitted in.
type BGNBDParams struct {
	R     float64 `yaml:"r"`
	Alpha float64 `yaml:"alpha"`
	A     float64 `yaml:"a"`
	B     float64 `yaml:"b"`
	// Unit is "day" or "week".
	Unit string `yaml:"unit"`
}

// DefaultConfig returns the documented defaults (docs/rules.md).
func DefaultConfig() Config {
	return Config{
		Tiers: []TierConfig{
			{Name: "base"},
			{Name: "silver", QualifyKm: 40000, QualifySegments: 25},
			{Name: "gold", QualifyKm: 80000, QualifySegments: 40},
			{Name: "platinum", QualifyKm: 160000, QualifySegments: 90},
		},
		Period:  PeriodConfig{StartMonth: 1},
		Windows: WindowsConfig{RecentDays: 90, BaselineDays: 365, FrequencyDays: 365},
		Value: ValueConfig{
			Weights: LRFMCWeights{L: 0.10, R: 0.25, F: 0.25, M: 0.25, C: 0.15},
			Scales:  LRFMCWeights{L: 3650, R: 365, F: 24, M: 100000, C: 1.5},
			Measure: "distance",
		},
		Segments: SegmentsConfig{HighC: 0.9, LowRDays: 90, HighF: 6, HighM: 20000, LowValueMaxScore: 0.2},
		Stages:   StagesConfig{IdentificationDays: 90, DevelopmentDays: 365, GrowthRatio: 1.25},
		Dormancy: DormancyConfig{After: Duration(90 * 24 * time.Hour)},
		Retention: RetentionConfig{
			MinTier:             "gold",
			Segments:            []string{SegmentImportantRetain.String(), SegmentImportantWinBack.String()},
			MinValueScore:       0.6,
			DeclineRatio:        0.5,
			MinBaselineBookings: 4,
			OverdueFactor:       3,
			OverdueMinBookings:  3,
			OverdueMinDays:      14,
			PAliveThreshold:     0.3,
			Cooldown:            Duration(30 * 24 * time.Hour),
		},
		Nudges: NudgesConfig{
			UpgradeMinProgress:         0.85,
			WindowDays:                 60,
			FirstRewardPoints:          10000,
			FirstRedemptionMinProgress: 0.9,
			CrossSellWithin:            Duration(6 * time.Hour),
		},
		ErasureTombstone: Duration(30 * 24 * time.Hour),
		Actions: map[string]string{
			AlertDormancy.String():             "win-back call within 7 days",
			AlertReactivated.String():          "welcome back offer",
			AlertRetention.String():            "personal call from the account manager",
			AlertUpgradeNudge.String():         "tell the member how close the next tier is",
			AlertKeepTierNudge.String():        "offer a tier-keeping bonus",
			AlertFirstRedemptionNudge.String(): "show the first reward within reach",
			AlertCrossSellNudge.String():       "offer a hotel for the trip",
		},
	}
}

// LoadConfig reads YAML over DefaultConfig: keys absent from the file keep
// their defaults; unknown keys are an error. The result is validated.
func LoadConfig(r io.Reader) (Config, error) {
	cfg := DefaultConfig()
	data, err := io.ReadAll(r)
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	if len(bytes.TrimSpace(data)) > 0 {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return cfg, fmt.Errorf("parse config: %w", err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// Validate reports the first setting that is wrong, naming its key.
func (c *Config) Validate() error {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("config %s: %s", key, fmt.Sprintf(format, args...))
	}
	if len(c.Tiers) == 0 {
		return bad("tiers", "at least one tier is needed")
	}
	if len(c.Tiers) > 32 {
		return bad("tiers", "at most 32 tiers")
	}
	seen := map[string]bool{}
	for i, t := range c.Tiers {
		key := fmt.Sprintf("tiers[%d]", i)
		if t.Name == "" {
			return bad(key+".name", "empty")
		}
		if seen[t.Name] {
			return bad(key+".name", "tier %q appears twice", t.Name)
		}
		seen[t.Name] = true
		if t.QualifyKm < 0 || t.QualifySegments < 0 {
			return bad(key, "qualifying figures must not be negative")
		}
		if i > 0 && t.QualifyKm <= 0 && t.QualifySegments <= 0 {
			return bad(key, "tier %q above the first needs qualify_km or qualify_segments", t.Name)
		}
		if i > 0 && (t.QualifyKm < c.Tiers[i-1].QualifyKm || t.QualifySegments < c.Tiers[i-1].QualifySegments) {
			return bad(key, "tier %q must not need less than the tier below it", t.Name)
		}
	}
	if c.Period.StartMonth < 1 || c.Period.StartMonth > 12 {
		return bad("qualification_period.start_month", "must be 1 to 12, got %d", c.Period.StartMonth)
	}
	w := c.Windows
	if w.RecentDays < 1 || w.BaselineDays < 1 || w.FrequencyDays < 1 {
		return bad("windows", "every window must be at least 1 day")
	}
	if w.RecentDays+w.BaselineDays > MaxHistoryDays || w.FrequencyDays > MaxHistoryDays {
		return bad("windows", "recent_days + baseline_days and frequency_days must not exceed %d", MaxHistoryDays)
	}
	for _, x := range []struct {
		key string
		v   float64
	}{{"L", c.Value.Weights.L}, {"R", c.Value.Weights.R}, {"F", c.Value.Weights.F}, {"M", c.Value.Weights.M}, {"C", c.Value.Weights.C}} {
		if x.v < 0 || math.IsNaN(x.v) {
			return bad("value.weights."+x.key, "must not be negative")
		}
	}
	if c.Value.Weights.L+c.Value.Weights.R+c.Value.Weights.F+c.Value.Weights.M+c.Value.Weights.C <= 0 {
		return bad("value.weights", "at least one weight must be positive")
	}
	for _, x := range []struct {
		key string
		v   float64
	}{{"L", c.Value.Scales.L}, {"R", c.Value.Scales.R}, {"F", c.Value.Scales.F}, {"M", c.Value.Scales.M}, {"C", c.Value.Scales.C}} {
		if !(x.v > 0) {
			return bad("value.scales."+x.key, "must be positive")
		}
	}
	if c.Value.Measure != "distance" && c.Value.Measure != "revenue" {
		return bad("value.measure", "must be distance or revenue, got %q", c.Value.Measure)
	}
	if c.Segments.LowRDays < 0 || c.Segments.HighF < 0 || c.Segments.HighM < 0 || c.Segments.HighC < 0 {
		return bad("segments", "thresholds must not be negative")
	}
	if c.Stages.IdentificationDays < 0 || c.Stages.DevelopmentDays < 0 || c.Stages.GrowthRatio < 1 {
		return bad("stages", "days must not be negative and growth_ratio must be at least 1")
	}
	if c.Dormancy.After < Duration(time.Hour) {
		return bad("dormancy.after", "must be at least 1h, got %s", c.Dormancy.After)
	}
	for name, d := range c.Dormancy.PerTier {
		if !seen[name] {
			return bad("dormancy.per_tier."+name, "no such tier (tiers: %s)", strings.Join(c.TierNames(), ", "))
		}
		if d < Duration(time.Hour) {
			return bad("dormancy.per_tier."+name, "must be at least 1h, got %s", d)
		}
	}
	r := c.Retention
	if r.MinTier != "" && !seen[r.MinTier] {
		return bad("retention.min_tier", "no such tier %q (tiers: %s)", r.MinTier, strings.Join(c.TierNames(), ", "))
	}
	for i, s := range r.Segments {
		if _, ok := ParseSegment(s); !ok {
			return bad(fmt.Sprintf("retention.segments[%d]", i), "unknown segment %q (segments: %s)", s, strings.Join(segmentNames[1:], ", "))
		}
	}
	if r.DeclineRatio < 0 || r.DeclineRatio > 1 {
		return bad("retention.decline_ratio", "must be between 0 and 1")
	}
	if r.OverdueFactor < 1 {
		return bad("retention.overdue_factor", "must be at least 1")
	}
	if r.OverdueMinBookings < 2 {
		return bad("retention.overdue_min_bookings", "must be at least 2 (a gap needs two bookings)")
	}
	if r.PAliveThreshold < 0 || r.PAliveThreshold > 1 {
		return bad("retention.p_alive_threshold", "must be between 0 and 1")
	}
	if r.Cooldown < 0 {
		return bad("retention.cooldown", "must not be negative")
	}
	n := c.Nudges
	if n.UpgradeMinProgress <= 0 || n.UpgradeMinProgress >= 1 {
		return bad("nudges.upgrade_min_progress", "must be between 0 and 1 (exclusive)")
	}
	if n.WindowDays < 0 || n.WindowDays > 366 {
		return bad("nudges.window_days", "must be 0 to 366")
	}
	if n.FirstRewardPoints < 0 || n.FirstRedemptionMinProgress <= 0 || n.FirstRedemptionMinProgress > 1 {
		return bad("nudges.first_reward_points", "points must not be negative and min progress must be in (0, 1]")
	}
	if n.CrossSellWithin <= 0 {
		return bad("nudges.cross_sell_within", "must be positive")
	}
	for i, k := range n.Disabled {
		if t, ok := ParseAlertType(k); !ok || !t.IsNudge() {
			return bad(fmt.Sprintf("nudges.disabled[%d]", i), "%q is not a nudge kind", k)
		}
	}
	if m := c.Model; m != nil {
		if !(m.R > 0 && m.Alpha > 0 && m.A > 0 && m.B > 0) {
			return bad("model", "r, alpha, a and b must all be positive")
		}
		if m.Unit != "day" && m.Unit != "week" {
			return bad("model.unit", "must be day or week, got %q", m.Unit)
		}
	}
	if c.Fitted != nil {
		if c.Model != nil {
			return bad("model", "give either model (BG/NBD parameters) or a fitted model file (model_file, --model), not both")
		}
		if err := c.Fitted.Validate(); err != nil {
			return bad("model_file", "%v", err)
		}
	}
	if c.ErasureTombstone < 0 {
		return bad("erasure_tombstone", "must not be negative")
	}
	for k := range c.Actions {
		if _, ok := ParseAlertType(k); !ok {
			return bad("actions."+k, "no such alert type")
		}
	}
	return nil
}

// TierNames lists the tier names from lowest to highest.
func (c *Config) TierNames() []string { return TierNames(c.Tiers) }

// TierNames lists the names of a tier ladder, in order.
func TierNames(tiers []TierConfig) []string {
	names := make([]string, len(tiers))
	for i, t := range tiers {
		names[i] = t.Name
	}
	return names
}

// TierIndex returns the position of a tier name on the ladder.
func (c *Config) TierIndex(name string) (int, bool) {
	for i, t := range c.Tiers {
		if t.Name == name {
			return i, true
		}
	}
	return 0, false
}
