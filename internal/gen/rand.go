package gen

import (
	"math"
	"math/bits"
	"math/rand/v2"
)

// rng is a small deterministic random source: a PCG generator (stable across
// Go releases) with the few distributions the population model needs. It is
// a value type so that each member carries its own 16-byte generator and a
// member's behaviour does not depend on how its events interleave with other
// members' events.
type rng struct{ pcg rand.PCG }

func newRNG(seed, stream uint64) rng {
	var r rng
	r.pcg.Seed(seed, stream^0x9e3779b97f4a7c15)
	return r
}

// float returns a uniform number in [0, 1).
func (r *rng) float() float64 { return float64(r.pcg.Uint64()>>11) / (1 << 53) }

// intn returns a uniform integer in [0, n).
func (r *rng) intn(n int) int {
	hi, _ := bits.Mul64(r.pcg.Uint64(), uint64(n))
	return int(hi)
}

// chance reports true with probability p.
func (r *rng) chance(p float64) bool { return r.float() < p }

// exp returns an exponential variate with mean 1.
func (r *rng) exp() float64 { return -math.Log(1 - r.float()) }

// norm returns a standard normal variate (Box–Muller).
func (r *rng) norm() float64 {
	u1 := 1 - r.float() // (0, 1]
	u2 := r.float()
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

// gamma returns a Gamma(shape, 1) variate (Marsaglia and Tsang 2000; for
// shape < 1 the boost Gamma(shape+1)·U^(1/shape)).
func (r *rng) gamma(shape float64) float64 {
	if shape < 1 {
		u := 1 - r.float()
		return r.gamma(shape+1) * math.Pow(u, 1/shape)
	}
	d := shape - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := r.norm()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := 1 - r.float()
		if math.Log(u) < 0.5*x*x+d-d*v+d*math.Log(v) {
			return d * v
		}
	}
}

// beta returns a Beta(a, b) variate.
func (r *rng) beta(a, b float64) float64 {
	x := r.gamma(a)
	y := r.gamma(b)
	if x+y == 0 {
		return 0
	}
	return x / (x + y)
}

// pick returns an index drawn with the given cumulative weights.
func (r *rng) pick(cum []float64) int {
	u := r.float() * cum[len(cum)-1]
	for i, c := range cum {
		if u < c {
			return i
		}
	}
	return len(cum) - 1
}

// cumulative turns weights into cumulative weights.
func cumulative(w []float64) []float64 {
	out := make([]float64, len(w))
	s := 0.0
	for i, x := range w {
		s += x
		out[i] = s
	}
	return out
}
