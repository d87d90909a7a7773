package gen

import "math"

// airport is one airport of the synthetic network. Home airports are the
// domestic ones (weight > 0); the region is the member's home region.
type airport struct {
	code     string
	lat, lon float64
	region   string // home region for domestic airports, "" abroad
	weight   float64
	kind     uint8 // domestic, regional (short-haul international), long-haul
}

const (
	domestic = iota
	regional
	longHaul
)

// airports: a Chinese full-service carrier's network, with hub weights
// roughly proportional to traffic.
var airports = []airport{
	{"PEK", 40.08, 116.58, "north", 12, domestic},
	{"PKX", 39.51, 116.41, "north", 6, domestic},
	{"TSN", 39.12, 117.35, "north", 2, domestic},
	{"SHE", 41.64, 123.48, "northeast", 2, domestic},
	{"DLC", 38.97, 121.54, "northeast", 2, domestic},
	{"HRB", 45.62, 126.25, "northeast", 2, domestic},
	{"PVG", 31.14, 121.81, "east", 10, domestic},
	{"SHA", 31.20, 121.34, "east", 6, domestic},
	{"HGH", 30.23, 120.43, "east", 5, domestic},
	{"NKG", 31.74, 118.86, "east", 3, domestic},
	{"TAO", 36.27, 120.37, "east", 3, domestic},
	{"XMN", 24.54, 118.13, "east", 3, domestic},
	{"CAN", 23.39, 113.30, "south", 10, domestic},
	{"SZX", 22.64, 113.81, "south", 8, domestic},
	{"HAK", 19.93, 110.46, "south", 2, domestic},
	{"WUH", 30.78, 114.21, "central", 4, domestic},
	{"CSX", 28.19, 113.22, "central", 3, domestic},
	{"CGO", 34.52, 113.84, "central", 2, domestic},
	{"CTU", 30.58, 103.95, "southwest", 7, domestic},
	{"TFU", 30.31, 104.44, "southwest", 3, domestic},
	{"CKG", 29.72, 106.64, "southwest", 5, domestic},
	{"KMG", 25.10, 102.93, "southwest", 4, domestic},
	{"XIY", 34.45, 108.75, "northwest", 4, domestic},
	{"URC", 43.91, 87.47, "northwest", 1, domestic},
	{"LHW", 36.52, 103.62, "northwest", 1, domestic},
	{"HKG", 22.31, 113.91, "", 6, regional},
	{"TPE", 25.08, 121.23, "", 3, regional},
	{"NRT", 35.77, 140.39, "", 3, regional},
	{"HND", 35.55, 139.78, "", 3, regional},
	{"ICN", 37.46, 126.44, "", 4, regional},
	{"SIN", 1.36, 103.99, "", 4, regional},
	{"BKK", 13.69, 100.75, "", 4, regional},
	{"KUL", 2.75, 101.71, "", 2, regional},
	{"LHR", 51.47, -0.45, "", 4, longHaul},
	{"FRA", 50.04, 8.56, "", 4, longHaul},
	{"CDG", 49.01, 2.55, "", 3, longHaul},
	{"MUC", 48.35, 11.79, "", 2, longHaul},
	{"JFK", 40.64, -73.78, "", 3, longHaul},
	{"LAX", 33.94, -118.41, "", 3, longHaul},
	{"SFO", 37.62, -122.38, "", 2, longHaul},
	{"YVR", 49.19, -123.18, "", 2, longHaul},
	{"SYD", -33.94, 151.18, "", 3, longHaul},
	{"DXB", 25.25, 55.36, "", 2, longHaul},
}

// network holds the airport tables derived once from airports.
type network struct {
	km       [][]uint16 // great-circle distance in km
	byKind   [3][]int   // airport indexes per kind
	cumKind  [3][]float64
	regions  []string // distinct home regions
	regionOf []uint8  // airport → index in regions
	hubs     []bool   // large hubs (direct long-haul flights)
}

var netw = buildNetwork()

func buildNetwork() *network {
	n := &network{km: make([][]uint16, len(airports)), regionOf: make([]uint8, len(airports)), hubs: make([]bool, len(airports))}
	for i := range airports {
		n.km[i] = make([]uint16, len(airports))
		for j := range airports {
			n.km[i][j] = uint16(math.Round(greatCircle(&airports[i], &airports[j])))
		}
	}
	var w [3][]float64
	for i, a := range airports {
		n.byKind[a.kind] = append(n.byKind[a.kind], i)
		w[a.kind] = append(w[a.kind], a.weight)
		if a.region != "" {
			k := -1
			for r, name := range n.regions {
				if name == a.region {
					k = r
				}
			}
			if k < 0 {
				k = len(n.regions)
				n.regions = append(n.regions, a.region)
			}
			n.regionOf[i] = uint8(k)
		}
		n.hubs[i] = a.kind == domestic && a.weight >= 5
	}
	for k := range w {
		n.cumKind[k] = cumulative(w[k])
	}
	return n
}

// greatCircle is the haversine distance in km.
func greatCircle(a, b *airport) float64 {
	const earthKm = 6371.0
	rad := math.Pi / 180
	dLat := (b.lat - a.lat) * rad
	dLon := (b.lon - a.lon) * rad
	h := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(a.lat*rad)*math.Cos(b.lat*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthKm * math.Asin(math.Min(1, math.Sqrt(h)))
}
