package gen

import (
	"fmt"
	"math"
	"time"

	"github.com/churnflow/churnflow/model"
	"github.com/churnflow/churnflow/operators"
)

// Config describes a synthetic population. Start from DefaultConfig; the
// zero value is not valid. Every field is documented with its default.
type Config struct {
	// Members is the population size: members enrolled before the span and
	// members who enrol during it. Default 10000.
	Members int
	// Start is the first instant of the simulated span (UTC). Default
	// 2025-01-01T00:00:00Z.
	Start time.Time
	// Days is the length of the span in days; no record is at or after
	// Start + Days. Default 365.
	Days int
	// Seed selects the population: the same Config gives the same bytes.
	// Default 1.
	Seed uint64
	// BadRate is the share of malformed records in the output, in [0, 0.5]
	// (invalid JSON, missing fields, wrong types, negative distances, bad
	// timestamps). Malformed records come in addition to the good events:
	// the good events do not depend on BadRate. Default 0.
	BadRate float64

	// NewMemberShare is the share of members who enrol during the span; the
	// others enrolled up to TenureYears before Start, and their enrolment
	// events open the stream, in time order. Default 0.25.
	NewMemberShare float64
	// TenureYears bounds how long before Start the existing members
	// enrolled. Default 8.
	TenureYears float64

	// Tiers is the tier ladder, lowest first: names for enrolment and
	// tier_change events and the qualification thresholds members are
	// promoted (and, at a period's end, demoted) by. Default
	// operators.DefaultConfig().Tiers.
	Tiers []operators.TierConfig
	// QualificationStartMonth is the first month of the tier qualification
	// period (1 = calendar year). Default 1, as operators.DefaultConfig.
	QualificationStartMonth int

	// Purchases are the BG/NBD parameters of flight bookings, in days: each
	// member books as a Poisson process with rate λ ~ Gamma(R, Alpha) and,
	// after each repeat booking (with Modified, after every booking),
	// drops out for good with probability p ~ Beta(A, B). Default R 0.5, Alpha 45 (mean 4 bookings a year,
	// heavy-tailed), A 0.6, B 10 (mean p 0.057).
	Purchases BGNBD
}

// BGNBD are the four parameters of the BG/NBD model (Fader, Hardie and Lee
// 2005) with the time unit in days. A fit of churnflow's `fit` command on the
// members who enrol during the span should give back numbers close to these.
type BGNBD struct {
	R, Alpha float64 // purchase rate λ ~ Gamma(shape R, rate Alpha)
	A, B     float64 // dropout probability p ~ Beta(A, B)
	// Modified draws from the MBG/NBD model (Batislam et al. 2007)
	// instead: a member may also drop out right after the first booking.
	// Default false (BG/NBD).
	Modified bool
}

// PurchasesFromModel returns the generator's purchase parameters (in days)
// for a fitted purchase model in the given unit ("day" or "week"): r, a and
// b carry over, α (a rate's scale) is multiplied by the days in the unit.
func PurchasesFromModel(pm model.Purchase, unit string) (BGNBD, error) {
	days := 1.0
	switch unit {
	case model.UnitDay:
	case model.UnitWeek:
		days = 7
	default:
		return BGNBD{}, fmt.Errorf("gen: unknown model time unit %q, want %q or %q", unit, model.UnitDay, model.UnitWeek)
	}
	switch p := pm.(type) {
	case model.BGNBD:
		return BGNBD{R: p.R, Alpha: p.Alpha * days, A: p.A, B: p.B}, nil
	case model.MBGNBD:
		return BGNBD{R: p.R, Alpha: p.Alpha * days, A: p.A, B: p.B, Modified: true}, nil
	}
	return BGNBD{}, fmt.Errorf("gen: unknown purchase model %q", pm.Name())
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Members:                 10000,
		Start:                   time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		Days:                    365,
		Seed:                    1,
		NewMemberShare:          0.25,
		TenureYears:             8,
		Tiers:                   operators.DefaultConfig().Tiers,
		QualificationStartMonth: 1,
		Purchases:               BGNBD{R: 0.5, Alpha: 45, A: 0.6, B: 10},
	}
}

// maxMembers keeps member ids and per-member indexes in range.
const maxMembers = 1 << 30

// Validate reports the first field that is wrong, naming it.
func (c *Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("gen config %s: %s", field, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Members < 1 || c.Members > maxMembers:
		return bad("Members", "must be 1 to %d, got %d", maxMembers, c.Members)
	case c.Start.IsZero():
		return bad("Start", "must be set")
	case c.Start.Year() < 1980 || c.Start.Year() > 2200:
		return bad("Start", "year must be 1980 to 2200, got %d", c.Start.Year())
	case c.Days < 1 || c.Days > 36500:
		return bad("Days", "must be 1 to 36500, got %d", c.Days)
	case !(c.BadRate >= 0 && c.BadRate <= 0.5):
		return bad("BadRate", "must be in [0, 0.5], got %g", c.BadRate)
	case !(c.NewMemberShare >= 0 && c.NewMemberShare <= 1):
		return bad("NewMemberShare", "must be in [0, 1], got %g", c.NewMemberShare)
	case !(c.TenureYears > 0 && c.TenureYears <= 50):
		return bad("TenureYears", "must be in (0, 50], got %g", c.TenureYears)
	case c.QualificationStartMonth < 1 || c.QualificationStartMonth > 12:
		return bad("QualificationStartMonth", "must be 1 to 12, got %d", c.QualificationStartMonth)
	case len(c.Tiers) == 0:
		return bad("Tiers", "at least one tier is needed")
	case len(c.Tiers) > 32:
		return bad("Tiers", "at most 32 tiers")
	}
	for i, t := range c.Tiers {
		if t.Name == "" {
			return bad(fmt.Sprintf("Tiers[%d].Name", i), "empty")
		}
		if i > 0 && !(t.QualifyKm > 0 || t.QualifySegments > 0) {
			return bad(fmt.Sprintf("Tiers[%d]", i), "tier %q needs QualifyKm or QualifySegments", t.Name)
		}
	}
	p := c.Purchases
	for _, x := range []struct {
		name string
		v    float64
	}{{"Purchases.R", p.R}, {"Purchases.Alpha", p.Alpha}, {"Purchases.A", p.A}, {"Purchases.B", p.B}} {
		if !(x.v > 0) || math.IsInf(x.v, 0) {
			return bad(x.name, "must be positive and finite, got %g", x.v)
		}
	}
	return nil
}

// TierNames lists the tier names, lowest first.
func (c *Config) TierNames() []string { return operators.TierNames(c.Tiers) }

// End returns the first instant after the span.
func (c *Config) End() time.Time { return c.Start.Add(time.Duration(c.Days) * 24 * time.Hour) }
