package pipeline

import (
	"maps"
	"slices"
	"sync"
)

// Status is what a Pipeline is doing now, for readiness probes and tests.
type Status struct {
	// Running is true between Run's start and its return.
	Running bool
	// Assigned lists the partition ids this instance processes, ascending.
	Assigned []int
	// Restoring lists the assigned partitions restoring their state from
	// the changelog, ascending.
	Restoring []int
	// Processing lists the assigned partitions whose worker has its state
	// and its outbox flushed and reads the inputs, ascending.
	Processing []int
}

// Ready reports whether the instance has partitions and processes every
// one of them (none is restoring or otherwise starting).
func (s Status) Ready() bool {
	return s.Running && len(s.Assigned) > 0 && len(s.Processing) == len(s.Assigned)
}

// status is the mutable Status behind Pipeline.Status.
type status struct {
	mu         sync.Mutex
	running    bool
	assigned   map[int]bool
	restoring  map[int]bool
	processing map[int]bool
}

func newStatus() *status {
	return &status{assigned: map[int]bool{}, restoring: map[int]bool{}, processing: map[int]bool{}}
}

func (s *status) setRunning(v bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running = v
	if !v {
		clear(s.assigned)
		clear(s.restoring)
		clear(s.processing)
	}
}

func (s *status) assign(part int, v bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v {
		s.assigned[part] = true
	} else {
		delete(s.assigned, part)
		delete(s.restoring, part)
		delete(s.processing, part)
	}
}

func (s *status) setProcessing(part int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.assigned[part] {
		s.processing[part] = true
	}
}

func (s *status) setRestoring(part int, v bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v {
		s.restoring[part] = true
	} else {
		delete(s.restoring, part)
	}
}

func (s *status) snapshot() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Status{
		Running:    s.running,
		Assigned:   slices.Sorted(maps.Keys(s.assigned)),
		Restoring:  slices.Sorted(maps.Keys(s.restoring)),
		Processing: slices.Sorted(maps.Keys(s.processing)),
	}
}

// Status returns what the pipeline is doing now. It is safe to call from
// any goroutine.
func (p *Pipeline) Status() Status { return p.status.snapshot() }
