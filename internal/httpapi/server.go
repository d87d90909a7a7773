// Package httpapi serves churnflow's HTTP endpoints: Prometheus metrics,
// health probes, the member lookup and the programme overview
// (docs/operations.md, "HTTP endpoints").
//
//	GET /metrics            Prometheus exposition (open)
//	GET /healthz            the process is alive (open)
//	GET /readyz             partitions assigned and restored, Kafka reachable (open)
//	GET /v1/members/{id}    one member's figures (bearer token)
//	GET /v1/stats           members by tier, activity and segment, alerts by type, trend (bearer token)
package httpapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/churnflow/churnflow/operators"
	"github.com/churnflow/churnflow/pipeline"
	"github.com/churnflow/churnflow/state"
)

// Options are what the server reads from.
type Options struct {
	// Gatherer serves /metrics and the counts of /v1/stats. Required.
	Gatherer prometheus.Gatherer
	// Status is the pipeline's status (pipeline.Pipeline.Status). Required.
	Status func() pipeline.Status
	// Store and Engine answer /v1/members. Required.
	Store  *state.Store
	Engine *operators.Engine
	// Token is the bearer token of /v1/*. Empty: /v1/* answers 403 to
	// everyone (an API without a token is not served open).
	Token string
	// Owner says which member of the consumer group processes a partition
	// (pipeline.Pipeline.PartitionOwner), for the answer about a member
	// another instance holds. Nil: not said.
	Owner func(ctx context.Context, partition int) (owner string, ok bool, err error)
	// Clock is the wall clock. Nil: time.Now.
	Clock func() time.Time
	// Log receives one line per failed request (no member ids above debug).
	Log zerolog.Logger
}

// Server is the HTTP handler; Sample records the trend of /v1/stats.
type Server struct {
	opts  Options
	mux   *http.ServeMux
	mu    sync.Mutex
	trend []daySample // one per UTC day, oldest first, at most trendDays
}

// trendDays is how many days of counts /v1/stats keeps.
const trendDays = 30

// New returns the server. It does no I/O.
func New(opts Options) (*Server, error) {
	switch {
	case opts.Gatherer == nil:
		return nil, errors.New("httpapi: Options.Gatherer is required")
	case opts.Status == nil:
		return nil, errors.New("httpapi: Options.Status is required")
	case opts.Store == nil || opts.Engine == nil:
		return nil, errors.New("httpapi: Options.Store and Options.Engine are required")
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	s := &Server{opts: opts, mux: http.NewServeMux()}
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /v1/members/{id}", s.authorized(http.HandlerFunc(s.member)))
	s.mux.Handle("GET /v1/stats", s.authorized(http.HandlerFunc(s.stats)))
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// errorJSON is every error's body.
type errorJSON struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// authorized lets a request through with the right bearer token
// (compared in constant time), else answers 401 (or 403 when the server
// has no token configured).
func (s *Server) authorized(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Token == "" {
			writeJSON(w, http.StatusForbidden, errorJSON{"the member API is disabled: no API token is configured (http.api_token, CHURNFLOW_HTTP_API_TOKEN or --api-token)"})
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.Token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="churnflow"`)
			writeJSON(w, http.StatusUnauthorized, errorJSON{"missing or wrong bearer token"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// readyJSON is /readyz's body.
type readyJSON struct {
	Ready       bool              `json:"ready"`
	Running     bool              `json:"running"`
	Assigned    []int             `json:"assigned"`
	Restoring   []int             `json:"restoring"`
	Processing  []int             `json:"processing"`
	Warming     []int             `json:"warming"`
	KafkaErrors map[string]string `json:"kafka_errors,omitempty"`
	FailingFor  string            `json:"kafka_failing_for,omitempty"`
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	st := s.opts.Status()
	body := readyJSON{Ready: st.Ready(), Running: st.Running, Assigned: nonNil(st.Assigned),
		Restoring: nonNil(st.Restoring), Processing: nonNil(st.Processing),
		Warming: nonNil(st.Warming), KafkaErrors: st.KafkaErrors}
	if !st.KafkaErrorSince.IsZero() {
		body.FailingFor = s.opts.Clock().Sub(st.KafkaErrorSince).Round(time.Second).String()
	}
	code := http.StatusOK
	if !body.Ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, body)
}

func nonNil(a []int) []int {
	if a == nil {
		return []int{}
	}
	return a
}

// PartitionOf returns the input partition of member id among n: the
// partition Kafka's Java client, kafka-go's Murmur2Balancer and
// churnflow's producers put its events on.
func PartitionOf(id operators.MemberID, n int) int {
	parts := make([]int, n)
	for i := range parts {
		parts[i] = i
	}
	return (&kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: []byte(id)}, parts...)
}

func (s *Server) member(w http.ResponseWriter, r *http.Request) {
	id := operators.MemberID(r.PathValue("id"))
	st := s.opts.Status()
	if st.Partitions == 0 {
		writeJSON(w, http.StatusServiceUnavailable, errorJSON{"the pipeline has not started yet: no partitions known"})
		return
	}
	p := PartitionOf(id, st.Partitions)
	if !slices.Contains(st.Processing, p) {
		msg := "the member's partition is not processed by this instance (it holds " + intsText(st.Processing) +
			"); ask the instance that is assigned partition " + itoa(p) + " of the consumer group"
		if s.opts.Owner != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
			owner, ok, err := s.opts.Owner(ctx, p)
			cancel()
			switch {
			case err != nil:
				s.opts.Log.Debug().Err(err).Msg("member API: partition owner")
			case ok:
				msg += ": " + owner
			default:
				msg += " (none holds it now: a rebalance may be in progress)"
			}
		}
		if slices.Contains(st.Restoring, p) {
			msg = "the member's partition " + itoa(p) + " is restoring on this instance; try again shortly"
			writeJSON(w, http.StatusServiceUnavailable, errorJSON{msg})
			return
		}
		writeJSON(w, http.StatusNotFound, errorJSON{msg})
		return
	}
	var ms operators.MemberState
	found, err := s.opts.Store.Partition(state.Partition(p)).Get(id, &ms)
	if err != nil {
		s.opts.Log.Error().Err(err).Int("partition", p).Msg("member API: read state")
		writeJSON(w, http.StatusInternalServerError, errorJSON{"reading the member's state failed; see the instance's log"})
		return
	}
	if !found || ms.IsNew() {
		writeJSON(w, http.StatusNotFound, errorJSON{"no member with this id in partition " + itoa(p)})
		return
	}
	rep := s.opts.Engine.Report(id, &ms, max(ms.Clock, s.opts.Clock().Unix()))
	rep.Partition = int32(p)
	writeJSON(w, http.StatusOK, rep)
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func intsText(a []int) string {
	if len(a) == 0 {
		return "no partitions"
	}
	b, _ := json.Marshal(a)
	return "partitions " + string(b)
}
