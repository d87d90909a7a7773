package pipeline

import (
	"errors"
	"slices"
	"testing"
)

func TestStatusReady(t *testing.T) {
	var failing []int
	s := newStatus(func(n int) { failing = append(failing, n) })
	check := func(what string, ready bool) {
		t.Helper()
		if got := s.snapshot(); got.Ready() != ready {
			t.Errorf("%s: Ready() = %v, want %v (%+v)", what, got.Ready(), ready, got)
		}
	}
	check("not running", false)
	s.setRunning(true)
	check("running, no partitions", false)
	s.assign(0, true)
	s.assign(1, true)
	check("assigned, not processing", false)
	s.setRestoring(1, true)
	s.setProcessing(0)
	if got := s.snapshot(); !slices.Equal(got.Restoring, []int{1}) || !slices.Equal(got.Processing, []int{0}) {
		t.Errorf("snapshot %+v, want restoring [1], processing [0]", got)
	}
	check("one restoring", false)
	s.setRestoring(1, false)
	s.setProcessing(1)
	s.setWarming(1, true)
	if got := s.snapshot(); !slices.Equal(got.Warming, []int{1}) {
		t.Errorf("warming %v, want [1]", got.Warming)
	}
	check("both processing, one warming", true) // a warming partition processes
	s.setWarming(1, false)
	check("both processing", true)
	s.kafkaFailed("fetch in/0", errors.New("connection refused"))
	s.kafkaFailed("produce", errors.New("leader not available"))
	got := s.snapshot()
	if len(got.KafkaErrors) != 2 || got.KafkaErrors["produce"] != "leader not available" || got.KafkaErrorSince.IsZero() {
		t.Errorf("KafkaErrors %v since %v, want two", got.KafkaErrors, got.KafkaErrorSince)
	}
	check("Kafka failing", false)
	s.kafkaOK("fetch in/0")
	check("produce still failing", false)
	s.kafkaOK("produce")
	check("Kafka back", true)
	if !slices.Equal(failing, []int{1, 2, 1, 0}) {
		t.Errorf("failing clients reported %v, want [1 2 1 0]", failing)
	}
	s.setWarming(1, true)
	s.assign(1, false)
	s.setProcessing(1)    // a late report from a revoked worker
	s.setWarming(1, true) // likewise
	if got := s.snapshot(); !slices.Equal(got.Processing, []int{0}) || len(got.Warming) != 0 {
		t.Errorf("processing %v, warming %v after revocation, want [0], []", got.Processing, got.Warming)
	}
	check("one partition left", true)
	s.setRunning(false)
	check("stopped", false)
	var nilStatus *status
	nilStatus.kafkaFailed("x", errors.New("y")) // nil-safe
	nilStatus.kafkaOK("x")
}
