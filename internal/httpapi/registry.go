package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/churnflow/churnflow/pipeline"
	"github.com/churnflow/churnflow/state"
)

// Names of the metrics registered here (beside the pipeline's).
const (
	MetricBuildInfo          = "churnflow_build_info"
	MetricStateDiskBytes     = "churnflow_state_disk_bytes"
	MetricStateCachedMembers = "churnflow_state_cached_members"
	MetricStateCachedBytes   = "churnflow_state_cached_bytes"
	MetricStateMemberReads   = "churnflow_state_member_reads_total"
)

// NewRegistry returns a registry holding the Go runtime and process
// collectors, churnflow_build_info, the state store's size (when store is
// not nil) and the pipeline's metrics, which it returns for Deps.Metrics.
func NewRegistry(store *state.Store) (*prometheus.Registry, *pipeline.Metrics) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	version, revision := buildVersion()
	info := prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricBuildInfo, Help: "churnflow's build: version, VCS revision and Go version; always 1.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "go_version": goVersion()}})
	info.Set(1)
	reg.MustRegister(info)
	if store != nil {
		reg.MustRegister(storeCollector{store})
	}
	return reg, pipeline.NewMetrics(reg)
}

func buildVersion() (version, revision string) {
	version, revision = "unknown", "unknown"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	if v := bi.Main.Version; v != "" {
		version = v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			revision = s.Value
		}
	}
	return
}

func goVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.GoVersion
	}
	return "unknown"
}

// storeCollector reports the state store's size at each scrape.
type storeCollector struct{ s *state.Store }

var (
	diskDesc = prometheus.NewDesc(MetricStateDiskBytes, "Bytes the state directory takes on disk (LSM tree and value log).", nil, nil)
	cachedN  = prometheus.NewDesc(MetricStateCachedMembers, "Member states held in the in-memory cache.", nil, nil)
	cachedB  = prometheus.NewDesc(MetricStateCachedBytes, "Bytes charged to the in-memory member cache.", nil, nil)
	reads    = prometheus.NewDesc(MetricStateMemberReads,
		"Member state reads since the store opened, by where they were answered: from=\"cache\" (in memory) or from=\"store\" (Badger: not cached, or a new member).",
		[]string{"from"}, nil)
)

func (c storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- diskDesc
	ch <- cachedN
	ch <- cachedB
	ch <- reads
}

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	u, err := c.s.Usage()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(diskDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(diskDesc, prometheus.GaugeValue, float64(u.DiskBytes))
	ch <- prometheus.MustNewConstMetric(cachedN, prometheus.GaugeValue, float64(u.CachedStates))
	ch <- prometheus.MustNewConstMetric(cachedB, prometheus.GaugeValue, float64(u.CachedBytes))
	ch <- prometheus.MustNewConstMetric(reads, prometheus.CounterValue, float64(u.CacheHits), "cache")
	ch <- prometheus.MustNewConstMetric(reads, prometheus.CounterValue, float64(u.CacheMisses), "store")
}

// Listener is a running HTTP server.
type Listener struct {
	// Addr is the address it listens on (the port chosen, for ":0").
	Addr string
	srv  *http.Server
	done chan error
}

// Listen starts serving h on addr in the background. A listen error (the
// address is taken or wrong) is returned at once.
func Listen(addr string, h http.Handler, log zerolog.Logger) (*Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http listen %s: %w", addr, err)
	}
	l := &Listener{Addr: ln.Addr().String(), srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second},
		done: make(chan error, 1)}
	log.Info().Str("addr", l.Addr).Msg("http serving /metrics, /healthz, /readyz and /v1")
	go func() { l.done <- l.srv.Serve(ln) }()
	return l, nil
}

// Close shuts the server down, waiting up to 5 s for requests in flight.
func (l *Listener) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := l.srv.Shutdown(ctx)
	if serr := <-l.done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("http shutdown: %w", err)
	}
	return nil
}
