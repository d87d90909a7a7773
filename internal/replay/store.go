package replay

import (
	"container/heap"
	"strings"

	"github.com/churnflow/churnflow/operators"
)

// Store holds the member states of one runner and indexes them by due time,
// so that timers can be fired with a range scan rather than a pass over every
// member. The in-memory MemStore implements it; the Badger store (state/)
// implements the same contract.
//
// Ownership: Get copies the stored state into the caller's MemberState and
// Put copies the caller's state into the store, so neither side keeps a
// reference to the other's slices or strings after the call returns.
//
// Concurrency: a Store is used by one goroutine at a time; implementations
// need not be safe for concurrent use. A Store may be called re-entrantly
// from the function passed to DueBefore, as documented there.
//
// Errors: an error means the store could not do what was asked (I/O,
// corruption); the runner treats it as fatal. A member that is not stored
// is not an error.
type Store interface {
	// Get copies member id's state into s, reusing s's History and Trips
	// buffers. It reports false, leaving s as the zero state (with its
	// buffers kept), when the store holds nothing for id.
	Get(id operators.MemberID, s *operators.MemberState) (bool, error)

	// Put stores a copy of s as member id's state and schedules the member
	// at s.Due (no timer when s.Due is 0), replacing any earlier timer.
	Put(id operators.MemberID, s *operators.MemberState) error

	// Delete removes member id's state and timer. Deleting a member that
	// is not stored is a no-op.
	Delete(id operators.MemberID) error

	// DueBefore calls fn for each member whose Due is non-zero and strictly
	// before t. It may also call fn for members that are not due yet (the
	// Badger store keeps a member's timer entry at or before its Due and
	// moves it forward only when the member is visited): fn must treat the
	// visit as "evaluate up to t", which Engine.Advance does (it fires
	// nothing before the member's Due). MemStore visits exactly the due
	// members, in ascending order of (Due, member id). Visiting a member
	// consumes its timer: fn must Put the member (with its new Due) or
	// Delete it, and may Get it first. fn must not Put or Delete other
	// members. A member that fn Puts with a Due still before t may be
	// visited again in the same call. An error from fn stops the scan and
	// is returned.
	DueBefore(t int64, fn func(id operators.MemberID) error) error

	// Range calls fn for every stored member, in no particular order. The
	// state is the store's own: fn must not modify or retain it, and must
	// not call the store. An error from fn stops the scan and is returned.
	Range(fn func(id operators.MemberID, s *operators.MemberState) error) error

	// Len returns the number of stored members.
	Len() int
}

// MemStore is an in-memory Store: a map from member id to state plus a
// min-heap of (due, member) timers with lazy deletion (an entry whose due no
// longer matches the member's scheduled timer is skipped when it reaches the
// top). Its zero value is not usable; call NewMemStore. It is not safe for
// concurrent use.
type MemStore struct {
	members map[operators.MemberID]*memEntry
	timers  timerHeap
}

type memEntry struct {
	id operators.MemberID // the map key, cloned, shared with heap entries
	s  operators.MemberState
	// queued is the due of this member's live heap entry, 0 if none.
	queued int64
}

type timer struct {
	due int64
	e   *memEntry
}

// NewMemStore returns an empty in-memory store.
func NewMemStore() *MemStore {
	return &MemStore{members: make(map[operators.MemberID]*memEntry)}
}

// Get implements Store.
func (m *MemStore) Get(id operators.MemberID, s *operators.MemberState) (bool, error) {
	h, tr := s.History[:0], s.Trips[:0]
	e, ok := m.members[id]
	if !ok {
		*s = operators.MemberState{History: h, Trips: tr}
		return false, nil
	}
	*s = e.s
	s.History = append(h, e.s.History...)
	s.Trips = append(tr, e.s.Trips...)
	return true, nil
}

// Put implements Store. Strings the state takes from events (region,
// account manager, trip references) are cloned when they change, so that a
// stored member does not keep a whole decoded event alive.
func (m *MemStore) Put(id operators.MemberID, s *operators.MemberState) error {
	e, ok := m.members[id]
	if !ok {
		e = &memEntry{id: operators.MemberID(strings.Clone(string(id)))}
		m.members[e.id] = e
	}
	old := &e.s
	region, manager := old.Region, old.AccountManager
	if s.Region != region {
		region = strings.Clone(s.Region)
	}
	if s.AccountManager != manager {
		manager = strings.Clone(s.AccountManager)
	}
	hist := append(old.History[:0], s.History...)
	if len(s.History) == 0 {
		hist = nil
	}
	var trips []operators.Trip
	if len(s.Trips) > 0 {
		trips = make([]operators.Trip, len(s.Trips))
		copy(trips, s.Trips)
		for i := range trips {
			trips[i].Ref = m.cloneRef(old.Trips, trips[i].Ref)
		}
	}
	*old = *s
	old.Region, old.AccountManager = region, manager
	old.History, old.Trips = hist, trips

	if s.Due != 0 && s.Due != e.queued {
		e.queued = s.Due
		heap.Push(&m.timers, timer{due: s.Due, e: e})
	} else if s.Due == 0 {
		e.queued = 0
	}
	m.maybeCompact()
	return nil
}

// cloneRef returns ref, reusing an equal string already held in old trips
// and cloning it otherwise.
func (m *MemStore) cloneRef(old []operators.Trip, ref string) string {
	for i := range old {
		if old[i].Ref == ref {
			return old[i].Ref
		}
	}
	return strings.Clone(ref)
}

// Delete implements Store.
func (m *MemStore) Delete(id operators.MemberID) error {
	if e, ok := m.members[id]; ok {
		e.queued = 0
		delete(m.members, id)
	}
	return nil
}

// DueBefore implements Store.
func (m *MemStore) DueBefore(t int64, fn func(id operators.MemberID) error) error {
	for len(m.timers) > 0 && m.timers[0].due < t {
		top := heap.Pop(&m.timers).(timer)
		e := top.e
		if e.queued != top.due || e.s.Due != top.due || m.members[e.id] != e {
			continue // stale: rescheduled or deleted since it was pushed
		}
		e.queued = 0
		if err := fn(e.id); err != nil {
			return err
		}
	}
	return nil
}

// Range implements Store.
func (m *MemStore) Range(fn func(id operators.MemberID, s *operators.MemberState) error) error {
	for id, e := range m.members {
		if err := fn(id, &e.s); err != nil {
			return err
		}
	}
	return nil
}

// Len implements Store.
func (m *MemStore) Len() int { return len(m.members) }

// Timers returns the number of heap entries, stale ones included (for tests
// and memory accounting).
func (m *MemStore) Timers() int { return len(m.timers) }

// maybeCompact rebuilds the heap from the live timers once stale entries
// outnumber them, which bounds the heap at about twice the member count.
func (m *MemStore) maybeCompact() {
	if len(m.timers) < 1024 || len(m.timers) < 2*len(m.members)+1024 {
		return
	}
	m.timers = m.timers[:0]
	for _, e := range m.members {
		e.queued = e.s.Due
		if e.s.Due != 0 {
			m.timers = append(m.timers, timer{due: e.s.Due, e: e})
		}
	}
	heap.Init(&m.timers)
}

// timerHeap orders timers by due time, then member id, so that the order in
// which members are visited is deterministic.
type timerHeap []timer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].due != h[j].due {
		return h[i].due < h[j].due
	}
	return h[i].e.id < h[j].e.id
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	n := len(old)
	x := old[n-1]
	old[n-1] = timer{}
	*h = old[:n-1]
	return x
}
