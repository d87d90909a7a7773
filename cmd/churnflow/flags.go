package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Flag values whose errors say what is wrong and show an example. Their
// messages are completed with the flag or variable name by the caller.

// choiceValue is a string flag limited to a fixed set of words.
type choiceValue struct {
	v       *string
	choices []string
}

func newChoice(p *string, def string, choices ...string) *choiceValue {
	*p = def
	return &choiceValue{v: p, choices: choices}
}

func (c *choiceValue) String() string { return *c.v }
func (c *choiceValue) Type() string   { return strings.Join(c.choices, "|") }
func (c *choiceValue) Set(s string) error {
	for _, ch := range c.choices {
		if s == ch {
			*c.v = s
			return nil
		}
	}
	return fmt.Errorf("%q is not one of %s", s, strings.Join(c.choices, ", "))
}

// timeValue is an RFC 3339 time; empty means unset.
type timeValue struct{ v *time.Time }

func (t timeValue) String() string {
	if t.v.IsZero() {
		return ""
	}
	return t.v.Format(time.RFC3339)
}
func (t timeValue) Type() string { return "RFC3339" }
func (t timeValue) Set(s string) error {
	if s == "" {
		*t.v = time.Time{}
		return nil
	}
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return fmt.Errorf("%q is not an RFC 3339 time (example: 2026-06-01T00:00:00Z)", s)
	}
	*t.v = v
	return nil
}

// countValue is a positive whole number.
type countValue struct{ v *int }

func (c countValue) String() string { return strconv.Itoa(*c.v) }
func (c countValue) Type() string   { return "N" }
func (c countValue) Set(s string) error {
	n, err := strconv.Atoi(strings.ReplaceAll(s, "_", ""))
	if err != nil || n < 1 {
		return fmt.Errorf("%q is not a positive whole number (example: 4096)", s)
	}
	*c.v = n
	return nil
}

// sizeValue is a byte count written as 256MiB, 1GiB, 500MB, 64k or 1048576.
type sizeValue struct{ v *int64 }

func (z sizeValue) String() string { return formatSize(*z.v) }
func (z sizeValue) Type() string   { return "BYTES" }
func (z sizeValue) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*z.v = n
	return nil
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40},
	{"b", 1},
}

// parseSize reads a positive byte count with an optional unit: KiB, MiB,
// GiB, TiB (powers of 1024), KB, MB, GB, TB (powers of 1000), K, M, G, T
// (powers of 1024) or B; case does not matter.
func parseSize(s string) (int64, error) {
	bad := fmt.Errorf("%q is not a size (examples: 256MiB, 1GiB, 500MB)", s)
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	x, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(x) || x <= 0 {
		return 0, bad
	}
	v := x * float64(mult)
	if v > math.MaxInt64/2 || v < 1 {
		return 0, bad
	}
	return int64(v), nil
}

func formatSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "GiB"
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KiB"
	}
	return strconv.FormatInt(n, 10)
}
