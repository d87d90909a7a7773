package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/churnflow/churnflow/operators"
	"github.com/churnflow/churnflow/pipeline"
	"github.com/churnflow/churnflow/state"
)

const token = "s3cret-token"

type fixture struct {
	srv    *httptest.Server
	api    *Server
	mu     sync.Mutex
	status pipeline.Status
	gauge  *prometheus.GaugeVec
}

func (f *fixture) setStatus(s pipeline.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status = s
}

func newFixture(t *testing.T, tok string) *fixture {
	t.Helper()
	opts := state.DefaultOptions(t.TempDir())
	opts.MemoryBudget, opts.GCInterval = 32<<20, 0
	store, err := state.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	g, err := operators.NewEngine(operators.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	// A member, in the partition its key hashes to among 4.
	ms := operators.MemberState{}
	dec := operators.NewDecoder(g.Config().TierNames())
	var ev operators.Event
	for _, raw := range []string{
		`{"event_id":"e1","type":"enrolment","member_id":"M42","occurred_at":"2026-01-02T10:00:00Z","tier":"silver"}`,
		`{"event_id":"e2","type":"booking","member_id":"M42","occurred_at":"2026-02-02T10:00:00Z","booking_id":"b1","revenue":320.5,"currency":"EUR","product":"flight","distance_km":1500}`,
	} {
		if err := dec.Decode([]byte(raw), &ev); err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		g.Apply(&ms, &ev, nil)
	}
	b := store.Partition(state.Partition(PartitionOf("M42", 4))).NewBatch()
	b.Put("M42", &ms, 0)
	if err := b.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	f := &fixture{gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: pipeline.MetricMembers, Help: "test"},
		[]string{"tier", "activity", "segment"})}
	reg.MustRegister(f.gauge)
	f.api, err = New(Options{Gatherer: reg, Store: store, Engine: g, Token: tok,
		Status: func() pipeline.Status { f.mu.Lock(); defer f.mu.Unlock(); return f.status }})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(f.api)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) get(t *testing.T, path, tok string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestHealthAndReadiness(t *testing.T) {
	f := newFixture(t, token)
	if code, body, _ := f.get(t, "/healthz", ""); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	f.setStatus(pipeline.Status{Running: true, Partitions: 4, Assigned: []int{0, 1}, Restoring: []int{1}, Processing: []int{0}})
	code, body, _ := f.get(t, "/readyz", "")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"restoring": [`) {
		t.Errorf("/readyz while restoring: %d %s", code, body)
	}
	f.setStatus(pipeline.Status{Running: true, Partitions: 4, Assigned: []int{0, 1}, Processing: []int{0, 1},
		KafkaErrors: map[string]string{"produce": "leader not available"}, KafkaErrorSince: time.Now().Add(-time.Minute)})
	if code, body, _ := f.get(t, "/readyz", ""); code != http.StatusServiceUnavailable || !strings.Contains(body, "leader not available") {
		t.Errorf("/readyz with Kafka failing: %d %s", code, body)
	}
	f.setStatus(pipeline.Status{Running: true, Partitions: 4, Assigned: []int{0, 1}, Processing: []int{0, 1}, Warming: []int{1}})
	if code, body, _ := f.get(t, "/readyz", ""); code != 200 || !strings.Contains(body, `"ready": true`) ||
		!regexp.MustCompile(`"warming": \[\s*1\s*\]`).MatchString(body) {
		t.Errorf("/readyz when ready, partition 1 warming: %d %s", code, body)
	}
	f.gauge.WithLabelValues("gold", "active", "important-retain").Set(3)
	if code, body, _ := f.get(t, "/metrics", ""); code != 200 || !strings.Contains(body, pipeline.MetricMembers) {
		t.Errorf("/metrics: %d, %d bytes", code, len(body))
	}
}

func TestMemberAPI(t *testing.T) {
	f := newFixture(t, token)
	p := PartitionOf("M42", 4)
	f.setStatus(pipeline.Status{Running: true, Partitions: 4, Assigned: []int{p}, Processing: []int{p}})

	for _, tc := range []struct{ name, tok string }{{"no token", ""}, {"wrong token", "s3cret-tokem"}, {"prefix of the token", "s3cret"}} {
		code, _, h := f.get(t, "/v1/members/M42", tc.tok)
		if code != http.StatusUnauthorized || h.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: %d, WWW-Authenticate %q; want 401 with a challenge", tc.name, code, h.Get("WWW-Authenticate"))
		}
	}
	code, body, _ := f.get(t, "/v1/members/M42", token)
	if code != 200 {
		t.Fatalf("known member: %d %s", code, body)
	}
	var rep operators.MemberReport
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.MemberID != "M42" || int(rep.Partition) != p || rep.Tier != "silver" || rep.Bookings != 1 || rep.LastBooking == "" || rep.Due == nil {
		t.Errorf("member report %+v", rep)
	}
	// An unknown member of a partition this instance processes.
	unknown := "M43"
	for i := 0; PartitionOf(operators.MemberID(unknown), 4) != p; i++ {
		unknown = "X" + itoa(i)
	}
	if code, body, _ := f.get(t, "/v1/members/"+unknown, token); code != 404 || !strings.Contains(body, "no member with this id") {
		t.Errorf("unknown member %s: %d %s", unknown, code, body)
	}
	other := (p + 1) % 4
	f.setStatus(pipeline.Status{Running: true, Partitions: 4, Assigned: []int{other}, Processing: []int{other}})
	if code, body, _ := f.get(t, "/v1/members/M42", token); code != 404 || !strings.Contains(body, "not processed by this instance") {
		t.Errorf("member of another instance: %d %s", code, body)
	}
	f.api.opts.Owner = func(_ context.Context, part int) (string, bool, error) {
		return "group member churnflow-7 at 10.0.0.7 (partition " + itoa(part) + ")", true, nil
	}
	if code, body, _ := f.get(t, "/v1/members/M42", token); code != 404 || !strings.Contains(body, "group member churnflow-7 at 10.0.0.7 (partition "+itoa(p)+")") {
		t.Errorf("member of another instance, owner known: %d %s", code, body)
	}
	f.api.opts.Owner = nil
	f.setStatus(pipeline.Status{Running: true, Partitions: 4, Assigned: []int{p}, Restoring: []int{p}})
	if code, body, _ := f.get(t, "/v1/members/M42", token); code != http.StatusServiceUnavailable || !strings.Contains(body, "restoring") {
		t.Errorf("member of a restoring partition: %d %s", code, body)
	}
	// No token configured: the API is refused, not open.
	open := newFixture(t, "")
	open.setStatus(pipeline.Status{Running: true, Partitions: 4, Assigned: []int{p}, Processing: []int{p}})
	if code, _, _ := open.get(t, "/v1/members/M42", ""); code != http.StatusForbidden {
		t.Errorf("API without a configured token: %d, want 403", code)
	}
}

func TestStats(t *testing.T) {
	f := newFixture(t, token)
	f.setStatus(pipeline.Status{Running: true, Partitions: 4, Assigned: []int{0, 1}, Processing: []int{0, 1}})
	f.gauge.WithLabelValues("gold", "active", "important-retain").Set(3)
	f.gauge.WithLabelValues("gold", "sleeping", "important-win-back").Set(1)
	f.gauge.WithLabelValues("base", "sleeping", "general").Set(4)
	if err := f.api.Sample(); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := f.get(t, "/v1/stats", ""); code != http.StatusUnauthorized {
		t.Errorf("/v1/stats without a token: %d", code)
	}
	code, body, _ := f.get(t, "/v1/stats", token)
	if code != 200 {
		t.Fatalf("/v1/stats: %d %s", code, body)
	}
	var st statsJSON
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	m := st.Members
	if m.Total != 8 || m.ByTier["gold"] != 4 || m.ByActivity["sleeping"] != 5 || m.BySegment["general"] != 4 || m.SleepingShare != 5.0/8 {
		t.Errorf("members %+v", m)
	}
	if len(st.Trend) != 1 || st.Trend[0].Members.Total != 8 || len(st.Partitions) != 2 {
		t.Errorf("trend %+v, partitions %v", st.Trend, st.Partitions)
	}
	f.gauge.WithLabelValues("base", "sleeping", "general").Set(6)
	if err := f.api.Sample(); err != nil { // same day: replaces the sample
		t.Fatal(err)
	}
	_, body, _ = f.get(t, "/v1/stats", token)
	json.Unmarshal([]byte(body), &st)
	if len(st.Trend) != 1 || st.Trend[0].Members.Total != 10 {
		t.Errorf("trend after a second sample the same day: %+v", st.Trend)
	}
}

func TestRegistryAndListen(t *testing.T) {
	opts := state.DefaultOptions(t.TempDir())
	opts.MemoryBudget, opts.GCInterval = 32<<20, 0
	store, err := state.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	reg, metrics := NewRegistry(store)
	if metrics == nil {
		t.Fatal("no pipeline metrics")
	}
	g, _ := operators.NewEngine(operators.DefaultConfig())
	api, err := New(Options{Gatherer: reg, Store: store, Engine: g, Token: token, Status: func() pipeline.Status { return pipeline.Status{} }})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen("127.0.0.1:0", api, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + ln.Addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, name := range []string{MetricBuildInfo, MetricStateDiskBytes, MetricStateCachedMembers, "go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(string(b), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := Listen(ln.Addr, api, zerolog.Nop())
	if err != nil {
		t.Fatalf("the address is not free after Close: %v", err)
	}
	again.Close()
	if _, err := New(Options{}); err == nil {
		t.Error("New without a Gatherer succeeded")
	}
}
