package pipeline

import (
	"maps"
	"slices"
	"sync"
	"time"
)

// Status is what a Pipeline is doing now, for readiness probes and tests.
type Status struct {
	// Running is true between Run's start and its return.
	Running bool
	// Partitions is the input topics' partition count, once Run checked
	// them (0 before).
	Partitions int
	// Assigned lists the partition ids this instance processes, ascending.
	Assigned []int
	// Restoring lists the assigned partitions restoring their state from
	// the changelog, ascending.
	Restoring []int
	// Processing lists the assigned partitions whose worker has its state
	// and its outbox flushed and reads the inputs, ascending.
	Processing []int
	// Warming lists the processing partitions whose worker is still
	// reading its member states into the member cache (and counting them
	// for the members gauge), ascending: seconds after an assignment at a
	// million members. They process meanwhile, reading Badger for the
	// members not cached yet.
	Warming []int
	// KafkaErrors holds, per client that is failing to talk to Kafka and
	// retrying ("fetch <topic>/<partition>", "produce", "changelog
	// <partition>"), its last error; empty when every client's last
	// exchange succeeded. KafkaErrorSince is when the oldest of these
	// failures started.
	KafkaErrors     map[string]string
	KafkaErrorSince time.Time
}

// Ready reports whether the instance has partitions, processes every one
// of them (none is restoring or otherwise starting) and reaches Kafka.
func (s Status) Ready() bool {
	return s.Running && len(s.Assigned) > 0 && len(s.Processing) == len(s.Assigned) && len(s.KafkaErrors) == 0
}

// status is the mutable Status behind Pipeline.Status.
type status struct {
	mu         sync.Mutex
	running    bool
	partitions int
	assigned   map[int]bool
	restoring  map[int]bool
	processing map[int]bool
	warming    map[int]bool
	failing    map[string]kafkaFailure
	onFailing  func(n int) // told the number of failing clients on each change
}

type kafkaFailure struct {
	err   string
	since time.Time
}

// kafkaFailed records that client's exchange with Kafka failed. Nil-safe.
func (s *status) kafkaFailed(client string, err error) {
	if s == nil || err == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.failing[client]
	if !ok {
		f.since = time.Now()
	}
	f.err = err.Error()
	s.failing[client] = f
	s.onFailing(len(s.failing))
}

// kafkaOK records that client's exchange succeeded, or that the client
// stopped. Nil-safe.
func (s *status) kafkaOK(client string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.failing, client)
	s.onFailing(len(s.failing))
}

// newStatus returns an empty status; onFailing, if not nil, is told the
// number of failing Kafka clients whenever it may have changed.
func newStatus(onFailing func(n int)) *status {
	if onFailing == nil {
		onFailing = func(int) {}
	}
	return &status{assigned: map[int]bool{}, restoring: map[int]bool{}, processing: map[int]bool{}, warming: map[int]bool{},
		failing: map[string]kafkaFailure{}, onFailing: onFailing}
}

func (s *status) setRunning(v bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running = v
	if !v {
		clear(s.assigned)
		clear(s.restoring)
		clear(s.processing)
		clear(s.failing)
		s.onFailing(0)
	}
}

func (s *status) setPartitions(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.partitions = n
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
		delete(s.warming, part)
	}
}

func (s *status) setProcessing(part int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.assigned[part] {
		s.processing[part] = true
	}
}

func (s *status) setWarming(part int, v bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v && s.assigned[part] {
		s.warming[part] = true
	} else {
		delete(s.warming, part)
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
	var errs map[string]string
	var since time.Time
	for c, f := range s.failing {
		if errs == nil {
			errs = map[string]string{}
		}
		errs[c] = f.err
		if since.IsZero() || f.since.Before(since) {
			since = f.since
		}
	}
	return Status{
		Running:         s.running,
		Partitions:      s.partitions,
		Assigned:        slices.Sorted(maps.Keys(s.assigned)),
		Restoring:       slices.Sorted(maps.Keys(s.restoring)),
		Processing:      slices.Sorted(maps.Keys(s.processing)),
		Warming:         slices.Sorted(maps.Keys(s.warming)),
		KafkaErrors:     errs,
		KafkaErrorSince: since,
	}
}

// Status returns what the pipeline is doing now. It is safe to call from
// any goroutine.
func (p *Pipeline) Status() Status { return p.status.snapshot() }
