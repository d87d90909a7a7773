package model

import (
	"fmt"
	"math"
)

// CLVConfig sets how customer lifetime value is discounted. The convention
// is the lifetimes library's customer_lifetime_value (lifetimes 0.11,
// utils._customer_lifetime_value): the horizon is cut into Periods periods
// of PeriodLength model time units each; period i (1-based) contributes the
// expected transactions in it, E[Y(i·PeriodLength)] − E[Y((i−1)·PeriodLength)],
// times the expected value of a transaction, divided by (1+DiscountRate)^i.
// Transactions are discounted to the end of the period they fall in.
type CLVConfig struct {
	// Periods is the horizon in periods (e.g. 12 months).
	Periods int `json:"periods"`
	// PeriodLength is one period in the model's time unit (e.g. 30 days).
	PeriodLength float64 `json:"period_length"`
	// DiscountRate is the discount rate per period (e.g. 0.01 a month).
	DiscountRate float64 `json:"discount_rate"`
}

// Period lengths of a month, as lifetimes counts them.
const (
	DaysPerMonth  = 30
	WeeksPerMonth = 4.345
)

// MonthlyCLV returns a configuration over months for a model fitted in unit
// "day" or "week", with a monthly discount rate.
func MonthlyCLV(unit string, months int, monthlyRate float64) (CLVConfig, error) {
	c := CLVConfig{Periods: months, DiscountRate: monthlyRate}
	switch unit {
	case UnitDay:
		c.PeriodLength = DaysPerMonth
	case UnitWeek:
		c.PeriodLength = WeeksPerMonth
	default:
		return CLVConfig{}, fmt.Errorf("model: unknown time unit %q", unit)
	}
	return c, c.Check()
}

// Check reports whether the configuration is usable.
func (c CLVConfig) Check() error {
	switch {
	case c.Periods < 1:
		return fmt.Errorf("model: clv periods = %d, want at least 1", c.Periods)
	case !(c.PeriodLength > 0) || math.IsInf(c.PeriodLength, 1):
		return fmt.Errorf("model: clv period length = %g, want positive", c.PeriodLength)
	case !(c.DiscountRate > -1) || math.IsInf(c.DiscountRate, 1):
		return fmt.Errorf("model: clv discount rate = %g, want above -1", c.DiscountRate)
	}
	return nil
}

// CLV is the member's discounted expected value over the configured
// horizon: Σ_i (E[Y(t_i)] − E[Y(t_(i−1))]) · value / (1+d)^i with
// t_i = i·PeriodLength, where value is the expected value of one
// transaction (GammaGamma.ExpectedValue).
func CLV(pm Purchase, m RFM, value float64, c CLVConfig) float64 {
	var clv, prev float64
	disc := 1.0
	for i := 1; i <= c.Periods; i++ {
		cur := pm.ExpectedTransactions(m, float64(i)*c.PeriodLength)
		disc *= 1 + c.DiscountRate
		clv += (cur - prev) * value / disc
		prev = cur
	}
	return clv
}
