package model

import (
	"errors"
	"fmt"
	"math"
)

// LRFMC is a member's LRFMC figures (DESIGN.md): L the length of the
// relationship, R the recency in days, F the frequency, M the mileage or
// value, C the mean discount coefficient.
type LRFMC struct {
	L float64 `json:"L"`
	R float64 `json:"R"`
	F float64 `json:"F"`
	M float64 `json:"M"`
	C float64 `json:"C"`
}

func (v LRFMC) slice() []float64 { return []float64{v.L, v.R, v.F, v.M, v.C} }

func lrfmcOf(s []float64) LRFMC { return LRFMC{L: s[0], R: s[1], F: s[2], M: s[3], C: s[4]} }

// Segment names, as the operators package spells them.
const (
	SegmentImportantRetain  = "important_retain"
	SegmentImportantDevelop = "important_develop"
	SegmentImportantWinBack = "important_win_back"
	SegmentGeneral          = "general"
	SegmentLowValue         = "low_value"
)

// SegmentNames lists the five LRFMC value segments in DESIGN.md order.
var SegmentNames = [5]string{
	SegmentImportantRetain, SegmentImportantDevelop, SegmentImportantWinBack,
	SegmentGeneral, SegmentLowValue,
}

// segmentProfiles weigh the z-scores (L, R, F, M, C) of a centre for each
// segment of SegmentNames, after the rules that define them:
// important-retain: high F and M, low R; important-develop: high C, with
// lower F/M (new or occasional premium members); important-win-back: long
// L with falling activity (high R, decent F/M); general: high R, low F/M;
// low-value: low L and C.
var segmentProfiles = [5][5]float64{
	{0, -1, 1, 1, 0.5},
	{-0.5, -0.5, -0.5, -0.5, 2},
	{1, 1, 0.5, 0.5, 0},
	{0, 1, -0.5, -0.5, 0},
	{-1, 0, 0, 0, -1},
}

// NameSegments names each of five centres, given as z-scores of (L, R, F,
// M, C), with a different segment of SegmentNames: the one-to-one
// assignment that maximises the total score Σ profile·z over all 5!
// assignments.
func NameSegments(z [][]float64) ([]string, error) {
	if len(z) != len(SegmentNames) {
		return nil, fmt.Errorf("model: %d centres to name, want %d", len(z), len(SegmentNames))
	}
	var score [5][5]float64
	for i, c := range z {
		if len(c) != 5 {
			return nil, fmt.Errorf("model: centre %d has %d figures, want 5 (L, R, F, M, C)", i, len(c))
		}
		for s, w := range segmentProfiles {
			for j, v := range c {
				score[i][s] += w[j] * v
			}
		}
	}
	perm := [5]int{0, 1, 2, 3, 4}
	var best [5]int
	bestScore := math.Inf(-1)
	permute(perm[:], 0, func(p []int) {
		var t float64
		for i, s := range p {
			t += score[i][s]
		}
		if t > bestScore {
			bestScore = t
			copy(best[:], p)
		}
	})
	names := make([]string, 5)
	for i, s := range best {
		names[i] = SegmentNames[s]
	}
	return names, nil
}

// permute calls f with every permutation of p[k:], in a fixed order.
func permute(p []int, k int, f func([]int)) {
	if k == len(p) {
		f(p)
		return
	}
	for i := k; i < len(p); i++ {
		p[k], p[i] = p[i], p[k]
		permute(p, k+1, f)
		p[k], p[i] = p[i], p[k]
	}
}

// Centre is one fitted segment.
type Centre struct {
	// Name is the segment (one of SegmentNames).
	Name string `json:"name"`
	// Z is the centre in z-scores; Value in original units.
	Z     []float64 `json:"z"`
	Value LRFMC     `json:"value"`
	// Share is the share of the members fitted in this segment.
	Share float64 `json:"share"`
}

// Segments are the fitted LRFMC segments: the standardisation and the
// named centres.
type Segments struct {
	Stats   Standardizer `json:"stats"`
	Centres []Centre     `json:"centres"`
	// Inertia is the k-means objective in z-scores.
	Inertia float64 `json:"inertia"`
}

// FitSegments standardises the members' LRFMC figures, clusters them with
// k-means (c.K must be 5) and names the clusters with NameSegments.
func FitSegments(members []LRFMC, c KMeansConfig) (Segments, error) {
	if c.K != len(SegmentNames) {
		return Segments{}, fmt.Errorf("model: segments need k = %d, got %d", len(SegmentNames), c.K)
	}
	rows := make([][]float64, len(members))
	for i, m := range members {
		rows[i] = m.slice()
	}
	st, err := NewStandardizer(rows)
	if err != nil {
		return Segments{}, fmt.Errorf("standardise LRFMC: %w", err)
	}
	for i, r := range rows {
		rows[i] = st.Apply(r)
	}
	cl, err := KMeans(rows, c)
	if err != nil {
		return Segments{}, fmt.Errorf("cluster LRFMC: %w", err)
	}
	names, err := NameSegments(cl.Centres)
	if err != nil {
		return Segments{}, fmt.Errorf("name segments: %w", err)
	}
	s := Segments{Stats: st, Inertia: cl.Inertia}
	for k, z := range cl.Centres {
		s.Centres = append(s.Centres, Centre{Name: names[k], Z: z, Value: lrfmcOf(st.Invert(z)), Share: cl.Shares[k]})
	}
	return s, nil
}

// Nearest returns the centre nearest to v after standardising it with the
// stored statistics.
func (s Segments) Nearest(v LRFMC) Centre {
	z := s.Stats.Apply(v.slice())
	best, bd := 0, math.Inf(1)
	for j, c := range s.Centres {
		if d := sqDist(z, c.Z); d < bd {
			best, bd = j, d
		}
	}
	return s.Centres[best]
}

// ErrBadSegments is returned by Segments.Check.
var ErrBadSegments = errors.New("model: invalid segments")

// Check reports whether the segments are usable for Nearest.
func (s Segments) Check() error {
	if len(s.Stats.Mean) != 5 || len(s.Stats.Std) != 5 {
		return fmt.Errorf("%w: standardisation has %d means and %d deviations, want 5", ErrBadSegments, len(s.Stats.Mean), len(s.Stats.Std))
	}
	for j, v := range s.Stats.Std {
		if !(v > 0) || !finite(v) || !finite(s.Stats.Mean[j]) {
			return fmt.Errorf("%w: column %d mean %g std %g", ErrBadSegments, j, s.Stats.Mean[j], v)
		}
	}
	if len(s.Centres) == 0 {
		return fmt.Errorf("%w: no centres", ErrBadSegments)
	}
	known := map[string]bool{}
	for _, n := range SegmentNames {
		known[n] = true
	}
	for i, c := range s.Centres {
		if len(c.Z) != 5 {
			return fmt.Errorf("%w: centre %d has %d z-scores, want 5", ErrBadSegments, i, len(c.Z))
		}
		if !known[c.Name] {
			return fmt.Errorf("%w: centre %d has unknown name %q", ErrBadSegments, i, c.Name)
		}
	}
	return nil
}
