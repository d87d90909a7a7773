package model

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

// blobs returns n points around each of the centres, spread sd, in a fixed
// order, and each point's true cluster.
func blobs(centres [][]float64, n int, sd float64, seed uint64) ([][]float64, []int) {
	rng := rand.New(rand.NewPCG(seed, 1))
	var pts [][]float64
	var label []int
	for i := 0; i < n; i++ {
		for k, c := range centres {
			p := make([]float64, len(c))
			for j, v := range c {
				p[j] = v + sd*rng.NormFloat64()
			}
			pts = append(pts, p)
			label = append(label, k)
		}
	}
	return pts, label
}

func TestKMeansRecoversClusters(t *testing.T) {
	centres := [][]float64{{0, 0, 0}, {10, 0, 0}, {0, 10, 0}, {0, 0, 10}, {10, 10, 10}}
	pts, label := blobs(centres, 200, 1, 1)
	cfg := DefaultKMeansConfig()
	cl, err := KMeans(pts, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Every true cluster maps to exactly one found cluster, and back.
	seen := map[int]int{}
	for i, k := range cl.Assign {
		if prev, ok := seen[label[i]]; ok && prev != k {
			t.Fatalf("true cluster %d split between %d and %d", label[i], prev, k)
		}
		seen[label[i]] = k
	}
	if len(seen) != 5 {
		t.Fatalf("true clusters mapped to %d clusters", len(seen))
	}
	for truth, k := range seen {
		if sqDist(cl.Centres[k], centres[truth]) > 0.1 || cl.Sizes[k] != 200 || cl.Shares[k] != 0.2 {
			t.Errorf("cluster %d: centre %v size %d share %g, want %v 200 0.2", k, cl.Centres[k], cl.Sizes[k], cl.Shares[k], centres[truth])
		}
	}
	again, _ := KMeans(pts, cfg)
	if !reflect.DeepEqual(cl, again) {
		t.Error("same seed, different result")
	}
	if _, err := KMeans(pts[:3], cfg); err == nil {
		t.Error("3 points in 5 clusters accepted")
	}
}

func TestStandardizer(t *testing.T) {
	s, err := NewStandardizer([][]float64{{1, 5}, {3, 5}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s, Standardizer{Mean: []float64{2, 5}, Std: []float64{1, 1}}) {
		t.Errorf("stats %+v", s)
	}
	if z := s.Apply([]float64{4, 7}); !reflect.DeepEqual(z, []float64{2, 2}) {
		t.Errorf("z = %v", z)
	}
	if v := s.Invert([]float64{2, 2}); !reflect.DeepEqual(v, []float64{4, 7}) {
		t.Errorf("inverse = %v", v)
	}
	if _, err := NewStandardizer([][]float64{{1, 2}, {1}}); err == nil {
		t.Error("ragged rows accepted")
	}
	if _, err := NewStandardizer([][]float64{{math.NaN()}}); err == nil {
		t.Error("NaN accepted")
	}
}

// TestNameSegments names hand-made z-score centres patterned on the Air
// China LRFMC case study often used to teach this model (five clusters of
// about 63,000 members), by the rules of DESIGN.md: high C →
// important-develop; long L → important-win-back; low L and C → low-value;
// high F, M with low R → important-retain; high R → general.
func TestNameSegments(t *testing.T) {
	z := [][]float64{
		{0.052, -0.003, -0.227, -0.230, 2.191},
		{1.160, -0.377, -0.087, -0.095, -0.158},
		{-0.700, -0.415, -0.161, -0.161, -0.255},
		{0.483, -0.799, 2.483, 2.424, 0.309},
		{-0.314, 1.686, -0.574, -0.537, -0.173},
	}
	want := []string{SegmentImportantDevelop, SegmentImportantWinBack, SegmentLowValue, SegmentImportantRetain, SegmentGeneral}
	got, err := NameSegments(z)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("names %v, want %v", got, want)
	}
	// The names follow the centres, not their order.
	rev := [][]float64{z[4], z[3], z[2], z[1], z[0]}
	got, _ = NameSegments(rev)
	if !reflect.DeepEqual(got, []string{want[4], want[3], want[2], want[1], want[0]}) {
		t.Errorf("reversed: names %v", got)
	}
	if _, err := NameSegments(z[:4]); err == nil {
		t.Error("four centres accepted")
	}
}

func TestFitSegments(t *testing.T) {
	// Five well-separated groups in original units (L days, R days, F, M km, C).
	groups := [][]float64{
		{900, 20, 30, 60000, 0.9},   // frequent, recent: retain
		{300, 30, 4, 5000, 1.4},     // premium, occasional: develop
		{2000, 250, 12, 20000, 0.8}, // long, slipping: win-back
		{600, 400, 2, 2000, 0.7},    // gone quiet: general
		{100, 60, 2, 1500, 0.5},     // new, cheap: low-value
	}
	sd := []float64{30, 5, 1, 500, 0.02}
	rng := rand.New(rand.NewPCG(9, 9))
	var members []LRFMC
	for i := 0; i < 300; i++ {
		for _, g := range groups {
			v := make([]float64, 5)
			for j := range v {
				v[j] = g[j] + sd[j]*rng.NormFloat64()
			}
			members = append(members, lrfmcOf(v))
		}
	}
	seg, err := FitSegments(members, DefaultKMeansConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := seg.Check(); err != nil {
		t.Fatal(err)
	}
	want := []string{SegmentImportantRetain, SegmentImportantDevelop, SegmentImportantWinBack, SegmentGeneral, SegmentLowValue}
	for i, g := range groups {
		c := seg.Nearest(lrfmcOf(g))
		if c.Name != want[i] || math.Abs(c.Share-0.2) > 1e-12 {
			t.Errorf("group %d: nearest %s share %g, want %s 0.2", i, c.Name, c.Share, want[i])
		}
		if math.Abs(c.Value.L-g[0]) > 10 || math.Abs(c.Value.C-g[4]) > 0.01 {
			t.Errorf("group %d: centre %+v, want near %v", i, c.Value, g)
		}
	}
}
