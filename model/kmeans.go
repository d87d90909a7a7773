package model

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// Standardizer holds the per-column mean and standard deviation used to
// turn values into z-scores.
type Standardizer struct {
	Mean []float64 `json:"mean"`
	Std  []float64 `json:"std"`
}

// NewStandardizer computes the column means and (population) standard
// deviations of rows, which must all have the same length. A column with
// no spread gets standard deviation 1, so its z-scores are all 0.
func NewStandardizer(rows [][]float64) (Standardizer, error) {
	if len(rows) == 0 || len(rows[0]) == 0 {
		return Standardizer{}, ErrNoData
	}
	d := len(rows[0])
	s := Standardizer{Mean: make([]float64, d), Std: make([]float64, d)}
	for i, r := range rows {
		if len(r) != d {
			return Standardizer{}, fmt.Errorf("model: row %d has %d columns, want %d", i, len(r), d)
		}
		for j, v := range r {
			if !finite(v) {
				return Standardizer{}, fmt.Errorf("model: row %d column %d is %g", i, j, v)
			}
			s.Mean[j] += v
		}
	}
	n := float64(len(rows))
	for j := range s.Mean {
		s.Mean[j] /= n
	}
	for _, r := range rows {
		for j, v := range r {
			s.Std[j] += (v - s.Mean[j]) * (v - s.Mean[j])
		}
	}
	for j := range s.Std {
		s.Std[j] = math.Sqrt(s.Std[j] / n)
		if !(s.Std[j] > 0) {
			s.Std[j] = 1
		}
	}
	return s, nil
}

// Apply returns the z-scores of row.
func (s Standardizer) Apply(row []float64) []float64 {
	z := make([]float64, len(row))
	for j, v := range row {
		z[j] = (v - s.Mean[j]) / s.Std[j]
	}
	return z
}

// Invert returns the original values of the z-scores z.
func (s Standardizer) Invert(z []float64) []float64 {
	row := make([]float64, len(z))
	for j, v := range z {
		row[j] = s.Mean[j] + v*s.Std[j]
	}
	return row
}

// KMeansConfig sets a k-means run.
type KMeansConfig struct {
	// K is the number of clusters.
	K int `json:"k"`
	// Restarts is the number of independent k-means++ starts; the one with
	// the least inertia wins.
	Restarts int `json:"restarts"`
	// MaxIterations bounds Lloyd iterations per start.
	MaxIterations int `json:"max_iterations"`
	// Seed seeds the PCG generator: the same seed gives the same result.
	Seed uint64 `json:"seed"`
}

// DefaultKMeansConfig is k = 5 (the five LRFMC segments), 10 restarts, 300
// iterations, seed 1.
func DefaultKMeansConfig() KMeansConfig {
	return KMeansConfig{K: 5, Restarts: 10, MaxIterations: 300, Seed: 1}
}

// Clustering is the result of KMeans.
type Clustering struct {
	// Centres are the cluster means, in the points' coordinates.
	Centres [][]float64
	// Assign is each point's cluster.
	Assign []int
	// Sizes and Shares count the points in each cluster.
	Sizes  []int
	Shares []float64
	// Inertia is the sum of squared distances to the assigned centres.
	Inertia float64
	// Iterations is the Lloyd iterations of the winning start.
	Iterations int
}

// ErrTooFewPoints is returned by KMeans with fewer points than clusters.
var ErrTooFewPoints = errors.New("model: fewer points than clusters")

// KMeans clusters points (already standardised, if they should be) by
// Lloyd's algorithm from k-means++ seeds (Arthur and Vassilvitskii 2007),
// keeping the best of c.Restarts starts. It is deterministic for a seed.
func KMeans(points [][]float64, c KMeansConfig) (Clustering, error) {
	if c.K < 1 || c.Restarts < 1 || c.MaxIterations < 1 {
		return Clustering{}, fmt.Errorf("model: bad k-means configuration %+v", c)
	}
	if len(points) < c.K {
		return Clustering{}, fmt.Errorf("k-means with k = %d on %d points: %w", c.K, len(points), ErrTooFewPoints)
	}
	rng := rand.New(rand.NewPCG(c.Seed, 0xda3e39cb94b95bdb))
	var best Clustering
	for start := range c.Restarts {
		cl := lloyd(points, seedPlusPlus(points, c.K, rng), c.MaxIterations)
		if start == 0 || cl.Inertia < best.Inertia {
			best = cl
		}
	}
	best.Shares = make([]float64, c.K)
	for k, n := range best.Sizes {
		best.Shares[k] = float64(n) / float64(len(points))
	}
	return best, nil
}

// seedPlusPlus picks k initial centres: the first uniformly, each next one
// with probability proportional to the squared distance to the nearest
// centre already chosen.
func seedPlusPlus(points [][]float64, k int, rng *rand.Rand) [][]float64 {
	centres := [][]float64{clone(points[rng.IntN(len(points))])}
	d2 := make([]float64, len(points))
	for i, p := range points {
		d2[i] = sqDist(p, centres[0])
	}
	for len(centres) < k {
		var total float64
		for _, v := range d2 {
			total += v
		}
		next := rng.IntN(len(points))
		if total > 0 {
			target := rng.Float64() * total
			for i, v := range d2 {
				target -= v
				if target < 0 {
					next = i
					break
				}
			}
		}
		c := clone(points[next])
		centres = append(centres, c)
		for i, p := range points {
			d2[i] = min(d2[i], sqDist(p, c))
		}
	}
	return centres
}

// lloyd alternates assignment and update until no point moves. A cluster
// left empty takes the point farthest from its centre.
func lloyd(points, centres [][]float64, maxIter int) Clustering {
	k, d := len(centres), len(points[0])
	assign := make([]int, len(points))
	for i := range assign {
		assign[i] = -1
	}
	sizes := make([]int, k)
	iter := 0
	for iter < maxIter {
		iter++
		moved := false
		for i, p := range points {
			if j, _ := nearest(centres, p); j != assign[i] {
				assign[i], moved = j, true
			}
		}
		if !moved {
			break
		}
		sums := make([][]float64, k)
		for j := range sums {
			sums[j] = make([]float64, d)
			sizes[j] = 0
		}
		for i, p := range points {
			sizes[assign[i]]++
			for m, v := range p {
				sums[assign[i]][m] += v
			}
		}
		for j := range centres {
			if sizes[j] == 0 {
				far := farthest(points, centres, assign)
				copy(centres[j], points[far])
				assign[far] = j // re-assigned properly in the next pass
				continue
			}
			for m := range sums[j] {
				centres[j][m] = sums[j][m] / float64(sizes[j])
			}
		}
	}
	cl := Clustering{Centres: centres, Assign: assign, Sizes: make([]int, k), Iterations: iter}
	for i, p := range points {
		cl.Sizes[assign[i]]++
		cl.Inertia += sqDist(p, centres[assign[i]])
	}
	return cl
}

func farthest(points, centres [][]float64, assign []int) int {
	far, dist := 0, -1.0
	for i, p := range points {
		if v := sqDist(p, centres[assign[i]]); v > dist {
			far, dist = i, v
		}
	}
	return far
}

// nearest returns the index of the centre closest to p and the squared
// distance to it; ties go to the lower index.
func nearest(centres [][]float64, p []float64) (int, float64) {
	best, bd := 0, math.Inf(1)
	for j, c := range centres {
		if v := sqDist(p, c); v < bd {
			best, bd = j, v
		}
	}
	return best, bd
}

func sqDist(a, b []float64) float64 {
	var s float64
	for i, v := range a {
		s += (v - b[i]) * (v - b[i])
	}
	return s
}

func clone(v []float64) []float64 { return append([]float64(nil), v...) }
